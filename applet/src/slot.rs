//! Key references, each command's own set, so an invalid reference cannot
//! be represented past parsing.

use crate::error::{Error, Result};

/// An asymmetric key slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// `9A`: PIV authentication (log-in). PIN once per session.
    Authentication,
    /// `9C`: digital signature. PIN immediately before every use.
    Signature,
    /// `9D`: key management (decryption, ECDH). PIN once.
    KeyManagement,
    /// `9E`: card authentication. No PIN.
    CardAuthentication,
    /// `82`–`95`: retired key management keys, numbered 1 to 20.
    Retired(Retired),
    /// `F9`: the attestation key (Yubico).
    Attestation,
    /// `04`: the secure messaging key (SP 800-73-4 Part 2 §4), a P-256 or
    /// P-384 key its issuer puts there with its card-verifiable
    /// certificate. It serves key establishment only; no PIN.
    SecureMessaging,
}

/// A slot prints as its key reference (`9A`), as tools and traces name it.
impl core::fmt::UpperHex for Slot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::UpperHex::fmt(&self.byte(), f)
    }
}

impl core::fmt::LowerHex for Slot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::LowerHex::fmt(&self.byte(), f)
    }
}

/// A retired-key number, 1 to 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Retired(u8);

/// How many slots there are: 4 main, 20 retired, attestation, secure
/// messaging.
pub const SLOT_COUNT: usize = 26;

impl Slot {
    /// Every slot, in index order.
    pub fn all() -> impl Iterator<Item = Slot> {
        (0..SLOT_COUNT).filter_map(Slot::from_index)
    }

    /// The slot a key reference byte names.
    pub fn from_byte(b: u8) -> Result<Slot> {
        Ok(match b {
            0x9A => Slot::Authentication,
            0x9C => Slot::Signature,
            0x9D => Slot::KeyManagement,
            0x9E => Slot::CardAuthentication,
            0x82..=0x95 => Slot::Retired(Retired(b - 0x81)),
            0xF9 => Slot::Attestation,
            0x04 => Slot::SecureMessaging,
            _ => return Err(Error::BadParameters),
        })
    }

    /// The key reference byte.
    pub const fn byte(self) -> u8 {
        match self {
            Slot::Authentication => 0x9A,
            Slot::Signature => 0x9C,
            Slot::KeyManagement => 0x9D,
            Slot::CardAuthentication => 0x9E,
            Slot::Retired(Retired(n)) => 0x81 + n,
            Slot::Attestation => 0xF9,
            Slot::SecureMessaging => 0x04,
        }
    }

    /// A dense index, 0 to 25, for storage keys.
    pub const fn index(self) -> u16 {
        match self {
            Slot::Authentication => 0,
            Slot::Signature => 1,
            Slot::KeyManagement => 2,
            Slot::CardAuthentication => 3,
            Slot::Retired(Retired(n)) => 3 + n as u16,
            Slot::Attestation => 24,
            Slot::SecureMessaging => 25,
        }
    }

    fn from_index(i: usize) -> Option<Slot> {
        Some(match i {
            0 => Slot::Authentication,
            1 => Slot::Signature,
            2 => Slot::KeyManagement,
            3 => Slot::CardAuthentication,
            4..=23 => Slot::Retired(Retired(i as u8 - 3)),
            24 => Slot::Attestation,
            25 => Slot::SecureMessaging,
            _ => return None,
        })
    }

    /// The PIN policy PIV gives the slot when none is asked for.
    pub const fn default_pin_policy(self) -> PinPolicy {
        match self {
            Slot::Signature => PinPolicy::Always,
            Slot::CardAuthentication | Slot::Attestation | Slot::SecureMessaging => {
                PinPolicy::Never
            }
            _ => PinPolicy::Once,
        }
    }

    /// Whether a key of `algorithm` may live in the slot: the attestation
    /// key signs certificates with ECDSA on P-256, the secure messaging
    /// key is a cipher suite's curve; the others take any.
    pub fn accepts(self, algorithm: crate::algorithm::Algorithm) -> bool {
        match self {
            Slot::Attestation => algorithm == crate::algorithm::Algorithm::P256,
            Slot::SecureMessaging => crate::sm::Suite::of(algorithm).is_some(),
            _ => true,
        }
    }

    /// The data object holding the slot's certificate (the secure
    /// messaging key has a card-verifiable certificate instead, which no
    /// renewal replaces).
    pub const fn certificate_tag(self) -> Option<u32> {
        Some(match self {
            Slot::Authentication => 0x5FC105,
            Slot::Signature => 0x5FC10A,
            Slot::KeyManagement => 0x5FC10B,
            Slot::CardAuthentication => 0x5FC101,
            Slot::Retired(Retired(n)) => 0x5FC10C + n as u32,
            // Yubico keeps the attestation certificate here.
            Slot::Attestation => 0x5FFF01,
            Slot::SecureMessaging => return None,
        })
    }
}

