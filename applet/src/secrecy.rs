//! The applet's verdict on what an exchange carries that must not leave
//! the card: the only place that knows, so traces and corpora outside the
//! card obey it instead of guessing from headers.
//!
//! | command | command data | response data |
//! |---|---|---|
//! | any command under secure messaging (class `0C`) | public (cryptogram) | public (cryptogram) |
//! | GENERAL AUTHENTICATE `04` (key establishment) | public (ephemeral key) | public (nonce, cryptogram, CVC) |
//! | VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER | secret (PIN, PUK) | – |
//! | GENERAL AUTHENTICATE `9B` | secret (cryptograms) | secret (cryptograms) |
//! | GENERAL AUTHENTICATE with `85` (ECDH, X25519) | public point | secret (shared secret) |
//! | GENERAL AUTHENTICATE with an RSA key | public | secret (a decryption looks like a signature) |
//! | GET DATA of a PIN-protected object | – | secret |
//! | PUT DATA of a PIN-protected object | secret | – |
//! | IMPORT ASYMMETRIC KEY, SET MANAGEMENT KEY | secret (key) | – |
//! | an instruction this applet does not know | secret | secret |
//! | everything else | public | public |
//!
//! The PIN-protected objects are the biometrics and the printed
//! information `5FC109`, where yubico-piv-tool and ykman keep a
//! PIN-protected management key. Data too short to tell (the first part of
//! a chain, a malformed template) is judged the secret way.

use apdu::Header;
use apdu::tlv::{Reader, Tlv};
use card_os::Secrecy;

use crate::algorithm::Algorithm;
use crate::ins::*;
use crate::objects;

/// What of a command and its answer is secret. `data` may be a prefix (the
/// parts of a chain received so far).
pub fn of(header: &Header, data: &[u8]) -> Secrecy {
    // What travels under secure messaging is enciphered and MACed under
    // keys that live only in this session: the bytes on the wire are safe
    // to show, the plaintext never leaves the card's buffer.
    if crate::commands::protected::is_protected(header.cla) {
        return Secrecy::PUBLIC;
    }
    match header.ins {
        INS_GENERAL_AUTHENTICATE if header.p2 == crate::sm::ESTABLISH_P2 => Secrecy::PUBLIC,
        INS_VERIFY | INS_CHANGE_REFERENCE | INS_RESET_RETRY => Secrecy::COMMAND,
        INS_IMPORT_KEY | INS_SET_MANAGEMENT_KEY => Secrecy::COMMAND,
        INS_GENERAL_AUTHENTICATE if header.p2 == KEY_REF_ADMIN => Secrecy::SECRET,
        INS_GENERAL_AUTHENTICATE if agrees_key(data) != Some(false) => Secrecy::RESPONSE,
        INS_GENERAL_AUTHENTICATE if Algorithm::from_byte(header.p1).is_some_and(is_rsa) => {
            Secrecy::RESPONSE
        }
        INS_GET_DATA if protected(data) != Some(false) => Secrecy::RESPONSE,
        INS_PUT_DATA if protected(data) != Some(false) => Secrecy::COMMAND,
        INS_GENERAL_AUTHENTICATE
        | INS_GET_DATA
        | INS_PUT_DATA
        | INS_GENERATE
        | INS_STAGE_KEY
        | INS_COMMIT_RENEWAL
        | INS_ABORT_RENEWAL
        | INS_MOVE_KEY
        | INS_GET_METADATA
        | INS_GET_SERIAL
        | INS_GET_VERSION
        | INS_ATTEST
        | INS_SET_PIN_RETRIES
        | INS_RESET
        | INS_CARD_INFO
        | INS_SET_SERIAL => Secrecy::PUBLIC,
        _ => Secrecy::SECRET,
    }
}

fn is_rsa(algorithm: Algorithm) -> bool {
    algorithm.rsa_bits().is_some()
}

