//! The mps2-an386 board as the card needs it: a UART to the reader, the
//! card's flash, a timer, and a debug UART for measurements. Register
//! addresses and behaviour are from QEMU's model (see
//! `shared/spec/firmware.md` in the project notes and QEMU's
//! `hw/char/cmsdk-apb-uart.c`, `hw/timer/cmsdk-apb-dualtimer.c`).

// Memory-mapped registers are raw pointers: these three modules are the
// only code in the workspace allowed `unsafe`, each use a volatile access
// to an address of QEMU's board model.
#[allow(unsafe_code)]
pub mod flash;
#[allow(unsafe_code)]
pub mod timer;
#[allow(unsafe_code)]
pub mod uart;

/// Sleeps until an interrupt is pending. Interrupts stay masked (PRIMASK),
/// so no handler runs: the pending bit alone wakes the core, and the
/// driver that asked for the interrupt clears it.
pub fn sleep() {
    cortex_m::asm::wfi();
}
