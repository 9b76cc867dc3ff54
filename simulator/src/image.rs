//! Card images: a card's flash in a file, behind a small header.
//!
//! ```text
//! 0     magic "S9CARD-IMAGE" + 4 zero bytes
//! 16    format version u16 LE (1)
//! 18    flags u16 LE (bit 0: virtual card)
//! 20    serial u32 LE (the serial the card takes at its factory state)
//! 24    page size u32 LE (4096)     28  page count u32 LE
//! 32    device key, 32 bytes (the simulated MCU's unique key)
//! 64    CRC-32C of bytes 0..64, u32 LE
//! 4096  the flash, page count × page size bytes
//! ```
//!
//! Every program and erase is written to the file before the card answers,
//! so killing the simulator at any instant is a power cut: the next `serve`
//! mounts the flash and the store recovers. A file that is not an image of
//! this format is refused, never overwritten.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

const MAGIC: &[u8; 16] = b"S9CARD-IMAGE\0\0\0\0";
/// Image format version.
pub const VERSION: u16 = 1;
/// Flash page (erase unit) size.
pub const PAGE: usize = 4096;
/// Program granularity.
pub const WORD: usize = 4;
/// Pages in a new image: 128 KiB of flash.
pub const DEFAULT_PAGES: u32 = 32;
const HEADER: usize = 4096;
const FLAG_VIRTUAL: u16 = 1;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// What the image header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// A simulated card (shown as virtual to tools and the CMS).
    pub is_virtual: bool,
    /// The serial the card takes when it initialises itself.
    pub serial: u32,
    /// Flash pages.
    pub pages: u32,
    /// The device key the applet seals secrets with.
    pub device_key: [u8; 32],
}

/// Why an image cannot be used.
#[derive(Debug)]
pub enum ImageError {
    /// The file could not be read or written.
    Io(std::io::Error),
    /// The file is not an s9card image (or is damaged).
    NotAnImage(String),
    /// `init` would overwrite an existing file.
    Exists,
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageError::Io(e) => write!(f, "{e}"),
            ImageError::NotAnImage(why) => write!(f, "not an s9card card image: {why}"),
            ImageError::Exists => {
                write!(f, "the file exists already; s9card never overwrites a file")
            }
        }
    }
}

impl std::error::Error for ImageError {}

impl From<std::io::Error> for ImageError {
    fn from(e: std::io::Error) -> Self {
        ImageError::Io(e)
    }
}

impl Header {
    fn encode(&self) -> [u8; 68] {
        let mut b = [0u8; 68];
        b[..16].copy_from_slice(MAGIC);
        b[16..18].copy_from_slice(&VERSION.to_le_bytes());
        let flags = if self.is_virtual { FLAG_VIRTUAL } else { 0 };
        b[18..20].copy_from_slice(&flags.to_le_bytes());
        b[20..24].copy_from_slice(&self.serial.to_le_bytes());
        b[24..28].copy_from_slice(&(PAGE as u32).to_le_bytes());
        b[28..32].copy_from_slice(&self.pages.to_le_bytes());
        b[32..64].copy_from_slice(&self.device_key);
        let crc = CRC.checksum(&b[..64]);
        b[64..68].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8; 68]) -> Result<Header, ImageError> {
        let bad = |why: &str| Err(ImageError::NotAnImage(why.to_string()));
        if &b[..16] != MAGIC {
            return bad("wrong magic");
        }
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        if word(64) != CRC.checksum(&b[..64]) {
            return bad("header checksum mismatch");
        }
        let version = u16::from_le_bytes([b[16], b[17]]);
        if version != VERSION {
            return bad(&format!(
                "format version {version}, this s9card reads version {VERSION}"
            ));
        }
        if word(24) as usize != PAGE {
            return bad("unsupported page size");
        }
        let pages = word(28);
        if !(8..=128).contains(&pages) {
            return bad("unsupported page count");
        }
        let mut device_key = [0u8; 32];
        device_key.copy_from_slice(&b[32..64]);
        Ok(Header {
            is_virtual: u16::from_le_bytes([b[18], b[19]]) & FLAG_VIRTUAL != 0,
            serial: word(20),
            pages,
            device_key,
        })
    }
}

