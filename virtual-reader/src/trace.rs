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
            Data::Clear(b) => hex(b),
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
        unhex(s).map(Data::Clear)
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
            hex(&self.header),
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
        let header: [u8; 4] = unhex(header)?.try_into().ok()?;
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
            meaning(self.sw),
            self.micros as f64 / 1000.0
        );
        line
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
/// `GENERAL AUTHENTICATE ECDSA 9A`…
pub fn name(header: [u8; 4], data: &Data) -> String {
    let [cla, ins, p1, p2] = header;
    let chained = if cla & 0x10 != 0 {
        " (chained part)"
    } else {
        ""
    };
    let clear = match data {
        Data::Clear(b) => b.as_slice(),
        Data::Redacted(_) => &[],
    };
    let base = match ins {
        0xA4 => {
            if clear.starts_with(&[0xA0, 0x00, 0x00, 0x03, 0x08]) {
                "SELECT PIV".to_string()
            } else {
                format!("SELECT {}", hex(clear))
            }
        }
        0x20 => match (p1, data.len()) {
            (0xFF, _) => "VERIFY LOGOUT".into(),
            (_, 0) => "VERIFY PIN (status)".into(),
            _ => "VERIFY PIN".into(),
        },
        0x24 => format!(
            "CHANGE REFERENCE DATA {}",
            if p2 == 0x81 { "PUK" } else { "PIN" }
        ),
        0x2C => "RESET RETRY COUNTER".into(),
        0x87 => {
            if p2 == 0x9B {
                "GENERAL AUTHENTICATE MANAGEMENT KEY".into()
            } else {
                let inner = Reader::new(clear)
                    .flatten()
                    .find(|t| t.tag.value() == 0x7C)
                    .map(|t| t.value)
                    .unwrap_or_default();
                let ecdh = Reader::new(inner).flatten().any(|t| t.tag.value() == 0x85);
                format!(
                    "GENERAL AUTHENTICATE {} {}",
                    if ecdh { "ECDH" } else { "ECDSA" },
                    slot(p2)
                )
            }
        }
        0x47 => format!("GENERATE {}", slot(p2)),
        0xCB | 0xDB => {
            let verb = if ins == 0xCB { "GET DATA" } else { "PUT DATA" };
            match Reader::new(clear).flatten().find(|t| t.tag.value() == 0x5C) {
                Some(t) => format!("{verb} {}", hex(t.value)),
                None => verb.into(),
            }
        }
        0xC0 => "GET RESPONSE".into(),
        0xFD => "GET VERSION".into(),
        0xF8 => "GET SERIAL".into(),
        0xF7 => format!("GET METADATA {}", slot(p2)),
        0xFA => "SET PIN RETRIES".into(),
        0xFB => "RESET".into(),
        0xFF => "SET MANAGEMENT KEY".into(),
        0xFE => format!("IMPORT KEY {}", slot(p2)),
        0xF9 => format!("ATTEST {}", slot(p1)),
        0xF6 if p1 == 0xFF => format!("DELETE KEY {}", slot(p2)),
        0xF6 => format!("MOVE KEY {}->{}", slot(p2), slot(p1)),
        0xE0 => format!("STAGE KEY {}", slot(p2)),
        0xE1 => format!("COMMIT RENEWAL {}", slot(p2)),
        0xE2 => format!("ABORT RENEWAL {}", slot(p2)),
        0xE3 => "CARD INFO".into(),
        other => format!("INS {other:02X}"),
    };
    format!("{base}{chained}")
}

pub use client::meaning;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

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
}
