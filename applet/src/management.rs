//! The YubiKey Management application (AID `A000000527471117`), as a
//! YubiKey-compatible card installs it beside PIV.
//!
//! Tools that only talk to YubiKeys select it before anything else: its
//! SELECT answer names the firmware version, and READ CONFIG (`1D`) gives
//! the device-info record they gate features on. This one says what the
//! card really is: version 5.7.1, the card's serial, a USB-A keychain, and
//! only the capability it has (PIV), enabled. It writes nothing: device
//! configuration (`1C`), mode switching (`16`) and device reset (`1F`) are
//! instructions it does not have, which is what a tool sees from a YubiKey
//! whose configuration is locked down.

use apdu::tlv::Tag;
use apdu::{Command, Header, Status};
use card_os::{Applet, Context, Reply, Secrecy};

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::secrets::DeviceKey;

/// The Management application's AID.
pub const AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];

/// READ CONFIG: P1 is the page of the device-info record.
const INS_READ_CONFIG: u8 = 0x1D;

/// Device-info tags (yubikit's `TAG_*`).
mod tag {
    pub const USB_SUPPORTED: u32 = 0x01;
    pub const SERIAL: u32 = 0x02;
    pub const USB_ENABLED: u32 = 0x03;
    pub const FORM_FACTOR: u32 = 0x04;
    pub const VERSION: u32 = 0x05;
    pub const AUTO_EJECT_TIMEOUT: u32 = 0x06;
    pub const CHALRESP_TIMEOUT: u32 = 0x07;
    pub const DEVICE_FLAGS: u32 = 0x08;
    pub const CONFIG_LOCK: u32 = 0x0A;
    pub const PIN_COMPLEXITY: u32 = 0x16;
}

/// The PIV capability bit; the card has no other application.
const CAPABILITY_PIV: [u8; 2] = [0x00, 0x10];
/// Form factor `01`: USB-A keychain.
const FORM_FACTOR_USB_A_KEYCHAIN: u8 = 0x01;
/// YubiKeys' default challenge-response timeout, in seconds.
const CHALRESP_TIMEOUT: u8 = 15;

/// The Management application. It reads the serial from the PIV
/// application's identity record, so it holds the same device key.
pub struct Management {
    device: DeviceKey,
    pin_complexity: bool,
}

impl Management {
    /// The application of a card whose secrets are sealed under `device`;
    /// `pin_complexity` is what it reports of the PIN policy.
    pub fn new(device: DeviceKey, pin_complexity: bool) -> Self {
        Management {
            device,
            pin_complexity,
        }
    }

    /// Page 0 of the device-info record: one length byte, then TLVs. It
    /// has no further pages (no `10` "more data" tag), and a later page is
    /// an empty record.
    fn device_info(&self, ctx: &mut Context<'_>, page: u8, reply: &mut Reply<'_>) -> Result<()> {
        if page != 0 {
            return Ok(reply.raw(&[0x00])?);
        }
        // A card whose PIV application never ran has no serial yet.
        let serial = Identity::load(ctx.store, &self.device)?.map(|id| id.serial);
        let mut body = [0u8; 64];
        let mut w = apdu::tlv::Writer::new(&mut body);
        w.tlv(Tag::constant(tag::USB_SUPPORTED), &CAPABILITY_PIV)?;
        if let Some(serial) = serial {
            w.tlv(Tag::constant(tag::SERIAL), &serial.to_be_bytes())?;
        }
        w.tlv(Tag::constant(tag::USB_ENABLED), &CAPABILITY_PIV)?;
        w.tlv(
            Tag::constant(tag::FORM_FACTOR),
            &[FORM_FACTOR_USB_A_KEYCHAIN],
        )?;
        w.tlv(Tag::constant(tag::VERSION), &crate::VERSION)?;
        w.tlv(Tag::constant(tag::AUTO_EJECT_TIMEOUT), &[0x00, 0x00])?;
        w.tlv(Tag::constant(tag::CHALRESP_TIMEOUT), &[CHALRESP_TIMEOUT])?;
        w.tlv(Tag::constant(tag::DEVICE_FLAGS), &[0x00])?;
        w.tlv(Tag::constant(tag::CONFIG_LOCK), &[0x00])?;
        w.tlv(
            Tag::constant(tag::PIN_COMPLEXITY),
            &[u8::from(self.pin_complexity)],
        )?;
        let body = w.written();
        reply.raw(&[u8::try_from(body.len()).map_err(|_| Error::NoSpace)?])?;
        Ok(reply.raw(body)?)
    }
}

impl Applet for Management {
    fn aid(&self) -> &[u8] {
        &AID
    }

    /// The version as text, which is how YubiKeys answer this SELECT.
    fn select(
        &mut self,
        _ctx: &mut Context<'_>,
        reply: &mut Reply<'_>,
    ) -> core::result::Result<(), Status> {
        let [major, minor, patch] = crate::VERSION.map(|d| b'0' + d % 10);
        reply
            .raw(&[major, b'.', minor, b'.', patch])
            .map_err(|e| Error::from(e).status())
    }

    fn deselect(&mut self) {}

    fn secrecy(&self, header: &Header, _data: &[u8]) -> Secrecy {
        match header.ins {
            // Versions, the serial, capabilities: nothing secret.
            INS_READ_CONFIG => Secrecy::PUBLIC,
            // Anything else is a command this application does not have,
            // so it cannot tell what it carries, and what tools send here
            // does carry secrets: WRITE CONFIG (`1C`) holds the current
            // and the new configuration lock code.
            _ => Secrecy::SECRET,
        }
    }

    fn process(
        &mut self,
        command: &Command<'_>,
        ctx: &mut Context<'_>,
        reply: &mut Reply<'_>,
    ) -> core::result::Result<(), Status> {
        let outcome = match command.ins() {
            INS_READ_CONFIG if command.p2() != 0 => Err(Error::BadParameters),
            INS_READ_CONFIG if !command.data().is_empty() => Err(Error::WrongLength),
            INS_READ_CONFIG => self.device_info(ctx, command.p1(), reply),
            _ => Err(Error::UnknownInstruction),
        };
        outcome.map_err(Error::status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(apdu: &[u8]) -> Secrecy {
        let management = Management::new(DeviceKey::new([7; 32]), false);
        let command = Command::parse(apdu).unwrap();
        management.secrecy(&command.header(), command.data())
    }

    #[test]
    fn lock_codes_are_secret_and_only_read_config_is_public() {
        // ykman's WRITE CONFIG: reboot flag, then `0A` the current lock
        // code and `0B` the new one, 16 bytes each.
        let mut write = [0u8; 42];
        write[..6].copy_from_slice(&[0x00, 0x1C, 0x00, 0x00, 0x24, 0x23]);
        write[6..8].copy_from_slice(&[0x0A, 0x10]);
        write[8..24].copy_from_slice(&[0x11; 16]);
        write[24..26].copy_from_slice(&[0x0B, 0x10]);
        write[26..42].copy_from_slice(&[0x22; 16]);
        assert_eq!(verdict(&write), Secrecy::SECRET);
        // Device reset and mode switching: not known here, so secret.
        assert_eq!(verdict(&[0x00, 0x1F, 0x00, 0x00]), Secrecy::SECRET);
        assert_eq!(
            verdict(&[0x00, 0x16, 0x00, 0x00, 0x01, 0x06]),
            Secrecy::SECRET
        );
        assert_eq!(verdict(&[0x00, 0x1D, 0x00, 0x00, 0x00]), Secrecy::PUBLIC);
    }
}
