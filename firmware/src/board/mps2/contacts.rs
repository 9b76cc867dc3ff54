//! The card's contacts on the mps2 board, as [`card_os::contact::IoLine`].
//!
//! QEMU has no smartcard interface, so each contact is a UART the
//! simulator's reader drives (`virtual_card::firmware`):
//!
//! - **I/O** is UART0, one character per byte each way. QEMU's CMSDK UART
//!   has no parity bit, so the reader marks a character it sends with a
//!   parity error (the line noise the reader model injects) by an `FF`
//!   before it, and sends a real `FF` as `FF FF`: what a chip's UART in
//!   smartcard mode reports in its status register. The card's own
//!   characters go out plain.
//! - **VCC and RST** are UART2: `00` removes power, `01` powers the card
//!   and releases RST (a cold reset), `02` pulses RST (a warm reset).
//! - The **character waiting time** and the **block guard time** are
//!   timed by the APB timer 0, which wakes the core when it runs out.

use card_os::contact::{Contact, IoLine, Signal, Wait};

use super::timer::Deadline;
use super::uart::{self, Uart};

/// The escape that marks a damaged character, or doubled a real `FF`.
const ESCAPE: u8 = 0xFF;

/// How long a block's next character may take: the ATR's CWI 5 gives
/// 43 etu, about 4.5 ms at 9600 baud; QEMU's UART passes characters at the
/// host's pace, which on a loaded machine is slower, so the card allows
/// 25 ms. It only costs time after a character is lost.
const CWT_NS: u32 = 25_000_000;

/// How long the card listens after a block's last character before it
/// answers (the BGT is 22 etu): the reader writes a block in one piece, so
/// a character of it still to come is there within a millisecond.
const GUARD_NS: u32 = 1_000_000;

/// The I/O line and the contacts.
pub struct Contacts {
    io: Uart,
    power: Uart,
    deadline: Deadline,
}

impl Contacts {
    /// Opens the I/O and contacts UARTs.
    pub fn open() -> Contacts {
        Contacts {
            io: Uart::receiver(uart::UART0, uart::UART0_RX_IRQ),
            power: Uart::receiver(uart::UART2, uart::UART2_RX_IRQ),
            deadline: Deadline::new(),
        }
    }

    /// The next character on I/O, the contacts first; `None` once the
    /// deadline (if armed) has passed.
    fn next(&mut self, timed: bool) -> Option<Event> {
        loop {
            if let Some(b) = self.power.try_read() {
                return Some(Event::Contact(b));
            }
            if let Some(b) = self.io.try_read() {
                return Some(Event::Io(b));
            }
            if timed && self.deadline.passed() {
                return None;
            }
            super::sleep();
        }
    }
}

/// A byte from either UART.
enum Event {
    Contact(u8),
    Io(u8),
}

impl IoLine for Contacts {
    fn receive(&mut self, wait: Wait) -> Signal {
        let timed = match wait {
            Wait::Idle => false,
            Wait::Character => {
                self.deadline.arm(CWT_NS);
                true
            }
            Wait::Guard => {
                self.deadline.arm(GUARD_NS);
                true
            }
        };
        let mut escaped = false;
        loop {
            let signal = match self.next(timed || escaped) {
                None => Signal::Quiet,
                Some(Event::Contact(0x00)) => Signal::Contact(Contact::PowerOff),
                Some(Event::Contact(0x01)) => Signal::Contact(Contact::ColdReset),
                Some(Event::Contact(0x02)) => Signal::Contact(Contact::WarmReset),
                Some(Event::Contact(_)) => continue,
                Some(Event::Io(ESCAPE)) if !escaped => {
                    // The escape's partner follows at once; it is waited
                    // for no longer than a character.
                    escaped = true;
                    self.deadline.arm(CWT_NS);
                    continue;
                }
                Some(Event::Io(ESCAPE)) => Signal::Byte(ESCAPE),
                Some(Event::Io(_)) if escaped => Signal::ParityError,
                Some(Event::Io(b)) => Signal::Byte(b),
            };
            self.deadline.disarm();
            return signal;
        }
    }
}

impl embedded_io::ErrorType for Contacts {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for Contacts {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.io.write_bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
