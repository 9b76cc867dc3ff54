//! A transactional record store on NOR flash that survives a power cut at
//! any instant.
//!
//! # Design
//! The flash is a log of pages, each stamped with an increasing sequence
//! number. Records are appended as entries; the newest committed entry for a
//! key is its value. A transaction is a run of entries sharing a transaction
//! number, the last of which carries the run's length: on mount a run counts
//! only if that last entry is intact and every entry before it is too, so a
//! cut anywhere leaves either all of a transaction or none of it.
//!
//! Nothing is ever rewritten in place. Every entry carries a CRC that erased
//! or zeroed flash cannot match; mount stops reading a page at the first bad
//! entry and never appends after one, so a torn write is never built upon.
//!
//! Space comes back by garbage collection of the oldest page: its live
//! records are copied to the head of the log (each copy is its own committed
//! entry with the same value, so a cut between copies changes nothing
//! visible), then a *horizon* record saying "pages up to sequence S are dead"
//! is committed, and only then is the page erased. A page at or below the
//! horizon is ignored on mount whatever a torn erase left in it, so a
//! half-erased page can never bring back a deleted or overwritten record.
//! Collecting the oldest page first turns the log into a ring, which spreads
//! erases evenly over all pages, static records included.
//!
//! The in-RAM index (key → flash address) is rebuilt by mount and updated
//! only after a commit's last write succeeded.

mod format;

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};
use heapless::Vec;

pub use format::VERSION as FORMAT_VERSION;
use format::{EntryHeader, HEADER_LEN, Kind, MAX_ALIGN, PageHeader, align_up};

/// The most pages a store can span.
pub const MAX_PAGES: usize = 128;
/// The most operations one transaction may carry.
pub const MAX_TX_OPS: usize = 16;
/// Free pages a transaction must leave untouched, for garbage collection.
///
/// One collection needs at most one fresh page (see [`Geometry::limit`]), and
/// a power cut during a collection can strand the page it opened (nothing is
/// appended after a torn entry). Three pages keep the store writable through
/// two such cuts in a row; only a third, with no completed operation in
/// between, could leave it refusing writes until reformatted. Reads are
/// never affected.
const RESERVE_PAGES: usize = 3;
/// Internal key of the garbage-collection horizon.
const HORIZON_KEY: u16 = 0xFFFE;
/// Entries up to this size (header included) go to flash in one program.
const SMALL_ENTRY: usize = 128;
/// Bytes moved per step when checksumming or copying a value: large enough
/// that a flash read costs little per byte, small enough for a card's stack.
const CHUNK: usize = 256;
/// Resume slots at the end of every page. After a power cut tears an entry
/// in the head page, the next append records in a slot where the blank space
/// after the torn bytes begins, and continues there: mount jumps over the
/// torn bytes through the slot instead of abandoning the rest of the page.
/// A slot holds an offset and its complement, so a half-programmed slot is
/// recognised and never followed; entries never reach the slots, so no
/// value written by a client can pose as one.
const RESUME_SLOTS: usize = 4;

/// A record key. Keys `FFFE` and `FFFF` belong to the store itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(u16);

impl Key {
    /// The largest key an applet may use.
    pub const MAX: Key = Key(0xFFFD);

    /// A user key; `None` for the store's own.
    pub const fn new(k: u16) -> Option<Key> {
        if k <= Key::MAX.0 { Some(Key(k)) } else { None }
    }

    /// For `const` items: a key the compiler has checked.
    pub const fn constant(k: u16) -> Key {
        assert!(k <= Key::MAX.0, "key reserved for the store");
        Key(k)
    }

