//! A transactional record store on NOR flash that survives a power cut at
//! any instant.
//!
//! The flash is a log of pages, each stamped with an increasing sequence
//! number. Records are appended as entries; the newest committed entry for a
//! key is its value. A transaction is a run of entries whose last one
//! carries the run's length, so a cut anywhere leaves all of it or none.
//! Space comes back by collecting the oldest page, which makes the log a
//! ring and spreads erases evenly over all pages, static records included.
//! The in-RAM index (key to flash address) is rebuilt by mount and updated
//! only after a commit's last write succeeded.
//!
//! The code follows the seams of that design: `replay` (mount), `index`,
//! `collect` (room and garbage collection) and `log` (entries and pages on
//! flash) each have a module, and the argument for why all this survives
//! every cut is written once, in [`tearing`].

mod collect;
mod format;
mod index;
mod log;
mod replay;
pub mod tearing;

use core::mem::MaybeUninit;

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

/// The key a Clear entry is written under (on flash since format 1).
const CLEAR_KEY: u16 = 0xFFFD;
/// Keys from here up are the system's: the card OS's own records (the
/// randomness ratchet) and the store's (the collection horizon). A Clear,
/// which an applet's factory reset commits, keeps them: wiping the ratchet
/// would make the next boot repeat an earlier one's randomness.
const FIRST_SYSTEM_KEY: u16 = 0xFF00;

/// A record key. Applets use `0000`–`FEFF`; the rest belong to the card OS
/// (`FF00`–`FFFC`) and to the store itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(u16);

impl Key {
    /// The largest key an applet may use.
    pub const MAX: Key = Key(FIRST_SYSTEM_KEY - 1);

    /// A user key; `None` for the system's own.
    pub const fn new(k: u16) -> Option<Key> {
        if k <= Key::MAX.0 { Some(Key(k)) } else { None }
    }

    /// For `const` items: a key the compiler has checked.
    pub const fn constant(k: u16) -> Key {
        assert!(k <= Key::MAX.0, "key reserved for the system");
        Key(k)
    }

    /// A card OS key, which survives a Clear.
    pub(crate) const fn system(k: u16) -> Key {
        assert!(k >= FIRST_SYSTEM_KEY && k < CLEAR_KEY, "not a card OS key");
        Key(k)
    }

