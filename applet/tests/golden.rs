//! Golden records pin the applet's layouts on flash, as card-os's golden
//! files pin the store's framing and the factory record.
//!
//! `tests/golden/records-N.txt` is every record a card holds after one
//! fixed history (factory state, PIN and PUK changed, an AES-256
//! management key, P-256 and Ed25519 keys, the CHUID, a staged renewal
//! key), one line per record: its store key and its bytes in hex. The
//! history is deterministic (a fixed device key and a seeded RNG), so:
//! - the current code must write exactly the newest file's records: a
//!   change to any record's layout fails here unless it comes with a new
//!   layout version, a new file and a migration;
//! - a card whose store holds exactly an older file's records must still
//!   open them: its passcodes, keys, objects and staged key all work.
//!
//! Set `S9CARD_BLESS=1` to write a missing file once.

mod common;

use applet::algorithm::Algorithm;
use card_os::store::{Key, Op, Store};
use client::{AdminAlgorithm, DEFAULT_MGM, PivClient, Slot};
use common::{Flash, PivCard, boot_on, hex, to_hex};
use p256::ecdsa::signature::hazmat::PrehashVerifier;

/// The record set the current code writes.
const CURRENT: u32 = 1;

const PIN: &[u8] = b"24681357";
const PUK: &[u8] = b"87654321";
const AES_KEY: [u8; 32] = [0x3C; 32];
const CHUID: &str = "3019D4E739DA739CED39CE739D836858210842108421C84210C3EB341000112233445566778899AABBCCDDEEFF350832303330303130313E00FE00";
const DIGEST: [u8; 32] = [0x11; 32];

fn path(set: u32) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/records-{set}.txt"))
}

/// The history every record set records.
fn history() -> PivCard {
    let mut card = boot_on(Flash::new(), 0x601D);
    let mut piv = PivClient::new(&mut card);
    piv.select().unwrap();
    piv.change(0x80, b"123456", PIN).unwrap();
    piv.change(0x81, b"12345678", PUK).unwrap();
    piv.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
        .unwrap();
    piv.set_management_key(AdminAlgorithm::Aes256, &AES_KEY)
        .unwrap();
    piv.authenticate(AdminAlgorithm::Aes256, &AES_KEY).unwrap();
    piv.generate_key(Slot::Authentication, Algorithm::P256, false)
        .unwrap();
    piv.generate_key(Slot::Signature, Algorithm::Ed25519, false)
        .unwrap();
    piv.put_object(0x5FC102, &hex(CHUID)).unwrap();
    piv.verify_pin(PIN).unwrap();
    piv.generate_key(Slot::Authentication, Algorithm::P256, true)
        .unwrap();
    card
}

/// Every record in the card's store, as the golden files write them.
fn records(card: &mut PivCard) -> String {
    let store = card.store_mut();
    let keys: Vec<Key> = store.keys().collect();
    let mut buf = vec![0u8; 8192];
    let mut out = String::new();
    for key in keys {
        let value = store.read_value(key, &mut buf).unwrap().unwrap();
        out.push_str(&format!("{:04X} {}\n", key.get(), to_hex(value)));
    }
    out
}

/// A card whose store holds exactly the records of `text`.
fn card_with(text: &str) -> PivCard {
    let mut store: Store<Flash> = Store::mount(Flash::new()).unwrap();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line.split_once(' ').unwrap();
        let key = Key::new(u16::from_str_radix(key, 16).unwrap()).unwrap();
        store.commit(&[Op::Put(key, &hex(value))]).unwrap();
    }
    boot_on(store.into_flash(), 0xB007)
}

#[test]
fn the_current_layouts_write_the_newest_record_set() {
    let written = records(&mut history());
    let file = path(CURRENT);
    if !file.exists() && std::env::var_os("S9CARD_BLESS").is_some() {
        let head = "# The applet's records after tests/golden.rs's history: store key, bytes.\n";
        std::fs::write(&file, format!("{head}{written}")).unwrap();
    }
    let golden = std::fs::read_to_string(&file).unwrap_or_else(|_| {
        panic!(
            "record set {CURRENT} has no golden file: run once with S9CARD_BLESS=1 and commit it"
        )
    });
    let golden: String = golden
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        golden == written,
        "a record's layout changed without a new layout version, golden file and migration"
    );
}

#[test]
fn every_record_set_still_opens() {
    for set in 1..=CURRENT {
        let text = std::fs::read_to_string(path(set))
            .unwrap_or_else(|_| panic!("no golden file for record set {set}"));
        let mut card = card_with(&text);
        let mut piv = PivClient::new(&mut card);
        piv.select().unwrap();
        // The passcodes the history set, and their counters.
        assert_eq!(piv.tries(0x80).unwrap(), (3, 3), "set {set}");
        assert!(piv.verify_pin(b"123456").is_err(), "set {set}");
        piv.verify_pin(PIN).unwrap();
        assert_eq!(piv.tries(0x81).unwrap().0, 3, "set {set}");
        // The management key.
        assert!(
            piv.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
                .is_err()
        );
        piv.authenticate(AdminAlgorithm::Aes256, &AES_KEY).unwrap();
        // The objects and keys.
        assert_eq!(piv.get_object(0x5FC102).unwrap(), Some(hex(CHUID)));
        let (algorithm, point) = piv.key_metadata(Slot::Authentication).unwrap().unwrap();
        assert_eq!(algorithm, Algorithm::P256);
        let signature = piv.sign(Slot::Authentication, &DIGEST).unwrap();
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
        let signature = p256::ecdsa::DerSignature::from_bytes(&signature).unwrap();
        key.verify_prehash(&DIGEST, &signature).unwrap();
        assert_eq!(
            piv.key_metadata(Slot::Signature).unwrap().unwrap().0,
            Algorithm::Ed25519
        );
        // The staged renewal key, and the PUK.
        assert_eq!(piv.card_info().unwrap().staged, vec![0x9A], "set {set}");
        piv.unblock(PUK, b"13572468").unwrap();
    }
}
