//! Room: the reserve a transaction may use, perfect-compaction checks, and
//! garbage collection of the oldest page (copies, then the horizon record,
//! then the erase).

use super::*;

impl<F: NorFlash, const KEYS: usize> Store<F, KEYS> {
    /// Collects garbage until entries of `sizes` fit without touching the
    /// reserve.
    ///
    /// How much of the flash a transaction may fill depends on what it does
    /// to the live data. One that grows it (new records, longer values)
    /// must leave a page more than the collection reserve free after perfect
    /// compaction; one that keeps it the same size (a retry counter, a PIN
    /// digest) needs only the collection reserve, so it fits on a store that
    /// growing transactions filled to the brim: a full card still counts
    /// and checks PIN tries. One that leaves less (a delete, a shrinking
    /// update) may use all but one reserve page, so that a full store can
    /// always be emptied; the collections it enables give the reserve back.
    ///
    /// Before collecting anything it checks that perfect compaction could
    /// make room at all; if not, the answer is `Full` at once, so a full card
    /// does not wear its flash on collections that cannot help.
    pub(super) fn make_room(&mut self, sizes: &[u32], growth: Growth) -> Result<(), StoreError> {
        let reserve = match growth {
            Growth::Shrinks => 1,
            Growth::Same => RESERVE_PAGES,
            Growth::Grows => RESERVE_PAGES + 1,
        };
        let ordinary = |s: &u32| (*s, false);
        if self.fits(sizes.iter().map(ordinary), reserve) {
            return Ok(());
        }
        if !self.fits_compacted(sizes, reserve) {
            return Err(StoreError::Full);
        }
        for _ in 0..=self.pages.len() {
            if !self.collect_oldest()? {
                break;
            }
            if self.fits(sizes.iter().map(ordinary), reserve) {
                return Ok(());
            }
        }
        Err(StoreError::Full)
    }

