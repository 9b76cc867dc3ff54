//! A card for integrators' tests, in one call, torn down on drop.
//!
//! ```no_run
//! use virtual_reader::fixture;
//!
//! // In this process, through the host PIV client: no pcscd needed.
//! let mut card = fixture::card().latency("yubikey5").seed(7).in_process()?;
//! card.client().select()?;
//!
//! // In a vpcd reader, for software that goes through PC/SC.
//! let served = fixture::card().pcsc()?;
//! let mut client = served.client()?;
//! client.select()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Each card is a fresh virtual card on its own image in a private
//! temporary directory (mode 0700, removed on drop), with the factory PIN
//! `123456`, PUK `12345678` and management key. A served card takes the
//! first vpcd reader no other fixture or `s9card` test holds (a lock file
//! per reader), and runs the server in a thread of this process: no
//! `s9card` binary is needed, and dropping the fixture takes the card out
//! of its reader.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::control::Request;
use crate::latency::{self, Latency, Profile};
use crate::readers;
use crate::server;
use crate::up::CardProfile;
use crate::{Error, Result};
use client::{self, Pcsc, PivClient, Transport};
use virtual_card::{Entropy, SimCard};

/// What card the fixture makes.
#[derive(Clone, Debug)]
pub struct CardBuilder {
    profile: CardProfile,
    pin_complexity: bool,
    latency: Option<String>,
    seed: Option<u64>,
    serial: Option<u32>,
    interface: server::Interface,
    secure_messaging: Option<(client::Suite, Option<String>)>,
}

/// A factory-fresh virtual card, to be configured and then made.
pub fn card() -> CardBuilder {
    CardBuilder {
        profile: CardProfile::Series9,
        pin_complexity: false,
        latency: None,
        seed: None,
        serial: None,
        interface: server::Interface::Contact,
        secure_messaging: None,
    }
}

impl CardBuilder {
    /// Which card (`s9card up --profile`): the Series 9 staff card unless
    /// set.
    pub fn profile(mut self, profile: CardProfile) -> Self {
        self.profile = profile;
        self
    }

    /// With the YubiKey profile: refuse trivial new PINs and PUKs
    /// (`s9card init --pin-complexity`).
    pub fn pin_complexity(mut self) -> Self {
        self.pin_complexity = true;
        self
    }

    /// Answer as slowly as a real card: a built-in profile (`yubikey5`,
    /// `nitrokey3`, `javacard`, `none`) or a profile file.
    pub fn latency(mut self, profile: &str) -> Self {
        self.latency = Some(profile.to_string());
        self
    }

    /// Seed the card's randomness and the latency draws: the same seed
    /// gives the same keys, challenges and waits every run.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Serve the card as a contactless card (`s9card serve --interface
    /// contactless`): the ATR a PC/SC reader makes for one, and PIV's
    /// contactless rules (what needs secure messaging and the virtual
    /// contact interface).
    pub fn contactless(mut self) -> Self {
        self.interface = server::Interface::Contactless;
        self
    }

    /// Make the card ready for PIV secure messaging with `suite`, as
    /// `s9card up --secure-messaging` does: key `04`, its CVC and the
    /// signer's certificate, and `pairing_code` (none: the session alone
    /// opens the virtual contact interface).
    pub fn secure_messaging(mut self, suite: client::Suite, pairing_code: Option<&str>) -> Self {
        self.secure_messaging = Some((suite, pairing_code.map(str::to_string)));
        self
    }

    /// The card's serial (`0900000001` is `900_000_001`); drawn if unset.
    pub fn serial(mut self, serial: u32) -> Self {
        self.serial = Some(serial);
        self
    }

    fn entropy(&self) -> Entropy {
        self.seed.map_or(Entropy::Os, Entropy::Seed)
    }

    fn latency_profile(&self) -> Result<Option<Profile>> {
        self.latency
            .as_deref()
            .map(Profile::load)
            .transpose()
            .map_err(Error::from)
    }

