//! Exhaustive power-cut tests of the store.
//!
//! Every scenario is run once per flash operation it performs, cutting the
//! power during that operation (several ways, chosen by seed), then the flash
//! is mounted again as a reboot would and must hold exactly the state before
//! or exactly the state after the whole transaction, and must then accept a
//! new one. Double cuts also cut the first transaction after the reboot, which
//! is when recovery's deferred work (erasing torn pages, opening a fresh page)
//! happens: mount itself never writes, as `mount_never_writes` checks.

mod tearing;

use card_os::store::{Store, StoreError};
use card_os::testing::{RamFlash, TearOrder, TearingFlash};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use tearing::{Change, Model, Tearing, apply, dump, ops, put};

/// 16 pages of 256 bytes: small enough that a few records force collection.
type Tiny = RamFlash<{ 16 * 256 }, 256>;
type Torn = TearingFlash<Tiny>;

/// Each cut torn sixteen ways, in address order, every retry cut again.
const HOW: Tearing = Tearing {
    seeds: 16,
    order: TearOrder::InOrder,
    ecc: false,
    double: true,
};

fn build(setup: &[Vec<Change>]) -> (Tiny, Model) {
    tearing::build::<Tiny, 128>(Tiny::new(), setup)
}

fn exhaust(
    name: &str,
    setup: &[Vec<Change>],
    tx: &[Change],
    expect: Result<(), StoreError>,
    double: bool,
) -> usize {
    let how = Tearing { double, ..HOW };
    tearing::exhaust::<Tiny, 128>(&Tiny::new(), &how, name, setup, tx, expect)
}

#[test]
fn mount_never_writes() {
    let (base, _) = build(&[vec![put(1, 10, 1)], vec![put(2, 100, 2)]]);
    let store: Store<Torn> = Store::mount(Torn::new(base, Some(0), 0)).unwrap();
    assert_eq!(store.flash().ops(), 0);
}

/// Setups whose next transaction has to collect one or more pages first.
fn crowded() -> Vec<Vec<Change>> {
    let mut setup = vec![vec![put(10, 120, 0xA), put(11, 40, 0xB)]];
    for i in 0..40u8 {
        setup.push(vec![put(1, 24, i), put(2, 8, i)]);
    }
    setup.push(vec![put(12, 100, 0xC)]);
    for i in 0..12u8 {
        setup.push(vec![put(1, 24, i)]);
    }
    setup
}

/// Records until a 180-byte record no longer fits.
fn full() -> (Vec<Vec<Change>>, u16) {
    // A retry counter first, as a card has one before any object.
    let mut setup = vec![vec![put(1, 2, 3)]];
    let mut key = 100;
    loop {
        let tx = vec![put(key, 180, key as u8)];
        let (flash, _) = build(&setup);
        let mut store: Store<Tiny> = Store::mount(flash).unwrap();
        if store.commit(&ops(&tx)).is_err() {
            return (setup, key);
        }
        setup.push(tx);
        key += 1;
    }
}

/// Every scenario, cut at every operation, each cut sixteen ways, and every
/// retry after a cut cut again at every operation.
#[test]
fn every_scenario_cut_at_every_operation() {
    let mut total = 0;
    let mut run = |name: &str, setup: &[Vec<Change>], tx: &[Change], expect| {
        let n = exhaust(name, setup, tx, expect, true);
        println!("  {name:<28} {n:>6} cut points");
        total += n;
        n
    };
    run("first write on blank flash", &[], &[put(1, 8, 9)], Ok(()));
    run(
        "single-record update",
        &[vec![put(1, 8, 1)], vec![put(2, 20, 2)]],
        &[put(1, 8, 9)],
        Ok(()),
    );
    let setup = [vec![put(1, 8, 1), put(2, 30, 2), put(3, 4, 3)]];
    let tx = [
        put(1, 40, 7),
        Change::Delete(2),
        put(4, 60, 4),
        put(3, 2, 8),
    ];
    run("multi-record transaction", &setup, &tx, Ok(()));
    run(
        "large record (3 programs)",
        &[vec![put(1, 8, 1)]],
        &[put(2, 150, 5), put(1, 9, 6)],
        Ok(()),
    );
    let setup = [vec![put(1, 150, 1)], vec![put(2, 40, 2)]];
    run(
        "straddling two pages",
        &setup,
        &[put(3, 60, 3), put(4, 60, 4)],
        Ok(()),
    );
    let setup = [vec![put(1, 8, 1), put(2, 8, 2)], vec![put(3, 100, 3)]];
    run(
        "clear and put",
        &setup,
        &[Change::Clear, put(5, 8, 5)],
        Ok(()),
    );

    let setup = crowded();
    let (base, _) = build(&setup);
    let mut probe: Store<Torn> = Store::mount(Torn::new(base, None, 0)).unwrap();
    probe.commit(&ops(&[put(13, 180, 0xD)])).unwrap();
    assert!(
        probe.flash().inner().erase_ops() > 0,
        "scenario no longer forces a collection"
    );
    run(
        "update forcing collection",
        &setup,
        &[put(13, 180, 0xD)],
        Ok(()),
    );
    let tx = [put(1, 100, 1), put(14, 100, 2), Change::Delete(11)];
    run("multi forcing collection", &setup, &tx, Ok(()));

    let (setup, key) = full();
    // A refusal is decided before any flash operation: nothing to cut.
    let n = run(
        "full flash refuses",
        &setup,
        &[put(key, 180, 1)],
        Err(StoreError::Full),
    );
    assert_eq!(n, 0, "a refused transaction touched the flash");
    // Shrinking a record and deleting one stay possible on a full store.
    run(
        "full flash, shrink a record",
        &setup,
        &[put(100, 8, 1)],
        Ok(()),
    );
    run(
        "full flash, delete",
        &setup,
        &[Change::Delete(101), Change::Delete(102)],
        Ok(()),
    );
    // A retry counter keeps counting on a store that growth filled to the
    // brim, through a cut and a cut retry...
    run(
        "full flash, counter update",
        &setup,
        &[put(1, 2, 2)],
        Ok(()),
    );
    // ...while growing a record is refused before any flash operation.
    let n = run(
        "full flash, grow a record",
        &setup,
        &[put(100, 184, 0xEE)],
        Err(StoreError::Full),
    );
    assert_eq!(n, 0, "a refused transaction touched the flash");

    let setup = [
        vec![put(1, 60, 1), put(2, 60, 2), put(3, 60, 3)],
        vec![put(4, 100, 4)],
    ];
    let tx: Vec<Change> = (1..=6).map(|k| put(k, 70, 0x40 + k as u8)).collect();
    run("six large records", &setup, &tx, Ok(()));
    let mut setup = crowded();
    setup.push(vec![put(20, 150, 0x20)]);
    let tx = [
        put(10, 150, 1),
        put(12, 150, 2),
        put(1, 150, 3),
        Change::Delete(2),
    ];
    run("large, forcing collection", &setup, &tx, Ok(()));

    println!("store tear tests: {total} cut points exercised (double cuts included)");
    assert!(total >= 10_000, "only {total} cut points");
}

