//! Virtual readers for N cards: the vpcd reader configuration, pcscd started
//! with it, and what PC/SC sees.
//!
//! vsmartcard's stock configuration is one vpcd reader with two slots
//! (ports 35963 and 35964). More cards need more reader entries, and two
//! facts of vpcd 0.8 and pcscd 1.9 shape how:
//!
//! - the driver keeps its connections in one static array indexed by slot,
//!   so two entries that load the same driver file overwrite each other's
//!   slots (only the last one's work). Each entry therefore loads its own
//!   copy of the driver: the dynamic loader keeps one instance per file,
//!   with its own statics. The copies are also made to dial their cards
//!   again after one leaves ([`crate::vpcd_driver`]).
//! - pcscd names a reader after its entry's FRIENDLYNAME and numbers only
//!   readers of one driver file, so every entry gets a name of its own:
//!   `Virtual PCD` (as stock, `Virtual PCD 00 00` and `00 01`), then
//!   `Virtual PCD 1`, `Virtual PCD 2`…
//!
//! When asked for, one reader named like a YubiKey's follows them,
//! `Yubico YubiKey CCID 00 00` (reader 14): much PIV software looks for
//! that name, and the card of the YubiKey profile is served there. Its
//! entry loads a copy of the driver made single-slot
//! ([`crate::vpcd_driver`]), because a second, empty YubiKey-named reader
//! makes ykman count two devices and wait 3 s at every command. A reader
//! that nobody asked for is a reader someone else can fill, so it is there
//! only when a YubiKey-profile card is.
//!
//! Every entry is in vpcd's *connecting* mode (`DEVICENAME 127.0.0.1:PORT`):
//! reader `n` dials port 29963 + `n` on loopback ([`BASE_PORT`] says why
//! not vsmartcard's 35963), where `s9card serve`
//! listens for it with its `n`-th card. vsmartcard's stock mode
//! (`/dev/null:PORT`) has pcscd listen on every interface, so that anyone
//! who can reach the machine could put a card of theirs into a free reader
//! and collect the PINs that tools send it. Now nothing of ours listens
//! beyond loopback. What loopback does not keep out is another user of the
//! same machine, who can open a free reader's port first; PC/SC gives every
//! local user the readers anyway, and the machine is the trust boundary.
//!
//! The configuration lives in its own root-owned directory
//! (`/run/s9card/pcscd`) and pcscd is started with `-c` on it: the system's
//! `/etc/reader.conf.d` is never changed, and the driver copies a root
//! daemon loads are never writable by the user.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Reader 0's port. vsmartcard's own is 35963, inside Linux's ephemeral
/// range (32768–60999): vpcd dials its card, again and again while the
/// reader is empty, and a dial from a port of that range to a port of that
/// range with nothing listening can pick the destination itself as its
/// source and connect the socket to itself (TCP simultaneous open). vpcd
/// then waits for ever for an answer from itself, and that reader, and
/// pcscd's reader list with it, hangs. Below the range it cannot happen.
pub const BASE_PORT: u16 = 29963;
/// Ports our readers use: the `Virtual PCD` ones and the YubiKey-named one.
pub const PORTS: Range<u16> = BASE_PORT..BASE_PORT + (MAX_READERS + YUBIKEY_READERS) as u16;
/// Slots per vpcd reader entry.
pub const SLOTS_PER_ENTRY: usize = 2;
/// pcscd's limit (`PCSCLITE_MAX_READERS_CONTEXTS`).
pub const PCSCD_READERS: usize = 16;
/// The YubiKey-named readers, after the `Virtual PCD` ones: one, as a
/// real YubiKey is.
pub const YUBIKEY_READERS: usize = 1;
/// `Virtual PCD` readers: the whole entries of two slots that pcscd holds
/// beside the YubiKey-named entry (which has two slots where the driver
/// cannot be made single-slot).
pub const MAX_READERS: usize =
    (PCSCD_READERS - SLOTS_PER_ENTRY) / SLOTS_PER_ENTRY * SLOTS_PER_ENTRY;