    /// Whether a Clear keeps this key.
    const fn is_system(k: u16) -> bool {
        k >= FIRST_SYSTEM_KEY
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

/// A [`Page`] in one word, as the store keeps one per page (up to
/// [`MAX_PAGES`]: the enum's eight bytes would cost a card 512 more of
/// RAM): a data page's sequence number, or one of the three highest
/// values, which no page is stamped with ([`PageWord::SEQ_LIMIT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PageWord(u32);

impl PageWord {
    const FREE: u32 = u32::MAX;
    const BLANK: u32 = u32::MAX - 1;
    const GARBAGE: u32 = u32::MAX - 2;
    /// The first sequence number no page may carry. A card stamps a page
    /// at each turn of its log: four thousand million of them outlast any
    /// flash. A header from flash that claims one is no page of ours.
    const SEQ_LIMIT: u32 = PageWord::GARBAGE;

    fn of(page: Page) -> PageWord {
        PageWord(match page {
            Page::Free { blank: false } => PageWord::FREE,
            Page::Free { blank: true } => PageWord::BLANK,
            Page::Data { seq } if seq < PageWord::SEQ_LIMIT => seq,
            Page::Data { .. } | Page::Garbage => PageWord::GARBAGE,
        })
    }

    fn get(self) -> Page {
        match self.0 {
            PageWord::FREE => Page::Free { blank: false },
            PageWord::BLANK => Page::Free { blank: true },
            PageWord::GARBAGE => Page::Garbage,
            seq => Page::Data { seq },
        }
    }
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
    /// The geometry of a store on `flash`, if the format can hold one
    /// there (alignment, page size and count within its limits).
    fn of<F: NorFlash, const KEYS: usize>(flash: &F) -> Result<Geometry, StoreError> {
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
        Ok(Geometry {
            page_size: page_size as u32,
            align,
            header: header as u32,
            end: (page_size - RESUME_SLOTS * align) as u32,
            resume_shift,
        })
    }

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
    pages: Vec<PageWord, MAX_PAGES>,
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
    /// Transactions committed since mount.
    commits: u32,
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
        let geometry = Geometry::of::<F, KEYS>(&flash)?;
        let mut store = Store::empty(flash, geometry);
        store.load()?;
        Ok(store)
    }

    /// [`Store::mount`], into `place`: where the store is to live (a
    /// static, on a chip). The empty store is written there field by field
    /// and filled in place, so that its index is never moved through a
    /// frame, which would cost as much stack again.
    pub fn mount_in(place: &mut MaybeUninit<Self>, flash: F) -> Result<&mut Self, StoreError> {
        let geometry = Geometry::of::<F, KEYS>(&flash)?;
        let store = place.write(Store::empty(flash, geometry));
        store.load()?;
        Ok(store)
    }

    /// The store on `flash` with nothing read yet. Inlined, so that the
    /// caller's `MaybeUninit::write` builds it where it goes.
    #[inline(always)]
    fn empty(flash: F, geometry: Geometry) -> Self {
        Store {
            flash,
            geometry,
            pages: Vec::new(),
            index: Vec::new(),
            live: 0,
            head: None,
            resume: None,
            next_seq: 1,
            next_tx: 1,
            commits: 0,
        }
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
                Op::Clear => (CLEAR_KEY, Kind::Clear, &[][..]),
            };
            let header = EntryHeader::new(key, kind, value, tx, if last { count } else { 0 });
            let addr = self.append(&header, value)?;
            addrs.push(addr).map_err(|_| StoreError::TooManyOps)?;
        }
        for (op, &addr) in ops.iter().zip(addrs.iter()) {
            let (key, kind, len) = match *op {
                Op::Put(k, v) => (k.0, Kind::Put, v.len() as u16),
                Op::Delete(k) => (k.0, Kind::Delete, 0),
                Op::Clear => (CLEAR_KEY, Kind::Clear, 0),
            };
            self.apply(&Seen {
                key,
                kind,
                addr,
                len,
            })?;
        }
        self.commits = self.commits.wrapping_add(1);
        Ok(())
    }

    /// Transactions committed since the store was mounted (collections
    /// not counted): a test counts with it what a run of commands wrote,
    /// and so that none was written twice.
    pub fn commits(&self) -> u32 {
        self.commits
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

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::RamFlash;

    type Flash = RamFlash<{ 8 * 512 }, 512>;

    #[test]
    fn a_page_state_reads_back_from_its_word() {
        for page in [
            Page::Free { blank: false },
            Page::Free { blank: true },
            Page::Garbage,
            Page::Data { seq: 0 },
            Page::Data { seq: 1 },
            Page::Data {
                seq: PageWord::SEQ_LIMIT - 1,
            },
        ] {
            assert_eq!(PageWord::of(page).get(), page);
        }
        // A stamp past the limit is no data page of ours.
        for seq in PageWord::SEQ_LIMIT..=u32::MAX {
            assert_eq!(PageWord::of(Page::Data { seq }).get(), Page::Garbage);
        }
    }

    /// A page stamped with a number the store never uses is foreign: it is
    /// not replayed, and it is erased before the store writes there.
    #[test]
    fn a_page_stamped_past_the_limit_is_garbage() {
        let key = Key::new(1).unwrap();
        let mut s: Store<Flash> = Store::mount(Flash::new()).unwrap();
        s.commit(&[Op::Put(key, b"kept")]).unwrap();
        let mut flash = s.into_flash();
        let last = 7 * 512;
        let mut header = [0xFFu8; 16];
        header[..HEADER_LEN].copy_from_slice(&format::encode_page_header(u32::MAX - 1));
        flash.write(last, &header).unwrap();
        let mut s: Store<Flash> = Store::mount(flash).unwrap();
        assert_eq!(s.page(7), Some(Page::Garbage));
        assert_eq!(s.stats().records, 1);
        // Filling the store takes every page, that one too.
        for n in 0..40u8 {
            s.commit(&[Op::Put(key, &[n; 200])]).unwrap();
        }
        let mut value = [0u8; 200];
        assert_eq!(s.read_value(key, &mut value), Ok(Some(&[39; 200][..])));
        assert_ne!(s.page(7), Some(Page::Garbage), "erased and used");
    }
}
