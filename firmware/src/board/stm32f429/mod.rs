//! An STM32F429 (NUCLEO-F429ZI) as the card's board: a part a vendor can
//! buy, to show by compiling that the card ports. It runs from its 16 MHz
//! internal oscillator, with the PLL's 48 MHz output clocking the TRNG.
//!
//! - contacts: USART2 in smartcard mode on PA2, RST on PA0 (`contacts`);
//! - factory record and key store in OTP, the store in bank 2 (`flash`);
//! - randomness: the RNG peripheral, mixed into the ratchet's seed;
//! - time: the core's cycle counter (DWT);
//! - debug port: USART3 on PD8, 115,200 baud, the board's ST-LINK virtual
//!   COM port.
//!
//! CI builds it and checks its size (`firmware/budget.txt`); it has not
//! been run on the part.

use core::fmt;

use card_os::image::{KEY_STORE_LEN, RECORD_LEN};
use cortex_m::peripheral::DWT;
use stm32f4::stm32f429::{self as pac, GPIOD, Interrupt, RCC, RNG, USART3};

use contacts::Contacts;
use flash::Flash;

pub mod contacts;
pub mod flash;

/// The core's clock: the HSI.
const CORE_HZ: u64 = 16_000_000;

/// The board's peripherals, taken once at boot.
pub struct Stm32f429 {
    flash: Option<pac::FLASH>,
    contacts: Option<Contacts>,
    rng: RNG,
}

