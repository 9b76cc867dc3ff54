//! APDU traces: one line per command, decoded for PIV, secrets redacted.
//!
//! A trace is recorded as *raw* lines (so it can be decoded again later with
//! `s9card trace decode`), with every secret already cut out:
//!
//! ```text
//! <unix ms> <µs> <CLA INS P1 P2> <command data> <response data> <SW>
//! 1764090000123 412 00200080 R8 - 9000
//! ```
//! Data fields are hex, `-` for none, or `R<n>` for `n` redacted bytes.
//! What is redacted is the card's verdict, which card-os returns with every
//! response APDU ([`card_os::Secrecy`]; the applet's table is in
//! `applet::secrecy`): PINs, PUKs, management keys and their cryptograms,
//! imported private keys, ECDH shared secrets and PIN-protected objects
//! never reach the file, including the GET RESPONSE parts of a long answer.

use std::fmt::Write as _;

use apdu::Command;
use apdu::tlv::Reader;
use applet::algorithm::Algorithm;
use applet::ins::{Instruction, KEY_REF_ADMIN};
use card_os::Secrecy;

/// A data field as traced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// Shown as it was.
    Clear(Vec<u8>),
    /// A secret of this many bytes, not recorded.
    Redacted(usize),
}

impl Data {
    fn encode(&self) -> String {
        match self {
            Data::Clear(b) if b.is_empty() => "-".into(),
            Data::Clear(b) => hex::encode_upper(b),
            Data::Redacted(n) => format!("R{n}"),
        }
    }

    fn decode(s: &str) -> Option<Data> {
        if s == "-" {
            return Some(Data::Clear(Vec::new()));
        }
        if let Some(n) = s.strip_prefix('R') {
            return n.parse().ok().map(Data::Redacted);
        }
        hex::decode(s).ok().map(Data::Clear)
    }

    /// `bytes` as a trace keeps them: redacted if secret and not empty.
    fn kept(bytes: Vec<u8>, secret: bool) -> Data {
        if secret && !bytes.is_empty() {
            Data::Redacted(bytes.len())
        } else {
            Data::Clear(bytes)
        }
    }

    fn len(&self) -> usize {
        match self {
            Data::Clear(b) => b.len(),
            Data::Redacted(n) => *n,
        }
    }
}

/// One exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// When the command arrived, in Unix milliseconds.
    pub at_ms: u64,
    /// How long the card took, in microseconds.
    pub micros: u64,
    /// CLA INS P1 P2.
    pub header: [u8; 4],
    /// The command data.
    pub command: Data,
    /// The response data.
    pub response: Data,
    /// SW1 SW2.
    pub sw: u16,
}

impl Record {
    /// Records an exchange, redacting what the card's verdict marks secret
    /// (the trace never judges for itself).
    pub fn new(
        at_ms: u64,
        micros: u64,
        command: &[u8],
        response: &[u8],
        secrecy: Secrecy,
    ) -> Record {
        let mut header = [0u8; 4];
        let n = command.len().min(4);
        header[..n].copy_from_slice(&command[..n]);
        // Bytes that are no APDU are kept whole after the header, so that
        // a secret in them is redacted too.
        let data = match Command::parse(command) {
            Ok(c) => c.data().to_vec(),
            Err(_) => command.get(4..).unwrap_or_default().to_vec(),
        };
        let (rdata, sw) = match response.len() {
            0 | 1 => (Vec::new(), 0),
            n => (
                response[..n - 2].to_vec(),
                u16::from_be_bytes([response[n - 2], response[n - 1]]),
            ),
        };
        Record {
            at_ms,
            micros,
            header,
            command: Data::kept(data, secrecy.command),
            response: Data::kept(rdata, secrecy.response),
            sw,
        }
    }

    /// The raw trace line.
    pub fn raw(&self) -> String {
        format!(
            "{} {} {} {} {} {:04X}",
            self.at_ms,
            self.micros,
            hex::encode_upper(self.header),
            self.command.encode(),
            self.response.encode(),
            self.sw
        )
    }

