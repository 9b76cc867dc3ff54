//! The power-cut engine the tear suites share: a model of the records,
//! scenarios run against a flash cut at every operation, and the check
//! that every reboot finds exactly the state before or after a transaction
//! and still takes a new one. Generic over the flash (page size, count,
//! word) and the index size, so one engine covers every geometry the store
//! accepts. The argument these tests check is written down once, in the
//! doc module `card_os::store::tearing`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use card_os::store::{Key, Op, Store, StoreError};
use card_os::testing::{RamFlash, TearOrder, TearingFlash, for_each_record};
use embedded_storage::nor_flash::NorFlash;

/// Records as they should be.
pub type Model = BTreeMap<u16, Vec<u8>>;

/// One change of a transaction.
#[derive(Clone, Debug)]
pub enum Change {
    Put(u16, Vec<u8>),
    Delete(u16),
    Clear,
}

pub fn put(key: u16, len: usize, fill: u8) -> Change {
    Change::Put(key, vec![fill; len])
}

pub fn ops(tx: &[Change]) -> Vec<Op<'_>> {
    tx.iter()
        .map(|c| match c {
            Change::Put(k, v) => Op::Put(Key::new(*k).unwrap(), v),
            Change::Delete(k) => Op::Delete(Key::new(*k).unwrap()),
            Change::Clear => Op::Clear,
        })
        .collect()
}

pub fn apply(model: &mut Model, tx: &[Change]) {
    for c in tx {
        match c {
            Change::Put(k, v) => {
                model.insert(*k, v.clone());
            }
            Change::Delete(k) => {
                model.remove(k);
            }
            Change::Clear => model.clear(),
        }
    }
}

pub fn dump<F: NorFlash, const K: usize>(store: &mut Store<F, K>) -> Model {
    let mut all = BTreeMap::new();
    let mut buf = vec![0u8; 1 << 16];
    for_each_record(store, &mut buf, |k, v| {
        all.insert(k, v.to_vec());
    })
    .unwrap();
    all
}

/// A flash that can be told a word no longer reads (ECC after a tear).
pub trait Poison {
    fn poison(&mut self, addr: u32);
}

impl<const S: usize, const P: usize, const W: usize> Poison for RamFlash<S, P, W> {
    fn poison(&mut self, addr: u32) {
        RamFlash::poison(self, addr);
    }
}

/// How cuts tear, and how the flash reads back what they tore.
#[derive(Clone, Copy, Debug)]
pub struct Tearing {
    /// Ways each cut tears (the seed picks prefix length, words, bits…).
    pub seeds: u64,
    pub order: TearOrder,
    /// Words left half-done fail to read after the reboot.
    pub ecc: bool,
    /// Cut the retry after each reboot at every operation too.
    pub double: bool,
}

/// The flash as a cut left it, poisoned where the tearing asks for it.
fn after_cut<F: NorFlash + Poison>(torn: TearingFlash<F>, how: &Tearing) -> F {
    let words: Vec<u32> = torn.torn_words().to_vec();
    let mut flash = torn.into_inner();
    if how.ecc {
        for w in words {
            flash.poison(w);
        }
    }
    flash
}

pub fn build<F: NorFlash, const K: usize>(blank: F, setup: &[Vec<Change>]) -> (F, Model) {
    let mut store: Store<F, K> = Store::mount(blank).unwrap();
    let mut model = Model::new();
    for tx in setup {
        store.commit(&ops(tx)).unwrap();
        apply(&mut model, tx);
    }
    (store.into_flash(), model)
}

