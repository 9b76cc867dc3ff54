//! Secrets at rest and in comparison.
//!
//! - PINs and PUKs are stored as HMAC-SHA256 under a per-card random key and
//!   compared in constant time.
//! - Private keys, the management key and the PIN-hashing key are stored
//!   *sealed* with XChaCha20-Poly1305 under the device key, a per-device
//!   secret the platform hands the applet (an MCU's unique key in firmware;
//!   the simulator keeps it in the card image's header), with a fresh
//!   random 24-byte nonce per write. The seal authenticates, besides the
//!   secret, what the secret is bound to: the record's store key, its
//!   purpose, and the record's clear header (version, algorithm, policies,
//!   public key). A record changed on flash, moved to another key, or read
//!   with another device key fails to open and is never used: the command
//!   answers `65 81` before any counter moves.
//! - Every buffer that held a secret is zeroized.

use card_os::store::Key;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand_core::CryptoRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// Largest secret the applet seals: room for an RSA-4096 private key in
/// CRT form (five 256-byte parts with their TLV headers).
pub const MAX_SECRET: usize = 1_408;
const NONCE: usize = 24;
const TAG: usize = 16;
/// What sealing adds to a secret: the nonce and the authentication tag.
pub const OVERHEAD: usize = NONCE + TAG;
/// Bytes a sealed secret of `n` bytes takes.
pub const fn sealed_len(n: usize) -> usize {
    n + OVERHEAD
}

/// What a sealed secret is for. Part of what the seal authenticates, so a
/// sealed management key cannot be presented as a slot key, say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The key PIN and PUK digests are made with.
    PinHashing,
    /// The management key.
    ManagementKey,
    /// A slot's private key.
    SlotKey,
}

impl Purpose {
    const fn byte(self) -> u8 {
        match self {
            Purpose::PinHashing => 1,
            Purpose::ManagementKey => 2,
            Purpose::SlotKey => 3,
        }
    }
}

/// What a sealed secret is bound to: the record it lives in, its purpose,
/// and the record's clear header.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    /// The store key of the record (for a staged key, the slot's key it
    /// will live under).
    pub key: Key,
    /// What the secret is for.
    pub purpose: Purpose,
    /// The record's bytes in clear.
    pub header: &'a [u8],
}

impl Binding<'_> {
    /// The associated data: a digest of the binding, so that headers of any
    /// length (an RSA modulus, later) need no buffer of their own.
    fn associated_data(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"s9card seal v2");
        h.update(self.key.get().to_be_bytes());
        h.update([self.purpose.byte()]);
        h.update((self.header.len() as u32).to_be_bytes());
        h.update(self.header);
        h.finalize().into()
    }
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

    fn cipher(&self) -> Result<XChaCha20Poly1305> {
        XChaCha20Poly1305::new_from_slice(&self.0).map_err(|_| Error::Tampered)
    }

    /// Seals `secret` (at most [`MAX_SECRET`] bytes) bound to `binding`
    /// into `out`: nonce, ciphertext, tag. Returns the sealed bytes.
    pub fn seal<'o>(
        &self,
        binding: &Binding<'_>,
        secret: &[u8],
        rng: &mut dyn CryptoRng,
        out: &'o mut [u8],
    ) -> Result<&'o [u8]> {
        if secret.len() > MAX_SECRET {
            return Err(Error::NoSpace);
        }
        let out = out
            .get_mut(..sealed_len(secret.len()))
            .ok_or(Error::NoSpace)?;
        let (nonce, rest) = out.split_at_mut(NONCE);
        let (body, tag) = rest.split_at_mut(secret.len());
        rng.fill_bytes(nonce);
        body.copy_from_slice(secret);
        let nonce = XNonce::try_from(&*nonce).map_err(|_| Error::NoSpace)?;
        let sealed =
            self.cipher()?
                .encrypt_inout_detached(&nonce, &binding.associated_data(), body.into());
        match sealed {
            Ok(t) => {
                tag.copy_from_slice(&t);
                Ok(out)
            }
            Err(_) => {
                out.zeroize();
                Err(Error::NoSpace)
            }
        }
    }

    /// Opens sealed bytes bound to `binding` into `out`, returning the
    /// secret. Anything that fails its check (a changed byte, another
    /// record's seal, another device's key) is [`Error::Tampered`], and
    /// `out` is left wiped.
    pub fn open<'o>(
        &self,
        binding: &Binding<'_>,
        sealed: &[u8],
        out: &'o mut [u8],
    ) -> Result<&'o mut [u8]> {
        let body_len = sealed.len().checked_sub(OVERHEAD).ok_or(Error::Tampered)?;
        let (nonce, rest) = sealed.split_at(NONCE);
        let (body, tag) = rest.split_at(body_len);
        let out = out.get_mut(..body_len).ok_or(Error::Tampered)?;
        out.copy_from_slice(body);
        let nonce = XNonce::try_from(nonce).map_err(|_| Error::Tampered)?;
        let tag = Tag::try_from(tag).map_err(|_| Error::Tampered)?;
        let opened = self.cipher()?.decrypt_inout_detached(
            &nonce,
            &binding.associated_data(),
            (&mut *out).into(),
            &tag,
        );
        match opened {
            Ok(()) => Ok(out),
            Err(_) => {
                out.zeroize();
                Err(Error::Tampered)
            }
        }
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

/// The tag of a retry counter's counts ([`crate::pin::Tries::sealed`]):
/// HMAC-SHA-256 under the identity's passcode key, over a label the
/// passcode digests never start with, the passcode's reference and the
/// counts.
pub fn tag_counter(key: &[u8; 32], reference: u8, counts: [u8; 2]) -> Result<Digest> {
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| Error::Flash)?;
    mac.update(b"s9card retry counter");
    mac.update(&[reference]);
    mac.update(&counts);
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

/// Constant-time equality of two digests.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}
