//! Randomness for a board without a random number generator: a seed
//! provisioned with the card, ratcheted forward in the store at every boot.
//!
//! QEMU's mps2-an386 has no TRNG, and a card must never repeat a challenge,
//! a nonce or a key. So each boot takes the ratchet's state (the seed
//! provisioned with the image the first time), derives this boot's seed
//! from it, and commits the next state before the card answers anything. A
//! power cut before that commit lands leaves the old state, but nothing was
//! drawn from it yet; a cut after it means the next boot moves on again. No
//! boot therefore ever hands out randomness another boot has handed out.
//!
//! Both derivations are keyed with the device key, so the state on flash
//! predicts nothing without it, and the state is stored with a tag under
//! that key, so a changed record stops the card rather than steering its
//! randomness. A flash rolled back to an earlier copy replays an earlier
//! boot; only a monotonic counter in hardware can stop that, and a real
//! board would use its TRNG instead (see the firmware's README).

use embedded_storage::nor_flash::NorFlash;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::store::{Key, Op, Store, StoreError};

/// The ratchet's record: its state, then the state's tag.
const RATCHET: Key = Key::system(0xFF00);
const STATE: usize = 32;
const RECORD: usize = STATE * 2;

/// A 32-byte seed (the provisioned one, or a boot's), wiped when dropped.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct Seed(pub [u8; 32]);

impl core::fmt::Debug for Seed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Seed(..)")
    }
}

/// Why a card cannot have randomness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RatchetError {
    /// The store could not be read or written.
    Store(StoreError),
    /// The ratchet's record is not one this card wrote.
    Tampered,
}

impl From<StoreError> for RatchetError {
    fn from(e: StoreError) -> Self {
        RatchetError::Store(e)
    }
}

fn derive(device: &[u8; 32], label: &[u8], state: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail; the fallback
    // keeps the code free of panics all the same.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(device) else {
        return [0; 32];
    };
    mac.update(label);
    mac.update(state);
    mac.finalize().into_bytes().into()
}

/// Advances the ratchet by one boot and returns this boot's seed.
pub fn ratchet<F: NorFlash, const KEYS: usize>(
    store: &mut Store<F, KEYS>,
    provisioned: &Seed,
    device: &[u8; 32],
) -> Result<Seed, RatchetError> {
    let mut record = Zeroizing::new([0u8; RECORD]);
    let state = match store.read_value(RATCHET, record.as_mut())? {
        None => Zeroizing::new(provisioned.0),
        Some(value) => {
            let (state, tag) = value
                .split_at_checked(STATE)
                .ok_or(RatchetError::Tampered)?;
            let expected = derive(device, b"s9card ratchet tag", state);
            if !bool::from(tag.ct_eq(&expected)) {
                return Err(RatchetError::Tampered);
            }
            let mut s = Zeroizing::new([0u8; STATE]);
            s.copy_from_slice(state);
            s
        }
    };
    let boot = Seed(derive(device, b"s9card ratchet boot", state.as_ref()));
    let next = Zeroizing::new(derive(device, b"s9card ratchet next", state.as_ref()));
    let tag = derive(device, b"s9card ratchet tag", next.as_ref());
    let (head, tail) = record.split_at_mut(STATE);
    head.copy_from_slice(next.as_ref());
    tail.copy_from_slice(&tag);
    store.commit(&[Op::Put(RATCHET, record.as_ref())])?;
    Ok(boot)
}

/// This boot's seed with a TRNG's output mixed in: as unpredictable as
/// the better of the two, and still never another boot's (the ratchet's
/// half alone sees to that).
pub fn mix(boot: &Seed, trng: &[u8; 32]) -> Seed {
    Seed(derive(&boot.0, b"s9card ratchet trng", trng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RamFlash;

    type Flash = RamFlash<{ 16 * 4096 }, 4096>;

    #[test]
    fn every_boot_gets_a_new_seed_and_a_clear_keeps_the_ratchet() {
        let device = [7u8; 32];
        let provisioned = Seed([9u8; 32]);
        let mut store: Store<Flash, 16> = Store::mount(Flash::new()).unwrap();
        let first = ratchet(&mut store, &provisioned, &device).unwrap();
        // An applet's factory reset clears the store; the ratchet stays.
        store.commit(&[Op::Clear]).unwrap();
        let second = ratchet(&mut store, &provisioned, &device).unwrap();
        let store: Store<Flash, 16> = Store::mount(store.into_flash()).unwrap();
        let mut store = store;
        let third = ratchet(&mut store, &provisioned, &device).unwrap();
        assert_ne!(first.0, second.0);
        assert_ne!(second.0, third.0);
        assert_ne!(first.0, third.0);
        assert_ne!(first.0, provisioned.0);
    }

    #[test]
    fn a_changed_record_stops_the_card() {
        let device = [7u8; 32];
        let mut store: Store<Flash, 16> = Store::mount(Flash::new()).unwrap();
        ratchet(&mut store, &Seed([1; 32]), &device).unwrap();
        let mut value = [0u8; RECORD];
        store.read_value(RATCHET, &mut value).unwrap();
        value[3] ^= 1;
        store.commit(&[Op::Put(RATCHET, &value)]).unwrap();
        assert_eq!(
            ratchet(&mut store, &Seed([1; 32]), &device).err(),
            Some(RatchetError::Tampered)
        );
        // And a record read with another device key is refused too.
        let mut other: Store<Flash, 16> = Store::mount(Flash::new()).unwrap();
        ratchet(&mut other, &Seed([1; 32]), &device).unwrap();
        assert_eq!(
            ratchet(&mut other, &Seed([1; 32]), &[8; 32]).err(),
            Some(RatchetError::Tampered)
        );
    }
}
