//! The CMSDK APB UART: the card's link to the reader (UART0) and the debug
//! port (UART1).
//!
//! QEMU's model has a one-byte buffer each way and applies backpressure to
//! the host, so no byte is ever lost while the card computes. Receiving
//! sleeps on the RX interrupt (`wfi`): polling would cost a whole host core
//! per card.

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

/// The reader's UART (QEMU's first `-serial`).
pub const UART0: usize = 0x4000_4000;
/// The debug port (QEMU's second `-serial`).
pub const UART1: usize = 0x4000_5000;
/// UART0's RX interrupt (UART0 RX is IRQ 0, TX IRQ 1, UART1 RX IRQ 2...).
const UART0_RX_IRQ: u8 = 0;

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

    /// The reader's link: transmit and receive, waking on received bytes.
    pub fn link() -> Uart {
        let uart = Uart {
            base: UART0,
            rx_irq: Some(UART0_RX_IRQ),
        };
        // Baud timing is not modelled, but a divider below 16 makes QEMU
        // log a guest error.
        uart.write_reg(BAUDDIV, 16);
        uart.write_reg(CTRL, CTRL_TXEN | CTRL_RXEN | CTRL_RXINTEN);
        // SAFETY: unmasking in the NVIC only lets the pending bit wake
        // `wfi`; PRIMASK stays set, so no handler ever runs.
        unsafe { cortex_m::peripheral::NVIC::unmask(Irq(UART0_RX_IRQ)) };
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

    fn read_byte(&mut self) -> u8 {
        while self.read_reg(STATE) & STATE_RXFULL == 0 {
            super::sleep();
        }
        let byte = self.read_reg(DATA) as u8;
        self.write_reg(INTCLEAR, INT_RX);
        if let Some(irq) = self.rx_irq {
            cortex_m::peripheral::NVIC::unpend(Irq(irq));
        }
        byte
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

impl embedded_io::ErrorType for Uart {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Uart {
    /// Blocks for the first byte, then takes what has arrived: the model
    /// holds one byte, so that is one byte per call.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let Some(first) = buf.first_mut() else {
            return Ok(0);
        };
        *first = self.read_byte();
        Ok(1)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.write_bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl core::fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// An interrupt line, for the NVIC.
#[derive(Clone, Copy)]
struct Irq(u8);

// SAFETY: the numbers are the board's interrupt lines (< 32).
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        u16::from(self.0)
    }
}
