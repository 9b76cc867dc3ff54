//! Passcode format and policy.
//!
//! PIV sends a PIN as 8 bytes: the digits, then `FF` padding. The Series 9
//! rules add, for a *new* passcode: 6 to 8 digits, and not weak. Stored
//! passcodes of 4 or 5 digits (legacy cards) still verify.

use crate::profile::Profile;
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::slot::Passcode;

/// Length of a PIV reference-data field.
pub const FIELD: usize = 8;

/// A passcode as PIV transmits it: 8 bytes, `FF`-padded. Wiped on drop.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct Padded([u8; FIELD]);

impl Padded {
    /// Checks the PIV form of a PIN: 4 to 8 ASCII digits, then only `FF`.
    pub fn pin(field: &[u8]) -> Result<Padded> {
        let padded = Padded::raw(field)?;
        let digits = padded.len();
        let ok = (4..=FIELD).contains(&digits) && padded.value().iter().all(u8::is_ascii_digit);
        if ok { Ok(padded) } else { Err(Error::BadData) }
    }

    /// Checks the form of a PUK: 6 to 8 bytes other than `FF`, then `FF`s.
    pub fn puk(field: &[u8]) -> Result<Padded> {
        let padded = Padded::raw(field)?;
        if (6..=FIELD).contains(&padded.len()) {
            Ok(padded)
        } else {
            Err(Error::BadData)
        }
    }

    /// Checks the form of a pairing code: exactly 8 ASCII digits, no
    /// padding (SP 800-73-4 Part 2 §3.2.1).
    pub fn pairing(field: &[u8]) -> Result<Padded> {
        let bytes: [u8; FIELD] = field.try_into().map_err(|_| Error::BadData)?;
        if bytes.iter().all(u8::is_ascii_digit) {
            Ok(Padded(bytes))
        } else {
            Err(Error::BadData)
        }
    }

    /// Any 8 bytes, as a YubiKey takes a presented passcode: whatever they
    /// are, they are compared (and a mismatch spends a try).
    pub fn presented(field: &[u8]) -> Result<Padded> {
        let bytes: [u8; FIELD] = field.try_into().map_err(|_| Error::BadData)?;
        Ok(Padded(bytes))
    }

    /// The 8 bytes, with padding only at the end.
    fn raw(field: &[u8]) -> Result<Padded> {
        let bytes: [u8; FIELD] = field.try_into().map_err(|_| Error::BadData)?;
        let len = bytes.iter().position(|&b| b == 0xFF).unwrap_or(FIELD);
        let (_, padding) = bytes.split_at(len);
        if padding.iter().any(|&b| b != 0xFF) {
            return Err(Error::BadData);
        }
        Ok(Padded(bytes))
    }

    /// A passcode from its characters (for factory defaults and hosts).
    pub fn from_text(text: &[u8]) -> Result<Padded> {
        let mut bytes = [0xFFu8; FIELD];
        bytes
            .get_mut(..text.len())
            .ok_or(Error::BadData)?
            .copy_from_slice(text);
        Padded::raw(&bytes)
    }

    /// Characters before the padding.
    pub fn len(&self) -> usize {
        self.0.iter().position(|&b| b == 0xFF).unwrap_or(FIELD)
    }

    /// Whether there are no characters at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The characters.
    pub fn value(&self) -> &[u8] {
        self.0.get(..self.len()).unwrap_or_default()
    }

    /// The whole 8-byte field, as hashed.
    pub fn field(&self) -> &[u8; FIELD] {
        &self.0
    }
}

/// How a profile reads the passcodes a command presents and the new ones
/// it sets. A refusal of a presented value's form never spends a try.
///
/// | | Series 9 | YubiKey |
/// |---|---|---|
/// | presented PIN | 4–8 digits, `FF`-padded, else `6A 80` (no try) | any 8 bytes: a wrong length is a wrong try |
/// | presented PUK | 6–8 bytes, `FF`-padded, else `6A 80` (no try) | any 8 bytes, as the PIN |
/// | new PIN | 6–8 digits, not weak, else `6A 80` | 6–8 bytes, else `6A 80`; with PIN complexity, complex, else `69 85` |
/// | new PUK | 6–8 bytes, else `6A 80` | as the new PIN |
/// | order | the new value's form, then the presented value | the presented value, then the new one's form |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules(pub Profile);

impl Rules {
    /// A passcode presented to be checked against the stored one.
    pub fn presented(self, which: Passcode, field: &[u8]) -> Result<Padded> {
        match (self.0, which) {
            (Profile::Series9, Passcode::Pin) => Padded::pin(field),
            (Profile::Series9, Passcode::Puk) => Padded::puk(field),
            (_, Passcode::PairingCode) => Padded::pairing(field),
            (Profile::YubiKey { .. }, _) => Padded::presented(field),
        }
    }

