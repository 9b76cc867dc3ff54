//! SSH login: Debian's sshd on a loopback port with the card's `9A` key in
//! `authorized_keys`; OpenSSH's client with OpenSC's PKCS#11 module runs a
//! command there, asking for the passcode through askpass.

use std::process::Command;

use crate::harness::*;
use crate::support::*;

/// sshd for the user running the test, on loopback, with `key` (an
/// OpenSSH public key line) as the one authorised key.
pub fn sshd(h: &Harness, key: &str) -> Service {
    let dir = h.path("sshd");
    std::fs::create_dir_all(&dir).unwrap();
    let host_key = dir.join("host_key");
    if !host_key.exists() {
        ok(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", s(&host_key)],
        );
    }
    std::fs::write(dir.join("authorized_keys"), format!("{key}\n")).unwrap();
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\n\
             AuthorizedKeysFile {}\nStrictModes no\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nMaxAuthTries 64\nLogLevel VERBOSE\n",
            s(&host_key),
            s(&dir.join("authorized_keys")),
        ),
    )
    .unwrap();
    // Privilege separation's directory, which Debian's service creates.
    if is_root() {
        std::fs::create_dir_all("/run/sshd").unwrap();
    }
    Service::start(
        "sshd",
        port,
        dir.join("sshd.log"),
        Command::new("/usr/sbin/sshd").args(["-D", "-e", "-f", s(&config)]),
    )
}

fn is_root() -> bool {
    String::from_utf8_lossy(&run("id", &["-u"]).stdout).trim() == "0"
}

fn user() -> String {
    String::from_utf8_lossy(&run("id", &["-un"]).stdout)
        .trim()
        .to_string()
}

/// The card's `9A` key as an OpenSSH public key line, from its certificate.
pub fn authorized_key(h: &Harness) -> String {
    let cert = certificate(h, "9a");
    let public = h.path("9a.pub.pem");
    ok(
        "openssl",
        &[
            "x509",
            "-in",
            s(&cert),
            "-pubkey",
            "-noout",
            "-out",
            s(&public),
        ],
    );
    ok("ssh-keygen", &["-i", "-m", "PKCS8", "-f", s(&public)])
        .trim()
        .to_string()
}

/// `ssh` with the card (`module`), the passcode `passcode` given through
/// askpass; runs `echo` there. (succeeded, output).
pub fn login(h: &Harness, sshd: &Service, module: &str, passcode: &str) -> (bool, String) {
    let mut ssh = h.command("ssh");
    ssh.args([
        "-F",
        "/dev/null",
        "-p",
        &sshd.port.to_string(),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "IdentityAgent=none",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "KbdInteractiveAuthentication=no",
        "-o",
        "ConnectTimeout=20",
        "-o",
        &format!("PKCS11Provider={module}"),
        &format!("{}@127.0.0.1", user()),
        "echo logged in with the staff card",
    ])
    .env("SSH_ASKPASS", askpass(h))
    .env("SSH_ASKPASS_REQUIRE", "force")
    .env("S9CARD_TEST_PASSCODE", passcode)
    .env_remove("SSH_AUTH_SOCK");
    outcome(&mut ssh)
}

/// A holder logs in with the card and the passcode; a wrong passcode is
/// refused and costs a try; without the card there is no login.
pub fn logs_in(algorithm: &str) {
    let h = Harness::start(1);
    let issuer = Issuer::new(&h);
    issuer.personalise(&h, 0, "555000201001", algorithm, None);
    let server = sshd(&h, &authorized_key(&h));

    let (ok, text) = login(&h, &server, PKCS11, PASSCODE);
    assert!(ok, "{text}\nsshd:\n{}", server.output());
    assert!(text.contains("logged in with the staff card"), "{text}");
    assert!(
        server.output().contains("Accepted publickey"),
        "{}",
        server.output()
    );

    let before = tries_left(&h);
    let (ok, text) = login(&h, &server, PKCS11, "000000");
    assert!(!ok, "a wrong passcode logged in:\n{text}");
    assert!(text.contains("Permission denied"), "{text}");
    assert_eq!(tries_left(&h), before - 1, "{text}");

    // The right passcode again resets the count, as on any PIV card.
    let (ok, text) = login(&h, &server, PKCS11, PASSCODE);
    assert!(ok, "{text}");
    assert_eq!(tries_left(&h), 3);

    h.control("eject", 0);
    h.wait_for_card(0, false);
    let (ok, text) = login(&h, &server, PKCS11, PASSCODE);
    assert!(!ok, "logged in without the card:\n{text}");
}
