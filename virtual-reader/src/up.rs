//! `s9card up` and `s9card down`: cards in PC/SC readers in one call, for
//! any CI job, and exactly that taken down again.
//!
//! `up` installs nothing. It checks what it needs and names each missing
//! piece with the package that brings it, starts pcscd with the vpcd
//! readers if none runs (through sudo when not root), creates fresh virtual
//! cards in a state directory, serves them from an `s9card serve` in the
//! background, waits until PC/SC shows every card, and writes what it
//! started to `up.json` there. `down` reads that file: it stops that server
//! and, if `up` started pcscd, that pcscd (nothing else), and removes the
//! cards; the server's log and its trace (secrets redacted) stay for the
//! CI job to keep.

use std::ops::Range;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::readers::{self, Pcscd, alive};
use crate::{Error, Result};
use client::{Pcsc, PivClient};
use virtual_card::Entropy;

/// The card profiles `up` can serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CardProfile {
    /// The NHS Series 9 staff card (PIV with the Series 9 rules).
    Series9,
    /// A card that tools take for a YubiKey 5.7 (PIV only), in a reader
    /// named like one.
    Yubikey,
}

impl CardProfile {
    /// The first `cards` readers of this profile: Series 9 cards go in the
    /// `Virtual PCD` readers from 0, YubiKey-compatible ones in the readers
    /// named like a YubiKey (each in the first empty ones).
    pub fn readers(self, cards: usize) -> std::ops::Range<usize> {
        let first = match self {
            CardProfile::Series9 => 0,
            CardProfile::Yubikey => readers::YUBIKEY_FIRST,
        };
        first..first + cards
    }

    /// How many cards of this profile can be up at once.
    pub fn max_cards(self) -> usize {
        match self {
            CardProfile::Series9 => readers::MAX_READERS,
            CardProfile::Yubikey => readers::YUBIKEY_READERS,
        }
    }

    /// The card's profile as its factory record says it, with PIN
    /// complexity or without; `None` for complexity on a Series 9 card,
    /// whose passcode rules are the NHS's own.
    pub fn profile(self, pin_complexity: bool) -> Option<applet::Profile> {
        match (self, pin_complexity) {
            (CardProfile::Series9, false) => Some(applet::Profile::Series9),
            (CardProfile::Series9, true) => None,
            (CardProfile::Yubikey, pin_complexity) => {
                Some(applet::Profile::YubiKey { pin_complexity })
            }
        }
    }
}

/// What is said when `--pin-complexity` comes without `--profile yubikey`.
pub const COMPLEXITY_NEEDS_YUBIKEY: &str =
    "--pin-complexity is a YubiKey profile setting (--profile yubikey)";

/// What `up` is asked for.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// How many cards (one reader each).
    pub cards: usize,
    /// Which card.
    pub profile: CardProfile,
    /// YubiKey profile: refuse trivial new PINs and PUKs.
    pub pin_complexity: bool,
    /// A latency profile (built-in name or file).
    pub latency: Option<String>,
    /// Serve the cards as firmware under QEMU: this ELF.
    pub firmware: Option<PathBuf>,
    /// Seed the cards' keys and the latency draws.
    pub seed: Option<u64>,
    /// Where the cards, the state file and the logs go.
    pub state: PathBuf,
    /// Serve the cards as contactless cards.
    pub contactless: bool,
    /// Make the cards ready for PIV secure messaging with this suite (key
    /// `04`, its CVC, the signer's certificate, from a CA in the state
    /// directory).
    pub secure_messaging: Option<client::Suite>,
    /// With secure messaging, the cards' pairing code (none: the virtual
    /// contact interface opens with the session).
    pub pairing_code: Option<String>,
}

/// One card `up` serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardState {
    /// Its PC/SC reader.
    pub reader: String,
    /// Its serial, as printed on a card (`09` and eight digits).
    pub serial: String,
    /// Its image (or firmware flash file).
    pub image: PathBuf,
}

