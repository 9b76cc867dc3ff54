//! Secrets at rest and in comparison.
//!
//! - PINs and PUKs are stored as HMAC-SHA256 under a per-card random key and
//!   compared in constant time.
//! - Private keys, the management key and the PIN-hashing key are stored
//!   *sealed*: XORed with an HMAC-SHA256 keystream under the device key, a
//!   per-device secret the platform hands the applet (an MCU's unique key
//!   in firmware; the simulator keeps it in the card image's header), with a
//!   fresh random nonce per write. Flash alone does not reveal them.
//! - Every buffer that held a secret is zeroized.

use hmac::{Hmac, KeyInit, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// Largest secret the applet seals: a P-256 scalar or an AES-256 key.
pub const MAX_SECRET: usize = 32;
const NONCE: usize = 8;
/// Bytes a sealed secret of `n` bytes takes.
pub const fn sealed_len(n: usize) -> usize {
    NONCE + n
}

/// The per-device key that seals secrets at rest. Wiped on drop.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct DeviceKey([u8; 32]);

impl DeviceKey {
    /// The device key the platform provides.
    pub const fn new(key: [u8; 32]) -> Self {
        DeviceKey(key)
    }

    fn keystream(&self, label: u16, nonce: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let mut mac = HmacSha256::new_from_slice(&self.0).map_err(|_| Error::Flash)?;
        mac.update(b"s9card seal v1");
        mac.update(&label.to_be_bytes());
        mac.update(nonce);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        Ok(out)
    }

    /// Seals `secret` (at most 32 bytes) for the record `label` into `out`,
    /// returning the sealed bytes.
    pub fn seal<'o>(
        &self,
        label: u16,
        secret: &[u8],
        rng: &mut dyn CryptoRng,
        out: &'o mut [u8],
    ) -> Result<&'o [u8]> {
        let out = out
            .get_mut(..sealed_len(secret.len()))
            .ok_or(Error::NoSpace)?;
        let (nonce, body) = out.split_at_mut(NONCE);
        rng.fill_bytes(nonce);
        let stream = self.keystream(label, nonce)?;
        if secret.len() > MAX_SECRET {
            return Err(Error::NoSpace);
        }
        for ((o, s), k) in body.iter_mut().zip(secret).zip(stream.iter()) {
            *o = s ^ k;
        }
        Ok(out)
    }

    /// Opens sealed bytes into `out`, returning the secret's length.
    pub fn open(&self, label: u16, sealed: &[u8], out: &mut [u8; MAX_SECRET]) -> Result<usize> {
        if sealed.len() < NONCE || sealed.len() > sealed_len(MAX_SECRET) {
            return Err(Error::Flash);
        }
        let (nonce, body) = sealed.split_at(NONCE);
        let stream = self.keystream(label, nonce)?;
        for ((o, s), k) in out.iter_mut().zip(body).zip(stream.iter()) {
            *o = s ^ k;
        }
        Ok(body.len())
    }
}

/// A passcode hash as stored.
pub type Digest = [u8; 32];

/// HMAC-SHA256 of a passcode field under the card's hashing key, with the
/// reference (PIN or PUK) mixed in.
pub fn hash_passcode(key: &[u8; 32], reference: u8, field: &[u8; 8]) -> Result<Digest> {
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| Error::Flash)?;
    mac.update(&[reference]);
    mac.update(field);
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

/// Constant-time equality of two digests.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}
