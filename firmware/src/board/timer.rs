//! Time, in ticks of the CMSDK dual timer (25 MHz, 32 bits, counting down).
//!
//! Under `qemu-system-arm -icount shift=0` one instruction takes 1 ns of
//! virtual time, so a tick (40 ns) is 40 instructions and these times are
//! instruction counts that repeat exactly from run to run: the firmware's
//! benchmarks use them. (DWT's cycle counter is not modelled by QEMU.)

use core::ptr::{read_volatile, write_volatile};

const TIMER1: usize = 0x4000_2000;
const LOAD: usize = 0x00;
const VALUE: usize = 0x04;
const CONTROL: usize = 0x08;
/// Enabled, free-running, 32-bit, no prescaler, no interrupt.
const CONTROL_RUN_32: u32 = (1 << 7) | (1 << 1);

/// Nanoseconds per tick (25 MHz); under `-icount shift=0`, instructions.
pub const NS_PER_TICK: u32 = 40;

fn reg(offset: usize) -> *mut u32 {
    (TIMER1 + offset) as *mut u32
}

/// Starts the free-running counter. Arming a timer is also what wakes
/// QEMU's main loop after the UART's receiver is enabled; without it the
/// first frame from the host waits about a second.
pub fn start() {
    // SAFETY: the dual timer's first timer; LOAD and CONTROL are its
    // registers, written volatile as MMIO must be.
    unsafe {
        write_volatile(reg(LOAD), u32::MAX);
        write_volatile(reg(CONTROL), CONTROL_RUN_32);
    }
}

/// Ticks since [`start`] (wrapping after about 170 s).
pub fn now() -> u32 {
    // SAFETY: as in `start`; VALUE is read-only.
    let value = unsafe { read_volatile(reg(VALUE)) };
    u32::MAX - value
}

/// Ticks from `since` to now.
pub fn since(since: u32) -> u32 {
    now().wrapping_sub(since)
}
