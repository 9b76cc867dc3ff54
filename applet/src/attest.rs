//! X.509 certificates the card makes itself: the attestation of a slot's key
//! (Yubico's ATTEST) and the self-signed certificate of the attestation key.
//!
//! The `x509-cert` crate needs an allocator, which the card has not, so the
//! DER is written by hand with the codec's TLV writer, which always uses the
//! shortest length form, as DER requires. The host side parses what comes
//! out with `x509-cert` in its tests.

use apdu::tlv::{Tag, Writer};
use sha2::{Digest, Sha256};

use crate::algorithm::{Algorithm, RSA_EXPONENT};
use crate::crypto::{MAX_OUTPUT, Private};
use crate::error::{Error, Result};

const SEQUENCE: Tag = Tag::constant(0x30);
const SET: Tag = Tag::constant(0x31);
const INTEGER: Tag = Tag::constant(0x02);
const BIT_STRING: Tag = Tag::constant(0x03);
const OCTET_STRING: Tag = Tag::constant(0x04);
const OID: Tag = Tag::constant(0x06);
const NULL: Tag = Tag::constant(0x05);
const BOOLEAN: Tag = Tag::constant(0x01);
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
/// 1.3.132.0.34
const SECP384R1: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
/// 1.2.840.113549.1.1.1
const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
/// 1.3.101.112 (RFC 8410)
const ED25519: &[u8] = &[0x2B, 0x65, 0x70];
/// 1.3.101.110 (RFC 8410)
const X25519: &[u8] = &[0x2B, 0x65, 0x6E];
/// 2.5.29.19 and 2.5.29.15: the attestation root is a CA that signs
/// certificates, so that `openssl verify` accepts it as an issuer.
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1D, 0x13];
const KEY_USAGE: &[u8] = &[0x55, 0x1D, 0x0F];
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
    /// The algorithm of the key certified.
    pub algorithm: Algorithm,
    /// The key certified, as a key record keeps it.
    pub public: &'a [u8],
    /// Firmware version, serial and (PIN, touch) policy, for an attestation;
    /// `None` for the attestation key's own certificate, a CA's.
    pub attested: Option<([u8; 3], u32, [u8; 2])>,
}

/// Writes a certificate for `subject`, issued by `issuer` and signed with
/// `signer`, into `out`. `serial` is the certificate serial number. The
/// signer must be a P-256 key (the card's attestation key is one).
pub fn certificate(
    out: &mut Writer<'_>,
    subject: &Subject<'_>,
    issuer: &[u8],
    signer: &Private,
    mut serial: [u8; 16],
) -> Result<()> {
    if signer.algorithm() != Algorithm::P256 {
        return Err(Error::Conditions);
    }
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
            public_key_info(w, subject.algorithm, subject.public)?;
            w.nested(EXPLICIT_3, |w| {
                w.nested(SEQUENCE, |w| match subject.attested {
                    Some((version, card_serial, policy)) => {
                        extension(w, YUBICO_VERSION, false, |w| w.raw(&version))?;
                        extension(w, YUBICO_SERIAL, false, |w| integer(w, card_serial))?;
                        extension(w, YUBICO_POLICY, false, |w| w.raw(&policy))
                    }
                    None => {
                        extension(w, BASIC_CONSTRAINTS, true, |w| {
                            w.nested(SEQUENCE, |w| w.tlv(BOOLEAN, &[0xFF]))
                        })?;
                        // keyCertSign and cRLSign (bits 5 and 6).
                        extension(w, KEY_USAGE, true, |w| w.tlv(BIT_STRING, &[0x01, 0x06]))
                    }
                })
            })
        })?;
        let tbs = w.written().get(tbs_start..).unwrap_or_default();
        let digest = Sha256::digest(tbs);
        let mut sig = [0u8; MAX_OUTPUT];
        let sig = signer
            .sign(&digest, &mut sig)
            .map_err(|_| apdu::Error::BufferTooSmall)?;
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

/// The SubjectPublicKeyInfo of a key as a key record keeps it (RFC 5280,
/// 3279 for RSA and EC, 8410 for the 25519 keys).
fn public_key_info(
    w: &mut Writer<'_>,
    algorithm: Algorithm,
    public: &[u8],
) -> core::result::Result<(), apdu::Error> {
    w.nested(SEQUENCE, |w| {
        w.nested(SEQUENCE, |w| match algorithm {
            Algorithm::P256 | Algorithm::P384 => {
                w.tlv(OID, EC_PUBLIC_KEY)?;
                let curve = if algorithm == Algorithm::P256 {
                    PRIME256V1
                } else {
                    SECP384R1
                };
                w.tlv(OID, curve)
            }
            Algorithm::Ed25519 => w.tlv(OID, ED25519),
            Algorithm::X25519 => w.tlv(OID, X25519),
            _ => {
                w.tlv(OID, RSA_ENCRYPTION)?;
                w.tlv(NULL, &[])
            }
        })?;
        w.nested(BIT_STRING, |w| {
            w.raw(&[0])?;
            if algorithm.rsa_bits().is_none() {
                return w.raw(public);
            }
            // RSAPublicKey ::= SEQUENCE { modulus, publicExponent }
            w.nested(SEQUENCE, |w| {
                unsigned(w, public)?;
                unsigned(w, &RSA_EXPONENT.to_be_bytes())
            })
        })
    })
}

/// An extension whose value (inside the OCTET STRING) `value` writes.
fn extension<F>(
    w: &mut Writer<'_>,
    oid: &[u8],
    critical: bool,
    value: F,
) -> core::result::Result<(), apdu::Error>
where
    F: FnOnce(&mut Writer<'_>) -> core::result::Result<(), apdu::Error>,
{
    w.nested(SEQUENCE, |w| {
        w.tlv(OID, oid)?;
        if critical {
            w.tlv(BOOLEAN, &[0xFF])?;
        }
        w.nested(OCTET_STRING, value)
    })
}

/// A non-negative INTEGER in DER.
fn integer(w: &mut Writer<'_>, n: u32) -> core::result::Result<(), apdu::Error> {
    unsigned(w, &n.to_be_bytes())
}

/// A non-negative INTEGER in DER from big-endian bytes: no superfluous
/// leading zeros, one zero where the top bit is set.
fn unsigned(w: &mut Writer<'_>, be: &[u8]) -> core::result::Result<(), apdu::Error> {
    let skip = be
        .iter()
        .take(be.len().saturating_sub(1))
        .take_while(|&&b| b == 0)
        .count();
    let digits = be.get(skip..).unwrap_or_default();
    let pad = digits.first().is_some_and(|&b| b & 0x80 != 0);
    w.header(INTEGER, digits.len() + usize::from(pad))?;
    if pad {
        w.raw(&[0])?;
    }
    w.raw(digits)
}