/// The YubiKey-named reader's number.
pub const YUBIKEY_FIRST: usize = MAX_READERS;
/// The YubiKey-named readers' name, as YubiKeys with only CCID enabled
/// show theirs (tools take the interfaces from it).
pub const YUBIKEY_NAME: &str = "Yubico YubiKey CCID";
/// Where the reader configuration goes.
pub const CONF_DIR: &str = "/run/s9card/pcscd";
/// Where every reader dials its card.
pub const LOOPBACK: &str = "127.0.0.1";
/// vsmartcard's own entry, read for the driver's path.
const STOCK_ENTRY: &str = "/etc/reader.conf.d/vpcd";
/// Debian's driver path, if the stock entry cannot be read.
const STOCK_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";

/// Why the readers could not be brought up.
#[derive(Debug)]
pub enum ReadersError {
    /// More readers than pcscd holds, or none.
    Count(usize),
    /// vsmartcard's driver is not installed.
    NoDriver(PathBuf),
    /// pcscd is not installed.
    NoPcscd,
    /// pcscd runs with another configuration that lacks readers.
    Foreign {
        /// Its process id.
        pid: u32,
        /// The vpcd readers it shows.
        shown: usize,
        /// The readers needed.
        needed: usize,
    },
    /// A command failed.
    Command(String),
    /// pcscd started but never listed the readers.
    NotListed(usize),
    /// The machine's ephemeral port range covers our readers' ports.
    Ephemeral(u16, u16),
    /// Reading or writing the configuration.
    Io(io::Error),
}

impl std::fmt::Display for ReadersError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadersError::Count(n) => write!(
                f,
                "{n} readers: pcscd holds 1 to {MAX_READERS} vpcd readers of ours (one card per reader) and one named like a YubiKey"
            ),
            ReadersError::NoDriver(p) => write!(
                f,
                "vsmartcard's vpcd driver is not installed ({} is missing): apt-get install vsmartcard-vpcd",
                p.display()
            ),
            ReadersError::NoPcscd => write!(f, "pcscd is not installed: apt-get install pcscd"),
            ReadersError::Foreign { pid, shown, needed } => write!(
                f,
                "pcscd (pid {pid}) runs with another reader configuration: it shows {shown} of the {needed} vpcd readers needed. \
                 Stop it (sudo systemctl stop pcscd.socket pcscd.service, or sudo kill {pid}) and run again; \
                 if s9card started it, `s9card pcscd --readers N [--yubikey]` restarts it with both sets of readers"
            ),
            ReadersError::Command(e) => write!(f, "{e}"),
            ReadersError::NotListed(n) => {
                write!(f, "pcscd started but did not list the {n} vpcd readers")
            }
            ReadersError::Io(e) => write!(f, "reader configuration: {e}"),
            ReadersError::Ephemeral(low, high) => write!(
                f,
                "this machine's ephemeral ports ({low}-{high}, net.ipv4.ip_local_port_range) cover the \
                 readers' ports ({}-{}): vpcd's dials to an empty reader could connect to themselves and \
                 hang pcscd. Narrow the range, or reserve the ports (net.ipv4.ip_local_reserved_ports)",
                PORTS.start,
                PORTS.end - 1
            ),
        }
    }
}

impl std::error::Error for ReadersError {}

impl From<io::Error> for ReadersError {
    fn from(e: io::Error) -> Self {
        ReadersError::Io(e)
    }
}

/// The PC/SC name of reader `n` in our configuration (the first two are
/// the stock names).
pub fn reader_name(n: usize) -> String {
    let entry = n / SLOTS_PER_ENTRY;
    let slot = n % SLOTS_PER_ENTRY;
    if n >= YUBIKEY_FIRST {
        format!("{YUBIKEY_NAME} 00 {:02X}", n - YUBIKEY_FIRST)
    } else if entry == 0 {
        format!("Virtual PCD 00 {slot:02X}")
    } else {
        format!("Virtual PCD {entry} 00 {slot:02X}")
    }
}

/// The vpcd port of reader `n`.
pub fn reader_port(n: usize) -> u16 {
    BASE_PORT + n as u16
}

