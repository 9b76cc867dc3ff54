//! The boundary a vendor ports: what a board gives the card.
//!
//! A board is a chip and its wiring. The card needs five things of it,
//! and nothing else: its contacts ([`IoLine`], the character waiting time
//! timed on the board's clock), non-volatile memory (`embedded-storage`'s
//! [`NorFlash`]), the device key and randomness seed from where the chip
//! keeps them apart from that memory (OTP, a protected page), a true
//! random number generator if the chip has one, and a clock for the
//! card's own measurements. [`boot`] makes a card's parts from them: the
//! factory record, the store, and the boot's seed (the ratchet's step with
//! the TRNG's output mixed in), the same on every board. The firmware's
//! `board/` modules implement this trait for QEMU's mps2-an386 and for an
//! STM32F429.

use core::mem::MaybeUninit;

use embedded_storage::nor_flash::NorFlash;
use zeroize::Zeroizing;

use crate::contact::IoLine;
use crate::entropy::{self, RatchetError, Seed};
use crate::image::{Header, HeaderError, KEY_STORE_LEN, RECORD_LEN};
use crate::store::{Store, StoreError};

/// A board the card runs on.
pub trait Board {
    /// The card's contacts.
    type Line: IoLine;
    /// The memory the factory record and the store live in (a driver that
    /// lives as long as the card, whose store may sit in a static).
    type Flash: NorFlash + 'static;

    /// The factory record: the first bytes of the card's flash region, as
    /// the card's maker wrote them.
    fn factory_record(&mut self, record: &mut [u8; RECORD_LEN]);

    /// The device key and randomness seed, from where the chip keeps them
    /// apart from the flash. Read once, at boot; a chip that can make them
    /// unreadable afterwards (a wiped page, a locked OTP read) does so.
    fn key_store(&mut self, keys: &mut [u8; KEY_STORE_LEN]);

    /// The store's flash: `len` bytes after the factory record's page
    /// ([`crate::image::HEADER_LEN`]).
    fn store(&mut self, len: usize) -> Self::Flash;

    /// The contacts, once the card is ready to answer reset.
    fn contacts(&mut self) -> Self::Line;

    /// 32 bytes from a true random number generator; `false` if the chip
    /// has none (the ratchet's seed is then the boot's only randomness).
    fn trng(&mut self, out: &mut [u8; 32]) -> bool;

    /// Nanoseconds since some moment (wrapping), for the card's
    /// measurements (the firmware's debug port).
    fn now_ns(&self) -> u64;
}

/// Why a board's card cannot start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// No factory record, or a damaged one.
    Record(HeaderError),
    /// A factory record from before the randomness seed (version 1).
    NoSeed,
    /// The store cannot be mounted.
    Store(StoreError),
    /// The randomness ratchet failed or was tampered with.
    Ratchet(RatchetError),
}

impl BootError {
    /// The reason, for a board's debug port: names, never values.
    pub fn reason(self) -> &'static str {
        match self {
            BootError::Record(HeaderError::Magic) => "no factory record (blank flash)",
            BootError::Record(HeaderError::KeyStore) => "no key store (the device key is missing)",
            BootError::Record(_) => "damaged factory record",
            BootError::NoSeed => "factory record without a randomness seed",
            BootError::Store(_) => "the store cannot be mounted",
            BootError::Ratchet(RatchetError::Tampered) => "the randomness ratchet was altered",
            BootError::Ratchet(RatchetError::Store(_)) => "the randomness ratchet cannot advance",
        }
    }
}

/// What [`boot`] makes: the factory record, the mounted store and this
/// boot's seed for the card's DRBG.
pub struct Parts<'s, F: NorFlash, const KEYS: usize> {
    /// The factory record, device key included.
    pub header: Header,
    /// The store, mounted (recovered from any cut) where the card will
    /// keep it.
    pub store: &'s mut Store<F, KEYS>,
    /// This boot's seed: never one another boot had.
    pub seed: Seed,
}

/// Reads the factory record (and the key store, when the record says the
/// keys are apart), mounts the store and advances the randomness ratchet,
/// mixing in the board's TRNG. Nothing is answered before this is done,
/// so nothing random is handed out twice.
///
/// The store is mounted into `place` (a static, on a chip): it is most of
/// the card's RAM, and each move through a frame on the way would cost as
/// much stack again.
pub fn boot<'s, B: Board, const KEYS: usize>(
    board: &mut B,
    place: &'s mut MaybeUninit<Store<B::Flash, KEYS>>,
) -> Result<Parts<'s, B::Flash, KEYS>, BootError> {
    let header = factory_record(board).map_err(BootError::Record)?;
    let provisioned = header.ratchet_seed().ok_or(BootError::NoSeed)?;
    let store =
        Store::mount_in(place, board.store(header.store_len())).map_err(BootError::Store)?;
    let ratcheted =
        entropy::ratchet(store, &provisioned, &header.device_key).map_err(BootError::Ratchet)?;
    let mut trng = Zeroizing::new([0u8; 32]);
    let seed = if board.trng(&mut trng) {
        entropy::mix(&ratcheted, &trng)
    } else {
        ratcheted
    };
    Ok(Parts {
        header,
        store,
        seed,
    })
}

/// The factory record, with the key store's secrets if they are apart.
fn factory_record<B: Board>(board: &mut B) -> Result<Header, HeaderError> {
    let mut record = [0u8; RECORD_LEN];
    board.factory_record(&mut record);
    match Header::decode(&record) {
        Err(HeaderError::KeysApart) => {}
        other => return other,
    }
    let mut keys = Zeroizing::new([0u8; KEY_STORE_LEN]);
    board.key_store(&mut keys);
    Header::decode_apart(&record, &keys)
}