#[test]
fn random_transactions_with_random_cuts() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0009);
    let mut flash = Tiny::new();
    let mut model = Model::new();
    let mut cuts = 0usize;
    for step in 0..3000 {
        let len = 1 + rng.next_u32() as usize % 4;
        let tx: Vec<Change> = (0..len)
            .map(|_| {
                let key = (rng.next_u32() % 10) as u16;
                match rng.next_u32() % 10 {
                    0 => Change::Delete(key),
                    1 if rng.next_u32() % 8 == 0 => Change::Clear,
                    _ => {
                        let n = rng.next_u32() as usize % 40;
                        put(key, n, step as u8)
                    }
                }
            })
            .collect();
        let cut = (rng.next_u32() % 2 == 0).then(|| rng.next_u32() % 4);
        let mut store: Store<Torn> = Store::mount(Torn::new(flash, cut, rng.next_u64())).unwrap();
        let result = store.commit(&ops(&tx));
        let was_cut = store.flash().is_cut();
        flash = store.into_flash().into_inner();
        let mut next = model.clone();
        apply(&mut next, &tx);
        let mut check: Store<Tiny> = Store::mount(flash.clone()).unwrap();
        let state = dump(&mut check);
        if was_cut {
            cuts += 1;
            assert!(state == model || state == next, "step {step}: mixed state");
        } else {
            match result {
                Ok(()) => assert_eq!(state, next, "step {step}"),
                Err(StoreError::Full) => assert_eq!(state, model, "step {step}"),
                Err(e) => panic!("step {step}: {e:?}"),
            }
        }
        model = state;
    }
    println!("store tear tests: {cuts} random cuts in 3000 random transactions");
    assert!(cuts > 300, "only {cuts} random cuts");
}

/// Found by the `store_tear` fuzzer: a put torn after its header but before
/// its value, then a resume that wrote the next entry where the missing
/// value bytes belonged. The new bytes completed the old entry, which came
/// back to life. Resuming now skips the torn entry's whole extent.
#[test]
fn a_resumed_write_never_completes_a_torn_entry() {
    let steps: [(Vec<Change>, Option<u32>, u64); 6] = [
        (vec![Change::Delete(10)], Some(15), 255),
        (vec![put(3, 1, 0)], Some(0), 255),
        (vec![], Some(15), 0),
        (vec![], None, 255),
        (vec![Change::Delete(0)], None, 173),
        (vec![put(3, 0, 233), put(1, 0, 234)], None, 0),
    ];
    let mut flash = Tiny::new();
    let mut model = Model::new();
    for (i, (tx, cut, seed)) in steps.iter().enumerate() {
        let mut next = model.clone();
        apply(&mut next, tx);
        let mut store: Store<Torn> = Store::mount(Torn::new(flash, *cut, *seed)).unwrap();
        let result = store.commit(&ops(tx));
        let was_cut = store.flash().is_cut();
        flash = store.into_flash().into_inner();
        let state = dump(&mut Store::<Tiny>::mount(flash.clone()).unwrap());
        if was_cut {
            assert!(state == model || state == next, "step {i}: mixed state");
        } else {
            assert_eq!(result, Ok(()), "step {i}");
            assert_eq!(state, next, "step {i}: a torn entry came back");
        }
        model = state;
    }
}
