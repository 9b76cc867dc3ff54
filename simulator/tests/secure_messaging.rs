//! PIV secure messaging and the virtual contact interface, from outside:
//! OpenSC built with `--enable-piv-sm` (scripts/opensc-sm builds it into
//! target/opensc-sm) talks to the card through pcscd with `piv_use_sm =
//! always`, on the contactless interface with the pairing code (the host
//! card) and on the contact interface (the firmware card too). Each run
//! checks in the card's trace that what needed protecting went protected.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use client::{AdminAlgorithm, DEFAULT_MGM, PivClient, Suite};
use harness::*;

const PAIRING_CODE: &str = "12345678";

/// The PKCS#11 module of that OpenSC.
fn module() -> String {
    opensc_sm()
        .join("lib/opensc-pkcs11.so")
        .display()
        .to_string()
}

/// An OpenSC configuration with secure messaging always on, the pairing
/// code the card was given, and one PKCS#11 slot per card; like the
/// harness's, it shows OpenSC this test's reader alone (another test's
/// contactless card must not be sent this pairing code).
fn sm_conf(h: &Harness, pairing_code: &str) -> PathBuf {
    let text = format!(
        "app default {{\n\
         \t{}\n\
         \tcard_driver PIV-II {{\n\t\tpiv_use_sm = always;\n\t\tpiv_pairing_code = {pairing_code};\n\t}}\n\
         \tframework pkcs15 {{\n\t}}\n}}\n\
         app opensc-pkcs11 {{\n\tpkcs11 {{\n\t\tmax_virtual_slots = 56;\n\t\tslots_per_card = 1;\n\t}}\n}}\n",
        h.ignored_readers()
    );
    h.write(&format!("opensc-sm-{pairing_code}.conf"), text.as_bytes())
}

