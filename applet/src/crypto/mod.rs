//! The private-key operations of every slot algorithm, behind one type.
//!
//! [`Private`] is a key opened from its seal for the length of one
//! command; every variant wipes itself when dropped. Nothing here knows
//! about slots, policies or the store: [`crate::keys`] does.
//!
//! A fault while signing (a glitched nonce, scalar or multiplication) can
//! hand out a signature from which, with one good signature of the same
//! input, the key follows; so no signature leaves unchecked. RSA and
//! Ed25519 signatures are verified against the public key the record
//! holds. ECDSA signatures are computed twice and leave only if both agree
//! (a verification would cost more than the two): each computation loads
//! its scalar, and derives its RFC 6979 nonce, from the key as it is then,
//! so a fault in either computation, or one that changes the key between
//! or during them, makes them differ; one that changes it before both
//! yields a signature under another key with that key's own nonce, from
//! which nothing follows.

mod ec;
#[cfg(all(feature = "cortex-m4-p256", target_arch = "arm"))]
mod p256_cortex_m4;
#[cfg(not(all(feature = "cortex-m4-p256", target_arch = "arm")))]
mod p256_rustcrypto;
#[cfg(feature = "rsa")]
pub mod rsa;
mod sweep;

pub use sweep::{Sweep, p256_sweep};

#[cfg(feature = "p384")]
use p256::elliptic_curve::Generate;
#[cfg(all(feature = "cortex-m4-p256", target_arch = "arm"))]
use p256_cortex_m4 as p256_key;
#[cfg(not(all(feature = "cortex-m4-p256", target_arch = "arm")))]
use p256_rustcrypto as p256_key;
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::algorithm::{Algorithm, MAX_PUBLIC, MAX_SECRET};
use crate::error::{Error, Result};

/// The longest answer a key of this build gives: an RSA-4096 block, or
/// a DER ECDSA signature on P-384 (104 bytes) or P-256 (72).
pub const MAX_OUTPUT: usize = if cfg!(feature = "rsa") {
    512
} else if cfg!(feature = "p384") {
    104
} else {
    72
};

/// A private key, opened.
#[allow(
    clippy::large_enum_variant,
    reason = "lives on the stack for one command; there is no heap to box it in"
)]
pub enum Private {
    /// RSA as its CRT parts in the sealed form (`rsa`).
    #[cfg(feature = "rsa")]
    Rsa {
        /// Which RSA size.
        algorithm: Algorithm,
        /// p, q, dP, dQ, qInv; the first `algorithm.secret_len()` bytes.
        parts: Zeroizing<[u8; MAX_SECRET]>,
    },
    /// A P-256 scalar, in the build's back end: the Cortex-M4 assembly on
    /// the card, RustCrypto elsewhere.
    P256(p256_key::Key),
    /// A P-384 scalar.
    #[cfg(feature = "p384")]
    P384(p384::SecretKey),
    /// An Ed25519 key: its 32-byte seed, and its public key (from the
    /// key record, whose seal authenticates it, so that signing does not
    /// spend a scalar multiplication recomputing it).
    #[cfg(feature = "ed25519")]
    Ed25519 {
        /// The seed.
        seed: Zeroizing<[u8; 32]>,
        /// The public key A, as RFC 8032 encodes it.
        public: [u8; 32],
    },
    /// An X25519 secret.
    #[cfg(feature = "x25519")]
    X25519(x25519_dalek::StaticSecret),
}

/// A key agreement's shared secret, wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Shared {
    bytes: [u8; 48],
    len: usize,
}

