//! Flash for tests, benches and fuzzing: a strict RAM flash, and a wrapper
//! that cuts the power in the middle of a chosen flash operation.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash, check_erase, check_read,
    check_write,
};

use crate::store::{Store, StoreError};

/// Calls `f` with every record of `store`, in key order, each value read
/// into `buf`: how tests and fuzz targets take a whole store to compare it
/// before and after (they collect into a map; this crate has no heap).
pub fn for_each_record<F: NorFlash, const KEYS: usize>(
    store: &mut Store<F, KEYS>,
    buf: &mut [u8],
    mut f: impl FnMut(u16, &[u8]),
) -> Result<(), StoreError> {
    let mut next = store.keys().next();
    while let Some(key) = next {
        if let Some(value) = store.read_value(key, buf)? {
            f(key.get(), value);
        }
        // Reading needs the store mutably, so the key walk restarts after
        // each record: quadratic, and fine for tests.
        next = store.keys().find(|k| *k > key);
    }
    Ok(())
}

/// The most pages [`RamFlash`] keeps erase counts for.
pub const MAX_COUNTED_PAGES: usize = 128;
/// The largest range [`TearingFlash`] can tear in one erase.
pub const MAX_TEAR_BYTES: usize = 128 * 1024;

/// Why a test flash refused an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashFault {
    /// Offset or length not a multiple of the read, write or erase size.
    NotAligned,
    /// Past the end of the flash.
    OutOfBounds,
    /// A program over a word that was not erased: real NOR with ECC forbids
    /// it, so the store must never do it.
    Reprogrammed,
    /// The power was cut; nothing works until the flash is "rebooted".
    PowerLost,
    /// The word cannot be read (ECC).
    Unreadable,
    /// A wrapped flash reported this.
    Inner(NorFlashErrorKind),
}

impl NorFlashError for FlashFault {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashFault::NotAligned => NorFlashErrorKind::NotAligned,
            FlashFault::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashFault::Reprogrammed | FlashFault::PowerLost | FlashFault::Unreadable => {
                NorFlashErrorKind::Other
            }
            FlashFault::Inner(kind) => *kind,
        }
    }
}

/// A wrapped flash's error, as a fault.
fn lift<T, E: NorFlashError>(result: Result<T, E>) -> Result<T, FlashFault> {
    result.map_err(|e| FlashFault::Inner(e.kind()))
}

fn fault(kind: NorFlashErrorKind) -> FlashFault {
    match kind {
        NorFlashErrorKind::NotAligned => FlashFault::NotAligned,
        _ => FlashFault::OutOfBounds,
    }
}

/// NOR flash in RAM: `SIZE` bytes in pages of `PAGE`, programmed in words of
/// `WORD` bytes, each word at most once between erases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RamFlash<const SIZE: usize, const PAGE: usize, const WORD: usize = 4> {
    bytes: [u8; SIZE],
    erases: [u32; MAX_COUNTED_PAGES],
    programs: u64,
    programmed: u64,
    erase_ops: u64,
    /// Words that fail every read until erased, as an ECC flash fails to
    /// read a word a power cut left half-programmed or half-erased.
    poisoned: heapless::Vec<u32, MAX_POISONED>,
}

/// The most unreadable words a [`RamFlash`] keeps.
pub const MAX_POISONED: usize = 16;

impl<const SIZE: usize, const PAGE: usize, const WORD: usize> Default
    for RamFlash<SIZE, PAGE, WORD>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const SIZE: usize, const PAGE: usize, const WORD: usize> RamFlash<SIZE, PAGE, WORD> {
    /// A fully erased flash.
    pub const fn new() -> Self {
        RamFlash {
            bytes: [0xFF; SIZE],
            erases: [0; MAX_COUNTED_PAGES],
            programs: 0,
            programmed: 0,
            erase_ops: 0,
            poisoned: heapless::Vec::new(),
        }
    }

    /// Makes the word at `addr` fail every read until its page is erased.
    pub fn poison(&mut self, addr: u32) {
        let word = addr - addr % WORD as u32;
        if !self.poisoned.contains(&word) {
            let _ = self.poisoned.push(word);
        }
    }

    /// A flash holding `image` (a golden file, a saved card image).
    pub fn from_image(image: &[u8]) -> Option<Self> {
        let mut flash = Self::new();
        flash.bytes.get_mut(..)?.copy_from_slice(image.get(..SIZE)?);
        (image.len() == SIZE).then_some(flash)
    }

    /// The raw contents.
    pub fn image(&self) -> &[u8; SIZE] {
        &self.bytes
    }

    /// Program operations so far.
    pub const fn programs(&self) -> u64 {
        self.programs
    }

    /// Bytes programmed so far.
    pub const fn programmed_bytes(&self) -> u64 {
        self.programmed
    }

    /// Erase operations so far.
    pub const fn erase_ops(&self) -> u64 {
        self.erase_ops
    }

    /// Times each page has been erased.
    pub fn erase_counts(&self) -> &[u32] {
        self.erases.get(..SIZE / PAGE).unwrap_or_default()
    }
}

