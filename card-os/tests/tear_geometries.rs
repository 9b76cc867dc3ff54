//! The power-cut suite over every kind of geometry the store accepts: pages
//! of 256 B, 4 KiB and 128 KiB (resume offsets past 64 KiB), indexes of 4,
//! 16 and 128 keys (a collection forced on a full index), and three ways a
//! cut can tear: words in address order, words in any order (a blank header
//! with written bytes after it), and words left half-done that an ECC flash
//! then refuses to read. Scenario sizes are fractions of the largest value
//! a page holds, so each geometry meets the same situations: straddling,
//! three-program records, collections, a full store.

mod tearing;

use card_os::store::{Store, StoreError};
use card_os::testing::{RamFlash, TearOrder};
use embedded_storage::nor_flash::NorFlash;
use tearing::{Change, Poison, Tearing, exhaust, ops, put};

struct Scenario {
    name: &'static str,
    setup: Vec<Vec<Change>>,
    tx: Vec<Change>,
    expect: Result<(), StoreError>,
}

fn scenario(
    name: &'static str,
    setup: Vec<Vec<Change>>,
    tx: Vec<Change>,
    expect: Result<(), StoreError>,
) -> Scenario {
    Scenario {
        name,
        setup,
        tx,
        expect,
    }
}

/// Whether `setup` then `tx` commits on a fresh flash.
fn commits<F: NorFlash + Clone, const K: usize>(
    blank: &F,
    setup: &[Vec<Change>],
    tx: &[Change],
) -> bool {
    let (flash, _) = tearing::build::<F, K>(blank.clone(), setup);
    let mut store: Store<F, K> = Store::mount(flash).unwrap();
    store.commit(&ops(tx)).is_ok()
}

fn scenarios<F: NorFlash + Clone, const K: usize>(blank: &F) -> Vec<Scenario> {
    let store: Store<F, K> = Store::mount(blank.clone()).unwrap();
    let max = store.max_value_len();
    let pages = store.stats().pages;
    let keys = Store::<F, K>::USER_KEYS as u16;
    let mut all = vec![
        scenario(
            "first write on blank flash",
            vec![],
            vec![put(1, 8, 9)],
            Ok(()),
        ),
        scenario(
            "multi-record transaction",
            vec![vec![put(1, 8, 1), put(2, max / 8, 2)]],
            vec![put(1, max / 6, 7), Change::Delete(2), put(3, 2, 8)],
            Ok(()),
        ),
        scenario(
            "large record (3 programs)",
            vec![vec![put(1, 8, 1)]],
            vec![put(2, max * 3 / 4 + 3, 5)],
            Ok(()),
        ),
        scenario(
            "straddling two pages",
            vec![vec![put(1, max * 3 / 5, 1)]],
            vec![put(2, max / 2, 3), put(1, 6, 4)],
            Ok(()),
        ),
        scenario(
            "clear and put",
            vec![vec![put(1, 8, 1), put(2, max / 3, 2)]],
            vec![Change::Clear, put(3, 8, 5)],
            Ok(()),
        ),
    ];
    // Updates until the ring has gone round: the next write collects.
    let crowded: Vec<Vec<Change>> = (0..pages * 5)
        .map(|i| vec![put(1, max / 4, i as u8), put(2, 8, i as u8)])
        .collect();
    all.push(scenario(
        "update forcing collection",
        crowded.clone(),
        vec![put(3, max * 4 / 5, 0xD), Change::Delete(2)],
        Ok(()),
    ));
    // Every index slot taken, then a collection.
    let mut full_index = vec![(1..=keys).map(|k| put(k, 4, k as u8)).collect::<Vec<_>>()];
    if full_index[0].len() > 16 {
        full_index = (1..=keys).map(|k| vec![put(k, 4, k as u8)]).collect();
    }
    full_index.extend((0..pages * 4).map(|i| vec![put(1, max / 3, i as u8)]));
    all.push(scenario(
        "collection on a full index",
        full_index,
        vec![put(2, max / 2, 0xE)],
        Ok(()),
    ));
    // Filled by growth to the brim: a counter still counts.
    let mut full = vec![vec![put(1, 2, 3)]];
    let mut key = 100;
    loop {
        let tx = vec![put(key, max / 2, key as u8)];
        if key - 100 + 2 > keys || !commits::<F, K>(blank, &full, &tx) {
            break;
        }
        full.push(tx);
        key += 1;
    }
    all.push(scenario(
        "full store, counter update",
        full,
        vec![put(1, 2, 2)],
        Ok(()),
    ));
    all
}

