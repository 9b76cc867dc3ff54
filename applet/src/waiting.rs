//! How long a command may keep a card chip busy, in the contact
//! interface's block waiting times (BWT, about 1.5 s at the ATR's BWI on a
//! 3.57 MHz clock): the card asks the reader for that much time (T=1's
//! S(WTX)) before it starts, rather than fall silent and be taken for dead.
//!
//! The figures are for a chip with no RSA coprocessor, from the firmware's
//! instruction counts (`firmware/budget.txt`: an RSA-2048 signature is
//! about 70 M instructions, 2-3 s at 30 MHz) and RSA's cost growing with the
//! cube of the modulus. Key generation has no bound worth stating (prime
//! search is a random walk), so it asks for the most T=1 can grant.
//! Elliptic-curve work answers within one BWT and asks for nothing.

use apdu::Header;
use apdu::tlv::{Reader, Tlv};

use crate::algorithm::Algorithm;
use crate::ins::*;

/// The most a card can ask for at once (the WTX byte's range).
const MOST: u8 = u8::MAX;

/// Block waiting times for a private-key operation of `algorithm`.
fn private_operation(algorithm: Algorithm) -> u8 {
    match algorithm.rsa_bits() {
        Some(..=1024) => 1,
        Some(..=2048) => 4,
        Some(..=3072) => 12,
        Some(_) => 32,
        None => 0,
    }
}

/// Block waiting times `header` and `data` (one APDU's) may take.
pub fn of(header: &Header, data: &[u8]) -> u8 {
    match header.ins {
        // The management key's challenge-response is symmetric.
        INS_GENERAL_AUTHENTICATE if header.p2 == KEY_REF_ADMIN => 0,
        INS_GENERAL_AUTHENTICATE => Algorithm::from_byte(header.p1).map_or(0, private_operation),
        INS_GENERATE | INS_STAGE_KEY => match generated(data) {
            Some(algorithm) if algorithm.rsa_bits().is_some() => MOST,
            _ => 0,
        },
        // The attestation key may be RSA; the applet cannot tell without
        // reading it, and asking costs one exchange.
        INS_ATTEST => private_operation(Algorithm::Rsa2048),
        _ => 0,
    }
}

/// The algorithm a GENERATE template (`AC { 80 alg … }`) names.
fn generated(data: &[u8]) -> Option<Algorithm> {
    let (template, _) = Tlv::parse(data).ok()?;
    Reader::new(template.value)
        .filter_map(Result::ok)
        .find(|tlv| tlv.tag.value() == 0x80)
        .and_then(|tlv| match tlv.value {
            [b] => Algorithm::from_byte(*b),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use apdu::Command;

    fn waits(apdu: &[u8]) -> u8 {
        let command = Command::parse(apdu).unwrap();
        of(&command.header(), command.data())
    }

    #[test]
    fn rsa_work_asks_for_time_and_elliptic_curves_do_not() {
        // GENERATE 9A: RSA-2048, then P-256.
        assert_eq!(
            waits(&[0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x07]),
            255
        );
        assert_eq!(
            waits(&[0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11]),
            0
        );
        // GENERAL AUTHENTICATE with RSA-2048, RSA-4096, P-256, the
        // management key (3DES, P1 03).
        let ga = |p1: u8, p2: u8| [0x00, 0x87, p1, p2, 0x04, 0x7C, 0x02, 0x81, 0x00];
        assert_eq!(waits(&ga(0x07, 0x9C)), 4);
        assert_eq!(waits(&ga(0x16, 0x9C)), 32);
        assert_eq!(waits(&ga(0x11, 0x9C)), 0);
        assert_eq!(waits(&ga(0x03, 0x9B)), 0);
        // VERIFY, and a GENERATE whose data is no template.
        assert_eq!(waits(&[0x00, 0x20, 0x00, 0x80, 0x00]), 0);
        assert_eq!(waits(&[0x00, 0x47, 0x00, 0x9A, 0x01, 0xAC]), 0);
    }
}
