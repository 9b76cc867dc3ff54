//! The firmware card: the same card OS and applet as Cortex-M4 firmware
//! under QEMU (`firmware/`), its flash files, and the proxy that puts it
//! behind a vpcd reader like any simulated card.
//!
//! A firmware flash file is a card image's bytes (factory record, then the
//! store) zero-padded to the 16 MiB QEMU maps at `0x2100_0000`, but for the
//! device key and the randomness seed: those are in the card's key store,
//! a file of their own beside it (`FLASH.keys`, [`image::key_store_path`])
//! that QEMU loads into the region the firmware reads them from at boot,
//! as an MCU keeps its key in OTP. A dump of the flash opens nothing. The
//! two convert into each other, the store unchanged, so a card personalised
//! on the host boots as firmware and back.
//!
//! The proxy speaks card-os's annotated framing to the firmware's UART:
//! each frame the firmware sends carries the card's secrecy verdict, which
//! the trace obeys, and which never reaches vpcd. Killing QEMU is a power
//! cut: the proxy reports the card gone, and the next frame boots it again.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use card_os::ResponseApdu;
use card_os::image::{HEADER_LEN, Header, RECORD_LEN};
use card_os::link::{self, Body, Frame, Meta, Outcome, Respond};

use crate::link::StreamLink;

use crate::Entropy;
use crate::image::{self, FIRMWARE_FLASH_LEN, ImageError};

/// Reads a firmware flash file's factory record.
pub fn flash_header(flash: &Path) -> Result<Header, ImageError> {
    let mut file = File::open(flash)?;
    let len = file.metadata()?.len();
    if len != FIRMWARE_FLASH_LEN {
        return Err(ImageError::NotAnImage(format!(
            "{len} bytes: a firmware flash file is {FIRMWARE_FLASH_LEN} (convert a card image with `s9card image to-firmware`)"
        )));
    }
    image::read_header_at(flash, &mut file)
}

/// Writes `flash`, a firmware flash file holding the card in `image`, and
/// its key store beside it. A version 1 image gets a randomness seed (from
/// the OS) on the way: the firmware has no other source of randomness.
pub fn to_firmware(image: &Path, flash: &Path) -> Result<Header, ImageError> {
    let mut file = File::open(image)?;
    let mut header = image::read_header(&mut file)?;
    let mut bytes = vec![0u8; header.flash_len()];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|_| ImageError::NotAnImage("shorter than its header says".into()))?;
    if header.seed.is_none() {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| ImageError::Io(io::Error::other(format!("no OS randomness: {e}"))))?;
        header.seed = Some(seed);
    }
    let (record, keys) = header
        .split()
        .ok_or_else(|| ImageError::NotAnImage("no randomness seed".into()))?;
    let keys = zeroize::Zeroizing::new(keys);
    bytes[..RECORD_LEN].copy_from_slice(&record);
    // Owner only (the store's sealed records are still the card's), and
    // never overwritten: neither file.
    let exists = |e: io::Error| match e.kind() {
        io::ErrorKind::AlreadyExists => ImageError::Exists,
        _ => ImageError::Io(e),
    };
    let key_store = image::key_store_path(flash);
    let mut out = private_files::create_new(flash).map_err(exists)?;
    let written = (|| {
        out.write_all(&bytes)?;
        // The rest reads as zeros without taking disk space.
        out.set_len(FIRMWARE_FLASH_LEN)?;
        out.sync_all()?;
        private_files::write_new(&key_store, &*keys).map_err(exists)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(flash);
    }
    written?;
    Ok(header)
}

/// Writes `image`, a card image holding the card in the firmware flash
/// file `flash` and its key store: an image keeps its device key in its
/// record, as the host has nowhere else to keep it.
pub fn from_firmware(flash: &Path, image: &Path) -> Result<Header, ImageError> {
    let header = flash_header(flash)?;
    let mut bytes = vec![0u8; header.flash_len()];
    File::open(flash)?.read_exact_at(&mut bytes, 0)?;
    bytes[..RECORD_LEN].copy_from_slice(&header.encode());
    // Only the record itself: the rest of its page is zero in an image.
    bytes[RECORD_LEN..HEADER_LEN].fill(0);
    private_files::write_new(image, &bytes).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => ImageError::Exists,
        _ => ImageError::Io(e),
    })?;
    Ok(header)
}

