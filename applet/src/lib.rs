//! The s9card PIV applet: NIST SP 800-73-4 commands, the Yubico extensions
//! that tools need, and the Series 9 rules (passcode policy, serials,
//! virtual-card marker, all-or-nothing renewal).
//!
//! Commands arrive whole from the card OS (chaining and GET RESPONSE are its
//! business) and every state change is one store transaction. See
//! `README.md` for the command table and the vendor commands.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod admin;
pub mod algorithm;
pub mod attest;
mod commands;
pub mod crypto;
pub mod error;
pub mod identity;
mod ins;
pub mod keys;
pub mod layout;
pub mod objects;
pub mod passcode;
pub mod pin;
pub mod secrecy;
pub mod secrets;
pub mod session;
pub mod slot;

use apdu::{Command, Header, Status};
use card_os::{Applet, Context, Reply, Secrecy};

pub use error::Error;
pub use secrets::DeviceKey;

/// The version GET VERSION reports: Yubico firmware numbering, at least
/// 5.4.3 so that tools enable metadata, and 5.7 for MOVE KEY.
pub const VERSION: [u8; 3] = [5, 7, 1];

/// The ATR's historical bytes: category `80`, card capabilities (`73 C0 21
/// C0`: selection by full or partial DF name, command chaining, extended
/// lengths), then COMPACT-TLV `5` "card issuer's data" `S9CARD` and `V` for
/// a virtual card or `P` for a physical one. Tools read the marker here,
/// which is why the card (host or firmware) says it, not the reader.
pub fn historical_bytes(is_virtual: bool) -> [u8; 13] {
    let marker = if is_virtual { b'V' } else { b'P' };
    [
        0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, b'S', b'9', b'C', b'A', b'R', b'D', marker,
    ]
}

/// The card's T=1 ATR with those historical bytes.
pub fn atr(is_virtual: bool) -> card_os::atr::Atr {
    // Thirteen historical bytes are within T=1's fifteen, so this is Some.
    card_os::atr::t1(&historical_bytes(is_virtual)).unwrap_or_default()
}

/// The PIV applet.
pub struct Piv {
    device: DeviceKey,
    is_virtual: bool,
    factory_serial: Option<u32>,
    session: session::Session,
}

impl Piv {
    /// A PIV applet sealing its secrets under `device`. `is_virtual` marks
    /// the card as simulated when it first initialises itself.
    pub fn new(device: DeviceKey, is_virtual: bool) -> Self {
        Piv {
            device,
            is_virtual,
            factory_serial: None,
            session: session::Session::default(),
        }
    }

    /// The serial a blank card takes when it first initialises itself,
    /// instead of one drawn from its RNG (`0900000000`–`0999999999`).
    pub fn with_factory_serial(mut self, serial: u32) -> Self {
        self.factory_serial = Some(serial);
        self
    }

    /// The session's security status (for tests).
    pub fn session(&self) -> &session::Session {
        &self.session
    }
}

impl Applet for Piv {
    fn aid(&self) -> &[u8] {
        &objects::PIV_AID
    }

    fn select(&mut self, ctx: &mut Context<'_>, reply: &mut Reply<'_>) -> Result<(), Status> {
        commands::select(self, ctx, reply).map_err(Error::status)
    }

    fn deselect(&mut self) {
        self.session = session::Session::default();
    }

    fn secrecy(&self, header: &Header, data: &[u8]) -> Secrecy {
        secrecy::of(header, data)
    }

    fn process(
        &mut self,
        command: &Command<'_>,
        ctx: &mut Context<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), Status> {
        commands::run(self, command, ctx, reply).map_err(Error::status)
    }
}