    /// Parses a raw trace line.
    pub fn parse(line: &str) -> Option<Record> {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [at, us, header, command, response, sw] = f[..] else {
            return None;
        };
        let header: [u8; 4] = hex::decode(header).ok()?.try_into().ok()?;
        Some(Record {
            at_ms: at.parse().ok()?,
            micros: us.parse().ok()?,
            header,
            command: Data::decode(command)?,
            response: Data::decode(response)?,
            sw: u16::from_str_radix(sw, 16).ok()?,
        })
    }

    /// The decoded line.
    pub fn decoded(&self) -> String {
        let mut line = String::new();
        let secs = self.at_ms / 1000;
        let _ = write!(
            line,
            "{:02}:{:02}:{:02}.{:03}  {:<35} {:<25} {:04X} {:<36} {:>7.2} ms",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60,
            self.at_ms % 1000,
            name(self.header, &self.command),
            detail(&self.command, &self.response),
            self.sw,
            match protected_status(self.header, &self.response) {
                Some(inner) => format!("[SM: {inner:04X} {}]", meaning(inner)),
                None => meaning(self.sw),
            },
            self.micros as f64 / 1000.0
        );
        line
    }
}

/// The status word inside a protected answer: its `99 02 SW1 SW2` is
/// MACed but not enciphered, so the wire shows it (`None` for an answer
/// that is not a whole protected one, a part fetched by GET RESPONSE say).
fn protected_status(header: [u8; 4], response: &Data) -> Option<u16> {
    let Data::Clear(r) = response else {
        return None;
    };
    if header[0] & 0x0C != 0x0C {
        return None;
    }
    match r.get(r.len().checked_sub(14)?..)? {
        [0x99, 0x02, sw1, sw2, 0x8E, 0x08, ..] => Some(u16::from_be_bytes([*sw1, *sw2])),
        _ => None,
    }
}

fn detail(command: &Data, response: &Data) -> String {
    let c = match command {
        Data::Redacted(n) => format!("[{n} redacted]"),
        Data::Clear(b) if b.is_empty() => String::new(),
        Data::Clear(b) => format!("{}B", b.len()),
    };
    let r = match response {
        Data::Redacted(n) => format!("->[{n} redacted]"),
        Data::Clear(b) if b.is_empty() => String::new(),
        Data::Clear(b) => format!("->{}B", b.len()),
    };
    format!("{c}{r}")
}

fn slot(b: u8) -> String {
    format!("{b:02X}")
}

