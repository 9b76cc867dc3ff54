//! X.509 certificates the card makes itself: the attestation of a slot's key
//! (Yubico's ATTEST) and the self-signed CA certificate of the attestation
//! key.
//!
//! The structures are `der` types (derived sequences, `heapless`-backed
//! SET OF and SEQUENCE OF, `spki`'s SubjectPublicKeyInfo), which encode
//! without an allocator; `x509-cert`, which needs one, parses what comes out
//! in the host's tests. The certificate is built in a stack buffer and
//! copied into the response.

use apdu::tlv::Writer;
use der::asn1::{
    AnyRef, BitStringRef, GeneralizedTime, ObjectIdentifier, OctetStringRef, SequenceOf, SetOf,
    UintRef, UtcTime, Utf8StringRef,
};
use der::{DateTime, Decode, Encode, Reader, Sequence, SliceReader, ValueOrd};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use crate::algorithm::{Algorithm, MAX_PUBLIC, RSA_EXPONENT};
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

/// The largest certificate: an RSA-4096 subject key with its extensions.
const MAX_CERTIFICATE: usize = 1_024;

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

#[derive(Sequence, ValueOrd)]
struct AttributeTypeAndValue<'a> {
    oid: ObjectIdentifier,
    value: Utf8StringRef<'a>,
}

/// A Name with one common name: SEQUENCE OF SET OF one attribute.
type Name<'a> = SequenceOf<SetOf<AttributeTypeAndValue<'a>, 1>, 1>;

#[derive(Sequence)]
struct Validity {
    not_before: UtcTime,
    /// RFC 5280: no well-defined expiration date.
    not_after: GeneralizedTime,
}

#[derive(Sequence)]
struct Extension<'a> {
    extn_id: ObjectIdentifier,
    #[asn1(default = "Default::default")]
    critical: bool,
    extn_value: &'a OctetStringRef,
}

#[derive(Sequence)]
struct TbsCertificate<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: u8,
    serial_number: UintRef<'a>,
    signature: AlgorithmIdentifierRef<'a>,
    issuer: Name<'a>,
    validity: Validity,
    subject: Name<'a>,
    subject_public_key_info: SubjectPublicKeyInfoRef<'a>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    extensions: SequenceOf<Extension<'a>, 3>,
}

#[derive(Sequence)]
struct Certificate<'a> {
    tbs_certificate: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
}

/// RSAPublicKey (RFC 8017).
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

fn name(cn: &[u8]) -> der::Result<Name<'_>> {
    let mut rdn = SetOf::new();
    rdn.insert(AttributeTypeAndValue {
        oid: CN,
        value: Utf8StringRef::new(
            core::str::from_utf8(cn).map_err(|_| der::Tag::Utf8String.value_error())?,
        )?,
    })?;
    let mut name = SequenceOf::new();
    name.add(rdn)?;
    Ok(name)
}

fn ecdsa_with_sha256() -> AlgorithmIdentifierRef<'static> {
    AlgorithmIdentifierRef {
        oid: ECDSA_WITH_SHA_256,
        parameters: None,
    }
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
    let mut serial = [0u8; 16];
    rng.fill_bytes(&mut serial);
    // A positive INTEGER with no superfluous leading byte.
    if let Some(first) = serial.first_mut() {
        *first = (*first & 0x7F) | 0x40;
    }
    let mut tbs = [0u8; MAX_CERTIFICATE];
    let tbs = tbs_certificate(subject, issuer, &serial, &mut tbs)?;
    let digest = Sha256::digest(tbs);
    let mut sig = [0u8; MAX_OUTPUT];
    let sig = signer.sign(signer_public, &digest, &mut sig, rng)?;
    let cert = Certificate {
        tbs_certificate: AnyRef::try_from(tbs)?,
        signature_algorithm: ecdsa_with_sha256(),
        signature: BitStringRef::from_bytes(sig)?,
    };
    let mut buf = [0u8; MAX_CERTIFICATE];
    let der = cert.encode_to_slice(&mut buf)?;
    out.raw(der)?;
    Ok(())
}

