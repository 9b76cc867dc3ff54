//! No secret reaches a trace: every flow that carries one, driven through
//! pcscd with the tools users run and with secrets chosen here, then the raw
//! trace file and its decoded form searched for every secret's bytes.
//!
//! A secret is searched as raw bytes, as upper- and lower-case hex, and, if
//! longer than 8 bytes, as every 8-byte window of it (a trace that kept a
//! part of a key would still give it away). The figure printed is the one
//! the closing notes quote: `trace secrets: S secrets, W windows, H hits`.

mod harness;

use std::path::Path;

use client::{Pcsc, PivClient};
use harness::*;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

/// The secrets of this run, each with a name for the failure message.
#[derive(Default)]
struct Secrets(Vec<(String, Vec<u8>)>);

impl Secrets {
    fn add(&mut self, name: &str, bytes: &[u8]) {
        assert!(bytes.len() >= 6, "{name}: too short to search for");
        self.0.push((name.to_string(), bytes.to_vec()));
    }

    /// A PIN or PUK as the card receives it: padded with `FF` to 8 bytes.
    fn passcode(&mut self, name: &str, digits: &str) {
        let mut field = digits.as_bytes().to_vec();
        field.resize(8, 0xFF);
        self.add(name, &field);
    }

    /// Every search pattern: (secret name, pattern).
    fn patterns(&self) -> Vec<(&str, Vec<u8>)> {
        let mut out = Vec::new();
        for (name, bytes) in &self.0 {
            let windows: Vec<&[u8]> = if bytes.len() <= 8 {
                vec![bytes]
            } else {
                bytes.windows(8).collect()
            };
            for w in windows {
                let upper = hex::encode_upper(w);
                out.push((name.as_str(), w.to_vec()));
                out.push((name.as_str(), upper.to_lowercase().into_bytes()));
                out.push((name.as_str(), upper.into_bytes()));
            }
        }
        out
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const PIN: &str = "482915";
const PIN_2: &str = "730164";
const PIN_3: &str = "593017";
const PAIRING_CODE: &str = "40718293";
const PUK: &str = "73918264";
const MGM: &str = "7F3A9C1E5B2D4F60718293A4B5C6D7E8F90A1B2C3D4E5F60";
/// A P-256 scalar imported into 9C.
const SCALAR: &str = "3C8A1F5E9B2D7046A1C3E5F708192A3B4C5D6E7F8091A2B3C4D5E6F708192A3B";
/// A session key wrapped to the card's RSA key, which the card unwraps.
const SESSION_KEY: &str = "5E551011C0FFEE0042A5A5A5DEADBEEF0123456789ABCDEF0F1E2D3C4B5A6978";
/// A management key kept PIN-protected in the printed information object,
/// as yubico-piv-tool and ykman keep it: `88 { 89 key }`.
const PROTECTED_MGM: &str = "0A0B0C0D0E0F101112131415161718191A1B1C1D1E1F2021";

#[test]
fn no_secret_reaches_the_trace() {
    let h = Harness::start(1);
    let mut secrets = Secrets::default();

    // The recorded tool sessions' commands (fuzz/traces), with the factory
    // PIN, PUK and management key they carry.
    let recorded = include_str!("../../fuzz/traces/commands.hex");
    let reader = h.reader(0);
    let mut card = PivClient::new(Pcsc::connect_exact(&reader).unwrap());
    for line in recorded.lines().filter(|l| !l.is_empty()) {
        card.raw(&hex::decode(line).unwrap()).unwrap();
    }
    // Whatever state the replay left, back to the factory: block the PIN
    // and the PUK with wrong values, then RESET.
    let sw = |rsp: Vec<u8>| u16::from_be_bytes([rsp[rsp.len() - 2], rsp[rsp.len() - 1]]);
    let wrong_pin = hex::decode("00200080083030303030303030").unwrap();
    while sw(card.raw(&wrong_pin).unwrap()) != 0x6983 {}
    let wrong_puk = hex::decode("002400811030303030303030303030303030303030").unwrap();
    while sw(card.raw(&wrong_puk).unwrap()) != 0x6983 {}
    assert_eq!(sw(card.raw(&[0x00, 0xFB, 0x00, 0x00]).unwrap()), 0x9000);
    drop(card);
    secrets.passcode("factory PIN", "123456");
    secrets.passcode("factory PUK", "12345678");
    secrets.add(
        "factory management key",
        &hex::decode("0102030405060708".repeat(3)).unwrap(),
    );

    // Passcodes: VERIFY, CHANGE REFERENCE DATA for PIN and PUK, RESET
    // RETRY COUNTER, a PKCS#11 login.
    yubico(&h, &["-a", "change-pin", "-P", "123456", "-N", PIN]);
    yubico(&h, &["-a", "verify-pin", "-P", PIN]);
    yubico(&h, &["-a", "change-puk", "-P", "12345678", "-N", PUK]);
    yubico(&h, &["-a", "unblock-pin", "-P", PUK, "-N", PIN_2]);
    secrets.passcode("PIN", PIN);
    secrets.passcode("new PIN", PIN_2);
    secrets.passcode("PUK", PUK);

    // IMPORT of a known scalar.
    let key = p256::SecretKey::from_slice(&hex::decode(SCALAR).unwrap()).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key_file = h.write("import.pem", pem.as_bytes());
    yubico(&h, &["-a", "import-key", "-s", "9c", "-i", p(&key_file)]);
    secrets.add("imported scalar", &hex::decode(SCALAR).unwrap());

    // RSA decryption with 9D through PKCS#11: the unwrapped session key
    // comes out of the card inside its PKCS#1 block.
    let rsa_pub = h.path("rsa.pub");
    yubico(
        &h,
        &[
            "-a",
            "generate",
            "-s",
            "9d",
            "-A",
            "RSA1024",
            "-o",
            p(&rsa_pub),
        ],
    );
    let rsa_cert = issue(&h, &rsa_pub, "key management rsa");
    yubico(
        &h,
        &["-a", "import-certificate", "-s", "9d", "-i", p(&rsa_cert)],
    );
    let session_key = h.write("session.key", &hex::decode(SESSION_KEY).unwrap());
    let wrapped = h.path("session.wrapped");
    ok(
        "openssl",
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            p(&rsa_pub),
            "-in",
            p(&session_key),
            "-out",
            p(&wrapped),
        ],
    );
    let unwrapped = h.path("session.out");
    h.ok(
        "pkcs11-tool",
        &[
            "--module",
            PKCS11,
            "--slot-description",
            &reader,
            "--login",
            "--pin",
            PIN_2,
            "--decrypt",
            "-m",
            "RSA-PKCS",
            "--id",
            "03",
            "-i",
            p(&wrapped),
            "-o",
            p(&unwrapped),
        ],
    );
    assert_eq!(
        std::fs::read(&unwrapped).unwrap(),
        hex::decode(SESSION_KEY).unwrap()
    );
    secrets.add(
        "RSA-unwrapped session key",
        &hex::decode(SESSION_KEY).unwrap(),
    );

    // ECDH with 9D through PKCS#11: the shared secret comes out of the card.
    let cert = key_with_certificate(&h, "9d", "key management");
    let peer = h.path("peer.key");
    ec_key(&peer);
    let peer_der = h.path("peer.der");
    ok(
        "openssl",
        &[
            "ec",
            "-in",
            p(&peer),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            p(&peer_der),
        ],
    );
    let shared = h.path("shared.bin");
    h.ok(
        "pkcs11-tool",
        &[
            "--module",
            PKCS11,
            "--slot-description",
            &reader,
            "--login",
            "--pin",
            PIN_2,
            "--derive",
            "-m",
            "ECDH1-DERIVE",
            "--id",
            "03",
            "-i",
            p(&peer_der),
            "-o",
            p(&shared),
        ],
    );
    // The same secret computed off the card, so the test knows it is real.
    let card_pub = h.path("card.pub");
    std::fs::write(
        &card_pub,
        ok("openssl", &["x509", "-in", p(&cert), "-pubkey", "-noout"]),
    )
    .unwrap();
    let expected = std::process::Command::new("openssl")
        .args([
            "pkeyutl",
            "-derive",
            "-inkey",
            p(&peer),
            "-peerkey",
            p(&card_pub),
        ])
        .output()
        .unwrap()
        .stdout;
    let shared = std::fs::read(&shared).unwrap();
    assert_eq!(shared.len(), 32);
    assert_eq!(
        shared, expected,
        "the card's ECDH output is the real shared secret"
    );
    secrets.add("ECDH shared secret", &shared);

    // A PIN-protected management key in the printed information object,
    // written by PUT DATA and read back after VERIFY.
    let printed = hex::decode(format!("881A8918{PROTECTED_MGM}")).unwrap();
    let printed_file = h.write("printed.bin", &printed);
    yubico(
        &h,
        &[
            "-a",
            "write-object",
            "--id",
            "0x5fc109",
            "-i",
            p(&printed_file),
            "-f",
            "binary",
        ],
    );
    let read = yubico(
        &h,
        &[
            "-a",
            "verify-pin",
            "-P",
            PIN_2,
            "-a",
            "read-object",
            "--id",
            "0x5fc109",
            "-f",
            "hex",
        ],
    );
    assert!(read.to_uppercase().contains(PROTECTED_MGM), "{read}");
    secrets.add(
        "PIN-protected management key",
        &hex::decode(PROTECTED_MGM).unwrap(),
    );

    // SET MANAGEMENT KEY, then the new key authenticating (its cryptograms
    // are redacted too) for SET PIN RETRIES, which needs the PIN as well.
    yubico(&h, &["-a", "set-mgm-key", "-n", MGM]);
    let with_key = format!("--key={MGM}");
    yubico(
        &h,
        &[
            &with_key,
            "-a",
            "verify-pin",
            "-P",
            PIN_2,
            "-a",
            "pin-retries",
            "--pin-retries",
            "4",
            "--puk-retries",
            "4",
        ],
    );
    secrets.add("management key", &hex::decode(MGM).unwrap());
    // After SET PIN RETRIES the codes are the factory ones again: one more
    // change to a chosen PIN.
    yubico(&h, &["-a", "change-pin", "-P", "123456", "-N", PIN_3]);
    secrets.passcode("third PIN", PIN_3);

    // Secure messaging: the issuer readies the card (key 04, its CVC, a
    // pairing code), then a session carries the PIN, the pairing code, a
    // signature and an ECDH secret, all protected. The wrapped bytes may
    // reach the trace; what they wrap must not.
    let mut card = PivClient::new(Pcsc::connect_exact(&reader).unwrap());
    card.select().unwrap();
    card.authenticate(client::AdminAlgorithm::Tdes, &hex::decode(MGM).unwrap())
        .unwrap();
    let now = cms::time::system_now();
    let ca = cms::ca::TestCa::init(&h.path("cms-ca"), now).unwrap();
    let signer = cms::sm::SmSigner::load_or_create(&ca, now).unwrap();
    let guid = cms::sm::guid_of(&card.get_object(0x5FC102).unwrap().unwrap()).unwrap();
    cms::sm::make_ready(
        &mut card,
        &signer,
        client::Suite::Cs2,
        &guid,
        Some(PAIRING_CODE),
    )
    .unwrap();
    secrets.add("pairing code", PAIRING_CODE.as_bytes());
    cms::sm::open_vci(&mut card, Some(&ca), Some(PAIRING_CODE)).unwrap();
    card.verify_pin(PIN_3.as_bytes()).unwrap();
    let peer = p256::SecretKey::from_slice(&[0x29; 32]).unwrap();
    let peer_point =
        p256::elliptic_curve::sec1::ToSec1Point::to_sec1_point(&peer.public_key(), false);
    let sm_shared = card
        .private_operation(
            client::Slot::KeyManagement,
            client::Algorithm::P256,
            0x85,
            peer_point.as_bytes(),
        )
        .unwrap();
    assert!(card.is_secure());
    secrets.add("ECDH shared secret through secure messaging", &sm_shared);
    drop(card);

    let raw = std::fs::read(&h.trace).unwrap();
    let decoded = ok(
        s9card().to_str().unwrap(),
        &["trace", "decode", p(&h.trace)],
    );
    assert!(raw.len() > 10_000, "the trace recorded the session");
    assert!(
        decoded.contains("GENERAL AUTHENTICATE ECDH 9D"),
        "{decoded}"
    );
    assert!(decoded.contains("GET DATA 5FC109"), "{decoded}");
    assert!(decoded.contains("VERIFY PAIRING CODE [SM]"), "{decoded}");
    assert!(
        decoded.contains("GENERAL AUTHENTICATE 9D [SM]"),
        "{decoded}"
    );
    let patterns = secrets.patterns();
    let mut hits = Vec::new();
    for (name, pattern) in &patterns {
        for (what, text) in [("raw", &raw[..]), ("decoded", decoded.as_bytes())] {
            if contains(text, pattern) {
                hits.push(format!("{name} in the {what} trace: {pattern:02X?}"));
            }
        }
    }
    println!(
        "trace secrets: {} secrets, {} windows ({} patterns in 2 traces), {} hits",
        secrets.0.len(),
        patterns.len() / 3,
        patterns.len(),
        hits.len()
    );
    assert!(
        hits.is_empty(),
        "secrets reached the trace:\n{}",
        hits.join("\n")
    );
}