/// Creates a factory-fresh image (erased flash). Refuses to overwrite.
pub fn create(path: &Path, header: &Header) -> Result<(), ImageError> {
    // The header holds the device key: owner only.
    let mut file = match crate::private::create_new(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(ImageError::Exists),
        Err(e) => return Err(e.into()),
    };
    let mut head = vec![0u8; HEADER];
    head[..68].copy_from_slice(&header.encode());
    file.write_all(&head)?;
    file.write_all(&vec![0xFF; header.pages as usize * PAGE])?;
    file.sync_all()?;
    Ok(())
}

/// Opens an image: its header and its flash.
pub fn open(path: &Path, durable: bool) -> Result<(Header, FileFlash), ImageError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut head = [0u8; 68];
    file.read_exact(&mut head)
        .map_err(|_| ImageError::NotAnImage("too short".into()))?;
    let header = Header::decode(&head)?;
    let size = HEADER + header.pages as usize * PAGE;
    if file.metadata()?.len() != size as u64 {
        return Err(ImageError::NotAnImage(format!(
            "{} bytes, expected {size}",
            file.metadata()?.len()
        )));
    }
    let mut mem = vec![0u8; header.pages as usize * PAGE];
    file.read_exact_at(&mut mem, HEADER as u64)?;
    Ok((header, FileFlash { file, mem, durable }))
}

/// NOR flash kept in memory and mirrored, operation by operation, into the
/// image file.
pub struct FileFlash {
    file: File,
    mem: Vec<u8>,
    durable: bool,
}

/// A failed flash operation.
#[derive(Debug)]
pub struct FlashError(NorFlashErrorKind);

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

impl FileFlash {
    fn persist(&mut self, offset: usize, len: usize) -> Result<(), FlashError> {
        let bytes = &self.mem[offset..offset + len];
        self.file
            .write_all_at(bytes, (HEADER + offset) as u64)
            .map_err(|_| FlashError(NorFlashErrorKind::Other))?;
        if self.durable {
            self.file
                .sync_data()
                .map_err(|_| FlashError(NorFlashErrorKind::Other))?;
        }
        Ok(())
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<usize, FlashError> {
        let offset = offset as usize;
        if !offset.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(FlashError(NorFlashErrorKind::NotAligned));
        }
        if offset + len > self.mem.len() {
            return Err(FlashError(NorFlashErrorKind::OutOfBounds));
        }
        Ok(offset)
    }
}

impl ErrorType for FileFlash {
    type Error = FlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let at = self.check(offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&self.mem[at..at + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let at = self.check(from, (to.saturating_sub(from)) as usize, PAGE)?;
        let len = (to - from) as usize;
        self.mem[at..at + len].fill(0xFF);
        self.persist(at, len)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let at = self.check(offset, bytes.len(), WORD)?;
        // NOR: programming only clears bits.
        for (m, b) in self.mem[at..at + bytes.len()].iter_mut().zip(bytes) {
            *m &= b;
        }
        self.persist(at, bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            is_virtual: true,
            serial: 912_345_678,
            pages: 8,
            device_key: [3; 32],
        }
    }

    #[test]
    fn create_open_write_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.s9img");
        create(&path, &header()).unwrap();
        let (h, mut flash) = open(&path, false).unwrap();
        assert_eq!(h, header());
        flash.write(8, &[1, 2, 3, 4]).unwrap();
        flash.erase(4096, 8192).unwrap();
        drop(flash);
        let (_, mut again) = open(&path, false).unwrap();
        let mut buf = [0u8; 4];
        again.read(8, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
        assert_eq!(
            again.write(2, &[0; 4]).unwrap_err().kind(),
            NorFlashErrorKind::NotAligned
        );
    }

    #[test]
    fn never_overwrites_and_refuses_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.s9img");
        create(&path, &header()).unwrap();
        assert!(matches!(create(&path, &header()), Err(ImageError::Exists)));
        let foreign = dir.path().join("notes.txt");
        std::fs::write(&foreign, b"hello, this is not a card").unwrap();
        assert!(matches!(
            open(&foreign, false),
            Err(ImageError::NotAnImage(_))
        ));
        assert_eq!(
            std::fs::read(&foreign).unwrap(),
            b"hello, this is not a card"
        );
        // A damaged header is refused too.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 1;
        let damaged = dir.path().join("damaged.s9img");
        std::fs::write(&damaged, &bytes).unwrap();
        let err = open(&damaged, false).err().unwrap();
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
