//! The card's flash as a whole: a factory record, then the store.
//!
//! The same layout is a card image on the host (`s9card init` writes one)
//! and the firmware's flash region in QEMU, so a card personalised on the
//! host boots unchanged as firmware and back.
//!
//! ```text
//! 0     magic "S9CARD-IMAGE" + 4 zero bytes
//! 16    format version u16 LE (1 or 2)
//! 18    flags u16 LE (bit 0: virtual card; bit 3: the device key and
//!       seed are in the key store, and zero here; every other bit is the
//!       applets', which the OS keeps and never reads: [`AppletFlags`])
//! 20    serial u32 LE (the serial the card takes at its factory state)
//! 24    page size u32 LE (4096)     28  page count u32 LE
//! 32    device key, 32 bytes (the MCU's unique key)
//! 64    version 1: CRC-32C of bytes 0..64, u32 LE
//!       version 2: the randomness seed, 32 bytes; CRC-32C of 0..96 at 96
//! 4096  the store's flash, page count × page size bytes
//! ```
//!
//! The factory record is written once, when the card is made, and never by
//! the card: on a real card it is the MCU's provisioning (the device key in
//! fuses, the seed replaced by a TRNG). Version 1 records predate the seed;
//! the host simulator draws its randomness from the OS and needs none.
//!
//! ## The key store
//!
//! The device key seals every secret in the store, so a flash that holds
//! it beside the records holds everything: a dump opens. A card image on
//! the host is such a flash (the host has nowhere else to keep it). The
//! firmware's flash is not: its record has bit 3 set and zeros where the
//! key and seed were, and they are in the MCU's key store (OTP or fuses on
//! a chip, a region QEMU fills from a file of its own), which the firmware
//! reads once at boot and a dump of the flash does not contain
//! ([`Header::split`], [`Header::decode_apart`]):
//!
//! ```text
//! 0     magic "S9CARD-KEYSTORE\0"
//! 16    device key, 32 bytes      48  randomness seed, 32 bytes
//! 80    CRC-32C of bytes 0..80, u32 LE
//! ```

use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind};
use zeroize::Zeroize;

use crate::entropy::Seed;

const MAGIC: &[u8; 16] = b"S9CARD-IMAGE\0\0\0\0";
/// The version new records are written in.
pub const VERSION: u16 = 2;
/// Where the store starts: the factory record has a page of its own.
pub const HEADER_LEN: usize = 4096;
/// Flash page (erase unit) size.
pub const PAGE: usize = 4096;
/// Program granularity.
pub const WORD: usize = 4;
/// The bytes of the record that are read (the rest of its page is zero).
pub const RECORD_LEN: usize = 100;
/// Store pages an image may have.
pub const PAGES: core::ops::RangeInclusive<u32> = 8..=128;
const FLAG_VIRTUAL: u16 = 1;
const FLAG_KEYS_APART: u16 = 1 << 3;
const KEY_STORE_MAGIC: &[u8; 16] = b"S9CARD-KEYSTORE\0";
/// The key store record's length.
pub const KEY_STORE_LEN: usize = 84;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// The factory record's flag bits that belong to the applets: every bit
/// but the OS's own (virtual card, keys apart). The OS stores them when a
/// card is made and hands them to the applets at boot; what they mean (the
/// PIV applet reads a profile from them) is the applets' business, so the
/// OS names no applet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AppletFlags(u16);

impl AppletFlags {
    /// The bits applets may use.
    pub const MASK: u16 = !(FLAG_VIRTUAL | FLAG_KEYS_APART);

    /// Flags from their bits; `None` if a bit of the OS's own is set.
    pub const fn new(bits: u16) -> Option<AppletFlags> {
        if bits & !Self::MASK == 0 {
            Some(AppletFlags(bits))
        } else {
            None
        }
    }

    /// Flags from the applets' bits of `bits`, the OS's dropped.
    pub const fn masked(bits: u16) -> AppletFlags {
        AppletFlags(bits & Self::MASK)
    }

    /// The bits.
    pub const fn bits(self) -> u16 {
        self.0
    }
}

