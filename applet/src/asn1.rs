//! The DER the card writes and reads itself: its X.509 certificates
//! ([`crate::attest`]) and its ECDSA signatures, on the card's own BER-TLV
//! codec.
//!
//! DER is BER with one encoding for each value: the shortest length
//! fields, which `apdu`'s writer always uses, and the rules below for
//! INTEGER and BIT STRING (X.690 §8.3, §8.6, §11). A typed DER library
//! would cost the card a tenth of its flash for the dozen structures it
//! needs; the host's tests read what comes out with `x509-cert`, and
//! OpenSSL checks the certificates end to end.

use apdu::tlv::{Reader, Tag, Tlv, Writer};

use crate::error::{Error, Result};

/// X.690's universal tags, and the context tags X.509 uses.
pub const BOOLEAN: Tag = Tag::constant(0x01);
/// INTEGER.
pub const INTEGER: Tag = Tag::constant(0x02);
/// BIT STRING.
pub const BIT_STRING: Tag = Tag::constant(0x03);
/// OCTET STRING.
pub const OCTET_STRING: Tag = Tag::constant(0x04);
/// NULL.
pub const NULL: Tag = Tag::constant(0x05);
/// OBJECT IDENTIFIER.
pub const OID: Tag = Tag::constant(0x06);
/// UTF8String.
pub const UTF8_STRING: Tag = Tag::constant(0x0C);
/// UTCTime.
pub const UTC_TIME: Tag = Tag::constant(0x17);
/// GeneralizedTime.
pub const GENERALIZED_TIME: Tag = Tag::constant(0x18);
/// SEQUENCE (OF).
pub const SEQUENCE: Tag = Tag::constant(0x30);
/// SET (OF).
pub const SET: Tag = Tag::constant(0x31);
/// `[0]`, constructed: a certificate's explicit version.
pub const VERSION: Tag = Tag::constant(0xA0);
/// `[3]`, constructed: a certificate's extensions.
pub const EXTENSIONS: Tag = Tag::constant(0xA3);

/// What writing a value gives: the writer's own result, so that values
/// nest inside [`Writer::nested`].
pub type Encoded = core::result::Result<(), apdu::Error>;

/// A big-endian magnitude without its leading zero bytes.
pub fn magnitude(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

/// A non-negative INTEGER from its big-endian magnitude: no leading zero
/// byte but the one a set top bit needs (§8.3.2), and zero as one byte.
pub fn unsigned(w: &mut Writer<'_>, bytes: &[u8]) -> Encoded {
    let m = magnitude(bytes);
    let sign = m.first().is_none_or(|&b| b & 0x80 != 0);
    w.header(INTEGER, m.len() + usize::from(sign))?;
    if sign {
        w.raw(&[0])?;
    }
    w.raw(m)
}

/// How many bytes [`unsigned`] writes for `bytes`: a value's length is
/// known before it is written, so a signature needs no room to spare.
fn unsigned_len(bytes: &[u8]) -> usize {
    let m = magnitude(bytes);
    let content = m.len() + usize::from(m.first().is_none_or(|&b| b & 0x80 != 0));
    let length_field = match content {
        0..=0x7F => 1,
        0x80..=0xFF => 2,
        _ => 3,
    };
    1 + length_field + content
}

/// A BIT STRING of whole bytes: no unused bits (§8.6.2).
pub fn bits(w: &mut Writer<'_>, bytes: &[u8]) -> Encoded {
    w.nested(BIT_STRING, |w| {
        w.raw(&[0])?;
        w.raw(bytes)
    })
}

/// An ECDSA signature as X9.62's `SEQUENCE { r INTEGER, s INTEGER }`,
/// from `r || s` (two halves of equal length), into `out`, which need be
/// no longer than the signature.
pub fn ecdsa_signature<'o>(raw: &[u8], out: &'o mut [u8]) -> Result<&'o [u8]> {
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut w = Writer::new(out);
    w.header(SEQUENCE, unsigned_len(r) + unsigned_len(s))?;
    unsigned(&mut w, r)?;
    unsigned(&mut w, s)?;
    let len = w.len();
    out.get(..len).ok_or(Error::NoSpace)
}

/// The one TLV `bytes` hold, with `tag`; anything after it, or another
/// tag, is no such value.
pub fn only(bytes: &[u8], tag: Tag) -> Result<Tlv<'_>> {
    match Tlv::parse(bytes) {
        Ok((tlv, [])) if tlv.tag == tag => Ok(tlv),
        _ => Err(Error::BadData),
    }
}

/// The next TLV of a constructed value's contents, which must have `tag`.
pub fn next<'a>(fields: &mut Reader<'a>, tag: Tag) -> Result<Tlv<'a>> {
    match fields.next() {
        Some(Ok(tlv)) if tlv.tag == tag => Ok(tlv),
        _ => Err(Error::BadData),
    }
}

/// A BIT STRING's bytes, if it has no unused bits.
pub fn whole_bytes<'a>(bits: &Tlv<'a>) -> Result<&'a [u8]> {
    match bits.value.split_first() {
        Some((0, bytes)) => Ok(bytes),
        _ => Err(Error::BadData),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::{vec, vec::Vec};

    fn integer(bytes: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 16];
        let mut w = Writer::new(&mut buf);
        unsigned(&mut w, bytes).unwrap();
        w.written().to_vec()
    }

    #[test]
    fn integers_take_their_one_der_form() {
        assert_eq!(integer(&[0, 0, 0x7F]), [0x02, 0x01, 0x7F]);
        assert_eq!(integer(&[0, 0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(&[0, 0]), [0x02, 0x01, 0x00]);
        assert_eq!(integer(&[]), [0x02, 0x01, 0x00]);
        assert_eq!(integer(&[1, 0, 1]), [0x02, 0x03, 0x01, 0x00, 0x01]);
    }

    #[test]
    fn an_ecdsa_signature_is_a_sequence_of_two_integers() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80;
        raw[63] = 0x05;
        let mut out = [0u8; 80];
        let der = ecdsa_signature(&raw, &mut out).unwrap();
        let mut expected = vec![0x30, 0x26, 0x02, 0x21, 0x00, 0x80];
        expected.extend([0; 31]);
        expected.extend([0x02, 0x01, 0x05]);
        assert_eq!(der, expected.as_slice());
        assert_eq!(ecdsa_signature(&raw, &mut [0u8; 10]), Err(Error::NoSpace));
        // The longest P-384 signature fits its 104 bytes exactly.
        let raw = [0x80; 96];
        let mut out = [0u8; 104];
        assert_eq!(ecdsa_signature(&raw, &mut out).map(<[u8]>::len), Ok(104));
        for n in [0usize, 1, 5, 200] {
            let bytes = vec![0xFF; n];
            let mut buf = [0u8; 260];
            let mut w = Writer::new(&mut buf);
            unsigned(&mut w, &bytes).unwrap();
            assert_eq!(w.len(), unsigned_len(&bytes), "{n}");
        }
    }
}
