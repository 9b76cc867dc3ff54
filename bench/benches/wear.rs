//! Wear: erase counts per page after 100,000 updates of a PIN-counter-sized
//! record on a personalised 128 KiB card (32 pages of 4 KiB), plus the
//! program and erase operations a single small commit costs on average.

use card_os::store::{Key, Op, Store};
use card_os::testing::RamFlash;

type Card128 = RamFlash<{ 128 * 1024 }, 4096>;

fn main() {
    let mut s: Store<Card128> = Store::mount(Card128::new()).unwrap();
    for slot in 0..24u16 {
        let key = Key::new(0x100 + slot).unwrap();
        let cert = Key::new(0x200 + slot).unwrap();
        s.commit(&[Op::Put(key, &[0x4B; 48]), Op::Put(cert, &[0xC5; 1536])])
            .unwrap();
    }
    let (programs0, erases0) = (s.flash().programs(), s.flash().erase_ops());
    let counter = Key::new(1).unwrap();
    let updates = 100_000u32;
    for i in 0..updates {
        s.commit(&[Op::Put(counter, &[(i % 3) as u8, 3, 3, 0xFF])])
            .unwrap();
    }
    let counts = s.flash().erase_counts();
    let max = counts.iter().max().copied().unwrap_or(0);
    let min = counts.iter().min().copied().unwrap_or(0);
    let mean = counts.iter().map(|&c| f64::from(c)).sum::<f64>() / counts.len() as f64;
    let programs = s.flash().programs() - programs0;
    let erases = s.flash().erase_ops() - erases0;
    println!("wear after {updates} counter updates on 32 pages of 4 KiB:");
    println!(
        "  erases per page: min {min}, mean {mean:.1}, max {max} (max/mean {:.3})",
        f64::from(max) / mean
    );
    println!(
        "  per update: {:.3} programs, {:.4} erases",
        programs as f64 / f64::from(updates),
        erases as f64 / f64::from(updates)
    );
}