/// What the factory record says. Its `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq, Zeroize)]
#[zeroize(drop)]
pub struct Header {
    /// A simulated card (shown as virtual to tools and the CMS).
    pub is_virtual: bool,
    /// The applets' flags, as the card was made.
    #[zeroize(skip)]
    pub applet: AppletFlags,
    /// The serial the card takes when it initialises itself.
    pub serial: u32,
    /// Store pages.
    pub pages: u32,
    /// The device key the applet seals secrets with.
    pub device_key: [u8; 32],
    /// The seed the randomness ratchet starts from (version 2).
    pub seed: Option<[u8; 32]>,
}

impl core::fmt::Debug for Header {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Header")
            .field("is_virtual", &self.is_virtual)
            .field("applet", &self.applet)
            .field("serial", &self.serial)
            .field("pages", &self.pages)
            .field("seed", &self.seed.map(|_| ".."))
            .finish_non_exhaustive()
    }
}

/// Why a factory record is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Not an s9card record (a blank or foreign flash).
    Magic,
    /// The checksum does not match: the record is damaged.
    Checksum,
    /// A version this code does not read.
    Version(u16),
    /// A page size other than [`PAGE`].
    PageSize,
    /// A page count outside [`PAGES`].
    PageCount,
    /// Flags that contradict the record: keys apart in a version 1
    /// record, or a record that keeps its keys read as one that does not.
    Flags,
    /// The device key and seed are in the key store, which was not read.
    KeysApart,
    /// The key store record is not one, or is damaged.
    KeyStore,
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeaderError::Magic => f.write_str("wrong magic"),
            HeaderError::Checksum => f.write_str("header checksum mismatch"),
            HeaderError::Version(v) => {
                write!(f, "format version {v}, this s9card reads versions 1 and 2")
            }
            HeaderError::PageSize => f.write_str("unsupported page size"),
            HeaderError::PageCount => f.write_str("unsupported page count"),
            HeaderError::Flags => f.write_str("contradictory flags"),
            HeaderError::KeysApart => {
                f.write_str("the device key is in the card's key store, not in this flash")
            }
            HeaderError::KeyStore => f.write_str("not a key store record, or a damaged one"),
        }
    }
}

/// A flash operation a driver of this layout refuses (the host's image
/// file, the firmware's region): misaligned, out of bounds, or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashError(pub NorFlashErrorKind);

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

/// Checks an operation on a store of `capacity` bytes: `offset` and `len`
/// multiples of `align`, the whole inside. Returns the offset.
pub fn check_range(
    offset: u32,
    len: usize,
    align: usize,
    capacity: usize,
) -> Result<usize, FlashError> {
    let offset = offset as usize;
    if !offset.is_multiple_of(align) || !len.is_multiple_of(align) {
        return Err(FlashError(NorFlashErrorKind::NotAligned));
    }
    if offset.checked_add(len).is_none_or(|end| end > capacity) {
        return Err(FlashError(NorFlashErrorKind::OutOfBounds));
    }
    Ok(offset)
}

fn word(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(src) = b.get(at..at + 4) {
        w.copy_from_slice(src);
    }
    u32::from_le_bytes(w)
}

fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = b.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

impl Header {
    /// The store's length in bytes.
    pub const fn store_len(&self) -> usize {
        self.pages as usize * PAGE
    }

    /// The whole flash the record describes: its page and the store.
    pub const fn flash_len(&self) -> usize {
        HEADER_LEN + self.store_len()
    }

    /// The seed, for the ratchet.
    pub fn ratchet_seed(&self) -> Option<Seed> {
        self.seed.map(Seed)
    }

