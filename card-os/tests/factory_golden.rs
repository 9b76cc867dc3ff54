//! Golden files pin the factory record, as `store-vN.bin` pins the store.
//!
//! `tests/golden/factory-vN.bin` is a factory record of version N as a card
//! was made with it, `factory-v2-apart.bin` and `keystore.bin` the record
//! and key store of a flash that keeps its key apart (the firmware's). Each
//! must still decode to the header it was written from, and the current
//! code must write each byte for byte: a change of layout fails here unless
//! it comes with a new version, a new golden file and a reader for the old
//! one. Set `S9CARD_BLESS=1` to write a missing file once.

use card_os::image::{AppletFlags, Header, KEY_STORE_LEN, RECORD_LEN};

/// The header every golden record holds: nothing in it is zero or
/// symmetric, so a field read from the wrong offset cannot pass.
fn header(seed: Option<[u8; 32]>) -> Header {
    Header {
        is_virtual: true,
        applet: AppletFlags::new(0b0110).expect("applet bits"),
        serial: 912_345_678,
        pages: 32,
        device_key: core::array::from_fn(|i| 0xA0 ^ i as u8),
        seed,
    }
}

fn seed() -> [u8; 32] {
    core::array::from_fn(|i| 0x5A ^ (3 * i as u8))
}

fn golden(name: &str, written: &[u8]) -> Vec<u8> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if !file.exists() && std::env::var_os("S9CARD_BLESS").is_some() {
        std::fs::write(&file, written).unwrap();
    }
    std::fs::read(&file).unwrap_or_else(|_| {
        panic!("no golden file {name}: run once with S9CARD_BLESS=1 and commit it")
    })
}

fn record(bytes: Vec<u8>) -> [u8; RECORD_LEN] {
    bytes.try_into().expect("a factory record's length")
}

#[test]
fn version_1_without_a_seed() {
    let want = header(None);
    let file = golden("factory-v1.bin", &want.encode());
    assert!(file == want.encode(), "version 1's layout changed");
    assert_eq!(Header::decode(&record(file)), Ok(want));
}

#[test]
fn version_2_with_its_seed() {
    let want = header(Some(seed()));
    let file = golden("factory-v2.bin", &want.encode());
    assert!(file == want.encode(), "version 2's layout changed");
    assert_eq!(Header::decode(&record(file)), Ok(want));
}

#[test]
fn version_2_with_the_keys_apart() {
    let want = header(Some(seed()));
    let (written, keys) = want.split().expect("a version 2 record splits");
    let file = golden("factory-v2-apart.bin", &written);
    let key_store = golden("keystore.bin", &keys);
    assert!(file == written, "the key-apart record's layout changed");
    assert!(key_store == keys, "the key store's layout changed");
    let key_store: [u8; KEY_STORE_LEN] = key_store.try_into().expect("a key store's length");
    assert_eq!(Header::decode_apart(&record(file), &key_store), Ok(want));
}