/// What `up` started, as `up.json` keeps it (and `--json` prints it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpState {
    /// The card profile.
    pub profile: CardProfile,
    /// The latency profile, if any.
    pub latency: Option<String>,
    /// The background `s9card serve`.
    pub server_pid: u32,
    /// The pcscd `up` started, if it started one.
    pub pcscd_pid: Option<u32>,
    /// The server's control socket (`s9card eject --control …`).
    pub control: PathBuf,
    /// An OpenSC configuration that shows every card (`OPENSC_CONF`);
    /// OpenSC's own shows four.
    pub opensc_conf: PathBuf,
    /// The server's log.
    pub log: PathBuf,
    /// Its trace, secrets redacted (`s9card trace decode`).
    pub trace: PathBuf,
    /// The cards, in reader order.
    pub cards: Vec<CardState>,
    /// The interface they are in: `contact` or `contactless`.
    #[serde(default)]
    pub interface: String,
    /// Their secure messaging suite (`CS2`, `CS7`), if they have one.
    #[serde(default)]
    pub secure_messaging: Option<String>,
    /// Their pairing code, if they have one (a test value, as the
    /// factory PIN is).
    #[serde(default)]
    pub pairing_code: Option<String>,
}

/// The state file `up` writes in its state directory.
pub const STATE_FILE: &str = "up.json";

/// Whether `program` is on the PATH (or in the sbin directories pcscd
/// lives in, which a user's PATH may lack).
fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(program).is_file())
}

/// Every missing prerequisite, each with what brings it.
pub fn missing(options: &UpOptions) -> Vec<String> {
    let mut missing = Vec::new();
    if !on_path("pcscd") {
        missing.push("pcscd is not installed (apt-get install pcscd)".to_string());
    }
    let driver = readers::stock_driver();
    if !driver.exists() {
        missing.push(format!(
            "vsmartcard's vpcd reader driver is not installed ({} is missing; apt-get install vsmartcard-vpcd)",
            driver.display()
        ));
    }
    if readers::pcscd_pid().is_none() && !readers::is_root() && !on_path("sudo") {
        missing.push(
            "pcscd is not running and starting it needs root: run as root, install sudo, or start pcscd with vpcd yourself".to_string(),
        );
    }
    if options.firmware.is_some() && (options.contactless || options.secure_messaging.is_some()) {
        missing.push(
            "the firmware card is a contact card made at the factory: serve the host card for the contactless interface and secure messaging (or give the firmware card its SM key over PC/SC)".to_string(),
        );
    }
    if let Some(elf) = &options.firmware {
        if !on_path("qemu-system-arm") {
            missing.push(
                "qemu-system-arm is not installed (apt-get install qemu-system-arm)".to_string(),
            );
        }
        if !elf.is_file() {
            missing.push(format!(
                "no firmware at {} (cd firmware && cargo build --release)",
                elf.display()
            ));
        }
    }
    if options.profile.profile(options.pin_complexity).is_none() {
        missing.push(COMPLEXITY_NEEDS_YUBIKEY.to_string());
    }
    let most = options.profile.max_cards();
    if options.cards == 0 || options.cards > most {
        missing.push(format!(
            "--cards {}: from 1 to {most} for this profile",
            options.cards,
        ));
    }
    missing
}

/// Whether process `pid` is the `s9card serve` of this state.
fn is_our_server(pid: u32, control: &Path) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text = String::from_utf8_lossy(&cmdline);
    text.contains("serve") && text.contains(&*control.to_string_lossy())
}

/// Reads a state file.
pub fn read_state(dir: &Path) -> Result<Option<UpState>> {
    let path = dir.join(STATE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| Error::State { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::file(&path)(e)),
    }
}

