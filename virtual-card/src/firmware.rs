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
//! The proxy is the card's reader: it drives the firmware's contacts
//! (VCC and RST on one UART, I/O on another; `firmware/src/board/contacts.rs`)
//! and speaks ISO 7816-3 T=1 on I/O ([`crate::t1_reader`]), handing whole
//! APDUs to and from vpcd. On request its line damages, drops and delays
//! characters on a seeded schedule ([`crate::line_noise`]), which T=1 must
//! recover. The firmware's debug port reports each command the card runs,
//! numbered, with the card's secrecy verdict, before its answer leaves: the
//! trace obeys the verdict, and a number out of step (a command run twice
//! by a retransmission, or not at all) fails the exchange. Killing QEMU is
//! a power cut: the proxy reports the card gone, and the next frame boots
//! it again.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use card_os::contact::Contact;
use card_os::image::{HEADER_LEN, Header, RECORD_LEN};
use card_os::link::{Frame, Outcome, Respond};
use card_os::{ResponseApdu, Secrecy};

use crate::Entropy;
use crate::image::{self, FIRMWARE_FLASH_LEN, ImageError};
use crate::line_noise::{Faults, Hit, LineNoise};
use crate::t1_reader::{Counts, Line, Reader};

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
    /// The block waiting time the reader allows the card, in host time
    /// (QEMU runs the card at the host's pace, not a chip's): a card that
    /// needs longer asks for multiples of it (S(WTX)).
    pub bwt: Duration,
    /// Faults the reader's line injects: a rate per character and a seed.
    pub line_noise: Option<(f64, u64)>,
    /// How long the firmware may take from QEMU's start to its boot line
    /// (an image that runs a long self-check first needs more).
    pub boot_timeout: Duration,
}

impl Firmware {
    /// The firmware at `elf` on the flash file `flash`, with `qemu-system-arm`
    /// from the `PATH`, on a clean line.
    pub fn new(elf: PathBuf, flash: PathBuf) -> Firmware {
        Firmware {
            elf,
            flash,
            qemu: PathBuf::from("qemu-system-arm"),
            icount: false,
            bwt: Duration::from_secs(5),
            line_noise: None,
            boot_timeout: BOOT_TIMEOUT,
        }
    }
}

/// A running QEMU with the card's contacts and debug port connected.
struct Qemu {
    child: Child,
    /// The I/O contact (the firmware's UART0).
    io: UnixStream,
    /// VCC and RST (UART2).
    contacts: UnixStream,
    /// What the debug port said, line by line.
    debug: Debug,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        // Our own kill: not the card dying under the reader.
        self.debug.quitting.store(true, Ordering::SeqCst);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where QEMU puts the key store: the page `firmware/src/board/flash.rs`
/// reads it from.
const KEY_STORE_ADDRESS: u32 = 0x203F_F000;

/// How long QEMU may take to boot the card and connect.
const BOOT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a character of a block may take once the block has begun.
const CHARACTER_TIMEOUT: Duration = Duration::from_secs(2);

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

/// The firmware's debug port: its lines as they come, and whether it
/// reported a panic (the reader then gives up on the card at once).
struct Debug {
    lines: mpsc::Receiver<String>,
    panicked: Arc<AtomicBool>,
    /// Set before QEMU is stopped on purpose: its port closing then is no
    /// news.
    quitting: Arc<AtomicBool>,
}

impl Drop for Debug {
    /// A port dropped before QEMU (a start that failed after connecting,
    /// whose QEMU is then killed) is no death of the card either.
    fn drop(&mut self) {
        self.quitting.store(true, Ordering::SeqCst);
    }
}

impl Debug {
    /// Reads the port's lines until it closes; if it closes while nobody
    /// was stopping QEMU (a kill -9, a crash), writes QEMU's process id
    /// `pid` to `died`, so that the reader learns the card is gone at once
    /// rather than at its next command.
    fn listen(stream: UnixStream, pid: u32, died: Arc<AtomicU32>) -> Debug {
        let (sender, lines) = mpsc::channel();
        let panicked = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&panicked);
        let quitting = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&quitting);
        thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                tracing::debug!(target: "firmware", "{line}");
                if line.starts_with("panic") {
                    tracing::warn!(target: "firmware", "{line}");
                    flag.store(true, Ordering::SeqCst);
                }
                if sender.send(line).is_err() {
                    break;
                }
            }
            if !stopping.load(Ordering::SeqCst) {
                tracing::warn!(target: "firmware", "QEMU exited under the card");
                died.store(pid, Ordering::SeqCst);
            }
        });
        Debug {
            lines,
            panicked,
            quitting,
        }
    }

    /// The next line starting with `prefix`, keeping every line read on
    /// the way in `log`.
    fn wait_for(
        &self,
        prefix: &str,
        timeout: Duration,
        log: &mut Vec<String>,
    ) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no {prefix:?} line from the firmware's debug port"),
                )
            })?;
            let found = line.starts_with(prefix) || line.starts_with("panic");
            log.push(line);
            if found {
                return Ok(log.last().cloned().unwrap_or_default());
            }
        }
    }
}

