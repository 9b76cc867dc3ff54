//! The card's identity record and its factory state.

use card_os::Persistent;
use card_os::store::Op;
use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::layout;
use crate::secrets::{Binding, DeviceKey, Purpose, sealed_len};

/// Record layout version: 2 seals the hashing key with an AEAD bound to
/// the serial and flags (version 1's XOR seal is refused).
const VERSION: u8 = 2;
const HEADER: usize = 1 + 4 + 1;
const RECORD: usize = HEADER + sealed_len(32);

/// Serial numbers of Series 9 cards read `09` followed by eight digits.
pub const SERIAL_MIN: u32 = 900_000_000;
/// The largest Series 9 serial.
pub const SERIAL_MAX: u32 = 999_999_999;

/// Who the card is.
pub struct Identity {
    /// The serial, `0900000000`–`0999999999` written in ten digits.
    pub serial: u32,
    /// A simulated card.
    pub is_virtual: bool,
    /// The key PIN and PUK digests are made with.
    pub pin_key: [u8; 32],
}

impl Drop for Identity {
    fn drop(&mut self) {
        self.pin_key.zeroize();
    }
}

impl Identity {
    /// A new identity with a fresh hashing key.
    pub fn new(serial: u32, is_virtual: bool, rng: &mut dyn CryptoRng) -> Result<Identity> {
        if !(SERIAL_MIN..=SERIAL_MAX).contains(&serial) {
            return Err(Error::BadData);
        }
        let mut pin_key = [0u8; 32];
        rng.fill_bytes(&mut pin_key);
        Ok(Identity {
            serial,
            is_virtual,
            pin_key,
        })
    }

    /// A serial drawn from the card's RNG, for a card no one personalised.
    pub fn random_serial(rng: &mut dyn CryptoRng) -> u32 {
        SERIAL_MIN + rng.next_u32() % (SERIAL_MAX - SERIAL_MIN + 1)
    }

    /// Reads the identity; `None` on a card never initialised. A record
    /// of another version or length, or whose seal does not open, is an
    /// error: the PIN and PUK cannot be checked without it.
    pub fn load(store: &mut dyn Persistent, device: &DeviceKey) -> Result<Option<Identity>> {
        let mut buf = [0u8; RECORD];
        let Some(rec) = store.read(layout::CARD, &mut buf)? else {
            return Ok(None);
        };
        let (header, sealed) = rec.split_at_checked(HEADER).ok_or(Error::Tampered)?;
        let [version, s0, s1, s2, s3, flags] = *header else {
            return Err(Error::Tampered);
        };
        if version != VERSION || rec.len() != RECORD {
            return Err(Error::Tampered);
        }
        let mut pin_key = [0u8; 32];
        let opened = device
            .open(&binding(header), sealed, &mut pin_key)
            .map(|_| ());
        let identity = opened.map(|()| Identity {
            serial: u32::from_be_bytes([s0, s1, s2, s3]),
            is_virtual: flags & layout::FLAG_VIRTUAL != 0,
            pin_key,
        });
        pin_key.zeroize();
        buf.zeroize();
        Ok(Some(identity?))
    }

    /// The record to store, the hashing key sealed under the device key.
    pub fn encode(&self, device: &DeviceKey, rng: &mut dyn CryptoRng) -> Result<[u8; RECORD]> {
        let mut out = [0u8; RECORD];
        let (head, sealed) = out.split_at_mut(HEADER);
        let s = self.serial.to_be_bytes();
        let flags = if self.is_virtual {
            layout::FLAG_VIRTUAL
        } else {
            0
        };
        head.copy_from_slice(&[VERSION, s[0], s[1], s[2], s[3], flags]);
        device.seal(&binding(head), &self.pin_key, rng, sealed)?;
        Ok(out)
    }

    /// The serial as printed: ten digits.
    pub fn serial_digits(&self) -> [u8; 10] {
        let mut out = [b'0'; 10];
        let mut n = self.serial;
        for d in out.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out
    }
}

/// What the hashing key's seal is bound to.
fn binding(header: &[u8]) -> Binding<'_> {
    Binding {
        key: layout::CARD,
        purpose: Purpose::PinHashing,
        header,
    }
}

/// Commits `ops` with the store's error mapped.
pub fn commit(store: &mut dyn Persistent, ops: &[Op<'_>]) -> Result<()> {
    store.commit(ops).map_err(Error::from)
}
