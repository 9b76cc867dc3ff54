//! Time, in ticks of the CMSDK dual timer (25 MHz, 32 bits, counting down),
//! and deadlines on the APB timer 0, whose interrupt wakes `wfi`.
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

/// The APB timer 0 and its interrupt line.
const TIMER0: usize = 0x4000_0000;
const TIMER0_IRQ: u8 = 8;
const T0_CTRL: usize = 0x00;
const T0_VALUE: usize = 0x04;
const T0_RELOAD: usize = 0x08;
const T0_INT: usize = 0x0C;
/// Enabled, interrupting when it reaches zero.
const T0_RUN_IRQ: u32 = 1 | (1 << 3);

fn t0(offset: usize) -> *mut u32 {
    (TIMER0 + offset) as *mut u32
}

/// A deadline that wakes the core when it passes.
pub struct Deadline(());

impl Deadline {
    /// The APB timer 0, stopped, its interrupt able to wake `wfi`.
    pub fn new() -> Deadline {
        let deadline = Deadline(());
        deadline.disarm();
        super::unmask(TIMER0_IRQ);
        deadline
    }

    /// Passes `ns` nanoseconds from now.
    pub fn arm(&self, ns: u32) {
        let ticks = (ns / NS_PER_TICK).max(1);
        // SAFETY: the APB timer 0's registers, written volatile as MMIO
        // must be; stopped while it is set.
        unsafe {
            write_volatile(t0(T0_CTRL), 0);
            write_volatile(t0(T0_INT), 1);
            write_volatile(t0(T0_RELOAD), ticks);
            write_volatile(t0(T0_VALUE), ticks);
            write_volatile(t0(T0_CTRL), T0_RUN_IRQ);
        }
        super::unpend(TIMER0_IRQ);
    }

    /// Whether the deadline armed last has passed.
    pub fn passed(&self) -> bool {
        // SAFETY: as in `arm`; INTSTATUS is read-only.
        unsafe { read_volatile(t0(T0_INT)) & 1 != 0 }
    }

    /// Stops the timer and clears its interrupt.
    pub fn disarm(&self) {
        // SAFETY: as in `arm`.
        unsafe {
            write_volatile(t0(T0_CTRL), 0);
            write_volatile(t0(T0_INT), 1);
        }
        super::unpend(TIMER0_IRQ);
    }
}
