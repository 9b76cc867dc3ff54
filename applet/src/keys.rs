//! Keys in slots: how a slot's key is kept (public part in clear, private
//! part sealed, both bound to the slot), and the operations the session's
//! proofs allow on it. The arithmetic is [`crate::crypto`]'s.

use card_os::Persistent;
use card_os::store::{Key, Op};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::algorithm::{Algorithm, MAX_PUBLIC, MAX_SECRET};
use crate::crypto::{MAX_OUTPUT, Private, Shared};
use crate::error::{Error, Result};
use crate::secrets::{Binding, DeviceKey, Purpose, sealed_len};
use crate::session::{Admin, Authorized, PinVerified};
use crate::slot::{KeySlot, PinPolicy, Slot, TouchPolicy};

/// Record layout version: 2 seals the private key with an AEAD bound to
/// the slot and to the whole clear part (algorithm, policies, origin,
/// public key). P-256 records written before other algorithms existed
/// have the same layout.
const VERSION: u8 = 2;
/// Version, algorithm, PIN and touch policy, origin.
const FIXED: usize = 5;
/// The longest clear part: an RSA-4096 modulus after the fixed bytes.
const MAX_HEADER: usize = FIXED + MAX_PUBLIC;
/// The longest sealed part.
const MAX_SEALED: usize = sealed_len(MAX_SECRET);
/// The longest key record (RSA-4096): 1,837 bytes.
pub const MAX_RECORD: usize = MAX_HEADER + MAX_SEALED;

/// A key record's length on flash for `algorithm`.
pub const fn record_len(algorithm: Algorithm) -> usize {
    FIXED + algorithm.public_len() + sealed_len(algorithm.secret_len())
}

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
    /// The key's algorithm.
    pub algorithm: Algorithm,
    /// PIN policy.
    pub pin: PinPolicy,
    /// Touch policy.
    pub touch: TouchPolicy,
    /// Generated or imported.
    pub origin: Origin,
    /// The public key, the first `algorithm.public_len()` bytes.
    public: [u8; MAX_PUBLIC],
    /// The slot's record key the seal is bound to.
    label: Key,
    /// The sealed private key, the first `sealed_len(secret_len)` bytes.
    sealed: [u8; MAX_SEALED],
}

impl KeyRecord {
    /// A record for `secret`, sealed under the device key for `label` (the
    /// slot's record key, also for a key staged for that slot).
    pub fn new(
        secret: &Private,
        policy: (PinPolicy, TouchPolicy),
        origin: Origin,
        label: Key,
        device: &DeviceKey,
        rng: &mut dyn CryptoRng,
    ) -> Result<KeyRecord> {
        let mut record = KeyRecord {
            algorithm: secret.algorithm(),
            pin: policy.0,
            touch: policy.1,
            origin,
            public: [0u8; MAX_PUBLIC],
            label,
            sealed: [0u8; MAX_SEALED],
        };
        secret.write_public(&mut record.public)?;
        let mut raw = Zeroizing::new([0u8; MAX_SECRET]);
        let raw = secret.write_secret(&mut raw)?;
        record.seal(raw, device, rng)?;
        Ok(record)
    }

    /// Seals `raw`, the private key's sealed form, into this record under
    /// the device key, bound to its header and label.
    fn seal(&mut self, raw: &[u8], device: &DeviceKey, rng: &mut dyn CryptoRng) -> Result<()> {
        let mut header = [0u8; MAX_HEADER];
        let header = self.header(&mut header);
        let binding = self.binding(header);
        device.seal(&binding, raw, rng, &mut self.sealed)?;
        Ok(())
    }

    /// The public key: an RSA modulus, an uncompressed EC point, or a
    /// 25519 public key.
    pub fn public(&self) -> &[u8] {
        self.public
            .get(..self.algorithm.public_len())
            .unwrap_or_default()
    }

    fn sealed(&self) -> &[u8] {
        self.sealed
            .get(..sealed_len(self.algorithm.secret_len()))
            .unwrap_or_default()
    }