    /// Whether the presented passcode is checked before the new value's
    /// form (a YubiKey's order), rather than after (a Series 9 card's).
    pub fn checks_presented_first(self) -> bool {
        matches!(self.0, Profile::YubiKey { .. })
    }

    /// A passcode to be set.
    pub fn new_value(self, which: Passcode, field: &[u8]) -> Result<Padded> {
        match (self.0, which) {
            (Profile::Series9, Passcode::Pin) => {
                let new = Padded::pin(field)?;
                if acceptable_new(new.value()) {
                    Ok(new)
                } else {
                    Err(Error::BadData)
                }
            }
            (Profile::Series9, Passcode::Puk) => Padded::puk(field),
            (_, Passcode::PairingCode) => Padded::pairing(field),
            (Profile::YubiKey { pin_complexity }, _) => {
                // The PUK's rules are the PIN's, complexity included.
                let new = Padded::puk(field)?;
                if pin_complexity && !is_complex(new.value()) {
                    Err(Error::Conditions)
                } else {
                    Ok(new)
                }
            }
        }
    }
}

/// The passcodes a YubiKey with PIN complexity refuses by name: the most
/// common PINs and passwords of six to eight characters. Yubico's own list
/// is in its technical manual; this one is ours, of the same kind.
const COMMON: [&[u8]; 24] = [
    b"123456",
    b"1234567",
    b"12345678",
    b"654321",
    b"7654321",
    b"87654321",
    b"123123",
    b"123321",
    b"112233",
    b"121212",
    b"11223344",
    b"123654",
    b"159753",
    b"147258",
    b"password",
    b"passw0rd",
    b"abc123",
    b"abcdef",
    b"abcd1234",
    b"qwerty",
    b"qwertyui",
    b"1q2w3e4r",
    b"iloveyou",
    b"letmein",
];

/// YubiKey 5.7's PIN complexity: at least two different characters, and
/// not one of the [`COMMON`] passcodes (letters compared without case).
pub fn is_complex(value: &[u8]) -> bool {
    let varied = value.windows(2).any(|w| matches!(w, [a, b] if a != b));
    varied && !COMMON.iter().any(|c| c.eq_ignore_ascii_case(value))
}

/// Whether `digits` may be set as a new passcode: 6 to 8 ASCII digits, and
/// not weak.
pub fn acceptable_new(digits: &[u8]) -> bool {
    (6..=8).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) && !is_weak(digits)
}

/// The weak-passcode rule (our addition to the NHS rules, see
/// `shared/spec/domain.md`): a passcode is weak if
///
/// 1. all its digits are equal (`111111`);
/// 2. its digits run up or down by one throughout (`123456`, `987654`,
///    also `890123`-style wrap-around is *not* a run: `9` to `0` is not +1);
/// 3. it reads as a calendar date: six digits as `DDMMYY`, or eight digits
///    as `DDMMYYYY` or `YYYYMMDD` (years 1900 to 2099), with a real day of a
///    real month, leap years included — the dates of birth registration
///    authorities fear.
///
/// `digits` must be ASCII digits; anything else is not weak by this rule
/// (the format check refuses it first).
pub fn is_weak(digits: &[u8]) -> bool {
    let Some(d) = as_numbers(digits) else {
        return false;
    };
    let all_equal = d.windows(2).all(|w| matches!(w, [a, b] if a == b));
    let ascending = d.windows(2).all(|w| matches!(w, [a, b] if *b == *a + 1));
    let descending = d.windows(2).all(|w| matches!(w, [a, b] if *a == *b + 1));
    all_equal || ascending || descending || is_date(&d)
}

fn as_numbers(digits: &[u8]) -> Option<heapless::Vec<u8, 8>> {
    let mut out = heapless::Vec::new();
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        out.push(c - b'0').ok()?;
    }
    Some(out)
}

fn number(d: &[u8]) -> u32 {
    d.iter().fold(0, |n, &x| n * 10 + u32::from(x))
}

fn is_date(d: &[u8]) -> bool {
    match d.len() {
        6 => {
            let (dd, rest) = d.split_at(2);
            let (mm, yy) = rest.split_at(2);
            // A two-digit year could be any century: take one where the day exists.
            valid_date(number(dd), number(mm), 2000 + number(yy))
                || valid_date(number(dd), number(mm), 1900 + number(yy))
        }
        8 => {
            let (dd, rest) = d.split_at(2);
            let (mm, yyyy) = rest.split_at(2);
            let dmy = valid_date(number(dd), number(mm), number(yyyy));
            let (yyyy, rest) = d.split_at(4);
            let (mm, dd) = rest.split_at(2);
            let ymd = valid_date(number(dd), number(mm), number(yyyy));
            dmy || ymd
        }
        _ => false,
    }
}

fn valid_date(day: u32, month: u32, year: u32) -> bool {
    if !(1900..=2099).contains(&year) || day == 0 {
        return false;
    }
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    day <= days
}