/// The PIV name of a command: `VERIFY PIN`, `GET DATA 5FC105`,
/// `GENERAL AUTHENTICATE ECDSA 9A`… Its first words are always the
/// instruction's name in the applet's table ([`Instruction::name`]), which
/// latency profiles and scenarios match; what follows says which slot,
/// object, reference or operation.
pub fn name(header: [u8; 4], data: &Data) -> String {
    let [cla, ins, p1, p2] = header;
    let chained = if cla & 0x10 != 0 {
        " (chained part)"
    } else {
        ""
    };
    let Some(instruction) = Instruction::from_byte(ins) else {
        return format!("INS {ins:02X}{chained}");
    };
    // Under secure messaging the data is a cryptogram: the header alone
    // says what the command is.
    let protected = cla & 0x0C == 0x0C;
    let clear = match data {
        Data::Clear(b) if !protected => b.as_slice(),
        _ => &[],
    };
    let name = instruction.name();
    let reference = |p2: u8| match p2 {
        0x81 => "PUK",
        0x98 => "PAIRING CODE",
        _ => "PIN",
    };
    let base = match instruction {
        Instruction::Select if clear.starts_with(&[0xA0, 0x00, 0x00, 0x03, 0x08]) => {
            format!("{name} PIV")
        }
        Instruction::Select => format!("{name} {}", hex::encode_upper(clear)),
        Instruction::Verify => match (p1, data.len()) {
            (0xFF, _) => format!("{name} LOGOUT"),
            (_, 0) => format!("{name} {} (status)", reference(p2)),
            _ => format!("{name} {}", reference(p2)),
        },
        Instruction::ChangeReference => format!("{name} {}", reference(p2)),
        Instruction::GeneralAuthenticate if p2 == KEY_REF_ADMIN => {
            format!("{name} MANAGEMENT KEY")
        }
        Instruction::GeneralAuthenticate if p2 == applet::sm::ESTABLISH_P2 => {
            match applet::sm::Suite::from_id(p1) {
                Some(applet::sm::Suite::Cs2) => format!("{name} KEY ESTABLISHMENT CS2"),
                Some(applet::sm::Suite::Cs7) => format!("{name} KEY ESTABLISHMENT CS7"),
                None => format!("{name} KEY ESTABLISHMENT {p1:02X}"),
            }
        }
        // Which operation is in the cryptogram, the trace cannot tell.
        Instruction::GeneralAuthenticate if protected => format!("{name} {}", slot(p2)),
        Instruction::GeneralAuthenticate => match operation(p1, clear) {
            Some(op) => format!("{name} {op} {}", slot(p2)),
            None => format!("{name} {}", slot(p2)),
        },
        Instruction::GetData | Instruction::PutData => {
            match Reader::new(clear).flatten().find(|t| t.tag.value() == 0x5C) {
                Some(t) => format!("{name} {}", hex::encode_upper(t.value)),
                None => name.into(),
            }
        }
        Instruction::Generate
        | Instruction::GetMetadata
        | Instruction::ImportKey
        | Instruction::StageKey
        | Instruction::CommitRenewal
        | Instruction::AbortRenewal => format!("{name} {}", slot(p2)),
        Instruction::Attest => format!("{name} {}", slot(p1)),
        Instruction::MoveKey if p1 == 0xFF => format!("DELETE KEY {}", slot(p2)),
        Instruction::MoveKey => format!("{name} {}->{}", slot(p2), slot(p1)),
        Instruction::GetResponse
        | Instruction::ResetRetry
        | Instruction::GetSerial
        | Instruction::SetPinRetries
        | Instruction::Reset
        | Instruction::GetVersion
        | Instruction::SetManagementKey
        | Instruction::CardInfo
        | Instruction::SetSerial => name.into(),
    };
    let sm = if protected { " [SM]" } else { "" };
    format!("{base}{sm}{chained}")
}

/// Checks a command name a latency profile or a scenario matches against:
/// it must begin with a name the trace gives (an instruction of the
/// applet's table, `DELETE KEY`, or `INS XX` for a byte the card lacks),
/// or it would silently match nothing. What follows the instruction (a
/// slot, an object, `PIN`) is not checked.
pub fn check_name(name: &str) -> Result<(), UnknownCommand> {
    let name = name.trim();
    let known = Instruction::ALL
        .iter()
        .map(|i| i.name())
        .chain(["DELETE KEY"])
        .any(|n| crate::latency::names_begin(name, n) || crate::latency::names_begin(n, name));
    let unknown_byte = name
        .strip_prefix("INS ")
        .is_some_and(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok());
    if known || unknown_byte {
        return Ok(());
    }
    Err(UnknownCommand(name.to_string()))
}

/// A command name no trace gives (a profile's or a scenario's own word,
/// repeated because it is only ever meant as a command's name).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("command {:?}: names begin with one of {}", .0, instruction_names())]
pub struct UnknownCommand(pub String);

fn instruction_names() -> String {
    let names: Vec<&str> = Instruction::ALL.iter().map(|i| i.name()).collect();
    names.join(", ")
}