impl core::ops::Deref for Shared {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl Private {
    /// A fresh key from the card's RNG.
    pub fn generate(algorithm: Algorithm, rng: &mut dyn CryptoRng) -> Result<Private> {
        Ok(match algorithm {
            Algorithm::P256 => Private::P256(p256_generate(rng)?),
            #[cfg(feature = "p384")]
            Algorithm::P384 => Private::P384(p384::SecretKey::generate_from_rng(rng)),
            #[cfg(any(feature = "ed25519", feature = "x25519"))]
            Algorithm::Ed25519 | Algorithm::X25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(&mut *seed);
                Private::from_bytes(algorithm, &*seed)?
            }
            #[cfg(feature = "rsa")]
            rsa_alg @ (Algorithm::Rsa1024
            | Algorithm::Rsa2048
            | Algorithm::Rsa3072
            | Algorithm::Rsa4096) => {
                let bits = rsa_alg.rsa_bits().ok_or(Error::Unsupported)?;
                let mut parts = Zeroizing::new([0u8; MAX_SECRET]);
                rsa::generate(
                    bits,
                    rng,
                    parts
                        .get_mut(..rsa_alg.secret_len())
                        .ok_or(Error::NoSpace)?,
                )?;
                Private::Rsa {
                    algorithm: rsa_alg,
                    parts,
                }
            }
            // What this build leaves out.
            #[allow(unreachable_patterns)]
            _ => return Err(Error::Unsupported),
        })
    }

    /// The key from its sealed form (exactly `algorithm.secret_len()`
    /// bytes). Bytes that are no key (an EC scalar out of range) are
    /// [`Error::BadData`].
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<Private> {
        if bytes.len() != algorithm.secret_len() {
            return Err(Error::BadData);
        }
        // Only called for the 32-byte 25519 secrets (length checked above).
        #[cfg(any(feature = "ed25519", feature = "x25519"))]
        let seed = || {
            let mut seed = Zeroizing::new([0u8; 32]);
            seed.copy_from_slice(bytes);
            seed
        };
        Ok(match algorithm {
            Algorithm::P256 => Private::P256(p256_key::Key::from_bytes(bytes)?),
            #[cfg(feature = "p384")]
            Algorithm::P384 => {
                Private::P384(p384::SecretKey::from_slice(bytes).map_err(|_| Error::BadData)?)
            }
            #[cfg(feature = "ed25519")]
            Algorithm::Ed25519 => {
                let seed = seed();
                let public = ed25519_dalek::SigningKey::from_bytes(&seed)
                    .verifying_key()
                    .to_bytes();
                Private::Ed25519 { seed, public }
            }
            #[cfg(feature = "x25519")]
            Algorithm::X25519 => Private::X25519(x25519_dalek::StaticSecret::from(*seed())),
            #[cfg(feature = "rsa")]
            rsa_alg @ (Algorithm::Rsa1024
            | Algorithm::Rsa2048
            | Algorithm::Rsa3072
            | Algorithm::Rsa4096) => {
                let mut parts = Zeroizing::new([0u8; MAX_SECRET]);
                parts
                    .get_mut(..bytes.len())
                    .ok_or(Error::BadData)?
                    .copy_from_slice(bytes);
                Private::Rsa {
                    algorithm: rsa_alg,
                    parts,
                }
            }
            #[allow(unreachable_patterns)]
            _ => return Err(Error::Unsupported),
        })
    }

