//! The security status of a session: what a reset or deselection forgets.
//!
//! The proofs are zero-sized tokens that only the checks can make
//! (`PinVerified` only in `pin.rs`, `Admin` only in `admin.rs`), and the code
//! that signs, generates or writes takes a reference to one, so a missing
//! check is a compile error.

use crate::slot::{AdminAlgorithm, PinPolicy};

/// Proof that the PIN was verified in this session.
#[derive(Debug)]
pub struct PinVerified(pub(crate) ());

/// Proof that the management key was authenticated in this session.
#[derive(Debug)]
pub struct Admin(pub(crate) ());

/// The challenge of a management-key authentication in progress. Used once.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub(crate) algorithm: AdminAlgorithm,
    pub(crate) mutual: bool,
    pub(crate) value: [u8; 16],
}

impl Drop for Challenge {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

/// Everything the applet forgets on reset.
#[derive(Debug, Default)]
pub struct Session {
    /// PIN verified (for "once" keys and protected objects).
    pub pin: Option<PinVerified>,
    /// PIN verified and not yet used by a "PIN always" key.
    pub pin_always: Option<PinVerified>,
    /// Management key authenticated.
    pub admin: Option<Admin>,
    /// A pending management-key challenge.
    pub challenge: Option<Challenge>,
}

/// What a key's PIN policy lets through, or the proof it needed.
pub enum Authorized<'a> {
    /// The policy needs no PIN.
    NoPin,
    /// The session's PIN status.
    Session(&'a PinVerified),
    /// A "PIN always" verification, spent on this one use.
    Spent(PinVerified),
}

impl Session {
    /// Marks the PIN verified.
    pub(crate) fn pin_verified(&mut self) {
        self.pin = Some(PinVerified(()));
        self.pin_always = Some(PinVerified(()));
    }

    /// Forgets the PIN status (VERIFY logout, PIN change by reset, …).
    pub fn forget_pin(&mut self) {
        self.pin = None;
        self.pin_always = None;
    }

    /// Checks a key's PIN policy, spending a "PIN always" verification.
    pub fn authorize(&mut self, policy: PinPolicy) -> Option<Authorized<'_>> {
        match policy {
            PinPolicy::Never => Some(Authorized::NoPin),
            PinPolicy::Once => self.pin.as_ref().map(Authorized::Session),
            PinPolicy::Always => self.pin_always.take().map(Authorized::Spent),
        }
    }
}