impl<const SIZE: usize, const PAGE: usize, const WORD: usize> ErrorType
    for RamFlash<SIZE, PAGE, WORD>
{
    type Error = FlashFault;
}

impl<const SIZE: usize, const PAGE: usize, const WORD: usize> ReadNorFlash
    for RamFlash<SIZE, PAGE, WORD>
{
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashFault> {
        check_read(self, offset, bytes.len()).map_err(fault)?;
        let end = offset + bytes.len() as u32;
        if self
            .poisoned
            .iter()
            .any(|&w| w < end && w + WORD as u32 > offset)
        {
            return Err(FlashFault::Unreadable);
        }
        let start = offset as usize;
        let src = self
            .bytes
            .get(start..start + bytes.len())
            .ok_or(FlashFault::OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        SIZE
    }
}

impl<const SIZE: usize, const PAGE: usize, const WORD: usize> NorFlash
    for RamFlash<SIZE, PAGE, WORD>
{
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashFault> {
        check_erase(self, from, to).map_err(fault)?;
        let (from, to) = (from as usize, to as usize);
        self.bytes
            .get_mut(from..to)
            .ok_or(FlashFault::OutOfBounds)?
            .fill(0xFF);
        self.poisoned
            .retain(|&w| (w as usize) < from || w as usize >= to);
        for page in from / PAGE..to / PAGE {
            if let Some(n) = self.erases.get_mut(page) {
                *n += 1;
            }
        }
        self.erase_ops += 1;
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashFault> {
        check_write(self, offset, bytes.len()).map_err(fault)?;
        let start = offset as usize;
        let dst = self
            .bytes
            .get_mut(start..start + bytes.len())
            .ok_or(FlashFault::OutOfBounds)?;
        if dst.iter().any(|&b| b != 0xFF) {
            return Err(FlashFault::Reprogrammed);
        }
        dst.copy_from_slice(bytes);
        self.programs += 1;
        self.programmed += bytes.len() as u64;
        Ok(())
    }
}

/// A flash whose power fails part-way through one chosen operation.
///
/// Operations (programs and erases) are numbered from 0. With `cut_at = Some(n)`
/// operations `0..n` complete and operation `n` is torn: a program leaves a
/// prefix of its words written and possibly one word half-programmed; an
/// erase leaves part of the range erased, possibly one word half-erased, and
/// the rest as it was. From then on every operation, reads included, fails
/// with [`FlashFault::PowerLost`] until the test takes the flash back with
/// [`TearingFlash::into_inner`] and mounts it again, as a reboot would.
#[derive(Clone, Debug)]
pub struct TearingFlash<F> {
    inner: F,
    ops: u32,
    cut_at: Option<u32>,
    dead: bool,
    rng: u64,
    order: TearOrder,
    /// Words the cut left neither as they were nor as they were meant to
    /// be (half-programmed, half-erased): the ones an ECC flash could no
    /// longer read.
    torn_words: heapless::Vec<u32, MAX_POISONED>,
}

/// How a cut program leaves the words it was writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TearOrder {
    /// In address order: a prefix of the words is programmed, the next one
    /// perhaps in part (most NOR flash).
    InOrder,
    /// Any subset of the words is programmed, and any of the others in
    /// part (a flash that programs a multi-word write in its own order, or
    /// a controller that buffers it).
    AnyOrder,
}

impl<F: NorFlash> TearingFlash<F> {
    /// Wraps `inner`; `seed` chooses how each cut tears.
    pub fn new(inner: F, cut_at: Option<u32>, seed: u64) -> Self {
        TearingFlash {
            inner,
            ops: 0,
            cut_at,
            dead: false,
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            order: TearOrder::InOrder,
            torn_words: heapless::Vec::new(),
        }
    }

    /// The same flash, tearing programs in `order`.
    pub fn tearing(mut self, order: TearOrder) -> Self {
        self.order = order;
        self
    }

    /// The words the cut left half-done (see [`RamFlash::poison`]).
    pub fn torn_words(&self) -> &[u32] {
        &self.torn_words
    }

    fn torn(&mut self, addr: u32) {
        let _ = self.torn_words.push(addr);
    }

    /// Program and erase operations started so far (the torn one included).
    pub const fn ops(&self) -> u32 {
        self.ops
    }

    /// Whether the power has been cut.
    pub const fn is_cut(&self) -> bool {
        self.dead
    }

    /// The flash as the cut left it.
    pub fn into_inner(self) -> F {
        self.inner
    }

    /// The wrapped flash.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, no dependencies, enough for tearing.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Counts an operation; `true` if this is the one to tear.
    fn starting(&mut self) -> Result<bool, FlashFault> {
        if self.dead {
            return Err(FlashFault::PowerLost);
        }
        let n = self.ops;
        self.ops += 1;
        Ok(self.cut_at == Some(n))
    }

    fn tear_write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashFault> {
        if self.order == TearOrder::AnyOrder {
            return self.tear_write_any_order(offset, bytes);
        }
        let word = F::WRITE_SIZE;
        let words = bytes.len() / word;
        let done = (self.next() % (words as u64 + 1)) as usize;
        let prefix = bytes.get(..done * word).ok_or(FlashFault::OutOfBounds)?;
        if !prefix.is_empty() {
            lift(self.inner.write(offset, prefix))?;
        }
        if done < words && self.next() & 1 == 1 {
            let mut half = [0xFFu8; 64];
            let target = bytes
                .get(done * word..(done + 1) * word)
                .ok_or(FlashFault::OutOfBounds)?;
            let half = half.get_mut(..word).ok_or(FlashFault::OutOfBounds)?;
            for (h, &t) in half.iter_mut().zip(target) {
                // Some of the bits meant to go to 0 did.
                *h = t | (self.next() as u8);
            }
            lift(self.inner.write(offset + (done * word) as u32, half))?;
            self.torn(offset + (done * word) as u32);
        }
        Ok(())
    }

    /// Each word programmed, left erased, or programmed in part, at random.
    fn tear_write_any_order(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashFault> {
        let word = F::WRITE_SIZE;
        for (i, target) in bytes.chunks(word).enumerate() {
            let at = offset + (i * word) as u32;
            let mut buf = [0xFFu8; 64];
            let buf = buf.get_mut(..target.len()).ok_or(FlashFault::OutOfBounds)?;
            match self.next() % 3 {
                0 => continue,
                1 => buf.copy_from_slice(target),
                _ => {
                    for (b, &t) in buf.iter_mut().zip(target) {
                        *b = t | (self.next() as u8);
                    }
                    self.torn(at);
                }
            }
            if buf.iter().any(|&b| b != 0xFF) {
                lift(self.inner.write(at, buf))?;
            }
        }
        Ok(())
    }

    fn tear_erase(&mut self, from: u32, to: u32) -> Result<(), FlashFault> {
        let len = (to - from) as usize;
        let mut old = [0u8; MAX_TEAR_BYTES];
        let old = old.get_mut(..len).ok_or(FlashFault::OutOfBounds)?;
        lift(self.inner.read(from, old))?;
        lift(self.inner.erase(from, to))?;
        let word = F::WRITE_SIZE;
        let words = len / word;
        let erased = (self.next() % (words as u64 + 1)) as usize;
        // Either the start or the end of the range got erased first.
        let from_start = self.next() & 1 == 0;
        let half_erased = self.next() & 1 == 1;
        for w in 0..words {
            let pos = if from_start { w } else { words - 1 - w };
            if pos < erased {
                continue;
            }
            let at = w * word;
            let mut buf = [0xFFu8; 64];
            let buf = buf.get_mut(..word).ok_or(FlashFault::OutOfBounds)?;
            buf.copy_from_slice(old.get(at..at + word).ok_or(FlashFault::OutOfBounds)?);
            if pos == erased && half_erased {
                for b in buf.iter_mut() {
                    *b |= self.next() as u8;
                }
                self.torn(from + at as u32);
            }
            if buf.iter().any(|&b| b != 0xFF) {
                lift(self.inner.write(from + at as u32, buf))?;
            }
        }
        Ok(())
    }
}

impl<F: NorFlash> ErrorType for TearingFlash<F> {
    type Error = FlashFault;
}

impl<F: NorFlash> ReadNorFlash for TearingFlash<F> {
    const READ_SIZE: usize = F::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashFault> {
        if self.dead {
            return Err(FlashFault::PowerLost);
        }
        lift(self.inner.read(offset, bytes))
    }

    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

impl<F: NorFlash> NorFlash for TearingFlash<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashFault> {
        if self.starting()? {
            self.tear_erase(from, to)?;
            self.dead = true;
            return Err(FlashFault::PowerLost);
        }
        lift(self.inner.erase(from, to))
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashFault> {
        if self.starting()? {
            self.tear_write(offset, bytes)?;
            self.dead = true;
            return Err(FlashFault::PowerLost);
        }
        lift(self.inner.write(offset, bytes))
    }
}

/// A trivial applet that exercises the OS, for tests, benches and fuzzing.
///
/// | INS | does |
/// |---|---|
/// | `01` | echoes the command data |
/// | `02` | answers `P1 P2` (big-endian) bytes counting up from 0 |
/// | `03` | fails with `6A 80` |
/// | `04` | stores the command data under key P2 (one transaction) |
/// | `05` | reads key P2 back (`6A 82` if absent) |
/// | `06` | answers 8 random bytes |
/// | `07` | echoes the command data, both judged secret |
/// | `08` | writes the command data into its reply, then fails with `6A 80` |
/// | other | `6D 00` |
#[derive(Debug)]
pub struct EchoApplet {
    aid: &'static [u8],
    /// Times selected, deselected and reset, for tests to check.
    pub events: AppletEvents,
    /// The data of the last command processed.
    pub last_data: heapless::Vec<u8, { crate::CHAIN_CAPACITY }>,
}

/// What an [`EchoApplet`] has been through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppletEvents {
    /// `select` calls.
    pub selected: u32,
    /// `deselect` calls.
    pub deselected: u32,
    /// `reset` calls.
    pub resets: u32,
}

impl EchoApplet {
    /// An echo applet answering to `aid`.
    pub fn new(aid: &'static [u8]) -> Self {
        EchoApplet {
            aid,
            events: AppletEvents::default(),
            last_data: heapless::Vec::new(),
        }
    }
}

impl crate::Applet for EchoApplet {
    fn aid(&self) -> &[u8] {
        self.aid
    }

    fn select(
        &mut self,
        _ctx: &mut crate::Context<'_>,
        reply: &mut crate::Reply<'_>,
    ) -> Result<(), apdu::Status> {
        self.events.selected += 1;
        reply
            .tlv(apdu::tlv::Tag::constant(0x4F), self.aid)
            .map_err(|_| apdu::Status::NotEnoughMemory)
    }

    fn deselect(&mut self) {
        self.events.deselected += 1;
    }

    /// INS `07` echoes a secret (both directions); the rest is public.
    fn secrecy(&self, header: &apdu::Header, _data: &[u8]) -> crate::Secrecy {
        if header.ins == 0x07 {
            crate::Secrecy::SECRET
        } else {
            crate::Secrecy::PUBLIC
        }
    }

    fn reset(&mut self) {
        self.events.resets += 1;
    }

    fn process(
        &mut self,
        command: &apdu::Command<'_>,
        ctx: &mut crate::Context<'_>,
        reply: &mut crate::Reply<'_>,
    ) -> Result<(), apdu::Status> {
        use apdu::Status;
        self.last_data.clear();
        let _ = self.last_data.extend_from_slice(command.data());
        let full = |_| Status::NotEnoughMemory;
        match command.ins() {
            0x01 | 0x07 => reply.raw(command.data()).map_err(full),
            0x02 => {
                let n = usize::from(u16::from_be_bytes([command.p1(), command.p2()]));
                (0..n).try_for_each(|i| reply.raw(&[i as u8])).map_err(full)
            }
            0x03 => Err(Status::IncorrectDataField),
            // Writes the data, then fails: what it wrote must not outlive
            // the command.
            0x08 => {
                reply.raw(command.data()).map_err(full)?;
                Err(Status::IncorrectDataField)
            }
            0x04 => {
                let key =
                    crate::store::Key::new(u16::from(command.p2())).ok_or(Status::IncorrectP1P2)?;
                let op = crate::store::Op::Put(key, command.data());
                ctx.store.commit(&[op]).map_err(|_| Status::MemoryFailure)
            }
            0x05 => {
                let key =
                    crate::store::Key::new(u16::from(command.p2())).ok_or(Status::IncorrectP1P2)?;
                let mut buf = [0u8; 512];
                match ctx.store.read(key, &mut buf) {
                    Ok(Some(v)) => reply.raw(v).map_err(full),
                    Ok(None) => Err(Status::NotFound),
                    Err(_) => Err(Status::MemoryFailure),
                }
            }
            0x06 => {
                let mut r = [0u8; 8];
                ctx.rng.fill_bytes(&mut r);
                reply.raw(&r).map_err(full)
            }
            _ => Err(Status::InstructionNotSupported),
        }
    }
}
