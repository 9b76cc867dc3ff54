//! The on-flash format, version 1: page headers and entry headers.
//!
//! ```text
//! page   := page-header entry* (FF…)
//! page-header (16 bytes, padded with FF to the flash's alignment)
//!   0  magic "S9ST"     4  version u8 = 1   5  FF FF FF
//!   8  sequence u32 LE  12 checksum u32 LE over bytes 0..12
//! entry  := entry-header value (padded with FF to the alignment)
//! entry-header (16 bytes, padded likewise)
//!   0  key u16 LE (never FFFF, so a written header never reads as erased)
//!   2  value length u16 LE
//!   4  transaction u32 LE
//!   8  count u16 LE: 0 inside a transaction; on its last entry, the number
//!      of entries the transaction has
//!   10 kind u16 LE: 0 put, 1 delete, 2 clear
//!   12 checksum u32 LE over bytes 0..12 and the value
//! ```
//! Checksums are CRC-32C, moved off `00000000` and `FFFFFFFF` so that neither
//! zeroed nor erased flash can pass for a record. Multi-byte fields are
//! little-endian, the byte order of the Cortex-M the card is built for.

use crc::{CRC_32_ISCSI, Crc, Table};

/// Format version written in every page header. Bump it only with a
/// migration and a new golden file (see `tests/golden.rs`).
pub const VERSION: u8 = 1;
const MAGIC: [u8; 4] = *b"S9ST";
/// Bytes of a page or entry header before alignment padding.
pub const HEADER_LEN: usize = 16;
/// The largest alignment the format supports (write or read size).
pub const MAX_ALIGN: usize = 32;

/// A byte at a time, from one 1 KiB table. Mount checksums every entry in
/// the log on the way to the ATR, and slice-by-16 would do that about six
/// times faster, but its 16 KiB of tables are an eighth of a Series 9
/// chip's flash; a byte costs about eight instructions, so even a full
/// 64 KiB log is half a million (about 10 ms at 48 MHz) once per boot.
const CRC: Crc<u32, Table<1>> = Crc::<u32, Table<1>>::new(&CRC_32_ISCSI);

/// A checksum that can be neither erased nor zeroed flash.
fn sealed(raw: u32) -> u32 {
    match raw {
        0 => 0x5A5A_5A5A,
        u32::MAX => 0xA5A5_A5A5,
        other => other,
    }
}

/// What an entry does to its key when its transaction commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sets the key to the entry's value.
    Put,
    /// Removes the key.
    Delete,
    /// Removes every user key (factory reset in one record).
    Clear,
}

impl Kind {
    fn code(self) -> u16 {
        match self {
            Kind::Put => 0,
            Kind::Delete => 1,
            Kind::Clear => 2,
        }
    }

    fn from_code(code: u16) -> Option<Kind> {
        match code {
            0 => Some(Kind::Put),
            1 => Some(Kind::Delete),
            2 => Some(Kind::Clear),
            _ => None,
        }
    }
}

/// A checksum being computed.
pub type Digest = crc::Digest<'static, u32, Table<1>>;

/// A decoded entry header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    pub key: u16,
    pub len: u16,
    pub tx: u32,
    pub count: u16,
    pub kind: Kind,
    pub checksum: u32,
}

impl EntryHeader {
    /// A header for `value`, with its checksum.
    pub fn new(key: u16, kind: Kind, value: &[u8], tx: u32, count: u16) -> Self {
        let len = value.len() as u16;
        let mut header = EntryHeader {
            key,
            len,
            tx,
            count,
            kind,
            checksum: 0,
        };
        let mut digest = CRC.digest();
        digest.update(&header.fields());
        digest.update(value);
        header.checksum = sealed(digest.finalize());
        header
    }

    /// The 12 bytes the checksum covers, ahead of the value.
    fn fields(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        let (key, rest) = b.split_at_mut(2);
        key.copy_from_slice(&self.key.to_le_bytes());
        let (len, rest) = rest.split_at_mut(2);
        len.copy_from_slice(&self.len.to_le_bytes());
        let (tx, rest) = rest.split_at_mut(4);
        tx.copy_from_slice(&self.tx.to_le_bytes());
        let (count, kind) = rest.split_at_mut(2);
        count.copy_from_slice(&self.count.to_le_bytes());
        kind.copy_from_slice(&self.kind.code().to_le_bytes());
        b
    }

