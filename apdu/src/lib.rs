//! ISO/IEC 7816-4 on the wire: command and response APDUs (short and
//! extended length), status words and BER-TLV.
//!
//! Everything here is a *view* over a caller's buffer: parsing borrows, writing
//! fills a caller's slice. Nothing allocates and nothing panics, whatever the
//! input: every way bytes can be malformed is a variant of [`Error`], and the
//! card OS decides, in one place, which status word each one earns.
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

mod command;
mod error;
mod response;
mod status;
pub mod tlv;

pub use command::{Command, Header, LengthForm};
pub use error::Error;
pub use response::Response;
pub use status::{Status, Tries};

/// The class byte, decoded (chaining, logical channel, secure messaging):
/// the `iso7816` crate's decoding of the ISO 7816-4 class ranges.
pub use iso7816::command::class::{
    Chain, Class, Interindustry, Range as ClassRange, SecureMessaging,
};