/// Brings the cards up; `exe` is the `s9card` binary to serve them with.
pub fn up(options: &UpOptions, exe: &Path) -> Result<UpState> {
    let missing = missing(options);
    if !missing.is_empty() {
        return Err(Error::Missing(missing));
    }
    if let Some(old) = read_state(&options.state)? {
        if alive(old.server_pid) && is_our_server(old.server_pid, &old.control) {
            return Err(Error::AlreadyUp {
                pid: old.server_pid,
                state: options.state.clone(),
            });
        }
        // A server that died, or a machine that rebooted: start afresh.
        let _ = std::fs::remove_file(options.state.join(STATE_FILE));
    }
    private_files::dir_all(&options.state).map_err(Error::file(&options.state))?;
    // Cards another server already serves (the one `scripts/setup` serves,
    // say) keep their readers: ours go in the first empty readers after
    // them, so there must be readers enough for both.
    let past_occupied = occupied(options.profile).map_or(0, |last| last + 1);
    let needed = options.profile.readers(past_occupied + options.cards);
    let pcscd = match options.profile {
        // Both readers of the first entry, as stock vpcd shows them.
        CardProfile::Series9 => readers::ensure(needed.end.max(2)),
        CardProfile::Yubikey => readers::ensure_readers(needed),
    }?;
    let pcscd_pid = match pcscd {
        Pcscd::Started(pid) => Some(pid),
        Pcscd::Running => None,
    };
    let started = empty_readers(options.profile, options.cards)
        .ok_or(Error::NoEmptyReaders(options.cards))
        .and_then(|numbers| start_server(options, numbers, exe));
    let described = started.and_then(|s| {
        let pid = s.pid;
        describe(options, s, pcscd_pid).inspect_err(|_| stop_server(pid))
    });
    let state = match described {
        Ok(state) => state,
        Err(e) => {
            // Leave nothing running behind a failure.
            if let Some(pid) = pcscd_pid {
                let _ = readers::stop_pcscd(pid);
            }
            return Err(e);
        }
    };
    let path = options.state.join(STATE_FILE);
    let json = serde_json::to_string_pretty(&state).map_err(|source| Error::State {
        path: path.clone(),
        source,
    })?;
    private_files::write(&path, json.as_bytes()).map_err(Error::file(&path))?;
    Ok(state)
}

/// The last of this profile's readers that holds a card now, if any does.
fn occupied(profile: CardProfile) -> Option<usize> {
    let listed = readers::listed();
    profile
        .readers(profile.max_cards())
        .rev()
        .find(|&n| readers::shows(&listed, n, true))
}

/// The first `cards` readers in a row of this profile that PC/SC shows
/// empty.
fn empty_readers(profile: CardProfile, cards: usize) -> Option<Range<usize>> {
    let listed = readers::listed();
    let empty = |n: usize| readers::shows(&listed, n, false);
    let all = profile.readers(profile.max_cards());
    (all.start..=all.end.checked_sub(cards)?)
        .map(|first| first..first + cards)
        .find(|run| run.clone().all(empty))
}

/// A started server: its pid, the readers and what it serves.
struct Started {
    pid: u32,
    readers: Range<usize>,
    images: Vec<PathBuf>,
    control: PathBuf,
    log: PathBuf,
    trace: PathBuf,
}