    /// Live bytes once `ops` have committed; a key written twice in one
    /// transaction is counted twice, which errs on the side of caution.
    pub(super) fn live_bytes_after(&self, ops: &[Op<'_>]) -> u32 {
        let mut live = self.live_bytes();
        for (i, op) in ops.iter().enumerate() {
            let earlier = ops.get(..i).unwrap_or_default();
            let (key, added) = match op {
                Op::Put(k, v) => (*k, self.geometry.entry_size(v.len())),
                Op::Delete(k) => (*k, 0),
                Op::Clear => {
                    live = self
                        .index
                        .iter()
                        .filter(|s| Key::is_system(s.key))
                        .map(|s| self.geometry.entry_size(usize::from(s.len)))
                        .sum();
                    continue;
                }
            };
            let first_touch = !earlier.iter().any(|e| match e {
                Op::Put(k, _) | Op::Delete(k) => *k == key,
                Op::Clear => true,
            });
            if first_touch && let Some(s) = self.slot(key.0) {
                live = live.saturating_sub(self.geometry.entry_size(usize::from(s.len)));
            }
            live = live.saturating_add(added);
        }
        live
    }

    /// Whether every live record, followed by the new entries, packs into
    /// the pages outside the reserve, the way collection would pack them.
    /// The old versions of keys the transaction replaces count: they stay
    /// live until it commits.
    pub(super) fn fits_compacted(&self, sizes: &[u32], reserve: usize) -> bool {
        let capacity = self.geometry.page_capacity();
        let live = self
            .index
            .iter()
            .map(|s| self.geometry.entry_size(usize::from(s.len)));
        let mut pages = 1usize;
        let mut room = capacity;
        for size in live.chain(sizes.iter().copied()) {
            if size > room {
                pages += 1;
                room = capacity;
            }
            room -= size.min(room);
        }
        pages + reserve <= self.pages.len()
    }

    /// Whether entries of these sizes (each flagged if it is a horizon
    /// record) can be appended leaving `reserve` free pages untouched.
    pub(super) fn fits(&self, entries: impl Iterator<Item = (u32, bool)>, reserve: usize) -> bool {
        let mut at = self.head.map_or(self.geometry.page_size, |(_, at)| at);
        let mut free = self.free_pages();
        for (size, horizon) in entries {
            if at + size > self.geometry.limit(horizon) {
                if free == 0 {
                    return false;
                }
                free -= 1;
                at = self.geometry.header;
            }
            at += size;
        }
        free >= reserve
    }

    pub(super) fn free_pages(&self) -> usize {
        self.pages
            .iter()
            .filter(|p| !matches!(p.get(), Page::Data { .. }))
            .count()
    }

    /// Moves the live records of the oldest page to the head of the log and
    /// erases it. Returns `false` if there is no page to collect.
    pub(super) fn collect_oldest(&mut self) -> Result<bool, StoreError> {
        let head_page = self.head.map(|(p, _)| p);
        let victim = self
            .pages
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p.get() {
                Page::Data { seq } if Some(i) != head_page => Some((seq, i)),
                _ => None,
            })
            .min();
        let Some((seq, victim)) = victim else {
            return Ok(false);
        };
        let base = self.page_addr(victim);
        let end = base + self.geometry.page_size;
        let in_victim = |s: &Slot| s.addr >= base && s.addr < end && s.key != HORIZON_KEY;
        let moving = self.index.iter().filter(|s| in_victim(s));
        let entries = moving
            .map(|s| (self.geometry.entry_size(usize::from(s.len)), false))
            .chain(core::iter::once((self.geometry.entry_size(4), true)));
        if !self.fits(entries, 0) {
            return Ok(false);
        }
        let mut i = 0;
        while let Some(slot) = self.index.get(i).copied() {
            if in_victim(&slot) {
                let addr = self.copy_entry(slot)?;
                if let Some(s) = self.index.get_mut(i) {
                    s.addr = addr;
                }
            }
            i += 1;
        }
        let value = seq.to_le_bytes();
        let tx = self.take_tx();
        let header = EntryHeader::new(HORIZON_KEY, Kind::Put, &value, tx, 1);
        let addr = self.append(&header, &value)?;
        self.index_put(Slot {
            key: HORIZON_KEY,
            addr,
            len: 4,
        })?;
        self.erase_page(victim)?;
        Ok(true)
    }

    /// Re-appends a live record as its own committed entry.
    pub(super) fn copy_entry(&mut self, slot: Slot) -> Result<u32, StoreError> {
        let size = self.geometry.entry_size(usize::from(slot.len));
        let to = self.reserve_space(size, false)?;
        let tx = self.take_tx();
        let mut header = EntryHeader {
            key: slot.key,
            len: slot.len,
            tx,
            count: 1,
            kind: Kind::Put,
            checksum: 0,
        };
        let from = slot.addr + self.geometry.header;
        let mut digest = header.digest();
        let mut chunk = [0u8; CHUNK];
        let mut done = 0usize;
        let len = usize::from(slot.len);
        while done < len {
            let n = (len - done).min(CHUNK);
            let buf = chunk.get_mut(..n).ok_or(StoreError::Corrupt)?;
            self.read(from + done as u32, buf)?;
            digest.update(buf);
            done += n;
        }
        header = EntryHeader::new_with_digest(header, digest);
        let written = self.write_header(to, &header).and_then(|()| {
            let mut done = 0usize;
            while done < len {
                let n = (len - done).min(CHUNK);
                let mut buf = [0xFFu8; CHUNK];
                let src = buf.get_mut(..n).ok_or(StoreError::Corrupt)?;
                self.read(from + done as u32, src)?;
                let padded = align_up(n, self.geometry.align);
                let out = buf.get(..padded).ok_or(StoreError::Corrupt)?;
                self.program(to + self.geometry.header + done as u32, out)?;
                done += n;
            }
            Ok(())
        });
        self.finish_append(to, size, written)
    }
}