/// What a GENERAL AUTHENTICATE with a slot's key does, from its algorithm
/// (P1) and whether it carries a peer's public key (`85`): an RSA private
/// operation (a signature or a decryption: the card cannot tell), an ECDSA
/// or EdDSA signature, or a key agreement. None when P1 names no algorithm.
fn operation(p1: u8, data: &[u8]) -> Option<&'static str> {
    let inner = Reader::new(data)
        .flatten()
        .find(|t| t.tag.value() == 0x7C)
        .map(|t| t.value)
        .unwrap_or_default();
    let agrees = Reader::new(inner).flatten().any(|t| t.tag.value() == 0x85);
    Some(match Algorithm::from_byte(p1)? {
        a if a.rsa_bits().is_some() => "RSA",
        Algorithm::Ed25519 => "EdDSA",
        Algorithm::X25519 => "ECDH",
        _ if agrees => "ECDH",
        _ => "ECDSA",
    })
}

pub use client::meaning;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_the_raw_line() {
        let verify = [
            0x00, 0x20, 0x00, 0x80, 0x08, b'4', b'8', b'2', b'9', b'1', b'5', 0xFF, 0xFF,
        ];
        let r = Record::new(1, 2, &verify, &[0x90, 0x00], Secrecy::COMMAND);
        assert_eq!(r.raw(), "1 2 00200080 R8 - 9000");
        assert!(r.decoded().contains("VERIFY PIN"));
        let mgm = [0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00];
        let r = Record::new(
            1,
            2,
            &mgm,
            &[0x7C, 0x0A, 0x80, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x90, 0x00],
            Secrecy::SECRET,
        );
        assert_eq!(
            r.raw(),
            "1 2 00879B03 R4 R12 9000".replace("00879B03", "0087039B")
        );
        let import = [0x00, 0xFE, 0x11, 0x9A, 0x04, 0x06, 0x02, 0xAA, 0xBB];
        assert!(
            !Record::new(1, 2, &import, &[0x90, 0x00], Secrecy::COMMAND)
                .raw()
                .contains("AABB")
        );
        // The card's verdict is obeyed for the response too, and for bytes
        // that are no APDU.
        let shared = [0x7C, 0x04, 0x82, 0x02, 0xC0, 0xDE, 0x90, 0x00];
        let get_response = [0x00, 0xC0, 0x00, 0x00, 0x00];
        let r = Record::new(1, 2, &get_response, &shared, Secrecy::RESPONSE);
        assert_eq!(r.raw(), "1 2 00C00000 - R6 9000");
        let torn = [0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2'];
        let r = Record::new(1, 2, &torn, &[0x67, 0x00], Secrecy::SECRET);
        assert_eq!(r.raw(), "1 2 00200080 R3 - 6700");
    }

    #[test]
    fn names_and_round_trip() {
        let get = [
            0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00,
        ];
        let r = Record::new(
            1_764_090_000_123,
            412,
            &get,
            &[0x53, 0x00, 0x90, 0x00],
            Secrecy::PUBLIC,
        );
        assert_eq!(Record::parse(&r.raw()), Some(r.clone()));
        assert!(r.decoded().contains("GET DATA 5FC105"), "{}", r.decoded());
        let sign = [
            0x00, 0x87, 0x11, 0x9A, 0x06, 0x7C, 0x04, 0x82, 0x00, 0x81, 0x00,
        ];
        assert_eq!(
            name(
                [0x00, 0x87, 0x11, 0x9A],
                &Record::new(0, 0, &sign, &[0x90, 0x00], Secrecy::PUBLIC).command
            ),
            "GENERAL AUTHENTICATE ECDSA 9A"
        );
        assert_eq!(meaning(0x63C2), "verification failed, 2 tries left");
    }

    /// Under secure messaging the wire carries cryptograms, which the card
    /// judges public: the trace keeps them and names the command by its
    /// header, never by data it cannot read.
    #[test]
    fn secure_messaging_is_named_by_its_header() {
        let establish = Record::new(
            0,
            0,
            &[0x00, 0x87, 0x27, 0x04, 0x02, 0x7C, 0x00],
            &[0x90, 0x00],
            Secrecy::PUBLIC,
        );
        assert!(
            establish
                .decoded()
                .contains("GENERAL AUTHENTICATE KEY ESTABLISHMENT CS2")
        );
        let wrapped = [
            0x0C, 0x20, 0x00, 0x98, 0x0D, 0x97, 0x01, 0x00, 0x8E, 0x08, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let r = Record::new(
            0,
            0,
            &wrapped,
            &[0x99, 0x02, 0x90, 0x00, 0x90, 0x00],
            Secrecy::PUBLIC,
        );
        assert!(
            r.decoded().contains("VERIFY PAIRING CODE [SM]"),
            "{}",
            r.decoded()
        );
        assert!(r.raw().contains("8E080102030405060708"), "{}", r.raw());
        let get = [0x1C, 0xCB, 0x3F, 0xFF, 0x03, 0x87, 0x01, 0x01];
        assert_eq!(
            name(
                [0x1C, 0xCB, 0x3F, 0xFF],
                &Record::new(0, 0, &get, &[0x90, 0x00], Secrecy::PUBLIC).command
            ),
            "GET DATA [SM] (chained part)"
        );
    }

    use crate::latency::names_begin;

    #[test]
    fn a_name_nothing_could_match_is_refused() {
        for good in [
            "VERIFY",
            "VERIFY PIN",
            "GENERAL AUTHENTICATE RSA 9A",
            "GET",
            "INS 12",
            "SET SERIAL",
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["VERIFI PIN", "GENERAL AUTH", "SIGN", "INS XY", ""] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(e, UnknownCommand(bad.into()));
            assert!(e.to_string().contains("GENERAL AUTHENTICATE"), "{e}");
        }
    }

    fn named(header: [u8; 4], data: &[u8]) -> String {
        name(header, &Data::Clear(data.to_vec()))
    }

    #[test]
    fn each_operation_is_named_by_its_key_and_every_name_begins_with_the_tables() {
        let challenge = [0x7C, 0x04, 0x82, 0x00, 0x81, 0x00];
        let peer = [0x7C, 0x05, 0x82, 0x00, 0x85, 0x01, 0x04];
        let cases: [([u8; 4], &[u8], &str); 8] = [
            (
                [0x00, 0x87, 0x07, 0x9A],
                &challenge,
                "GENERAL AUTHENTICATE RSA 9A",
            ),
            (
                [0x00, 0x87, 0x16, 0x9D],
                &challenge,
                "GENERAL AUTHENTICATE RSA 9D",
            ),
            (
                [0x00, 0x87, 0x14, 0x9E],
                &challenge,
                "GENERAL AUTHENTICATE ECDSA 9E",
            ),
            (
                [0x00, 0x87, 0x11, 0x9D],
                &peer,
                "GENERAL AUTHENTICATE ECDH 9D",
            ),
            (
                [0x00, 0x87, 0xE0, 0x9C],
                &challenge,
                "GENERAL AUTHENTICATE EdDSA 9C",
            ),
            (
                [0x00, 0x87, 0xE1, 0x9D],
                &peer,
                "GENERAL AUTHENTICATE ECDH 9D",
            ),
            ([0x00, 0xE4, 0x00, 0x00], &[0, 0, 0, 1], "SET SERIAL"),
            ([0x00, 0x12, 0x00, 0x00], &[], "INS 12"),
        ];
        for (header, data, want) in cases {
            assert_eq!(named(header, data), want, "{header:02X?}");
        }
        for ins in Instruction::ALL {
            let got = named([0x00, ins.byte(), 0x00, 0x9A], &[]);
            let refined = *ins == Instruction::MoveKey && got.starts_with("DELETE KEY");
            assert!(
                names_begin(&got, ins.name()) || refined,
                "{got:?} does not begin with {:?}",
                ins.name()
            );
        }
    }
}