/// Reads an ATR off the I/O line by its structure (ISO 7816-3 §8.2): TS,
/// T0, the interface bytes each TDi announces, the historical bytes T0
/// counts, and TCK when a protocol other than T=0 is offered.
fn read_atr(io: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut atr = vec![0u8; 2];
    io.read_exact(&mut atr)?;
    if atr[0] != 0x3B && atr[0] != 0x3F {
        return Err(io::Error::other(format!("no ATR: TS {:02X}", atr[0])));
    }
    let historical = usize::from(atr[1] & 0x0F);
    let mut indicator = atr[1];
    let mut tck = false;
    // At most four sets of interface bytes fit a 33-byte ATR.
    for _ in 0..8 {
        let present = (indicator >> 4).count_ones() as usize;
        let mut bytes = vec![0u8; present];
        io.read_exact(&mut bytes)?;
        atr.extend_from_slice(&bytes);
        if indicator & 0x80 == 0 {
            break;
        }
        let Some(&td) = bytes.last() else { break };
        tck |= td & 0x0F != 0;
        indicator = td;
    }
    let rest = historical + usize::from(tck);
    let mut bytes = vec![0u8; rest];
    io.read_exact(&mut bytes)?;
    atr.extend_from_slice(&bytes);
    if atr.len() > 33 {
        return Err(io::Error::other("an ATR longer than 33 bytes"));
    }
    Ok(atr)
}

impl Qemu {
    fn start(
        fw: &Firmware,
        log: &mut Vec<String>,
        died: &Arc<AtomicU32>,
    ) -> io::Result<(Qemu, Vec<u8>)> {
        // The UARTs are Unix sockets in a directory only this user can
        // enter: QEMU connects to the first listener it finds, and so
        // could anyone on the machine to a TCP port, and be the card.
        let sockets = SocketDir::new()?;
        let io_listener = UnixListener::bind(sockets.path("io"))?;
        let debug = UnixListener::bind(sockets.path("debug"))?;
        let contacts = UnixListener::bind(sockets.path("contacts"))?;
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
            .arg(&fw.elf);
        // UART0, UART1, UART2 in order.
        for id in ["io", "debug", "contacts"] {
            cmd.args([
                "-chardev",
                &chardev(id),
                "-serial",
                &format!("chardev:{id}"),
            ]);
        }
        cmd.arg("-object")
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
        let mut qemu_log = fw.flash.clone().into_os_string();
        qemu_log.push(".qemu.log");
        cmd.args(["-d", "guest_errors,unimp", "-D"]).arg(qemu_log);
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
        let mut child = KillOnDrop(Some(child));
        let io = accept(&io_listener, child.get())?;
        let debug = accept(&debug, child.get())?;
        let contacts = accept(&contacts, child.get())?;
        // All connected: nothing else may come in.
        drop(sockets);
        let debug = Debug::listen(debug, child.get().id(), Arc::clone(died));
        let boot = debug.wait_for("boot", fw.boot_timeout, log)?;
        if let Some(reason) = boot.strip_prefix("boot failed: ") {
            return Err(io::Error::other(format!(
                "the firmware card cannot start: {reason}"
            )));
        }
        let mut qemu = Qemu {
            child: child.take(),
            io,
            contacts,
            debug,
        };
        // Powered by QEMU's start, the card answers reset at once.
        qemu.io.set_read_timeout(Some(BOOT_TIMEOUT))?;
        let atr = read_atr(&mut qemu.io)?;
        Ok((qemu, atr))
    }

    /// The I/O UART as the T=1 reader's line.
    fn line<'q>(&'q mut self, bwt: Duration, noise: Option<&'q mut LineNoise>) -> UartLine<'q> {
        UartLine {
            io: &mut self.io,
            panicked: &self.debug.panicked,
            bwt,
            noise,
        }
    }