    /// The key from its sealed form and the public key its record keeps
    /// beside it (authenticated by the same seal): as
    /// [`Private::from_bytes`], without deriving what the record already
    /// says.
    #[cfg_attr(not(feature = "ed25519"), allow(unused_variables))]
    pub fn from_sealed(algorithm: Algorithm, bytes: &[u8], public: &[u8]) -> Result<Private> {
        match algorithm {
            #[cfg(feature = "ed25519")]
            Algorithm::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                seed.copy_from_slice(bytes.get(..32).ok_or(Error::BadData)?);
                if bytes.len() != 32 {
                    return Err(Error::BadData);
                }
                let public = public.try_into().map_err(|_| Error::BadData)?;
                Ok(Private::Ed25519 { seed, public })
            }
            _ => Private::from_bytes(algorithm, bytes),
        }
    }

    /// An RSA key from imported CRT parts, checked ([`rsa::import`]).
    #[cfg(feature = "rsa")]
    pub fn from_rsa_parts(algorithm: Algorithm, key: &rsa::Parts<'_>) -> Result<Private> {
        let bits = algorithm.rsa_bits().ok_or(Error::BadParameters)?;
        let mut parts = Zeroizing::new([0u8; MAX_SECRET]);
        let len = algorithm.secret_len();
        rsa::import(bits, key, parts.get_mut(..len).ok_or(Error::NoSpace)?)?;
        Ok(Private::Rsa { algorithm, parts })
    }

    /// Which algorithm this key is for.
    pub const fn algorithm(&self) -> Algorithm {
        match self {
            #[cfg(feature = "rsa")]
            Private::Rsa { algorithm, .. } => *algorithm,
            Private::P256(_) => Algorithm::P256,
            #[cfg(feature = "p384")]
            Private::P384(_) => Algorithm::P384,
            #[cfg(feature = "ed25519")]
            Private::Ed25519 { .. } => Algorithm::Ed25519,
            #[cfg(feature = "x25519")]
            Private::X25519(_) => Algorithm::X25519,
        }
    }

    /// The sealed form ([`Private::from_bytes`] reads it back) into `out`.
    pub fn write_secret<'o>(&self, out: &'o mut [u8; MAX_SECRET]) -> Result<&'o [u8]> {
        let len = self.algorithm().secret_len();
        let dst = out.get_mut(..len).ok_or(Error::NoSpace)?;
        match self {
            #[cfg(feature = "rsa")]
            Private::Rsa { parts, .. } => {
                dst.copy_from_slice(parts.get(..len).ok_or(Error::NoSpace)?)
            }
            Private::P256(k) => k.write_secret(dst)?,
            #[cfg(feature = "p384")]
            Private::P384(k) => dst.copy_from_slice(&Zeroizing::new(k.to_bytes())),
            #[cfg(feature = "ed25519")]
            Private::Ed25519 { seed, .. } => dst.copy_from_slice(&**seed),
            #[cfg(feature = "x25519")]
            Private::X25519(k) => dst.copy_from_slice(&*Zeroizing::new(k.to_bytes())),
        }
        Ok(dst)
    }

    /// The public key as a key record keeps it
    /// ([`Algorithm::public_len`]) into `out`.
    pub fn write_public<'o>(&self, out: &'o mut [u8; MAX_PUBLIC]) -> Result<&'o [u8]> {
        let len = self.algorithm().public_len();
        let dst = out.get_mut(..len).ok_or(Error::NoSpace)?;
        match self {
            #[cfg(feature = "rsa")]
            Private::Rsa { algorithm, parts } => {
                rsa::modulus(parts.get(..algorithm.secret_len()).unwrap_or_default(), dst)?
            }
            Private::P256(k) => k.write_public(dst)?,
            #[cfg(feature = "p384")]
            Private::P384(k) => ec::public(k, dst)?,
            #[cfg(feature = "ed25519")]
            Private::Ed25519 { public, .. } => dst.copy_from_slice(public),
            #[cfg(feature = "x25519")]
            Private::X25519(k) => dst.copy_from_slice(x25519_dalek::PublicKey::from(k).as_bytes()),
        }
        Ok(dst)
    }

    /// GENERAL AUTHENTICATE with a challenge: an ECDSA signature (DER) over
    /// a digest, an Ed25519 signature over the message itself, or the raw
    /// RSA private operation on a modulus-sized block. Input the key cannot
    /// take is [`Error::BadData`].
    ///
    /// `public` is the public key as the key's sealed record holds it. An
    /// Ed25519 signature is checked against it before it is written out,
    /// and only ever made with it (signing one message under two public
    /// keys gives the key away); RSA's result is checked in
    /// [`rsa::private`], and ECDSA is computed twice (see the module's
    /// documentation).
    #[cfg_attr(
        not(feature = "ed25519"),
        allow(
            unused_variables,
            reason = "only Ed25519 checks against the public key"
        )
    )]
    pub fn sign<'o>(
        &self,
        public: &[u8],
        input: &[u8],
        out: &'o mut [u8; MAX_OUTPUT],
        rng: &mut dyn CryptoRng,
    ) -> Result<&'o [u8]> {
        // The RNG blinds RSA alone.
        let _ = &rng;
        match self {
            #[cfg(feature = "rsa")]
            Private::Rsa { algorithm, parts } => {
                let len = algorithm.public_len();
                let dst = out.get_mut(..len).ok_or(Error::NoSpace)?;
                rsa::private(
                    parts.get(..algorithm.secret_len()).unwrap_or_default(),
                    input,
                    dst,
                    rng,
                )?;
                Ok(dst)
            }
            Private::P256(k) => {
                let mut fitted = [0u8; 32];
                ec::fit(input, &mut fitted)?;
                crate::asn1::ecdsa_signature(&k.sign(&fitted)?, out)
            }
            #[cfg(feature = "p384")]
            Private::P384(k) => {
                let mut fitted = p384::FieldBytes::default();
                ec::fit(input, &mut fitted)?;
                let signature = ec::sign::<_, sha2::Sha384>(k, &fitted)?;
                crate::asn1::ecdsa_signature(&signature.to_bytes(), out)
            }
            #[cfg(feature = "ed25519")]
            Private::Ed25519 { seed, public: own } => {
                // The public key kept with the seed must be the record's.
                if !crate::secrets::same(own, public) {
                    return Err(Error::Tampered);
                }
                let public =
                    ed25519_dalek::VerifyingKey::from_bytes(own).map_err(|_| Error::Tampered)?;
                let signature = ed25519_sign(seed, &public, input);
                ed25519_verify(&public, input, &signature)?;
                let signature = signature.to_bytes();
                let dst = out.get_mut(..signature.len()).ok_or(Error::NoSpace)?;
                dst.copy_from_slice(&signature);
                Ok(dst)
            }
            #[cfg(feature = "x25519")]
            Private::X25519(_) => Err(Error::BadData),
        }
    }

    /// GENERAL AUTHENTICATE with a peer's public key: ECDH (an uncompressed
    /// point in, the x-coordinate out) or X25519 (32 bytes each way; a
    /// low-order peer point, which would give a predictable secret, is
    /// refused).
    pub fn agree(&self, peer: &[u8]) -> Result<Shared> {
        let mut shared = Shared {
            bytes: [0u8; 48],
            len: 0,
        };
        shared.len = match self {
            Private::P256(k) => {
                k.agree(peer, shared.bytes.get_mut(..32).ok_or(Error::NoSpace)?)?;
                32
            }
            #[cfg(feature = "p384")]
            Private::P384(k) => {
                ec::agree(k, peer, &mut shared.bytes)?;
                48
            }
            #[cfg(feature = "x25519")]
            Private::X25519(k) => {
                let peer: [u8; 32] = peer.try_into().map_err(|_| Error::BadData)?;
                let secret = k.diffie_hellman(&x25519_dalek::PublicKey::from(peer));
                if !secret.was_contributory() {
                    return Err(Error::BadData);
                }
                let dst = shared.bytes.get_mut(..32).ok_or(Error::NoSpace)?;
                dst.copy_from_slice(secret.as_bytes());
                32
            }
            #[cfg(feature = "rsa")]
            Private::Rsa { .. } => return Err(Error::BadData),
            #[cfg(feature = "ed25519")]
            Private::Ed25519 { .. } => return Err(Error::BadData),
        };
        Ok(shared)
    }
}