/// The driver vsmartcard installed.
pub fn stock_driver() -> PathBuf {
    std::fs::read_to_string(STOCK_ENTRY)
        .ok()
        .and_then(|text| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("LIBPATH"))
                .map(|p| PathBuf::from(p.trim()))
                .next()
        })
        .unwrap_or_else(|| PathBuf::from(STOCK_DRIVER))
}

/// A driver file of the configuration's: each entry loads its own copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverCopy {
    /// Where it goes.
    pub path: PathBuf,
    /// Whether it is made single-slot (the YubiKey-named entry's).
    pub single_slot: bool,
}

/// Which readers a configuration holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `Virtual PCD` readers `0..readers` (whole entries of two).
    pub readers: usize,
    /// The YubiKey-named reader, [`YUBIKEY_FIRST`].
    pub yubikey: bool,
}

impl Layout {
    /// The layout that holds `needed` and nothing of another profile:
    /// YubiKey-named readers only when `needed` reaches them, and at least
    /// the first entry's two `Virtual PCD` readers, as stock vpcd shows.
    pub fn holding(needed: Range<usize>) -> Layout {
        let virtual_end = if needed.start < MAX_READERS {
            needed.end.min(MAX_READERS)
        } else {
            0
        };
        Layout {
            readers: virtual_end.max(SLOTS_PER_ENTRY),
            yubikey: needed.end > YUBIKEY_FIRST,
        }
    }

    /// The reader numbers it holds.
    pub fn reader_numbers(self) -> impl Iterator<Item = usize> {
        let yubikey = if self.yubikey {
            YUBIKEY_FIRST..YUBIKEY_FIRST + YUBIKEY_READERS
        } else {
            0..0
        };
        (0..self.readers).chain(yubikey)
    }

    /// Both layouts' readers.
    pub fn union(self, other: Layout) -> Layout {
        Layout {
            readers: self.readers.max(other.readers),
            yubikey: self.yubikey || other.yubikey,
        }
    }
}

/// The configuration file's text for a layout, and the driver copies it
/// names under `dir`.
pub fn configuration(layout: Layout, dir: &Path) -> (String, Vec<DriverCopy>) {
    let entries = layout.readers.div_ceil(SLOTS_PER_ENTRY);
    let yubikey_entry = YUBIKEY_FIRST / SLOTS_PER_ENTRY;
    let mut text = String::from(
        "# s9card: vpcd readers for s9card serve. Reader n dials 127.0.0.1, port\n\
         # 29963 + n, where the server listens with its card; nothing listens\n\
         # beyond loopback. Written by `s9card pcscd`; pcscd runs with -c on it.\n",
    );
    let mut copies = Vec::new();
    let yubikey = layout.yubikey.then_some(yubikey_entry);
    for entry in (0..entries).chain(yubikey) {
        let (name, library) = if entry == yubikey_entry {
            let path = dir.join("libifdvpcd-yubikey.so");
            copies.push(DriverCopy {
                path: path.clone(),
                single_slot: true,
            });
            (YUBIKEY_NAME.to_string(), path)
        } else {
            let path = dir.join(format!("libifdvpcd-{entry}.so"));
            copies.push(DriverCopy {
                path: path.clone(),
                single_slot: false,
            });
            let name = if entry == 0 {
                "Virtual PCD".to_string()
            } else {
                format!("Virtual PCD {entry}")
            };
            (name, path)
        };
        let port = reader_port(entry * SLOTS_PER_ENTRY);
        text.push_str(&format!(
            "\nFRIENDLYNAME \"{name}\"\nDEVICENAME   {LOOPBACK}:{port}\nLIBPATH      {}\nCHANNELID    {port}\n",
            library.display()
        ));
    }
    (text, copies)
}

/// An OpenSC configuration (for `OPENSC_CONF`) that gives each of up to
/// [`MAX_READERS`] cards its PKCS#11 slot. OpenSC's defaults (16 virtual
/// slots, four per card) show only the first four cards.
pub fn opensc_conf() -> String {
    format!(
        "# s9card: one PKCS#11 slot per card, for up to {MAX_READERS} cards.\n\
         app default {{\n\tframework pkcs15 {{\n\t}}\n}}\n\
         app opensc-pkcs11 {{\n\tpkcs11 {{\n\t\tmax_virtual_slots = {};\n\t\tslots_per_card = 1;\n\t}}\n}}\n",
        MAX_READERS * 4
    )
}

