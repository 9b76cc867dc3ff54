//! X.509 certificates the card makes itself: the attestation of a slot's key
//! (Yubico's ATTEST) and the self-signed CA certificate of the attestation
//! key.
//!
//! Written in DER on the card's BER-TLV writer ([`crate::asn1`]) straight
//! into the response buffer: the to-be-signed part is hashed where it lies,
//! so no copy of the certificate is ever on the stack. `x509-cert` parses
//! what comes out in the host's tests.

use apdu::tlv::Writer;
use const_oid::ObjectIdentifier;
use sha2::{Digest, Sha256};

use crate::algorithm::{Algorithm, RSA_EXPONENT};
use crate::asn1::{self, Encoded};
use crate::crypto::{MAX_OUTPUT, Private};
use crate::error::{Error, Result};

// The attestation root is a CA that signs certificates (basic constraints,
// key usage), so that `openssl verify` accepts it as an issuer.
use const_oid::db::rfc4519::CN;
use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ID_CE_BASIC_CONSTRAINTS, ID_CE_KEY_USAGE, ID_EC_PUBLIC_KEY, RSA_ENCRYPTION,
    SECP_256_R_1, SECP_384_R_1,
};
use const_oid::db::rfc8410::{ID_ED_25519, ID_X_25519};
/// Yubico's attestation extensions, 1.3.6.1.4.1.41482.3.{3,7,8}: firmware
/// version, serial, PIN and touch policy. Tools read these to tell what kind
/// of key they are looking at.
const YUBICO_VERSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
const YUBICO_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
const YUBICO_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");

/// Valid from the start of 2024 (UTCTime), with no well-defined expiration
/// date (RFC 5280 §4.1.2.5: GeneralizedTime 99991231235959Z).
const NOT_BEFORE: &[u8] = b"240101000000Z";
const NOT_AFTER: &[u8] = b"99991231235959Z";

/// basicConstraints `{ cA TRUE }` and keyUsage keyCertSign, cRLSign: the
/// attestation root's extensions' values.
const CA: &[u8] = &[0x30, 0x03, 0x01, 0x01, 0xFF];
const CERTIFICATE_SIGNING: &[u8] = &[0x03, 0x02, 0x01, 0x06];

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

/// An OBJECT IDENTIFIER.
fn oid(w: &mut Writer<'_>, oid: &ObjectIdentifier) -> Encoded {
    w.tlv(asn1::OID, oid.as_bytes())
}

