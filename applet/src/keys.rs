//! Asymmetric keys in slots: P-256 generation, import, ECDSA and ECDH.

use card_os::Persistent;
use card_os::store::Key;
use p256::elliptic_curve::Generate;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{PublicKey, SecretKey};
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::secrets::{DeviceKey, MAX_SECRET, sealed_len};
use crate::slot::{ALG_P256, PinPolicy, Slot, TouchPolicy};

const VERSION: u8 = 1;
/// An uncompressed P-256 point.
pub const POINT: usize = 65;
const RECORD: usize = 5 + POINT + sealed_len(32);

/// How a key came to be in its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Generated on the card.
    Generated,
    /// Imported.
    Imported,
}

impl Origin {
    /// Yubico's metadata byte.
    pub const fn byte(self) -> u8 {
        match self {
            Origin::Generated => 1,
            Origin::Imported => 2,
        }
    }
}

/// A slot's key as stored: public part in clear, private part sealed.
pub struct KeyRecord {
    /// Algorithm byte (`11`).
    pub algorithm: u8,
    /// PIN policy.
    pub pin: PinPolicy,
    /// Touch policy.
    pub touch: TouchPolicy,
    /// Generated or imported.
    pub origin: Origin,
    /// Uncompressed public point.
    pub public: [u8; POINT],
    sealed: [u8; sealed_len(32)],
}

impl KeyRecord {
    /// A record for `secret`, sealed under the device key for `label`.
    pub fn new(
        secret: &SecretKey,
        policy: (PinPolicy, TouchPolicy),
        origin: Origin,
        label: Key,
        device: &DeviceKey,
        rng: &mut dyn CryptoRng,
    ) -> Result<KeyRecord> {
        let point = secret.public_key().to_sec1_point(false);
        let mut public = [0u8; POINT];
        public.copy_from_slice(point.as_bytes().get(..POINT).ok_or(Error::Flash)?);
        let scalar = Zeroizing::new(secret.to_bytes());
        let mut sealed = [0u8; sealed_len(32)];
        device.seal(label.get(), &scalar, rng, &mut sealed)?;
        Ok(KeyRecord {
            algorithm: ALG_P256,
            pin: policy.0,
            touch: policy.1,
            origin,
            public,
            sealed,
        })
    }

    /// The stored bytes.
    pub fn encode(&self) -> [u8; RECORD] {
        let mut out = [0u8; RECORD];
        let (head, rest) = out.split_at_mut(5);
        head.copy_from_slice(&[
            VERSION,
            self.algorithm,
            self.pin.byte(),
            self.touch.byte(),
            self.origin.byte(),
        ]);
        let (public, sealed) = rest.split_at_mut(POINT);
        public.copy_from_slice(&self.public);
        sealed.copy_from_slice(&self.sealed);
        out
    }

    /// Reads the record under `key`; `None` if there is none.
    pub fn load(store: &mut dyn Persistent, key: Key, slot: Slot) -> Result<Option<KeyRecord>> {
        let mut buf = [0u8; RECORD];
        let Some(rec) = store.read(key, &mut buf)? else {
            return Ok(None);
        };
        let [version, algorithm, pin, touch, origin, rest @ ..] = rec else {
            return Err(Error::Flash);
        };
        let (public, sealed) = rest.split_at_checked(POINT).ok_or(Error::Flash)?;
        if *version != VERSION || *algorithm != ALG_P256 {
            return Err(Error::Flash);
        }
        let origin = match origin {
            1 => Origin::Generated,
            2 => Origin::Imported,
            _ => return Err(Error::Flash),
        };
        Ok(Some(KeyRecord {
            algorithm: *algorithm,
            pin: PinPolicy::from_byte(*pin, slot).map_err(|_| Error::Flash)?,
            touch: TouchPolicy::from_byte(*touch).map_err(|_| Error::Flash)?,
            origin,
            public: public.try_into().map_err(|_| Error::Flash)?,
            sealed: sealed.try_into().map_err(|_| Error::Flash)?,
        }))
    }

    /// Opens the private key; `label` is the record key it was sealed for.
    pub fn secret(&self, label: Key, device: &DeviceKey) -> Result<SecretKey> {
        let mut raw = [0u8; MAX_SECRET];
        let n = device.open(label.get(), &self.sealed, &mut raw)?;
        let key =
            SecretKey::from_slice(raw.get(..n).ok_or(Error::Flash)?).map_err(|_| Error::Flash);
        raw.zeroize();
        key
    }
}

/// A fresh key pair from the card's RNG.
pub fn generate(rng: &mut dyn CryptoRng) -> SecretKey {
    SecretKey::generate_from_rng(rng)
}

/// A private key from an imported scalar (32 bytes, 1 ≤ d < n).
pub fn import(scalar: &[u8]) -> Result<SecretKey> {
    if scalar.len() != 32 {
        return Err(Error::BadData);
    }
    SecretKey::from_slice(scalar).map_err(|_| Error::BadData)
}

/// ECDSA over a digest as PIV tools send it, DER-encoded into `out`.
///
/// The digest is fitted to the 32-byte field as ECDSA prescribes: a shorter
/// one is left-padded with zeros, a longer one keeps its leftmost 32 bytes.
pub fn sign<'o>(secret: &SecretKey, digest: &[u8], out: &'o mut [u8]) -> Result<&'o [u8]> {
    if digest.is_empty() || digest.len() > 64 {
        return Err(Error::BadData);
    }
    let mut fitted = [0u8; 32];
    let n = digest.len().min(32);
    let src = digest.get(..n).ok_or(Error::BadData)?;
    fitted
        .get_mut(32 - n..)
        .ok_or(Error::BadData)?
        .copy_from_slice(src);
    // RFC 6979 nonces: deterministic, so no RNG failure can leak the key.
    let (signature, _) = ecdsa::hazmat::sign_prehashed_rfc6979::<p256::NistP256, sha2::Sha256>(
        &secret.to_nonzero_scalar(),
        &fitted,
        &[],
    );
    let der = signature.to_der();
    let der = der.as_bytes();
    let dst = out.get_mut(..der.len()).ok_or(Error::NoSpace)?;
    dst.copy_from_slice(der);
    Ok(dst)
}

/// ECDH with a peer's uncompressed point: the shared x-coordinate.
pub fn ecdh(secret: &SecretKey, peer: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    if peer.len() != POINT {
        return Err(Error::BadData);
    }
    let peer = PublicKey::from_sec1_bytes(peer).map_err(|_| Error::BadData)?;
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(shared.raw_secret_bytes());
    Ok(out)
}