fn start_server(options: &UpOptions, numbers: Range<usize>, exe: &Path) -> Result<Started> {
    let dir = &options.state;
    let mut images = Vec::new();
    for n in 0..options.cards {
        let image = dir.join(format!("card{n}.s9img"));
        let _ = std::fs::remove_file(&image);
        let serial = 900_000_001 + n as u32;
        let entropy = options
            .seed
            .map_or(Entropy::Os, |s| Entropy::Seed(s.wrapping_add(n as u64)));
        let profile = options
            .profile
            .profile(options.pin_complexity)
            .ok_or(Error::ComplexityNeedsYubiKey)?;
        let make = virtual_card::Make::virtual_card(serial, profile);
        if options.firmware.is_some() {
            let flash = image.with_extension("flash");
            let _ = std::fs::remove_file(&flash);
            let _ = std::fs::remove_file(virtual_card::image::key_store_path(&flash));
            virtual_card::firmware::init(&flash, make, entropy).map_err(Error::image(&flash))?;
            images.push(flash);
        } else {
            virtual_card::init(&image, make, entropy).map_err(Error::image(&image))?;
            if let Some(suite) = options.secure_messaging {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                cms::sm::ready_image(
                    &image,
                    &dir.join("ca"),
                    suite,
                    options.pairing_code.as_deref(),
                    now,
                )
                .map_err(|e| Error::SecureMessaging(e.to_string()))?;
            }
            images.push(image);
        }
    }
    let control = dir.join("s9card.sock");
    let log = dir.join("server.log");
    let trace = dir.join("trace.raw");
    let mut command = Command::new(exe);
    command.arg("serve");
    for image in &images {
        command.arg("--image").arg(image);
    }
    command
        .arg("--vpcd")
        .arg(format!("127.0.0.1:{}", readers::reader_port(numbers.start)))
        .arg("--control")
        .arg(&control)
        .arg("--trace")
        .arg(&trace);
    if let Some(l) = &options.latency {
        command.args(["--latency", l]);
        if let Some(seed) = options.seed {
            command.args(["--latency-seed", &seed.to_string()]);
        }
    }
    if let Some(elf) = &options.firmware {
        command.arg("--firmware").arg(elf);
    }
    if options.contactless {
        command.args(["--interface", "contactless"]);
    }
    let log_file = private_files::append(&log).map_err(Error::file(&log))?;
    let log_err = log_file.try_clone()?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        // Its own process group: a Ctrl-C in the shell that ran `up`, or
        // the CI step ending, does not take the cards with it.
        .process_group(0)
        .spawn()
        .map_err(Error::file(exe))?;
    let pid = child.id();
    let started = Started {
        pid,
        readers: numbers,
        images,
        control,
        log,
        trace,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut child = child;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&started.log).unwrap_or_default();
            return Err(Error::ServerExited { status, log });
        }
        let listed = readers::listed();
        let all = started
            .readers
            .clone()
            .all(|n| readers::shows(&listed, n, true));
        if all {
            return Ok(started);
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            return Err(Error::NotShown {
                cards: options.cards,
                log: started.log,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn describe(options: &UpOptions, started: Started, pcscd_pid: Option<u32>) -> Result<UpState> {
    let opensc_conf = options.state.join("opensc.conf");
    private_files::write(&opensc_conf, readers::opensc_conf().as_bytes())
        .map_err(Error::file(&opensc_conf))?;
    let mut cards = Vec::new();
    for (n, image) in started.readers.clone().zip(&started.images) {
        let reader = readers::reader_name(n);
        let mut client = PivClient::new(Pcsc::connect_exact(&reader)?);
        client.select()?;
        // A contactless card says who it is only inside its virtual
        // contact interface.
        if options.contactless && options.secure_messaging.is_some() {
            cms::sm::open_vci(&mut client, None, options.pairing_code.as_deref())
                .map_err(|e| Error::SecureMessaging(e.to_string()))?;
        }
        let serial = client.card_info()?.serial;
        cards.push(CardState {
            reader,
            serial: format!("{serial:010}"),
            image: image.clone(),
        });
    }
    Ok(UpState {
        profile: options.profile,
        latency: options.latency.clone(),
        server_pid: started.pid,
        pcscd_pid,
        control: started.control,
        opensc_conf,
        log: started.log,
        trace: started.trace,
        cards,
        interface: if options.contactless {
            "contactless"
        } else {
            "contact"
        }
        .into(),
        secure_messaging: options.secure_messaging.map(|s| {
            match s {
                client::Suite::Cs2 => "CS2",
                client::Suite::Cs7 => "CS7",
            }
            .into()
        }),
        pairing_code: options.secure_messaging.and(options.pairing_code.clone()),
    })
}

/// Stops a server `up` started: TERM, and KILL if it has not gone in ten
/// seconds.
fn stop_server(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// What `down` stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Down {
    /// The server, if it was still running.
    pub server: Option<u32>,
    /// The pcscd `up` had started, if it was still running.
    pub pcscd: Option<u32>,
}

/// Stops what `up` started in `dir`, and only that.
pub fn down(dir: &Path) -> Result<Down> {
    let Some(state) = read_state(dir)? else {
        return Err(Error::NothingUp(dir.to_path_buf()));
    };
    let server = (alive(state.server_pid) && is_our_server(state.server_pid, &state.control))
        .then_some(state.server_pid);
    if let Some(pid) = server {
        stop_server(pid);
    }
    let pcscd = match state.pcscd_pid {
        Some(pid) if alive(pid) => readers::stop_pcscd(pid)?.then_some(pid),
        _ => None,
    };
    for card in &state.cards {
        let _ = std::fs::remove_file(&card.image);
        // A firmware card's key store, if it has one.
        let _ = std::fs::remove_file(virtual_card::image::key_store_path(&card.image));
    }
    let _ = std::fs::remove_file(&state.control);
    let _ = std::fs::remove_file(&state.opensc_conf);
    let state_file = dir.join(STATE_FILE);
    std::fs::remove_file(&state_file).map_err(Error::file(&state_file))?;
    // Return once PC/SC has seen the cards leave, so that whatever runs
    // next finds empty readers.
    let deadline = Instant::now() + Duration::from_secs(5);
    while state.cards.iter().any(|c| {
        readers::listed()
            .iter()
            .any(|(r, present)| *r == c.reader && *present)
    }) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Down { server, pcscd })
}