/// Runs a tool of the SM-enabled OpenSC with `conf`: its output, and
/// whether it succeeded.
fn sm_tool(conf: &Path, tool: &str, args: &[&str]) -> (bool, String) {
    let prefix = opensc_sm();
    let out = Command::new(prefix.join("bin").join(tool))
        .args(args)
        .env("OPENSC_CONF", conf)
        .env("LD_LIBRARY_PATH", prefix.join("lib"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn sm_ok(conf: &Path, tool: &str, args: &[&str]) -> String {
    let (ok, text) = sm_tool(conf, tool, args);
    assert!(ok, "{tool} {args:?} failed:\n{text}");
    text
}

/// What the key management slot (9D) holds, and so what the test does
/// with it: OpenSC decrypts with an RSA key there and derives with an EC
/// one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyManagement {
    /// RSA-2048: decrypt (not on the firmware card, whose key generation
    /// would take minutes).
    Rsa,
    /// P-256: ECDH.
    Ec,
}

/// The issuer's part, on the contact interface: keys with certificates in
/// 9A (P-256, sign) and 9D, then secure messaging with `suite` and the
/// pairing code.
fn issue(h: &Harness, suite: Suite, km: KeyManagement) {
    key_with_certificate(h, "9a", "holder");
    match km {
        KeyManagement::Rsa => {
            let pubkey = h.path("decrypt-9d.pub");
            yubico(
                h,
                &[
                    "-a",
                    "generate",
                    "-s",
                    "9d",
                    "-A",
                    "RSA2048",
                    "-o",
                    pubkey.to_str().unwrap(),
                ],
            );
            let cert = harness::issue(h, &pubkey, "decrypt");
            yubico(
                h,
                &[
                    "-a",
                    "import-certificate",
                    "-s",
                    "9d",
                    "-i",
                    cert.to_str().unwrap(),
                ],
            );
        }
        KeyManagement::Ec => {
            key_with_certificate(h, "9d", "derive");
        }
    }
    let mut piv = PivClient::new(h.connect(0));
    piv.select().unwrap();
    piv.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
        .unwrap();
    let now = cms::time::system_now();
    let ca = cms::ca::TestCa::init(&h.path("cms-ca"), now).unwrap();
    let signer = cms::sm::SmSigner::load_or_create(&ca, now).unwrap();
    let chuid = piv.get_object(applet::objects::CHUID).unwrap().unwrap();
    let guid = cms::sm::guid_of(&chuid).unwrap();
    cms::sm::make_ready(&mut piv, &signer, suite, &guid, Some(PAIRING_CODE)).unwrap();
}

/// The lines of the card's decoded trace.
fn trace(h: &Harness) -> Vec<String> {
    let out = ok(
        s9card().to_str().unwrap(),
        &["trace", "decode", h.trace.to_str().unwrap()],
    );
    out.lines().map(str::to_string).collect()
}

/// What must and must not be in the trace of a session (the lines from
/// `from` on, after the issuer's): the key establishment, the PIN and the
/// private-key operations protected, none of them in the clear.
fn protected_in_trace(h: &Harness, from: usize, contactless: bool) {
    let lines: Vec<String> = trace(h).into_iter().skip(from).collect();
    let has = |what: &str| lines.iter().any(|l| l.contains(what));
    // A private-key operation: GENERAL AUTHENTICATE but for the
    // management key's and the key establishment.
    let key_operation = |l: &str| {
        l.contains("GENERAL AUTHENTICATE")
            && !l.contains("MANAGEMENT KEY")
            && !l.contains("KEY ESTABLISHMENT")
    };
    assert!(has("GENERAL AUTHENTICATE KEY ESTABLISHMENT"), "{lines:#?}");
    assert!(has("VERIFY PIN [SM]"), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| key_operation(l) && l.contains(" 9A [SM]")),
        "{lines:#?}"
    );
    if contactless {
        assert!(has("VERIFY PAIRING CODE [SM]"), "{lines:#?}");
    }
    // A passcode or a key operation never goes in the clear. A VERIFY
    // without data only asks for the status: OpenSC may send one before it
    // has opened a session (the card answers it, refused or not, with no
    // secret on the line).
    for line in &lines {
        let verify = (line.contains("VERIFY PIN") || line.contains("VERIFY PAIRING CODE"))
            && !line.contains("(status)");
        let clear = (verify || key_operation(line)) && !line.contains("[SM]");
        assert!(!clear, "in the clear: {line}");
    }
}

/// The PKCS#11 slot of the harness's card.
fn slot_of(h: &Harness, conf: &Path) -> String {
    let listing = stable_slot_listing(|| {
        sm_tool(
            conf,
            "pkcs11-tool",
            &["--module", &module(), "--list-token-slots"],
        )
    });
    let reader = h.reader(0);
    let mut current = None;
    for line in listing.lines() {
        if let Some(rest) = line.strip_prefix("Slot ") {
            current = rest
                .split_once("): ")
                .filter(|(_, r)| r.trim() == reader)
                .and_then(|(id, _)| id.split_once("(0x"))
                .map(|(_, hex)| u64::from_str_radix(hex, 16).unwrap().to_string());
        } else if line.contains("token label")
            && let Some(slot) = current.take()
        {
            return slot;
        }
    }
    panic!("no token in {reader}:\n{listing}")
}

/// Signs, and decrypts or derives, through the PKCS#11 module of the
/// SM-enabled OpenSC, each result checked with OpenSSL.
fn use_the_keys(h: &Harness, conf: &Path, km: KeyManagement) {
    let m = module();
    let slot = slot_of(h, conf);
    let base = [
        "--module",
        m.as_str(),
        "--slot",
        slot.as_str(),
        "--login",
        "--pin",
        "123456",
    ];

    // Sign with 9A (key id 01).
    let msg = h.write("msg.txt", b"signed through secure messaging");
    let digest = h.path("msg.sha256");
    ok(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-binary",
            "-out",
            digest.to_str().unwrap(),
            msg.to_str().unwrap(),
        ],
    );
    let sig = h.path("msg.sig");
    let mut args = base.to_vec();
    args.extend([
        "--sign",
        "-m",
        "ECDSA",
        "--id",
        "01",
        "--signature-format",
        "openssl",
    ]);
    args.extend(["-i", digest.to_str().unwrap(), "-o", sig.to_str().unwrap()]);
    sm_ok(conf, "pkcs11-tool", &args);
    assert!(verifies(
        h,
        &h.path("holder.pem"),
        b"signed through secure messaging",
        &sig
    ));

    // Decrypt with 9D (key id 03): OpenSSL encrypts to its certificate.
    if km == KeyManagement::Rsa {
        let secret = h.write("secret.txt", b"key transport through SM");
        let wrapped = h.path("secret.enc");
        ok(
            "openssl",
            &[
                "pkeyutl",
                "-encrypt",
                "-certin",
                "-inkey",
                h.path("decrypt.pem").to_str().unwrap(),
                "-in",
                secret.to_str().unwrap(),
                "-out",
                wrapped.to_str().unwrap(),
            ],
        );
        let opened = h.path("secret.dec");
        let mut args = base.to_vec();
        args.extend(["--decrypt", "-m", "RSA-PKCS", "--id", "03"]);
        args.extend([
            "-i",
            wrapped.to_str().unwrap(),
            "-o",
            opened.to_str().unwrap(),
        ]);
        sm_ok(conf, "pkcs11-tool", &args);
        assert_eq!(std::fs::read(&opened).unwrap(), b"key transport through SM");
    }

    if km == KeyManagement::Ec {
        derive(h, conf, &base);
    }
}

