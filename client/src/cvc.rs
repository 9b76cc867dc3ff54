//! Card-verifiable certificates for a card's secure messaging key (SP
//! 800-73-4 Part 2 §4.1.5, Table 15): the issuer makes one at
//! personalisation ([`build`]), and a client checks the one the card sends
//! in key establishment against the Secure Messaging Certificate Signer
//! ([`Cvc::parse`], [`Cvc::verify`]).
//!
//! ```text
//! 7F21 {
//!   5F29 01 80                 certificate profile identifier
//!   42 08 …                    issuer identification number
//!   5F20 10 …                  subject identifier: the card's GUID
//!   7F49 { 06 curve, 86 Q }    the public key
//!   5F4C 01 00                 role: the card's SM key
//!   5F37 { 30 { 30 { 06 alg }, 03 00 signature } }
//! }
//! ```
//!
//! The signature (ECDSA, DER) is over the body: the bytes from `5F29` to
//! the end of `5F4C`, hashed with the suite's hash.

use applet::sm::Suite;
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, SECP_256_R_1, SECP_384_R_1};

use crate::error::{ClientError, Result};
use crate::tlv::{tlv, unwrap_tlv};

/// The certificate profile identifier of SP 800-73-4's CVCs.
const PROFILE: u8 = 0x80;
/// The role of a CVC for a card's own SM key (an intermediate is `12`).
pub const ROLE_CARD: u8 = 0x00;

/// What a CVC says, as a client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cvc {
    /// Issuer identification number.
    pub issuer_id: Vec<u8>,
    /// Subject identifier: the card's GUID.
    pub subject_id: Vec<u8>,
    /// The curve of the key.
    pub curve: ObjectIdentifier,
    /// The public key, an uncompressed point.
    pub point: Vec<u8>,
    /// The role identifier.
    pub role: u8,
    /// The signature algorithm.
    pub algorithm: ObjectIdentifier,
    /// The signature, DER.
    pub signature: Vec<u8>,
    /// The signed bytes.
    body: Vec<u8>,
}

fn oid_tlv(oid: ObjectIdentifier) -> Vec<u8> {
    tlv(0x06, oid.as_bytes())
}

fn curve_of(suite: Suite) -> ObjectIdentifier {
    match suite {
        Suite::Cs2 => SECP_256_R_1,
        Suite::Cs7 => SECP_384_R_1,
    }
}

fn signature_algorithm(suite: Suite) -> ObjectIdentifier {
    match suite {
        Suite::Cs2 => ECDSA_WITH_SHA_256,
        Suite::Cs7 => ECDSA_WITH_SHA_384,
    }
}

/// Writes a two-byte tag TLV (`5F29`, `7F49`, …).
fn tlv2(tag: u16, value: &[u8]) -> Vec<u8> {
    let [a, b] = tag.to_be_bytes();
    let mut out = vec![a];
    out.extend_from_slice(&tlv(b, value));
    out
}

/// A CVC for `point` (the card's key `04` for `suite`), issued by
/// `issuer_id` to the card `subject_id`; `sign` signs the body with the
/// signer's key (ECDSA with the suite's hash, DER).
pub fn build(
    suite: Suite,
    issuer_id: &[u8; 8],
    subject_id: &[u8],
    point: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let body = [
        tlv2(0x5F29, &[PROFILE]),
        tlv(0x42, issuer_id),
        tlv2(0x5F20, subject_id),
        tlv2(
            0x7F49,
            &[oid_tlv(curve_of(suite)), tlv(0x86, point)].concat(),
        ),
        tlv2(0x5F4C, &[ROLE_CARD]),
    ]
    .concat();
    let signature = sign(&body)?;
    let bits = [&[0x00][..], &signature].concat();
    let algorithm = tlv(0x30, &oid_tlv(signature_algorithm(suite)));
    let signed = tlv2(0x5F37, &tlv(0x30, &[algorithm, tlv(0x03, &bits)].concat()));
    Ok(tlv2(0x7F21, &[body, signed].concat()))
}

/// Splits the first TLV off `bytes`: its tag, its value, and the rest.
fn next(bytes: &[u8]) -> Result<(u32, &[u8], &[u8])> {
    let (tlv, rest) = apdu::tlv::Tlv::parse(bytes).map_err(|_| bad())?;
    Ok((tlv.tag.value(), tlv.value, rest))
}

fn bad() -> ClientError {
    ClientError::Malformed("a card-verifiable certificate that is not SP 800-73-4's")
}

