//! The store's behaviour without power cuts.

use card_os::store::{Key, Op, Store, StoreError};
use card_os::testing::RamFlash;

type Small = RamFlash<{ 8 * 512 }, 512>;
type Card128 = RamFlash<{ 128 * 1024 }, 4096>;

fn k(n: u16) -> Key {
    Key::new(n).unwrap()
}

fn read<F: embedded_storage::nor_flash::NorFlash, const N: usize>(
    s: &mut Store<F, N>,
    key: u16,
) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    s.read_value(k(key), &mut buf).unwrap().map(<[u8]>::to_vec)
}

#[test]
fn empty_flash_mounts_empty() {
    let mut s: Store<Small> = Store::mount(Small::new()).unwrap();
    assert_eq!(s.keys().count(), 0);
    assert_eq!(read(&mut s, 1), None);
}

#[test]
fn values_survive_remount_and_updates_replace() {
    let mut s: Store<Small> = Store::mount(Small::new()).unwrap();
    s.commit(&[Op::Put(k(1), b"one"), Op::Put(k(2), b"two")])
        .unwrap();
    s.commit(&[Op::Put(k(1), b"uno")]).unwrap();
    s.commit(&[Op::Delete(k(2)), Op::Put(k(3), &[7; 100])])
        .unwrap();
    let mut s: Store<Small> = Store::mount(s.into_flash()).unwrap();
    assert_eq!(read(&mut s, 1).as_deref(), Some(&b"uno"[..]));
    assert_eq!(read(&mut s, 2), None);
    assert_eq!(read(&mut s, 3), Some(vec![7; 100]));
    assert_eq!(s.keys().map(Key::get).collect::<Vec<_>>(), vec![1, 3]);
}

#[test]
fn clear_removes_everything_before_it_in_the_same_transaction() {
    let mut s: Store<Small> = Store::mount(Small::new()).unwrap();
    s.commit(&[Op::Put(k(1), b"a"), Op::Put(k(2), b"b")])
        .unwrap();
    s.commit(&[Op::Put(k(3), b"c"), Op::Clear, Op::Put(k(4), b"d")])
        .unwrap();
    let mut s: Store<Small> = Store::mount(s.into_flash()).unwrap();
    assert_eq!(s.keys().map(Key::get).collect::<Vec<_>>(), vec![4]);
    assert_eq!(read(&mut s, 4).as_deref(), Some(&b"d"[..]));
}

#[test]
fn many_updates_collect_garbage_and_spread_wear() {
    let mut s: Store<Small> = Store::mount(Small::new()).unwrap();
    s.commit(&[Op::Put(k(9), &[0x99; 300])]).unwrap();
    for i in 0u32..5000 {
        s.commit(&[Op::Put(k(1), &i.to_le_bytes())]).unwrap();
    }
    let mut s: Store<Small> = Store::mount(s.into_flash()).unwrap();
    assert_eq!(read(&mut s, 1), Some(4999u32.to_le_bytes().to_vec()));
    assert_eq!(read(&mut s, 9), Some(vec![0x99; 300]));
    let counts = s.flash().erase_counts().to_vec();
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(*min > 0 && max - min <= 2, "uneven wear: {counts:?}");
}

#[test]
fn full_store_refuses_and_keeps_its_state() {
    let mut s: Store<Small> = Store::mount(Small::new()).unwrap();
    let mut n = 0u16;
    let err = loop {
        match s.commit(&[Op::Put(k(n), &[n as u8; 200])]) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, StoreError::Full);
    assert!(n >= 8, "only {n} records fit");
    let mut s: Store<Small> = Store::mount(s.into_flash()).unwrap();
    for i in 0..n {
        assert_eq!(read(&mut s, i), Some(vec![i as u8; 200]));
    }
    // Freeing space makes room again.
    s.commit(&[Op::Delete(k(0)), Op::Delete(k(1))]).unwrap();
    s.commit(&[Op::Put(k(500), &[1; 200])]).unwrap();
}

#[test]
fn limits_are_reported() {
    let mut s: Store<Small, 4> = Store::mount(Small::new()).unwrap();
    let big = vec![0u8; s.max_value_len() + 1];
    assert_eq!(
        s.commit(&[Op::Put(k(1), &big)]),
        Err(StoreError::ValueTooLarge)
    );
    let ops: Vec<Op> = (0..17).map(|i| Op::Delete(k(i))).collect();
    assert_eq!(s.commit(&ops), Err(StoreError::TooManyOps));
    // Four index slots: three user keys and the collection horizon.
    assert_eq!(Store::<Small, 4>::USER_KEYS, 3);
    for i in 0..3 {
        s.commit(&[Op::Put(k(i), b"x")]).unwrap();
    }
    assert_eq!(
        s.commit(&[Op::Put(k(9), b"x")]),
        Err(StoreError::TooManyKeys)
    );
    assert_eq!(Key::new(0xFFFE), None);
    let mut tiny = [0u8; 0];
    assert_eq!(
        s.read_value(k(1), &mut tiny),
        Err(StoreError::BufferTooSmall)
    );
}

