//! The log on flash: appending entries, opening and erasing pages, resume
//! slots, and aligned reads and programs.

use super::*;

impl<F: NorFlash, const KEYS: usize> Store<F, KEYS> {
    pub(super) fn take_tx(&mut self) -> u32 {
        let tx = self.next_tx;
        self.next_tx = self.next_tx.wrapping_add(1).max(1);
        tx
    }

    /// Appends one entry, opening a page if needed; returns its address.
    pub(super) fn append(&mut self, header: &EntryHeader, value: &[u8]) -> Result<u32, StoreError> {
        let size = self.geometry.entry_size(value.len());
        let at = self.reserve_space(size, header.key == HORIZON_KEY)?;
        let written = self.write_entry(at, header, value);
        self.finish_append(at, size, written)
    }

    /// Advances the head past an entry written at `at`, or, if the write
    /// failed, closes the head page so nothing is appended after a torn entry.
    pub(super) fn finish_append(
        &mut self,
        at: u32,
        size: u32,
        written: Result<(), StoreError>,
    ) -> Result<u32, StoreError> {
        match written {
            Ok(()) => {
                if let Some((_, off)) = self.head.as_mut() {
                    *off += size;
                }
                Ok(at)
            }
            Err(e) => {
                self.head = None;
                self.resume = None;
                Err(e)
            }
        }
    }

    /// Makes sure the head page has `size` bytes and returns where they start.
    pub(super) fn reserve_space(&mut self, size: u32, horizon: bool) -> Result<u32, StoreError> {
        if let Some((p, at)) = self.head
            && at + size <= self.geometry.limit(horizon)
        {
            if let Some((slot, offset)) = self.resume.take() {
                let mut buf = [0xFFu8; MAX_ALIGN];
                let mut record = [0u8; 4];
                let (lo, hi) = record.split_at_mut(2);
                let stored = (offset >> self.geometry.resume_shift) as u16;
                lo.copy_from_slice(&stored.to_le_bytes());
                hi.copy_from_slice(&(!stored).to_le_bytes());
                if let Some(dst) = buf.get_mut(..4) {
                    dst.copy_from_slice(&record);
                }
                let out = buf.get(..self.geometry.align).ok_or(StoreError::Geometry)?;
                if let Err(e) = self.program(slot, out) {
                    self.head = None;
                    return Err(e);
                }
            }
            return Ok(self.page_addr(p) + at);
        }
        let p = self.open_page()?;
        self.head = Some((p, self.geometry.header));
        Ok(self.page_addr(p) + self.geometry.header)
    }