    fn serial_or_draw(&self) -> Result<u32> {
        if let Some(s) = self.serial {
            return Ok(s);
        }
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).map_err(Error::Random)?;
        Ok(900_000_000 + u32::from_le_bytes(b) % 100_000_000)
    }

    /// Makes a fresh image in a private temporary directory.
    fn image(&self) -> Result<(TempDir, PathBuf, u32)> {
        let dir = TempDir::new()?;
        let image = dir.path().join("card.s9img");
        let serial = self.serial_or_draw()?;
        let profile = self
            .profile
            .profile(self.pin_complexity)
            .ok_or(Error::ComplexityNeedsYubiKey)?;
        let make = virtual_card::Make::virtual_card(serial, profile);
        virtual_card::init(&image, make, self.entropy()).map_err(Error::image(&image))?;
        if let Some((suite, code)) = &self.secure_messaging {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            cms::sm::ready_image(&image, &dir.path().join("ca"), *suite, code.as_deref(), now)
                .map_err(|e| Error::SecureMessaging(e.to_string()))?;
        }
        Ok((dir, image, serial))
    }

    /// The card in this process, spoken to through the host PIV client.
    pub fn in_process(self) -> Result<InProcessCard> {
        let latency = self
            .latency_profile()?
            .map(|p| Latency::new(p, self.seed.unwrap_or(0)));
        let (dir, image, serial) = self.image()?;
        let (header, mut card) =
            virtual_card::boot(&image, self.entropy(), false).map_err(Error::image(&image))?;
        virtual_card::set_interface(&mut card, &header, self.interface);
        card.power_on();
        Ok(InProcessCard {
            card: Box::new(card),
            latency,
            serial,
            _dir: dir,
        })
    }

    /// The card in a vpcd reader, for software that uses PC/SC. pcscd with
    /// the vpcd readers must run (`s9card pcscd` or `s9card up` starts it).
    pub fn pcsc(self) -> Result<ServedCard> {
        let latency = self.latency_profile()?;
        let listed = readers::listed();
        // A YubiKey-compatible card goes in a reader named like a YubiKey,
        // an empty one: a card another server serves keeps its reader.
        let lock = self
            .profile
            .readers(self.profile.max_cards())
            .filter(|&n| readers::shows(&listed, n, false))
            .find_map(|n| ReaderLock::try_take(n).map(|lock| (n, lock)));
        let Some((n, lock)) = lock else {
            return Err(if listed.is_empty() {
                Error::NoReaders
            } else {
                Error::ReadersTaken
            });
        };
        let (dir, image, serial) = self.image()?;
        let control = dir.path().join("control.sock");
        let config = server::Config {
            images: vec![image],
            vpcd: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), readers::reader_port(n)),
            trace: None,
            control: control.clone(),
            quickack: true,
            durable: false,
            entropy: self.entropy(),
            null_card: false,
            firmware: None,
            latency,
            latency_seed: self.seed.unwrap_or(0),
            scenario: Vec::new(),
            interface: self.interface,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                if let Err(e) = server::run(config, &stop) {
                    tracing::error!(error = %e, "fixture server");
                }
            })
        };
        let served = ServedCard {
            reader: readers::reader_name(n),
            serial,
            control,
            stop,
            thread: Some(thread),
            _lock: lock,
            _dir: dir,
        };
        served.wait(true)?;
        Ok(served)
    }
}

/// A card in this process.
pub struct InProcessCard {
    card: Box<SimCard>,
    latency: Option<Latency>,
    serial: u32,
    _dir: TempDir,
}

impl InProcessCard {
    /// A PIV client on the card.
    pub fn client(&mut self) -> PivClient<&mut InProcessCard> {
        PivClient::new(self)
    }

    /// The card's serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Takes the card out and puts it back: its volatile state (PIN
    /// verified, management key authenticated, an open chain) is gone.
    pub fn reinsert(&mut self) {
        self.card.power_off();
        self.card.power_on();
    }
}

impl Transport for InProcessCard {
    fn transmit(&mut self, apdu: &[u8]) -> client::Result<Vec<u8>> {
        if let Some(l) = self.latency.as_mut() {
            latency::wait(l.draw(apdu), || false);
        }
        Transport::transmit(self.card.as_mut(), apdu)
    }
}

/// A card in a vpcd reader, served from a thread of this process.
pub struct ServedCard {
    reader: String,
    serial: u32,
    control: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _lock: ReaderLock,
    _dir: TempDir,
}

impl ServedCard {
    /// The PC/SC reader's name.
    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// The card's serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// A PIV client on the card through PC/SC.
    pub fn client(&self) -> client::Result<PivClient<Pcsc>> {
        Pcsc::connect_exact(&self.reader).map(PivClient::new)
    }

    /// The server's control socket (`s9card eject --control`, `scenario`).
    pub fn control(&self) -> &Path {
        &self.control
    }

    /// Takes the card out of its reader, and waits until PC/SC sees it gone.
    pub fn eject(&self) -> Result<()> {
        server::control_send(&self.control, &Request::Eject { reader: 0 })?;
        self.wait(false)
    }

    /// Puts it back, and waits until PC/SC sees it.
    pub fn insert(&self) -> Result<()> {
        server::control_send(&self.control, &Request::Insert { reader: 0 })?;
        self.wait(true)
    }

    fn wait(&self, present: bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !readers::listed()
            .iter()
            .any(|(r, p)| *r == self.reader && *p == present)
        {
            if Instant::now() > deadline {
                return Err(Error::NeverShowed {
                    reader: self.reader.clone(),
                    present,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for ServedCard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The next holder of the reader starts from an empty reader.
        let _ = self.wait(false);
    }
}

/// A machine-wide claim on one vpcd reader, so that tests (fixtures, the
/// end-to-end harness) never serve two cards on one port.
pub struct ReaderLock(#[allow(dead_code)] File);

impl ReaderLock {
    /// Reader `n`, if no one holds it.
    pub fn try_take(n: usize) -> Option<ReaderLock> {
        let f = lock_file(&format!("s9card-reader-{n}.lock")).ok()?;
        f.try_lock().ok()?;
        Some(ReaderLock(f))
    }

    /// Reader `n`, waiting for whoever holds it.
    pub fn take(n: usize) -> std::io::Result<ReaderLock> {
        let f = lock_file(&format!("s9card-reader-{n}.lock"))?;
        f.lock()?;
        Ok(ReaderLock(f))
    }
}

/// Lock file `name` in this user's lock directory
/// ([`private_files::lock_file`]). Locks are per user: cards of two users'
/// tests on one machine are still kept apart by the reader's port, on which
/// only one card can listen, and by the pool's check for an empty reader.
pub fn lock_file(name: &str) -> std::io::Result<File> {
    private_files::lock_file(name)
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let path = private_files::temp_path("s9card-fixture-")?;
        private_files::dir_all(&path).map_err(Error::file(&path))?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
