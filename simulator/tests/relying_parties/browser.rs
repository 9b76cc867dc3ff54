//! A real browser: Debian's Chromium, headless, logs in to an HTTPS site
//! that requires a client certificate, with the card's `9A` key through
//! NSS, the way a staff member's browser reaches a national application.
//!
//! What a browser needs, and how a kiosk or test harness gives it:
//! - the card in its NSS database (`$HOME/.pki/nssdb`, `modutil`), the
//!   CMS's CA trusted there (`certutil`);
//! - the certificate chosen without a dialog: the `auto_select_certificate`
//!   content setting in the profile for the site, matching the CA (what
//!   Chromium's `AutoSelectCertificateForUrls` policy sets, per profile and
//!   without root);
//! - the passcode without a dialog: a headless browser has none, and NSS
//!   would wait for ever. [`kiosk_pkcs11`] (the `kiosk-pkcs11` crate) fronts
//!   OpenSC's module in the database and logs each session in with the
//!   passcode from a file only the harness can read.
//!
//! The browser is driven through the DevTools protocol over a pipe
//! (`browser_client.py`): one tab for the whole session, so that the card
//! pulled between two requests is pulled mid-session.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::harness::*;
use crate::support::*;
use crate::tls;

/// The module NSS loads: `kiosk-pkcs11` in front of OpenSC's, built once
/// per test binary.
fn kiosk_pkcs11() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--locked", "--quiet", "-p", "kiosk-pkcs11"])
                .current_dir(root())
                .status()
                .expect("cargo");
            assert!(status.success(), "building kiosk-pkcs11 failed");
            root().join("target/debug/libkiosk_pkcs11.so")
        })
        .clone()
}

/// The OpenSC the browser's kiosk module fronts: 0.26 (the one
/// `scripts/opensc-sm` builds). With Debian 12's 0.23, Chromium 156 aborts
/// on a CHECK of its own (SIGTRAP on its IO thread) in about one run in
/// four once a card whose key it used is pulled, and `modutil` once
/// deadlocked in OpenSC's `C_GetTokenInfo`; with 0.26 the browser refuses
/// the next request cleanly (none in 23 runs).
fn browser_opensc() -> PathBuf {
    opensc_sm().join("lib/opensc-pkcs11.so")
}

