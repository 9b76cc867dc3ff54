//! What can go wrong talking to a card, and how a status word reads.

use apdu::Status;

/// Why a card operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The reader or the connection failed.
    Transport(String),
    /// The card answered with this status word.
    Status {
        /// What was being done.
        what: &'static str,
        /// SW1 SW2.
        sw: u16,
    },
    /// The card's answer did not have the expected form.
    Malformed(&'static str),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Transport(e) => write!(f, "card reader: {e}"),
            ClientError::Status { what, sw } => {
                write!(f, "{what}: card answered {sw:04X} ({})", meaning(*sw))
            }
            ClientError::Malformed(what) => write!(f, "unexpected answer from the card: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

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
        let e = ClientError::Status {
            what: "VERIFY",
            sw: 0x6983,
        };
        assert!(e.to_string().starts_with("VERIFY: card answered 6983 ("));
    }
}