/// Derive with 9D (key id 03): ECDH with a peer key OpenSSL makes, the
/// same secret both ways.
fn derive(h: &Harness, conf: &Path, base: &[&str]) {
    let peer = h.path("peer.key");
    ec_key(&peer);
    let peer_pub = h.path("peer.der");
    ok(
        "openssl",
        &[
            "ec",
            "-in",
            peer.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            peer_pub.to_str().unwrap(),
        ],
    );
    let derived = h.path("derived.bin");
    let mut args = base.to_vec();
    args.extend(["--derive", "-m", "ECDH1-DERIVE", "--id", "03"]);
    args.extend([
        "-i",
        peer_pub.to_str().unwrap(),
        "-o",
        derived.to_str().unwrap(),
    ]);
    sm_ok(conf, "pkcs11-tool", &args);
    let card_pub = h.path("derive-pub.pem");
    ok(
        "openssl",
        &[
            "x509",
            "-in",
            h.path("derive.pem").to_str().unwrap(),
            "-pubkey",
            "-noout",
            "-out",
            card_pub.to_str().unwrap(),
        ],
    );
    let expected = h.path("expected.bin");
    ok(
        "openssl",
        &[
            "pkeyutl",
            "-derive",
            "-inkey",
            peer.to_str().unwrap(),
            "-peerkey",
            card_pub.to_str().unwrap(),
            "-out",
            expected.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(&derived).unwrap(),
        std::fs::read(&expected).unwrap()
    );
}

/// The host card in a contactless reader: OpenSC opens the session, sends
/// the pairing code, and everything the holder does goes protected.
#[test]
fn opensc_uses_the_virtual_contact_interface_contactless() {
    if Kind::current() == Kind::Firmware {
        // The firmware card is a contact card: its pass is the next test.
        return;
    }
    for (suite, km) in [
        (Suite::Cs2, KeyManagement::Rsa),
        (Suite::Cs7, KeyManagement::Ec),
    ] {
        let mut h = Harness::start(1);
        issue(&h, suite, km);
        h.restart_server_with(&["--interface", "contactless"]);
        let conf = sm_conf(&h, PAIRING_CODE);
        let from = trace(&h).len();
        let listing = sm_ok(&conf, "pkcs15-tool", &["--reader", &h.reader(0), "-D"]);
        assert!(
            listing.contains("PIV AUTH key") || listing.contains("PIV Authentication"),
            "{listing}"
        );
        use_the_keys(&h, &conf, km);
        protected_in_trace(&h, from, true);
        // The CMS's status reads a contactless card through its VCI, given
        // the pairing code; without it the card tells nothing.
        let db = h.path("cms.db");
        let reader = h.reader(0);
        let args = [
            "status",
            "--reader",
            reader.as_str(),
            "--db",
            db.to_str().unwrap(),
        ];
        let status = ok(
            s9card().to_str().unwrap(),
            &[&args[..], &["--pairing-code", PAIRING_CODE]].concat(),
        );
        assert!(status.contains("0900000001"), "{status}");
        let refused = run(
            s9card().to_str().unwrap(),
            &[&args[..], &["--pairing-code", "none"]].concat(),
        );
        assert!(!refused.status.success(), "status without the VCI");
    }
}

/// A wrong pairing code: OpenSC cannot open the virtual contact interface,
/// the log-in fails, and the card counts the try.
#[test]
fn a_wrong_pairing_code_opens_nothing() {
    if Kind::current() == Kind::Firmware {
        return;
    }
    let mut h = Harness::start(1);
    issue(&h, Suite::Cs2, KeyManagement::Ec);
    h.restart_server_with(&["--interface", "contactless"]);
    let conf = sm_conf(&h, "87654321");
    let (ok, text) = sm_tool(
        &conf,
        "pkcs11-tool",
        &[
            "--module",
            &module(),
            "--login",
            "--pin",
            "123456",
            "--list-objects",
        ],
    );
    assert!(!ok || !text.contains("Private Key Object"), "{text}");
    // The card counted OpenSC's tries (it sends the code each time it
    // opens a session): spent, or blocked.
    let mut piv = PivClient::new(h.connect(0));
    cms::sm::open_vci(&mut piv, None, None).unwrap();
    let (_, sw) = piv.exchange([0x00, 0x20, 0x00, 0x98], &[]).unwrap();
    assert!((0x63C0..=0x63C4).contains(&sw) || sw == 0x6983, "{sw:04X}");
    // And the holder's keys stayed out of reach: nothing protected but the
    // pairing code reached the card, and every try failed.
    let lines = trace(&h);
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("VERIFY PIN [SM]") || l.contains("6982")),
        "{lines:#?}"
    );
}

