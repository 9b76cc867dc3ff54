//! The new algorithms through the whole card, each beside the crate that
//! does the arithmetic underneath, in the same run:
//! - RSA-2048 private operation (GENERAL AUTHENTICATE, one extended APDU)
//!   and its GET RESPONSE, against `applet::crypto::rsa::private` on the same key (the CRT
//!   operation on `crypto-bigint` with no card around it), and against the
//!   `rsa` crate's PKCS#1 v1.5 signature (heap, the peer a host user picks);
//! - ECDSA P-384 against `p384`'s `sign_prehash`;
//! - Ed25519 against `ed25519-dalek`'s `sign` with the same features.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::Signer;
use p384::ecdsa::signature::hazmat::PrehashSigner;
use rsa::BoxedUint;

mod common;
use common::*;

/// The RSA-2048 block of the applet's known-answer file.
fn rsa2048() -> HashMap<String, String> {
    let text = include_str!("../../applet/tests/data/algorithms/rsa.txt");
    text.split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once(' '))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        })
        .find(|b| b.get("bits").map(String::as_str) == Some("2048"))
        .unwrap()
}

fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    client::tlv(tag, value)
}

const GET_RESPONSE: &[u8] = &[0x00, 0xC0, 0x00, 0x00, 0x08];

/// GENERAL AUTHENTICATE `81 input` with the key in `slot`, as one extended
/// APDU.
fn authenticate_apdu(alg: u8, slot: u8, input: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x82, 0x00];
    inner.extend(tlv(0x81, input));
    let data = tlv(0x7C, &inner);
    let mut apdu = vec![0x00, 0x87, alg, slot, 0x00];
    apdu.extend((data.len() as u16).to_be_bytes());
    apdu.extend(data);
    apdu.extend([0x00, 0x00]);
    apdu
}

fn import_apdu(alg: u8, slot: u8, data: &[u8]) -> Vec<u8> {
    let mut apdu = vec![0x00, 0xFE, alg, slot, 0x00];
    apdu.extend((data.len() as u16).to_be_bytes());
    apdu.extend(data);
    apdu
}

fn rsa_sign(c: &mut Criterion) {
    let v = rsa2048();
    let names = ["p", "q", "dp", "dq", "qinv"];
    let parts: Vec<u8> = names
        .iter()
        .flat_map(|k| hex::decode(&v[*k]).unwrap())
        .collect();
    let import: Vec<u8> = names
        .iter()
        .zip(1u8..)
        .flat_map(|(k, t)| tlv(t, &hex::decode(&v[*k]).unwrap()))
        .collect();
    let mut card = boot(Flash::new());
    admin(&mut card);
    ok(&mut card, &import_apdu(0x07, 0x9A, &import));
    ok(&mut card, VERIFY_RIGHT);
    let mut block = vec![0x5Au8; 256];
    block[0] = 0;
    let apdu = authenticate_apdu(0x07, 0x9A, &block);
    // 264 bytes of answer: 256 now, the rest by GET RESPONSE, as tools
    // fetch it.
    let first = send(&mut card, &apdu);
    assert_eq!(first[first.len() - 2..], [0x61, 0x08]);
    let rest = ok(&mut card, GET_RESPONSE);
    assert_eq!(first.len() + rest.len(), 4 + 4 + 256 + 4);

    let key = rsa::PrivateKey::from_p_q(
        BoxedUint::from_be_slice_vartime(&hex::decode(&v["p"]).unwrap()),
        BoxedUint::from_be_slice_vartime(&hex::decode(&v["q"]).unwrap()),
        BoxedUint::from(65_537u32),
    )
    .unwrap();
    let hashed = [0x42u8; 32];

    let mut g = c.benchmark_group("rsa2048_sign");
    g.sample_size(30);
    g.bench_function("applet_general_authenticate_9A", |b| {
        b.iter(|| {
            black_box(card.transmit(black_box(&apdu)).unwrap());
            black_box(card.transmit(GET_RESPONSE).unwrap())
        })
    });
    g.bench_function("baseline_crt_private_op", |b| {
        let mut out = [0u8; 256];
        let mut rng =
            <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(7);
        b.iter(|| {
            applet::crypto::rsa::private(&parts, black_box(&block), &mut out, &mut rng).unwrap();
            black_box(out)
        })
    });
    g.bench_function("peer_rsa_crate_pkcs1v15_sign", |b| {
        b.iter(|| {
            black_box(
                key.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), black_box(&hashed))
                    .unwrap(),
            )
        })
    });
    g.finish();
}

fn p384_and_ed25519_sign(c: &mut Criterion) {
    let scalar = [0x21u8; 48];
    let seed = [0x33u8; 32];
    let mut card = boot(Flash::new());
    admin(&mut card);
    ok(&mut card, &import_apdu(0x14, 0x9A, &tlv(0x06, &scalar)));
    ok(&mut card, &import_apdu(0xE0, 0x9E, &tlv(0x07, &seed)));
    ok(&mut card, VERIFY_RIGHT);
    let digest = [0x5Au8; 48];
    let p384_apdu = authenticate_apdu(0x14, 0x9A, &digest);
    ok(&mut card, &p384_apdu);
    let message = [0x6Bu8; 64];
    let ed_apdu = authenticate_apdu(0xE0, 0x9E, &message);
    ok(&mut card, &ed_apdu);

    let p384_key = p384::ecdsa::SigningKey::from_slice(&scalar).unwrap();
    let ed_key = ed25519_dalek::SigningKey::from_bytes(&seed);

    let mut g = c.benchmark_group("p384_sign");
    g.bench_function("applet_general_authenticate_9A", |b| {
        b.iter(|| black_box(card.transmit(black_box(&p384_apdu)).unwrap()))
    });
    g.bench_function("baseline_raw_p384_sign_prehash", |b| {
        b.iter(|| {
            let sig: p384::ecdsa::DerSignature = p384_key.sign_prehash(black_box(&digest)).unwrap();
            black_box(sig)
        })
    });
    g.finish();
    let mut g = c.benchmark_group("ed25519_sign");
    g.bench_function("applet_general_authenticate_9E", |b| {
        b.iter(|| black_box(card.transmit(black_box(&ed_apdu)).unwrap()))
    });
    g.bench_function("baseline_raw_ed25519_sign", |b| {
        b.iter(|| black_box(ed_key.sign(black_box(&message))))
    });
    g.finish();
}

criterion_group!(benches, rsa_sign, p384_and_ed25519_sign);
criterion_main!(benches);
