//! s9card and Nitrokey's piv-authenticator, each in this process behind
//! the same [`Transport`], so that one APDU script and one host client
//! drive both: for latency side by side, and flash programs per command.
//!
//! s9card runs as its benches run it (a [`card_os::Card`] on RAM flash
//! that counts its operations). piv-authenticator runs on trussed's
//! virtual platform, as its own tests do, with littlefs on a RAM
//! [`flash::CountingFlash`] of the virtual platform's geometry.

pub mod flash;
pub mod peer;
pub mod platform;
pub mod s9;

pub use client::{PivClient, Transport};

/// Flash operations a card has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlashOps {
    /// Program (write) operations.
    pub programs: u64,
    /// Bytes programmed.
    pub bytes: u64,
    /// Erase operations.
    pub erases: u64,
}

impl std::ops::Sub for FlashOps {
    type Output = FlashOps;
    fn sub(self, before: FlashOps) -> FlashOps {
        FlashOps {
            programs: self.programs - before.programs,
            bytes: self.bytes - before.bytes,
            erases: self.erases - before.erases,
        }
    }
}

/// A card the scripts drive: APDUs in, and what its flash has done.
pub trait BenchCard: Transport {
    /// Its flash operations since it was made.
    fn flash_ops(&self) -> FlashOps;
}
