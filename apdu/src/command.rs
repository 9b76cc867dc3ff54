//! Command APDUs: the four ISO 7816-4 cases, short and extended length.

use crate::{Class, Error};

/// The four bytes every command starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Class byte: chaining, channel and secure-messaging bits.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// First parameter byte.
    pub p1: u8,
    /// Second parameter byte.
    pub p2: u8,
}

impl Header {
    /// A header from its four bytes.
    pub const fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Header { cla, ins, p1, p2 }
    }

    /// The class byte decoded; `FF` is refused.
    pub fn class(&self) -> Result<Class, Error> {
        Class::try_from(self.cla).map_err(|_| Error::InvalidClass)
    }

    /// `(P1 << 8) | P2`, the form most specifications quote.
    pub const fn p1p2(&self) -> u16 {
        u16::from_be_bytes([self.p1, self.p2])
    }
}

/// How the body's length fields are encoded.
///
/// Kept in the command so that parsing and writing are exact inverses: the
/// same Lc can legally be written short (`05`) or extended (`00 00 05`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LengthForm {
    /// One-byte Lc (1..=255) and Le (1..=256, `00` meaning 256).
    Short,
    /// Three-byte Lc (`00 hi lo`) and two- or three-byte Le (0 meaning 65536).
    Extended,
}

/// Largest Ne a short Le can ask for.
const SHORT_NE_MAX: u32 = 256;
/// Largest Ne an extended Le can ask for.
const EXTENDED_NE_MAX: u32 = 65_536;
/// Largest Nc a short Lc can announce.
const SHORT_NC_MAX: usize = 255;
/// Largest Nc an extended Lc can announce.
const EXTENDED_NC_MAX: usize = 65_535;

/// A command APDU borrowed from a buffer.
///
/// The fields are private so that every value is encodable: the data length
/// and the expected length always fit the recorded [`LengthForm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Command<'a> {
    header: Header,
    data: &'a [u8],
    /// Ne, the number of response bytes asked for; `None` when Le is absent.
    expected: Option<u32>,
    form: LengthForm,
}

impl<'a> Command<'a> {
    /// A command in the shortest form that carries `data` and `expected`.
    pub fn new(header: Header, data: &'a [u8], expected: Option<u32>) -> Result<Self, Error> {
        let fits_short = data.len() <= SHORT_NC_MAX && expected.is_none_or(|ne| ne <= SHORT_NE_MAX);
        let form = if fits_short {
            LengthForm::Short
        } else {
            LengthForm::Extended
        };
        Self::with_form(header, data, expected, form)
    }

    /// A command in an explicit length form.
    pub fn with_form(
        header: Header,
        data: &'a [u8],
        expected: Option<u32>,
        form: LengthForm,
    ) -> Result<Self, Error> {
        let (nc_max, ne_max) = match form {
            LengthForm::Short => (SHORT_NC_MAX, SHORT_NE_MAX),
            LengthForm::Extended => (EXTENDED_NC_MAX, EXTENDED_NE_MAX),
        };
        if data.len() > nc_max || expected.is_some_and(|ne| ne == 0 || ne > ne_max) {
            return Err(Error::LengthOutOfRange);
        }
        // A case 1 command has no length fields, so it has only one form.
        let form = if data.is_empty() && expected.is_none() {
            LengthForm::Short
        } else {
            form
        };
        Ok(Command {
            header,
            data,
            expected,
            form,
        })
    }

