//! The security status of a session: what a reset or deselection forgets.
//!
//! The proofs are zero-sized tokens whose fields are private to the module
//! that checks: [`PinVerified`] is made only by [`crate::pin::verify`],
//! [`Admin`] only by [`crate::admin::authenticate`], and [`Authorized`] only
//! by [`Session::authorize`] from a key's PIN policy. Every operation that
//! needs one takes it as an argument: a slot's private key is reachable only
//! through [`crate::keys::KeyRecord::sign`], `agree` and `attest` (which take
//! [`Authorized`]) and `moved` (which takes [`Admin`]); generating and
//! importing keys, writing objects, replacing the management key, setting
//! the retry counts and the vendor commands take [`Admin`] (and, where the
//! command needs the PIN, [`PinVerified`]). A handler that skips a check
//! has no token to pass, and does not compile. Each refusal below stands
//! beside the same code with its proof, which compiles, so the refusal is
//! the missing proof's and not a slip in the example (stable rustdoc does
//! not compare error codes).
//!
//! ```
//! # use applet::{DeviceKey, Error, keys::KeyRecord, session::Session};
//! # fn f(record: &KeyRecord, device: &DeviceKey, session: &mut Session, rng: &mut dyn rand_core::CryptoRng) -> applet::error::Result<()> {
//! let authorized = session.authorize(record.pin).ok_or(Error::SecurityStatus)?;
//! let mut out = [0u8; applet::crypto::MAX_OUTPUT];
//! record.sign(device, &[0u8; 32], &mut out, rng, &authorized)?;
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! # use applet::{DeviceKey, Error, keys::KeyRecord, session::Session};
//! # fn f(record: &KeyRecord, device: &DeviceKey, session: &mut Session) -> applet::error::Result<()> {
//! // Signing with a slot's key needs what its PIN policy asks for.
//! let mut out = [0u8; applet::crypto::MAX_OUTPUT];
//! let rng: &mut dyn rand_core::CryptoRng = todo!();
//! record.sign(device, &[0u8; 32], &mut out, rng)?;
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! # use applet::{DeviceKey, Error, keys::KeyRecord, session::Session};
//! # fn f(record: &KeyRecord, device: &DeviceKey, session: &mut Session) -> applet::error::Result<()> {
//! // Nor can the private key be taken out to sign with directly.
//! let secret = record.secret(device)?;
//! # Ok(()) }
//! ```
//!
//! ```
//! # use applet::{Error, session::Session};
//! # fn f(rng: &mut dyn rand_core::CryptoRng, session: &Session) -> applet::error::Result<()> {
//! let admin = session.admin.as_ref().ok_or(Error::SecurityStatus)?;
//! let key = applet::keys::generate(applet::algorithm::Algorithm::P256, rng, admin)?;
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! # use applet::{Error, session::Session};
//! # fn f(rng: &mut dyn rand_core::CryptoRng, session: &Session) -> applet::error::Result<()> {
//! // Generating a key needs the management key's proof.
//! let key = applet::keys::generate(applet::algorithm::Algorithm::P256, rng)?;
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! # use applet::{Error, session::Session};
//! # fn f(rng: &mut dyn rand_core::CryptoRng, session: &Session) -> applet::error::Result<()> {
//! // And the proof cannot be made up outside `admin`.
//! let key = applet::keys::generate(applet::algorithm::Algorithm::P256, rng, &applet::session::Admin(()))?;
//! # Ok(()) }
//! ```
//!
//! ```
//! # use applet::{Error, session::Session};
//! # fn f(session: &Session) -> applet::error::Result<()> {
//! let pin: &applet::session::PinVerified = session.pin.as_ref().ok_or(Error::SecurityStatus)?;
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! # use applet::{Error, session::Session};
//! # fn f(session: &Session) -> applet::error::Result<()> {
//! // Outside `pin`, a PIN proof cannot be made up.
//! let pin: &applet::session::PinVerified = &applet::session::PinVerified(());
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! // Nor can a grant of a PIN policy be made outside `Session::authorize`.
//! fn grant<'a>() -> applet::session::Authorized<'a> {
//!     applet::session::Authorized(todo!())
//! }
//! ```

pub use crate::admin::Admin;
pub use crate::pin::PinVerified;
use crate::slot::{AdminAlgorithm, PinPolicy};

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
    /// The open secure-messaging session, if any.
    pub sm: Option<crate::sm::Channel>,
    /// The virtual contact interface is open: in this secure messaging
    /// session the pairing code was verified (or the card needs none).
    pub vci: bool,
}

/// What a key's PIN policy let through, for one use of the key. Only
/// [`Session::authorize`] makes one.
pub struct Authorized<'a>(#[allow(dead_code, reason = "a proof is held, not read")] Grant<'a>);

enum Grant<'a> {
    /// The policy needs no PIN.
    NoPin,
    /// The session's PIN status.
    Session(#[allow(dead_code, reason = "a proof is held, not read")] &'a PinVerified),
    /// A "PIN always" verification, spent on this one use.
    Spent(#[allow(dead_code, reason = "a proof is held, not read")] PinVerified),
}

impl Session {
    /// Forgets the PIN status (VERIFY logout, PIN change by reset, …).
    pub fn forget_pin(&mut self) {
        self.pin = None;
        self.pin_always = None;
    }

    /// Checks a key's PIN policy, spending a "PIN always" verification.
    pub fn authorize(&mut self, policy: PinPolicy) -> Option<Authorized<'_>> {
        let grant = match policy {
            PinPolicy::Never => Grant::NoPin,
            PinPolicy::Once => Grant::Session(self.pin.as_ref()?),
            PinPolicy::Always => Grant::Spent(self.pin_always.take()?),
        };
        Some(Authorized(grant))
    }
}
