//! TLS client authentication: OpenSSL's `s_server` on loopback requires a
//! client certificate from the CMS's CA; curl logs in with the card's `9A`
//! key through OpenSSL's PKCS#11 engine, the passcode in a curl
//! configuration file readable by the test alone.

use std::process::Command;

use crate::harness::*;
use crate::support::*;

/// An HTTPS server trusting `issuer`'s root for client certificates, with
/// a server certificate from the same CA; `-www` answers with the session,
/// the client's certificate among it.
pub fn server(h: &Harness, issuer: &Issuer, crl: Option<&std::path::Path>) -> Service {
    let dir = h.path("https");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = server_certificate(
        &dir,
        issuer,
        "server",
        "localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    let port = free_port();
    let mut s_server = Command::new("openssl");
    if let Some(crl) = crl {
        s_server.args(["s_server", "-CRL", s(crl), "-crl_check"]);
    } else {
        s_server.arg("s_server");
    }
    Service::start(
        "openssl s_server",
        port,
        dir.join("s_server.log"),
        s_server.args([
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            s(&cert),
            "-key",
            s(&key),
            "-CAfile",
            s(&issuer.root),
            "-Verify",
            "2",
            "-verify_return_error",
            // No resumption: every connection is a full handshake, so
            // every request needs the card's signature.
            "-no_cache",
            "-no_ticket",
            "-www",
        ]),
    )
}

/// The PKCS#11 URI of the `9A` key of the card in the harness's first
/// reader: its token serial picks it whatever other cards PC/SC shows.
pub fn key_uri(h: &Harness) -> String {
    format!(
        "pkcs11:serial={};object=PIV%20AUTH%20key;type=private",
        own_token(h).1
    )
}

/// curl to `server` with the card's `9A` key (`key`) through the PKCS#11
/// engine and its certificate; `tls` adds curl's version options.
pub fn fetch(
    h: &Harness,
    server: &Service,
    issuer: &Issuer,
    key: &str,
    tls: &[&str],
) -> (bool, String) {
    let cert = h.path("9a.pem");
    // The passcode as a kiosk's harness keeps it: a file only it reads.
    let config = h.path("curl.conf");
    std::fs::write(&config, format!("pass = \"{PASSCODE}\"\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut curl = h.command("curl");
    curl.args([
        "--silent",
        "--show-error",
        "--fail",
        "--max-time",
        "60",
        "--config",
        s(&config),
        "--cacert",
        s(&issuer.root),
        "--engine",
        "pkcs11",
        "--key-type",
        "ENG",
        "--key",
        key,
        "--cert",
        s(&cert),
    ])
    .args(tls)
    .arg(format!("https://localhost:{}/", server.port));
    outcome(&mut curl)
}

/// The holder's card logs in over TLS 1.2 and TLS 1.3, the server seeing
/// her certificate; once the card is pulled, the next connection fails.
pub fn authenticates(algorithm: &str) {
    let h = Harness::start(1);
    let issuer = Issuer::new(&h);
    let uuid = "555000301001";
    issuer.personalise(&h, 0, uuid, algorithm, None);
    certificate(&h, "9a");
    let server = server(&h, &issuer, None);
    let key = key_uri(&h);
    for (version, tls) in [
        ("TLSv1.2", &["--tlsv1.2", "--tls-max", "1.2"][..]),
        ("TLSv1.3", &["--tlsv1.3"][..]),
    ] {
        let (ok, text) = fetch(&h, &server, &issuer, &key, tls);
        assert!(ok, "{version}: {text}\nserver:\n{}", server.output());
        assert!(text.contains(&format!("Protocol  : {version}")), "{text}");
        assert!(
            text.contains(&format!("UID = {uuid}")) || text.contains(&format!("UID={uuid}")),
            "the server does not name the holder:\n{text}"
        );
    }
    h.control("eject", 0);
    h.wait_for_card(0, false);
    let (ok, text) = fetch(&h, &server, &issuer, &key, &[]);
    assert!(!ok, "a pulled card still logged in:\n{text}");
}

/// A card whose certificates expired is refused by the server's
/// certificate check, passcode or not.
pub fn refuses_expired() {
    let h = Harness::start(1);
    let issuer = Issuer::new(&h);
    issuer.personalise(&h, 0, "555000301002", "p256", Some("2022-01-10"));
    certificate(&h, "9a");
    let server = server(&h, &issuer, None);
    let (ok, text) = fetch(&h, &server, &issuer, &key_uri(&h), &[]);
    assert!(!ok, "an expired certificate logged in:\n{text}");
    assert!(
        server.output().contains("certificate has expired"),
        "{}",
        server.output()
    );
}

/// A card reported lost is refused once the server has the CA's CRL.
pub fn refuses_revoked() {
    let h = Harness::start(1);
    let issuer = Issuer::new(&h);
    let serial = issuer.personalise(&h, 0, "555000301003", "p256", None);
    certificate(&h, "9a");
    let key = key_uri(&h);
    let crl = issuer.revoke(&h, &serial);
    let checking = server(&h, &issuer, Some(&crl));
    let (ok, text) = fetch(&h, &checking, &issuer, &key, &[]);
    assert!(!ok, "a revoked certificate logged in:\n{text}");
    assert!(
        checking.output().contains("certificate revoked"),
        "{}",
        checking.output()
    );
}
