//! Virtual readers for N cards: the vpcd reader configuration, pcscd started
//! with it, and what PC/SC sees.
//!
//! vsmartcard's stock configuration is one vpcd reader with two slots
//! (ports 35963 and 35964). More cards need more reader entries, and two
//! facts of vpcd 0.8 and pcscd 1.9 shape how:
//!
//! - the driver keeps its connections in one static array indexed by slot,
//!   so two entries that load the same driver file overwrite each other's
//!   slots (both listen, only the last answers). Each entry after the first
//!   therefore loads its own copy of the driver: the dynamic loader keeps
//!   one instance per file, with its own statics.
//! - pcscd names a reader after its entry's FRIENDLYNAME and numbers only
//!   readers of one driver file, so every entry gets a name of its own:
//!   `Virtual PCD` (as stock, `Virtual PCD 00 00` and `00 01`), then
//!   `Virtual PCD 1`, `Virtual PCD 2`…
//!
//! After them comes one reader named like a YubiKey's, `Yubico YubiKey
//! CCID 00 00` (reader 14): much PIV software looks for that name, and the
//! card of the YubiKey profile is served there. Its entry loads a copy of
//! the driver made single-slot ([`crate::vpcd_driver`]), because a second,
//! empty YubiKey-named reader makes ykman count two devices and wait 3 s
//! at every command. It is in every configuration of ours, so a card of
//! either profile needs no restart of pcscd.
//!
//! Reader `n` listens on port 35963 + `n`, which is where `s9card serve`
//! puts its `n`-th card. The configuration lives in its own root-owned
//! directory (`/run/s9card/pcscd`) and pcscd is started with `-c` on it:
//! the system's `/etc/reader.conf.d` is never changed, and the driver
//! copies a root daemon loads are never writable by the user.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// vpcd's first port (`0x8C7B`): reader 0.
pub const BASE_PORT: u16 = 35963;
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
                 Stop it (sudo systemctl stop pcscd.socket pcscd.service, or sudo kill {pid}) and run again"
            ),
            ReadersError::Command(e) => write!(f, "{e}"),
            ReadersError::NotListed(n) => {
                write!(f, "pcscd started but did not list the {n} vpcd readers")
            }
            ReadersError::Io(e) => write!(f, "reader configuration: {e}"),
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

/// A driver file of the configuration's, beside the stock one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverCopy {
    /// Where it goes.
    pub path: PathBuf,
    /// Whether it is made single-slot (the YubiKey-named entry's).
    pub single_slot: bool,
}

