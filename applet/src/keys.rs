//! Asymmetric keys in slots: P-256 generation, import, ECDSA and ECDH.

use card_os::Persistent;
use card_os::store::{Key, Op};
use p256::elliptic_curve::Generate;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{PublicKey, SecretKey};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secrets::{Binding, DeviceKey, Purpose, sealed_len};
use crate::session::{Admin, Authorized, PinVerified};
use crate::slot::{ALG_P256, PinPolicy, Slot, TouchPolicy};

/// Record layout version: 2 seals the scalar with an AEAD bound to the
/// slot and to the whole clear part (policies, origin, public key).
const VERSION: u8 = 2;
/// An uncompressed P-256 point.
pub const POINT: usize = 65;
const SCALAR: usize = 32;
/// The clear part: version, algorithm, PIN and touch policy, origin, point.
const HEADER: usize = 5 + POINT;
/// A key record's length on flash.
pub const RECORD: usize = HEADER + sealed_len(SCALAR);

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

/// A slot's key as stored: public part in clear, private part sealed, and
/// the seal binding both to the slot the key lives in.
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
    /// The slot's record key the seal is bound to.
    label: Key,
    sealed: [u8; sealed_len(SCALAR)],
}

impl KeyRecord {
    /// A record for `secret`, sealed under the device key for `label` (the
    /// slot's record key, also for a key staged for that slot).
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
        let mut record = KeyRecord {
            algorithm: ALG_P256,
            pin: policy.0,
            touch: policy.1,
            origin,
            public,
            label,
            sealed: [0u8; sealed_len(SCALAR)],
        };
        let scalar = Zeroizing::new(secret.to_bytes());
        let header = record.header();
        device.seal(&record.binding(&header), &scalar, rng, &mut record.sealed)?;
        Ok(record)
    }

    fn header(&self) -> [u8; HEADER] {
        let mut out = [0u8; HEADER];
        let (head, public) = out.split_at_mut(5);
        head.copy_from_slice(&[
            VERSION,
            self.algorithm,
            self.pin.byte(),
            self.touch.byte(),
            self.origin.byte(),
        ]);
        public.copy_from_slice(&self.public);
        out
    }

    fn binding<'h>(&self, header: &'h [u8]) -> Binding<'h> {
        Binding {
            key: self.label,
            purpose: Purpose::SlotKey,
            header,
        }
    }

    /// The stored bytes.
    pub fn encode(&self) -> [u8; RECORD] {
        let mut out = [0u8; RECORD];
        let (header, sealed) = out.split_at_mut(HEADER);
        header.copy_from_slice(&self.header());
        sealed.copy_from_slice(&self.sealed);
        out
    }

    /// Reads the record under `key`, the key of `slot` or one staged for
    /// it; `None` if there is none. The seal is checked here, so metadata,
    /// attestation and renewal never report or install a record that was
    /// changed on flash: that is [`Error::Tampered`].
    pub fn load(
        store: &mut dyn Persistent,
        key: Key,
        slot: Slot,
        device: &DeviceKey,
    ) -> Result<Option<KeyRecord>> {
        let mut buf = [0u8; RECORD];
        let Some(rec) = store.read(key, &mut buf)? else {
            return Ok(None);
        };
        let (header, sealed) = rec.split_at_checked(HEADER).ok_or(Error::Tampered)?;
        let [version, algorithm, pin, touch, origin, public @ ..] = header else {
            return Err(Error::Tampered);
        };
        if *version != VERSION || *algorithm != ALG_P256 {
            return Err(Error::Tampered);
        }
        let origin = match origin {
            1 => Origin::Generated,
            2 => Origin::Imported,
            _ => return Err(Error::Tampered),
        };
        let record = KeyRecord {
            algorithm: *algorithm,
            pin: PinPolicy::from_byte(*pin, slot).map_err(|_| Error::Tampered)?,
            touch: TouchPolicy::from_byte(*touch).map_err(|_| Error::Tampered)?,
            origin,
            public: public.try_into().map_err(|_| Error::Tampered)?,
            label: crate::layout::slot_key(slot),
            sealed: sealed.try_into().map_err(|_| Error::Tampered)?,
        };
        // The seal covers the bytes as they are on flash: a value the
        // parsers above would read the same way is still a change.
        if record.header() != header {
            return Err(Error::Tampered);
        }
        // Opened once to check it; the scalar is wiped at once.
        drop(record.secret(device)?);
        Ok(Some(record))
    }

    /// ECDSA over `digest` with this key, DER into `out`; the key's PIN
    /// policy must have let this use through.
    pub fn sign<'o>(
        &self,
        device: &DeviceKey,
        digest: &[u8],
        out: &'o mut [u8],
        _authorized: &Authorized<'_>,
    ) -> Result<&'o [u8]> {
        sign(&self.secret(device)?, digest, out)
    }

    /// ECDH with a peer's point: the shared secret.
    pub fn agree(
        &self,
        device: &DeviceKey,
        peer: &[u8],
        _authorized: &Authorized<'_>,
    ) -> Result<Zeroizing<[u8; 32]>> {
        ecdh(&self.secret(device)?, peer)
    }

    /// Signs an attestation certificate for `subject` with this key (the
    /// attestation key `F9`, whose policy needs no PIN).
    pub fn attest(
        &self,
        device: &DeviceKey,
        out: &mut apdu::tlv::Writer<'_>,
        subject: &crate::attest::Subject<'_>,
        issuer: &[u8],
        serial: [u8; 16],
        _authorized: &Authorized<'_>,
    ) -> Result<()> {
        crate::attest::certificate(out, subject, issuer, &self.secret(device)?, serial)
    }

    /// The same key sealed for another slot (MOVE KEY).
    pub fn moved(
        &self,
        device: &DeviceKey,
        to: Key,
        rng: &mut dyn CryptoRng,
        _admin: &Admin,
    ) -> Result<KeyRecord> {
        let secret = self.secret(device)?;
        KeyRecord::new(
            &secret,
            (self.pin, self.touch),
            self.origin,
            to,
            device,
            rng,
        )
    }

    /// The private key, for the fuzz model that checks it never leaves the
    /// card in a response: the card itself only uses it through the methods
    /// above.
    #[cfg(feature = "testing")]
    pub fn secret_for_tests(&self, device: &DeviceKey) -> Result<SecretKey> {
        self.secret(device)
    }

    /// Opens the private key.
    fn secret(&self, device: &DeviceKey) -> Result<SecretKey> {
        let mut raw = Zeroizing::new([0u8; SCALAR]);
        let header = self.header();
        let scalar = device.open(&self.binding(&header), &self.sealed, &mut *raw)?;
        SecretKey::from_slice(scalar).map_err(|_| Error::Tampered)
    }
}