    /// The number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// One change inside a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Set a key's value.
    Put(Key, &'a [u8]),
    /// Remove a key (absent keys are fine).
    Delete(Key),
    /// Remove every key; later operations of the same transaction still apply.
    Clear,
}

/// What can go wrong in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The flash reported an error (on a card: power is failing).
    Flash(NorFlashErrorKind),
    /// Not enough free flash for the transaction, even after collection.
    Full,
    /// A value longer than one page can hold.
    ValueTooLarge,
    /// More distinct keys than the index has room for.
    TooManyKeys,
    /// More operations in one transaction than [`MAX_TX_OPS`].
    TooManyOps,
    /// The flash geometry does not suit the store (page count, alignment).
    Geometry,
    /// The flash holds records this store could not have written.
    Corrupt,
    /// The caller's buffer is shorter than the value.
    BufferTooSmall,
}

impl<E: NorFlashError> From<E> for StoreError {
    fn from(e: E) -> Self {
        StoreError::Flash(e.kind())
    }
}

/// Where a live record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    key: u16,
    /// Flash address of the entry header.
    addr: u32,
    len: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    /// Header reads erased. `blank` once the whole page is known to be.
    Free { blank: bool },
    /// Holds entries; part of the log.
    Data { seq: u32 },
    /// Needs an erase before use: torn, retired or foreign.
    Garbage,
}

#[derive(Clone, Copy, Debug)]
struct Geometry {
    page_size: u32,
    align: usize,
    /// Bytes a page or entry header occupies after padding.
    header: u32,
    /// Where the entry area ends and the resume slots begin.
    end: u32,
    /// Resume slots hold offsets as 16 bits: pages over 64 KiB store them
    /// shifted right by this much (offsets are multiples of the alignment,
    /// so nothing is lost; a page of 64 KiB or less shifts by 0, the
    /// format version 1 encoding).
    resume_shift: u32,
}

impl Geometry {
    fn entry_size(&self, value_len: usize) -> u32 {
        self.header + align_up(value_len, self.align) as u32
    }

    /// How far into a page an entry may reach. Ordinary entries stop one
    /// horizon record short of the end, and collection copies obey the same
    /// limit, so the records of a collected page always fit in one fresh page
    /// with room left for the horizon record that retires it. That is what
    /// keeps every collection from needing more than one fresh page.
    fn limit(&self, horizon: bool) -> u32 {
        if horizon {
            self.end
        } else {
            self.end - self.entry_size(4)
        }
    }

    /// Offset of resume slot `i` in a page.
    fn slot(&self, i: usize) -> u32 {
        self.end + (i * self.align) as u32
    }

    /// Room for ordinary entries in an empty page.
    fn page_capacity(&self) -> u32 {
        self.limit(false) - self.header
    }
}

/// Figures for tests, benches and the simulator's status display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Pages in the store.
    pub pages: usize,
    /// Pages free or waiting for an erase.
    pub free_pages: usize,
    /// Live user records.
    pub records: usize,
    /// Flash bytes the live records occupy, headers included.
    pub live_bytes: u32,
}

/// A committed entry seen while replaying the log on mount.
#[derive(Clone, Copy, Debug)]
struct Seen {
    key: u16,
    kind: Kind,
    addr: u32,
    len: u16,
}

/// What lies at an offset in a page.
#[derive(Clone, Copy, Debug)]
enum Entry {
    /// An intact entry.
    Valid(EntryHeader),
    /// An erased header: the end of the entries, if the rest is blank too.
    Blank,
    /// Bytes that are no intact entry: a torn write.
    Torn,
}

/// What a resume slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResumeSlot {
    Blank,
    Points(u32),
    Torn,
}

/// What a transaction does to the live data, which decides how much of the
/// reserve it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Growth {
    Shrinks,
    Same,
    Grows,
}

/// What replay builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Replay {
    /// Only the garbage-collection horizon.
    Horizon,
    /// The whole index.
    Index,
}

