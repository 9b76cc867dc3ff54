//! PIV applet benchmarks, each with its same-run baseline:
//! - ECDSA P-256 through the whole card (APDU parse, OS dispatch, PIN
//!   policy, key unsealing, signing, DER, response) against a raw `p256`
//!   signature of the same digest with a key already in memory;
//! - VERIFY with the right and the wrong PIN (two flash commits each);
//! - GENERATE into 9A, against a raw `p256` key generation with its public
//!   key computed.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::elliptic_curve::Generate;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

mod common;
use common::*;

fn sign(c: &mut Criterion) {
    let digest = [0x5Au8; 32];
    let mut card = boot(Flash::new());
    admin(&mut card);
    ok(&mut card, GENERATE_9A);
    ok(&mut card, VERIFY_RIGHT);
    let apdu = sign_apdu(0x9A, &digest);
    ok(&mut card, &apdu);

    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let raw = SigningKey::generate_from_rng(&mut rng);

    let mut g = c.benchmark_group("sign");
    g.bench_function("applet_general_authenticate_9A", |b| {
        b.iter(|| black_box(card.transmit(black_box(&apdu)).unwrap()))
    });
    g.bench_function("baseline_raw_p256_sign_prehash", |b| {
        b.iter(|| {
            let sig: DerSignature = raw.sign_prehash(black_box(&digest)).unwrap();
            black_box(sig)
        })
    });
    g.finish();
}

fn verify_and_generate(c: &mut Criterion) {
    let base = boot(Flash::new()).into_parts().0;
    let mut g = c.benchmark_group("applet");
    g.bench_function("verify_right", |b| {
        let mut card = boot(base.clone());
        b.iter(|| black_box(card.transmit(VERIFY_RIGHT).unwrap()))
    });
    g.bench_function("verify_wrong", |b| {
        b.iter_batched_ref(
            || boot(base.clone()),
            |card| black_box(card.transmit(VERIFY_WRONG).unwrap()),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("generate_9a", |b| {
        let mut card = boot(base.clone());
        admin(&mut card);
        b.iter(|| black_box(card.transmit(GENERATE_9A).unwrap()))
    });
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    g.bench_function("baseline_raw_p256_generate", |b| {
        b.iter(|| black_box(p256::SecretKey::generate_from_rng(&mut rng).public_key()))
    });
    g.finish();
}

criterion_group!(benches, sign, verify_and_generate);
criterion_main!(benches);