/// Whether this process runs as root (from `/proc`, without `unsafe`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// A command run as root: directly when we are, through sudo otherwise.
fn as_root(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg(program);
        c
    }
}

fn run(mut command: Command, what: &str) -> Result<(), ReadersError> {
    let out = command
        .stdin(Stdio::inherit())
        .output()
        .map_err(|e| ReadersError::Command(format!("{what}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ReadersError::Command(format!(
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            if is_root() {
                ""
            } else {
                " (needs sudo for pcscd's configuration)"
            }
        )))
    }
}

/// The machine's ephemeral port range, if it covers a port of our readers
/// that the kernel has not been told to keep (`ip_local_reserved_ports`).
pub fn ephemeral_overlap() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = text
        .split_whitespace()
        .filter_map(|n| n.parse::<u16>().ok());
    let (low, high) = (bounds.next()?, bounds.next()?);
    let reserved =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_reserved_ports").unwrap_or_default();
    let is_reserved = |port: u16| {
        reserved.trim().split(',').any(|r| match r.split_once('-') {
            Some((a, b)) => {
                a.parse::<u16>().is_ok_and(|a| a <= port)
                    && b.parse::<u16>().is_ok_and(|b| port <= b)
            }
            None => r.parse::<u16>() == Ok(port),
        })
    };
    PORTS
        .clone()
        .any(|p| (low..=high).contains(&p) && !is_reserved(p))
        .then_some((low, high))
}

/// Writes the configuration for a layout into [`CONF_DIR`] as root;
/// returns the configuration file.
pub fn write_configuration(layout: Layout) -> Result<PathBuf, ReadersError> {
    if layout.readers == 0 || layout.readers > MAX_READERS {
        return Err(ReadersError::Count(layout.readers));
    }
    if let Some((low, high)) = ephemeral_overlap() {
        return Err(ReadersError::Ephemeral(low, high));
    }
    let driver = stock_driver();
    if !driver.exists() {
        return Err(ReadersError::NoDriver(driver));
    }
    let dir = Path::new(CONF_DIR);
    let (text, copies) = configuration(layout, dir);
    let staged = tempfile_in_tmp(text.as_bytes())?;
    let conf = dir.join("reader.conf");
    let mut mkdir = as_root("install");
    mkdir.args(["-d", "-m", "0755", CONF_DIR]);
    run(mkdir, "creating the reader configuration directory")?;
    let mut put = as_root("install");
    put.args(["-m", "0644"]).arg(&staged).arg(&conf);
    let written = run(put, "writing the reader configuration");
    let _ = std::fs::remove_file(&staged);
    written?;
    let stock = std::fs::read(&driver)?;
    // Dialling as vpcd ships it hands out closed sockets and hangs pcscd
    // (`crate::vpcd_driver`): a build whose dialling cannot be mended is
    // refused, not run.
    let connecting = crate::vpcd_driver::connecting(&stock).map_err(|e| {
        ReadersError::Command(format!(
            "{}: {e}. s9card's readers dial their cards on loopback, and vpcd's dialling needs \
             two fixes that s9card makes to the builds it knows (Debian's and Ubuntu's \
             vsmartcard-vpcd); this build is not one of them",
            driver.display()
        ))
    })?;
    for copy in copies {
        let single = if copy.single_slot {
            crate::vpcd_driver::single_slot(&connecting)
                .map_err(|e| {
                    tracing::warn!(
                        "{}: {e}; the {YUBIKEY_NAME} entry keeps its second, empty reader",
                        driver.display()
                    )
                })
                .ok()
        } else {
            None
        };
        let staged = tempfile_in_tmp(single.as_deref().unwrap_or(&connecting))?;
        let mut put = as_root("install");
        put.args(["-m", "0644"]).arg(&staged).arg(&copy.path);
        let copied = run(put, "copying the vpcd driver");
        let _ = std::fs::remove_file(staged);
        copied?;
    }
    Ok(conf)
}

