//! PIV secure messaging (SP 800-73-4 Part 2 §4): the card's side of the
//! key establishment and of the protected commands that follow it.
//!
//! A client opens a session with GENERAL AUTHENTICATE on key `04`: it sends
//! an ephemeral public key, the card answers with a nonce, a key
//! confirmation cryptogram and its card-verifiable certificate, and both
//! derive four AES keys from the ECDH secret ([`establish`]). From then on
//! a command with class `0C` carries its data encrypted and MACed, and its
//! answer comes back the same way ([`Channel`]). The session lives in RAM
//! only: a reset, a power cut or another key establishment ends it, and a
//! MAC that does not verify ends it at once (`69 88`).
//!
//! Two cipher suites exist and a card has the one its key `04` is for:
//! CS2 (P-256, SHA-256, AES-128) and CS7 (P-384, SHA-384, AES-256).

mod channel;
mod cipher;
mod establish;

pub use channel::{AFTER, Channel, RESERVED, TRAILER};
pub use cipher::Block;
pub use establish::MAX_OTHER_INFO;
pub use establish::{CB_ICC, ESTABLISH_P2, Establishment, establish, hash, kdf, other_info};

use crate::algorithm::Algorithm;

/// A secure-messaging cipher suite (SP 800-73-4 Part 2 Table 14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// `27`: ECDH on P-256, SHA-256 KDF, AES-128.
    Cs2,
    /// `2E`: ECDH on P-384, SHA-384 KDF, AES-256.
    Cs7,
}

impl Suite {
    /// The suite a cipher suite identifier names (GENERAL AUTHENTICATE's
    /// P1, the SELECT response's `AC` template), if this build has its
    /// curve.
    pub fn from_id(id: u8) -> Option<Suite> {
        let suite = match id {
            0x27 => Suite::Cs2,
            0x2E => Suite::Cs7,
            _ => return None,
        };
        suite.algorithm().is_built().then_some(suite)
    }

    /// The suite whose key establishment uses a key of `algorithm`.
    pub fn of(algorithm: Algorithm) -> Option<Suite> {
        match algorithm {
            Algorithm::P256 => Some(Suite::Cs2),
            Algorithm::P384 if algorithm.is_built() => Some(Suite::Cs7),
            _ => None,
        }
    }

    /// The cipher suite identifier.
    pub const fn id(self) -> u8 {
        match self {
            Suite::Cs2 => 0x27,
            Suite::Cs7 => 0x2E,
        }
    }

    /// The algorithm of the card's key `04` for this suite.
    pub const fn algorithm(self) -> Algorithm {
        match self {
            Suite::Cs2 => Algorithm::P256,
            Suite::Cs7 => Algorithm::P384,
        }
    }

    /// AES key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Suite::Cs2 => 16,
            Suite::Cs7 => 32,
        }
    }

    /// The card's nonce N_ICC, in bytes.
    pub const fn nonce_len(self) -> usize {
        match self {
            Suite::Cs2 => 16,
            Suite::Cs7 => 24,
        }
    }

    /// An uncompressed point `04 || X || Y`, in bytes.
    pub const fn point_len(self) -> usize {
        self.algorithm().public_len()
    }
}

/// The longest AES key (CS7's).
pub const MAX_KEY: usize = 32;
/// The longest nonce (CS7's).
pub const MAX_NONCE: usize = 24;
/// The key confirmation cryptogram: a full AES-CMAC.
pub const CRYPTOGRAM_LEN: usize = 16;
/// A MAC as a protected APDU carries it: CMAC's first 8 bytes.
pub const MAC_LEN: usize = 8;
