//! The stack's high-water mark, measured by painting: every word between
//! the end of `.bss` and the stack pointer is filled with a pattern, and
//! the lowest word no longer holding it marks the deepest the stack has
//! been since.

use core::ptr::{addr_of, read_volatile, write_volatile};

const PAINT: u32 = 0xDEAD_BEEF;
/// Words below the stack pointer left unpainted: `paint`'s own frame.
const MARGIN: usize = 64;

unsafe extern "C" {
    /// The end of `.bss` and `.uninit` (cortex-m-rt's link script).
    static __sheap: u32;
    /// The top of the stack.
    static _stack_start: u32;
}

/// Taking a symbol's address reads nothing, so it needs no `unsafe`.
fn bottom() -> usize {
    addr_of!(__sheap) as usize
}

fn top() -> usize {
    addr_of!(_stack_start) as usize
}

/// Paints the free stack. Called first thing in `main`.
pub fn paint() {
    paint_from(bottom());
}

/// Paints from `from` up to just below the live stack.
fn paint_from(from: usize) {
    let sp = cortex_m::register::msp::read() as usize;
    let end = sp.saturating_sub(MARGIN * 4);
    let mut at = from;
    while at < end {
        // SAFETY: `at` lies between the end of `.bss` and below the live
        // stack: memory nothing uses yet.
        unsafe { write_volatile(at as *mut u32, PAINT) };
        at += 4;
    }
}

/// The lowest word the stack has reached since it was last painted.
fn low_water() -> usize {
    let mut at = bottom();
    let top = top();
    while at < top {
        // SAFETY: reads within RAM, between `.bss` and the stack's top.
        if unsafe { read_volatile(at as *const u32) } != PAINT {
            break;
        }
        at += 4;
    }
    at
}

/// The most stack used since the last call (or since boot), in bytes; the
/// part used is painted again, so each exchange is measured on its own.
/// Repainting costs only what the exchange dirtied.
pub fn peak() -> usize {
    let low = low_water();
    paint_from(low);
    top() - low
}
