//! The s9card card runtime: the contact interface (ATR and T=1) and the
//! virtual reader's frame loop, power and reset,
//! APDU framing and chaining, GET RESPONSE, applet selection, a
//! transactional store on NOR flash, the flash layout around it, and a
//! randomness ratchet for boards without a TRNG.
//!
//! It needs no allocator, no clock, no threads and no `std`, so the same code
//! runs in tests, behind the virtual reader, and as Cortex-M firmware.
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

pub mod applet;
pub mod atr;
pub mod board;
mod card;
pub mod contact;
pub mod entropy;
mod error;
pub mod image;
pub mod link;
pub mod store;
pub mod t1;

pub use applet::{Applet, Applets, Context, Interface, Persistent, Reply, Secrecy};
pub use card::{CHAIN_CAPACITY, Card, Mute, RESPONSE_CAPACITY, ResponseApdu, Volatile};
pub use error::Error;
#[cfg(feature = "testing")]
pub mod testing;