    /// The record's bytes (the rest of its page is zero). Without a seed
    /// it is written as version 1, which older readers take.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        put(&mut b, 0, MAGIC);
        let version: u16 = if self.seed.is_some() { 2 } else { 1 };
        put(&mut b, 16, &version.to_le_bytes());
        let virtual_flag = if self.is_virtual { FLAG_VIRTUAL } else { 0 };
        let flags = virtual_flag | self.applet.bits();
        put(&mut b, 18, &flags.to_le_bytes());
        put(&mut b, 20, &self.serial.to_le_bytes());
        put(&mut b, 24, &(PAGE as u32).to_le_bytes());
        put(&mut b, 28, &self.pages.to_le_bytes());
        put(&mut b, 32, &self.device_key);
        let end = match &self.seed {
            Some(seed) => {
                put(&mut b, 64, seed);
                96
            }
            None => 64,
        };
        let crc = CRC.checksum(b.get(..end).unwrap_or_default());
        put(&mut b, end, &crc.to_le_bytes());
        b
    }

    /// The record for a flash whose key store holds the secrets, and that
    /// key store's record. Only a record with a seed (version 2) splits:
    /// the firmware that keeps its key apart has no other randomness.
    pub fn split(&self) -> Option<([u8; RECORD_LEN], [u8; KEY_STORE_LEN])> {
        let seed = self.seed?;
        let mut record = [0u8; RECORD_LEN];
        put(&mut record, 0, MAGIC);
        put(&mut record, 16, &2u16.to_le_bytes());
        let virtual_flag = if self.is_virtual { FLAG_VIRTUAL } else { 0 };
        let flags = virtual_flag | self.applet.bits() | FLAG_KEYS_APART;
        put(&mut record, 18, &flags.to_le_bytes());
        put(&mut record, 20, &self.serial.to_le_bytes());
        put(&mut record, 24, &(PAGE as u32).to_le_bytes());
        put(&mut record, 28, &self.pages.to_le_bytes());
        let crc = CRC.checksum(record.get(..96).unwrap_or_default());
        put(&mut record, 96, &crc.to_le_bytes());

        let mut keys = [0u8; KEY_STORE_LEN];
        put(&mut keys, 0, KEY_STORE_MAGIC);
        put(&mut keys, 16, &self.device_key);
        put(&mut keys, 48, &seed);
        let crc = CRC.checksum(keys.get(..80).unwrap_or_default());
        put(&mut keys, 80, &crc.to_le_bytes());
        Some((record, keys))
    }

    /// Reads a record whose secrets are in the key store, with the key
    /// store's record.
    pub fn decode_apart(
        b: &[u8; RECORD_LEN],
        keys: &[u8; KEY_STORE_LEN],
    ) -> Result<Header, HeaderError> {
        let mut header = Header::decode_any(b)?;
        if !header.keys_apart {
            return Err(HeaderError::Flags);
        }
        if keys.get(..16) != Some(KEY_STORE_MAGIC.as_slice())
            || word(keys, 80) != CRC.checksum(keys.get(..80).unwrap_or_default())
        {
            return Err(HeaderError::KeyStore);
        }
        header.fields.device_key.copy_from_slice(&keys[16..48]);
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&keys[48..80]);
        header.fields.seed = Some(seed);
        Ok(header.fields)
    }

    /// Reads a record that holds its own secrets; one whose secrets are in
    /// the key store is [`HeaderError::KeysApart`].
    pub fn decode(b: &[u8; RECORD_LEN]) -> Result<Header, HeaderError> {
        let header = Header::decode_any(b)?;
        if header.keys_apart {
            return Err(HeaderError::KeysApart);
        }
        Ok(header.fields)
    }

    fn decode_any(b: &[u8; RECORD_LEN]) -> Result<Decoded, HeaderError> {
        if b.get(..16) != Some(MAGIC.as_slice()) {
            return Err(HeaderError::Magic);
        }
        let version = u16::from_le_bytes([b[16], b[17]]);
        let end = match version {
            1 => 64,
            2 => 96,
            v => {
                // A damaged version field is damage, not a future format.
                let at_v1 = word(b, 64) == CRC.checksum(b.get(..64).unwrap_or_default());
                let at_v2 = word(b, 96) == CRC.checksum(b.get(..96).unwrap_or_default());
                return Err(if at_v1 || at_v2 {
                    HeaderError::Version(v)
                } else {
                    HeaderError::Checksum
                });
            }
        };
        if word(b, end) != CRC.checksum(b.get(..end).unwrap_or_default()) {
            return Err(HeaderError::Checksum);
        }
        if word(b, 24) as usize != PAGE {
            return Err(HeaderError::PageSize);
        }
        let pages = word(b, 28);
        if !PAGES.contains(&pages) {
            return Err(HeaderError::PageCount);
        }
        let mut device_key = [0u8; 32];
        device_key.copy_from_slice(&b[32..64]);
        let seed = (version == 2).then(|| {
            let mut s = [0u8; 32];
            s.copy_from_slice(&b[64..96]);
            s
        });
        let flags = u16::from_le_bytes([b[18], b[19]]);
        let keys_apart = flags & FLAG_KEYS_APART != 0;
        if keys_apart && version != 2 {
            return Err(HeaderError::Flags);
        }
        Ok(Decoded {
            fields: Header {
                is_virtual: flags & FLAG_VIRTUAL != 0,
                applet: AppletFlags::masked(flags),
                serial: word(b, 20),
                pages,
                device_key,
                seed,
            },
            keys_apart,
        })
    }
}