    fn header<'o>(&self, out: &'o mut [u8; MAX_HEADER]) -> &'o [u8] {
        let (fixed, public) = out.split_at_mut(FIXED);
        fixed.copy_from_slice(&[
            VERSION,
            self.algorithm.byte(),
            self.pin.byte(),
            self.touch.byte(),
            self.origin.byte(),
        ]);
        let public_len = self.algorithm.public_len();
        if let Some(dst) = public.get_mut(..public_len) {
            dst.copy_from_slice(self.public());
        }
        out.get(..FIXED + public_len).unwrap_or_default()
    }

    fn binding<'h>(&self, header: &'h [u8]) -> Binding<'h> {
        Binding {
            key: self.label,
            purpose: Purpose::SlotKey,
            header,
        }
    }

    /// The stored bytes, into `out`.
    pub fn encode<'o>(&self, out: &'o mut [u8; MAX_RECORD]) -> &'o [u8] {
        let mut header = [0u8; MAX_HEADER];
        let header = self.header(&mut header);
        let sealed = self.sealed();
        let (head, rest) = out.split_at_mut(header.len());
        head.copy_from_slice(header);
        if let Some(dst) = rest.get_mut(..sealed.len()) {
            dst.copy_from_slice(sealed);
        }
        out.get(..header.len() + sealed.len()).unwrap_or_default()
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
        let mut buf = [0u8; MAX_RECORD];
        let Some(rec) = store.read(key, &mut buf)? else {
            return Ok(None);
        };
        let [version, algorithm, pin, touch, origin, rest @ ..] = rec else {
            return Err(Error::Tampered);
        };
        let algorithm = Algorithm::from_byte(*algorithm).ok_or(Error::Tampered)?;
        // A key this build cannot use (a card made by a fuller build).
        if !algorithm.is_built() {
            return Err(Error::Unsupported);
        }
        if *version != VERSION || rec.len() != record_len(algorithm) {
            return Err(Error::Tampered);
        }
        let (public, sealed) = rest
            .split_at_checked(algorithm.public_len())
            .ok_or(Error::Tampered)?;
        let origin = match origin {
            1 => Origin::Generated,
            2 => Origin::Imported,
            _ => return Err(Error::Tampered),
        };
        let mut record = KeyRecord {
            algorithm,
            pin: PinPolicy::from_byte(*pin, slot).map_err(|_| Error::Tampered)?,
            touch: TouchPolicy::from_byte(*touch).map_err(|_| Error::Tampered)?,
            origin,
            public: [0u8; MAX_PUBLIC],
            label: crate::layout::slot_key(slot),
            sealed: [0u8; MAX_SEALED],
        };
        copy(&mut record.public, public)?;
        copy(&mut record.sealed, sealed)?;
        // The seal covers the bytes as they are on flash: a value the
        // parsers above would read the same way is still a change.
        let mut header = [0u8; MAX_HEADER];
        if Some(record.header(&mut header)) != rec.get(..FIXED + algorithm.public_len()) {
            return Err(Error::Tampered);
        }
        // Opened once to check it; the bytes are wiped at once.
        record.open(device, &mut Zeroizing::new([0u8; MAX_SECRET]))?;
        Ok(Some(record))
    }

    /// GENERAL AUTHENTICATE's `81` with this key ([`Private::sign`]); the
    /// key's PIN policy must have let this use through.
    /// `rng` blinds an RSA key's private operation.
    pub fn sign<'o>(
        &self,
        device: &DeviceKey,
        input: &[u8],
        out: &'o mut [u8; MAX_OUTPUT],
        rng: &mut dyn CryptoRng,
        _authorized: &Authorized<'_>,
    ) -> Result<&'o [u8]> {
        self.secret(device)?.sign(self.public(), input, out, rng)
    }

    /// Key agreement with a peer's public key: the shared secret.
    pub fn agree(
        &self,
        device: &DeviceKey,
        peer: &[u8],
        _authorized: &Authorized<'_>,
    ) -> Result<Shared> {
        self.secret(device)?.agree(peer)
    }

    /// Signs an attestation certificate for `subject` with this key (the
    /// attestation key `F9`, whose policy needs no PIN).
    pub fn attest(
        &self,
        device: &DeviceKey,
        out: &mut apdu::tlv::Writer<'_>,
        subject: &crate::attest::Subject<'_>,
        issuer: &[u8],
        rng: &mut dyn CryptoRng,
        _authorized: &Authorized<'_>,
    ) -> Result<()> {
        crate::attest::certificate(
            out,
            subject,
            issuer,
            &self.secret(device)?,
            self.public(),
            rng,
        )
    }

    /// The same key sealed for another slot (MOVE KEY, a retiring
    /// renewal): the seal opened and made again for `to`. The private key
    /// is never parsed: its seal vouches for it, and parsing an RSA-4096
    /// key (or recomputing a P-384 point) would cost the stack and time the
    /// card has least of, inside a renewal's transaction.
    #[inline(never)]
    pub fn moved(
        &self,
        device: &DeviceKey,
        to: Key,
        rng: &mut dyn CryptoRng,
        _admin: &Admin,
    ) -> Result<KeyRecord> {
        let mut raw = Zeroizing::new([0u8; MAX_SECRET]);
        let opened = self.open(device, &mut raw)?;
        let mut record = KeyRecord {
            algorithm: self.algorithm,
            pin: self.pin,
            touch: self.touch,
            origin: self.origin,
            public: self.public,
            label: to,
            sealed: [0u8; MAX_SEALED],
        };
        record.seal(opened, device, rng)?;
        Ok(record)
    }

    /// The private key, for the fuzz model that checks it never leaves the
    /// card in a response: the card itself only uses it through the methods
    /// above.
    #[cfg(feature = "testing")]
    pub fn secret_for_tests(&self, device: &DeviceKey) -> Result<Private> {
        self.secret(device)
    }

    /// Opens the seal into `raw`: the private key's sealed form.
    fn open<'r>(&self, device: &DeviceKey, raw: &'r mut [u8; MAX_SECRET]) -> Result<&'r [u8]> {
        let mut header = [0u8; MAX_HEADER];
        let header = self.header(&mut header);
        Ok(device.open(&self.binding(header), self.sealed(), raw)?)
    }

    /// Opens the private key.
    fn secret(&self, device: &DeviceKey) -> Result<Private> {
        let mut raw = Zeroizing::new([0u8; MAX_SECRET]);
        let opened = self.open(device, &mut raw)?;
        Private::from_sealed(self.algorithm, opened, self.public()).map_err(|_| Error::Tampered)
    }
}