fn tempfile_in_tmp(bytes: &[u8]) -> Result<PathBuf, ReadersError> {
    let path = private_files::temp_path("s9card-reader-conf-")?;
    private_files::write_new(&path, bytes)?;
    Ok(path)
}

/// Whether pcscd lists a second YubiKey-named reader: the driver could not
/// be made single-slot, so tools that look for YubiKeys see two and must
/// be told which (`ykman --device SERIAL`).
pub fn second_yubikey_reader() -> bool {
    let second = format!("{YUBIKEY_NAME} 00 01");
    listed().iter().any(|(name, _)| *name == second)
}

/// What PC/SC shows: each reader's name and whether a card is in it.
pub fn listed() -> Vec<(String, bool)> {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        return Vec::new();
    };
    let mut names = vec![0u8; ctx.list_readers_len().unwrap_or(0).max(2)];
    let Ok(list) = ctx.list_readers(&mut names) else {
        return Vec::new();
    };
    let mut states: Vec<pcsc::ReaderState> = list
        .map(|r| pcsc::ReaderState::new(r.to_owned(), pcsc::State::UNAWARE))
        .collect();
    if ctx
        .get_status_change(Some(Duration::ZERO), &mut states)
        .is_err()
    {
        return Vec::new();
    }
    states
        .iter()
        .map(|s| {
            (
                s.name().to_string_lossy().into_owned(),
                s.event_state().contains(pcsc::State::PRESENT),
            )
        })
        .collect()
}

/// Whether `listed` (what [`listed`] gave) shows reader `n` with a card in
/// it (`card`), or empty (`!card`).
pub fn shows(listed: &[(String, bool)], n: usize, card: bool) -> bool {
    let name = reader_name(n);
    listed
        .iter()
        .any(|(r, present)| *r == name && *present == card)
}

/// How many of readers `0..readers` PC/SC lists.
pub fn shown(readers: usize) -> usize {
    shown_of(0..readers)
}

/// How many of these readers PC/SC lists.
pub fn shown_of(readers: impl IntoIterator<Item = usize>) -> usize {
    let listed = listed();
    readers
        .into_iter()
        .filter(|&n| listed.iter().any(|(name, _)| *name == reader_name(n)))
        .count()
}

/// Whether process `pid` runs (and is not a zombie waiting to be reaped).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) S …`: the state follows the last parenthesis.
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// pcscd's process id, if one runs.
pub fn pcscd_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let e = e.ok()?;
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim() == "pcscd" && alive(pid)).then_some(pid)
    })
}

/// pcscd as we found or left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pcscd {
    /// It was running with the readers already.
    Running,
    /// We started it (this process id): whoever asked stops it.
    Started(u32),
}

/// Makes sure pcscd runs and lists readers `0..readers`, starting it with
/// our configuration if no pcscd runs. A pcscd of someone else's that lacks
/// readers is left alone, with the command that stops it.
pub fn ensure(readers: usize) -> Result<Pcscd, ReadersError> {
    if readers == 0 || readers > MAX_READERS {
        return Err(ReadersError::Count(readers));
    }
    ensure_readers(0..readers)
}

/// The same for any readers of ours: `Virtual PCD` ones, YubiKey-named
/// ones (from [`YUBIKEY_FIRST`]), or both.
pub fn ensure_readers(needed: Range<usize>) -> Result<Pcscd, ReadersError> {
    if needed.is_empty() || needed.end > YUBIKEY_FIRST + YUBIKEY_READERS {
        return Err(ReadersError::Count(needed.len()));
    }
    ensure_layout(Layout::holding(needed.clone()), needed, false)
}