    /// The 16 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        let (fields, sum) = b.split_at_mut(12);
        fields.copy_from_slice(&self.fields());
        sum.copy_from_slice(&self.checksum.to_le_bytes());
        b
    }

    /// Decodes header bytes; `None` if they cannot be a header we wrote.
    /// The value's checksum is verified separately, as it needs a flash read.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Option<Self> {
        let [
            k0,
            k1,
            l0,
            l1,
            t0,
            t1,
            t2,
            t3,
            c0,
            c1,
            d0,
            d1,
            s0,
            s1,
            s2,
            s3,
        ] = *b;
        let key = u16::from_le_bytes([k0, k1]);
        if key == u16::MAX {
            return None;
        }
        Some(EntryHeader {
            key,
            len: u16::from_le_bytes([l0, l1]),
            tx: u32::from_le_bytes([t0, t1, t2, t3]),
            count: u16::from_le_bytes([c0, c1]),
            kind: Kind::from_code(u16::from_le_bytes([d0, d1]))?,
            checksum: u32::from_le_bytes([s0, s1, s2, s3]),
        })
    }

    /// Starts the checksum of a header read back from flash; the caller feeds
    /// the value and compares with [`EntryHeader::checksum`].
    pub fn digest(&self) -> Digest {
        let mut digest = CRC.digest();
        digest.update(&self.fields());
        digest
    }

    /// This header with the checksum a finished digest gives.
    pub fn new_with_digest(mut header: EntryHeader, digest: Digest) -> Self {
        header.checksum = sealed(digest.finalize());
        header
    }

    /// Finishes a checksum begun with [`EntryHeader::digest`].
    pub fn matches(&self, digest: Digest) -> bool {
        sealed(digest.finalize()) == self.checksum
    }
}

/// Encodes a page header for sequence number `seq`.
pub fn encode_page_header(seq: u32) -> [u8; HEADER_LEN] {
    let mut b = [0xFFu8; HEADER_LEN];
    let (magic, rest) = b.split_at_mut(4);
    magic.copy_from_slice(&MAGIC);
    let (version, rest) = rest.split_at_mut(1);
    version.copy_from_slice(&[VERSION]);
    let (_, rest) = rest.split_at_mut(3);
    let (sequence, _) = rest.split_at_mut(4);
    sequence.copy_from_slice(&seq.to_le_bytes());
    let checksum = sealed(CRC.checksum(b.get(..12).unwrap_or_default()));
    if let Some(sum) = b.get_mut(12..16) {
        sum.copy_from_slice(&checksum.to_le_bytes());
    }
    b
}

/// What a page's first bytes say about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageHeader {
    /// All `FF`: the page may be free (its body still needs a blank check).
    Erased,
    /// A valid header of this format with its sequence number.
    Valid(u32),
    /// Anything else: a torn header, another format, or foreign data.
    Invalid,
}

/// Classifies the header bytes of a page.
pub fn decode_page_header(b: &[u8; HEADER_LEN]) -> PageHeader {
    if b.iter().all(|&x| x == 0xFF) {
        return PageHeader::Erased;
    }
    let [
        m0,
        m1,
        m2,
        m3,
        version,
        _,
        _,
        _,
        q0,
        q1,
        q2,
        q3,
        s0,
        s1,
        s2,
        s3,
    ] = *b;
    let checksum = u32::from_le_bytes([s0, s1, s2, s3]);
    let expected = sealed(CRC.checksum(b.get(..12).unwrap_or_default()));
    if [m0, m1, m2, m3] != MAGIC || version != VERSION || checksum != expected {
        return PageHeader::Invalid;
    }
    PageHeader::Valid(u32::from_le_bytes([q0, q1, q2, q3]))
}

/// `n` rounded up to a multiple of `align` (a power of two).
pub const fn align_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}
