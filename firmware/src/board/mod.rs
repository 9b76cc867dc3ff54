//! The boards the card runs on, one per build (a cargo feature), each an
//! implementation of `card_os::board::Board` with a debug port beside it.

// A board is memory-mapped registers: `unsafe` is allowed in these
// modules (and the stack painter) only, each use a volatile access to an
// address of the board's reference manual or model.
#[cfg(feature = "board-mps2")]
#[allow(unsafe_code)]
pub mod mps2;
#[cfg(feature = "board-stm32f429")]
#[allow(unsafe_code)]
pub mod stm32f429;

/// Sleeps until an interrupt is pending. Interrupts stay masked (PRIMASK),
/// so no handler runs: the pending bit alone wakes the core, and the
/// driver that asked for the interrupt clears it.
pub fn sleep() {
    cortex_m::asm::wfi();
}

/// A part a board hands out once, at boot (its contacts, its flash):
/// asked for again, the card waits for a power cycle.
pub fn taken<T>(part: &mut Option<T>) -> T {
    match part.take() {
        Some(part) => part,
        None => loop {
            sleep();
        },
    }
}
