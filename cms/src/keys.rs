//! The host's view of a card's key: its algorithm and public key, as a
//! certificate's SubjectPublicKeyInfo and as the verifier of what the card
//! signs (the sponsor-unlock challenge).

use applet::algorithm::Algorithm;

use crate::{CmsError, Result};
use der::asn1::{BitString, ObjectIdentifier, UintRef};
use der::{Any, Encode};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1};
use const_oid::db::rfc8410::{ID_ED_25519, ID_X_25519};

/// The algorithms the CMS personalises cards with (`--algorithm`).
pub const PERSONALISABLE: [(&str, Algorithm); 3] = [
    ("p256", Algorithm::P256),
    ("p384", Algorithm::P384),
    ("rsa2048", Algorithm::Rsa2048),
];

/// The algorithm a `--algorithm` name stands for.
pub fn parse_algorithm(name: &str) -> Result<Algorithm> {
    PERSONALISABLE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| *a)
        .ok_or_else(|| CmsError::BadAlgorithm(name.into()))
}

/// The `--algorithm` names, comma-separated.
pub fn algorithm_names() -> String {
    let names: Vec<&str> = PERSONALISABLE.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

/// A card key's public half: what GENERATE answered, or what a
/// certificate certifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardKey {
    /// The key's algorithm.
    pub algorithm: Algorithm,
    /// As the card keeps it: RSA modulus, uncompressed EC point, or a
    /// 25519 key.
    pub public: Vec<u8>,
}

fn err(e: impl std::fmt::Display) -> CmsError {
    CmsError::encoding(e)
}

impl CardKey {
    /// The key as an X.509 SubjectPublicKeyInfo (RFC 3279, RFC 8410).
    pub fn spki(&self) -> Result<SubjectPublicKeyInfoOwned> {
        let (oid, parameters, key) = match self.algorithm {
            Algorithm::P256 => (
                ID_EC_PUBLIC_KEY,
                Some(Any::encode_from(&SECP_256_R_1).map_err(err)?),
                self.public.clone(),
            ),
            Algorithm::P384 => (
                ID_EC_PUBLIC_KEY,
                Some(Any::encode_from(&SECP_384_R_1).map_err(err)?),
                self.public.clone(),
            ),
            Algorithm::Ed25519 => (ID_ED_25519, None, self.public.clone()),
            Algorithm::X25519 => (ID_X_25519, None, self.public.clone()),
            _ => (RSA_ENCRYPTION, Some(Any::null()), self.rsa_public_key()?),
        };
        Ok(SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned { oid, parameters },
            subject_public_key: BitString::from_bytes(&key).map_err(err)?,
        })
    }

    /// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }.
    fn rsa_public_key(&self) -> Result<Vec<u8>> {
        let n = UintRef::new(&self.public).map_err(err)?;
        let e = UintRef::new(&[0x01, 0x00, 0x01]).map_err(err)?;
        let body = [n.to_der().map_err(err)?, e.to_der().map_err(err)?].concat();
        let mut out = der::Header::new(
            der::Tag::Sequence,
            der::Length::try_from(body.len()).map_err(err)?,
        )
        .to_der()
        .map_err(err)?;
        out.extend(body);
        Ok(out)
    }

    /// The key a certificate certifies.
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<CardKey> {
        let bits = spki.subject_public_key.raw_bytes();
        let curve = || {
            spki.algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        };
        let (algorithm, public) = match spki.algorithm.oid {
            ID_EC_PUBLIC_KEY if curve() == Some(SECP_256_R_1) => (Algorithm::P256, bits.to_vec()),
            ID_EC_PUBLIC_KEY if curve() == Some(SECP_384_R_1) => (Algorithm::P384, bits.to_vec()),
            ID_ED_25519 => (Algorithm::Ed25519, bits.to_vec()),
            ID_X_25519 => (Algorithm::X25519, bits.to_vec()),
            RSA_ENCRYPTION => {
                let key = <rsa::PublicKey as rsa::pkcs1::DecodeRsaPublicKey>::from_pkcs1_der(bits)
                    .map_err(err)?;
                let n = rsa::traits::PublicKeyParts::n(&key).to_be_bytes_trimmed_vartime();
                let algorithm = Algorithm::ALL
                    .into_iter()
                    .find(|a| a.public_len() == n.len() && a.rsa_bits().is_some())
                    .ok_or(CmsError::RsaSize)?;
                (algorithm, n.to_vec())
            }
            other => return Err(CmsError::KeyAlgorithm(other.to_string())),
        };
        if public.len() != algorithm.public_len() {
            return Err(CmsError::KeyLength);
        }
        Ok(CardKey { algorithm, public })
    }

    /// What to send the card so that it signs `challenge` (a SHA-256 value)
    /// with this key: the digest itself for ECDSA, the PKCS#1 v1.5 block
    /// for RSA.
    pub fn to_sign(&self, challenge: &[u8; 32]) -> Result<Vec<u8>> {
        match self.algorithm {
            Algorithm::P256 | Algorithm::P384 => Ok(challenge.to_vec()),
            a if a.rsa_bits().is_some() => {
                let mut info = vec![
                    0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
                    0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
                ];
                info.extend(challenge);
                let mut block = vec![0x00, 0x01];
                block.resize(a.public_len() - info.len() - 1, 0xFF);
                block.push(0x00);
                block.extend(info);
                Ok(block)
            }
            other => Err(CmsError::NoChallenge(other)),
        }
    }

    /// Checks the card's answer to [`CardKey::to_sign`].
    pub fn verify(&self, challenge: &[u8; 32], signature: &[u8]) -> Result<()> {
        fn bad<E>(_: E) -> CmsError {
            CmsError::BadSignature
        }
        match self.algorithm {
            Algorithm::P256 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.public).map_err(err)?;
                let sig = p256::ecdsa::DerSignature::from_bytes(signature).map_err(bad)?;
                key.verify_prehash(challenge, &sig).map_err(bad)
            }
            Algorithm::P384 => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&self.public).map_err(err)?;
                let sig = p384::ecdsa::DerSignature::from_bytes(signature).map_err(bad)?;
                key.verify_prehash(challenge, &sig).map_err(bad)
            }
            a if a.rsa_bits().is_some() => {
                let key = rsa::PublicKey::new(
                    rsa::BoxedUint::from_be_slice_vartime(&self.public),
                    rsa::BoxedUint::from(65_537u32),
                )
                .map_err(err)?;
                key.verify(
                    rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    challenge,
                    signature,
                )
                .map_err(bad)
            }
            other => Err(CmsError::NoChallenge(other)),
        }
    }
}