/// The configuration file's text for `readers` `Virtual PCD` readers and
/// the YubiKey-named one, and the driver copies it names under `dir`.
pub fn configuration(readers: usize, dir: &Path, driver: &Path) -> (String, Vec<DriverCopy>) {
    let entries = readers.div_ceil(SLOTS_PER_ENTRY);
    let yubikey_entry = YUBIKEY_FIRST / SLOTS_PER_ENTRY;
    let mut text = String::from(
        "# s9card: vpcd readers for s9card serve (reader n on port 35963 + n).\n\
         # Written by `s9card pcscd`; pcscd runs with -c on this file.\n",
    );
    let mut copies = Vec::new();
    for entry in (0..entries).chain([yubikey_entry]) {
        let (name, library) = if entry == yubikey_entry {
            let path = dir.join("libifdvpcd-yubikey.so");
            copies.push(DriverCopy {
                path: path.clone(),
                single_slot: true,
            });
            (YUBIKEY_NAME.to_string(), path)
        } else if entry == 0 {
            ("Virtual PCD".to_string(), driver.to_path_buf())
        } else {
            let path = dir.join(format!("libifdvpcd-{entry}.so"));
            copies.push(DriverCopy {
                path: path.clone(),
                single_slot: false,
            });
            (format!("Virtual PCD {entry}"), path)
        };
        let port = reader_port(entry * SLOTS_PER_ENTRY);
        text.push_str(&format!(
            "\nFRIENDLYNAME \"{name}\"\nDEVICENAME   /dev/null:{port}\nLIBPATH      {}\nCHANNELID    {port}\n",
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

/// Writes the configuration for `readers` readers into [`CONF_DIR`] as
/// root; returns the configuration file.
pub fn write_configuration(readers: usize) -> Result<PathBuf, ReadersError> {
    if readers == 0 || readers > MAX_READERS {
        return Err(ReadersError::Count(readers));
    }
    let driver = stock_driver();
    if !driver.exists() {
        return Err(ReadersError::NoDriver(driver));
    }
    let dir = Path::new(CONF_DIR);
    let (text, copies) = configuration(readers, dir, &driver);
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
    for copy in copies {
        let single = if copy.single_slot {
            match crate::vpcd_driver::single_slot(&std::fs::read(&driver)?) {
                Ok(bytes) => Some(tempfile_in_tmp(&bytes)?),
                Err(e) => {
                    tracing::warn!(
                        "{}: {e}; the {YUBIKEY_NAME} entry keeps its second, empty reader",
                        driver.display()
                    );
                    None
                }
            }
        } else {
            None
        };
        let mut put = as_root("install");
        put.args(["-m", "0644"])
            .arg(single.as_deref().unwrap_or(&driver))
            .arg(&copy.path);
        let copied = run(put, "copying the vpcd driver");
        if let Some(staged) = single {
            let _ = std::fs::remove_file(staged);
        }
        copied?;
    }
    Ok(conf)
}

fn tempfile_in_tmp(bytes: &[u8]) -> Result<PathBuf, ReadersError> {
    let path = crate::private::temp_path("s9card-reader-conf-")?;
    crate::private::write_new(&path, bytes)?;
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

/// How many of readers `0..readers` PC/SC lists.
pub fn shown(readers: usize) -> usize {
    shown_of(0..readers)
}

/// How many of these readers PC/SC lists.
pub fn shown_of(readers: Range<usize>) -> usize {
    let listed = listed();
    readers
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
    let count = needed.len();
    if needed.is_empty() || needed.end > PCSCD_READERS {
        return Err(ReadersError::Count(count));
    }
    // Someone else's pcscd: it is ours to use if it lists them all.
    let foreign = |pid| {
        let shown = wait_shown(needed.clone(), Duration::from_secs(5));
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
    if let Some(pid) = pcscd_pid() {
        return foreign(pid);
    }
    // No pcscd: a socket-activated one starts with the first PC/SC call,
    // and is then someone else's.
    if shown_of(needed.clone()) == count {
        return Ok(Pcscd::Running);
    }
    if let Some(pid) = pcscd_pid() {
        return foreign(pid);
    }
    if Command::new("pcscd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err(ReadersError::NoPcscd);
    }
    let virtual_readers = needed.end.clamp(SLOTS_PER_ENTRY, MAX_READERS);
    let conf = write_configuration(virtual_readers)?;
    let mut start = as_root("pcscd");
    start.arg("-c").arg(&conf);
    // Without systemd (containers, CI) pcscd daemonises itself.
    run(start, "starting pcscd")?;
    // A cold machine has taken more than 10 s to list them.
    if wait_shown(needed.clone(), Duration::from_secs(30)) < count {
        return Err(ReadersError::NotListed(count));
    }
    let pid = pcscd_pid().ok_or(ReadersError::NotListed(count))?;
    Ok(Pcscd::Started(pid))
}

fn wait_shown(readers: Range<usize>, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let n = shown_of(readers.clone());
        if n == readers.len() || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the pcscd we started (process `pid`), if it is still ours: its
/// command line names our configuration.
pub fn stop_pcscd(pid: u32) -> Result<bool, ReadersError> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = String::from_utf8_lossy(&cmdline).contains(CONF_DIR);
    if !ours {
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

    #[test]
    fn names_and_ports_follow_the_reader_number() {
        assert_eq!(reader_name(0), "Virtual PCD 00 00");
        assert_eq!(reader_name(1), "Virtual PCD 00 01");
        assert_eq!(reader_name(2), "Virtual PCD 1 00 00");
        assert_eq!(reader_name(7), "Virtual PCD 3 00 01");
        assert_eq!(reader_port(0), 35963);
        assert_eq!(reader_port(7), 35970);
        assert_eq!(MAX_READERS, 14);
        assert_eq!(reader_name(YUBIKEY_FIRST), "Yubico YubiKey CCID 00 00");
        assert_eq!(reader_port(YUBIKEY_FIRST), 35977);
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
    fn every_entry_after_the_first_loads_its_own_driver_copy() {
        let dir = Path::new("/run/s9card/pcscd");
        let (text, copies) = configuration(5, dir, Path::new("/lib/vpcd.so"));
        let copy = |name: &str, single_slot| DriverCopy {
            path: dir.join(name),
            single_slot,
        };
        assert_eq!(
            copies,
            [
                copy("libifdvpcd-1.so", false),
                copy("libifdvpcd-2.so", false),
                copy("libifdvpcd-yubikey.so", true)
            ]
        );
        let entries: Vec<&str> = text.split("\nFRIENDLYNAME ").skip(1).collect();
        assert_eq!(entries.len(), 4);
        assert!(entries[0].starts_with("\"Virtual PCD\"\nDEVICENAME   /dev/null:35963\n"));
        assert!(entries[0].contains("LIBPATH      /lib/vpcd.so\nCHANNELID    35963"));
        assert!(entries[2].starts_with("\"Virtual PCD 2\"\nDEVICENAME   /dev/null:35967\n"));
        assert!(entries[2].contains("LIBPATH      /run/s9card/pcscd/libifdvpcd-2.so"));
        assert!(entries[3].starts_with("\"Yubico YubiKey CCID\"\nDEVICENAME   /dev/null:35977\n"));
        assert!(entries[3].contains("LIBPATH      /run/s9card/pcscd/libifdvpcd-yubikey.so"));
    }
}
