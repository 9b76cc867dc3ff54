//! What can go wrong talking to a card, and how a status word reads.

use apdu::Status;
use applet::ins::Instruction;

/// Why a card operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The reader or the connection failed.
    #[error("card reader: {0}")]
    Transport(String),
    /// The card refused a command with a status of ISO 7816-4's and PIV's
    /// table.
    #[error("{}: card answered {:04X} ({})", command.name(), status.sw(), meaning(status.sw()))]
    Refused {
        /// The command it refused.
        command: Instruction,
        /// What it answered.
        status: Status,
    },
    /// The card answered a status word outside that table.
    #[error("{}: card answered {sw:04X} (unknown status)", command.name())]
    UnknownStatus {
        /// The command it answered.
        command: Instruction,
        /// SW1 SW2.
        sw: u16,
    },
    /// Secure messaging failed: the card's key establishment did not check
    /// out, or a protected answer was not the session's.
    #[error("secure messaging: {0}")]
    SecureMessaging(&'static str),
    /// The card's answer did not have the expected form.
    #[error("unexpected answer from the card: {0}")]
    Malformed(&'static str),
}

impl ClientError {
    /// The error for `command` answered with `sw` (not `90 00`).
    pub fn refused(command: Instruction, sw: u16) -> ClientError {
        match Status::from_sw(sw) {
            Some(status) => ClientError::Refused { command, status },
            None => ClientError::UnknownStatus { command, sw },
        }
    }

    /// The card's status, when the card refused.
    pub fn status(&self) -> Option<Status> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Results of card operations.
pub type Result<T> = std::result::Result<T, ClientError>;

/// A status word in words, as an error message or a trace shows it.
pub fn meaning(sw: u16) -> String {
    match Status::from_sw(sw) {
        Some(Status::VerificationFailed(t)) => {
            format!("verification failed, {} tries left", t.get())
        }
        Some(Status::MoreData(n)) => format!(
            "more data: {} bytes",
            if n == 0 { 256 } else { usize::from(n) }
        ),
        Some(s) => s.meaning().to_string(),
        None => "unknown status".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_read_as_words() {
        assert_eq!(meaning(0x63C2), "verification failed, 2 tries left");
        assert_eq!(meaning(0x6100), "more data: 256 bytes");
        assert_eq!(meaning(0x1234), "unknown status");
        let e = ClientError::refused(Instruction::Verify, 0x6983);
        assert_eq!(e.status(), Some(Status::AuthenticationMethodBlocked));
        assert!(e.to_string().starts_with("VERIFY: card answered 6983 ("));
        let e = ClientError::refused(Instruction::SetSerial, 0x6A83);
        assert_eq!(
            e,
            ClientError::UnknownStatus {
                command: Instruction::SetSerial,
                sw: 0x6A83
            }
        );
        assert_eq!(
            e.to_string(),
            "SET SERIAL: card answered 6A83 (unknown status)"
        );
    }
}
