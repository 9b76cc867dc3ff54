//! s9card's virtual PC/SC readers: cards ([`virtual_card`]) served to
//! pcscd through vsmartcard's vpcd driver ([`server`], [`vpcd`]), the
//! readers pcscd is configured with ([`readers`], [`vpcd_driver`]), what a
//! served card can be made to do on purpose (latency profiles in
//! [`latency`], scripted faults in [`scenario`]), what it shows
//! ([`trace`]), and the two ways integrators start cards: in a Rust test
//! ([`fixture`]) or for a CI job (`s9card up`, [`up`]).

pub mod control;
pub mod error;
pub mod fixture;
pub mod latency;
pub mod readers;
pub mod scenario;
pub mod server;
pub mod trace;
pub mod up;
pub mod vpcd;
pub mod vpcd_driver;

pub use error::{Error, Result};
