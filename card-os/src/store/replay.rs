//! Mount: the log replayed page by page, committed transactions applied,
//! torn bytes jumped through resume slots, read faults taken for tears.
//! Why this is enough is [`super::tearing`].

use super::*;

impl<F: NorFlash, const KEYS: usize> Store<F, KEYS> {
    pub(super) fn load(&mut self) -> Result<(), StoreError> {
        let page_count = self.flash.capacity() / self.geometry.page_size as usize;
        let mut order: Vec<(u32, usize), MAX_PAGES> = Vec::new();
        for p in 0..page_count {
            let mut raw = [0u8; HEADER_LEN];
            // A header that cannot be read is a torn one (below).
            if !self.read_tolerant(self.page_addr(p), &mut raw) {
                raw = [0; HEADER_LEN];
            }
            let page = match format::decode_page_header(&raw) {
                PageHeader::Erased => Page::Free { blank: false },
                PageHeader::Invalid => Page::Garbage,
                // A stamp no page of ours carries: the page is foreign.
                PageHeader::Valid(seq) if seq >= PageWord::SEQ_LIMIT => Page::Garbage,
                PageHeader::Valid(seq) => {
                    self.next_seq = self.next_seq.max(seq.saturating_add(1));
                    // Kept in order as it is built: a sort would bring
                    // core's 7 KiB quicksort into the card for a few pages.
                    let at = order.partition_point(|&o| o < (seq, p));
                    order
                        .insert(at, (seq, p))
                        .map_err(|_| StoreError::Geometry)?;
                    Page::Data { seq }
                }
            };
            self.pages
                .push(PageWord::of(page))
                .map_err(|_| StoreError::Geometry)?;
        }

        // The first pass checks every entry's checksum; where a page's
        // entries run unbroken from its header it notes how far, and the
        // second pass reads those headers without checking them again.
        let mut checked = [0u32; MAX_PAGES];
        let horizon = self.replay(&order, Replay::Horizon, &mut checked)?;
        order.retain(|&(seq, p)| {
            let dead = seq <= horizon;
            if dead {
                self.set_page(p, Page::Garbage);
            }
            !dead
        });
        self.replay(&order, Replay::Index, &mut checked)?;
        Ok(())
    }

    /// Replays the log in page order, applying every committed transaction.
    /// Returns the horizon found (in [`Replay::Horizon`] mode).
    ///
    /// A transaction is committed when its last entry (the one with a count)
    /// is intact: it is written only after all the others were. Its earlier
    /// entries must all be there too, with one exception: a transaction that
    /// straddled into the oldest live page may have begun in a page already
    /// collected, whose live records were copied forward on their own.
    pub(super) fn replay(
        &mut self,
        order: &[(u32, usize)],
        mode: Replay,
        checked: &mut [u32; MAX_PAGES],
    ) -> Result<u32, StoreError> {
        let mut horizon = 0u32;
        let mut pending: Vec<Seen, MAX_TX_OPS> = Vec::new();
        let mut pending_tx: Option<u32> = None;
        let mut overflow = false;
        let mut began_in_log = false;
        let mut first_entry = true;
        let last = order.last().map(|&(_, p)| p);
        for &(_, p) in order {
            let base = self.page_addr(p);
            let end = base + self.geometry.end;
            let mut at = base + self.geometry.header;
            let is_head = mode == Replay::Index && Some(p) == last;
            let mut head_at = None;
            // Offsets below this were checked by the first pass.
            let trusted = match mode {
                Replay::Horizon => 0,
                Replay::Index => checked.get(p).map_or(0, |&c| base + c),
            };
            let mut unbroken = true;
            while at < end {
                let entry = match (at < trusted).then(|| self.read_header(at)).flatten() {
                    Some(h) => Entry::Valid(h),
                    None => self.read_entry(at, end)?,
                };
                let h = match entry {
                    Entry::Valid(h) => h,
                    // Torn bytes, or a blank header with bytes after it (a
                    // flash that programs a write's words out of order): on
                    // every page alike, a resume slot past them says where
                    // the entries go on.
                    entry => {
                        if mode == Replay::Horizon && unbroken {
                            if let Some(c) = checked.get_mut(p) {
                                *c = at - base;
                            }
                            unbroken = false;
                        }
                        if let Some(resume) = self.resume_point(p, at)? {
                            at = resume;
                            continue;
                        }
                        let end_of_entries = matches!(entry, Entry::Blank)
                            && (!is_head || self.is_blank(at, end)?);
                        head_at = if end_of_entries {
                            Some(at)
                        } else if is_head {
                            self.plan_resume(p, at)?
                        } else {
                            None
                        };
                        break;
                    }
                };
                self.next_tx = self.next_tx.max(h.tx.saturating_add(1));
                if pending_tx != Some(h.tx) {
                    pending.clear();
                    pending_tx = Some(h.tx);
                    overflow = false;
                    began_in_log = first_entry;
                }
                first_entry = false;
                let seen = Seen {
                    key: h.key,
                    kind: h.kind,
                    addr: at,
                    len: h.len,
                };
                overflow |= pending.push(seen).is_err();
                if h.count != 0 {
                    let count = usize::from(h.count);
                    let whole = count == pending.len() || (began_in_log && pending.len() < count);
                    if !overflow && whole {
                        for s in pending.iter() {
                            match mode {
                                Replay::Horizon => {
                                    if s.key == HORIZON_KEY && s.kind == Kind::Put {
                                        horizon = horizon.max(self.read_horizon(s)?);
                                    }
                                }
                                Replay::Index => self.apply(s)?,
                            }
                        }
                    }
                    pending.clear();
                    pending_tx = None;
                }
                at += self.geometry.entry_size(usize::from(h.len));
            }
            if mode == Replay::Horizon
                && unbroken
                && let Some(c) = checked.get_mut(p)
            {
                *c = at.min(end) - base;
            }
            if is_head && let Some(at) = head_at.filter(|&a| a < end) {
                self.head = Some((p, at - base));
            }
        }
        Ok(horizon)
    }

