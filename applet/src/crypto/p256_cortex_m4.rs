//! P-256 in Emil Lenngren's Cortex-M4 assembly (P256-Cortex-M4, through
//! the `p256-cortex-m4` crate): the card's back end, offering what
//! [`super::p256_rustcrypto`] offers on the same bytes, and checked
//! against it (`simulator/tests/firmware.rs`, [`super::p256_sweep`]).
//!
//! How it meets the reference's behaviour:
//!
//! - **Nonces.** The library draws `k` from an RNG it is handed and signs
//!   with the first one in range. The RNG handed to it here
//!   ([`Rfc6979`]) yields RFC 6979's candidates (HMAC-DRBG over the key
//!   and the digest, SHA-256), so the nonce, and the signature, are the
//!   ones RustCrypto's back end makes: deterministic, independent of the
//!   card's RNG, never repeated across digests.
//! - **The fault check** is the card's (see [`super`]): two computations
//!   that must agree, each loading its nonce and scalar from the key's
//!   bytes afresh.

use p256_cortex_m4::{PublicKey, SecretKey, Signature};
use rfc6979::KGenerator;
use rfc6979::bigint::U256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secrets::same;

/// The order n of P-256's base point.
const ORDER: U256 =
    U256::from_be_hex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");

/// A P-256 private key: its scalar's big-endian bytes, checked in range
/// once; every operation loads them into the library's form anew.
pub struct Key {
    bytes: Zeroizing<[u8; 32]>,
}

impl Key {
    /// The key whose scalar is the big-endian `bytes` (32 of them); one
    /// outside 1..n is [`Error::BadData`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Key> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| Error::BadData)?;
        let key = Key {
            bytes: Zeroizing::new(bytes),
        };
        key.scalar().map_err(|_| Error::BadData)?;
        Ok(key)
    }

    /// The scalar in the library's form, wiped when dropped (its type
    /// is not wiped on drop by itself).
    fn scalar(&self) -> Result<Zeroizing<SecretKey>> {
        SecretKey::from_bytes(&*self.bytes)
            .map(Zeroizing::new)
            .map_err(|_| Error::Tampered)
    }

    /// The scalar, big-endian, into `dst` (32 bytes).
    pub fn write_secret(&self, dst: &mut [u8]) -> Result<()> {
        dst.copy_from_slice(self.bytes.get(..dst.len()).ok_or(Error::NoSpace)?);
        Ok(())
    }

    /// The uncompressed public point into `dst` (65 bytes).
    pub fn write_public(&self, dst: &mut [u8]) -> Result<()> {
        let point = self.scalar()?.public_key().to_uncompressed_sec1_bytes();
        dst.copy_from_slice(point.get(..dst.len()).ok_or(Error::NoSpace)?);
        Ok(())
    }

    /// ECDSA with an RFC 6979 nonce over a fitted digest: `r || s`, given
    /// out only if two computations agree (they disagree only under a
    /// fault: [`Error::Tampered`]).
    pub fn sign(&self, fitted: &[u8; 32]) -> Result<[u8; 64]> {
        let first = self.sign_once(fitted)?;
        let second = self.sign_once(fitted)?;
        if !same(&first, &second) {
            return Err(Error::Tampered);
        }
        Ok(first)
    }

    /// One signature: the nonce from the key's bytes as they are now, the
    /// scalar likewise. Not inlined, so that the two computations share no
    /// value the compiler could keep from one for the other.
    #[inline(never)]
    fn sign_once(&self, fitted: &[u8; 32]) -> Result<[u8; 64]> {
        let mut nonces = Rfc6979(KGenerator::new(&*self.bytes, fitted, &[], &ORDER));
        let scalar = self.scalar()?;
        Ok(scalar
            .sign_prehashed(fitted, &mut nonces)
            .to_untagged_bytes())
    }

    /// ECDH with an uncompressed peer point (`04 x y`): the shared
    /// x-coordinate into `out` (32 bytes). Any other form (the library's
    /// decoder would take SEC1's hybrid `06`/`07` too, which the reference
    /// refuses) or a point not on the curve is [`Error::BadData`].
    pub fn agree(&self, peer: &[u8], out: &mut [u8]) -> Result<()> {
        if peer.len() != 65 || peer.first() != Some(&0x04) {
            return Err(Error::BadData);
        }
        let peer = PublicKey::from_sec1_bytes(peer).map_err(|_| Error::BadData)?;
        let shared = Zeroizing::new(self.scalar()?.agree(&peer));
        out.copy_from_slice(shared.as_bytes().get(..out.len()).ok_or(Error::NoSpace)?);
        Ok(())
    }
}

/// Whether `signature` (`r || s`) is a valid ECDSA signature of the fitted
/// digest under the uncompressed point `public`.
pub fn verify(public: &[u8], fitted: &[u8; 32], signature: &[u8; 64]) -> bool {
    match (
        PublicKey::from_sec1_bytes(public),
        Signature::from_untagged_bytes(signature),
    ) {
        (Ok(public), Ok(signature)) => public.verify_prehashed(fitted, &signature),
        _ => false,
    }
}

/// RFC 6979's nonce candidates as the RNG the library draws `k` from. The
/// library reads `k` as eight little-endian words, so each big-endian
/// candidate is handed over reversed; it signs with the first in range and
/// draws again only if r or s came out zero, as RFC 6979 prescribes.
struct Rfc6979<'a>(KGenerator<'a, sha2::Sha256, U256>);

impl rand_core_06::RngCore for Rfc6979<'_> {
    fn next_u32(&mut self) -> u32 {
        rand_core_06::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core_06::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32) {
            let mut k = Zeroizing::new([0u8; 32]);
            self.0.fill_next_k(&mut *k);
            k.reverse();
            chunk.copy_from_slice(k.get(..chunk.len()).unwrap_or_default());
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> core::result::Result<(), rand_core_06::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core_06::CryptoRng for Rfc6979<'_> {}
