//! The STM32F429's non-volatile memory as the card uses it (RM0090 §3):
//!
//! - the **factory record** and the **key store** in the one-time
//!   programmable area (`0x1FFF_7800`, 16 blocks of 32 bytes): the record
//!   in blocks 0-3, the device key and seed in blocks 4-6, written when the
//!   card is made and then locked (the lock bytes at `0x1FFF_7A00`). OTP
//!   cannot be unread; read-out protection level 2 keeps a debugger from
//!   it, as from everything else.
//! - the **store** in bank 2's sectors 17 to 21, five 128 KiB sectors
//!   (the store's pages are the chip's erase sectors; the factory record's
//!   page count, which describes a 4 KiB-page flash, is not used here).
//!
//! Programming is one 32-bit word at a time (PSIZE x32, for 2.7-3.6 V), as
//! the store writes; a word is programmed once between erases, which the
//! store guarantees.

use core::ptr::{read_volatile, write_volatile};

use card_os::image::{FlashError, KEY_STORE_LEN, RECORD_LEN, WORD, check_range};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use stm32f4::stm32f429::FLASH;

const OTP: usize = 0x1FFF_7800;
const OTP_RECORD: usize = OTP;
const OTP_KEY_STORE: usize = OTP + 4 * 32;

/// Bank 2's sector 17, the store's first.
const STORE_BASE: usize = 0x0812_0000;
const FIRST_SECTOR: u8 = 17;
const SECTOR: usize = 128 * 1024;
const SECTORS: usize = 5;

/// The flash controller's unlock sequence (RM0090 §3.6.1).
const KEY1: u32 = 0x4567_0123;
const KEY2: u32 = 0xCDEF_89AB;

/// Reads the factory record from OTP.
pub fn read_record(record: &mut [u8; RECORD_LEN]) {
    read_otp(OTP_RECORD, record);
}

/// Reads the device key and seed from OTP.
pub fn read_key_store(keys: &mut [u8; KEY_STORE_LEN]) {
    read_otp(OTP_KEY_STORE, keys);
}

fn read_otp(at: usize, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: the OTP area is readable memory of 512 bytes; the record
        // (100 bytes) and the key store (84) lie within it.
        *b = unsafe { read_volatile((at + i) as *const u8) };
    }
}

/// The store's sectors, through the flash controller.
pub struct Flash {
    controller: FLASH,
}

impl Flash {
    /// The store's flash.
    pub fn new(controller: FLASH) -> Flash {
        Flash { controller }
    }

    fn address(&self, offset: u32, len: usize, align: usize) -> Result<usize, FlashError> {
        Ok(STORE_BASE + check_range(offset, len, align, SECTORS * SECTOR)?)
    }

    fn wait(&self) -> Result<(), FlashError> {
        while self.controller.sr().read().bsy().bit_is_set() {}
        let sr = self.controller.sr().read();
        let failed = sr.operr().bit_is_set()
            || sr.wrperr().bit_is_set()
            || sr.pgaerr().bit_is_set()
            || sr.pgperr().bit_is_set()
            || sr.pgserr().bit_is_set();
        // The error flags clear by writing 1.
        self.controller.sr().write(|w| {
            w.operr().clear_bit_by_one();
            w.wrperr().clear_bit_by_one();
            w.pgaerr().clear_bit_by_one();
            w.pgperr().clear_bit_by_one();
            w.pgserr().clear_bit_by_one();
            w.eop().clear_bit_by_one()
        });
        if failed {
            return Err(FlashError(NorFlashErrorKind::Other));
        }
        Ok(())
    }

    fn unlock(&self) {
        if self.controller.cr().read().lock().bit_is_set() {
            self.controller.keyr().write(|w| w.key().set(KEY1));
            self.controller.keyr().write(|w| w.key().set(KEY2));
        }
    }

    fn lock(&self) {
        self.controller.cr().modify(|_, w| w.lock().set_bit());
    }

    fn erase_sector(&self, sector: u8) -> Result<(), FlashError> {
        // Sectors 12-23 are numbered 0x10 + (n - 12) in SNB.
        let snb = if sector >= 12 {
            0x10 + sector - 12
        } else {
            sector
        };
        self.controller.cr().modify(|_, w| {
            w.psize().psize32();
            w.ser().set_bit();
            // SAFETY: a sector number RM0090 defines for this chip.
            unsafe { w.snb().bits(snb) }
        });
        self.controller.cr().modify(|_, w| w.strt().set_bit());
        let done = self.wait();
        self.controller.cr().modify(|_, w| w.ser().clear_bit());
        done
    }
}

impl ErrorType for Flash {
    type Error = FlashError;
}

impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let at = self.address(offset, bytes.len(), 1)?;
        for (i, b) in bytes.iter_mut().enumerate() {
            // SAFETY: `address` kept `at + i` inside the store's sectors,
            // which are memory-mapped.
            *b = unsafe { read_volatile((at + i) as *const u8) };
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        SECTORS * SECTOR
    }
}

impl NorFlash for Flash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.address(from, to.saturating_sub(from) as usize, SECTOR)?;
        self.unlock();
        let first = from as usize / SECTOR;
        let last = to as usize / SECTOR;
        let mut done = Ok(());
        for n in first..last {
            done = self.erase_sector(FIRST_SECTOR + n as u8);
            if done.is_err() {
                break;
            }
        }
        self.lock();
        done
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let at = self.address(offset, bytes.len(), WORD)?;
        self.unlock();
        self.controller.cr().modify(|_, w| {
            w.psize().psize32();
            w.pg().set_bit()
        });
        let mut done = Ok(());
        for (i, chunk) in bytes.chunks_exact(WORD).enumerate() {
            let word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            // SAFETY: `address` kept the word inside the store's sectors,
            // aligned; with PG set, a store to flash programs it.
            unsafe { write_volatile((at + i * WORD) as *mut u32, word) };
            done = self.wait();
            if done.is_err() {
                break;
            }
        }
        self.controller.cr().modify(|_, w| w.pg().clear_bit());
        self.lock();
        done
    }
}
