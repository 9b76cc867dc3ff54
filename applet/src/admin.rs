//! The management key (`9B`): its record, its block cipher, and the
//! challenge-response that proves a host holds it.

use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use card_os::Persistent;
use card_os::image::Profile;
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::layout;
use crate::secrets::{self, Binding, DeviceKey, Purpose, sealed_len};
use crate::session::{Challenge, Session};
use crate::slot::{AdminAlgorithm, TouchPolicy};

/// The factory management key.
pub const DEFAULT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];
/// Record layout version: 2 seals the key with an AEAD bound to the header.
const VERSION: u8 = 2;
const HEADER: usize = 4;
/// The longest management key: AES-256.
const MAX_KEY: usize = 32;
/// The largest record: header and a sealed AES-256 key.
pub const RECORD: usize = HEADER + sealed_len(MAX_KEY);

/// Proof that the management key was authenticated in this session. Its
/// field is private to this module: only [`authenticate`] makes one.
#[derive(Debug)]
pub struct Admin(());

/// The management key, opened. Wiped on drop.
pub struct ManagementKey {
    /// Its algorithm.
    pub algorithm: AdminAlgorithm,
    /// Its touch policy (reported only).
    pub touch: TouchPolicy,
    /// Still the factory key.
    pub is_default: bool,
    key: [u8; MAX_KEY],
}

impl Drop for ManagementKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl ManagementKey {
    /// A management key from its bytes.
    pub fn new(algorithm: AdminAlgorithm, touch: TouchPolicy, key: &[u8]) -> Result<ManagementKey> {
        if key.len() != algorithm.key_len() {
            return Err(Error::BadData);
        }
        let mut k = [0u8; MAX_KEY];
        k.get_mut(..key.len())
            .ok_or(Error::BadData)?
            .copy_from_slice(key);
        // The well-known bytes are a default key as 3DES (PIV's factory
        // key) and as AES-192 (YubiKey 5.7's): anyone can authenticate.
        let is_default = matches!(algorithm, AdminAlgorithm::Tdes | AdminAlgorithm::Aes192)
            && secrets::same(key, &DEFAULT_KEY);
        Ok(ManagementKey {
            algorithm,
            touch,
            is_default,
            key: k,
        })
    }

    /// The factory key: the default bytes as 3DES on a Series 9 card, as
    /// AES-192 on a YubiKey-compatible one (5.7 changed the algorithm,
    /// and tools read which from the metadata).
    pub fn factory(profile: Profile) -> Result<ManagementKey> {
        let algorithm = match profile {
            Profile::Series9 => AdminAlgorithm::Tdes,
            Profile::YubiKey { .. } => AdminAlgorithm::Aes192,
        };
        ManagementKey::new(algorithm, TouchPolicy::NEVER, &DEFAULT_KEY)
    }

    fn key(&self) -> &[u8] {
        self.key.get(..self.algorithm.key_len()).unwrap_or_default()
    }

    /// Loads the stored key; a record whose seal does not open is
    /// [`Error::Tampered`]. Every copy of the key is wiped on every path.
    pub fn load(store: &mut dyn Persistent, device: &DeviceKey) -> Result<ManagementKey> {
        let mut buf = Zeroizing::new([0u8; RECORD]);
        let rec = store.read(layout::ADMIN, &mut *buf)?.ok_or(Error::Flash)?;
        let (header, sealed) = rec.split_at_checked(HEADER).ok_or(Error::Tampered)?;
        let [version, alg, touch, default] = *header else {
            return Err(Error::Tampered);
        };
        if version != VERSION {
            return Err(Error::Tampered);
        }
        let mut key = Zeroizing::new([0u8; MAX_KEY]);
        let key = device.open(&binding(header), sealed, &mut *key)?;
        let algorithm = AdminAlgorithm::from_byte(alg).map_err(|_| Error::Tampered)?;
        let touch = TouchPolicy::from_byte(touch).map_err(|_| Error::Tampered)?;
        let mut mk = ManagementKey::new(algorithm, touch, key)?;
        mk.is_default = default == 1;
        Ok(mk)
    }

    /// The stored form, the key sealed; returns the buffer and its length.
    pub fn encode(
        &self,
        device: &DeviceKey,
        rng: &mut dyn CryptoRng,
    ) -> Result<([u8; RECORD], usize)> {
        let mut out = [0u8; RECORD];
        let (head, sealed) = out.split_at_mut(HEADER);
        head.copy_from_slice(&[
            VERSION,
            self.algorithm.byte(),
            self.touch.byte(),
            u8::from(self.is_default),
        ]);
        let n = device.seal(&binding(head), self.key(), rng, sealed)?.len();
        Ok((out, HEADER + n))
    }

    /// Encrypts one block in place (`block` is the algorithm's block length).
    pub fn encrypt(&self, block: &mut [u8]) -> Result<()> {
        self.cipher(block, true)
    }

    /// Decrypts one block in place.
    pub fn decrypt(&self, block: &mut [u8]) -> Result<()> {
        self.cipher(block, false)
    }