fn copy(dst: &mut [u8], src: &[u8]) -> Result<()> {
    dst.get_mut(..src.len())
        .ok_or(Error::Tampered)?
        .copy_from_slice(src);
    Ok(())
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
            let mut buf = [0u8; MAX_RECORD];
            let moved = record.moved(device, to, rng, admin)?;
            store.commit(&[Op::Put(to, moved.encode(&mut buf)), Op::Delete(from)])?;
        }
    }
    Ok(())
}

/// Where a renewal of the key management key (`9D`) keeps the key it
/// replaces, so that mail encrypted to the old certificate stays readable
/// (SP 800-73-4's key history): a free retired slot (`82`-`95`), and the
/// Key History object (`5FC10C`) that counts it, both written in the
/// renewal's own transaction. The retired certificate is written before,
/// by PUT DATA: a certificate whose key has not arrived yet is harmless,
/// where a key without its Key History entry, or a `9D` emptied before
/// its successor arrives, would not be.
pub struct Retirement<'a> {
    /// The retired slot the old key moves to.
    pub to: KeySlot,
    /// The Key History object's new content (`53`'s value).
    pub history: &'a [u8],
}

/// COMMIT RENEWAL: the key staged for `slot` and its new certificate
/// object installed together, the staging area emptied, and with a
/// [`Retirement`] the replaced key moved to its retired slot, in one
/// transaction. The staged record is checked (its seal opens for this
/// slot, and the certificate is for its key: [`crate::attest::certifies`])
/// before it is installed; a certificate for another key is
/// [`Error::BadData`] and leaves the key staged. Only `9D` retires its
/// keys, and only into an empty retired slot ([`Error::Conditions`]).
pub fn install_staged(
    store: &mut dyn Persistent,
    slot: KeySlot,
    certificate: &[u8],
    retirement: Option<Retirement<'_>>,
    device: &DeviceKey,
    rng: &mut dyn CryptoRng,
    admin: &Admin,
) -> Result<()> {
    let slot = slot.slot();
    if let Some(r) = &retirement
        && (slot != Slot::KeyManagement || !matches!(r.to.slot(), Slot::Retired(_)))
    {
        return Err(Error::BadParameters);
    }
    let staged = crate::layout::staged_key(slot);
    let record = KeyRecord::load(store, staged, slot, device)?.ok_or(Error::KeyNotFound)?;
    // The certificate must be the staged key's: a CMS that mixed up its
    // keys, or a staged key left from another renewal, installs nothing.
    if !crate::attest::certifies(certificate, record.algorithm, record.public())? {
        return Err(Error::BadData);
    }
    let mut buf = [0u8; MAX_RECORD];
    let mut old_buf = [0u8; MAX_RECORD];
    let cert = slot
        .certificate_tag()
        .and_then(crate::layout::object)
        .ok_or(Error::BadParameters)?;
    let current = crate::layout::slot_key(slot);
    // The last two are the retirement's, when there is one.
    let mut ops = [
        Op::Put(current, record.encode(&mut buf)),
        Op::Put(cert, certificate),
        Op::Delete(staged),
        Op::Delete(staged),
        Op::Delete(staged),
    ];
    let mut len = 3;
    if let Some(retirement) = retirement {
        let to = crate::layout::slot_key(retirement.to.slot());
        if store.len_of(to).is_some() {
            return Err(Error::Conditions);
        }
        let old = KeyRecord::load(store, current, slot, device)?.ok_or(Error::KeyNotFound)?;
        let retired = old.moved(device, to, rng, admin)?;
        let history =
            crate::layout::object(crate::objects::KEY_HISTORY).ok_or(Error::BadParameters)?;
        ops[3] = Op::Put(to, retired.encode(&mut old_buf));
        ops[4] = Op::Put(history, retirement.history);
        len = 5;
    }
    store.commit(ops.get(..len).unwrap_or(&ops))?;
    Ok(())
}