    /// Drives VCC and RST; after a reset, the card's new ATR.
    fn contact(&mut self, contact: Contact) -> io::Result<Option<Vec<u8>>> {
        let byte = match contact {
            Contact::PowerOff => 0x00,
            Contact::ColdReset => 0x01,
            Contact::WarmReset => 0x02,
        };
        self.contacts.write_all(&[byte])?;
        if contact == Contact::PowerOff {
            return Ok(None);
        }
        self.io.set_read_timeout(Some(BOOT_TIMEOUT))?;
        read_atr(&mut self.io).map(Some)
    }
}

/// A child process killed if it is dropped before it is taken.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn get(&mut self) -> &mut Child {
        self.0.as_mut().expect("taken only once, at the end")
    }

    fn take(mut self) -> Child {
        self.0.take().expect("taken only once")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The firmware's I/O UART as the T=1 reader's [`Line`], with the faults
/// the reader model injects.
struct UartLine<'q> {
    io: &'q mut UnixStream,
    panicked: &'q AtomicBool,
    bwt: Duration,
    noise: Option<&'q mut LineNoise>,
}

/// Marks the next character as received with a parity error; doubled, a
/// real `FF` (see `firmware/src/board/contacts.rs`).
const ESCAPE: u8 = 0xFF;

impl UartLine<'_> {
    /// The characters of `block` as the card's UART receives them: `None`
    /// if the line lost its first one (no block reached the card).
    fn for_card(&mut self, block: &[u8]) -> Option<Vec<(Vec<u8>, bool)>> {
        // Runs of wire bytes, each after a pause if its flag says so.
        let mut runs: Vec<(Vec<u8>, bool)> = vec![(Vec::new(), false)];
        for (n, &b) in block.iter().enumerate() {
            let hit = self.noise.as_mut().map_or(Hit::Clean, |noise| noise.hit());
            let wire: &[u8] = match hit {
                Hit::Damaged(_) | Hit::Dropped if n == 0 => {
                    if let Some(noise) = self.noise.as_mut() {
                        for _ in 1..block.len() {
                            noise.hit();
                        }
                    }
                    return None;
                }
                Hit::Dropped => &[],
                Hit::Damaged(bit) => &[ESCAPE, b ^ (1 << bit)],
                Hit::Clean | Hit::Delayed if b == ESCAPE => &[ESCAPE, ESCAPE],
                Hit::Clean | Hit::Delayed => std::slice::from_ref(&b),
            };
            if hit == Hit::Delayed {
                runs.push((Vec::new(), true));
            }
            if let Some((run, _)) = runs.last_mut() {
                run.extend_from_slice(wire);
            }
        }
        Some(runs)
    }

    /// Reads exactly `buf.len()` bytes, giving up at `deadline` or when the
    /// card panics.
    fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            if self.panicked.load(Ordering::SeqCst) {
                return Err(io::Error::other("the firmware panicked"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            // Short slices, to notice a panic soon.
            self.io
                .set_read_timeout(Some(left.min(Duration::from_millis(50))))?;
            match self.io.read(&mut buf[got..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Drops whatever the card sent that no block of the reader's asked
    /// for (an answer that came after its block waiting time).
    fn drain_stale(&mut self) -> io::Result<()> {
        self.io.set_nonblocking(true)?;
        let mut buf = [0u8; 512];
        let drained = loop {
            match self.io.read(&mut buf) {
                Ok(0) => break Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => tracing::debug!(bytes = n, "a late answer from the firmware dropped"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.io.set_nonblocking(false)?;
        drained
    }

    /// Writes what [`UartLine::for_card`] made of a block: its runs of
    /// bytes, each after a pause if the line delays it (2 ms, well within
    /// the card's character waiting time).
    fn write_runs(&mut self, runs: Vec<(Vec<u8>, bool)>) -> io::Result<()> {
        for (run, pause) in runs {
            if pause {
                thread::sleep(Duration::from_millis(2));
            }
            self.io.write_all(&run)?;
        }
        Ok(())
    }

    /// Sends a PPS request and reads the card's answer (PPSS, PPS0, the
    /// PPS1-3 it announces, PCK) as the line delivers it; `None` if none
    /// came.
    fn pps(&mut self, request: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.drain_stale()?;
        let Some(runs) = self.for_card(request) else {
            return Ok(None);
        };
        self.write_runs(runs)?;
        let mut answer = vec![0u8; 2];
        if !self.read_by(&mut answer, Instant::now() + PPS_TIMEOUT)? {
            return Ok(None);
        }
        let more = 1 + (answer[1] >> 4 & 0x07).count_ones() as usize;
        let mut rest = vec![0u8; more];
        if !self.read_by(&mut rest, Instant::now() + CHARACTER_TIMEOUT)? {
            return Ok(None);
        }
        answer.extend_from_slice(&rest);
        Ok(match self.noise.as_mut() {
            Some(noise) => noise.receive(&answer),
            None => Some(answer),
        })
    }
}

/// How long a card may take to answer a PPS request: its initial waiting
/// time (9,600 etu, a second at 9,600 baud).
const PPS_TIMEOUT: Duration = Duration::from_secs(1);

/// PPS exchanges tried, with a reset between them, before the card counts
/// as lost.
const PPS_TRIES: usize = 3;

/// A card's answer that keeps the default speed: PPSS, PPS0 for T=1
/// without PPS1, PCK.
const PPS_DEFAULT: [u8; 3] = [0xFF, 0x01, 0xFE];

/// The PPS request for the speed an ATR offers in TA1 (T=1, PPS1 = TA1),
/// `None` if it offers none.
fn pps_request(atr: &[u8]) -> Option<Vec<u8>> {
    let ta1 = match atr {
        [_, t0, ta1, ..] if t0 & 0x10 != 0 => *ta1,
        _ => return None,
    };
    Some(vec![0xFF, 0x11, ta1, 0xFF ^ 0x11 ^ ta1])
}

impl Line for UartLine<'_> {
    fn exchange(&mut self, block: &[u8], waits: u8) -> io::Result<Option<Vec<u8>>> {
        self.drain_stale()?;
        let Some(runs) = self.for_card(block) else {
            // Nothing reached the card: its silence is the block waiting
            // time passing, which the reader need not sit through.
            return Ok(None);
        };
        self.write_runs(runs)?;
        let deadline = Instant::now() + self.bwt * u32::from(waits.max(1));
        let mut prologue = [0u8; 3];
        if !self.read_by(&mut prologue, deadline)? {
            return Ok(None);
        }
        let mut answer = vec![0u8; 3 + usize::from(prologue[2]) + 1];
        answer[..3].copy_from_slice(&prologue);
        if !self.read_by(&mut answer[3..], Instant::now() + CHARACTER_TIMEOUT)? {
            return Ok(None);
        }
        Ok(match self.noise.as_mut() {
            Some(noise) => noise.receive(&answer),
            None => Some(answer),
        })
    }
}

/// The reader's state for the card in it, from its boot.
struct Inserted {
    qemu: Qemu,
    atr: Vec<u8>,
    /// T=1 from the last ATR on.
    reader: Reader,
    /// Commands the card reported running since it booted.
    commands: u64,
}

/// A firmware card, booted on first use and again after QEMU dies.
pub struct FirmwareCard {
    firmware: Firmware,
    session: Option<Inserted>,
    pid: Arc<AtomicU32>,
    /// The process id of a QEMU that exited without being asked to (see
    /// [`FirmwareCard::died`]).
    died: Arc<AtomicU32>,
    noise: Option<LineNoise>,
    /// Debug port lines read and not yet asked for.
    log: Vec<String>,
    /// T=1's figures over every session.
    counts: Counts,
    /// Commands sent, and commands the card ran, over every session.
    sent: u64,
    ran: u64,
    /// PPS exchanges the card answered.
    pps: u64,
}

impl FirmwareCard {
    /// A card that will run `firmware`; it boots at the first frame.
    pub fn new(firmware: Firmware) -> FirmwareCard {
        let noise = firmware
            .line_noise
            .map(|(rate, seed)| LineNoise::new(rate, seed));
        FirmwareCard {
            firmware,
            session: None,
            pid: Arc::new(AtomicU32::new(0)),
            died: Arc::new(AtomicU32::new(0)),
            noise,
            log: Vec::new(),
            counts: Counts::default(),
            sent: 0,
            ran: 0,
            pps: 0,
        }
    }

    /// Boots the card now if it is not running.
    pub fn boot(&mut self) -> io::Result<()> {
        if self.session.is_some() {
            return Ok(());
        }
        let (qemu, atr) = Qemu::start(&self.firmware, &mut self.log, &self.died)?;
        tracing::info!(pid = qemu.child.id(), atr = %hex::encode_upper(&atr), flash = %self.firmware.flash.display(), "firmware card booted");
        self.pid.store(qemu.child.id(), Ordering::SeqCst);
        let mut session = Inserted {
            reader: reader_for(&atr, false).0,
            qemu,
            atr,
            commands: 0,
        };
        self.negotiate(&mut session)?;
        self.session = Some(session);
        Ok(())
    }

    /// After an ATR: the speed the ATR offers (PPS), a new T=1 session,
    /// and the reader's IFSD.
    fn negotiate(&mut self, session: &mut Inserted) -> io::Result<()> {
        self.select_speed(session)?;
        let (reader, ifsd) = reader_for(&session.atr, self.noise.is_some());
        session.reader = reader;
        let Inserted { qemu, reader, .. } = session;
        let mut line = qemu.line(self.firmware.bwt, self.noise.as_mut());
        let set = reader.set_ifsd(&mut line, ifsd);
        self.counts += std::mem::take(&mut reader.counts);
        set.map_err(|e| io::Error::other(e.to_string()))
    }

    /// Asks for the speed an ATR's TA1 offers with a PPS request (ISO
    /// 7816-3 §9), as a reader does before its first block; after an
    /// exchange that fails (no answer, a damaged one) it resets the card
    /// and asks again, three times at most. QEMU's UART has no baud rate,
    /// so the speed changes nothing but the exchange is the card's to get
    /// right.
    fn select_speed(&mut self, session: &mut Inserted) -> io::Result<()> {
        for _ in 0..PPS_TRIES {
            let Some(request) = pps_request(&session.atr) else {
                return Ok(());
            };
            let mut line = session.qemu.line(self.firmware.bwt, self.noise.as_mut());
            match line.pps(&request)? {
                // Echoed: that speed; without PPS1: the default.
                Some(answer) if answer == request || answer == PPS_DEFAULT => {
                    self.pps += 1;
                    return Ok(());
                }
                _ => {
                    tracing::debug!("PPS failed: the card is reset");
                    if let Some(atr) = session.qemu.contact(Contact::WarmReset)? {
                        session.atr = atr;
                    }
                }
            }
        }
        Err(io::Error::other(format!(
            "no PPS exchange in {PPS_TRIES} tries"
        )))
    }

    /// QEMU's process id, 0 while it is not running (for power-cut tests,
    /// which kill it).
    pub fn pid(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.pid)
    }

    /// QEMU's process id, written (by the thread reading its debug port)
    /// when it exits without the reader stopping it: a kill -9 or a crash.
    /// The reader takes the notice (swaps in 0) and, if that QEMU is still
    /// the card's ([`FirmwareCard::pid`]), drops the card's connection at
    /// once; otherwise it would learn of the death only from its next
    /// command, and a reader with none to send would go on showing a card.
    /// A notice that comes after the reader has buried that QEMU itself
    /// (a frame found it dead) concerns no connection of the card's now:
    /// naming the QEMU keeps it from cutting the next one.
    pub fn died(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.died)
    }

    /// Lines the firmware's debug port has written since the last call.
    pub fn reports(&mut self) -> Vec<String> {
        let mut lines = std::mem::take(&mut self.log);
        if let Some(session) = &self.session {
            lines.extend(session.qemu.debug.lines.try_iter());
        }
        lines
    }

    /// What the line did and what T=1 recovered, over every session: the
    /// faults injected (if the line is noisy), T=1's counts, and the
    /// commands sent beside the commands the card reports running.
    pub fn figures(&self) -> LineFigures {
        LineFigures {
            faults: self.noise.as_ref().map(|n| n.faults).unwrap_or_default(),
            t1: self.counts,
            sent: self.sent,
            ran: self.ran,
            pps: self.pps,
        }
    }

    /// Stops QEMU: a power cut.
    pub fn halt(&mut self) {
        self.session = None;
        self.pid.store(0, Ordering::SeqCst);
    }

    fn exchange(&mut self, frame: Frame<'_>) -> io::Result<Option<ResponseApdu>> {
        // A QEMU that died since the last frame took the card with it: the
        // reader must see it leave, not a card that forgot its session.
        if let Some(session) = self.session.as_mut()
            && let Some(status) = session.qemu.child.try_wait()?
        {
            return Err(io::Error::other(format!("qemu exited ({status})")));
        }
        // A card without power stays so: no QEMU is started to be stopped
        // (the reader powers a card off as it leaves, dead or not).
        if self.session.is_none() && matches!(frame, Frame::PowerOff) {
            return Ok(None);
        }
        self.boot()?;
        let mut session = self
            .session
            .take()
            .ok_or_else(|| io::Error::other("not running"))?;
        let answer = self.exchange_in(&mut session, frame);
        if answer.is_ok() {
            self.session = Some(session);
        }
        answer
    }

    fn exchange_in(
        &mut self,
        session: &mut Inserted,
        frame: Frame<'_>,
    ) -> io::Result<Option<ResponseApdu>> {
        let contact = match frame {
            Frame::GetAtr => {
                return Ok(ResponseApdu::relayed(&session.atr, Secrecy::PUBLIC));
            }
            Frame::PowerOff => Contact::PowerOff,
            Frame::PowerOn => Contact::ColdReset,
            Frame::Reset => Contact::WarmReset,
            Frame::Apdu(apdu) => return self.command(session, apdu).map(Some),
            // A proxy hands every command over whole: it gathers nothing.
            Frame::UnknownControl(_) | Frame::Empty | Frame::Oversized(_) | Frame::Gathered => {
                return Ok(None);
            }
        };
        if let Some(atr) = session.qemu.contact(contact)? {
            session.atr = atr;
            self.negotiate(session)?;
        }
        Ok(None)
    }

    /// One command over T=1, and the card's report of running it: its
    /// secrecy verdict, and its number, which must be the next.
    fn command(&mut self, session: &mut Inserted, apdu: &[u8]) -> io::Result<ResponseApdu> {
        self.sent += 1;
        let Inserted {
            qemu,
            reader,
            commands,
            ..
        } = session;
        let mut line = qemu.line(self.firmware.bwt, self.noise.as_mut());
        let answer = reader.transmit(&mut line, apdu);
        self.counts += std::mem::take(&mut reader.counts);
        let answer = answer.map_err(|e| io::Error::other(e.to_string()))?;
        // The report went out before the answer's first block.
        let report = qemu
            .debug
            .wait_for("apdu ", Duration::from_secs(10), &mut self.log)?;
        let n = field(&report, "n").unwrap_or(0);
        self.ran += 1;
        *commands += 1;
        if n != *commands {
            return Err(io::Error::other(format!(
                "the card ran command {n} where the reader sent command {commands}: a command ran twice or never"
            )));
        }
        let secret = report
            .split_whitespace()
            .find_map(|w| w.strip_prefix("secret="))
            .unwrap_or("cr");
        let secrecy = Secrecy {
            command: secret.contains('c'),
            response: secret.contains('r'),
        };
        ResponseApdu::relayed(&answer, secrecy)
            .ok_or_else(|| io::Error::other("the firmware sent no response APDU"))
    }
}

/// What a firmware card's line did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineFigures {
    /// Faults injected.
    pub faults: Faults,
    /// T=1's recoveries.
    pub t1: Counts,
    /// Commands the reader sent.
    pub sent: u64,
    /// Commands the card reported running.
    pub ran: u64,
    /// PPS exchanges the card answered (one per reset, on a card whose
    /// ATR offers a speed).
    pub pps: u64,
}

/// A number in a debug line's `name=value`.
fn field(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// The card's IFSC from its ATR (ISO 7816-3 §11.4.2): the first TA after
/// a TD that names T=1, from TA3 on; 32 where the ATR does not say.
fn ifsc(atr: &[u8]) -> usize {
    let mut at = 1;
    let mut indicator = atr.get(1).copied().unwrap_or(0);
    for i in 1..=8 {
        let ta = atr.get(at + 1).copied();
        if i >= 3 && indicator & 0x10 != 0 {
            return ta.map_or(32, usize::from).clamp(1, 254);
        }
        at += (indicator >> 4).count_ones() as usize;
        if indicator & 0x80 == 0 {
            break;
        }
        let Some(&td) = atr.get(at) else { break };
        indicator = td;
        // TA3 is T=1's only when TD2 names T=1.
        if i >= 2 && td & 0x0F != 1 {
            break;
        }
    }
    32
}

/// A reader for the card behind `atr`. On a clean line it sends and takes
/// the largest blocks the card allows and tries each three times before it
/// resynchronises; on a noisy one (`noisy`), blocks of 32 bytes (a long
/// block is rarely whole at 1 % of characters hit) and twelve tries.
fn reader_for(atr: &[u8], noisy: bool) -> (Reader, u8) {
    let ifsc = ifsc(atr);
    if noisy {
        (Reader::new(ifsc, 32, 12), 32)
    } else {
        (Reader::new(ifsc, ifsc, 3), 254)
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
