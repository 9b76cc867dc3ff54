//! Card-verifiable certificates as SP 800-73-4 Part 2 §4.1.5 profiles
//! them (Table 15): what the card reads of the CVC its issuer gave its
//! secure messaging key. The card does not check the CVC's signature (the
//! client does, against the Secure Messaging Certificate Signer); it
//! checks that the certificate is for its own key.
//!
//! ```text
//! 7F21 {
//!   5F29 01 80                 certificate profile identifier
//!   42 08 …                    issuer identification number
//!   5F20 …                     subject identifier (the card's GUID)
//!   7F49 { 06 curve, 86 Q }    the public key
//!   5F4C 01 00                 role: the card's SM key
//!   5F37 { 30 { 30 { 06 alg }, 03 signature } }
//! }
//! ```

use apdu::tlv::{Reader, Tag, Tlv};

use crate::error::{Error, Result};

const CVC: Tag = Tag::constant(0x7F21);
const PUBLIC_KEY: Tag = Tag::constant(0x7F49);
const POINT: Tag = Tag::constant(0x86);

/// The public point a CVC certifies. A certificate that is not one
/// well-formed `7F21` with a `7F49 { … 86 … }` is [`Error::BadData`].
pub fn public_key(cvc: &[u8]) -> Result<&[u8]> {
    let (outer, rest) = Tlv::parse(cvc)?;
    if outer.tag != CVC || !rest.is_empty() {
        return Err(Error::BadData);
    }
    let key = Reader::new(outer.value)
        .find(PUBLIC_KEY)?
        .ok_or(Error::BadData)?;
    Reader::new(key).find(POINT)?.ok_or(Error::BadData)
}