/// On the contact interface (the host card and the firmware card):
/// `piv_use_sm = always` protects the session there too.
#[test]
fn opensc_uses_secure_messaging_on_the_contact_interface() {
    let h = Harness::start(1);
    let km = match h.kind {
        Kind::Firmware => KeyManagement::Ec,
        _ => KeyManagement::Rsa,
    };
    issue(&h, Suite::Cs2, km);
    let conf = sm_conf(&h, PAIRING_CODE);
    let from = trace(&h).len();
    use_the_keys(&h, &conf, km);
    protected_in_trace(&h, from, false);
}

/// OpenSC's own PKCS#11 test suite, through secure messaging on the
/// contactless interface.
#[test]
fn p11test_passes_through_secure_messaging() {
    if Kind::current() == Kind::Firmware {
        return;
    }
    let mut h = Harness::start(1);
    issue(&h, Suite::Cs2, KeyManagement::Ec);
    h.restart_server_with(&["--interface", "contactless"]);
    let conf = sm_conf(&h, PAIRING_CODE);
    let from = trace(&h).len();
    let slot = slot_of(&h, &conf);
    let out = h.path("p11test.json");
    let (passed, text) = sm_tool(
        &conf,
        "p11test",
        &[
            "-m",
            &module(),
            "-s",
            &slot,
            "-p",
            "123456",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(passed, "p11test failed:\n{text}");
    // It ran the suite, signatures and derivation among it, and every test
    // it ran passed.
    let report = std::fs::read_to_string(&out).unwrap();
    for test in ["readonly_tests", "ec_sign_size_test", "derive_tests"] {
        assert!(report.contains(test), "p11test ran no {test}:\n{report}");
    }
    assert!(!report.contains("\"result\": \"fail\""), "{report}");
    println!("{text}");
    protected_in_trace(&h, from, true);
}
