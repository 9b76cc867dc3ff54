//! The end-to-end harness: pcscd with vpcd, `s9card serve` on temporary card
//! images, and the PC/SC tools, exactly as users run them.
//!
//! Every test takes [`Harness::start`], which takes free readers from the
//! pool (see [`Readers`]), makes sure pcscd is running (starting one if none
//! is, and refusing with a clear message if it cannot), starts its own
//! `s9card serve` in those readers, waits for the cards to appear, and on
//! drop stops everything it started. Tests name their readers through the
//! harness ([`Harness::reader`]), never by number, so that test binaries
//! and the host and firmware passes run side by side.
//!
//! The card is the host simulator's, or with `S9CARD_CARD=firmware` the
//! same card as Cortex-M4 firmware under QEMU (`serve --firmware`, built
//! here on first use), and with `S9CARD_LINE_NOISE=RATE` too that card on
//! a noisy I/O line (`serve --line-noise RATE`, a fixed schedule):
//! `scripts/test` runs the suite in each of the three passes.
//!
//! A module of each test binary rather than a crate: `s9card` is this
//! package's own binary, which cargo builds before the tests and names in
//! `CARGO_BIN_EXE_s9card`. Each binary uses part of it.
#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// OpenSC's PKCS#11 module, as Debian installs it.
pub const PKCS11: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

/// How many readers the harness starts pcscd with when none runs (what
/// `scripts/pcscd-up` starts too): every `Virtual PCD` reader there is, so
/// that the pool is as deep as it can be.
pub const READERS: usize = virtual_reader::readers::MAX_READERS;

pub use virtual_reader::readers::reader_name;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `s9card` binary cargo built for this test binary.
pub fn s9card() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_s9card"))
}

/// Which card the suite runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The simulator's card, in the `s9card serve` process.
    Host,
    /// The firmware under QEMU, behind `s9card serve --firmware`.
    Firmware,
}

impl Kind {
    /// The kind `S9CARD_CARD` names (`host` unless it says `firmware`).
    pub fn current() -> Kind {
        match std::env::var("S9CARD_CARD").as_deref() {
            Ok("firmware") => Kind::Firmware,
            Ok("host") | Err(_) => Kind::Host,
            Ok(other) => panic!("S9CARD_CARD={other}: host or firmware"),
        }
    }
}

/// Builds the firmware (`firmware/`, release) with `args` (features) in
/// `firmware/target/TARGET` (the default target dir without one, where
/// `s9card serve --firmware` users find it); the ELF's path.
pub fn build_firmware(target: Option<&str>, args: &[&str]) -> PathBuf {
    let dir = root().join("firmware");
    let target = target.map_or(dir.join("target"), |t| dir.join("target").join(t));
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked"])
        .args(args)
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&dir)
        .status()
        .expect("cargo");
    assert!(status.success(), "building the firmware ({args:?}) failed");
    target.join("thumbv7em-none-eabihf/release/s9card-firmware")
}

/// The firmware ELF (the full build for mps2-an386), built once per test
/// binary.
pub fn firmware_elf() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build_firmware(None, &[])).clone()
}

/// The Series 9 build of the firmware (P-256 and P-384 only: `--features
/// series9`), built once per test binary in a target dir of its own.
pub fn series9_elf() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            build_firmware(
                Some("series9"),
                &["--no-default-features", "--features", "board-mps2,series9"],
            )
        })
        .clone()
}

/// OpenSC 0.26 built with PIV secure messaging (`scripts/opensc-sm`, which
/// `scripts/setup` runs), its prefix; or a panic naming the command that
/// builds it.
pub fn opensc_sm() -> PathBuf {
    let prefix = root().join("target/opensc-sm");
    assert!(
        prefix.join("bin/pkcs11-tool").is_file(),
        "no OpenSC with PIV secure messaging in {}: run scripts/opensc-sm (scripts/setup does)",
        prefix.display()
    );
    prefix
}