fn expect(bytes: &[u8], tag: u32) -> Result<(&[u8], &[u8])> {
    match next(bytes)? {
        (t, value, rest) if t == tag => Ok((value, rest)),
        _ => Err(bad()),
    }
}

impl Cvc {
    /// Parses a CVC, refusing anything but Table 15's fields in order.
    pub fn parse(der: &[u8]) -> Result<Cvc> {
        let (content, rest) = expect(der, 0x7F21)?;
        if !rest.is_empty() {
            return Err(bad());
        }
        let (profile, r) = expect(content, 0x5F29)?;
        let (issuer_id, r) = expect(r, 0x42)?;
        let (subject_id, r) = expect(r, 0x5F20)?;
        let (key, r) = expect(r, 0x7F49)?;
        let (role, signed) = expect(r, 0x5F4C)?;
        if profile != [PROFILE] || role.len() != 1 {
            return Err(bad());
        }
        let body = &content[..content.len() - signed.len()];
        let (curve, k) = expect(key, 0x06)?;
        let (point, k) = expect(k, 0x86)?;
        if !k.is_empty() {
            return Err(bad());
        }
        let (signature_object, r) = expect(signed, 0x5F37)?;
        if !r.is_empty() {
            return Err(bad());
        }
        let (sequence, r) = expect(signature_object, 0x30)?;
        if !r.is_empty() {
            return Err(bad());
        }
        let (algorithm, r) = expect(sequence, 0x30)?;
        let (bits, r) = expect(r, 0x03)?;
        if !r.is_empty() {
            return Err(bad());
        }
        let (algorithm, _) = expect(algorithm, 0x06)?;
        let Some((&0, signature)) = bits.split_first() else {
            return Err(bad());
        };
        let oid = |bytes: &[u8]| ObjectIdentifier::from_bytes(bytes).map_err(|_| bad());
        Ok(Cvc {
            issuer_id: issuer_id.to_vec(),
            subject_id: subject_id.to_vec(),
            curve: oid(curve)?,
            point: point.to_vec(),
            role: role[0],
            algorithm: oid(algorithm)?,
            signature: signature.to_vec(),
            body: body.to_vec(),
        })
    }

    /// The suite whose key this certifies, if any.
    pub fn suite(&self) -> Option<Suite> {
        [Suite::Cs2, Suite::Cs7]
            .into_iter()
            .find(|&s| curve_of(s) == self.curve && signature_algorithm(s) == self.algorithm)
    }

    /// Checks the signature with the signer's public key (an uncompressed
    /// point on P-256 or P-384, from the Secure Messaging Certificate
    /// Signer's certificate).
    pub fn verify(&self, signer: &[u8]) -> Result<()> {
        let refused = || ClientError::Malformed("a CVC its signer did not sign");
        let suite = self.suite().ok_or(refused())?;
        // The signer's curve may be either; the hash is the suite's.
        match signer.len() {
            65 => {
                let key =
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(signer).map_err(|_| refused())?;
                let sig =
                    p256::ecdsa::Signature::from_der(&self.signature).map_err(|_| refused())?;
                let digest = hash(suite, &self.body);
                use p256::ecdsa::signature::hazmat::PrehashVerifier;
                key.verify_prehash(&digest, &sig).map_err(|_| refused())
            }
            97 => {
                let key =
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(signer).map_err(|_| refused())?;
                let sig =
                    p384::ecdsa::Signature::from_der(&self.signature).map_err(|_| refused())?;
                let digest = hash(suite, &self.body);
                use p384::ecdsa::signature::hazmat::PrehashVerifier;
                key.verify_prehash(&digest, &sig).map_err(|_| refused())
            }
            _ => Err(refused()),
        }
    }
}

/// The suite's hash of `body`.
pub fn hash(suite: Suite, body: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    match suite {
        Suite::Cs2 => sha2::Sha256::digest(body).to_vec(),
        Suite::Cs7 => sha2::Sha384::digest(body).to_vec(),
    }
}

/// The public key (uncompressed point) of the Secure Messaging Certificate
/// Signer, from the content of its object `5FC122` (`70 {certificate} 71
/// {info} …`).
pub fn signer_key(object: &[u8]) -> Result<Vec<u8>> {
    use x509_cert::der::Decode;
    let der = unwrap_tlv(object, 0x70)?;
    let cert = x509_cert::Certificate::from_der(der).map_err(|_| {
        ClientError::Malformed("a Secure Messaging Certificate Signer that is no certificate")
    })?;
    let key = cert
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    Ok(key.to_vec())
}