/// Makes sure pcscd lists every reader of `layout`. With `restart_ours`, a
/// pcscd that we started with fewer readers is restarted with both
/// configurations' readers: served cards come back by themselves, because
/// vpcd dials them again, but PC/SC programs that hold a card lose it, so
/// only `s9card pcscd`, asked in so many words, does that.
pub fn ensure_layout(
    layout: Layout,
    needed: impl IntoIterator<Item = usize>,
    restart_ours: bool,
) -> Result<Pcscd, ReadersError> {
    let numbers: Vec<usize> = needed.into_iter().collect();
    let count = numbers.len();
    // Someone else's pcscd: it is ours to use if it lists them all.
    let running = |pid| {
        let shown = wait_shown(&numbers, Duration::from_secs(5));
        if shown == count {
            Ok(Pcscd::Running)
        } else {
            Err(ReadersError::Foreign {
                pid,
                shown,
                needed: count,
            })
        }
    };
    let pid = match pcscd_pid() {
        Some(pid) => Some(pid),
        // No pcscd: a socket-activated one starts with the first PC/SC
        // call, and is then someone else's.
        None if shown_of(numbers.iter().copied()) == count => return Ok(Pcscd::Running),
        None => pcscd_pid(),
    };
    if let Some(pid) = pid {
        match running(pid) {
            Err(ReadersError::Foreign { .. }) if restart_ours && is_ours(pid) => {
                let had = configured_layout().unwrap_or(layout);
                stop_pcscd(pid)?;
                return start(had.union(layout), &numbers);
            }
            other => return other,
        }
    }
    start(layout, &numbers)
}

fn start(layout: Layout, numbers: &[usize]) -> Result<Pcscd, ReadersError> {
    let count = numbers.len();
    if Command::new("pcscd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err(ReadersError::NoPcscd);
    }
    let conf = write_configuration(layout)?;
    let mut start = as_root("pcscd");
    start.arg("-c").arg(&conf);
    // Without systemd (containers, CI) pcscd daemonises itself.
    run(start, "starting pcscd")?;
    // A cold machine has taken more than 10 s to list them.
    if wait_shown(numbers, Duration::from_secs(30)) < count {
        return Err(ReadersError::NotListed(count));
    }
    let pid = pcscd_pid().ok_or(ReadersError::NotListed(count))?;
    // A vpcd build that cannot dial again aborts pcscd at the first
    // presence poll (400 ms) of an empty reader.
    std::thread::sleep(Duration::from_millis(1000));
    if !alive(pid) {
        return Err(ReadersError::Command(format!(
            "pcscd stopped right after it started: this vpcd driver ({}) cannot dial its cards again \
             (vsmartcard before June 2022, a build this version of s9card does not recognise)",
            stock_driver().display()
        )));
    }
    Ok(Pcscd::Started(pid))
}

/// The layout of the configuration we last wrote, from its entries.
pub fn configured_layout() -> Option<Layout> {
    let text = std::fs::read_to_string(Path::new(CONF_DIR).join("reader.conf")).ok()?;
    let mut layout = Layout {
        readers: 0,
        yubikey: false,
    };
    for line in text.lines() {
        let Some(name) = line.strip_prefix("FRIENDLYNAME") else {
            continue;
        };
        let name = name.trim().trim_matches('"');
        if name == YUBIKEY_NAME {
            layout.yubikey = true;
        } else {
            layout.readers += SLOTS_PER_ENTRY;
        }
    }
    (layout.readers > 0).then_some(layout)
}

/// Whether pcscd `pid` is one we started: its command line names our
/// configuration.
fn is_ours(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains(CONF_DIR)
}