/// The transactional store over a NOR flash `F`, indexing up to `KEYS` keys.
#[derive(Debug)]
pub struct Store<F, const KEYS: usize = 128> {
    flash: F,
    geometry: Geometry,
    pages: Vec<Page, MAX_PAGES>,
    /// Live records, sorted by key.
    index: Vec<Slot, KEYS>,
    /// What the live records occupy on flash, headers included.
    live: u32,
    /// Page being appended to and the offset of its next entry; `None` when
    /// the next write must open a fresh page.
    head: Option<(usize, u32)>,
    /// A resume slot (flash address) to program with the head offset before
    /// the next append, because the head page has torn bytes before it.
    resume: Option<(u32, u32)>,
    next_seq: u32,
    next_tx: u32,
}

impl<F: NorFlash, const KEYS: usize> Store<F, KEYS> {
    /// How many user keys the store holds at most: `KEYS` less the index
    /// slot of the collection horizon.
    pub const USER_KEYS: usize = KEYS - 1;

    /// Mounts the store on `flash`, recovering from whatever a power cut left.
    ///
    /// Recovery writes nothing: torn entries are skipped and their page is
    /// closed, dead pages are erased only when they are needed again. So a
    /// cut during recovery is just another cut.
    pub fn mount(flash: F) -> Result<Self, StoreError> {
        let align = F::WRITE_SIZE.max(F::READ_SIZE).max(4);
        let page_size = F::ERASE_SIZE;
        let header = align_up(HEADER_LEN, align);
        let page_count = flash.capacity() / page_size.max(1);
        let resume_shift = page_size.trailing_zeros().saturating_sub(16);
        let geometry_ok = align.is_power_of_two()
            && align <= MAX_ALIGN
            && page_size.is_power_of_two()
            && page_size >= 8 * header + RESUME_SLOTS * align
            && page_size.is_multiple_of(align)
            && resume_shift <= align.trailing_zeros()
            && u32::try_from(flash.capacity()).is_ok()
            && KEYS >= 2
            && (RESERVE_PAGES + 2..=MAX_PAGES).contains(&page_count);
        if !geometry_ok {
            return Err(StoreError::Geometry);
        }
        let mut store = Store {
            flash,
            geometry: Geometry {
                page_size: page_size as u32,
                align,
                header: header as u32,
                end: (page_size - RESUME_SLOTS * align) as u32,
                resume_shift,
            },
            pages: Vec::new(),
            index: Vec::new(),
            live: 0,
            head: None,
            resume: None,
            next_seq: 1,
            next_tx: 1,
        };
        store.load()?;
        Ok(store)
    }