fn tbs_certificate<'o>(
    subject: &Subject<'_>,
    issuer: &[u8],
    serial: &[u8],
    out: &'o mut [u8],
) -> Result<&'o [u8]> {
    // Values inside extensions and the subject key, encoded first.
    let mut rsa_key = [0u8; MAX_PUBLIC + 16];
    let mut card_serial = [0u8; 8];
    let curve_oid;
    let exponent = RSA_EXPONENT.to_be_bytes();
    let (oid, parameters, key_bits): (_, _, &[u8]) = match subject.algorithm {
        Algorithm::P256 | Algorithm::P384 => {
            curve_oid = if subject.algorithm == Algorithm::P256 {
                SECP_256_R_1
            } else {
                SECP_384_R_1
            };
            let curve = AnyRef::new(der::Tag::ObjectIdentifier, curve_oid.as_bytes())?;
            (ID_EC_PUBLIC_KEY, Some(curve), subject.public)
        }
        Algorithm::Ed25519 => (ID_ED_25519, None, subject.public),
        Algorithm::X25519 => (ID_X_25519, None, subject.public),
        _ => {
            let key = RsaPublicKey {
                modulus: UintRef::new(subject.public)?,
                public_exponent: UintRef::new(&exponent)?,
            };
            (
                RSA_ENCRYPTION,
                Some(AnyRef::NULL),
                key.encode_to_slice(&mut rsa_key)?,
            )
        }
    };
    let (version, policy);
    let mut extensions = SequenceOf::new();
    match subject.attested {
        Some((v, serial, p)) => {
            (version, policy) = (v, p);
            let serial = UintRef::new(&serial.to_be_bytes())?.encode_to_slice(&mut card_serial)?;
            for (extn_id, value) in [
                (YUBICO_VERSION, &version[..]),
                (YUBICO_SERIAL, serial),
                (YUBICO_POLICY, &policy[..]),
            ] {
                extensions.add(Extension {
                    extn_id,
                    critical: false,
                    extn_value: OctetStringRef::new(value)?,
                })?;
            }
        }
        None => {
            // basicConstraints { cA TRUE }; keyUsage keyCertSign, cRLSign.
            for (extn_id, value) in [
                (ID_CE_BASIC_CONSTRAINTS, &[0x30, 0x03, 0x01, 0x01, 0xFF][..]),
                (ID_CE_KEY_USAGE, &[0x03, 0x02, 0x01, 0x06][..]),
            ] {
                extensions.add(Extension {
                    extn_id,
                    critical: true,
                    extn_value: OctetStringRef::new(value)?,
                })?;
            }
        }
    }
    let tbs = TbsCertificate {
        version: 2,
        serial_number: UintRef::new(serial)?,
        signature: ecdsa_with_sha256(),
        issuer: name(issuer)?,
        validity: Validity {
            not_before: UtcTime::from_date_time(DateTime::new(2024, 1, 1, 0, 0, 0)?)?,
            not_after: GeneralizedTime::from_date_time(DateTime::new(9999, 12, 31, 23, 59, 59)?),
        },
        subject: name(subject.name)?,
        subject_public_key_info: SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef { oid, parameters },
            subject_public_key: BitStringRef::from_bytes(key_bits)?,
        },
        extensions,
    };
    Ok(tbs.encode_to_slice(out)?)
}

/// Whether a certificate object (`70` the certificate's DER, then `71`,
/// `FE`) certifies `public`, a key of `algorithm` as its key record keeps
/// it: the subject public key info names the algorithm (and curve) and
/// holds exactly that key. COMMIT RENEWAL checks it, so that a renewal never
/// installs a key under a certificate for another. The certificate's
/// signature is the relying parties' to check, not the card's.
pub fn certifies(object: &[u8], algorithm: Algorithm, public: &[u8]) -> Result<bool> {
    let der = apdu::tlv::Reader::new(object)
        .filter_map(|tlv| tlv.ok())
        .find(|tlv| tlv.tag.value() == 0x70)
        .ok_or(Error::BadData)?
        .value;
    // A certificate the card cannot read is the host's mistake: 6A 80.
    let spki = subject_key_info(der).map_err(|_| Error::BadData)?;
    let key = spki.subject_public_key.as_bytes().ok_or(Error::BadData)?;
    let oid = spki.algorithm.oid;
    let curve = spki
        .algorithm
        .parameters
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    Ok(match algorithm {
        Algorithm::P256 => oid == ID_EC_PUBLIC_KEY && curve == Some(SECP_256_R_1) && key == public,
        Algorithm::P384 => oid == ID_EC_PUBLIC_KEY && curve == Some(SECP_384_R_1) && key == public,
        Algorithm::Ed25519 => oid == ID_ED_25519 && key == public,
        Algorithm::X25519 => oid == ID_X_25519 && key == public,
        _ => {
            let rsa = RsaPublicKey::from_der(key).map_err(|_| Error::BadData)?;
            let exponent = RSA_EXPONENT.to_be_bytes();
            oid == RSA_ENCRYPTION
                && rsa.modulus.as_bytes() == unsigned(public)
                && rsa.public_exponent.as_bytes() == unsigned(&exponent)
        }
    })
}

/// The subject public key info of a certificate's DER, its other fields
/// read over.
fn subject_key_info(der: &[u8]) -> der::Result<SubjectPublicKeyInfoRef<'_>> {
    let mut reader = SliceReader::new(der)?;
    let spki = reader.sequence(|certificate| {
        let spki = certificate.sequence(|tbs| {
            if der::Tag::peek(tbs)?.is_context_specific() {
                AnyRef::decode(tbs)?; // [0] version
            }
            for _ in 0..5 {
                // serial, signature, issuer, validity, subject
                AnyRef::decode(tbs)?;
            }
            let spki = SubjectPublicKeyInfoRef::decode(tbs)?;
            while !tbs.is_finished() {
                AnyRef::decode(tbs)?; // unique identifiers, extensions
            }
            Ok::<_, der::Error>(spki)
        })?;
        while !certificate.is_finished() {
            AnyRef::decode(certificate)?; // signature algorithm and value
        }
        Ok::<_, der::Error>(spki)
    })?;
    reader.finish()?;
    Ok(spki)
}

/// A big-endian unsigned integer without its leading zeros, as DER's
/// INTEGER content holds a positive one (less its sign byte).
fn unsigned(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}