impl Stm32f429 {
    /// Sets the clocks and pins up and takes the peripherals the card
    /// uses. Called once; a second call waits for ever.
    pub fn take() -> Stm32f429 {
        let (Some(dp), Some(mut cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take())
        else {
            loop {
                super::sleep();
            }
        };
        cp.DCB.enable_trace();
        cp.DWT.enable_cycle_counter();
        let rcc = &dp.RCC;
        // PLL from the HSI: /16 = 1 MHz, x192 = 192 MHz, /4 = 48 MHz for
        // the RNG (the core stays on the HSI).
        rcc.pllcfgr().write(|w| {
            w.pllsrc().hsi();
            // SAFETY: the divider values RM0090 §6.3.2 allows.
            unsafe {
                w.pllm().bits(16);
                w.plln().bits(192);
                w.pllq().bits(4)
            }
        });
        rcc.cr().modify(|_, w| w.pllon().set_bit());
        while rcc.cr().read().pllrdy().bit_is_clear() {}
        rcc.ahb1enr().modify(|_, w| w.gpioaen().set_bit());
        rcc.ahb2enr().modify(|_, w| w.rngen().set_bit());
        rcc.apb1enr().modify(|_, w| w.usart2en().set_bit());
        rcc.apb2enr().modify(|_, w| w.syscfgen().set_bit());

        // PA2: USART2_TX (AF7), open drain, pulled up: the I/O contact.
        // PA0: input, pulled down: RST.
        dp.GPIOA.moder().modify(|_, w| {
            w.moder2().alternate();
            w.moder0().input()
        });
        dp.GPIOA.otyper().modify(|_, w| w.ot2().open_drain());
        dp.GPIOA.pupdr().modify(|_, w| {
            w.pupdr2().pull_up();
            w.pupdr0().pull_down()
        });
        dp.GPIOA.afrl().modify(|_, w| w.afrl2().af7());

        // RST's rising edge pends EXTI0 (port A is EXTI0's default).
        dp.EXTI.rtsr().modify(|_, w| w.tr0().set_bit());
        dp.EXTI.imr().modify(|_, w| w.mr0().set_bit());

        // USART2: 9,600 baud from 16 MHz (104 + 3/16), 8 data bits and
        // even parity (M = 9 bits), 1.5 stop bits, smartcard mode, no NACK.
        let usart = &dp.USART2;
        usart.brr().write(|w| {
            w.div_mantissa().set(104);
            w.div_fraction().set(3)
        });
        usart.cr2().write(|w| w.stop().stop1p5());
        usart.cr3().write(|w| {
            w.scen().set_bit();
            w.nack().clear_bit()
        });
        usart.cr1().write(|w| {
            w.m().m9();
            w.pce().set_bit();
            w.ps().even();
            w.rxneie().set_bit();
            w.peie().set_bit();
            w.te().set_bit();
            w.re().set_bit();
            w.ue().set_bit()
        });

        dp.RNG.cr().modify(|_, w| w.rngen().set_bit());

        // SAFETY: unmasking in the NVIC only lets the pending bits wake
        // `wfi`; PRIMASK stays set, so no handler ever runs.
        unsafe {
            cortex_m::peripheral::NVIC::unmask(Interrupt::USART2);
            cortex_m::peripheral::NVIC::unmask(Interrupt::EXTI0);
        }
        Stm32f429 {
            flash: Some(dp.FLASH),
            contacts: Some(Contacts::new(dp.USART2, dp.EXTI, cp.SYST)),
            rng: dp.RNG,
        }
    }

    /// The debug port: USART3 on PD8 at 115,200 baud from the HSI,
    /// transmitting. It sets itself up (again: the settings are the same),
    /// so the banner before [`Stm32f429::take`] and the panic handler can
    /// use it.
    pub fn debug() -> Debug {
        // SAFETY: only the debug port's own enable bits, pin and USART are
        // written, with the same values each time.
        let (rcc, gpiod, usart) = unsafe { (&*RCC::ptr(), &*GPIOD::ptr(), &*USART3::ptr()) };
        rcc.ahb1enr().modify(|_, w| w.gpioden().set_bit());
        rcc.apb1enr().modify(|_, w| w.usart3en().set_bit());
        gpiod.moder().modify(|_, w| w.moder8().alternate());
        gpiod.afrh().modify(|_, w| w.afrh8().af7());
        // 16 MHz / (16 x 115,200) = 8 + 11/16.
        usart.brr().write(|w| {
            w.div_mantissa().set(8);
            w.div_fraction().set(11)
        });
        usart.cr1().write(|w| {
            w.te().set_bit();
            w.ue().set_bit()
        });
        Debug(())
    }

    /// One word from the RNG; `None` on a seed or clock error (RM0090
    /// §24.3.2: the word is discarded).
    fn random_word(&self) -> Option<u32> {
        // A bounded wait: the RNG makes a word every 40 of its clocks.
        for _ in 0..10_000 {
            let sr = self.rng.sr().read();
            if sr.secs().bit_is_set() || sr.cecs().bit_is_set() {
                return None;
            }
            if sr.drdy().bit_is_set() {
                return Some(self.rng.dr().read().rndata().bits());
            }
        }
        None
    }
}

impl card_os::board::Board for Stm32f429 {
    type Line = Contacts;
    type Flash = Flash;

    fn factory_record(&mut self, record: &mut [u8; RECORD_LEN]) {
        flash::read_record(record);
    }

    fn key_store(&mut self, keys: &mut [u8; KEY_STORE_LEN]) {
        flash::read_key_store(keys);
    }

    fn store(&mut self, _len: usize) -> Flash {
        Flash::new(super::taken(&mut self.flash))
    }

    fn contacts(&mut self) -> Contacts {
        super::taken(&mut self.contacts)
    }

    fn trng(&mut self, out: &mut [u8; 32]) -> bool {
        for chunk in out.chunks_exact_mut(4) {
            match self.random_word() {
                Some(word) => chunk.copy_from_slice(&word.to_le_bytes()),
                None => return false,
            }
        }
        true
    }

    fn now_ns(&self) -> u64 {
        u64::from(DWT::cycle_count()) * 1_000_000_000 / CORE_HZ
    }
}

/// USART3, transmitting.
pub struct Debug(());

impl fmt::Write for Debug {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: USART3 is the debug port's alone (`Stm32f429::debug`);
        // only its status and data registers are touched here.
        let usart = unsafe { &*USART3::ptr() };
        for b in s.bytes() {
            while usart.sr().read().txe().bit_is_clear() {}
            usart.dr().write(|w| w.dr().set(u16::from(b)));
        }
        Ok(())
    }
}
