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

pub mod access;
pub mod admin;
pub mod algorithm;
pub mod asn1;
pub mod attest;
mod commands;
pub mod crypto;
pub mod cvc;
pub mod error;
pub mod identity;
pub mod ins;
pub mod keys;
pub mod layout;
pub mod management;
pub mod objects;
pub mod passcode;
pub mod pin;
pub mod profile;
pub mod secrecy;
pub mod secrets;
pub mod session;
pub mod slot;
pub mod sm;
pub mod waiting;

use apdu::{Command, Header, Status};
use card_os::{Applet, Context, Reply, Secrecy};

pub use error::Error;
pub use management::Management;
pub use profile::Profile;
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

/// A YubiKey 5's historical bytes: the same category and capabilities,
/// then `5` "YubiKey".
pub const YUBIKEY_HISTORICAL_BYTES: [u8; 13] = [
    0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, b'Y', b'u', b'b', b'i', b'K', b'e', b'y',
];

/// The card's T=1 ATR. A Series 9 card's carries the marker above; a
/// YubiKey-compatible card's is a YubiKey 5's byte for byte (USB form,
/// which tools read as "a token, not a contactless card"), so its virtual
/// marker is told by CARD INFO alone.
pub fn atr(profile: Profile, is_virtual: bool) -> card_os::atr::Atr {
    atr_on(profile, is_virtual, card_os::Interface::Contact)
}

/// The ATR a reader reports for the card on `interface`: on the contact
/// interface [`atr`]'s, on the contactless one the form a PC/SC reader
/// makes of the same historical bytes (a YubiKey 5 NFC's, for the YubiKey
/// profile).
pub fn atr_on(
    profile: Profile,
    is_virtual: bool,
    interface: card_os::Interface,
) -> card_os::atr::Atr {
    let historical = match profile {
        Profile::Series9 => historical_bytes(is_virtual),
        Profile::YubiKey { .. } => YUBIKEY_HISTORICAL_BYTES,
    };
    // Thirteen historical bytes are within the fifteen an ATR has room
    // for, so these are Some.
    match (interface, profile) {
        (card_os::Interface::Contactless, _) => card_os::atr::contactless(&historical),
        (_, Profile::Series9) => card_os::atr::t1(&historical),
        (_, Profile::YubiKey { .. }) => card_os::atr::t1_usb(&historical),
    }
    .unwrap_or_default()
}

/// The applets of a card made as its factory record says, host or
/// firmware: PIV, and on a YubiKey-compatible card the Management
/// application beside it; `profile` is [`Profile::of`] the same record.
pub fn applets(header: &card_os::image::Header, profile: Profile) -> (Piv, Option<Management>) {
    let device = DeviceKey::new(header.device_key);
    let management = match profile {
        Profile::Series9 => None,
        Profile::YubiKey { pin_complexity } => {
            Some(Management::new(device.clone(), pin_complexity))
        }
    };
    let piv = Piv::new(device, header.is_virtual)
        .with_factory_serial(header.serial)
        .with_profile(profile);
    (piv, management)
}

/// The PIV applet.
pub struct Piv {
    device: DeviceKey,
    is_virtual: bool,
    profile: Profile,
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
            profile: Profile::Series9,
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

    /// The card it presents itself as (Series 9 unless set): the factory
    /// record says.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// How this card reads passcodes.
    pub(crate) fn rules(&self) -> passcode::Rules {
        passcode::Rules(self.profile)
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
        // A YubiKey ends the session on every SELECT of PIV, even of PIV
        // while it is selected; PIV itself (and the Series 9 card) keeps it.
        if let Profile::YubiKey { .. } = self.profile {
            self.session = session::Session::default();
        }
        commands::select(self, ctx, reply).map_err(Error::status)
    }

    fn deselect(&mut self) {
        self.session = session::Session::default();
    }

    fn secrecy(&self, header: &Header, data: &[u8]) -> Secrecy {
        secrecy::of(header, data)
    }

    fn waiting_time(&self, header: &Header, data: &[u8]) -> u8 {
        waiting::of(header, data)
    }

    fn process(
        &mut self,
        command: &Command<'_>,
        ctx: &mut Context<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), Status> {
        let header = command.header();
        if commands::protected::is_protected(header.cla) {
            let data = commands::protected::Data::Sent(command.data());
            commands::protected::run(self, header, data, ctx, reply)
        } else {
            commands::run(self, command, ctx, reply, access::Via::Clear)
        }
        .map_err(Error::status)
    }

    fn process_chained(
        &mut self,
        header: Header,
        data: &mut [u8],
        expected: Option<u32>,
        ctx: &mut Context<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), Status> {
        if commands::protected::is_protected(header.cla) {
            let data = commands::protected::Data::Chained(data);
            return commands::protected::run(self, header, data, ctx, reply).map_err(Error::status);
        }
        match Command::new(header, data, expected) {
            Ok(command) => {
                commands::run(self, &command, ctx, reply, access::Via::Clear).map_err(Error::status)
            }
            Err(_) => Err(Status::WrongLength),
        }
    }
}