    /// Takes the next free page after the head, in ring order, erases it if
    /// it may not be blank, and stamps it with the next sequence number.
    /// A store whose stamps have run out (see [`PageWord::SEQ_LIMIT`]) is
    /// full for good.
    pub(super) fn open_page(&mut self) -> Result<usize, StoreError> {
        if self.next_seq >= PageWord::SEQ_LIMIT {
            return Err(StoreError::Full);
        }
        let n = self.pages.len();
        let start = self.head.map_or(0, |(p, _)| p + 1);
        self.head = None;
        self.resume = None;
        let p = (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| !matches!(self.page(i), Some(Page::Data { .. })))
            .ok_or(StoreError::Full)?;
        let base = self.page_addr(p);
        let blank = match self.page(p) {
            Some(Page::Free { blank: true }) => true,
            Some(Page::Free { blank: false }) => {
                self.is_blank(base, base + self.geometry.page_size)?
            }
            _ => false,
        };
        if !blank {
            self.erase_page(p)?;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        let header = format::encode_page_header(seq);
        let mut buf = [0xFFu8; MAX_ALIGN];
        let out = buf
            .get_mut(..self.geometry.header as usize)
            .ok_or(StoreError::Geometry)?;
        if let Some(dst) = out.get_mut(..HEADER_LEN) {
            dst.copy_from_slice(&header);
        }
        if let Err(e) = self.program(base, out) {
            self.set_page(p, Page::Garbage);
            return Err(e);
        }
        self.set_page(p, Page::Data { seq });
        Ok(p)
    }

    pub(super) fn erase_page(&mut self, p: usize) -> Result<(), StoreError> {
        let base = self.page_addr(p);
        self.set_page(p, Page::Garbage);
        self.flash.erase(base, base + self.geometry.page_size)?;
        self.set_page(p, Page::Free { blank: true });
        Ok(())
    }

    pub(super) fn set_page(&mut self, p: usize, state: Page) {
        if let Some(page) = self.pages.get_mut(p) {
            *page = PageWord::of(state);
        }
    }

    pub(super) fn page(&self, p: usize) -> Option<Page> {
        self.pages.get(p).map(|w| w.get())
    }

    /// Writes header and value. Small entries go in one program operation;
    /// larger ones in three (header, aligned body, padded tail), header first.
    pub(super) fn write_entry(
        &mut self,
        at: u32,
        header: &EntryHeader,
        value: &[u8],
    ) -> Result<(), StoreError> {
        let hdr = self.geometry.header as usize;
        let align = self.geometry.align;
        let total = hdr + align_up(value.len(), align);
        let mut small = [0xFFu8; SMALL_ENTRY];
        if let Some(buf) = small.get_mut(..total) {
            let (h, v) = buf.split_at_mut(hdr);
            if let Some(dst) = h.get_mut(..HEADER_LEN) {
                dst.copy_from_slice(&header.encode());
            }
            if let Some(dst) = v.get_mut(..value.len()) {
                dst.copy_from_slice(value);
            }
            return self.program(at, buf);
        }
        self.write_header(at, header)?;
        let body = value.len() - value.len() % align;
        let (aligned, tail) = value.split_at(body);
        let data_at = at + hdr as u32;
        if !aligned.is_empty() {
            self.program(data_at, aligned)?;
        }
        if !tail.is_empty() {
            let mut pad = [0xFFu8; MAX_ALIGN];
            if let Some(dst) = pad.get_mut(..tail.len()) {
                dst.copy_from_slice(tail);
            }
            let out = pad.get(..align).ok_or(StoreError::Geometry)?;
            self.program(data_at + body as u32, out)?;
        }
        Ok(())
    }

    pub(super) fn write_header(&mut self, at: u32, header: &EntryHeader) -> Result<(), StoreError> {
        let mut buf = [0xFFu8; MAX_ALIGN];
        if let Some(dst) = buf.get_mut(..HEADER_LEN) {
            dst.copy_from_slice(&header.encode());
        }
        let out = buf
            .get(..self.geometry.header as usize)
            .ok_or(StoreError::Geometry)?;
        self.program(at, out)
    }

    pub(super) fn program(&mut self, at: u32, bytes: &[u8]) -> Result<(), StoreError> {
        self.flash.write(at, bytes)?;
        Ok(())
    }

    /// Reads `out.len()` bytes at an aligned address, whatever the length.
    pub(super) fn read(&mut self, at: u32, out: &mut [u8]) -> Result<(), StoreError> {
        let align = self.geometry.align;
        let body = out.len() - out.len() % align;
        let (aligned, tail) = out.split_at_mut(body);
        if !aligned.is_empty() {
            self.flash.read(at, aligned)?;
        }
        if !tail.is_empty() {
            let mut buf = [0u8; MAX_ALIGN];
            let chunk = buf.get_mut(..align).ok_or(StoreError::Geometry)?;
            self.flash.read(at + body as u32, chunk)?;
            let src = chunk.get(..tail.len()).ok_or(StoreError::Geometry)?;
            tail.copy_from_slice(src);
        }
        Ok(())
    }

    /// Reads like [`Store::read`]; a read the flash refuses is `false`.
    ///
    /// The policy for read faults: flash with ECC can refuse to read a word
    /// a power cut left half-programmed or half-erased, and such a word can
    /// only be where a write or an erase was cut. So a page header, an entry
    /// or a resume slot that cannot be read is taken for torn, exactly as if
    /// its checksum had failed (a resume slot past it is followed, nothing
    /// is appended after it), and a range that cannot be read is not blank.
    /// Mount goes on. A fault anywhere else (flash that lost a committed
    /// word) is outside what a tear can do; it is met the same way, which
    /// can lose what follows it in that page, never mix transactions.
    pub(super) fn read_tolerant(&mut self, at: u32, out: &mut [u8]) -> bool {
        self.read(at, out).is_ok()
    }

    pub(super) fn is_blank(&mut self, from: u32, to: u32) -> Result<bool, StoreError> {
        let mut chunk = [0u8; CHUNK];
        let mut at = from;
        while at < to {
            let n = ((to - at) as usize).min(CHUNK);
            let buf = chunk.get_mut(..n).ok_or(StoreError::Geometry)?;
            if !self.read_tolerant(at, buf) || buf.iter().any(|&b| b != 0xFF) {
                return Ok(false);
            }
            at += n as u32;
        }
        Ok(true)
    }

    pub(super) fn page_addr(&self, p: usize) -> u32 {
        p as u32 * self.geometry.page_size
    }
}
