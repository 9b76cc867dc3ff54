//! Codec and store benchmarks, each beside a baseline measured in the same
//! run (see `bench/ratios.py`):
//! - parse a PUT DATA APDU carrying a 3 KiB certificate and walk its TLVs,
//!   against copying the same bytes;
//! - commit a 16-byte and a 2 KiB record, against programming the same bytes
//!   straight into the same RAM flash;
//! - mount a fully personalised 128 KiB store, against reading all of it.

use std::hint::black_box;

use apdu::Command;
use apdu::tlv::{Reader, Tag};
use card_os::store::{Key, Op, Store};
use card_os::testing::RamFlash;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

type Card128 = RamFlash<{ 128 * 1024 }, 4096>;

/// `00 DB 3F FF` extended, `5C 03 5FC105 53 { 70 cert 71 01 00 FE 00 }`.
fn put_data_apdu() -> Vec<u8> {
    let cert: Vec<u8> = (0..3072u32).map(|i| (i * 31) as u8).collect();
    let mut inner = vec![0x70, 0x82, 0x0C, 0x00];
    inner.extend_from_slice(&cert);
    inner.extend_from_slice(&[0x71, 0x01, 0x00, 0xFE, 0x00]);
    let mut data = vec![0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x82];
    data.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    data.extend_from_slice(&inner);
    let mut apdu = vec![0x00, 0xDB, 0x3F, 0xFF, 0x00];
    apdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
    apdu.extend_from_slice(&data);
    apdu
}

fn walk(apdu: &[u8]) -> usize {
    let Ok(cmd) = Command::parse(apdu) else {
        return 0;
    };
    let mut seen = 0;
    for tlv in Reader::new(cmd.data()).flatten() {
        seen += tlv.value.len();
        if tlv.tag == Tag::constant(0x53) {
            for inner in Reader::new(tlv.value).flatten() {
                seen += inner.value.len();
            }
        }
    }
    seen
}

fn codec(c: &mut Criterion) {
    let apdu = put_data_apdu();
    assert!(walk(&apdu) > 3072);
    let mut g = c.benchmark_group("codec");
    g.bench_function("parse_and_walk_cert_apdu", |b| {
        b.iter(|| walk(black_box(&apdu)))
    });
    g.bench_function("baseline_copy_cert_apdu", |b| {
        let mut out = vec![0u8; apdu.len()];
        b.iter(|| {
            out.copy_from_slice(black_box(&apdu));
            black_box(&out);
        })
    });
    g.finish();
}

/// A store holding the personalised PIV profile of issue #3.
fn personalised() -> Card128 {
    let mut s: Store<Card128> = Store::mount(Card128::new()).unwrap();
    for (i, len) in [
        (1u16, 48usize),
        (2, 48),
        (3, 40),
        (4, 80),
        (5, 60),
        (6, 20),
        (7, 200),
    ] {
        s.commit(&[Op::Put(Key::new(i).unwrap(), &vec![i as u8; len])])
            .unwrap();
    }
    for slot in 0..24u16 {
        let key = Key::new(0x100 + slot).unwrap();
        let cert = Key::new(0x200 + slot).unwrap();
        s.commit(&[Op::Put(key, &[0x4B; 48]), Op::Put(cert, &[0xC5; 1536])])
            .unwrap();
    }
    for i in 0..500u32 {
        s.commit(&[Op::Put(Key::new(1).unwrap(), &i.to_le_bytes())])
            .unwrap();
    }
    s.into_flash()
}

fn store(c: &mut Criterion) {
    let mut g = c.benchmark_group("store");
    for (name, len) in [("16B", 16usize), ("2KiB", 2048)] {
        let value = vec![0xA5u8; len];
        let mut s: Store<Card128> = Store::mount(personalised()).unwrap();
        let key = Key::new(0x300).unwrap();
        g.bench_function(format!("commit_{name}"), |b| {
            b.iter(|| s.commit(black_box(&[Op::Put(key, &value)])).unwrap())
        });
        // The floor: programming the same bytes into erased RAM flash.
        let padded = vec![0xA5u8; len.div_ceil(4) * 4];
        g.bench_function(format!("baseline_program_{name}"), |b| {
            b.iter_batched_ref(
                Card128::new,
                |f| f.write(0, black_box(&padded)).unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
    let image = personalised();
    g.bench_function("mount_personalised_128KiB", |b| {
        b.iter_batched_ref(
            || image.clone(),
            |f| {
                let s: Store<&mut Card128> = Store::mount(f).unwrap();
                black_box(s.stats());
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("baseline_read_128KiB", |b| {
        b.iter_batched_ref(
            || (image.clone(), vec![0u8; 128 * 1024]),
            |(f, buf)| {
                f.read(0, buf).unwrap();
                black_box(&buf);
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, codec, store);
criterion_main!(benches);
