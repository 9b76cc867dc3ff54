//! The card's flash: QEMU's 16 MiB RAM region at `0x2100_0000`, which
//! `s9card serve --firmware` backs with a host file (`memory-backend-file`,
//! `share=on`).
//!
//! Every store the core completes lands in the file's shared mapping, so a
//! `kill -9` of QEMU is a power cut after the last completed word, as on
//! real NOR. Programming only clears bits (a word is ANDed in) and erasing
//! sets a page to `FF`, so the store's tearing argument holds here exactly
//! as on the simulator's flash. The region starts with the factory record
//! (card-os's image layout); the store follows it.

use core::ptr::{read_volatile, write_volatile};

use card_os::image::{FlashError, HEADER_LEN, KEY_STORE_LEN, PAGE, RECORD_LEN, WORD, check_range};
use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};

const BASE: usize = 0x2100_0000;
/// QEMU insists on exactly this much behind the region.
pub const REGION_LEN: usize = 16 * 1024 * 1024;

/// The key store: the last 4 KiB of SSRAM2/3, outside the RAM the linker
/// gives the firmware (`memory.x`), filled by QEMU from the key store file
/// (`-device loader`) before the core starts. It stands for an MCU's OTP.
const KEY_STORE: usize = 0x203F_F000;

/// Reads the factory record at the start of the region.
pub fn read_record(record: &mut [u8; RECORD_LEN]) {
    for (i, b) in record.iter_mut().enumerate() {
        // SAFETY: the first page of the flash region, read volatile because
        // the host file behind it is the card's persistent memory.
        *b = unsafe { read_volatile((BASE + i) as *const u8) };
    }
}

/// Reads the key store and wipes it: nothing after boot can read the
/// secrets from it again.
pub fn read_key_store(keys: &mut [u8; KEY_STORE_LEN]) {
    for (i, b) in keys.iter_mut().enumerate() {
        // SAFETY: the key store page, which no linker section uses; read
        // and written volatile so that the wipe is not optimised away.
        unsafe {
            *b = read_volatile((KEY_STORE + i) as *const u8);
            write_volatile((KEY_STORE + i) as *mut u8, 0);
        }
    }
}

/// The store's pages, after the factory record's.
pub struct Flash {
    len: usize,
}

impl Flash {
    /// The store of `len` bytes the factory record describes.
    pub fn store(len: usize) -> Flash {
        Flash {
            len: len.min(REGION_LEN - HEADER_LEN),
        }
    }

    /// The address of a checked operation's first byte.
    fn check(&self, offset: u32, len: usize, align: usize) -> Result<usize, FlashError> {
        Ok(BASE + HEADER_LEN + check_range(offset, len, align, self.len)?)
    }
}

impl ErrorType for Flash {
    type Error = FlashError;
}

impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let at = self.check(offset, bytes.len(), 1)?;
        for (i, b) in bytes.iter_mut().enumerate() {
            // SAFETY: `check` kept `at + i` inside the store's pages.
            *b = unsafe { read_volatile((at + i) as *const u8) };
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.len
    }
}

impl NorFlash for Flash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let at = self.check(from, to.saturating_sub(from) as usize, PAGE)?;
        for word in (at..at + (to - from) as usize).step_by(WORD) {
            // SAFETY: `check` kept the page range inside the store, aligned.
            unsafe { write_volatile(word as *mut u32, u32::MAX) };
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let at = self.check(offset, bytes.len(), WORD)?;
        for (i, chunk) in bytes.chunks_exact(WORD).enumerate() {
            let word = (at + i * WORD) as *mut u32;
            let new = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            // SAFETY: `check` kept the words inside the store, aligned. One
            // 32-bit store per word: the unit a power cut cannot split.
            unsafe { write_volatile(word, read_volatile(word) & new) };
        }
        Ok(())
    }
}
