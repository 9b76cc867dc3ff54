//! X.509 certificates the card makes itself: the attestation of a slot's key
//! (Yubico's ATTEST) and the self-signed certificate of the attestation key.
//!
//! The `x509-cert` crate needs an allocator, which the card has not, so the
//! DER is written by hand with the codec's TLV writer, which always uses the
//! shortest length form, as DER requires. The host side parses what comes
//! out with `x509-cert` in its tests.

use apdu::tlv::{Tag, Writer};
use p256::SecretKey;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::keys;

const SEQUENCE: Tag = Tag::constant(0x30);
const SET: Tag = Tag::constant(0x31);
const INTEGER: Tag = Tag::constant(0x02);
const BIT_STRING: Tag = Tag::constant(0x03);
const OCTET_STRING: Tag = Tag::constant(0x04);
const OID: Tag = Tag::constant(0x06);
const UTF8_STRING: Tag = Tag::constant(0x0C);
const UTC_TIME: Tag = Tag::constant(0x17);
const GENERALIZED_TIME: Tag = Tag::constant(0x18);
const EXPLICIT_0: Tag = Tag::constant(0xA0);
const EXPLICIT_3: Tag = Tag::constant(0xA3);

/// 1.2.840.10045.4.3.2
const ECDSA_WITH_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
/// 1.2.840.10045.2.1
const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// 1.2.840.10045.3.1.7
const PRIME256V1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// 2.5.4.3
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// Yubico's attestation extensions, 1.3.6.1.4.1.41482.3.{3,7,8}: firmware
/// version, serial, PIN and touch policy. Tools read these to tell what kind
/// of key they are looking at.
const YUBICO_VERSION: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0xC4, 0x0A, 0x03, 0x03];
const YUBICO_SERIAL: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0xC4, 0x0A, 0x03, 0x07];
const YUBICO_POLICY: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0xC4, 0x0A, 0x03, 0x08];

/// What the certificate says about the key it certifies.
pub struct Subject<'a> {
    /// The subject's common name.
    pub name: &'a [u8],
    /// The key certified, an uncompressed P-256 point.
    pub public: &'a [u8; keys::POINT],
    /// Firmware version, serial and (PIN, touch) policy, for an attestation.
    pub attested: Option<([u8; 3], u32, [u8; 2])>,
}

/// Writes a certificate for `subject`, issued by `issuer` and signed with
/// `signer`, into `out`. `serial` is the certificate serial number.
pub fn certificate(
    out: &mut Writer<'_>,
    subject: &Subject<'_>,
    issuer: &[u8],
    signer: &SecretKey,
    mut serial: [u8; 16],
) -> Result<()> {
    // A positive INTEGER with no superfluous leading byte.
    if let Some(first) = serial.first_mut() {
        *first = (*first & 0x7F) | 0x40;
    }
    out.nested(SEQUENCE, |w| {
        let tbs_start = w.len();
        w.nested(SEQUENCE, |w| {
            w.nested(EXPLICIT_0, |w| w.tlv(INTEGER, &[2]))?;
            w.tlv(INTEGER, &serial)?;
            w.nested(SEQUENCE, |w| w.tlv(OID, ECDSA_WITH_SHA256))?;
            name(w, issuer)?;
            w.nested(SEQUENCE, |w| {
                w.tlv(UTC_TIME, b"240101000000Z")?;
                // RFC 5280: no well-defined expiration date.
                w.tlv(GENERALIZED_TIME, b"99991231235959Z")
            })?;
            name(w, subject.name)?;
            w.nested(SEQUENCE, |w| {
                w.nested(SEQUENCE, |w| {
                    w.tlv(OID, EC_PUBLIC_KEY)?;
                    w.tlv(OID, PRIME256V1)
                })?;
                w.header(BIT_STRING, 1 + subject.public.len())?;
                w.raw(&[0])?;
                w.raw(subject.public)
            })?;
            if let Some((version, card_serial, policy)) = subject.attested {
                w.nested(EXPLICIT_3, |w| {
                    w.nested(SEQUENCE, |w| {
                        extension(w, YUBICO_VERSION, |w| w.raw(&version))?;
                        extension(w, YUBICO_SERIAL, |w| integer(w, card_serial))?;
                        extension(w, YUBICO_POLICY, |w| w.raw(&policy))
                    })
                })?;
            }
            Ok(())
        })?;
        let tbs = w.written().get(tbs_start..).unwrap_or_default();
        let digest = Sha256::digest(tbs);
        let mut sig = [0u8; 80];
        let sig = keys::sign(signer, &digest, &mut sig).map_err(|_| apdu::Error::BufferTooSmall)?;
        w.nested(SEQUENCE, |w| w.tlv(OID, ECDSA_WITH_SHA256))?;
        w.header(BIT_STRING, 1 + sig.len())?;
        w.raw(&[0])?;
        w.raw(sig)
    })
    .map_err(Error::from)
}

/// A Name with one common name.
fn name(w: &mut Writer<'_>, cn: &[u8]) -> core::result::Result<(), apdu::Error> {
    w.nested(SEQUENCE, |w| {
        w.nested(SET, |w| {
            w.nested(SEQUENCE, |w| {
                w.tlv(OID, COMMON_NAME)?;
                w.tlv(UTF8_STRING, cn)
            })
        })
    })
}

/// An extension whose value (inside the OCTET STRING) `value` writes.
fn extension<F>(w: &mut Writer<'_>, oid: &[u8], value: F) -> core::result::Result<(), apdu::Error>
where
    F: FnOnce(&mut Writer<'_>) -> core::result::Result<(), apdu::Error>,
{
    w.nested(SEQUENCE, |w| {
        w.tlv(OID, oid)?;
        w.nested(OCTET_STRING, value)
    })
}

/// A non-negative INTEGER in DER.
fn integer(w: &mut Writer<'_>, n: u32) -> core::result::Result<(), apdu::Error> {
    let be = n.to_be_bytes();
    let skip = be.iter().take(3).take_while(|&&b| b == 0).count();
    let digits = be.get(skip..).unwrap_or_default();
    let pad = digits.first().is_some_and(|&b| b & 0x80 != 0);
    w.header(INTEGER, digits.len() + usize::from(pad))?;
    if pad {
        w.raw(&[0])?;
    }
    w.raw(digits)
}
