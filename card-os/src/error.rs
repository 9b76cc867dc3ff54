//! The card OS's errors, and the one place they become status words.

use apdu::Status;

/// Why the OS itself answers a command with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a command APDU.
    Malformed(apdu::Error),
    /// A class byte outside the first interindustry range (proprietary,
    /// reserved, or `FF`).
    ClassNotSupported,
    /// A secure messaging format other than PIV's (`0C`).
    SecureMessaging,
    /// A logical channel other than the basic one.
    LogicalChannel,
    /// `6X` and `9X` are not instructions (ISO 7816-3 reserves them).
    InvalidInstruction,
    /// A command for an application while none is selected.
    NoApplicationSelected,
    /// SELECT by a name no applet answers to, or a prefix several share.
    ApplicationNotFound,
    /// SELECT with parameters this card does not support.
    SelectParameters,
    /// A command chain longer than the chaining buffer.
    ChainTooLong,
    /// A command longer than the card's buffer (its bytes were dropped as
    /// they came).
    CommandTooLong,
    /// GET RESPONSE with no response waiting.
    NothingPending,
    /// GET RESPONSE with P1 P2 other than `00 00`.
    GetResponseParameters,
    /// GET RESPONSE carrying data.
    GetResponseData,
    /// GET RESPONSE asked for more than is left; the byte says how much is.
    WrongLe(u8),
}

impl Error {
    /// The status word the card answers with.
    pub const fn status(self) -> Status {
        match self {
            Error::Malformed(_) => Status::WrongLength,
            Error::ClassNotSupported => Status::ClassNotSupported,
            Error::SecureMessaging => Status::SecureMessagingNotSupported,
            Error::LogicalChannel => Status::LogicalChannelNotSupported,
            Error::InvalidInstruction => Status::InstructionNotSupported,
            Error::NoApplicationSelected => Status::ConditionsOfUseNotSatisfied,
            Error::ApplicationNotFound => Status::NotFound,
            Error::SelectParameters | Error::GetResponseParameters => Status::IncorrectP1P2,
            Error::ChainTooLong => Status::NotEnoughMemory,
            Error::CommandTooLong => Status::WrongLength,
            Error::NothingPending => Status::ConditionsOfUseNotSatisfied,
            Error::GetResponseData => Status::WrongLength,
            Error::WrongLe(n) => Status::WrongLe(n),
        }
    }
}