    fn cipher(&self, block: &mut [u8], encrypt: bool) -> Result<()> {
        fn run<C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt>(
            key: &[u8],
            block: &mut [u8],
            encrypt: bool,
        ) -> Result<()> {
            let cipher = C::new_from_slice(key).map_err(|_| Error::BadData)?;
            let b = Array::try_from(&*block).map_err(|_| Error::BadData)?;
            let mut b = b;
            if encrypt {
                cipher.encrypt_block(&mut b);
            } else {
                cipher.decrypt_block(&mut b);
            }
            block.copy_from_slice(&b);
            Ok(())
        }
        let key = self.key();
        match self.algorithm {
            AdminAlgorithm::Tdes => run::<des::TdesEde3>(key, block, encrypt),
            AdminAlgorithm::Aes128 => run::<aes::Aes128>(key, block, encrypt),
            AdminAlgorithm::Aes192 => run::<aes::Aes192>(key, block, encrypt),
            AdminAlgorithm::Aes256 => run::<aes::Aes256>(key, block, encrypt),
        }
    }
}

/// SET MANAGEMENT KEY: stores `new` in place of the current key. Needs the
/// current key's proof.
pub fn replace(
    store: &mut dyn Persistent,
    device: &DeviceKey,
    rng: &mut dyn CryptoRng,
    new: &ManagementKey,
    _admin: &Admin,
) -> Result<()> {
    let (record, n) = new.encode(device, rng)?;
    let record = record.get(..n).ok_or(Error::NoSpace)?;
    store.commit(&[card_os::store::Op::Put(layout::ADMIN, record)])?;
    Ok(())
}

/// What the management key's seal is bound to.
fn binding(header: &[u8]) -> Binding<'_> {
    Binding {
        key: layout::ADMIN,
        purpose: Purpose::ManagementKey,
        header,
    }
}

/// The `7C` fields of a management-key GENERAL AUTHENTICATE.
pub struct AuthFields<'a> {
    /// `80`: witness (empty to ask for one).
    pub witness: Option<&'a [u8]>,
    /// `81`: challenge (empty to ask for one).
    pub challenge: Option<&'a [u8]>,
    /// `82`: response.
    pub response: Option<&'a [u8]>,
}

/// One step of management-key authentication. Writes the card's part of the
/// exchange into `reply` (the `7C` contents) and returns its length.
pub fn authenticate(
    session: &mut Session,
    key: &ManagementKey,
    algorithm: AdminAlgorithm,
    fields: &AuthFields<'_>,
    rng: &mut dyn CryptoRng,
    reply: &mut [u8; 18],
) -> Result<usize> {
    if algorithm != key.algorithm {
        return Err(Error::BadParameters);
    }
    let block = algorithm.block_len();
    // Whatever happens next, a pending challenge is used up.
    let pending = session.challenge.take();
    match (fields.witness, fields.challenge, fields.response) {
        // Mutual, step 1: send an encrypted witness.
        (Some([]), None, None) => {
            let mut value = [0u8; 16];
            let w = value.get_mut(..block).ok_or(Error::BadData)?;
            rng.fill_bytes(w);
            let out = reply.get_mut(..2 + block).ok_or(Error::NoSpace)?;
            let (tag, body) = out.split_at_mut(2);
            tag.copy_from_slice(&[0x80, block as u8]);
            body.copy_from_slice(w);
            key.encrypt(body)?;
            session.challenge = Some(Challenge {
                algorithm,
                mutual: true,
                value,
            });
            Ok(2 + block)
        }
        // Single, step 1: send a plain challenge.
        (None, Some([]), None) => {
            let mut value = [0u8; 16];
            let c = value.get_mut(..block).ok_or(Error::BadData)?;
            rng.fill_bytes(c);
            let out = reply.get_mut(..2 + block).ok_or(Error::NoSpace)?;
            let (tag, body) = out.split_at_mut(2);
            tag.copy_from_slice(&[0x81, block as u8]);
            body.copy_from_slice(c);
            session.challenge = Some(Challenge {
                algorithm,
                mutual: false,
                value,
            });
            Ok(2 + block)
        }
        // Single, step 2: the host encrypted our challenge.
        (None, None, Some(response)) => {
            let pending = pending
                .filter(|c| !c.mutual && c.algorithm == algorithm)
                .ok_or(Error::SecurityStatus)?;
            let mut expected = Zeroizing::new([0u8; 16]);
            let e = expected.get_mut(..block).ok_or(Error::BadData)?;
            e.copy_from_slice(pending.value.get(..block).unwrap_or_default());
            key.encrypt(e)?;
            if response.len() != block || !secrets::same(e, response) {
                return Err(Error::SecurityStatus);
            }
            session.admin = Some(Admin(()));
            Ok(0)
        }
        // Mutual, step 2: the host decrypted the witness and challenges us.
        (Some(witness), Some(challenge), None) if !witness.is_empty() => {
            let pending = pending
                .filter(|c| c.mutual && c.algorithm == algorithm)
                .ok_or(Error::SecurityStatus)?;
            let w = pending.value.get(..block).unwrap_or_default();
            if witness.len() != block || !secrets::same(w, witness) {
                return Err(Error::SecurityStatus);
            }
            if challenge.len() != block {
                return Err(Error::BadData);
            }
            let out = reply.get_mut(..2 + block).ok_or(Error::NoSpace)?;
            let (tag, body) = out.split_at_mut(2);
            tag.copy_from_slice(&[0x82, block as u8]);
            body.copy_from_slice(challenge);
            key.encrypt(body)?;
            session.admin = Some(Admin(()));
            Ok(2 + block)
        }
        _ => Err(Error::BadData),
    }
}