/// A record as read, before its secrets are known to be in it.
struct Decoded {
    fields: Header,
    keys_apart: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seed: Option<[u8; 32]>) -> Header {
        Header {
            is_virtual: true,
            applet: AppletFlags::default(),
            serial: 912_345_678,
            pages: 32,
            device_key: [3; 32],
            seed,
        }
    }

    #[test]
    fn both_versions_round_trip() {
        for h in [header(None), header(Some([5; 32]))] {
            let bytes = h.encode();
            assert_eq!(Header::decode(&bytes), Ok(h.clone()));
            let read = if h.seed.is_some() { 100 } else { 68 };
            for i in 0..read {
                let mut damaged = bytes;
                damaged[i] ^= 0x10;
                assert!(Header::decode(&damaged).is_err(), "byte {i}");
            }
        }
        assert_eq!(header(None).encode()[16], 1);
        assert_eq!(Header::decode(&[0; RECORD_LEN]), Err(HeaderError::Magic));
    }

    #[test]
    fn the_applets_flags_round_trip_and_never_touch_the_oss() {
        for bits in [0, 0b10, 0b110, 0b100, 0xFFF0, AppletFlags::MASK] {
            let h = Header {
                applet: AppletFlags::new(bits).unwrap(),
                ..header(Some([5; 32]))
            };
            let read = Header::decode(&h.encode()).unwrap();
            assert_eq!(read.applet.bits(), bits);
            assert!(read.is_virtual);
            let (record, keys) = h.split().unwrap();
            assert_eq!(
                Header::decode_apart(&record, &keys).unwrap().applet.bits(),
                bits
            );
        }
        assert_eq!(AppletFlags::new(FLAG_VIRTUAL), None);
        assert_eq!(AppletFlags::new(FLAG_KEYS_APART), None);
    }

    #[test]
    fn debug_shows_no_secret() {
        use core::fmt::Write;
        let mut shown = heapless::String::<256>::new();
        write!(shown, "{:?}", header(Some([0xAB; 32]))).unwrap();
        assert!(!shown.contains("171") && !shown.contains("3, 3"), "{shown}");
        assert!(shown.contains("912345678"), "{shown}");
    }

    #[test]
    fn a_split_record_holds_no_secret_and_needs_its_key_store() {
        let h = header(Some([0xA5; 32]));
        let (record, keys) = h.split().unwrap();
        // Nothing of the key or the seed in the flash's record.
        assert!(!record.windows(4).any(|w| w == [3; 4] || w == [0xA5; 4]));
        assert_eq!(Header::decode(&record), Err(HeaderError::KeysApart));
        assert_eq!(Header::decode_apart(&record, &keys), Ok(h.clone()));
        // A damaged key store, or a record that keeps its own keys.
        for i in 0..KEY_STORE_LEN {
            let mut damaged = keys;
            damaged[i] ^= 0x01;
            assert_eq!(
                Header::decode_apart(&record, &damaged),
                Err(HeaderError::KeyStore),
                "byte {i}"
            );
        }
        assert_eq!(
            Header::decode_apart(&h.encode(), &keys),
            Err(HeaderError::Flags)
        );
        // No seed, no split.
        assert!(header(None).split().is_none());
    }
}