fn wait_shown(readers: &[usize], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let n = shown_of(readers.iter().copied());
        if n == readers.len() || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the pcscd we started (process `pid`), if it is still ours: its
/// command line names our configuration.
pub fn stop_pcscd(pid: u32) -> Result<bool, ReadersError> {
    if !is_ours(pid) {
        return Ok(false);
    }
    let mut kill = as_root("kill");
    kill.args(["-TERM", &pid.to_string()]);
    run(kill, "stopping pcscd")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On this machine (Linux's default range, 32768–60999) the readers'
    /// ports are outside the ephemeral range.
    #[test]
    fn the_readers_ports_are_never_a_dial_source() {
        assert_eq!(ephemeral_overlap(), None);
        const { assert!(PORTS.end <= 32768) };
    }

    #[test]
    fn names_and_ports_follow_the_reader_number() {
        assert_eq!(reader_name(0), "Virtual PCD 00 00");
        assert_eq!(reader_name(1), "Virtual PCD 00 01");
        assert_eq!(reader_name(2), "Virtual PCD 1 00 00");
        assert_eq!(reader_name(7), "Virtual PCD 3 00 01");
        assert_eq!(reader_port(0), 29963);
        assert_eq!(reader_port(7), 29970);
        assert_eq!(MAX_READERS, 14);
        assert_eq!(reader_name(YUBIKEY_FIRST), "Yubico YubiKey CCID 00 00");
        assert_eq!(reader_port(YUBIKEY_FIRST), 29977);
        // No name is a part of another's, so a substring match finds one.
        let names: Vec<String> = (0..YUBIKEY_FIRST + YUBIKEY_READERS)
            .map(reader_name)
            .collect();
        for (i, a) in names.iter().enumerate() {
            for (j, b) in names.iter().enumerate() {
                assert!(i == j || !b.contains(a.as_str()), "{a} in {b}");
            }
        }
    }

    #[test]
    fn every_entry_loads_its_own_driver_copy() {
        let dir = Path::new("/run/s9card/pcscd");
        let layout = Layout {
            readers: 5,
            yubikey: true,
        };
        let (text, copies) = configuration(layout, dir);
        let copy = |name: &str, single_slot| DriverCopy {
            path: dir.join(name),
            single_slot,
        };
        assert_eq!(
            copies,
            [
                copy("libifdvpcd-0.so", false),
                copy("libifdvpcd-1.so", false),
                copy("libifdvpcd-2.so", false),
                copy("libifdvpcd-yubikey.so", true)
            ]
        );
        let entries: Vec<&str> = text.split("\nFRIENDLYNAME ").skip(1).collect();
        assert_eq!(entries.len(), 4);
        assert!(entries[0].starts_with("\"Virtual PCD\"\nDEVICENAME   127.0.0.1:29963\n"));
        assert!(
            entries[0]
                .contains("LIBPATH      /run/s9card/pcscd/libifdvpcd-0.so\nCHANNELID    29963")
        );
        assert!(entries[2].starts_with("\"Virtual PCD 2\"\nDEVICENAME   127.0.0.1:29967\n"));
        assert!(entries[2].contains("LIBPATH      /run/s9card/pcscd/libifdvpcd-2.so"));
        assert!(entries[3].starts_with("\"Yubico YubiKey CCID\"\nDEVICENAME   127.0.0.1:29977\n"));
        assert!(entries[3].contains("LIBPATH      /run/s9card/pcscd/libifdvpcd-yubikey.so"));
        // vsmartcard's listening mode (`/dev/null:PORT`) listens on every
        // interface: no entry of ours is in it.
        assert!(!text.contains("/dev/null"));
    }

    #[test]
    fn the_yubikey_reader_is_there_only_when_a_yubikey_card_is() {
        let dir = Path::new("/run/s9card/pcscd");
        let series9 = Layout::holding(0..8);
        assert_eq!(
            series9,
            Layout {
                readers: 8,
                yubikey: false
            }
        );
        let (text, copies) = configuration(series9, dir);
        assert!(!text.contains(YUBIKEY_NAME));
        assert!(copies.iter().all(|c| !c.single_slot));
        assert_eq!(
            series9.reader_numbers().collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );

        let yubikey = Layout::holding(YUBIKEY_FIRST..YUBIKEY_FIRST + 1);
        assert_eq!(
            yubikey,
            Layout {
                readers: 2,
                yubikey: true
            }
        );
        assert_eq!(
            yubikey.reader_numbers().collect::<Vec<_>>(),
            [0, 1, YUBIKEY_FIRST]
        );
        let (text, _) = configuration(yubikey, dir);
        assert_eq!(text.matches("FRIENDLYNAME").count(), 2);
        assert!(text.contains("\"Yubico YubiKey CCID\"\nDEVICENAME   127.0.0.1:29977\n"));
        assert_eq!(
            series9.union(yubikey),
            Layout {
                readers: 8,
                yubikey: true
            }
        );
    }
}