    fn load(&mut self) -> Result<(), StoreError> {
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
                PageHeader::Valid(seq) => {
                    self.next_seq = self.next_seq.max(seq.saturating_add(1));
                    order.push((seq, p)).map_err(|_| StoreError::Geometry)?;
                    Page::Data { seq }
                }
            };
            self.pages.push(page).map_err(|_| StoreError::Geometry)?;
        }
        order.sort_unstable();

        // The first pass checks every entry's checksum; where a page's
        // entries run unbroken from its header it notes how far, and the
        // second pass reads those headers without checking them again.
        let mut checked = [0u32; MAX_PAGES];
        let horizon = self.replay(&order, Replay::Horizon, &mut checked)?;
        order.retain(|&(seq, p)| {
            let dead = seq <= horizon;
            if dead && let Some(page) = self.pages.get_mut(p) {
                *page = Page::Garbage;
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
    fn replay(
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
    fn resume_point(&mut self, p: usize, at: u32) -> Result<Option<u32>, StoreError> {
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
    fn plan_resume(&mut self, p: usize, at: u32) -> Result<Option<u32>, StoreError> {
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

    fn read_slot(&mut self, addr: u32) -> Result<ResumeSlot, StoreError> {
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

    fn read_horizon(&mut self, s: &Seen) -> Result<u32, StoreError> {
        let mut v = [0u8; 4];
        if s.len != 4 {
            return Err(StoreError::Corrupt);
        }
        self.read(s.addr + self.geometry.header, &mut v)?;
        Ok(u32::from_le_bytes(v))
    }

    /// The header at `at`, decoded but not checked against its value: for
    /// entries the first pass of mount already checked.
    fn read_header(&mut self, at: u32) -> Option<EntryHeader> {
        let mut raw = [0u8; HEADER_LEN];
        self.read_tolerant(at, &mut raw)
            .then(|| EntryHeader::decode(&raw))
            .flatten()
    }

    /// Reads and checks the entry at `at`.
    fn read_entry(&mut self, at: u32, end: u32) -> Result<Entry, StoreError> {
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

    fn apply(&mut self, s: &Seen) -> Result<(), StoreError> {
        match s.kind {
            Kind::Put => self.index_put(Slot {
                key: s.key,
                addr: s.addr,
                len: s.len,
            }),
            Kind::Delete => {
                self.index_remove(s.key);
                Ok(())
            }
            Kind::Clear => {
                self.index.retain(|slot| slot.key > Key::MAX.0);
                let g = self.geometry;
                self.live = self
                    .index
                    .iter()
                    .map(|s| g.entry_size(usize::from(s.len)))
                    .sum();
                Ok(())
            }
        }
    }

    fn index_put(&mut self, slot: Slot) -> Result<(), StoreError> {
        let size = self.geometry.entry_size(usize::from(slot.len));
        match self.index.binary_search_by_key(&slot.key, |s| s.key) {
            Ok(i) => {
                if let Some(s) = self.index.get_mut(i) {
                    let old = self.geometry.entry_size(usize::from(s.len));
                    self.live = self.live.saturating_sub(old) + size;
                    *s = slot;
                }
                Ok(())
            }
            Err(i) => {
                self.index
                    .insert(i, slot)
                    .map_err(|_| StoreError::TooManyKeys)?;
                self.live += size;
                Ok(())
            }
        }
    }

    fn index_remove(&mut self, key: u16) {
        if let Ok(i) = self.index.binary_search_by_key(&key, |s| s.key) {
            let removed = self.index.remove(i);
            let size = self.geometry.entry_size(usize::from(removed.len));
            self.live = self.live.saturating_sub(size);
        }
    }

    fn slot(&self, key: u16) -> Option<Slot> {
        let i = self.index.binary_search_by_key(&key, |s| s.key).ok()?;
        self.index.get(i).copied()
    }

    /// The largest value a record may hold.
    pub fn max_value_len(&self) -> usize {
        let room = (self.geometry.page_capacity() - self.geometry.header) as usize;
        let aligned = room & !(self.geometry.align - 1);
        aligned.min(usize::from(u16::MAX))
    }

    /// Whether `key` holds a value.
    pub fn contains(&self, key: Key) -> bool {
        self.slot(key.0).is_some()
    }

    /// The length of `key`'s value, if it has one.
    pub fn value_len(&self, key: Key) -> Option<usize> {
        self.slot(key.0).map(|s| usize::from(s.len))
    }

    /// Reads `key`'s value into `buf`, returning the filled part, or `None`
    /// if the key holds nothing.
    pub fn read_value<'b>(
        &mut self,
        key: Key,
        buf: &'b mut [u8],
    ) -> Result<Option<&'b [u8]>, StoreError> {
        let Some(slot) = self.slot(key.0) else {
            return Ok(None);
        };
        let out = buf
            .get_mut(..usize::from(slot.len))
            .ok_or(StoreError::BufferTooSmall)?;
        self.read(slot.addr + self.geometry.header, out)?;
        Ok(Some(out))
    }

    /// The user keys that hold values, in ascending order.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.index.iter().filter_map(|s| Key::new(s.key))
    }

    /// Applies `ops` all together or not at all.
    ///
    /// Returns once the last entry is on flash. If the flash fails (power is
    /// going), the transaction is as if never begun, both now and after the
    /// next mount.
    pub fn commit(&mut self, ops: &[Op<'_>]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        if ops.len() > MAX_TX_OPS {
            return Err(StoreError::TooManyOps);
        }
        debug_assert_eq!(
            self.live,
            self.index
                .iter()
                .map(|s| self.geometry.entry_size(usize::from(s.len)))
                .sum::<u32>(),
            "the cached live size drifted from the index"
        );
        let mut sizes: Vec<u32, MAX_TX_OPS> = Vec::new();
        let mut new_keys = 0usize;
        for op in ops {
            let len = match op {
                Op::Put(key, value) => {
                    if value.len() > self.max_value_len() {
                        return Err(StoreError::ValueTooLarge);
                    }
                    if self.slot(key.0).is_none() {
                        new_keys += 1;
                    }
                    value.len()
                }
                Op::Delete(_) => 0,
                Op::Clear => {
                    new_keys = 0;
                    0
                }
            };
            sizes
                .push(self.geometry.entry_size(len))
                .map_err(|_| StoreError::TooManyOps)?;
        }
        // One index slot belongs to the collection horizon, whether or not
        // a collection has written it yet: a store whose user keys filled
        // the index would fail its first collection, and every mount after.
        // The horizon, the largest key, is last in the sorted index.
        let horizon = self.index.last().is_some_and(|s| s.key == HORIZON_KEY);
        let user_keys = self.index.len() - usize::from(horizon);
        if user_keys + new_keys > Self::USER_KEYS {
            return Err(StoreError::TooManyKeys);
        }
        let (before, after) = (self.live_bytes(), self.live_bytes_after(ops));
        let growth = match after.cmp(&before) {
            core::cmp::Ordering::Less => Growth::Shrinks,
            core::cmp::Ordering::Equal => Growth::Same,
            core::cmp::Ordering::Greater => Growth::Grows,
        };
        self.make_room(&sizes, growth)?;

        let tx = self.take_tx();
        let mut addrs: Vec<u32, MAX_TX_OPS> = Vec::new();
        let count = ops.len() as u16;
        for (i, op) in ops.iter().enumerate() {
            let last = i + 1 == ops.len();
            let (key, kind, value) = match *op {
                Op::Put(k, v) => (k.0, Kind::Put, v),
                Op::Delete(k) => (k.0, Kind::Delete, &[][..]),
                Op::Clear => (Key::MAX.0, Kind::Clear, &[][..]),
            };
            let header = EntryHeader::new(key, kind, value, tx, if last { count } else { 0 });
            let addr = self.append(&header, value)?;
            addrs.push(addr).map_err(|_| StoreError::TooManyOps)?;
        }
        for (op, &addr) in ops.iter().zip(addrs.iter()) {
            let (key, kind, len) = match *op {
                Op::Put(k, v) => (k.0, Kind::Put, v.len() as u16),
                Op::Delete(k) => (k.0, Kind::Delete, 0),
                Op::Clear => (Key::MAX.0, Kind::Clear, 0),
            };
            self.apply(&Seen {
                key,
                kind,
                addr,
                len,
            })?;
        }
        Ok(())
    }

    fn take_tx(&mut self) -> u32 {
        let tx = self.next_tx;
        self.next_tx = self.next_tx.wrapping_add(1).max(1);
        tx
    }

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
    fn make_room(&mut self, sizes: &[u32], growth: Growth) -> Result<(), StoreError> {
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
    fn live_bytes_after(&self, ops: &[Op<'_>]) -> u32 {
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
                        .filter(|s| s.key > Key::MAX.0)
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
    fn fits_compacted(&self, sizes: &[u32], reserve: usize) -> bool {
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
    fn fits(&self, entries: impl Iterator<Item = (u32, bool)>, reserve: usize) -> bool {
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

    fn free_pages(&self) -> usize {
        self.pages
            .iter()
            .filter(|p| !matches!(p, Page::Data { .. }))
            .count()
    }

    /// Flash bytes the indexed records occupy (kept up to date by the
    /// index updates, so commits need not add them up).
    fn live_bytes(&self) -> u32 {
        self.live
    }

    /// Moves the live records of the oldest page to the head of the log and
    /// erases it. Returns `false` if there is no page to collect.
    fn collect_oldest(&mut self) -> Result<bool, StoreError> {
        let head_page = self.head.map(|(p, _)| p);
        let victim = self
            .pages
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Page::Data { seq } if Some(i) != head_page => Some((*seq, i)),
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
    fn copy_entry(&mut self, slot: Slot) -> Result<u32, StoreError> {
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

    /// Appends one entry, opening a page if needed; returns its address.
    fn append(&mut self, header: &EntryHeader, value: &[u8]) -> Result<u32, StoreError> {
        let size = self.geometry.entry_size(value.len());
        let at = self.reserve_space(size, header.key == HORIZON_KEY)?;
        let written = self.write_entry(at, header, value);
        self.finish_append(at, size, written)
    }

    /// Advances the head past an entry written at `at`, or, if the write
    /// failed, closes the head page so nothing is appended after a torn entry.
    fn finish_append(
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
    fn reserve_space(&mut self, size: u32, horizon: bool) -> Result<u32, StoreError> {
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
    fn open_page(&mut self) -> Result<usize, StoreError> {
        let n = self.pages.len();
        let start = self.head.map_or(0, |(p, _)| p + 1);
        self.head = None;
        self.resume = None;
        let p = (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| !matches!(self.pages.get(i), Some(Page::Data { .. })))
            .ok_or(StoreError::Full)?;
        let base = self.page_addr(p);
        let blank = match self.pages.get(p) {
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

    fn erase_page(&mut self, p: usize) -> Result<(), StoreError> {
        let base = self.page_addr(p);
        self.set_page(p, Page::Garbage);
        self.flash.erase(base, base + self.geometry.page_size)?;
        self.set_page(p, Page::Free { blank: true });
        Ok(())
    }

    fn set_page(&mut self, p: usize, state: Page) {
        if let Some(page) = self.pages.get_mut(p) {
            *page = state;
        }
    }

    /// Writes header and value. Small entries go in one program operation;
    /// larger ones in three (header, aligned body, padded tail), header first.
    fn write_entry(
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

    fn write_header(&mut self, at: u32, header: &EntryHeader) -> Result<(), StoreError> {
        let mut buf = [0xFFu8; MAX_ALIGN];
        if let Some(dst) = buf.get_mut(..HEADER_LEN) {
            dst.copy_from_slice(&header.encode());
        }
        let out = buf
            .get(..self.geometry.header as usize)
            .ok_or(StoreError::Geometry)?;
        self.program(at, out)
    }

    fn program(&mut self, at: u32, bytes: &[u8]) -> Result<(), StoreError> {
        self.flash.write(at, bytes)?;
        Ok(())
    }

    /// Reads `out.len()` bytes at an aligned address, whatever the length.
    fn read(&mut self, at: u32, out: &mut [u8]) -> Result<(), StoreError> {
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
    fn read_tolerant(&mut self, at: u32, out: &mut [u8]) -> bool {
        self.read(at, out).is_ok()
    }

    fn is_blank(&mut self, from: u32, to: u32) -> Result<bool, StoreError> {
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

    fn page_addr(&self, p: usize) -> u32 {
        p as u32 * self.geometry.page_size
    }

    /// Figures about the store.
    pub fn stats(&self) -> Stats {
        Stats {
            pages: self.pages.len(),
            free_pages: self.free_pages(),
            records: self.keys().count(),
            live_bytes: self.live_bytes(),
        }
    }

    /// The flash, for inspection.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// Gives the flash back (to "reboot" it in a test, or to save an image).
    pub fn into_flash(self) -> F {
        self.flash
    }
}
