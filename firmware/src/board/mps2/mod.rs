//! QEMU's mps2-an386 as the card's board: its contacts, the card's flash
//! and key store, timers, and a debug UART for measurements. It has no
//! TRNG: the card's randomness is the ratchet's alone. Register addresses
//! and behaviour are from QEMU's model (see `shared/spec/firmware.md` in
//! the project notes and QEMU's `hw/char/cmsdk-apb-uart.c`,
//! `hw/timer/cmsdk-apb-dualtimer.c`, `hw/timer/cmsdk-apb-timer.c`).

use card_os::image::{KEY_STORE_LEN, RECORD_LEN};

use contacts::Contacts;
use flash::Flash;
use uart::Uart;

pub mod contacts;
// Memory-mapped registers are raw pointers: these modules and the stack
// painter are the only code allowed `unsafe`, each use a volatile access
// to an address of QEMU's board model.
#[allow(unsafe_code)]
pub mod flash;
#[allow(unsafe_code)]
pub mod timer;
#[allow(unsafe_code)]
pub mod uart;

pub use super::sleep;

/// An interrupt line, for the NVIC.
#[derive(Clone, Copy)]
struct Irq(u8);

// SAFETY: the numbers are the board's interrupt lines (< 32).
#[allow(unsafe_code)]
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        u16::from(self.0)
    }
}

/// Lets interrupt `irq` wake `wfi`.
fn unmask(irq: u8) {
    // SAFETY: unmasking in the NVIC only lets the pending bit wake `wfi`;
    // PRIMASK stays set, so no handler ever runs.
    #[allow(unsafe_code)]
    unsafe {
        cortex_m::peripheral::NVIC::unmask(Irq(irq))
    };
}

/// Clears interrupt `irq`'s pending bit once its cause is dealt with, so
/// that `wfi` sleeps again.
fn unpend(irq: u8) {
    cortex_m::peripheral::NVIC::unpend(Irq(irq));
}

/// The board, taken once at boot.
pub struct Mps2 {
    contacts: Option<Contacts>,
}

impl Mps2 {
    /// The board: the contacts' receivers on, then the clock started.
    pub fn take() -> Mps2 {
        let contacts = Contacts::open();
        // After the receivers are on: arming a timer wakes QEMU's main
        // loop, which would otherwise hold the first byte about a second.
        timer::start();
        Mps2 {
            contacts: Some(contacts),
        }
    }

    /// The debug port (UART1): measurements, boot and panic reports.
    pub fn debug() -> Uart {
        Uart::transmitter(uart::UART1)
    }
}

impl card_os::board::Board for Mps2 {
    type Line = Contacts;
    type Flash = Flash;

    fn factory_record(&mut self, record: &mut [u8; RECORD_LEN]) {
        flash::read_record(record);
    }

    fn key_store(&mut self, keys: &mut [u8; KEY_STORE_LEN]) {
        flash::read_key_store(keys);
    }

    fn store(&mut self, len: usize) -> Flash {
        Flash::store(len)
    }

    fn contacts(&mut self) -> Contacts {
        super::taken(&mut self.contacts)
    }

    fn trng(&mut self, _out: &mut [u8; 32]) -> bool {
        false
    }

    fn now_ns(&self) -> u64 {
        u64::from(timer::now()) * u64::from(timer::NS_PER_TICK)
    }
}
