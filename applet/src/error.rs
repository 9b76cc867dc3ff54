//! The applet's errors, and the one place they become status words.

use apdu::{Status, Tries};
use card_os::store::StoreError;

/// Why a PIV command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Lc or a length inside the data is wrong for this command.
    WrongLength,
    /// The data field is malformed: missing, extra or unknown TLVs, a PIN
    /// that is not digits, a new passcode the policy refuses.
    BadData,
    /// P1 or P2 names nothing this command accepts.
    BadParameters,
    /// This card does not do that (an algorithm it lacks, say).
    Unsupported,
    /// The data object does not exist.
    ObjectNotFound,
    /// The key slot is empty.
    KeyNotFound,
    /// A PIN, PUK or management key must be presented first.
    SecurityStatus,
    /// A wrong PIN or PUK: this many tries are left.
    WrongPasscode(u8),
    /// The PIN or PUK is blocked.
    Blocked,
    /// Not allowed in the card's current state.
    Conditions,
    /// An object or key too large for the card.
    NoSpace,
    /// The instruction is unknown.
    UnknownInstruction,
    /// The flash failed; nothing was changed.
    Flash,
    /// A command under secure messaging on a card that has none (the
    /// YubiKey profile).
    NoSecureMessaging,
    /// A protected command without its MAC: the secure-messaging session
    /// ends.
    SmMissing,
    /// A protected command whose MAC does not verify, or whose cryptogram
    /// is malformed: the secure-messaging session ends.
    SmIncorrect,
    /// A sealed record failed its integrity check (changed on flash, moved,
    /// or sealed under another device key). It is never used.
    Tampered,
}

impl Error {
    /// The status word for this error.
    pub const fn status(self) -> Status {
        match self {
            Error::WrongLength => Status::WrongLength,
            Error::BadData => Status::IncorrectDataField,
            Error::BadParameters => Status::IncorrectP1P2,
            Error::Unsupported => Status::FunctionNotSupported,
            Error::ObjectNotFound => Status::NotFound,
            Error::KeyNotFound => Status::ReferenceNotFound,
            Error::SecurityStatus => Status::SecurityStatusNotSatisfied,
            Error::WrongPasscode(n) => Status::VerificationFailed(Tries::saturating(n)),
            Error::Blocked => Status::AuthenticationMethodBlocked,
            Error::Conditions => Status::ConditionsOfUseNotSatisfied,
            Error::NoSpace => Status::NotEnoughMemory,
            Error::UnknownInstruction => Status::InstructionNotSupported,
            Error::NoSecureMessaging => Status::SecureMessagingNotSupported,
            Error::SmMissing => Status::SmDataObjectsMissing,
            Error::SmIncorrect => Status::SmDataObjectsIncorrect,
            Error::Flash | Error::Tampered => Status::MemoryFailure,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full | StoreError::ValueTooLarge | StoreError::TooManyKeys => {
                Error::NoSpace
            }
            _ => Error::Flash,
        }
    }
}

impl From<apdu::Error> for Error {
    fn from(e: apdu::Error) -> Self {
        match e {
            apdu::Error::BufferTooSmall => Error::NoSpace,
            _ => Error::BadData,
        }
    }
}

/// Results inside the applet.
pub type Result<T> = core::result::Result<T, Error>;
