//! What the contactless interface lets through (SP 800-73-4 Part 1 Table
//! 1, Part 2 §3 and §4.4): a card in a phone's or an NFC reader's field
//! answers, in the clear and without a PIN, only what identifies it (the
//! CHUID, the Card Authentication certificate and key, the Discovery
//! object, the Biometric Information Templates Group Template, the
//! Secure Messaging Certificate Signer) and key establishment. Everything
//! the contact interface offers a holder then needs the virtual contact
//! interface: a secure messaging session, with the pairing code verified
//! in it (or a card that needs none), and every such command protected.
//! Card management (the management key) stays on the contact interface,
//! and so does the Pairing Code Reference Data Container.
//!
//! The contact interface is unrestricted by this module; the YubiKey
//! profile, which has no secure messaging, answers over NFC as over USB.

use apdu::Command;
use card_os::Interface;

use crate::Piv;
use crate::error::{Error, Result};
use crate::ins::*;
use crate::objects;
use crate::sm::ESTABLISH_P2;

/// How a command reached the applet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// In the clear.
    Clear,
    /// Under secure messaging, unwrapped.
    Protected,
}

/// The objects any interface may read in the clear and without a PIN.
pub fn is_public_contactless(tag: u32) -> bool {
    matches!(
        tag,
        objects::CHUID
            | objects::CARD_AUTH_CERT
            | objects::DISCOVERY
            | objects::BIT_GROUP
            | objects::SM_SIGNER
    )
}

/// Refuses, with `69 82`, what `interface` does not let through for a
/// command that came `via`.
pub fn check(piv: &Piv, cmd: &Command<'_>, interface: Interface, via: Via) -> Result<()> {
    // The pairing code is verified only inside a session, whatever the
    // interface: it is what opens the virtual contact interface, and a
    // relay must not learn it on the way.
    if cmd.ins() == INS_VERIFY && cmd.p2() == PAIRING_CODE_REF && via != Via::Protected {
        return Err(Error::SecurityStatus);
    }
    if interface == Interface::Contact || !piv.profile.has_secure_messaging() {
        return Ok(());
    }
    // The virtual contact interface: the session's, for its commands only.
    let vci = via == Via::Protected && piv.session.vci;
    let allowed = match cmd.ins() {
        INS_GET_DATA => match objects::requested(cmd.data()) {
            Ok(tag) if is_public_contactless(tag) => true,
            Ok(objects::PAIRING_CODE) => false,
            _ => vci,
        },
        INS_GENERAL_AUTHENTICATE => match cmd.p2() {
            // Card authentication is what the contactless interface is
            // for; key establishment opens the session.
            0x9E | ESTABLISH_P2 => true,
            KEY_REF_ADMIN => false,
            _ => vci,
        },
        // The pairing code travels only inside a session.
        INS_VERIFY | INS_CHANGE_REFERENCE if cmd.p2() == PAIRING_CODE_REF => via == Via::Protected,
        _ => vci,
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::SecurityStatus)
    }
}
