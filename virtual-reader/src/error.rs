//! Why serving, bringing cards up, or talking to a server failed: one enum
//! for the crate. Its parts that have many reasons of their own (pcscd and
//! its readers, a scenario file, a latency profile, a server's refusal) are
//! enums of their own inside it, as rustls keeps `PeerMisbehaved` inside its
//! `Error`. No variant repeats a file's text: a file that is not what it
//! should be (a secret handed to the wrong option) must not come back in an
//! error message.

use std::path::PathBuf;
use std::process::ExitStatus;

use client::ClientError;
use virtual_card::image::ImageError;

pub use crate::control::Refusal;
pub use crate::latency::LatencyError;
pub use crate::readers::ReadersError;
pub use crate::scenario::ScenarioError;

/// Why a virtual-reader operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// pcscd or its vpcd readers.
    #[error(transparent)]
    Readers(#[from] ReadersError),
    /// A latency profile that is not one.
    #[error(transparent)]
    Latency(#[from] LatencyError),
    /// A scenario event for a reader the server does not have.
    #[error("scenario: an event for reader {reader} of {readers} readers")]
    NoSuchReader {
        /// The event's reader.
        reader: usize,
        /// The readers served.
        readers: usize,
    },
    /// A card image or firmware flash that could not be made or opened.
    #[error("{}: {source}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ImageError,
    },
    /// A file, socket or process failed.
    #[error("{}: {source}", path.display())]
    File {
        /// What was opened, written or run.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The machine failed (a signal handler, a socket's options).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A card could not be made ready for secure messaging.
    #[error("secure messaging: {0}")]
    SecureMessaging(String),
    /// The firmware card has one interface, the contact one (its T=1
    /// line); the contactless interface is the host card's.
    #[error("the firmware card is served on the contact interface only")]
    FirmwareContactless,
    /// A vpcd address that is not on loopback, or no address at all.
    #[error("{addr}: {problem}")]
    Address {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A card refused or went away.
    #[error(transparent)]
    Card(#[from] ClientError),

    /// No server answers on the control socket.
    #[error("no s9card server at {}: {source}", path.display())]
    NoServer {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server refused a control request.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// The server's answer is not the control protocol.
    #[error("the server's answer is not {}: {}", crate::control::PROTOCOL, .0)]
    BadAnswer(serde_json::Error),

    /// `up` lacks what it needs.
    #[error("cannot bring the cards up:\n  - {}", .0.join("\n  - "))]
    Missing(Vec<String>),
    /// `up` ran already from this state directory.
    #[error("already up (server pid {pid}, state in {}): s9card down first", state.display())]
    AlreadyUp {
        /// The server.
        pid: u32,
        /// The state directory.
        state: PathBuf,
    },
    /// An `up.json` that is not one.
    #[error("{}: {source}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// `down` found nothing up.
    #[error("nothing is up from {} (no {})", .0.display(), crate::up::STATE_FILE)]
    NothingUp(PathBuf),
    /// Not enough empty readers side by side.
    #[error("no {0} empty readers in a row for the cards")]
    NoEmptyReaders(usize),
    /// The server `up` started stopped.
    #[error("s9card serve exited ({status}) before the cards came up:\n{log}")]
    ServerExited {
        /// How.
        status: ExitStatus,
        /// Its log (what it says; never a secret).
        log: String,
    },
    /// PC/SC never showed the cards.
    #[error("PC/SC did not show the {cards} cards within 60 s (log: {})", log.display())]
    NotShown {
        /// How many.
        cards: usize,
        /// The server's log.
        log: PathBuf,
    },
    /// PIN complexity asked of a Series 9 card.
    #[error("{}", crate::up::COMPLEXITY_NEEDS_YUBIKEY)]
    ComplexityNeedsYubiKey,

    /// pcscd lists no vpcd reader.
    #[error("no vpcd reader: start pcscd with them (s9card pcscd --readers 8)")]
    NoReaders,
    /// Every reader for the profile holds a card or is held.
    #[error("every vpcd reader for this profile holds a card or is taken by another test")]
    ReadersTaken,
    /// A reader never showed the card (or never lost it).
    #[error("{reader} never showed {}", if *present { "the card" } else { "no card" })]
    NeverShowed {
        /// The reader.
        reader: String,
        /// What it should have shown.
        present: bool,
    },
    /// The OS gave no randomness.
    #[error("no OS randomness: {0}")]
    Random(getrandom::Error),
}

impl Error {
    /// A file error at `path`.
    pub fn file(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::File {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An image error at `path`.
    pub fn image(path: &std::path::Path) -> impl FnOnce(ImageError) -> Error + '_ {
        move |source| Error::Image {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A virtual-reader result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