/// Mounts after a cut, checks the state is one of `allowed`, and proves the
/// store still takes (and keeps) a new transaction. Returns the state found.
pub fn reboot_and_check<F: NorFlash + Clone, const K: usize>(
    flash: F,
    allowed: &[&Model],
    what: &str,
) -> Model {
    let mut store: Store<F, K> = Store::mount(flash).expect("mount after a cut");
    let state = dump(&mut store);
    assert!(allowed.contains(&&state), "{what}: mixed state {state:?}");
    let probe = [Change::Put(0x3FFF, b"probe".to_vec())];
    let mut expected = state.clone();
    match store.commit(&ops(&probe)) {
        Ok(()) => apply(&mut expected, &probe),
        Err(StoreError::Full | StoreError::TooManyKeys) => {}
        Err(e) => panic!("{what}: store refused a new transaction: {e:?}"),
    }
    assert_eq!(
        dump(&mut store),
        expected,
        "{what}: after a new transaction"
    );
    let mut again: Store<F, K> = Store::mount(store.into_flash()).unwrap();
    assert_eq!(dump(&mut again), expected, "{what}: after remount");
    state
}

/// Runs `tx` on the state `setup` builds, cutting at every operation (each
/// cut `how.seeds` ways); with `how.double`, also cuts the retry after each
/// reboot at every operation. Returns the number of cut points exercised.
pub fn exhaust<F: NorFlash + Clone + Poison, const K: usize>(
    blank: &F,
    how: &Tearing,
    name: &str,
    setup: &[Vec<Change>],
    tx: &[Change],
    expect: Result<(), StoreError>,
) -> usize {
    let (base, old) = build::<F, K>(blank.clone(), setup);
    let mut new = old.clone();
    if expect.is_ok() {
        apply(&mut new, tx);
    }
    let mut cuts = 0;
    for n in 0.. {
        let mut completed = false;
        for seed in 0..how.seeds {
            let torn = TearingFlash::new(base.clone(), Some(n), seed).tearing(how.order);
            let mut store: Store<_, K> = Store::mount(torn).unwrap();
            let result = store.commit(&ops(tx));
            if !store.flash().is_cut() {
                assert_eq!(result, expect, "{name}: uncut result");
                assert_eq!(dump(&mut store), new, "{name}: uncut state");
                completed = true;
                break;
            }
            assert!(
                result.is_err(),
                "{name}: a cut transaction reported success"
            );
            cuts += 1;
            let flash = after_cut(store.into_flash(), how);
            let what = format!("{name}: cut at op {n} seed {seed}");
            let first = reboot_and_check::<F, K>(flash.clone(), &[&old, &new], &what);
            if how.double {
                cuts += retry_with_cuts::<F, K>(&flash, how, tx, expect, &first, &new, &what, seed);
            }
        }
        if completed {
            return cuts;
        }
    }
    cuts
}

/// After a first cut left `first`, retries the transaction cutting at every
/// operation of the retry.
#[allow(clippy::too_many_arguments)]
fn retry_with_cuts<F: NorFlash + Clone + Poison, const K: usize>(
    torn: &F,
    how: &Tearing,
    tx: &[Change],
    expect: Result<(), StoreError>,
    first: &Model,
    new: &Model,
    what: &str,
    seed: u64,
) -> usize {
    let mut cuts = 0;
    for m in 0.. {
        let flash = TearingFlash::new(torn.clone(), Some(m), seed + 100).tearing(how.order);
        let mut store: Store<_, K> = Store::mount(flash).unwrap();
        let result = store.commit(&ops(tx));
        if !store.flash().is_cut() {
            let expected = if expect.is_ok() { new } else { first };
            // If the first attempt committed after all, the retry rewrites
            // equal values: on a full store that is refused, harmlessly.
            let redundant_refusal = first == new && result == Err(StoreError::Full);
            if !redundant_refusal {
                assert_eq!(result, expect, "{what}: retry result");
            }
            assert_eq!(&dump(&mut store), expected, "{what}: retry state");
            return cuts;
        }
        cuts += 1;
        let flash = after_cut(store.into_flash(), how);
        reboot_and_check::<F, K>(
            flash,
            &[first, new],
            &format!("{what}, then cut at op {m} of the retry"),
        );
    }
    cuts
}