/// ABORT RENEWAL: forgets the key staged for `slot`.
pub fn drop_staged(store: &mut dyn Persistent, slot: KeySlot, _admin: &Admin) -> Result<()> {
    let slot = slot.slot();
    let staged = crate::layout::staged_key(slot);
    if store.len_of(staged).is_none() {
        return Err(Error::KeyNotFound);
    }
    store.commit(&[Op::Delete(staged)])?;
    Ok(())
}

/// A fresh key from the card's RNG, for GENERATE.
pub fn generate(algorithm: Algorithm, rng: &mut dyn CryptoRng, _admin: &Admin) -> Result<Private> {
    Private::generate(algorithm, rng)
}

/// A renewal's staged key: the management key and the PIN of the holder or
/// sponsor renewing.
pub fn generate_staged(
    algorithm: Algorithm,
    rng: &mut dyn CryptoRng,
    _admin: &Admin,
    _pin: &PinVerified,
) -> Result<Private> {
    Private::generate(algorithm, rng)
}

/// The card's own attestation key, made with its factory state (on a blank
/// card, after RESET, or for SET SERIAL): the one key no management key
/// stands behind. P-256, as the attestation certificates are signed with
/// ECDSA.
pub(crate) fn attestation_key(rng: &mut dyn CryptoRng) -> Result<Private> {
    Private::generate(Algorithm::P256, rng)
}

/// What an IMPORT carries: the private key's parts by Yubico's tags.
pub enum Imported<'a> {
    /// RSA CRT parts (`01`–`05`).
    #[cfg(feature = "rsa")]
    Rsa(crate::crypto::rsa::Parts<'a>),
    /// An EC scalar (`06`), an Ed25519 seed (`07`) or an X25519 secret
    /// (`08`).
    Scalar(&'a [u8]),
}

/// A private key from an IMPORT, refused ([`Error::BadData`]) unless it is
/// a consistent key of `algorithm`: an EC scalar in 1 ≤ d < n, 32-byte
/// 25519 secrets, RSA parts that belong together.
pub fn import(algorithm: Algorithm, key: &Imported<'_>, _admin: &Admin) -> Result<Private> {
    match key {
        #[cfg(feature = "rsa")]
        Imported::Rsa(parts) => Private::from_rsa_parts(algorithm, parts),
        Imported::Scalar(bytes) if algorithm.rsa_bits().is_none() => {
            Private::from_bytes(algorithm, bytes)
        }
        Imported::Scalar(_) => Err(Error::BadData),
    }
}