/// An AlgorithmIdentifier: the algorithm, and its parameters if any (a TLV
/// written whole).
fn algorithm_identifier(
    w: &mut Writer<'_>,
    algorithm: &ObjectIdentifier,
    parameters: Option<&dyn Fn(&mut Writer<'_>) -> Encoded>,
) -> Encoded {
    w.nested(asn1::SEQUENCE, |w| {
        oid(w, algorithm)?;
        parameters.map_or(Ok(()), |p| p(w))
    })
}

/// A Name with one common name: SEQUENCE OF SET OF one attribute.
fn name(w: &mut Writer<'_>, cn: &str) -> Encoded {
    w.nested(asn1::SEQUENCE, |w| {
        w.nested(asn1::SET, |w| {
            w.nested(asn1::SEQUENCE, |w| {
                oid(w, &CN)?;
                w.tlv(asn1::UTF8_STRING, cn.as_bytes())
            })
        })
    })
}

/// An Extension; DER leaves `critical` out when it is FALSE, its default.
fn extension(w: &mut Writer<'_>, id: &ObjectIdentifier, critical: bool, value: &[u8]) -> Encoded {
    w.nested(asn1::SEQUENCE, |w| {
        oid(w, id)?;
        if critical {
            w.tlv(asn1::BOOLEAN, &[0xFF])?;
        }
        w.tlv(asn1::OCTET_STRING, value)
    })
}

/// Writes a certificate for `subject`, issued by `issuer` and signed with
/// `signer` (whose record holds `signer_public`), into `out`, with a serial
/// number drawn from `rng`. The signer must be a P-256 key (the card's
/// attestation key is one).
pub fn certificate(
    out: &mut Writer<'_>,
    subject: &Subject<'_>,
    issuer: &[u8],
    signer: &Private,
    signer_public: &[u8],
    rng: &mut dyn rand_core::CryptoRng,
) -> Result<()> {
    if signer.algorithm() != Algorithm::P256 {
        return Err(Error::Conditions);
    }
    // Names are UTF8Strings.
    let issuer = core::str::from_utf8(issuer).map_err(|_| Error::BadData)?;
    let subject_name = core::str::from_utf8(subject.name).map_err(|_| Error::BadData)?;
    let mut serial = [0u8; 16];
    rng.fill_bytes(&mut serial);
    // A positive INTEGER with no superfluous leading byte.
    if let Some(first) = serial.first_mut() {
        *first = (*first & 0x7F) | 0x40;
    }
    let mut signed = Ok(());
    out.nested(asn1::SEQUENCE, |w| {
        let start = w.len();
        tbs_certificate(w, subject, subject_name, issuer, &serial)?;
        let digest = Sha256::digest(w.written().get(start..).unwrap_or_default());
        let mut sig = [0u8; MAX_OUTPUT];
        let sig = match signer.sign(signer_public, &digest, &mut sig, rng) {
            Ok(sig) => sig,
            Err(e) => {
                signed = Err(e);
                return Err(apdu::Error::BufferTooSmall);
            }
        };
        algorithm_identifier(w, &ECDSA_WITH_SHA_256, None)?;
        asn1::bits(w, sig)
    })
    .map_err(|e| signed.err().unwrap_or(Error::from(e)))
}

fn tbs_certificate(
    w: &mut Writer<'_>,
    subject: &Subject<'_>,
    subject_name: &str,
    issuer: &str,
    serial: &[u8],
) -> Encoded {
    w.nested(asn1::SEQUENCE, |w| {
        w.nested(asn1::VERSION, |w| asn1::unsigned(w, &[2]))?;
        asn1::unsigned(w, serial)?;
        algorithm_identifier(w, &ECDSA_WITH_SHA_256, None)?;
        name(w, issuer)?;
        w.nested(asn1::SEQUENCE, |w| {
            w.tlv(asn1::UTC_TIME, NOT_BEFORE)?;
            w.tlv(asn1::GENERALIZED_TIME, NOT_AFTER)
        })?;
        name(w, subject_name)?;
        subject_public_key_info(w, subject.algorithm, subject.public)?;
        w.nested(asn1::EXTENSIONS, |w| {
            w.nested(asn1::SEQUENCE, |w| match subject.attested {
                Some((version, serial, policy)) => {
                    extension(w, &YUBICO_VERSION, false, &version)?;
                    // Room for the INTEGER and the length field the writer keeps
                    // while it writes one.
                    let mut number = [0u8; 12];
                    let mut n = Writer::new(&mut number);
                    asn1::unsigned(&mut n, &serial.to_be_bytes())?;
                    extension(w, &YUBICO_SERIAL, false, n.written())?;
                    extension(w, &YUBICO_POLICY, false, &policy)
                }
                None => {
                    extension(w, &ID_CE_BASIC_CONSTRAINTS, true, CA)?;
                    extension(w, &ID_CE_KEY_USAGE, true, CERTIFICATE_SIGNING)
                }
            })
        })
    })
}

/// SubjectPublicKeyInfo for a key of `algorithm` as its key record keeps
/// it (an EC point, a 32-byte Edwards or Montgomery key, an RSA modulus).
fn subject_public_key_info(w: &mut Writer<'_>, algorithm: Algorithm, public: &[u8]) -> Encoded {
    w.nested(asn1::SEQUENCE, |w| match algorithm {
        Algorithm::P256 | Algorithm::P384 => {
            let curve = if algorithm == Algorithm::P256 {
                SECP_256_R_1
            } else {
                SECP_384_R_1
            };
            algorithm_identifier(w, &ID_EC_PUBLIC_KEY, Some(&|w| oid(w, &curve)))?;
            asn1::bits(w, public)
        }
        Algorithm::Ed25519 | Algorithm::X25519 => {
            let id = if algorithm == Algorithm::Ed25519 {
                ID_ED_25519
            } else {
                ID_X_25519
            };
            algorithm_identifier(w, &id, None)?;
            asn1::bits(w, public)
        }
        _ => {
            algorithm_identifier(w, &RSA_ENCRYPTION, Some(&|w| w.tlv(asn1::NULL, &[])))?;
            // RSAPublicKey (RFC 8017) in the BIT STRING.
            w.nested(asn1::BIT_STRING, |w| {
                w.raw(&[0])?;
                w.nested(asn1::SEQUENCE, |w| {
                    asn1::unsigned(w, public)?;
                    asn1::unsigned(w, &RSA_EXPONENT.to_be_bytes())
                })
            })
        }
    })
}

/// Whether a certificate object (`70` the certificate's DER, then `71`,
/// `FE`) certifies `public`, a key of `algorithm` as its key record keeps
/// it: the subject public key info names the algorithm (and curve) and
/// holds exactly that key. COMMIT RENEWAL checks it, so that a renewal never
/// installs a key under a certificate for another. The certificate's
/// signature is the relying parties' to check, not the card's.
#[inline(never)]
pub fn certifies(object: &[u8], algorithm: Algorithm, public: &[u8]) -> Result<bool> {
    let der = apdu::tlv::Reader::new(object)
        .filter_map(|tlv| tlv.ok())
        .find(|tlv| tlv.tag.value() == 0x70)
        .ok_or(Error::BadData)?
        .value;
    // A certificate the card cannot read is the host's mistake: 6A 80.
    let KeyInfo { oid, curve, key } = subject_key_info(der)?;
    let is = |expected: &ObjectIdentifier| oid == expected.as_bytes();
    let on = |expected: &ObjectIdentifier| curve == Some(expected.as_bytes());
    Ok(match algorithm {
        Algorithm::P256 => is(&ID_EC_PUBLIC_KEY) && on(&SECP_256_R_1) && key == public,
        Algorithm::P384 => is(&ID_EC_PUBLIC_KEY) && on(&SECP_384_R_1) && key == public,
        Algorithm::Ed25519 => is(&ID_ED_25519) && key == public,
        Algorithm::X25519 => is(&ID_X_25519) && key == public,
        // A build without RSA has no RSA key to certify: no parser for one.
        _ if !cfg!(feature = "rsa") => false,
        _ => {
            let rsa = asn1::only(key, asn1::SEQUENCE)?;
            let mut fields = rsa.children();
            let modulus = asn1::next(&mut fields, asn1::INTEGER)?;
            let exponent = asn1::next(&mut fields, asn1::INTEGER)?;
            if fields.next().is_some() {
                return Err(Error::BadData);
            }
            is(&RSA_ENCRYPTION)
                && asn1::magnitude(modulus.value) == asn1::magnitude(public)
                && asn1::magnitude(exponent.value) == asn1::magnitude(&RSA_EXPONENT.to_be_bytes())
        }
    })
}

/// A certificate's subject public key, as its DER has it.
struct KeyInfo<'a> {
    /// The algorithm's OID (its content bytes).
    oid: &'a [u8],
    /// The parameters' OID, if they are one: an EC key's curve.
    curve: Option<&'a [u8]>,
    /// The key's bytes, the BIT STRING's.
    key: &'a [u8],
}