/// Whether a `7C` template asks for a key agreement (`85`); `None` if the
/// data is not a whole template.
fn agrees_key(data: &[u8]) -> Option<bool> {
    let (template, _) = Tlv::parse(data).ok()?;
    let mut agreement = false;
    for tlv in Reader::new(template.value) {
        agreement |= tlv.ok()?.tag.value() == 0x85;
    }
    Some(agreement)
}

/// Whether the object a GET DATA or PUT DATA names is PIN-protected;
/// `None` if the data does not start with a whole `5C` tag list.
fn protected(data: &[u8]) -> Option<bool> {
    let (list, _) = Tlv::parse(data).ok()?;
    if list.tag.value() != 0x5C {
        return None;
    }
    let tag = objects::requested_tag(list.value).ok()?;
    Some(objects::needs_pin(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(apdu_header: [u8; 4], data: &[u8]) -> Secrecy {
        let [cla, ins, p1, p2] = apdu_header;
        of(&Header::new(cla, ins, p1, p2), data)
    }

    #[test]
    fn key_agreement_answers_a_secret() {
        let mut ecdh = [0u8; 71];
        ecdh[..7].copy_from_slice(&[0x7C, 0x45, 0x82, 0x00, 0x85, 0x41, 0x04]);
        assert_eq!(verdict([0, 0x87, 0x11, 0x9D], &ecdh), Secrecy::RESPONSE);
        let sign = [0x7C, 0x06, 0x82, 0x00, 0x81, 0x02, 0xAA, 0xBB];
        assert_eq!(verdict([0, 0x87, 0x11, 0x9A], &sign), Secrecy::PUBLIC);
        // A template cut short cannot be judged public.
        assert_eq!(
            verdict([0x10, 0x87, 0x11, 0x9D], &ecdh[..20]),
            Secrecy::RESPONSE
        );
    }

    #[test]
    fn an_rsa_private_operation_answers_a_secret() {
        // Signing and decrypting are the same command for RSA.
        let block = [0x7C, 0x06, 0x82, 0x00, 0x81, 0x02, 0xAA, 0xBB];
        for alg in [0x06, 0x07, 0x05, 0x16] {
            assert_eq!(verdict([0, 0x87, alg, 0x9D], &block), Secrecy::RESPONSE);
        }
        assert_eq!(verdict([0, 0x87, 0xE0, 0x9A], &block), Secrecy::PUBLIC);
        let x25519 = [0x7C, 0x06, 0x82, 0x00, 0x85, 0x02, 0xAA, 0xBB];
        assert_eq!(verdict([0, 0x87, 0xE1, 0x9D], &x25519), Secrecy::RESPONSE);
    }

    #[test]
    fn pin_protected_objects_are_secret_both_ways() {
        let printed = [0x5C, 0x03, 0x5F, 0xC1, 0x09];
        assert_eq!(verdict([0, 0xCB, 0x3F, 0xFF], &printed), Secrecy::RESPONSE);
        let put = [
            0x5C, 0x03, 0x5F, 0xC1, 0x09, 0x53, 0x04, 0x88, 0x02, 0x89, 0x00,
        ];
        assert_eq!(verdict([0, 0xDB, 0x3F, 0xFF], &put), Secrecy::COMMAND);
        assert_eq!(
            verdict([0x10, 0xDB, 0x3F, 0xFF], &put[..3]),
            Secrecy::COMMAND
        );
        let chuid = [0x5C, 0x03, 0x5F, 0xC1, 0x02];
        assert_eq!(verdict([0, 0xCB, 0x3F, 0xFF], &chuid), Secrecy::PUBLIC);
    }

    #[test]
    fn unknown_instructions_are_secret() {
        assert_eq!(verdict([0, 0x42, 0, 0], &[1, 2, 3]), Secrecy::SECRET);
        assert_eq!(verdict([0, 0x87, 0x03, 0x9B], &[]), Secrecy::SECRET);
        assert_eq!(verdict([0, 0xFE, 0x11, 0x9A], &[]), Secrecy::COMMAND);
    }
}