#[test]
fn bad_geometry_is_refused() {
    type TwoPages = RamFlash<1024, 512>;
    assert_eq!(
        Store::<TwoPages>::mount(TwoPages::new()).err(),
        Some(StoreError::Geometry)
    );
}

/// The profile issue #3 names: a fully personalised PIV card in 128 KiB.
#[test]
fn personalised_piv_card_fits_in_128k_with_room_to_update() {
    let mut s: Store<Card128> = Store::mount(Card128::new()).unwrap();
    let cert = vec![0xC5; 1536];
    let key = vec![0x4B; 48];
    // PIN, PUK, management key, CHUID, CCC, discovery, printed information.
    for (i, len) in [
        (1u16, 48usize),
        (2, 48),
        (3, 40),
        (4, 80),
        (5, 60),
        (6, 20),
        (7, 200),
    ] {
        s.commit(&[Op::Put(k(i), &vec![i as u8; len])]).unwrap();
    }
    // 4 main keys and 20 retired keys, each with a certificate.
    for slot in 0..24u16 {
        s.commit(&[
            Op::Put(k(0x100 + slot), &key),
            Op::Put(k(0x200 + slot), &cert),
        ])
        .unwrap();
    }
    // Room to update: renew every certificate twice and verify PINs a while.
    for round in 0..2u8 {
        for slot in 0..24u16 {
            let new_cert = vec![round; 1536];
            s.commit(&[
                Op::Put(k(0x100 + slot), &key),
                Op::Put(k(0x200 + slot), &new_cert),
            ])
            .unwrap();
        }
    }
    for i in 0..2000u32 {
        s.commit(&[Op::Put(k(1), &i.to_le_bytes())]).unwrap();
    }
    let stats = s.stats();
    assert!(stats.free_pages >= 2, "{stats:?}");
    let mut s: Store<Card128> = Store::mount(s.into_flash()).unwrap();
    assert_eq!(read(&mut s, 0x217), Some(vec![1; 1536]));
    assert_eq!(s.stats().records, 7 + 48);
}

/// An index filled with user keys to its capacity still collects, and the
/// flash still mounts afterwards: the horizon record has its own slot. (With
/// `KEYS` user keys allowed, the first collection wrote a horizon the index
/// could not hold, and every mount after failed: a bricked card.)
#[test]
fn a_full_index_survives_collections_and_remounts() {
    fn run<const KEYS: usize>() {
        let mut s: Store<Small, KEYS> = Store::mount(Small::new()).unwrap();
        let keys = Store::<Small, KEYS>::USER_KEYS as u16;
        for i in 0..keys {
            s.commit(&[Op::Put(k(i), &[i as u8; 8])]).unwrap();
        }
        let erases = s.flash().erase_ops();
        for round in 0..400u32 {
            let key = k(round as u16 % keys);
            s.commit(&[Op::Put(key, &round.to_le_bytes())]).unwrap();
            if round % 37 == 0 {
                s = Store::mount(s.into_flash()).expect("mount with a full index");
            }
        }
        assert!(s.flash().erase_ops() > erases, "no collection happened");
        let s: Store<Small, KEYS> = Store::mount(s.into_flash()).unwrap();
        assert_eq!(s.keys().count(), usize::from(keys));
    }
    run::<2>();
    run::<4>();
    run::<16>();
}

/// `commits` counts the transactions committed since mount: not the empty
/// ones, not the refused ones, not the collections the store runs itself.
#[test]
fn commits_count_transactions_since_mount() {
    let mut s: Store<Small> = Store::mount(Small::new()).unwrap();
    assert_eq!(s.commits(), 0);
    s.commit(&[Op::Put(k(1), b"one"), Op::Put(k(2), b"two")])
        .unwrap();
    s.commit(&[]).unwrap();
    assert_eq!(s.commits(), 1);
    // Enough rewrites of one counter to force collections.
    for n in 0..200u8 {
        s.commit(&[Op::Put(k(3), &[n; 40])]).unwrap();
    }
    assert_eq!(s.commits(), 201);
    assert!(s.commit(&[Op::Put(k(4), &[0; 4096])]).is_err());
    assert_eq!(s.commits(), 201);
    let s: Store<Small> = Store::mount(s.into_flash()).unwrap();
    assert_eq!(s.commits(), 0);
}