/// MOVE KEY: the key under `from` sealed anew under `to` and removed from
/// `from` in one transaction; with no `to`, deleted.
pub fn relocate(
    store: &mut dyn Persistent,
    record: &KeyRecord,
    from: Key,
    to: Option<Key>,
    device: &DeviceKey,
    rng: &mut dyn CryptoRng,
    admin: &Admin,
) -> Result<()> {
    match to {
        None => store.commit(&[Op::Delete(from)])?,
        Some(to) => {
            let moved = record.moved(device, to, rng, admin)?.encode();
            store.commit(&[Op::Put(to, &moved), Op::Delete(from)])?;
        }
    }
    Ok(())
}

/// COMMIT RENEWAL: the key staged for `slot` and its new certificate
/// object installed together, the staging area emptied, in one
/// transaction. The staged record is checked (its seal opens for this
/// slot) before it is installed.
pub fn install_staged(
    store: &mut dyn Persistent,
    slot: Slot,
    certificate: &[u8],
    device: &DeviceKey,
    _admin: &Admin,
) -> Result<()> {
    let staged = crate::layout::staged_key(slot);
    let record = KeyRecord::load(store, staged, slot, device)?
        .ok_or(Error::KeyNotFound)?
        .encode();
    let cert = slot
        .certificate_tag()
        .and_then(crate::layout::object)
        .ok_or(Error::BadParameters)?;
    store.commit(&[
        Op::Put(crate::layout::slot_key(slot), &record),
        Op::Put(cert, certificate),
        Op::Delete(staged),
    ])?;
    Ok(())
}

/// ABORT RENEWAL: forgets the key staged for `slot`.
pub fn drop_staged(store: &mut dyn Persistent, slot: Slot, _admin: &Admin) -> Result<()> {
    let staged = crate::layout::staged_key(slot);
    if store.len_of(staged).is_none() {
        return Err(Error::KeyNotFound);
    }
    store.commit(&[Op::Delete(staged)])?;
    Ok(())
}

/// A fresh key pair from the card's RNG, for GENERATE (and, with the PIN
/// too, for a renewal's staged key).
pub fn generate(rng: &mut dyn CryptoRng, _admin: &Admin) -> SecretKey {
    SecretKey::generate_from_rng(rng)
}

/// A renewal's staged key: the management key and the PIN of the holder or
/// sponsor renewing.
pub fn generate_staged(rng: &mut dyn CryptoRng, _admin: &Admin, _pin: &PinVerified) -> SecretKey {
    SecretKey::generate_from_rng(rng)
}

/// The card's own attestation key, made with its factory state (on a blank
/// card, after RESET, or for SET SERIAL): the one key no management key
/// stands behind.
pub(crate) fn attestation_key(rng: &mut dyn CryptoRng) -> SecretKey {
    SecretKey::generate_from_rng(rng)
}

/// A private key from an imported scalar (32 bytes, 1 ≤ d < n).
pub fn import(scalar: &[u8], _admin: &Admin) -> Result<SecretKey> {
    if scalar.len() != 32 {
        return Err(Error::BadData);
    }
    SecretKey::from_slice(scalar).map_err(|_| Error::BadData)
}

/// ECDSA over a digest as PIV tools send it, DER-encoded into `out`.
///
/// The digest is fitted to the 32-byte field as ECDSA prescribes: a shorter
/// one is left-padded with zeros, a longer one keeps its leftmost 32 bytes.
pub(crate) fn sign<'o>(secret: &SecretKey, digest: &[u8], out: &'o mut [u8]) -> Result<&'o [u8]> {
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
fn ecdh(secret: &SecretKey, peer: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    if peer.len() != POINT {
        return Err(Error::BadData);
    }
    let peer = PublicKey::from_sec1_bytes(peer).map_err(|_| Error::BadData)?;
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(shared.raw_secret_bytes());
    Ok(out)
}