    /// The resume point recorded for torn bytes at `at` in page `p`: the
    /// lowest valid slot offset past them.
    pub(super) fn resume_point(&mut self, p: usize, at: u32) -> Result<Option<u32>, StoreError> {
        let base = self.page_addr(p);
        let mut best: Option<u32> = None;
        for i in 0..RESUME_SLOTS {
            if let ResumeSlot::Points(offset) = self.read_slot(base + self.geometry.slot(i))? {
                let target = base + offset;
                if target > at && target < base + self.geometry.end {
                    best = Some(best.map_or(target, |b: u32| b.min(target)));
                }
            }
        }
        Ok(best)
    }

    /// Plans to continue the head page after torn bytes at `at`: finds where
    /// its blank tail starts and a free slot to record that in. Returns the
    /// address to append at, or `None` if the page must be abandoned.
    pub(super) fn plan_resume(&mut self, p: usize, at: u32) -> Result<Option<u32>, StoreError> {
        let base = self.page_addr(p);
        let end = base + self.geometry.end;
        let mut free_slot = None;
        for i in (0..RESUME_SLOTS).rev() {
            let addr = base + self.geometry.slot(i);
            if self.read_slot(addr)? != ResumeSlot::Blank {
                break;
            }
            free_slot = Some(addr);
        }
        let Some(slot) = free_slot else {
            return Ok(None);
        };
        // The blank tail starts after the last written word.
        let align = self.geometry.align as u32;
        let mut tail = end;
        while tail > at {
            let word = tail - align;
            if !self.is_blank(word, tail)? {
                break;
            }
            tail = word;
        }
        // Never write inside the torn entry's own extent: new bytes there
        // could complete it into a valid entry (a torn put whose missing value
        // bytes the next write happens to supply would come back to life).
        // Its header, if whole, says how far it reaches; if not, at least the
        // header's own bytes stay untouched, so it stays unreadable.
        let mut raw = [0u8; HEADER_LEN];
        let readable = self.read_tolerant(at, &mut raw);
        let reach = match EntryHeader::decode(&raw).filter(|_| readable) {
            Some(h) => at.saturating_add(self.geometry.entry_size(usize::from(h.len))),
            None => at + self.geometry.header,
        };
        let tail = tail.max(reach);
        if tail >= end {
            return Ok(None);
        }
        self.resume = Some((slot, tail - base));
        Ok(Some(tail))
    }

    pub(super) fn read_slot(&mut self, addr: u32) -> Result<ResumeSlot, StoreError> {
        let mut raw = [0u8; 4];
        if !self.read_tolerant(addr, &mut raw) {
            return Ok(ResumeSlot::Torn);
        }
        let [a, b, c, d] = raw;
        let offset = u16::from_le_bytes([a, b]);
        let check = u16::from_le_bytes([c, d]);
        Ok(if raw == [0xFF; 4] {
            ResumeSlot::Blank
        } else if offset & check == 0 && offset | check == u16::MAX {
            ResumeSlot::Points(u32::from(offset) << self.geometry.resume_shift)
        } else {
            ResumeSlot::Torn
        })
    }

    pub(super) fn read_horizon(&mut self, s: &Seen) -> Result<u32, StoreError> {
        let mut v = [0u8; 4];
        if s.len != 4 {
            return Err(StoreError::Corrupt);
        }
        self.read(s.addr + self.geometry.header, &mut v)?;
        Ok(u32::from_le_bytes(v))
    }

    /// The header at `at`, decoded but not checked against its value: for
    /// entries the first pass of mount already checked.
    pub(super) fn read_header(&mut self, at: u32) -> Option<EntryHeader> {
        let mut raw = [0u8; HEADER_LEN];
        self.read_tolerant(at, &mut raw)
            .then(|| EntryHeader::decode(&raw))
            .flatten()
    }

    /// Reads and checks the entry at `at`.
    pub(super) fn read_entry(&mut self, at: u32, end: u32) -> Result<Entry, StoreError> {
        if at + self.geometry.header > end {
            return Ok(Entry::Blank);
        }
        let mut raw = [0u8; HEADER_LEN];
        if !self.read_tolerant(at, &mut raw) {
            return Ok(Entry::Torn);
        }
        if raw == [0xFF; HEADER_LEN] {
            return Ok(Entry::Blank);
        }
        let Some(h) = EntryHeader::decode(&raw) else {
            return Ok(Entry::Torn);
        };
        if h.key == HORIZON_KEY && h.kind == Kind::Put && h.len != 4 {
            return Ok(Entry::Torn);
        }
        if at + self.geometry.entry_size(usize::from(h.len)) > end {
            return Ok(Entry::Torn);
        }
        let mut digest = h.digest();
        let mut chunk = [0u8; CHUNK];
        let mut addr = at + self.geometry.header;
        let mut left = usize::from(h.len);
        while left > 0 {
            let n = left.min(CHUNK);
            let buf = chunk.get_mut(..n).ok_or(StoreError::Corrupt)?;
            if !self.read_tolerant(addr, buf) {
                return Ok(Entry::Torn);
            }
            digest.update(buf);
            addr += n as u32;
            left -= n;
        }
        Ok(if h.matches(digest) {
            Entry::Valid(h)
        } else {
            Entry::Torn
        })
    }
}
