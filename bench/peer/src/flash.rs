//! littlefs's storage for the peer: RAM of trussed's virtual geometry
//! (512-byte blocks and programs, 64 KiB), counting what is done to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use littlefs2::consts::{U1, U512};
use littlefs2::driver::Storage;
use littlefs2::io::Result;

use crate::FlashOps;

const BLOCK: usize = 512;
const BLOCKS: usize = 128;

/// The counts, shared with whoever reads them while trussed owns the
/// storage.
#[derive(Debug, Default)]
pub struct Counts {
    programs: AtomicU64,
    bytes: AtomicU64,
    erases: AtomicU64,
}

impl Counts {
    /// What has been done so far.
    pub fn get(&self) -> FlashOps {
        FlashOps {
            programs: self.programs.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            erases: self.erases.load(Ordering::Relaxed),
        }
    }
}

/// RAM flash that counts programs and erases.
pub struct CountingFlash {
    bytes: Box<[u8]>,
    counts: Arc<Counts>,
}

impl CountingFlash {
    /// Erased flash, counting into `counts`.
    pub fn new(counts: Arc<Counts>) -> Self {
        CountingFlash {
            bytes: vec![0xFF; BLOCK * BLOCKS].into_boxed_slice(),
            counts,
        }
    }
}

impl Storage for CountingFlash {
    const READ_SIZE: usize = 16;
    const WRITE_SIZE: usize = BLOCK;
    const BLOCK_SIZE: usize = BLOCK;
    const BLOCK_COUNT: usize = BLOCKS;
    type CACHE_SIZE = U512;
    type LOOKAHEAD_SIZE = U1;

    fn read(&mut self, offset: usize, buffer: &mut [u8]) -> Result<usize> {
        let from = self
            .bytes
            .get(offset..offset + buffer.len())
            .ok_or(littlefs2::io::Error::IO)?;
        buffer.copy_from_slice(from);
        Ok(buffer.len())
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> Result<usize> {
        let to = self
            .bytes
            .get_mut(offset..offset + data.len())
            .ok_or(littlefs2::io::Error::IO)?;
        to.copy_from_slice(data);
        self.counts.programs.fetch_add(1, Ordering::Relaxed);
        self.counts
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data.len())
    }

    fn erase(&mut self, offset: usize, len: usize) -> Result<usize> {
        let block = self
            .bytes
            .get_mut(offset..offset + len)
            .ok_or(littlefs2::io::Error::IO)?;
        block.fill(0xFF);
        self.counts.erases.fetch_add(1, Ordering::Relaxed);
        Ok(len)
    }
}
