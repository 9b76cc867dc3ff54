//! The card's contacts on the STM32F429 (RM0090 §30.3.11, smartcard
//! mode), wired on a NUCLEO-F429ZI's headers:
//!
//! | contact | pin | how |
//! |---|---|---|
//! | I/O | PA2 (USART2_TX, AF7) | open drain with pull-up; in smartcard mode the USART receives and sends on this one pin |
//! | RST | PA0 | input; a rising edge (EXTI0) is the end of a warm reset |
//! | CLK | PA15 (to TIM2's ETR, unused here) | the USART runs from the chip's own 16 MHz HSI at 9,600 baud: a reader's 3.5712 MHz clock over the default 372 clocks per etu |
//! | VCC, GND | 3V3, GND | power-up is the cold reset; power-off needs no handling |
//!
//! Characters are 8 data bits with even parity and 1.5 stop bits (ISO
//! 7816-3's frame); a parity error sets the USART's PE flag, which the card
//! reports as [`Signal::ParityError`]. T=1 wants no NACK, so it is off. The
//! line echoes the card's own characters back to its receiver (one wire):
//! the driver drops them. The character waiting time (CWI 5: 43 etu, 4.5
//! ms) and the block guard time (22 etu) are SysTick's.

use card_os::contact::{Contact, IoLine, Signal, Wait};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use stm32f4::stm32f429::{EXTI, USART2};

/// The character waiting time, 43 etu at 9,600 baud, in 16 MHz SysTick
/// ticks.
const CWT_TICKS: u32 = 43 * 16_000_000 / 9_600;
/// The block guard time, 22 etu.
const BGT_TICKS: u32 = 22 * 16_000_000 / 9_600;

/// USART2 in smartcard mode, RST on EXTI0, SysTick for the CWT.
pub struct Contacts {
    usart: USART2,
    exti: EXTI,
    systick: SYST,
}

impl Contacts {
    /// Takes the configured USART2 and EXTI0 (see `super::wire`) and
    /// SysTick.
    pub fn new(usart: USART2, exti: EXTI, mut systick: SYST) -> Contacts {
        systick.set_clock_source(SystClkSource::Core);
        systick.disable_counter();
        Contacts {
            usart,
            exti,
            systick,
        }
    }

    fn arm(&mut self, ticks: u32) {
        self.systick.set_reload(ticks);
        self.systick.clear_current();
        // Its exception only pends (PRIMASK is set): enough to wake `wfi`.
        self.systick.enable_interrupt();
        self.systick.enable_counter();
    }

    fn disarm(&mut self) {
        self.systick.disable_counter();
        self.systick.disable_interrupt();
        SCB::clear_pendst();
    }

    /// A rising edge on RST since the last look.
    fn reset(&mut self) -> bool {
        if self.exti.pr().read().pr0().bit_is_set() {
            self.exti.pr().write(|w| w.pr0().clear_bit_by_one());
            cortex_m::peripheral::NVIC::unpend(stm32f4::stm32f429::Interrupt::EXTI0);
            return true;
        }
        false
    }
}

impl IoLine for Contacts {
    fn receive(&mut self, wait: Wait) -> Signal {
        let timed = match wait {
            Wait::Idle => false,
            Wait::Character => {
                self.arm(CWT_TICKS);
                true
            }
            Wait::Guard => {
                self.arm(BGT_TICKS);
                true
            }
        };
        let signal = loop {
            if self.reset() {
                break Signal::Contact(Contact::WarmReset);
            }
            let sr = self.usart.sr().read();
            if sr.rxne().bit_is_set() {
                // Reading SR then DR clears RXNE and PE.
                let byte = self.usart.dr().read().dr().bits() as u8;
                cortex_m::peripheral::NVIC::unpend(stm32f4::stm32f429::Interrupt::USART2);
                break if sr.pe().bit_is_set() {
                    Signal::ParityError
                } else {
                    Signal::Byte(byte)
                };
            }
            if timed && self.systick.has_wrapped() {
                break Signal::Quiet;
            }
            super::super::sleep();
        };
        if timed {
            self.disarm();
        }
        signal
    }
}

impl embedded_io::ErrorType for Contacts {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for Contacts {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        for &b in buf {
            while self.usart.sr().read().txe().bit_is_clear() {}
            self.usart.dr().write(|w| w.dr().set(u16::from(b)));
            while self.usart.sr().read().tc().bit_is_clear() {}
            // The echo of the card's own character.
            if self.usart.sr().read().rxne().bit_is_set() {
                let _ = self.usart.dr().read();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