/// Runs a command, returning its output.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (is it installed? see scripts/setup)"))
}

/// Runs a command that must succeed; returns stdout and stderr together.
/// Not for OpenSC's clients, which [`Harness::ok`] runs.
pub fn ok(program: &str, args: &[&str]) -> String {
    succeeded(program, args, run(program, args))
}

/// A command's stdout and stderr together, or a panic with them if it
/// failed.
fn succeeded(program: &str, args: &[&str], out: Output) -> String {
    let text = text(&out);
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

/// A command's stdout and stderr together.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// yubico-piv-tool on the harness's first card; its output, or a panic
/// with it.
pub fn yubico(h: &Harness, args: &[&str]) -> String {
    let reader = h.reader(0);
    let mut all = vec!["-r", &reader];
    all.extend_from_slice(args);
    ok("yubico-piv-tool", &all)
}

/// A fresh P-256 private key from OpenSSL, in PEM at `path`.
pub fn ec_key(path: &Path) {
    let out = path.to_str().unwrap();
    ok(
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            out,
        ],
    );
}

/// A certificate for `pubkey` from a throwaway openssl CA, as a CMS would
/// issue one.
pub fn issue(h: &Harness, pubkey: &Path, cn: &str) -> PathBuf {
    let ca_key = h.path("ca.key");
    let ca = h.path("ca.pem");
    if !ca.exists() {
        ec_key(&ca_key);
        ok(
            "openssl",
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                ca_key.to_str().unwrap(),
                "-subj",
                "/CN=s9card test CA",
                "-days",
                "30",
                "-out",
                ca.to_str().unwrap(),
            ],
        );
    }
    let cert = h.path(&format!("{cn}.pem"));
    ok(
        "openssl",
        &[
            "x509",
            "-new",
            "-force_pubkey",
            pubkey.to_str().unwrap(),
            "-subj",
            &format!("/CN={cn}"),
            "-CA",
            ca.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-days",
            "30",
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    cert
}

/// Generates a P-256 key in `slot` of the harness's first card with
/// yubico-piv-tool (public key in `<slot>.pub`), and imports a certificate
/// for it from [`issue`]; returns the certificate's path.
pub fn key_with_certificate(h: &Harness, slot: &str, cn: &str) -> PathBuf {
    key_with_certificate_in(h, &h.reader(0), slot, cn)
}

/// [`key_with_certificate`] for the card in `reader`.
pub fn key_with_certificate_in(h: &Harness, reader: &str, slot: &str, cn: &str) -> PathBuf {
    let pubkey = h.path(&format!("{cn}-{slot}.pub"));
    let pk = pubkey.to_str().unwrap();
    let piv = |args: &[&str]| {
        let mut all = vec!["-r", reader];
        all.extend_from_slice(args);
        ok("yubico-piv-tool", &all)
    };
    piv(&["-a", "generate", "-s", slot, "-A", "ECCP256", "-o", pk]);
    let cert = issue(h, &pubkey, cn);
    piv(&[
        "-a",
        "import-certificate",
        "-s",
        slot,
        "-i",
        cert.to_str().unwrap(),
    ]);
    cert
}

/// Signs `msg` as a relying party's software does, through OpenSC's PKCS#11
/// module (`--login`, key id `01`, the token in `reader`), and checks the
/// signature with OpenSSL against the public key in `cert`.
pub fn pkcs11_signs_for(h: &Harness, reader: &str, pin: &str, cert: &Path, msg: &[u8]) {
    let sig = pkcs11_sign(h, "msg", &["--slot-description", reader], pin, msg);
    assert!(
        verifies(h, cert, msg, &sig),
        "the signature does not verify"
    );
}

/// Signs `msg` through OpenSC's PKCS#11 module with the key `01` of the
/// token that `select` picks (`--slot-description READER`, `--slot ID`…), as a relying
/// party does; returns the signature's file. Its files are named after
/// `name`, so that signatures can be made side by side.
pub fn pkcs11_sign(h: &Harness, name: &str, select: &[&str], pin: &str, msg: &[u8]) -> PathBuf {
    let msg = h.write(&format!("{name}.txt"), msg);
    let digest = h.path(&format!("{name}.sha256"));
    let (msg, digest) = (msg.to_str().unwrap(), digest.to_str().unwrap());
    ok(
        "openssl",
        &["dgst", "-sha256", "-binary", "-out", digest, msg],
    );
    let sig = h.path(&format!("{name}.sig"));
    let sig = sig.to_str().unwrap();
    let mut args = vec!["--module", PKCS11];
    args.extend_from_slice(select);
    args.extend([
        "--login",
        "--pin",
        pin,
        "--sign",
        "-m",
        "ECDSA",
        "--id",
        "01",
        "--signature-format",
        "openssl",
        "-i",
        digest,
        "-o",
        sig,
    ]);
    pkcs11_tool(h, &args);
    PathBuf::from(sig)
}

/// What `pkcs11-tool --list-token-slots` printed, run by `list` (which
/// says whether it succeeded): asked again while the list of slots with a
/// token grows between pkcs11-tool's two C_GetSlotList calls
/// (CKR_BUFFER_TOO_SMALL), as it does when another test's card comes up.
pub fn stable_slot_listing(mut list: impl FnMut() -> (bool, String)) -> String {
    for _ in 0..10 {
        let (ok, text) = list();
        if ok {
            return text;
        }
        assert!(
            text.contains("CKR_BUFFER_TOO_SMALL"),
            "pkcs11-tool: {text}\nreaders:\n{}",
            readers()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no stable PKCS#11 slot list")
}

/// The slots `pkcs11-tool --list-token-slots` shows: (slot id, reader,
/// token serial).
pub fn token_slots(h: &Harness) -> Vec<(String, String, String)> {
    let listing =
        stable_slot_listing(|| run_pkcs11_tool(h, &["--module", PKCS11, "--list-token-slots"]));
    let mut slots = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in listing.lines() {
        if let Some(rest) = line.strip_prefix("Slot ") {
            // `Slot 3 (0x3): Virtual PCD 1 00 01`
            let id = rest
                .split_once("(")
                .and_then(|(_, r)| r.split_once(")"))
                .map(|(id, _)| id.to_string());
            let reader = rest.split_once("): ").map(|(_, r)| r.trim().to_string());
            current = id.zip(reader);
        } else if let Some(serial) = line.trim().strip_prefix("serial num") {
            let serial = serial.trim_start_matches([' ', ':']).trim().to_string();
            if let Some((id, reader)) = current.take() {
                slots.push((id, reader, serial));
            }
        }
    }
    slots
}

/// The PKCS#11 token serial of the card in `reader`: what picks that card
/// alone in a PKCS#11 URI (`serial=`), whatever other cards PC/SC shows.
pub fn token_serial(h: &Harness, reader: &str) -> String {
    let slots = token_slots(h);
    slots
        .iter()
        .find(|(_, r, _)| r == reader)
        .map(|(_, _, serial)| serial.clone())
        .unwrap_or_else(|| panic!("no PKCS#11 token in {reader}: {slots:?}"))
}

/// pkcs11-tool, with OpenSC configured for as many cards as the harness
/// serves (its stock configuration shows four: 16 virtual slots, four per
/// card); stdout and stderr, or a panic with them.
pub fn pkcs11_tool(h: &Harness, args: &[&str]) -> String {
    let (ok, text) = run_pkcs11_tool(h, args);
    assert!(ok, "pkcs11-tool {args:?} failed:\n{text}");
    text
}

/// pkcs11-tool under the harness's OpenSC configuration: whether it
/// succeeded, and its stdout and stderr.
fn run_pkcs11_tool(h: &Harness, args: &[&str]) -> (bool, String) {
    let out = h.run("pkcs11-tool", args);
    (out.status.success(), text(&out))
}

/// Whether the signature in `sig` over `msg` verifies with OpenSSL against
/// the public key in `cert`.
pub fn verifies(h: &Harness, cert: &Path, msg: &[u8], sig: &Path) -> bool {
    let stem = sig.file_stem().and_then(|s| s.to_str()).unwrap_or("sig");
    let msg = h.write(&format!("{stem}.verified.txt"), msg);
    let pubkey = h.path(&format!("{stem}.cert.pub"));
    let pem = ok(
        "openssl",
        &["x509", "-in", cert.to_str().unwrap(), "-pubkey", "-noout"],
    );
    std::fs::write(&pubkey, pem).unwrap();
    let out = run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            pubkey.to_str().unwrap(),
            "-signature",
            sig.to_str().unwrap(),
            msg.to_str().unwrap(),
        ],
    );
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

/// A new virtual card in `image`, with `serial`, made by `s9card init` as
/// a user makes one.
pub fn init_card(image: &Path, serial: &str) {
    ok(
        s9card().to_str().unwrap(),
        &[
            "init",
            "--image",
            image.to_str().unwrap(),
            "--serial",
            serial,
            "--virtual",
        ],
    );
}

/// A loopback port that nothing listens on, for a card this test dials
/// itself. It is below the ephemeral range, as the readers' ports are
/// ([`virtual_reader::readers::BASE_PORT`]): a dial into that range, made while
/// nothing listens yet, can connect to itself.
pub fn free_port() -> u16 {
    let span = 8000u16;
    let start = (std::process::id() % u32::from(span)) as u16;
    (0..span)
        .map(|i| 20000 + (start + i) % span)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port from 20000 to 27999")
}

/// Asserts that nothing of ours (pcscd, s9card, QEMU, and whatever holds
/// a vpcd port) listens beyond loopback, nor answers on this machine's
/// other addresses (scripts/listeners); returns what it listed.
pub fn assert_nothing_beyond_loopback() -> String {
    let out = run(
        root().join("scripts/listeners").to_str().unwrap(),
        &["--check"],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "reachable beyond loopback:\n{text}");
    text
}

/// The reader list as PC/SC sees it, with card presence.
pub fn readers() -> String {
    String::from_utf8_lossy(&run("opensc-tool", &["-l"]).stdout).into_owned()
}

/// The readers a test holds, from the pool: the `Virtual PCD` readers
/// pcscd shows. A test takes free ones (no one holds their lock and no card
/// is in them, so a card `scripts/setup` serves is left alone), and holds
/// the machine lock shared, so that tests run side by side; a test that
/// needs the machine to itself (restarting pcscd, `s9card up`, the
/// YubiKey-named reader, timing the latency profiles) holds it exclusively
/// and the others wait. A gate lock in front of the machine lock lets an
/// exclusive taker in ahead of shared takers that come after it.
pub struct Readers {
    first: usize,
    /// The pcscd these readers' taker started, if it had to.
    pcscd: Option<u32>,
    _readers: Vec<virtual_reader::fixture::ReaderLock>,
    _machine: Option<MachineLock>,
}

/// How long a test waits for readers before it gives up.
const POOL_WAIT: Duration = Duration::from_secs(1200);

impl Readers {
    /// Takes `n` free readers in a row (a server serves its cards in
    /// consecutive readers), waiting for them as long as [`POOL_WAIT`];
    /// with `alone`, the machine too.
    pub fn take(n: usize, alone: bool) -> Readers {
        let machine = machine_lock(alone);
        let pool = virtual_reader::fixture::lock_file("s9card-e2e-pool.lock").unwrap();
        // One taker at a time, so that a test wanting many readers is not
        // overtaken for ever by tests wanting one, and two tests never both
        // start a pcscd.
        let start = Instant::now();
        pool.lock().expect("lock the reader pool");
        let pcscd = ensure_pcscd(n);
        let deadline = Instant::now() + POOL_WAIT;
        loop {
            let listed = virtual_reader::readers::listed();
            let free = |r: usize| virtual_reader::readers::shows(&listed, r, false);
            for first in 0..=READERS.saturating_sub(n) {
                if !(first..first + n).all(free) {
                    continue;
                }
                let held: Vec<_> = (first..first + n)
                    .map_while(virtual_reader::fixture::ReaderLock::try_take)
                    .collect();
                if held.len() == n {
                    report_wait(start);
                    return Readers {
                        first,
                        pcscd,
                        _readers: held,
                        _machine: Some(machine),
                    };
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {n} free readers in a row in {POOL_WAIT:?}:\n{}",
                readers()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The machine to this test alone, no reader held: for tests that
    /// bring cards up with `s9card up` or use the YubiKey-named reader.
    pub fn exclusive() -> Readers {
        Readers {
            first: 0,
            pcscd: None,
            _readers: Vec::new(),
            _machine: Some(machine_lock(true)),
        }
    }

    /// Every `Virtual PCD` reader, and the machine, to this test alone.
    pub fn all() -> Readers {
        let machine = machine_lock(true);
        Readers {
            first: 0,
            pcscd: None,
            _readers: (0..READERS)
                .map(|r| virtual_reader::fixture::ReaderLock::take(r).expect("lock a reader"))
                .collect(),
            _machine: Some(machine),
        }
    }

    /// Lets the readers and the machine go; stops the pcscd their taker
    /// started if no other test is using it now.
    fn release(&mut self) {
        self._readers.clear();
        self._machine = None;
        if let Some(pid) = self.pcscd.take() {
            let machine = virtual_reader::fixture::lock_file("s9card-e2e.lock").unwrap();
            if machine.try_lock().is_ok() {
                let _ = virtual_reader::readers::stop_pcscd(pid);
            }
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.release();
    }
}

thread_local! {
    /// How many exclusive holds of the machine lock this thread has: a
    /// test that holds the machine alone may start harnesses inside that
    /// hold without taking the lock again (which would wait for itself).
    static ALONE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A hold of the machine lock, shared or exclusive, taken through the gate;
/// none at all inside this thread's exclusive hold.
struct MachineLock {
    file: Option<File>,
    exclusive: bool,
}

fn machine_lock(exclusive: bool) -> MachineLock {
    let start = Instant::now();
    let lock = machine_lock_now(exclusive);
    report_wait(start);
    lock
}

/// Says how long the test waited for the pool, when it waited at all:
/// scripts/test-runner takes it off the test's time.
fn report_wait(start: Instant) {
    let waited = start.elapsed();
    if waited >= Duration::from_millis(100) {
        println!("e2e: waited {:.1} s for the pool", waited.as_secs_f64());
    }
}

fn machine_lock_now(exclusive: bool) -> MachineLock {
    if ALONE.get() > 0 {
        ALONE.set(ALONE.get() + usize::from(exclusive));
        return MachineLock {
            file: None,
            exclusive,
        };
    }
    let gate = virtual_reader::fixture::lock_file("s9card-e2e-gate.lock").unwrap();
    gate.lock().expect("lock the e2e gate");
    let machine = virtual_reader::fixture::lock_file("s9card-e2e.lock").unwrap();
    if exclusive {
        machine.lock().expect("lock the e2e lock file");
        ALONE.set(1);
    } else {
        machine.lock_shared().expect("lock the e2e lock file");
    }
    MachineLock {
        file: Some(machine),
        exclusive,
    }
}

impl Drop for MachineLock {
    fn drop(&mut self) {
        if self.exclusive {
            ALONE.set(ALONE.get().saturating_sub(1));
        }
        drop(self.file.take());
    }
}

/// Sends a signal to a process by pid (through kill(1): no unsafe code).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

/// A child process that is killed when the test lets it go, whether the
/// test passed or panicked: a client left running keeps its PC/SC handles
/// on a reader the pool gives the next test.
pub struct Spawned(pub Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `s9card serve` with its own images, and pcscd if we started it.
pub struct Harness {
    /// The test's scratch directory (images, sockets, traces), removed on drop.
    pub dir: tempfile::TempDir,
    /// The card under test.
    pub kind: Kind,
    /// The cards' flash: card images, or firmware flash files.
    pub images: Vec<PathBuf>,
    /// The server's control socket (insert, remove, scenarios).
    pub control: PathBuf,
    /// The server's decoded trace, when the test asked for one.
    pub trace: PathBuf,
    server: Option<Child>,
    server_args: Vec<String>,
    with_trace: bool,
    readers: Readers,
}

impl Harness {
    /// Starts pcscd (if needed) and a server with `cards` fresh virtual
    /// cards, serials 0900000001, 0900000002…, in free readers of the pool.
    pub fn start(cards: usize) -> Harness {
        Harness::start_with(cards, true, &[])
    }

    /// Like [`Harness::start`], with the machine to this test alone: for
    /// tests that restart pcscd, and for tests that load OpenSC into their
    /// own process, where no configuration file can narrow what it sees.
    pub fn start_alone(cards: usize) -> Harness {
        Harness::start_alone_with(cards, true, &[])
    }

    /// Like [`Harness::start_alone`], with or without a raw trace and with
    /// extra `serve` arguments.
    pub fn start_alone_with(cards: usize, trace: bool, extra: &[&str]) -> Harness {
        Harness::start_in(
            Readers::take(cards, true),
            Kind::current(),
            cards,
            trace,
            extra,
        )
    }

    /// Like [`Harness::start`], with or without a raw trace and with extra
    /// `serve` arguments (`--null-card`, `--no-quickack`, for benches).
    pub fn start_with(cards: usize, trace: bool, extra: &[&str]) -> Harness {
        Harness::start_kind(Kind::current(), cards, trace, extra)
    }

    /// Like [`Harness::start_with`], on a card of the given kind whatever
    /// `S9CARD_CARD` says (benchmarks compare the two in one run).
    pub fn start_kind(kind: Kind, cards: usize, trace: bool, extra: &[&str]) -> Harness {
        Harness::start_in(Readers::take(cards, false), kind, cards, trace, extra)
    }

    fn start_in(held: Readers, kind: Kind, cards: usize, trace: bool, extra: &[&str]) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut images = Vec::new();
        for n in 0..cards {
            let image = dir.path().join(format!("card{n}.s9img"));
            init_card(&image, &format!("09{:08}", n + 1));
            if kind == Kind::Firmware {
                let flash = image.with_extension("flash");
                ok(
                    s9card().to_str().unwrap(),
                    &[
                        "image",
                        "to-firmware",
                        image.to_str().unwrap(),
                        flash.to_str().unwrap(),
                    ],
                );
                images.push(flash);
            } else {
                images.push(image);
            }
        }
        let mut h = Harness {
            kind,
            server_args: extra.iter().map(|s| s.to_string()).collect(),
            with_trace: trace,
            control: dir.path().join("control.sock"),
            trace: dir.path().join("trace.raw"),
            dir,
            images,
            server: None,
            readers: held,
        };
        h.start_server();
        h
    }

    /// Serves the same cards again with more `serve` arguments (a card
    /// personalised on the contact interface, then served contactless):
    /// the server is stopped, PC/SC sees the cards go, and the new server
    /// brings them back.
    pub fn restart_server_with(&mut self, args: &[&str]) {
        self.stop_server();
        for n in 0..self.images.len() {
            self.wait_for_card(n, false);
        }
        self.server_args.extend(args.iter().map(|s| s.to_string()));
        self.start_server();
    }

    /// Starts (or restarts) the server on the same images.
    pub fn start_server(&mut self) {
        let mut args = vec!["serve".to_string()];
        for image in &self.images {
            args.push("--image".into());
            args.push(image.display().to_string());
        }
        args.extend(["--control".into(), self.control.display().to_string()]);
        let port = virtual_reader::readers::reader_port(self.readers.first);
        args.extend(["--vpcd".into(), format!("127.0.0.1:{port}")]);
        if self.with_trace {
            args.extend(["--trace".into(), self.trace.display().to_string()]);
        }
        args.push("--no-fsync".into());
        if self.kind == Kind::Firmware {
            args.extend(["--firmware".into(), firmware_elf().display().to_string()]);
            // The noisy pass: T=1 must recover every fault on the line.
            if let Ok(rate) = std::env::var("S9CARD_LINE_NOISE") {
                args.extend(["--line-noise".into(), rate, "--seed".into(), "26".into()]);
            }
        }
        args.extend(self.server_args.iter().cloned());
        let log = File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new(s9card())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start s9card serve");
        self.server = Some(child);
        for n in 0..self.images.len() {
            self.wait_for_card(n, true);
        }
    }

    /// The PC/SC name of the reader of the harness's card `n`.
    pub fn reader(&self, n: usize) -> String {
        assert!(n < self.images.len(), "the harness has no card {n}");
        reader_name(self.readers.first + n)
    }

    /// Waits until the reader of card `n` shows a card (or no card).
    pub fn wait_for_card(&self, n: usize, present: bool) {
        let name = self.reader(n);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let list = virtual_reader::readers::listed();
            if list.iter().any(|(r, p)| *r == name && *p == present) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "reader {n} never showed present={present}:\n{}\n{}",
                readers(),
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Cuts the card's power at whatever it was doing, and waits until it
    /// is back in its reader: the firmware's QEMU is killed with SIGKILL
    /// (the server boots it again), the host card's whole server is.
    pub fn power_cut(&mut self) {
        match self.kind {
            Kind::Host => {
                self.kill_server();
                self.wait_for_card(0, false);
                self.start_server();
            }
            Kind::Firmware => {
                let pid = self.qemu_pid(0);
                signal(pid, "KILL");
                self.wait_for_card(0, false);
                self.wait_for_card(0, true);
            }
        }
    }

    /// The firmware card's QEMU process in reader `n`.
    pub fn qemu_pid(&self, n: usize) -> u32 {
        let status = ok(
            s9card().to_str().unwrap(),
            &["readers", "--control", self.control.to_str().unwrap()],
        );
        let reader = status
            .split(';')
            .find(|r| r.trim().starts_with(&format!("reader {n}:")))
            .unwrap_or_else(|| panic!("no reader {n} in {status:?}"));
        reader
            .split_whitespace()
            .skip_while(|w| *w != "qemu")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .filter(|&p| p != 0)
            .unwrap_or_else(|| panic!("no QEMU running for reader {n}: {status:?}"))
    }

    /// Kills the server with SIGKILL: a power cut at whatever it was doing
    /// (a firmware card's QEMU dies with it).
    pub fn kill_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGTERM and checks it exits cleanly.
    pub fn stop_server(&mut self) -> std::process::ExitStatus {
        let mut child = self.server.take().expect("server running");
        signal(child.id(), "TERM");
        child.wait().unwrap()
    }

    /// `s9card eject` / `insert`.
    pub fn control(&self, verb: &str, reader: usize) -> String {
        ok(
            s9card().to_str().unwrap(),
            &[
                verb,
                "--reader",
                &reader.to_string(),
                "--control",
                self.control.to_str().unwrap(),
            ],
        )
    }

    /// Connects to the card in reader `n` through pcscd; a card that is
    /// not there fails the test with the server's log, which says why.
    pub fn connect(&self, n: usize) -> client::Pcsc {
        client::Pcsc::connect_exact(&self.reader(n)).unwrap_or_else(|e| {
            panic!(
                "no card in reader {n}: {e}\n{}\n{}",
                readers(),
                self.server_log()
            )
        })
    }

    /// What the server logged.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// An OpenSC configuration (for `OPENSC_CONF`) with a PKCS#11 slot for
    /// every card, that shows OpenSC this harness's readers and no other
    /// ([`Harness::ignored_readers`]); written on first use.
    pub fn opensc_conf(&self) -> PathBuf {
        let p = self.path("opensc.conf");
        if !p.exists() {
            let conf = virtual_reader::readers::opensc_conf().replacen(
                "app default {",
                &format!("app default {{\n\t{}", self.ignored_readers()),
                1,
            );
            std::fs::write(&p, conf).unwrap();
        }
        p
    }

    /// OpenSC's `ignored_readers` setting naming every reader PC/SC lists
    /// but this harness's. OpenSC opens every card it is shown (a SELECT,
    /// the CHUID, a VERIFY status query), and a card another test is
    /// scripting must never see those: they move its scenario's count, end
    /// its chain, or spend its tries. OpenSC matches the names as
    /// substrings; no reader's name is part of another's.
    pub fn ignored_readers(&self) -> String {
        let ours: Vec<String> = (0..self.images.len()).map(|n| self.reader(n)).collect();
        let others: Vec<String> = virtual_reader::readers::listed()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| !ours.contains(name))
            .collect();
        assert!(
            !others
                .iter()
                .any(|o| ours.iter().any(|r| o.contains(r.as_str()))),
            "{ours:?} within {others:?}"
        );
        if others.is_empty() {
            return String::new();
        }
        let quoted: Vec<String> = others.iter().map(|o| format!("\"{o}\"")).collect();
        format!("ignored_readers = {};", quoted.join(", "))
    }

    /// A command under the harness's OpenSC configuration: what every
    /// OpenSC client a test runs (pkcs11-tool, pkcs15-tool, ssh, the
    /// OpenSSL engine) is started with, so that it sees this test's cards
    /// alone.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("OPENSC_CONF", self.opensc_conf())
            .stdin(Stdio::null());
        c
    }

    /// Runs a command under the harness's OpenSC configuration.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (is it installed? see scripts/setup)"))
    }

    /// Runs a command under the harness's OpenSC configuration that must
    /// succeed; returns stdout and stderr together.
    pub fn ok(&self, program: &str, args: &[&str]) -> String {
        succeeded(program, args, self.run(program, args))
    }

    /// A path in the test's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file in the temporary directory.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let served = self.server.is_some();
        if let Some(child) = self.server.as_mut() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // The next holder of these readers starts from empty readers.
        if served {
            let names: Vec<String> = (0..self.images.len()).map(|n| self.reader(n)).collect();
            let _ = (0..100).find(|_| {
                std::thread::sleep(Duration::from_millis(20));
                !virtual_reader::readers::listed()
                    .iter()
                    .any(|(r, present)| *present && names.contains(r))
            });
        }
        self.readers.release();
    }
}

/// Makes sure pcscd runs with readers for `cards` cards: one that runs
/// already must show them (a stock vpcd configuration has two); if none
/// runs, one is started with [`READERS`] readers, and its pid returned so
/// that the harness stops it.
fn ensure_pcscd(cards: usize) -> Option<u32> {
    use virtual_reader::readers::{Layout, Pcscd, ensure, ensure_layout, pcscd_pid};
    let state = if pcscd_pid().is_some() {
        ensure(cards.max(2))
    } else {
        // The whole pool, and the YubiKey-named reader for the tests of
        // that profile, as scripts/pcscd-up starts it.
        let layout = Layout {
            readers: READERS.max(cards),
            yubikey: true,
        };
        ensure_layout(layout, 0..cards, false)
    };
    match state {
        Ok(Pcscd::Running) => None,
        Ok(Pcscd::Started(pid)) => Some(pid),
        Err(e) => panic!(
            "the end-to-end tests need pcscd with vsmartcard's vpcd readers \
             (scripts/pcscd-up starts it with {READERS} and the YubiKey-named one): {e}"
        ),
    }
}
