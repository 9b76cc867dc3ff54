//! The CMSDK APB UART: the card's contacts (UART0 I/O, UART2 VCC and
//! RST; see `contacts.rs`) and the debug port (UART1).
//!
//! QEMU's model has a one-byte buffer each way and applies backpressure to
//! the host, so no byte is ever lost while the card computes. Receivers
//! wake the core with their RX interrupt (`wfi`): polling would cost a
//! whole host core per card.

use core::ptr::{read_volatile, write_volatile};

const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const INTCLEAR: usize = 0x0C;
const BAUDDIV: usize = 0x10;

const STATE_TXFULL: u32 = 1 << 0;
const STATE_RXFULL: u32 = 1 << 1;
const CTRL_TXEN: u32 = 1 << 0;
const CTRL_RXEN: u32 = 1 << 1;
const CTRL_RXINTEN: u32 = 1 << 3;
const INT_RX: u32 = 1 << 1;

/// A UART of the board.
pub struct Uart {
    base: usize,
    /// The NVIC line of its RX interrupt, if it receives.
    rx_irq: Option<u8>,
}

/// The card's I/O line (QEMU's first `-serial`).
pub const UART0: usize = 0x4000_4000;
/// The debug port (QEMU's second `-serial`).
pub const UART1: usize = 0x4000_5000;
/// The card's VCC and RST contacts (QEMU's third `-serial`).
pub const UART2: usize = 0x4000_6000;
/// UART0's RX interrupt (each UART's RX line is even, its TX line the
/// next: UART0 0 and 1, UART1 2 and 3, UART2 4 and 5).
pub const UART0_RX_IRQ: u8 = 0;
/// UART2's RX interrupt.
pub const UART2_RX_IRQ: u8 = 4;

impl Uart {
    fn reg(&self, offset: usize) -> *mut u32 {
        (self.base + offset) as *mut u32
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: `base` is one of the board's UART blocks, and every offset
        // used is one of its registers; MMIO must be read volatile.
        unsafe { read_volatile(self.reg(offset)) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_reg`.
        unsafe { write_volatile(self.reg(offset), value) }
    }

    /// A UART that transmits and receives, its received bytes waking
    /// `wfi` through `irq`.
    pub fn receiver(base: usize, irq: u8) -> Uart {
        let uart = Uart {
            base,
            rx_irq: Some(irq),
        };
        // Baud timing is not modelled, but a divider below 16 makes QEMU
        // log a guest error.
        uart.write_reg(BAUDDIV, 16);
        uart.write_reg(CTRL, CTRL_TXEN | CTRL_RXEN | CTRL_RXINTEN);
        super::unmask(irq);
        uart
    }

    /// A transmit-only UART: the debug port, or the link again for the
    /// panic handler's last frame.
    pub fn transmitter(base: usize) -> Uart {
        let uart = Uart { base, rx_irq: None };
        uart.write_reg(BAUDDIV, 16);
        let ctrl = uart.read_reg(CTRL);
        uart.write_reg(CTRL, ctrl | CTRL_TXEN);
        uart
    }

    /// The byte received, if one is waiting.
    pub fn try_read(&mut self) -> Option<u8> {
        if self.read_reg(STATE) & STATE_RXFULL == 0 {
            return None;
        }
        let byte = self.read_reg(DATA) as u8;
        self.write_reg(INTCLEAR, INT_RX);
        if let Some(irq) = self.rx_irq {
            super::unpend(irq);
        }
        Some(byte)
    }

    fn write_byte(&mut self, byte: u8) {
        while self.read_reg(STATE) & STATE_TXFULL != 0 {}
        self.write_reg(DATA, u32::from(byte));
    }

    /// Writes bytes, waiting for room (the debug port's text).
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }
}

impl core::fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}