/// A slot that holds a key its holder controls: every slot but the
/// attestation key's. GENERATE, STAGE, MOVE KEY (both ends), ATTEST (the
/// key attested) and the renewal commands take only these, so a command
/// that would replace or move the card's own attestation key cannot be
/// written past parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeySlot(Slot);

impl KeySlot {
    /// The key slot a reference byte names; `F9` and unknown bytes are
    /// [`Error::BadParameters`].
    pub fn from_byte(b: u8) -> Result<KeySlot> {
        match Slot::from_byte(b)? {
            Slot::Attestation => Err(Error::BadParameters),
            slot => Ok(KeySlot(slot)),
        }
    }

    /// The slot.
    pub const fn slot(self) -> Slot {
        self.0
    }
}

/// When a slot's key needs the PIN (Yubico's PIN policy byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinPolicy {
    /// Never.
    Never,
    /// Once per session.
    Once,
    /// Immediately before every use.
    Always,
}

impl PinPolicy {
    /// Parses the Yubico byte; `00` means the slot's default.
    pub fn from_byte(b: u8, slot: Slot) -> Result<PinPolicy> {
        match b {
            0x00 => Ok(slot.default_pin_policy()),
            0x01 => Ok(PinPolicy::Never),
            0x02 => Ok(PinPolicy::Once),
            0x03 => Ok(PinPolicy::Always),
            _ => Err(Error::BadData),
        }
    }

    /// The Yubico byte.
    pub const fn byte(self) -> u8 {
        match self {
            PinPolicy::Never => 0x01,
            PinPolicy::Once => 0x02,
            PinPolicy::Always => 0x03,
        }
    }
}

/// Touch policy: accepted and reported; this card has no button.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TouchPolicy(u8);

impl TouchPolicy {
    /// Never, the default.
    pub const NEVER: TouchPolicy = TouchPolicy(0x01);

    /// Parses the Yubico byte (`00` default, `01` never, `02` always,
    /// `03` cached).
    pub fn from_byte(b: u8) -> Result<TouchPolicy> {
        match b {
            0x00 => Ok(TouchPolicy::NEVER),
            0x01..=0x03 => Ok(TouchPolicy(b)),
            _ => Err(Error::BadData),
        }
    }

    /// The Yubico byte.
    pub const fn byte(self) -> u8 {
        self.0
    }
}

/// Which passcode a command names in P2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passcode {
    /// `80`: the PIN (the holder's passcode).
    Pin,
    /// `81`: the PUK.
    Puk,
    /// `98`: the pairing code, 8 digits, which opens the virtual contact
    /// interface inside a secure messaging session (Series 9 only).
    PairingCode,
}

impl Passcode {
    /// Parses P2 of VERIFY / CHANGE REFERENCE DATA.
    pub fn from_byte(b: u8) -> Result<Passcode> {
        match b {
            0x80 => Ok(Passcode::Pin),
            0x81 => Ok(Passcode::Puk),
            crate::ins::PAIRING_CODE_REF => Ok(Passcode::PairingCode),
            _ => Err(Error::BadParameters),
        }
    }
}

/// Management key algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminAlgorithm {
    /// `03`: three-key triple DES, the factory default.
    Tdes,
    /// `08`: AES-128.
    Aes128,
    /// `0A`: AES-192.
    Aes192,
    /// `0C`: AES-256.
    Aes256,
}

impl AdminAlgorithm {
    /// Parses the algorithm byte. SP 800-78 also names three-key Triple
    /// DES `00` (OpenSC's `pkcs11-tool --test` uses it).
    pub fn from_byte(b: u8) -> Result<AdminAlgorithm> {
        match b {
            0x00 | 0x03 => Ok(AdminAlgorithm::Tdes),
            0x08 => Ok(AdminAlgorithm::Aes128),
            0x0A => Ok(AdminAlgorithm::Aes192),
            0x0C => Ok(AdminAlgorithm::Aes256),
            _ => Err(Error::BadParameters),
        }
    }

    /// The algorithm byte.
    pub const fn byte(self) -> u8 {
        match self {
            AdminAlgorithm::Tdes => 0x03,
            AdminAlgorithm::Aes128 => 0x08,
            AdminAlgorithm::Aes192 => 0x0A,
            AdminAlgorithm::Aes256 => 0x0C,
        }
    }

    /// Key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            AdminAlgorithm::Tdes | AdminAlgorithm::Aes192 => 24,
            AdminAlgorithm::Aes128 => 16,
            AdminAlgorithm::Aes256 => 32,
        }
    }

    /// Cipher block length in bytes (the challenge length).
    pub const fn block_len(self) -> usize {
        match self {
            AdminAlgorithm::Tdes => 8,
            _ => 16,
        }
    }
}
