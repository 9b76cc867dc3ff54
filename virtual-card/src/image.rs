//! Card images: a card's flash in a file, behind its factory record.
//!
//! The layout is card-os's [`card_os::image`]: a 4 KiB page with the
//! factory record (serial, device key, randomness seed), then the store's
//! pages. The firmware's flash region is the same bytes, zero-padded to
//! QEMU's 16 MiB (see [`crate::firmware`]).
//!
//! Every program and erase is written to the file before the card answers,
//! so killing the simulator at any instant is a power cut: the next `serve`
//! mounts the flash and the store recovers. A file that is not an image of
//! this format is refused, never overwritten.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use card_os::image::{
    FlashError, HEADER_LEN as HEADER, KEY_STORE_LEN, PAGE, RECORD_LEN, WORD, check_range,
};
pub use card_os::image::{Header, HeaderError};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

/// Image format version.
pub const VERSION: u16 = card_os::image::VERSION;
/// The size of a firmware flash file: QEMU's mps2 RAM region, which must
/// be exactly this. It is the image's bytes zero-padded, so the host opens
/// one as it opens an image.
pub const FIRMWARE_FLASH_LEN: u64 = 16 * 1024 * 1024;
/// Pages in a new image: 128 KiB of flash.
pub const DEFAULT_PAGES: u32 = 32;

/// Why an image cannot be used.
#[derive(Debug)]
pub enum ImageError {
    /// The file could not be read or written.
    Io(std::io::Error),
    /// The file is not an s9card image (or is damaged).
    NotAnImage(String),
    /// `init` would overwrite an existing file.
    Exists,
    /// Another process (or another opening in this one) has the card.
    InUse,
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageError::Io(e) => write!(f, "{e}"),
            ImageError::NotAnImage(why) => write!(f, "not an s9card card image: {why}"),
            ImageError::Exists => {
                write!(f, "the file exists already; s9card never overwrites a file")
            }
            ImageError::InUse => write!(
                f,
                "the card is in use: another s9card serves or writes it (one card, one process; \
                 stop that one first)"
            ),
        }
    }
}

impl std::error::Error for ImageError {}

impl From<std::io::Error> for ImageError {
    fn from(e: std::io::Error) -> Self {
        ImageError::Io(e)
    }
}

impl From<HeaderError> for ImageError {
    fn from(e: HeaderError) -> Self {
        ImageError::NotAnImage(e.to_string())
    }
}

/// Takes the exclusive lock on a card's file (an image or a firmware flash
/// file) for as long as `file` is open, or says who has it.
///
/// A process that forks (any thread of it starting a program) shares its
/// open files with the child until the child's `exec` closes them, so a
/// lock can look taken for that moment: it is tried for a little while.
pub fn lock(file: &File) -> Result<(), ImageError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(ImageError::InUse),
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

/// Reads and checks an image's factory record.
pub fn read_header(file: &mut File) -> Result<Header, ImageError> {
    Ok(Header::decode(&read_record(file)?)?)
}

fn read_record(file: &mut File) -> Result<[u8; RECORD_LEN], ImageError> {
    let mut head = [0u8; RECORD_LEN];
    file.read_exact(&mut head)
        .map_err(|_| ImageError::NotAnImage("too short".into()))?;
    Ok(head)
}

/// Where a firmware flash file's key store is: beside it, `FLASH.keys`.
/// It holds the device key and the randomness seed, which the flash file
/// does not ([`card_os::image`]'s key store).
pub fn key_store_path(flash: &Path) -> PathBuf {
    let mut name = flash.as_os_str().to_owned();
    name.push(".keys");
    PathBuf::from(name)
}

/// Reads and checks the factory record of the card file at `path` (an
/// image, or a firmware flash file); a record whose secrets are in the key
/// store is completed from the key store file beside it.
pub fn read_header_at(path: &Path, file: &mut File) -> Result<Header, ImageError> {
    let head = read_record(file)?;
    match Header::decode(&head) {
        Err(HeaderError::KeysApart) => {}
        other => return Ok(other?),
    }
    let keys_path = key_store_path(path);
    let bytes = zeroize::Zeroizing::new(std::fs::read(&keys_path).map_err(|e| {
        ImageError::NotAnImage(format!(
            "its device key is in its key store, and {} cannot be read: {e}",
            keys_path.display()
        ))
    })?);
    let mut keys = zeroize::Zeroizing::new([0u8; KEY_STORE_LEN]);
    if bytes.len() != KEY_STORE_LEN {
        return Err(ImageError::NotAnImage(format!(
            "{} is not a key store",
            keys_path.display()
        )));
    }
    keys.copy_from_slice(&bytes);
    Ok(Header::decode_apart(&head, &keys)?)
}

/// Creates a factory-fresh image (erased flash). Refuses to overwrite.
pub fn create(path: &Path, header: &Header) -> Result<(), ImageError> {
    // The header holds the device key: owner only.
    let mut file = match private_files::create_new(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(ImageError::Exists),
        Err(e) => return Err(e.into()),
    };
    let mut head = vec![0u8; HEADER];
    head[..RECORD_LEN].copy_from_slice(&header.encode());
    file.write_all(&head)?;
    file.write_all(&vec![0xFF; header.pages as usize * PAGE])?;
    file.sync_all()?;
    Ok(())
}

/// Opens an image: its header and its flash, and the card to this opening
/// alone. Two processes serving one image would each keep their own
/// retry counters in memory and write over each other: a PIN would get
/// twice its tries. The exclusive lock lasts as long as the flash.
pub fn open(path: &Path, durable: bool) -> Result<(Header, FileFlash), ImageError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    lock(&file)?;
    let header = read_header_at(path, &mut file)?;
    let size = header.flash_len();
    // A firmware flash file is the same bytes, zero-padded: the host opens
    // it as it opens an image.
    let len = file.metadata()?.len();
    if len != size as u64 && len != FIRMWARE_FLASH_LEN {
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
        check_range(offset, len, align, self.mem.len())
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
    use embedded_storage::nor_flash::NorFlashError;

    fn header() -> Header {
        Header {
            applet: applet::Profile::Series9.flags(),
            is_virtual: true,
            serial: 912_345_678,
            pages: 8,
            device_key: [3; 32],
            seed: Some([4; 32]),
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