    /// Parses a complete command APDU.
    ///
    /// Decoding follows ISO 7816-3 12.1.3: the body length and its first
    /// bytes decide the case; anything that fits no case is an error.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let ([cla, ins, p1, p2], body) = split_array::<4>(bytes).ok_or(Error::HeaderTooShort)?;
        let header = Header::new(cla, ins, p1, p2);
        let (data, expected, form) = parse_body(body)?;
        Ok(Command {
            header,
            data,
            expected,
            form,
        })
    }

    /// CLA, INS, P1, P2.
    pub const fn header(&self) -> Header {
        self.header
    }

    /// Class byte.
    pub const fn cla(&self) -> u8 {
        self.header.cla
    }

    /// Instruction byte.
    pub const fn ins(&self) -> u8 {
        self.header.ins
    }

    /// First parameter.
    pub const fn p1(&self) -> u8 {
        self.header.p1
    }

    /// Second parameter.
    pub const fn p2(&self) -> u8 {
        self.header.p2
    }

    /// The command data field (empty for cases 1 and 2).
    pub const fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Ne: how many response bytes the terminal accepts, `None` without Le.
    pub const fn expected(&self) -> Option<u32> {
        self.expected
    }

    /// The length form the command is (or will be) encoded in.
    pub const fn form(&self) -> LengthForm {
        self.form
    }

    /// The ISO 7816-4 case number, 1 to 4.
    pub const fn case(&self) -> u8 {
        match (self.data.is_empty(), self.expected.is_some()) {
            (true, false) => 1,
            (true, true) => 2,
            (false, false) => 3,
            (false, true) => 4,
        }
    }

    /// Where the data field starts in the command's encoding: after the
    /// header and Lc (none, one byte or three). A card that parsed a
    /// command in its own buffer moves the data by it rather than copying
    /// the command.
    pub const fn data_offset(&self) -> usize {
        match (self.data.is_empty(), self.form) {
            (true, _) => 4,
            (false, LengthForm::Short) => 5,
            (false, LengthForm::Extended) => 7,
        }
    }

    /// The number of bytes [`Command::write_to`] produces.
    pub fn encoded_len(&self) -> usize {
        let lc = match (self.data.is_empty(), self.form) {
            (true, _) => 0,
            (false, LengthForm::Short) => 1,
            (false, LengthForm::Extended) => 3,
        };
        let le = match (self.expected.is_some(), self.form, self.data.is_empty()) {
            (false, _, _) => 0,
            (true, LengthForm::Short, _) => 1,
            (true, LengthForm::Extended, true) => 3,
            (true, LengthForm::Extended, false) => 2,
        };
        4 + lc + self.data.len() + le
    }

    /// Encodes the command into `out`, returning the number of bytes written.
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, Error> {
        let len = self.encoded_len();
        let out = out.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let mut w = Cursor { out, at: 0 };
        w.put(&[
            self.header.cla,
            self.header.ins,
            self.header.p1,
            self.header.p2,
        ]);
        let nc = self.data.len();
        if nc > 0 {
            match self.form {
                // `nc` fits by construction: <= 255 short, <= 65535 extended.
                LengthForm::Short => w.put(&[low_byte(nc)]),
                LengthForm::Extended => {
                    w.put(&[0]);
                    w.put(&two_bytes(nc));
                }
            }
            w.put(self.data);
        }
        if let Some(ne) = self.expected {
            // 256 and 65536 are written as zeros: the low bits are exactly that.
            let ne = ne as usize;
            match self.form {
                LengthForm::Short => w.put(&[low_byte(ne)]),
                LengthForm::Extended => {
                    if nc == 0 {
                        w.put(&[0]);
                    }
                    w.put(&two_bytes(ne));
                }
            }
        }
        Ok(w.at)
    }
}

/// Decodes the body after the header into (data, Ne, form).
fn parse_body(body: &[u8]) -> Result<(&[u8], Option<u32>, LengthForm), Error> {
    let Some((&b1, rest)) = body.split_first() else {
        // Case 1: no body at all.
        return Ok((&[], None, LengthForm::Short));
    };
    if b1 != 0 || rest.is_empty() {
        // Short forms. A lone byte is Le (case 2S), `00` meaning 256.
        if rest.is_empty() {
            return Ok((&[], Some(short_ne(b1)), LengthForm::Short));
        }
        let nc = usize::from(b1);
        return match rest.len().checked_sub(nc) {
            Some(0) => Ok((rest, None, LengthForm::Short)),
            Some(1) => {
                let (data, le) = rest.split_at(nc);
                let le = le.first().copied().map(short_ne);
                Ok((data, le, LengthForm::Short))
            }
            _ => Err(Error::LcMismatch),
        };
    }
    // b1 == 0 and more bytes follow: extended length.
    let ([hi, lo], rest) = split_array::<2>(rest).ok_or(Error::ExtendedTruncated)?;
    let value = u16::from_be_bytes([hi, lo]);
    if rest.is_empty() {
        // Case 2E: `00 Le Le`.
        return Ok((&[], Some(extended_ne(value)), LengthForm::Extended));
    }
    if value == 0 {
        return Err(Error::ExtendedZeroLc);
    }
    let nc = usize::from(value);
    match rest.len().checked_sub(nc) {
        Some(0) => Ok((rest, None, LengthForm::Extended)),
        Some(2) => {
            let (data, le) = rest.split_at(nc);
            let ([hi, lo], _) = split_array::<2>(le).ok_or(Error::LcMismatch)?;
            let ne = extended_ne(u16::from_be_bytes([hi, lo]));
            Ok((data, Some(ne), LengthForm::Extended))
        }
        _ => Err(Error::LcMismatch),
    }
}

fn short_ne(le: u8) -> u32 {
    if le == 0 { SHORT_NE_MAX } else { u32::from(le) }
}

fn extended_ne(le: u16) -> u32 {
    if le == 0 {
        EXTENDED_NE_MAX
    } else {
        u32::from(le)
    }
}

/// The first `N` bytes as an array, and the rest.
fn split_array<const N: usize>(bytes: &[u8]) -> Option<([u8; N], &[u8])> {
    let (head, rest) = bytes.split_at_checked(N)?;
    let head: [u8; N] = head.try_into().ok()?;
    Some((head, rest))
}

/// Low 8 bits; the callers have range-checked, and 256 must become `00`.
fn low_byte(n: usize) -> u8 {
    (n & 0xFF) as u8
}

/// Low 16 bits big-endian; 65536 must become `00 00`.
fn two_bytes(n: usize) -> [u8; 2] {
    ((n & 0xFFFF) as u16).to_be_bytes()
}

/// Appends to a slice whose length the caller has already checked.
struct Cursor<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        if let Some(dst) = self.out.get_mut(self.at..end) {
            dst.copy_from_slice(bytes);
            self.at = end;
        }
    }
}