/// A passcode file as the kiosk module wants it: the harness's alone.
fn passcode_file(h: &Harness, name: &str, passcode: &str, mode: u32) -> PathBuf {
    let path = h.path(name);
    std::fs::write(&path, format!("{passcode}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A home whose NSS database trusts the CMS's CA and has the kiosk module.
fn nss_home(h: &Harness, issuer: &Issuer) -> PathBuf {
    let home = h.path("browser-home");
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", s(&db));
    ok("certutil", &["-N", "-d", &db, "--empty-password"]);
    ok(
        "certutil",
        &[
            "-A",
            "-d",
            &db,
            "-n",
            "s9card test CA",
            "-t",
            "C,,",
            "-i",
            s(&issuer.root),
        ],
    );
    // modutil loads the module to add it: shown only this test's reader.
    let mut modutil = h.command("modutil");
    modutil
        .args(["-dbdir", &db, "-add", "s9card kiosk", "-force"])
        .args(["-libfile", s(&kiosk_pkcs11())])
        .env("S9CARD_KIOSK_MODULE", browser_opensc());
    let (added, text) = outcome(&mut modutil);
    assert!(added, "{text}");
    home
}

/// A Chromium profile that presents a certificate from the CMS's CA to
/// `site` without asking.
fn profile(h: &Harness, site: &str) -> PathBuf {
    let dir = h.path("browser-profile");
    std::fs::create_dir_all(dir.join("Default")).unwrap();
    let preferences = format!(
        r#"{{"profile":{{"content_settings":{{"exceptions":{{"auto_select_certificate":{{"{site},*":{{"setting":{{"filters":[{{"ISSUER":{{"CN":"s9card test CA"}}}}]}}}}}}}}}}}}}}"#
    );
    std::fs::write(dir.join("Default/Preferences"), preferences).unwrap();
    dir
}

/// What a page load gave.
#[derive(Debug)]
enum Page {
    Loaded(String),
    Failed(String),
    /// The browser process ended, killed by this signal.
    Died(i64),
}

/// Chromium with one tab on `url`, until dropped.
struct Browser {
    child: Child,
    log: PathBuf,
    commands: ChildStdin,
    answers: BufReader<ChildStdout>,
}

impl Browser {
    fn start(h: &Harness, issuer: &Issuer, url: &str, site: &str, passcode: &Path) -> Browser {
        let script = root().join("simulator/tests/relying_parties/browser_client.py");
        let log = h.path("chromium.log");
        use std::os::unix::process::CommandExt;
        let mut child = h
            .command("python3")
            // A group of its own, Chromium's processes with it: all of them
            // go when the test ends, whatever state the browser is in (an
            // orphaned browser would keep its PC/SC handles on a reader
            // the next test takes).
            .process_group(0)
            .arg(script)
            .arg("chromium")
            .arg(profile(h, site))
            .arg(url)
            .env("HOME", nss_home(h, issuer))
            .env("S9CARD_KIOSK_MODULE", browser_opensc())
            .env("S9CARD_KIOSK_PASSCODE_FILE", passcode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 runs the browser client");
        let commands = child.stdin.take().unwrap();
        let answers = BufReader::new(child.stdout.take().unwrap());
        Browser {
            child,
            log,
            commands,
            answers,
        }
    }

    /// What the client and Chromium printed.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Loads the page (a new request), screenshot to `png` scrolled to
    /// `focus`. The client bounds every wait (60 s).
    fn load(&mut self, png: &Path, focus: &str) -> Page {
        writeln!(self.commands, "load {} {focus}", s(png)).unwrap();
        let mut line = String::new();
        self.answers.read_line(&mut line).unwrap();
        let json: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("browser client: {e}: {line:?}\n{}", self.log()));
        if let Some(text) = json["text"].as_str() {
            Page::Loaded(text.to_string())
        } else if let Some(error) = json["error"].as_str() {
            Page::Failed(error.to_string())
        } else if let Some(signal) = json["died"].as_i64() {
            Page::Died(signal)
        } else {
            panic!("browser client: {line}")
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.commands, "quit");
        // The client closes the browser within 20 s (10 for its answer,
        // 10 for its exit); then the whole group goes.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(25);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// Where a screenshot is kept after the test: `target/artefacts/`, named
/// for the pass (host, firmware, noisy line).
fn artefact(name: &str) -> PathBuf {
    let dir = root().join("target/artefacts/relying-parties");
    std::fs::create_dir_all(&dir).unwrap();
    let card = std::env::var("S9CARD_CARD").unwrap_or_else(|_| "host".into());
    let noisy = if std::env::var_os("S9CARD_LINE_NOISE").is_some() {
        "-noisy"
    } else {
        ""
    };
    dir.join(format!("{name}-{card}{noisy}.png"))
}

/// The holder's browser logs in to a site that requires her card: the
/// page shows the subject the server authenticated (and the screenshot
/// keeps it); the card pulled mid-session, the next request fails client
/// authentication, and the server sees the handshake broken off.
pub fn logs_in() {
    let h = Harness::start(1);
    let issuer = Issuer::new(&h);
    let uuid = "555000301010";
    issuer.personalise(&h, 0, uuid, "p256", None);
    let server = tls::server(&h, &issuer, None);
    let site = format!("https://127.0.0.1:{}", server.port);
    let passcode = passcode_file(&h, "kiosk-passcode", PASSCODE, 0o600);
    let mut browser = Browser::start(&h, &issuer, &format!("{site}/"), &site, &passcode);

    let shot = artefact("browser-client-certificate");
    let _ = std::fs::remove_file(&shot);
    match browser.load(&shot, "Client certificate") {
        Page::Loaded(text) => {
            assert!(text.contains("Client certificate"), "{text}");
            assert!(
                text.contains(&format!("CN=Ann Example/UID={uuid}")),
                "the page does not name the holder:\n{text}"
            );
        }
        other => panic!(
            "{other:?}\nserver:\n{}\nchromium:\n{}",
            server.output(),
            browser.log()
        ),
    }
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);

    // Every handshake the server breaks off leaves an error line.
    let broken = |output: &str| output.matches(":error:").count();
    let before = broken(&server.output());

    h.control("eject", 0);
    h.wait_for_card(0, false);
    match browser.load(&h.path("after-removal.png"), "Client certificate") {
        // ERR_BAD_SSL_CLIENT_AUTH_CERT, ERR_SSL_CLIENT_AUTH_SIGNATURE_FAILED
        // or the connection's own failure, as the handshake broke off.
        Page::Failed(error) => assert!(error.starts_with("net::ERR_"), "{error}"),
        Page::Died(signal) => panic!("the browser died (signal {signal}):\n{}", browser.log()),
        Page::Loaded(text) => panic!("a pulled card still logged in:\n{text}"),
    }
    // The server saw the attempt fail: the client sent its certificate
    // but no signature (TLS 1.3's CertificateVerify), or no certificate.
    let output = server.output();
    assert!(
        broken(&output) > before,
        "the server saw no failed handshake after the removal:\n{output}"
    );
}

/// The kiosk module's own rules, through OpenSSL's PKCS#11 engine given no
/// passcode: with the right passcode file the session is logged in and the
/// card signs; a wrong one costs one try and signs nothing; a file others
/// can read is not used at all (no try spent).
pub fn kiosk_module_rules() {
    let h = Harness::start(1);
    let issuer = Issuer::new(&h);
    issuer.personalise(&h, 0, "555000301011", "p256", None);
    let digest = h.write("digest.bin", &[0x5A; 32]);
    let conf = h.path("openssl-kiosk.cnf");
    std::fs::write(
        &conf,
        format!(
            "openssl_conf = init\n[init]\nengines = engines\n[engines]\npkcs11 = pkcs11\n\
             [pkcs11]\nengine_id = pkcs11\nMODULE_PATH = {}\ninit = 0\n",
            s(&kiosk_pkcs11())
        ),
    )
    .unwrap();
    let key = format!(
        "pkcs11:serial={};object=PIV%20AUTH%20key;type=private",
        own_token(&h).1
    );
    let signature = h.path("signature.bin");
    let sign = |passcode: &Path| {
        let _ = std::fs::remove_file(&signature);
        let mut pkeyutl = h.command("openssl");
        pkeyutl
            .args([
                "pkeyutl", "-sign", "-engine", "pkcs11", "-keyform", "engine",
            ])
            .args(["-inkey", &key, "-in", s(&digest), "-out", s(&signature)])
            .env("OPENSSL_CONF", &conf)
            .env("S9CARD_KIOSK_PASSCODE_FILE", passcode);
        let (_, text) = outcome(&mut pkeyutl);
        (signature.exists(), text)
    };
    let tries = tries_left(&h);
    let (signed, text) = sign(&passcode_file(&h, "right", PASSCODE, 0o600));
    assert!(signed, "{text}");
    assert_eq!(tries_left(&h), tries);

    let (signed, text) = sign(&passcode_file(&h, "exposed", PASSCODE, 0o644));
    assert!(!signed, "a world-readable passcode file was used:\n{text}");
    assert_eq!(tries_left(&h), tries, "an exposed file must not be tried");

    let (signed, text) = sign(&passcode_file(&h, "wrong", "000000", 0o600));
    assert!(!signed, "a wrong passcode signed:\n{text}");
    assert_eq!(
        tries_left(&h),
        tries - 1,
        "exactly one try for the wrong file"
    );
}
