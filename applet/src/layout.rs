//! Where the applet keeps what, in the card OS store, and in what form.
//! Every record starts with a layout version byte where it may evolve.

use card_os::store::Key;

use crate::slot::Slot;

/// Card identity: serial, flags, the sealed PIN-hashing key.
pub const CARD: Key = Key::constant(0x0001);
/// PIN digest (with a "still the factory default" flag).
pub const PIN_HASH: Key = Key::constant(0x0010);
/// PIN tries: left, allowed.
pub const PIN_TRIES: Key = Key::constant(0x0011);
/// PUK digest.
pub const PUK_HASH: Key = Key::constant(0x0012);
/// PUK tries: left, allowed.
pub const PUK_TRIES: Key = Key::constant(0x0013);
/// Management key: algorithm, touch policy, default flag, sealed key.
pub const ADMIN: Key = Key::constant(0x0014);
/// Pairing code digest; none until the issuer sets one.
pub const PAIRING_HASH: Key = Key::constant(0x0015);
/// Pairing code tries: left, allowed.
pub const PAIRING_TRIES: Key = Key::constant(0x0016);

/// The record of the key in `slot`.
pub const fn slot_key(slot: Slot) -> Key {
    Key::constant(0x0100 + slot.index())
}

/// The staged (renewal) key for `slot`.
pub const fn staged_key(slot: Slot) -> Key {
    Key::constant(0x0180 + slot.index())
}

/// The record of a data object, if `tag` is one the card stores.
///
/// PIV's objects `5FC101`–`5FC123`, Yubico's `5FFF00`–`5FFF15`, and
/// the secure messaging key's CVC `5FFF40`.
pub fn object(tag: u32) -> Option<Key> {
    match tag {
        crate::objects::SM_CVC => Key::new(0x0460),
        0x5FC101..=0x5FC123 => Key::new(0x0400 + (tag - 0x5FC100) as u16),
        0x5FFF00..=0x5FFF15 => Key::new(0x0440 + (tag - 0x5FFF00) as u16),
        _ => None,
    }
}

/// Flag bit in the card record: a simulated card.
pub const FLAG_VIRTUAL: u8 = 0x01;