/// A certificate's subject public key; the other fields are read over,
/// and must be well-formed TLVs.
fn subject_key_info(der: &[u8]) -> Result<KeyInfo<'_>> {
    let certificate = asn1::only(der, asn1::SEQUENCE)?;
    let mut parts = certificate.children();
    let tbs = asn1::next(&mut parts, asn1::SEQUENCE)?;
    // The signature algorithm and value.
    for _ in 0..2 {
        parts.next().ok_or(Error::BadData)??;
    }
    if parts.next().is_some() {
        return Err(Error::BadData);
    }
    let mut fields = tbs.children();
    let mut field = fields.next().ok_or(Error::BadData)??;
    if field.tag == asn1::VERSION {
        field = fields.next().ok_or(Error::BadData)??;
    }
    // `field` is the serial; then signature, issuer, validity, subject.
    let _ = field;
    for _ in 0..4 {
        fields.next().ok_or(Error::BadData)??;
    }
    let spki = asn1::next(&mut fields, asn1::SEQUENCE)?;
    // Unique identifiers and extensions.
    for rest in fields {
        rest?;
    }
    let mut spki = spki.children();
    let algorithm = asn1::next(&mut spki, asn1::SEQUENCE)?;
    let key = asn1::next(&mut spki, asn1::BIT_STRING)?;
    if spki.next().is_some() {
        return Err(Error::BadData);
    }
    let mut algorithm = algorithm.children();
    let oid = asn1::next(&mut algorithm, asn1::OID)?.value;
    let curve = match algorithm.next().transpose()? {
        Some(p) if p.tag == asn1::OID => Some(p.value),
        _ => None,
    };
    Ok(KeyInfo {
        oid,
        curve,
        key: asn1::whole_bytes(&key)?,
    })
}