/// Runs every scenario on one geometry in every tearing; returns the cut
/// points and prints the suite's summary line for it.
fn geometry<F: NorFlash + Clone + Poison, const K: usize>(
    name: &str,
    blank: F,
    seeds: u64,
) -> usize {
    let mut total = 0;
    for (tearing_name, how) in [
        (
            "in order",
            Tearing {
                seeds,
                order: TearOrder::InOrder,
                ecc: false,
                double: true,
            },
        ),
        (
            "any order",
            Tearing {
                seeds,
                order: TearOrder::AnyOrder,
                ecc: false,
                double: true,
            },
        ),
        (
            "ECC reads",
            Tearing {
                seeds,
                order: TearOrder::InOrder,
                ecc: true,
                double: false,
            },
        ),
    ] {
        for s in scenarios::<F, K>(&blank) {
            let what = format!("{name}, {tearing_name}, {}", s.name);
            let n = exhaust::<F, K>(&blank, &how, &what, &s.setup, &s.tx, s.expect);
            total += n;
        }
    }
    println!("store tear tests: {total} cut points exercised ({name})");
    total
}

/// Runs `f` on a thread with room for flash images of a megabyte on its
/// stack.
fn big_stack(f: fn() -> usize) -> usize {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn small_pages_small_index() {
    let n =
        geometry::<RamFlash<{ 16 * 256 }, 256>, 4>("256 B pages x 16, 4 keys", RamFlash::new(), 32);
    assert!(n > 8_000, "{n}");
}

#[test]
fn small_pages_sixteen_keys() {
    let n = geometry::<RamFlash<{ 16 * 256 }, 256>, 16>(
        "256 B pages x 16, 16 keys",
        RamFlash::new(),
        32,
    );
    assert!(n > 10_000, "{n}");
}

#[test]
fn four_kib_pages() {
    let n = big_stack(|| {
        geometry::<RamFlash<{ 8 * 4096 }, 4096>, 16>(
            "4 KiB pages x 8, 16 keys",
            RamFlash::new(),
            16,
        )
    });
    assert!(n > 20_000, "{n}");
}

#[test]
fn four_kib_pages_card_sized() {
    let n = big_stack(|| {
        geometry::<RamFlash<{ 32 * 4096 }, 4096>, 128>(
            "4 KiB pages x 32, 128 keys",
            RamFlash::new(),
            32,
        )
    });
    assert!(n > 10_000, "{n}");
}

#[test]
fn large_sectors_past_64_kib() {
    let n = big_stack(|| {
        geometry::<RamFlash<{ 8 * 128 * 1024 }, { 128 * 1024 }>, 128>(
            "128 KiB pages x 8, 128 keys",
            RamFlash::new(),
            32,
        )
    });
    assert!(n > 9_000, "{n}");
}

#[test]
fn one_kib_pages_eight_byte_words() {
    let n = geometry::<RamFlash<{ 16 * 1024 }, 1024, 8>, 32>(
        "1 KiB pages x 16, 8-byte words, 32 keys",
        RamFlash::new(),
        32,
    );
    assert!(n > 10_000, "{n}");
}

/// A write torn in the upper half of a 128 KiB page, then more
/// transactions: they resume past the torn bytes through a resume slot
/// whose offset is over 64 KiB, and every one of them is there after a
/// reboot. (With 16-bit byte offsets the slot pointed into the lower half,
/// and mount silently dropped every later transaction, PIN decrements
/// included.)
#[test]
fn resumes_past_64_kib_keep_later_transactions() {
    fn run() -> usize {
        type Big = RamFlash<{ 8 * 128 * 1024 }, { 128 * 1024 }>;
        let (flash, _) = tearing::build::<Big, 16>(
            Big::new(),
            &[vec![put(1, 40_000, 1)], vec![put(2, 30_000, 2)]],
        );
        let mut tried = 0;
        for seed in 0..16 {
            let torn = card_os::testing::TearingFlash::new(flash.clone(), Some(0), seed);
            let mut store: Store<_, 16> = Store::mount(torn).unwrap();
            assert!(store.commit(&ops(&[put(3, 100, 3)])).is_err());
            let mut store: Store<Big, 16> = Store::mount(store.into_flash().into_inner()).unwrap();
            for k in 4..10u16 {
                store.commit(&ops(&[put(k, 8, k as u8)])).unwrap();
            }
            let mut store: Store<Big, 16> = Store::mount(store.into_flash()).unwrap();
            let state = tearing::dump(&mut store);
            for k in 4..10u16 {
                assert_eq!(
                    state.get(&k),
                    Some(&vec![k as u8; 8]),
                    "seed {seed}: key {k} lost"
                );
            }
            tried += 1;
        }
        tried
    }
    assert_eq!(big_stack(run), 16);
}