/// Makes a factory-fresh card straight into a firmware flash file.
pub fn init(flash: &Path, make: crate::Make, entropy: Entropy) -> Result<Header, ImageError> {
    // The image is a step on the way, beside the flash file and gone after.
    let name = flash.file_name().map(|n| n.to_string_lossy().into_owned());
    let image = flash.with_file_name(format!(
        ".{}.{}.s9img",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let made = crate::init(&image, make, entropy).and_then(|()| to_firmware(&image, flash));
    let _ = std::fs::remove_file(&image);
    made
}

/// How to run the firmware.
#[derive(Clone, Debug)]
pub struct Firmware {
    /// The firmware ELF (`firmware/target/.../s9card-firmware`).
    pub elf: PathBuf,
    /// The card's flash file.
    pub flash: PathBuf,
    /// The emulator.
    pub qemu: PathBuf,
    /// Run with `-icount shift=0`: one instruction per nanosecond of
    /// virtual time, so the firmware's figures repeat exactly. Slower.
    pub icount: bool,
    /// How long a command may take before the card counts as dead (an
    /// RSA-4096 key generation takes the longest).
    pub timeout: Duration,
}

impl Firmware {
    /// The firmware at `elf` on the flash file `flash`, with `qemu-system-arm`
    /// from the `PATH`.
    pub fn new(elf: PathBuf, flash: PathBuf) -> Firmware {
        Firmware {
            elf,
            flash,
            qemu: PathBuf::from("qemu-system-arm"),
            icount: false,
            timeout: Duration::from_secs(300),
        }
    }
}

/// A running QEMU with the card's two UARTs connected.
struct Qemu {
    child: Child,
    link: UartLink,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where QEMU puts the key store: the page `firmware/src/board/flash.rs`
/// reads it from.
const KEY_STORE_ADDRESS: u32 = 0x203F_F000;

/// How long QEMU may take to boot the card and connect.
const BOOT_TIMEOUT: Duration = Duration::from_secs(10);

fn accept(listener: &UnixListener, child: &mut Child) -> io::Result<UnixStream> {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    listener.set_nonblocking(true)?;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait()? {
                    return Err(io::Error::other(format!(
                        "qemu exited before connecting ({status})"
                    )));
                }
                if Instant::now() > deadline {
                    return Err(io::Error::other("qemu did not connect in time"));
                }
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A private directory for the UARTs' sockets, removed with them.
struct SocketDir(PathBuf);

impl SocketDir {
    fn new() -> io::Result<SocketDir> {
        let dir = private_files::temp_path("s9card-qemu-")?;
        std::fs::DirBuilder::new()
            .mode(private_files::DIR_MODE)
            .create(&dir)?;
        Ok(SocketDir(dir))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(format!("{name}.sock"))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads one frame from the firmware: its meta byte and its body.
fn read_annotated(link: &mut UartLink) -> io::Result<(Meta, Vec<u8>)> {
    let mut buf = [0u8; FROM_FIRMWARE];
    let body = match link::read_body(link, &mut buf).map_err(crate::link::io_error)? {
        Some(Body::Fits(body)) => body,
        Some(Body::Oversized(len)) => {
            return Err(io::Error::other(format!(
                "a {len}-byte frame from the firmware"
            )));
        }
        None => return Err(io::ErrorKind::UnexpectedEof.into()),
    };
    let (&meta, rest) = body
        .split_first()
        .ok_or_else(|| io::Error::other("empty frame from the firmware"))?;
    let meta = Meta::from_byte(meta)
        .ok_or_else(|| io::Error::other(format!("unknown meta byte {meta:02X}")))?;
    Ok((meta, rest.to_vec()))
}

/// The largest frame the firmware sends: a meta byte and a response APDU
/// (256 bytes and the status word) or an ATR.
const FROM_FIRMWARE: usize = 1 + 258;

/// The UART's Unix socket as a card-os link.
type UartLink = StreamLink<UnixStream>;

impl Qemu {
    fn start(fw: &Firmware, reports: mpsc::Sender<String>) -> io::Result<(Qemu, Vec<u8>)> {
        // The UARTs are Unix sockets in a directory only this user can
        // enter: QEMU connects to the first listener it finds, and so
        // could anyone on the machine to a TCP port, and be the card.
        let sockets = SocketDir::new()?;
        let link = UnixListener::bind(sockets.path("link"))?;
        let debug = UnixListener::bind(sockets.path("debug"))?;
        let chardev = |id: &str| -> String {
            format!(
                "socket,id={id},path={},server=off",
                sockets.path(id).display()
            )
        };
        // setpriv: QEMU dies with the thread that started it, so a server
        // killed with SIGKILL leaves no card running behind it.
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(&fw.qemu)
            .args(["-M", "mps2-an386", "-display", "none", "-monitor", "none"])
            .arg("-kernel")
            .arg(&fw.elf)
            .args(["-chardev", &chardev("link"), "-serial", "chardev:link"])
            .args(["-chardev", &chardev("debug"), "-serial", "chardev:debug"])
            .arg("-object")
            .arg(format!(
                "memory-backend-file,id=flash,size=16M,share=on,mem-path={}",
                fw.flash.display()
            ))
            .args(["-machine", "memory-backend=flash"]);
        // The key store, where the firmware reads its device key and seed
        // (a flash file from before it keeps them in its record instead).
        let key_store = image::key_store_path(&fw.flash);
        if key_store.exists() {
            cmd.arg("-device").arg(format!(
                "loader,file={},addr={KEY_STORE_ADDRESS:#x},force-raw=on",
                key_store.display()
            ));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if fw.icount {
            cmd.args(["-icount", "shift=0"]);
        }
        // What the guest did that the board does not allow (a bad register,
        // an unimplemented device) goes to a log beside the flash file.
        let mut log = fw.flash.clone().into_os_string();
        log.push(".qemu.log");
        cmd.args(["-d", "guest_errors,unimp", "-D"]).arg(log);
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", fw.qemu.display())))?;
        if let Some(stderr) = child.stderr.take() {
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    tracing::warn!(target: "qemu", "{line}");
                }
            });
        }
        let link = accept(&link, &mut child)?;
        let mut link = StreamLink::new(link.try_clone()?, link);
        let debug = accept(&debug, &mut child)?;
        // Both connected: nothing else may come in.
        drop(sockets);
        thread::spawn(move || {
            for line in BufReader::new(debug).lines().map_while(Result::ok) {
                tracing::debug!(target: "firmware", "{line}");
                let _ = reports.send(line);
            }
        });
        link.stream().set_read_timeout(Some(BOOT_TIMEOUT))?;
        let (meta, atr) = read_annotated(&mut link)?;
        if !meta.is_boot() {
            return Err(io::Error::other("the firmware did not announce itself"));
        }
        if let [0x6F, 0x00, reason @ ..] = atr.as_slice() {
            return Err(io::Error::other(format!(
                "the firmware card cannot start: {}",
                String::from_utf8_lossy(reason)
            )));
        }
        link.stream().set_read_timeout(Some(fw.timeout))?;
        Ok((Qemu { child, link }, atr))
    }
}

/// A firmware card, booted on first use and again after QEMU dies.
pub struct FirmwareCard {
    firmware: Firmware,
    qemu: Option<Qemu>,
    pid: Arc<AtomicU32>,
    reports: mpsc::Receiver<String>,
    sender: mpsc::Sender<String>,
}

impl FirmwareCard {
    /// A card that will run `firmware`; it boots at the first frame.
    pub fn new(firmware: Firmware) -> FirmwareCard {
        let (sender, reports) = mpsc::channel();
        FirmwareCard {
            firmware,
            qemu: None,
            pid: Arc::new(AtomicU32::new(0)),
            reports,
            sender,
        }
    }

    /// Boots the card now if it is not running.
    pub fn boot(&mut self) -> io::Result<()> {
        if self.qemu.is_some() {
            return Ok(());
        }
        let (qemu, atr) = Qemu::start(&self.firmware, self.sender.clone())?;
        tracing::info!(pid = qemu.child.id(), atr = %hex::encode_upper(&atr), flash = %self.firmware.flash.display(), "firmware card booted");
        self.pid.store(qemu.child.id(), Ordering::SeqCst);
        self.qemu = Some(qemu);
        Ok(())
    }

    /// QEMU's process id, 0 while it is not running (for power-cut tests,
    /// which kill it).
    pub fn pid(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.pid)
    }

    /// Lines the firmware's debug port has written since the last call.
    pub fn reports(&self) -> Vec<String> {
        self.reports.try_iter().collect()
    }

    /// Stops QEMU: a power cut.
    pub fn halt(&mut self) {
        self.qemu = None;
        self.pid.store(0, Ordering::SeqCst);
    }

    fn exchange(&mut self, frame: Frame<'_>) -> io::Result<Option<ResponseApdu>> {
        let Some(body) = frame.body() else {
            return Ok(None);
        };
        // A QEMU that died since the last frame took the card with it: the
        // reader must see it leave, not a card that forgot its session.
        if let Some(q) = self.qemu.as_mut()
            && let Some(status) = q.child.try_wait()?
        {
            return Err(io::Error::other(format!("qemu exited ({status})")));
        }
        self.boot()?;
        let Some(q) = self.qemu.as_mut() else {
            return Err(io::Error::other("not running"));
        };
        link::write_frame(&mut q.link, None, body)?;
        if !frame.is_answered() {
            return Ok(None);
        }
        let (meta, bytes) = read_annotated(&mut q.link)?;
        if meta.is_boot() {
            return Err(io::Error::other("the firmware rebooted"));
        }
        ResponseApdu::relayed(&bytes, meta.secrecy())
            .map(Some)
            .ok_or_else(|| io::Error::other("the firmware sent no response APDU"))
    }
}

impl Respond for FirmwareCard {
    fn respond(&mut self, frame: Frame<'_>) -> Outcome {
        match frame {
            // The firmware would answer the same; the bytes are gone.
            Frame::Oversized(_) => {
                return Outcome::Answer(ResponseApdu::status(apdu::Status::WrongLength));
            }
            Frame::UnknownControl(_) | Frame::Empty => return Outcome::Silent,
            _ => {}
        }
        match self.exchange(frame) {
            Ok(Some(rsp)) => Outcome::Answer(rsp),
            Ok(None) => Outcome::Silent,
            Err(e) => {
                tracing::warn!(error = %e, "firmware card lost: it boots again at the next frame");
                self.halt();
                Outcome::Gone
            }
        }
    }
}

/// The firmware card driven directly, without pcscd (benchmarks, tests):
/// powered on by the first command, as a reader would.
impl client::Transport for FirmwareCard {
    fn transmit(&mut self, apdu: &[u8]) -> client::Result<Vec<u8>> {
        use client::ClientError;
        // Shorter bodies are vpcd's control frames, not commands.
        if apdu.len() < 2 {
            return Err(ClientError::Malformed(
                "a command frame has at least 2 bytes",
            ));
        }
        match self.respond(Frame::Apdu(apdu)) {
            Outcome::Answer(rsp) => Ok(rsp.to_vec()),
            Outcome::Silent | Outcome::Gone => {
                Err(ClientError::Transport("the firmware card is gone".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// QEMU's UARTs listen where only this user can connect, and only until
    /// QEMU has: another user of the machine cannot be the card.
    #[test]
    fn the_uarts_listen_in_a_private_directory_gone_after_use() {
        let dir = SocketDir::new().unwrap();
        let link = UnixListener::bind(dir.path("link")).unwrap();
        let mode = std::fs::metadata(&dir.0).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(dir.path("link").starts_with(&dir.0));
        let kept = dir.0.clone();
        drop(dir);
        assert!(!kept.exists());
        drop(link);
    }
}
