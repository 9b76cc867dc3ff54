//! S/MIME: `openssl cms` signs with the card's `9C` key and decrypts with
//! its `9D` key through OpenSSL's PKCS#11 engine, the passcode in the
//! engine's OpenSSL configuration (a file only the test reads); the signed message
//! verifies against the CMS's CA as a mail client would check it. `9C` is
//! "PIN always": the card signs once per passcode, which PKCS#11 shows as
//! a context-specific login before every signature.

use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

use crate::harness::*;
use crate::support::*;

const MESSAGE: &[u8] = b"Ward 7 handover: the staff card signs this.\r\n";

fn key_uri(h: &Harness, object: &str) -> String {
    format!(
        "pkcs11:serial={};object={};type=private",
        own_token(h).1,
        object.replace(' ', "%20")
    )
}

/// An OpenSSL configuration that loads the PKCS#11 engine with the
/// passcode (`PIN`), readable by the test alone: the engine logs in with
/// it.
fn engine_conf(h: &Harness, passcode: &str) -> PathBuf {
    let path = h.path("openssl-pkcs11.cnf");
    std::fs::write(
        &path,
        format!(
            "openssl_conf = init\n[init]\nengines = engines\n[engines]\npkcs11 = pkcs11\n\
             [pkcs11]\nengine_id = pkcs11\nMODULE_PATH = {PKCS11}\nPIN = {passcode}\ninit = 0\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// OpenSC as a mail client deploys it: the passcode the user gave is
/// cached and sent again before each "PIN always" signature
/// (`pin_cache_ignore_user_consent`), since OpenSSL's engine cannot ask
/// for it again without a terminal. The card still gets a VERIFY before
/// every `9C` signature (the trace shows it).
fn mail_client_conf(h: &Harness) -> PathBuf {
    let path = h.path("opensc-mail.conf");
    let conf = std::fs::read_to_string(h.opensc_conf()).unwrap().replace(
        "framework pkcs15 {",
        "framework pkcs15 {\n\t\tuse_pin_caching = true;\n\t\tpin_cache_ignore_user_consent = true;",
    );
    std::fs::write(&path, conf).unwrap();
    path
}

fn openssl_cms(h: &Harness, passcode: &str, args: &[&str]) -> (bool, String) {
    let mut cms = Command::new("openssl");
    cms.arg("cms")
        .args(args)
        .env("OPENSSL_CONF", engine_conf(h, passcode))
        .env("OPENSC_CONF", mail_client_conf(h));
    outcome(&mut cms)
}

/// Signs [`MESSAGE`] with `9C`; the signed message's path, or the refusal.
fn sign(h: &Harness, passcode: &str, name: &str) -> Result<PathBuf, String> {
    let message = h.write("message.txt", MESSAGE);
    let signed = h.path(name);
    let key = key_uri(h, "SIGN key");
    let (ok, text) = openssl_cms(
        h,
        passcode,
        &[
            "-sign",
            "-binary",
            "-nodetach",
            "-md",
            "sha256",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-inkey",
            &key,
            "-signer",
            s(&h.path("9c.pem")),
            "-in",
            s(&message),
            "-outform",
            "DER",
            "-out",
            s(&signed),
        ],
    );
    if ok { Ok(signed) } else { Err(text) }
}

/// A holder signs and decrypts mail with her card; a wrong passcode signs
/// nothing and costs a try.
pub fn signs_and_decrypts(algorithm: &str) {
    let h = Harness::start(1);
    let issuer = Issuer::new(&h);
    issuer.personalise(&h, 0, "555000401001", algorithm, None);
    certificate(&h, "9c");
    let recipient = certificate(&h, "9d");

    let signed = sign(&h, PASSCODE, "signed.p7").unwrap_or_else(|e| panic!("{e}"));
    let content = h.path("verified.txt");
    let (ok, text) = openssl_cms(
        &h,
        PASSCODE,
        &[
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            s(&signed),
            "-CAfile",
            s(&issuer.root),
            "-purpose",
            "smimesign",
            "-out",
            s(&content),
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Verification successful"), "{text}");
    assert_eq!(std::fs::read(&content).unwrap(), MESSAGE);

    let before = tries_left(&h);
    let refused = sign(&h, "000000", "wrong.p7");
    assert!(refused.is_err(), "a wrong passcode signed");
    assert_eq!(tries_left(&h), before - 1);

    // Mail encrypted to her 9D certificate, read with her card.
    let encrypted = encrypt(&h, &recipient, "encrypted.p7");
    assert_eq!(decrypt(&h, &encrypted, &recipient, "KEY MAN key"), MESSAGE);
}

/// [`MESSAGE`] encrypted to `recipient` (a PEM certificate) as a mail
/// client sends it.
fn encrypt(h: &Harness, recipient: &Path, name: &str) -> PathBuf {
    let message = h.write("secret.txt", MESSAGE);
    let encrypted = h.path(name);
    let (ok, text) = openssl_cms(
        h,
        PASSCODE,
        &[
            "-encrypt",
            "-binary",
            "-aes-256-cbc",
            "-in",
            s(&message),
            "-outform",
            "DER",
            "-out",
            s(&encrypted),
            s(recipient),
        ],
    );
    assert!(ok, "{text}");
    encrypted
}

/// Decrypts `encrypted` with the card's key labelled `key` (OpenSC's
/// label), for `recipient`; the plaintext.
fn decrypt(h: &Harness, encrypted: &Path, recipient: &Path, key: &str) -> Vec<u8> {
    let decrypted = h.path("decrypted.txt");
    let _ = std::fs::remove_file(&decrypted);
    let key = key_uri(h, key);
    let (ok, text) = openssl_cms(
        h,
        PASSCODE,
        &[
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            s(encrypted),
            "-recip",
            s(recipient),
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-inkey",
            &key,
            "-out",
            s(&decrypted),
        ],
    );
    assert!(ok, "{text}");
    std::fs::read(&decrypted).unwrap()
}

/// Key history: mail encrypted to her key management certificate before
/// a renewal is still read after it, with the retired key (`82`) the
/// renewal kept; OpenSC finds it through the Key History object, and
/// new mail goes to the new `9D` key.
pub fn mail_to_a_renewed_key_stays_readable() {
    let h = Harness::start(1);
    let issuer = Issuer::new(&h);
    issuer.personalise(&h, 0, "555000401003", "p256", Some("2026-12-01"));
    let before = h.path("9d-before.pem");
    std::fs::rename(certificate(&h, "9d"), &before).unwrap();
    let old_mail = encrypt(&h, &before, "to-old-key.p7");

    let renewed = issuer.renew(&h, 0, "2028-10-01");
    assert!(renewed.contains("certificates expire 2030"), "{renewed}");
    let after = certificate(&h, "9d");
    assert_ne!(
        std::fs::read(&after).unwrap(),
        std::fs::read(&before).unwrap()
    );
    // The retired certificate is the old one, in the first retired slot.
    let retired = certificate(&h, "82");
    assert_eq!(
        std::fs::read(&retired).unwrap(),
        std::fs::read(&before).unwrap()
    );

    assert_eq!(
        decrypt(&h, &old_mail, &before, "Retired KEY MAN 1"),
        MESSAGE
    );
    let new_mail = encrypt(&h, &after, "to-new-key.p7");
    assert_eq!(decrypt(&h, &new_mail, &after, "KEY MAN key"), MESSAGE);
}

/// `9C` signs once per passcode: after a signature, the next one is
/// refused until the passcode is given again, in the same session.
pub fn signature_needs_the_passcode_each_time() {
    // Alone: the module, in this process, opens every token PC/SC shows.
    let h = Harness::start_alone(1);
    let issuer = Issuer::new(&h);
    issuer.personalise(&h, 0, "555000401002", "p256", None);
    let p11 = Pkcs11::new(PKCS11).unwrap();
    p11.initialize(CInitializeArgs::OsThreads).unwrap();
    let reader = h.reader(0);
    let slot = p11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| {
            p11.get_slot_info(*s)
                .is_ok_and(|i| i.slot_description().trim() == reader)
        })
        .expect("a PKCS#11 slot for the reader");
    let session = p11.open_ro_session(slot).unwrap();
    let pin = AuthPin::new(PASSCODE.into());
    session.login(UserType::User, Some(&pin)).unwrap();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![2]),
        ])
        .unwrap()
        .into_iter()
        .next()
        .expect("the 9C private key");
    let always = session
        .get_attributes(key, &[cryptoki::object::AttributeType::AlwaysAuthenticate])
        .unwrap();
    assert!(
        matches!(always.first(), Some(Attribute::AlwaysAuthenticate(true))),
        "{always:?}"
    );
    let digest = [0x5A; 32];
    session
        .login(UserType::ContextSpecific, Some(&pin))
        .unwrap();
    session.sign(&Mechanism::Ecdsa, key, &digest).unwrap();
    let again = session.sign(&Mechanism::Ecdsa, key, &digest);
    assert!(again.is_err(), "a second signature without the passcode");
    drop(session);
    p11.finalize();

    // The card itself, not the middleware, holds the rule: one VERIFY,
    // one signature.
    let mut card = client::PivClient::new(h.connect(0));
    card.select().unwrap();
    card.verify_pin(PASSCODE.as_bytes()).unwrap();
    card.sign(client::Slot::Signature, &digest).unwrap();
    let second = card.sign(client::Slot::Signature, &digest);
    assert!(
        matches!(
            second,
            Err(client::ClientError::Refused {
                status: client::Status::SecurityStatusNotSatisfied,
                ..
            })
        ),
        "{second:?}"
    );
}