/// A fresh P-256 key: 32 bytes from `rng` read as a little-endian scalar
/// (as RustCrypto's `p256` reads them, so that a seeded card makes the
/// keys it always made, in either back end), drawn again while out of
/// range (each draw is, with probability 2^-32).
fn p256_generate(rng: &mut dyn CryptoRng) -> Result<p256_key::Key> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    for _ in 0..64 {
        rng.fill_bytes(&mut *bytes);
        bytes.reverse();
        if let Ok(key) = p256_key::Key::from_bytes(&*bytes) {
            return Ok(key);
        }
    }
    // 64 draws out of range: the RNG is broken, and no key is better than
    // one from it.
    Err(Error::Tampered)
}

/// An Ed25519 signature. Not inlined, nor is its check: each one's
/// working space is gone before the other's begins.
#[cfg(feature = "ed25519")]
#[inline(never)]
fn ed25519_sign(
    seed: &[u8; 32],
    public: &ed25519_dalek::VerifyingKey,
    input: &[u8],
) -> ed25519_dalek::Signature {
    let expanded = ed25519_dalek::hazmat::ExpandedSecretKey::from(seed);
    ed25519_dalek::hazmat::raw_sign::<sha2::Sha512>(&expanded, input, public)
}

/// Checks an Ed25519 signature just made against the record's public key.
#[cfg(feature = "ed25519")]
#[inline(never)]
fn ed25519_verify(
    public: &ed25519_dalek::VerifyingKey,
    input: &[u8],
    signature: &ed25519_dalek::Signature,
) -> Result<()> {
    ed25519_dalek::hazmat::raw_verify::<sha2::Sha512>(public, input, signature)
        .map_err(|_| Error::Tampered)
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;

    use super::*;

    fn key(algorithm: Algorithm, seed: u64) -> (Private, [u8; MAX_PUBLIC]) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let private = Private::generate(algorithm, &mut rng).unwrap();
        let mut public = [0u8; MAX_PUBLIC];
        private.write_public(&mut public).unwrap();
        (private, public)
    }

    /// An Ed25519 signature is only written out once it verifies under the
    /// record's public key: a key whose secret and record disagree (what a
    /// fault in the seed or the copy in RAM looks like from outside) signs
    /// nothing, and says `65 81`.
    #[cfg(feature = "ed25519")]
    #[test]
    fn an_ed25519_signature_that_does_not_verify_never_leaves() {
        let len = Algorithm::Ed25519.public_len();
        let (signer, public) = key(Algorithm::Ed25519, 1);
        let (_, other) = key(Algorithm::Ed25519, 2);
        let input = [0x42; 32];
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut out = [0u8; MAX_OUTPUT];
        assert!(
            signer
                .sign(&public[..len], &input, &mut out, &mut rng)
                .is_ok()
        );
        let mut out = [0u8; MAX_OUTPUT];
        assert_eq!(
            signer.sign(&other[..len], &input, &mut out, &mut rng).err(),
            Some(Error::Tampered)
        );
        assert!(out.iter().all(|&b| b == 0), "a signature was written");
        assert_eq!(Error::Tampered.status(), apdu::Status::MemoryFailure);
    }

    /// An ECDSA signature leaves only if its two computations agree: a
    /// fault that strikes one of them (a flipped bit of the scalar) signs
    /// nothing and says `65 81`, whichever computation it strikes, and the
    /// next signature, unstruck, is the one RFC 6979 gives.
    #[test]
    fn a_fault_in_either_ecdsa_computation_gives_no_signature() {
        for algorithm in [Algorithm::P256, Algorithm::P384]
            .into_iter()
            .filter(|a| a.is_built())
        {
            let len = algorithm.public_len();
            let (signer, public) = key(algorithm, 1);
            let input = [0x42; 32];
            let mut rng = ChaCha20Rng::seed_from_u64(3);
            let mut good = [0u8; MAX_OUTPUT];
            let good = signer
                .sign(&public[..len], &input, &mut good, &mut rng)
                .unwrap()
                .to_vec();
            for struck in 0..2 {
                let mut out = [0u8; MAX_OUTPUT];
                // The first computation, or (after one clean call of the
                // fault's hook) the second.
                ec::fault::arm_at(struck);
                assert_eq!(
                    signer
                        .sign(&public[..len], &input, &mut out, &mut rng)
                        .err(),
                    Some(Error::Tampered),
                    "{algorithm:?}, computation {struck}"
                );
                assert!(
                    out.iter().all(|&b| b == 0),
                    "{algorithm:?} wrote a signature"
                );
            }
            let mut out = [0u8; MAX_OUTPUT];
            let again = signer
                .sign(&public[..len], &input, &mut out, &mut rng)
                .unwrap();
            assert_eq!(again, &good[..], "{algorithm:?}");
        }
    }
}
