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
        Issuer::in_realm(h, "S9CARD.TEST")
    }

    /// A CMS whose holders are in the Kerberos realm `realm`.
    pub fn in_realm(h: &Harness, realm: &str) -> Issuer {
        let db = h.path("cms.db");
        ok(
            s9card().to_str().unwrap(),
            &["ca", "init", "--realm", realm, "--db", db.to_str().unwrap()],
        );
        Issuer {
            root: h.path("ca/ca.pem"),
            ca_key: h.path("ca/ca.key"),
            db,
        }
    }

    /// Personalises the card in reader `n` for holder `uuid` with keys of
    /// `algorithm` (`p256`, `p384`, `rsa2048`); `now` backdates it.
    /// Returns the card's serial.
    pub fn personalise(
        &self,
        h: &Harness,
        n: usize,
        uuid: &str,
        algorithm: &str,
        now: Option<&str>,
    ) -> String {
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
        let out = ok(s9card().to_str().unwrap(), &args);
        out.split_whitespace()
            .skip_while(|w| *w != "card")
            .nth(1)
            .unwrap_or_else(|| panic!("no serial in: {out}"))
            .to_string()
    }

    /// Renews the card in reader `n` at `now` (`YYYY-MM-DD`); what the
    /// CMS printed.
    pub fn renew(&self, h: &Harness, n: usize, now: &str) -> String {
        let reader = h.reader(n);
        ok(
            s9card().to_str().unwrap(),
            &[
                "renew",
                "--reader",
                &reader,
                "--passcode",
                PASSCODE,
                "--db",
                self.db.to_str().unwrap(),
                "--now",
                now,
            ],
        )
    }

    /// Revokes the card `serial` as lost, and writes the CA's CRL, which
    /// lists its certificates: the file relying parties check.
    pub fn revoke(&self, h: &Harness, serial: &str) -> PathBuf {
        let db = self.db.to_str().unwrap();
        ok(
            s9card().to_str().unwrap(),
            &["revoke", "--serial", serial, "--db", db],
        );
        let crl = h.path("crl.pem");
        ok(
            s9card().to_str().unwrap(),
            &["ca", "crl", "--out", s(&crl), "--db", db],
        );
        crl
    }
}

/// A server's key (P-256) and certificate from `issuer`'s CA, for `cn`,
/// with the extensions in the OpenSSL configuration `extensions` (section
/// `[server]`): `NAME.key` and `NAME.pem` in `dir`.
pub fn server_certificate(
    dir: &Path,
    issuer: &Issuer,
    name: &str,
    cn: &str,
    extensions: &str,
) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let cert = dir.join(format!("{name}.pem"));
    let ext = dir.join(format!("{name}.ext"));
    ok(
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            s(&key),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            s(&csr),
        ],
    );
    std::fs::write(&ext, format!("[server]\n{extensions}")).unwrap();
    ok(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&issuer.root),
            "-CAkey",
            s(&issuer.ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            s(&ext),
            "-extensions",
            "server",
            "-out",
            s(&cert),
        ],
    );
    (cert, key)
}

/// The PKCS#11 slot id (decimal) and token serial of the card, as OpenSC
/// shows it under the harness's configuration, which shows it no other
/// card ([`Harness::opensc_conf`]).
pub fn own_token(h: &Harness) -> (String, String) {
    let mut listing = h.command("pkcs11-tool");
    listing.args(["--module", PKCS11, "--list-token-slots"]);
    let (ok, text) = outcome(&mut listing);
    assert!(ok, "{text}");
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("Slot "))
        .and_then(|rest| rest.split_once("(0x"))
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(id, _)| u64::from_str_radix(id, 16).unwrap().to_string())
        .unwrap_or_else(|| panic!("no token:\n{text}"));
    let serial = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("serial num"))
        .map(|s| s.trim_start_matches([' ', ':']).trim().to_string())
        .unwrap_or_else(|| panic!("no serial:\n{text}"));
    (id, serial)
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

/// How long a client may take before the test calls it hung.
const CLIENT_LIMIT: Duration = Duration::from_secs(120);

/// Runs `command` (at most [`CLIENT_LIMIT`]: a hung client is killed and
/// fails); (succeeded, stdout + stderr).
pub fn outcome(command: &mut Command) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("output");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("the client runs");
    let deadline = Instant::now() + CLIENT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    match status {
        Some(status) => (status.success(), text),
        None => (false, format!("{text}\n(killed after {CLIENT_LIMIT:?})")),
    }
}

/// A file's path as `&str`.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}
