//! P-256 with RustCrypto's `p256`: the host's back end, and the reference
//! the card's assembly back end ([`super::p256_cortex_m4`]) is checked
//! against. Both offer the same operations on the same bytes.

use p256::NistP256;
use zeroize::Zeroizing;

use super::ec;
use crate::error::{Error, Result};

/// A P-256 private key (wiped on drop by `p256`).
pub struct Key(p256::SecretKey);

impl Key {
    /// The key whose scalar is the big-endian `bytes` (32 of them); one
    /// outside 1..n is [`Error::BadData`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Key> {
        if bytes.len() != 32 {
            return Err(Error::BadData);
        }
        p256::SecretKey::from_slice(bytes)
            .map(Key)
            .map_err(|_| Error::BadData)
    }

    /// The scalar, big-endian, into `dst` (32 bytes).
    pub fn write_secret(&self, dst: &mut [u8]) -> Result<()> {
        let bytes = Zeroizing::new(self.0.to_bytes());
        dst.copy_from_slice(bytes.get(..dst.len()).ok_or(Error::NoSpace)?);
        Ok(())
    }

    /// The uncompressed public point into `dst` (65 bytes).
    pub fn write_public(&self, dst: &mut [u8]) -> Result<()> {
        ec::public(&self.0, dst)
    }

    /// ECDSA with an RFC 6979 nonce over a fitted digest: `r || s`,
    /// computed twice and given out only if both agree ([`ec::sign`]).
    pub fn sign(&self, fitted: &[u8; 32]) -> Result<[u8; 64]> {
        let signature = ec::sign::<NistP256, sha2::Sha256>(&self.0, &(*fitted).into())?;
        Ok(signature.to_bytes().into())
    }

    /// ECDH with an uncompressed peer point: the shared x-coordinate into
    /// `out` (32 bytes).
    pub fn agree(&self, peer: &[u8], out: &mut [u8]) -> Result<()> {
        ec::agree(&self.0, peer, out)
    }
}

/// Whether `signature` (`r || s`) is a valid ECDSA signature of the fitted
/// digest under the uncompressed point `public`.
pub fn verify(public: &[u8], fitted: &[u8; 32], signature: &[u8; 64]) -> bool {
    ecdsa::Signature::<NistP256>::from_slice(signature)
        .is_ok_and(|s| ec::verify::<NistP256>(public, fitted, &s).is_ok())
}
