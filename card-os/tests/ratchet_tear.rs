//! The randomness ratchet across power cuts: boots are cut at every flash
//! operation of their ratchet step, in both tearing orders, over a store
//! that has collected garbage many times, and no two boots that handed out
//! randomness ever got the same seed.

use std::collections::HashSet;

use card_os::entropy::{Seed, ratchet};
use card_os::store::{Key, Op, Store};
use card_os::testing::{RamFlash, TearOrder, TearingFlash};

type Flash = RamFlash<{ 8 * 4096 }, 4096>;
const DEVICE: [u8; 32] = [0x42; 32];

fn provisioned() -> Seed {
    Seed([0x17; 32])
}

/// One boot on `flash`, cut at operation `cut` (if any): the seed if the
/// boot completed its ratchet step, and the flash to boot from next.
fn boot(flash: Flash, cut: Option<u32>, order: TearOrder) -> (Option<[u8; 32]>, Flash, bool) {
    let torn = TearingFlash::new(flash, cut, u64::from(cut.unwrap_or(0))).tearing(order);
    let Ok(mut store) = Store::<_, 16>::mount(torn) else {
        unreachable!("mount does not write, so it cannot be cut");
    };
    let result = ratchet(&mut store, &provisioned(), &DEVICE);
    let flash = store.into_flash();
    let was_cut = flash.is_cut();
    (result.ok().map(|s| s.0), flash.into_inner(), was_cut)
}

/// How many flash operations a clean boot takes on `flash`.
fn clean_boot_ops(flash: &Flash) -> u32 {
    let probe = TearingFlash::new(flash.clone(), None, 0);
    let mut store = Store::<_, 16>::mount(probe).unwrap();
    ratchet(&mut store, &provisioned(), &DEVICE).unwrap();
    store.into_flash().ops()
}

#[test]
fn no_two_boots_share_a_seed_whatever_the_cuts() {
    let mut cut_points = 0;
    for order in [TearOrder::InOrder, TearOrder::AnyOrder] {
        let mut flash = Flash::new();
        // An applet's records beside the ratchet, rewritten between boots,
        // so collections move the ratchet's record around.
        let mut seen = HashSet::new();
        for round in 0..400u32 {
            // This boot, cut at each of its flash operations in turn: each
            // cut is another history from the same flash, and in each the
            // boot after the cut must get a seed no earlier boot got.
            for cut in 0..clean_boot_ops(&flash) {
                cut_points += 1;
                let (seed, after, was_cut) = boot(flash.clone(), Some(cut), order);
                assert!(was_cut, "round {round}: cut {cut} did not land");
                // A cut boot never finishes its ratchet step, so it hands
                // out nothing.
                assert_eq!(seed, None, "round {round}: a cut boot got a seed");
                let (seed, _, _) = boot(after, None, order);
                let seed = seed.expect("a clean boot after a cut works");
                assert!(
                    !seen.contains(&seed),
                    "round {round}, cut {cut}: a seed came back"
                );
            }
            let (seed, next, _) = boot(flash, None, order);
            assert!(
                seen.insert(seed.unwrap()),
                "round {round}: a seed came back"
            );
            flash = next;
            // Now and then the applet's turn: a record rewritten (sizes
            // that vary, so pages end at different places), sometimes a
            // reset. Between them, boots alone fill pages with ratchet
            // entries, so some boots open a page or collect one.
            if round % 10 != 9 {
                continue;
            }
            let mut store = Store::<_, 16>::mount(flash).unwrap();
            let value = [round as u8; 1500];
            let len = 100 + (round as usize * 373) % 1400;
            store
                .commit(&[Op::Put(Key::new(1).unwrap(), &value[..len])])
                .unwrap();
            if round % 70 == 69 {
                store.commit(&[Op::Clear]).unwrap();
            }
            flash = store.into_flash();
        }
    }
    println!("ratchet: {cut_points} cut points, no seed handed out twice");
}
