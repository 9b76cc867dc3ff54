//! What the relying-party tests share: a CMS that issues the cards (its CA
//! is the one every relying party trusts), servers from Debian's packages
//! started on loopback and stopped when the test ends, and the passcode
//! handed to clients the way a test harness or kiosk hands it (an askpass
//! program reading it from the environment, never a command line).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// The passcode every holder here chooses.
pub const PASSCODE: &str = "482915";

/// A CMS in the test's directory, and the cards it issued.
pub struct Issuer {
    pub db: PathBuf,
    /// The CA's root certificate (PEM): what relying parties trust.
    pub root: PathBuf,
    pub ca_key: PathBuf,
}

impl Issuer {
    pub fn new(h: &Harness) -> Issuer {
        let db = h.path("cms.db");
        ok(
            s9card().to_str().unwrap(),
            &["ca", "init", "--db", db.to_str().unwrap()],
        );
        Issuer {
            root: h.path("ca/ca.pem"),
            ca_key: h.path("ca/ca.key"),
            db,
        }
    }

    /// Personalises the card in reader `n` for holder `uuid` with keys of
    /// `algorithm` (`p256`, `p384`, `rsa2048`); `now` backdates it.
    pub fn personalise(
        &self,
        h: &Harness,
        n: usize,
        uuid: &str,
        algorithm: &str,
        now: Option<&str>,
    ) {
        let reader = h.reader(n);
        let mut args = vec![
            "personalize",
            "--reader",
            reader.as_str(),
            "--uuid",
            uuid,
            "--name",
            "Ann Example",
            "--email",
            "ann@nhs.example",
            "--passcode",
            PASSCODE,
            "--algorithm",
            algorithm,
            "--db",
            self.db.to_str().unwrap(),
        ];
        if let Some(now) = now {
            args.extend(["--now", now]);
        }
        ok(s9card().to_str().unwrap(), &args);
    }
}

/// A certificate of the card in the harness's first reader, as PEM
/// (yubico-piv-tool reads it as any client would).
pub fn certificate(h: &Harness, slot: &str) -> PathBuf {
    let pem = h.path(&format!("{slot}.pem"));
    yubico(
        h,
        &[
            "-a",
            "read-certificate",
            "-s",
            slot,
            "-o",
            pem.to_str().unwrap(),
        ],
    );
    pem
}

/// The passcode tries left on the card in the harness's first reader.
pub fn tries_left(h: &Harness) -> u8 {
    let mut card = client::PivClient::new(h.connect(0));
    card.select().unwrap();
    card.tries(0x80).unwrap().0
}

/// An askpass program: prints `$S9CARD_TEST_PASSCODE`.
pub fn askpass(h: &Harness) -> PathBuf {
    let path = h.path("askpass");
    if !path.exists() {
        std::fs::write(
            &path,
            "#!/bin/sh\nprintf '%s\\n' \"$S9CARD_TEST_PASSCODE\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    path
}

/// A server a test started: stopped (and reaped) when dropped; its output
/// is in `log`, for the failure message.
pub struct Service {
    pub port: u16,
    pub log: PathBuf,
    child: Child,
}

impl Service {
    /// Starts `program` with `args`, its output to `log`, and waits until
    /// it accepts connections on `port` (loopback).
    pub fn start(name: &'static str, port: u16, log: PathBuf, command: &mut Command) -> Service {
        let out = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e} (is it installed? see scripts/setup)"));
        let mut service = Service { port, log, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!("{name} ended ({status}):\n{}", service.output());
            }
            assert!(
                Instant::now() < deadline,
                "{name} does not listen on {port}:\n{}",
                service.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        service
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command`; (succeeded, stdout + stderr).
pub fn outcome(command: &mut Command) -> (bool, String) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .expect("the client runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A file's path as `&str`.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}
