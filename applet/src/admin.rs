//! The management key (`9B`): its record, its block cipher, and the
//! challenge-response that proves a host holds it.

use crate::profile::Profile;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use card_os::Persistent;
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

    /// A key a host asks to set (SET MANAGEMENT KEY). A 3DES key with a
    /// weak or semi-weak DES key among its three (all zero among them) is
    /// refused on every card. A Series 9 card also refuses two neighbouring
    /// keys equal, which makes EDE one DES (K1 = K2 or K2 = K3); a
    /// YubiKey-compatible card takes those, as YubiKeys do (yubikey-manager's
    /// own tests set one). Keys are compared without their parity bits,
    /// which DES ignores. The factory key itself (K1 = K2 = K3) is public
    /// anyway; setting it back is a reset, and the card then reports the
    /// default in its metadata.
    pub fn chosen(
        algorithm: AdminAlgorithm,
        touch: TouchPolicy,
        key: &[u8],
        profile: Profile,
    ) -> Result<ManagementKey> {
        let new = ManagementKey::new(algorithm, touch, key)?;
        if algorithm == AdminAlgorithm::Tdes && !new.is_default {
            let degenerate_refused = profile == Profile::Series9;
            if weak_des_part(key) || (degenerate_refused && degenerate_tdes(key)) {
                return Err(Error::BadData);
            }
        }
        Ok(new)
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

/// The DES weak and semi-weak keys (FIPS 74, 3.6), with their parity bits.
const WEAK_DES: [[u8; 8]; 16] = [
    [0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01],
    [0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE],
    [0xE0, 0xE0, 0xE0, 0xE0, 0xF1, 0xF1, 0xF1, 0xF1],
    [0x1F, 0x1F, 0x1F, 0x1F, 0x0E, 0x0E, 0x0E, 0x0E],
    [0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE],
    [0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01],
    [0x1F, 0xE0, 0x1F, 0xE0, 0x0E, 0xF1, 0x0E, 0xF1],
    [0xE0, 0x1F, 0xE0, 0x1F, 0xF1, 0x0E, 0xF1, 0x0E],
    [0x01, 0xE0, 0x01, 0xE0, 0x01, 0xF1, 0x01, 0xF1],
    [0xE0, 0x01, 0xE0, 0x01, 0xF1, 0x01, 0xF1, 0x01],
    [0x1F, 0xFE, 0x1F, 0xFE, 0x0E, 0xFE, 0x0E, 0xFE],
    [0xFE, 0x1F, 0xFE, 0x1F, 0xFE, 0x0E, 0xFE, 0x0E],
    [0x01, 0x1F, 0x01, 0x1F, 0x01, 0x0E, 0x01, 0x0E],
    [0x1F, 0x01, 0x1F, 0x01, 0x0E, 0x01, 0x0E, 0x01],
    [0xE0, 0xFE, 0xE0, 0xFE, 0xF1, 0xFE, 0xF1, 0xFE],
    [0xFE, 0xE0, 0xFE, 0xE0, 0xFE, 0xF1, 0xFE, 0xF1],
];

/// Whether two DES keys are the same key: equal but for parity bits.
fn same_des(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x ^ y) & 0xFE == 0)
}

/// The three DES keys of a 24-byte 3DES key.
fn parts(key: &[u8]) -> Option<[&[u8]; 3]> {
    let mut parts = key.chunks_exact(8);
    Some([parts.next()?, parts.next()?, parts.next()?])
}

/// Whether one of a 3DES key's DES keys is weak or semi-weak (see
/// [`ManagementKey::chosen`]). The key is the host's new key: the timing
/// of these comparisons says only which rule refused it.
fn weak_des_part(key: &[u8]) -> bool {
    parts(key).is_none_or(|ks| ks.iter().any(|k| WEAK_DES.iter().any(|w| same_des(k, w))))
}

/// Whether a 3DES key is one DES: K1 = K2 or K2 = K3.
fn degenerate_tdes(key: &[u8]) -> bool {
    parts(key).is_none_or(|[k1, k2, k3]| same_des(k1, k2) || same_des(k2, k3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tdes(k1: [u8; 8], k2: [u8; 8], k3: [u8; 8]) -> [u8; 24] {
        let mut key = [0u8; 24];
        key[..8].copy_from_slice(&k1);
        key[8..16].copy_from_slice(&k2);
        key[16..].copy_from_slice(&k3);
        key
    }

    #[test]
    fn degenerate_and_weak_3des_keys_are_refused() {
        let (a, b, c) = (
            [0x13, 0x34, 0x57, 0x79, 0x9B, 0xBC, 0xDF, 0xF1],
            [0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0x01],
            [0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0x01, 0x23],
        );
        assert!(!weak_des_part(&tdes(a, b, c)) && !degenerate_tdes(&tdes(a, b, c)));
        // K1 = K2 and K2 = K3: one DES. K1 = K3 is two-key 3DES, allowed.
        assert!(degenerate_tdes(&tdes(a, a, c)));
        assert!(degenerate_tdes(&tdes(a, b, b)));
        assert!(!degenerate_tdes(&tdes(a, b, a)));
        // The same with only parity bits changed.
        let a_parity = a.map(|x| x ^ 1);
        assert!(degenerate_tdes(&tdes(a, a_parity, c)));
        // All zero, and weak or semi-weak parts.
        assert!(weak_des_part(&[0; 24]));
        for w in WEAK_DES {
            assert!(weak_des_part(&tdes(a, w, c)));
            assert!(weak_des_part(&tdes(w.map(|x| x ^ 1), b, c)));
        }
        // Through the command's constructor: refused as bad data, but the
        // factory key may be set back; AES keys are not judged so. A
        // YubiKey-compatible card takes K1 = K2, as YubiKeys do.
        let never = TouchPolicy::NEVER;
        let series9 = Profile::Series9;
        let yubikey = Profile::YubiKey {
            pin_complexity: false,
        };
        let chosen = |key: &[u8], profile| {
            ManagementKey::chosen(AdminAlgorithm::Tdes, never, key, profile).err()
        };
        assert_eq!(chosen(&tdes(a, a, c), series9), Some(Error::BadData));
        assert_eq!(chosen(&tdes(a, a, c), yubikey), None);
        assert_eq!(
            chosen(&tdes(a, WEAK_DES[3], c), yubikey),
            Some(Error::BadData)
        );
        assert_eq!(chosen(&[0; 24], yubikey), Some(Error::BadData));
        assert_eq!(chosen(&DEFAULT_KEY, series9), None);
        assert_eq!(chosen(&tdes(a, b, c), series9), None);
        let aes = ManagementKey::chosen(AdminAlgorithm::Aes192, never, &[0; 24], series9);
        assert!(aes.is_ok());
    }
}
