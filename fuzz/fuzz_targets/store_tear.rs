//! Random transactions and random power cuts on the tearing flash: after
//! each reboot the store equals the model's state before or after the
//! transaction, never a mix, and it keeps taking transactions.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use card_os::store::{Key, Op, Store, StoreError};
use card_os::testing::{RamFlash, TearingFlash, for_each_record};
use libfuzzer_sys::fuzz_target;

type Tiny = RamFlash<{ 16 * 256 }, 256>;
type Torn = TearingFlash<Tiny>;
type Model = BTreeMap<u16, Vec<u8>>;

#[derive(Arbitrary, Debug, Clone)]
enum Change {
    Put(u8, u8, u8),
    Delete(u8),
    Clear,
}

#[derive(Arbitrary, Debug)]
struct Tx {
    changes: Vec<Change>,
    cut: Option<u8>,
    seed: u8,
}

fn dump(flash: &Tiny) -> Model {
    let mut store: Store<Tiny> = Store::mount(flash.clone()).expect("mount after a cut");
    let mut all = BTreeMap::new();
    for_each_record(&mut store, &mut [0; 256], |k, v| {
        all.insert(k, v.to_vec());
    })
    .unwrap();
    all
}

fuzz_target!(|txs: Vec<Tx>| {
    let mut flash = Tiny::new();
    let mut model = Model::new();
    for tx in txs.iter().take(64) {
        let changes: Vec<Change> = tx.changes.iter().take(6).cloned().collect();
        let values: Vec<Vec<u8>> = changes
            .iter()
            .map(|c| match c {
                Change::Put(_, len, fill) => vec![*fill; usize::from(*len % 60)],
                _ => Vec::new(),
            })
            .collect();
        let ops: Vec<Op> = changes
            .iter()
            .zip(&values)
            .map(|(c, v)| match c {
                Change::Put(k, _, _) => Op::Put(Key::new(u16::from(*k % 12)).unwrap(), v),
                Change::Delete(k) => Op::Delete(Key::new(u16::from(*k % 12)).unwrap()),
                Change::Clear => Op::Clear,
            })
            .collect();
        let mut next = model.clone();
        for op in &ops {
            match op {
                Op::Put(k, v) => {
                    next.insert(k.get(), v.to_vec());
                }
                Op::Delete(k) => {
                    next.remove(&k.get());
                }
                Op::Clear => next.clear(),
            }
        }
        let mut store: Store<Torn> = Store::mount(Torn::new(
            flash,
            tx.cut.map(|c| u32::from(c % 24)),
            u64::from(tx.seed),
        ))
        .unwrap();
        let result = store.commit(&ops);
        let cut = store.flash().is_cut();
        flash = store.into_flash().into_inner();
        let state = dump(&flash);
        if cut {
            assert!(state == model || state == next, "a mixed state after a cut");
        } else {
            match result {
                Ok(()) => assert_eq!(state, next),
                Err(StoreError::Full) => assert_eq!(state, model),
                Err(e) => panic!("{e:?}"),
            }
        }
        model = state;
    }
});
