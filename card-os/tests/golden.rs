//! Golden files pin the on-flash format.
//!
//! `tests/golden/store-vN.bin` is a store written by format version N. Every
//! version's file must still mount with the expected records, and the current
//! code must write the current version's file byte for byte, so the format
//! can only change on purpose: with a new version number, a new golden file
//! and a migration. Set `S9CARD_BLESS=1` to write a missing file once.

use card_os::store::{FORMAT_VERSION, Key, Op, Store};
use card_os::testing::RamFlash;

type Golden = RamFlash<{ 8 * 512 }, 512>;

fn k(n: u16) -> Key {
    Key::new(n).unwrap()
}

/// The history every golden file records: puts, an update, a delete, a
/// multi-record transaction, a clear, and enough churn to collect a page.
fn write_history() -> Golden {
    let mut s: Store<Golden> = Store::mount(Golden::new()).unwrap();
    s.commit(&[Op::Put(k(1), b"pin-record"), Op::Put(k(2), b"puk-record")])
        .unwrap();
    s.commit(&[Op::Put(k(3), &[0x33; 300])]).unwrap();
    s.commit(&[Op::Put(k(1), b"pin-record-2")]).unwrap();
    s.commit(&[Op::Delete(k(2))]).unwrap();
    s.commit(&[
        Op::Put(k(9), b"gone"),
        Op::Clear,
        Op::Put(k(4), b"after-clear"),
        Op::Put(k(3), &[0x44; 200]),
    ])
    .unwrap();
    for i in 0u32..300 {
        s.commit(&[Op::Put(k(5), &i.to_le_bytes())]).unwrap();
    }
    assert!(
        s.flash().erase_ops() > 0,
        "history no longer collects a page"
    );
    s.into_flash()
}

fn check_contents(flash: Golden, version: u8) {
    let mut s: Store<Golden> = Store::mount(flash).unwrap();
    let keys: Vec<u16> = s.keys().map(Key::get).collect();
    assert_eq!(keys, vec![3, 4, 5], "version {version}");
    let mut buf = [0u8; 512];
    assert_eq!(
        s.read_value(k(3), &mut buf).unwrap(),
        Some(&[0x44; 200][..])
    );
    assert_eq!(
        s.read_value(k(4), &mut buf).unwrap(),
        Some(&b"after-clear"[..])
    );
    assert_eq!(
        s.read_value(k(5), &mut buf).unwrap(),
        Some(&299u32.to_le_bytes()[..])
    );
}

fn path(version: u8) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/golden/store-v{version}.bin"))
}

#[test]
fn every_released_format_still_mounts() {
    for version in 1..=FORMAT_VERSION {
        let bytes = std::fs::read(path(version))
            .unwrap_or_else(|_| panic!("no golden file for format version {version}"));
        check_contents(
            Golden::from_image(&bytes).expect("golden file size"),
            version,
        );
    }
}

#[test]
fn current_format_matches_its_golden_file() {
    let image = write_history();
    let file = path(FORMAT_VERSION);
    if !file.exists() && std::env::var_os("S9CARD_BLESS").is_some() {
        std::fs::write(&file, image.image()).unwrap();
    }
    let golden = std::fs::read(&file).unwrap_or_else(|_| {
        panic!("format version {FORMAT_VERSION} has no golden file: run once with S9CARD_BLESS=1 and commit it")
    });
    assert!(
        golden == image.image().as_slice(),
        "the on-flash format changed without a version bump"
    );
    check_contents(image, FORMAT_VERSION);
}
