//! Workstation login (PAM): Debian's pam_pkcs11 with OpenSC's PKCS#11
//! module checks the card's `9A` certificate against the CMS's CA (and,
//! given one, its CRL), maps its UPN to the login name as Active Directory
//! does (`ms` mapper, domain `s9card.test`), and proves the key with the
//! passcode. The PAM client is a login program's part
//! (`pam_client.py`, Linux-PAM's `pam_start_confdir`, so the service lives
//! in the test's directory, not /etc/pam.d). `pkcs11_eventmgr` runs the
//! lock action when the card is pulled.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::support::*;

/// The PAM service the tests log in through.
const SERVICE: &str = "s9card-login";

/// A workstation's PAM configuration for the card in the harness's first
/// reader: the directory to give `pam_start_confdir`.
pub fn workstation(h: &Harness, issuer: &Issuer, crl: Option<&Path>) -> PathBuf {
    let dir = h.path("workstation");
    let cacerts = dir.join("cacerts");
    let crls = dir.join("crls");
    let confdir = dir.join("pam.d");
    for d in [&cacerts, &crls, &confdir] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(&issuer.root, cacerts.join("s9card-ca.pem")).unwrap();
    ok("openssl", &["rehash", s(&cacerts)]);
    let mut policy = "ca,signature".to_string();
    if let Some(crl) = crl {
        std::fs::copy(crl, crls.join("s9card-ca.crl.pem")).unwrap();
        ok("openssl", &["rehash", s(&crls)]);
        policy.push_str(",crl_offline");
    }
    let conf = dir.join("pam_pkcs11.conf");
    std::fs::write(
        &conf,
        format!(
            "pam_pkcs11 {{\n nullok = false;\n debug = true;\n use_first_pass = false;\n\
             \x20try_first_pass = false;\n use_authtok = false;\n card_only = true;\n\
             \x20wait_for_card = false;\n use_pkcs11_module = opensc;\n\
             \x20pkcs11_module opensc {{\n  module = {PKCS11};\n\
             \x20 slot_description = \"{reader}\";\n  ca_dir = {ca};\n  crl_dir = {crl};\n\
             \x20 support_threads = false;\n  cert_policy = {policy};\n\
             \x20 token_type = \"Smart card\";\n }}\n use_mappers = ms;\n\
             \x20mapper ms {{\n  debug = false;\n  module = internal;\n  ignorecase = false;\n\
             \x20 ignoredomain = false;\n  domainname = \"s9card.test\";\n }}\n}}\n",
            reader = h.reader(0),
            ca = s(&cacerts),
            crl = s(&crls),
        ),
    )
    .unwrap();
    std::fs::write(
        confdir.join(SERVICE),
        format!("auth required pam_pkcs11.so config_file={}\n", s(&conf)),
    )
    .unwrap();
    confdir
}

/// Logs `user` in through the workstation's PAM stack, the greeter
/// answering the card's PIN prompt with `passcode`.
pub fn login(h: &Harness, confdir: &Path, user: &str, passcode: &str) -> (bool, String) {
    let client = root().join("simulator/tests/relying_parties/pam_client.py");
    let mut python = h.command("python3");
    python
        .arg(client)
        .args([s(confdir), SERVICE, user])
        .env("S9CARD_TEST_PASSCODE", passcode);
    outcome(&mut python)
}

/// The holder logs in; a wrong passcode is refused and costs a try; the
/// card does not log in anybody else.
pub fn logs_in() {
    let h = Harness::start(1);
    let issuer = Issuer::new(&h);
    let uuid = "555000601001";
    issuer.personalise(&h, 0, uuid, "p256", None);
    let confdir = workstation(&h, &issuer, None);

    let (ok, text) = login(&h, &confdir, uuid, PASSCODE);
    assert!(ok, "{text}");
    assert!(text.contains("verdict: Success"), "{text}");

    let before = tries_left(&h);
    let (ok, text) = login(&h, &confdir, uuid, "000000");
    assert!(!ok, "a wrong passcode logged in:\n{text}");
    assert_eq!(tries_left(&h), before - 1, "{text}");

    let (ok, text) = login(&h, &confdir, "555000999999", PASSCODE);
    assert!(!ok, "the card logged in another user:\n{text}");
}

/// A card reported lost is refused by a workstation that has the CRL.
pub fn refuses_revoked() {
    let h = Harness::start(1);
    let issuer = Issuer::new(&h);
    let uuid = "555000601002";
    let serial = issuer.personalise(&h, 0, uuid, "p256", None);
    let crl = issuer.revoke(&h, &serial);
    let confdir = workstation(&h, &issuer, Some(&crl));
    let (ok, text) = login(&h, &confdir, uuid, PASSCODE);
    assert!(!ok, "a revoked certificate logged in:\n{text}");
}

/// Pulling the card runs the workstation's lock action
/// (`pkcs11_eventmgr`); after re-insertion the holder needs her passcode
/// again to log back in.
pub fn locks_on_removal() {
    let h = Harness::start(1);
    let issuer = Issuer::new(&h);
    let uuid = "555000601003";
    issuer.personalise(&h, 0, uuid, "p256", None);
    let confdir = workstation(&h, &issuer, None);
    let (ok, text) = login(&h, &confdir, uuid, PASSCODE);
    assert!(ok, "{text}");

    let dir = h.path("eventmgr");
    std::fs::create_dir_all(&dir).unwrap();
    let locked = dir.join("locked");
    let conf = dir.join("pkcs11_eventmgr.conf");
    std::fs::write(
        &conf,
        format!(
            "pkcs11_eventmgr {{\n daemon = false;\n debug = true;\n polling_time = 1;\n\
             \x20expire_time = 0;\n pkcs11_module = {PKCS11};\n\
             \x20event card_insert {{\n  on_error = ignore;\n  action = \"true\";\n }}\n\
             \x20event card_remove {{\n  on_error = ignore;\n  action = \"touch {}\";\n }}\n\
             \x20event expire_time {{\n  on_error = ignore;\n  action = \"true\";\n }}\n}}\n",
            s(&locked)
        ),
    )
    .unwrap();
    let log = dir.join("eventmgr.log");
    let out = std::fs::File::create(&log).unwrap();
    let manager = Spawned(
        h.command("pkcs11_eventmgr")
            .args(["nodaemon", &format!("config_file={}", s(&conf))])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("pkcs11_eventmgr (is libpam-pkcs11 installed? see scripts/setup)"),
    );
    // Let it see the card first.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!locked.exists());
    h.control("eject", 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !locked.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(manager);
    assert!(
        locked.exists(),
        "no lock action after the card was pulled:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    h.control("insert", 0);
    h.wait_for_card(0, true);
    let (ok, text) = login(&h, &confdir, uuid, "");
    assert!(!ok, "logged back in without the passcode:\n{text}");
    let (ok, text) = login(&h, &confdir, uuid, PASSCODE);
    assert!(ok, "{text}");
}
