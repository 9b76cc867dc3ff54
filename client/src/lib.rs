//! The host side of PIV: a client that talks to a card through any APDU
//! transport, a real reader over PC/SC (feature `pcsc`) or a card in this
//! process.
//!
//! It sends what tools send: short APDUs, chained above 255 bytes, and GET
//! RESPONSE after `61 xx`. The credential-management flows and the tests
//! drive cards only through it, so everything they do works with a physical
//! reader too. It is its own crate so that the card crates' tests, the
//! fuzz targets and integrators' code get it without the simulator.

pub mod cvc;
mod error;
mod piv;
pub mod sm;
mod tlv;
mod transport;

// The applet's own types: the client builds commands from the same
// vocabulary the card dispatches on.
pub use ::applet::admin::DEFAULT_KEY as DEFAULT_MGM;
pub use ::applet::algorithm::Algorithm;
pub use ::applet::ins::Instruction;
pub use ::applet::slot::{AdminAlgorithm, Slot};
pub use ::applet::sm::Suite;
pub use apdu::Status;

pub use error::{ClientError, Result, meaning};
pub use piv::{CardInfo, PivClient, SW_OK};
pub use tlv::{tlv, tlvs, unwrap_tlv};
#[cfg(feature = "pcsc")]
pub use transport::Pcsc;
pub use transport::{Answer, Transport};
