//! s9card and piv-authenticator 0.7.0 on the same APDU scripts, in one run:
//! criterion latency of each command in process, then flash programs and
//! erases per command, then the ratios (piv-authenticator ÷ s9card).
//!
//!     cd bench/peer && cargo bench
//!
//! Each card gets the same setup (SELECT; the factory 3DES management key
//! through the same host client; the factory PIN) before a script runs, and
//! every answer is checked: status `90 00`, and signatures that verify
//! under the key the card generated.

use std::sync::Arc;
use std::time::Duration;

use client::{AdminAlgorithm, Algorithm, DEFAULT_MGM, PivClient, Slot};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use peer::flash::Counts;
use peer::peer::PeerCard;
use peer::s9::S9Card;
use peer::{BenchCard, FlashOps, platform};

/// SELECT with the PIV AID truncated as SP 800-73-4 allows it (without the
/// version); piv-authenticator wants at least these 9 bytes.
const SELECT: &[u8] = &[
    0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x00,
];
const VERIFY: &[u8] = &[
    0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF,
];
const VERIFY_WRONG: &[u8] = &[
    0x00, 0x20, 0x00, 0x80, 0x08, b'6', b'5', b'4', b'3', b'2', b'1', 0xFF, 0xFF,
];
const GENERATE_P256: &[u8] = &[
    0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00,
];
const DIGEST: [u8; 32] = [0x5A; 32];

/// A command as a script: its APDUs (a chain), each answered `90 00`,
/// `61xx` followed by GET RESPONSE.
struct Script {
    name: &'static str,
    apdus: Vec<Vec<u8>>,
}

/// GENERAL AUTHENTICATE of slot 9A with `alg`: `7C { 82 00, 81 input }`,
/// chained in 255-byte links as tools send it.
fn general_authenticate(alg: u8, input: &[u8]) -> Vec<Vec<u8>> {
    let mut inner = vec![0x82, 0x00, 0x81];
    push_len(&mut inner, input.len());
    inner.extend(input);
    let mut data = vec![0x7C];
    push_len(&mut data, inner.len());
    data.extend(inner);
    let links: Vec<&[u8]> = data.chunks(255).collect();
    links
        .iter()
        .enumerate()
        .map(|(i, link)| {
            let cla = if i + 1 < links.len() { 0x10 } else { 0x00 };
            let mut apdu = vec![cla, 0x87, alg, 0x9A, link.len() as u8];
            apdu.extend(*link);
            apdu.push(0x00);
            apdu
        })
        .collect()
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
}

/// Runs a script; the last answer's data and status word. Each answer is
/// `90 00` or a counted wrong try (`63 Cx`).
fn run(card: &mut impl BenchCard, script: &[Vec<u8>]) -> (Vec<u8>, u16) {
    let mut data = Vec::new();
    let mut status = 0;
    for apdu in script {
        data.clear();
        let mut answer = card.transmit(apdu).expect("the card answers");
        loop {
            let [.., sw1, sw2] = answer[..] else {
                panic!("{apdu:02X?}: no status word");
            };
            data.extend_from_slice(&answer[..answer.len() - 2]);
            status = u16::from_be_bytes([sw1, sw2]);
            match (sw1, sw2) {
                (0x90, 0x00) | (0x63, 0xC0..=0xCF) => break,
                (0x61, _) => {
                    answer = card
                        .transmit(&[0x00, 0xC0, 0x00, 0x00, 0x00])
                        .expect("the card answers GET RESPONSE");
                }
                _ => panic!("{apdu:02X?}: {sw1:02X} {sw2:02X}"),
            }
        }
    }
    (data, status)
}

/// Runs a script that must end in `90 00`; the last answer's data.
fn ok(card: &mut impl BenchCard, script: &[Vec<u8>]) -> Vec<u8> {
    let (data, status) = run(card, script);
    assert_eq!(status, 0x9000, "{script:02X?}");
    data
}

/// The same setup on either card: selected, management key authenticated,
/// `alg` generated in 9A, PIN verified. Returns the public key.
fn set_up(card: &mut impl BenchCard, alg: Algorithm) -> Vec<u8> {
    ok(card, &[SELECT.to_vec()]);
    let mut client = PivClient::new(&mut *card);
    client
        .authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
        .expect("factory management key");
    let public = client
        .generate_key(Slot::Authentication, alg, false)
        .expect("GENERATE");
    ok(card, &[VERIFY.to_vec()]);
    public
}

/// The sign script's answer: the signature inside `7C { 82 … }`.
fn signature(answer: &[u8]) -> &[u8] {
    let template = client::unwrap_tlv(answer, 0x7C).expect("7C template");
    client::unwrap_tlv(template, 0x82).expect("82 response")
}

/// Both cards' scripts checked once: what the benches time does real work.
fn check(card: &mut impl BenchCard, p256_sign: &[Vec<u8>]) {
    let public = set_up(card, Algorithm::P256);
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public).expect("a P-256 point");
    let answer = ok(card, p256_sign);
    let signature = p256::ecdsa::Signature::from_der(signature(&answer)).expect("DER ECDSA");
    key.verify_prehash(&DIGEST, &signature)
        .expect("the signature verifies");
}

/// Flash operations of one run of `script` after `setup`, and the mean
/// over `runs` runs (page openings and collections fall on some runs).
fn flash_per_command(card: &mut impl BenchCard, script: &[Vec<u8>], runs: u64) -> (FlashOps, f64) {
    let before = card.flash_ops();
    ok(card, script);
    let once = card.flash_ops() - before;
    let before = card.flash_ops();
    for _ in 0..runs {
        run(card, script);
    }
    let many = card.flash_ops() - before;
    (once, many.programs as f64 / runs as f64)
}

fn scripts() -> Vec<(Script, Option<Algorithm>)> {
    let mut rsa_block = vec![0xFF; 256];
    rsa_block[0] = 0x00;
    rsa_block[1] = 0x01;
    rsa_block[256 - 33] = 0x00;
    rsa_block[256 - 32..].copy_from_slice(&DIGEST);
    vec![
        (
            Script {
                name: "select",
                apdus: vec![SELECT.to_vec()],
            },
            None,
        ),
        (
            Script {
                name: "verify",
                apdus: vec![VERIFY.to_vec()],
            },
            None,
        ),
        // A wrong PIN, then the right one (which gives the try back), so
        // that the script can repeat without blocking the PIN.
        (
            Script {
                name: "verify_wrong",
                apdus: vec![VERIFY_WRONG.to_vec(), VERIFY.to_vec()],
            },
            None,
        ),
        (
            Script {
                name: "generate_p256",
                apdus: vec![GENERATE_P256.to_vec()],
            },
            Some(Algorithm::P256),
        ),
        (
            Script {
                name: "sign_p256",
                apdus: general_authenticate(0x11, &DIGEST),
            },
            Some(Algorithm::P256),
        ),
        (
            Script {
                name: "sign_rsa2048",
                apdus: general_authenticate(0x07, &rsa_block),
            },
            Some(Algorithm::Rsa2048),
        ),
    ]
}

/// One script on one card: its set-up, its flash operations, its timing.
fn measure(
    group: &mut BenchmarkGroup<'_, WallTime>,
    card: &mut impl BenchCard,
    id: &str,
    script: &Script,
    alg: Option<Algorithm>,
) -> (FlashOps, f64) {
    match alg {
        Some(alg) => drop(set_up(card, alg)),
        None => drop(ok(card, &[SELECT.to_vec()])),
    }
    let flash = flash_per_command(card, &script.apdus, 20);
    group.bench_function(id, |b| b.iter(|| run(card, &script.apdus)));
    flash
}

/// The criterion ids: s9card, the peer with its service run in each
/// syscall, and the peer on trussed's polled virtual runner.
const S9: &str = "s9card";
const PEER: &str = "piv-authenticator";
const PEER_POLLED: &str = "piv-authenticator-virt-runner";

fn main() {
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/target/criterion");
    let mut criterion = Criterion::default()
        .output_directory(std::path::Path::new(out))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let scripts = scripts();
    let sign = general_authenticate(0x11, &DIGEST);
    let mut rows = Vec::new();
    let counts = Arc::new(Counts::default());
    platform::with_client(Arc::clone(&counts), |client| {
        let mut peer = PeerCard::new(client, counts);
        let mut s9 = S9Card::new(5);
        check(&mut s9, &sign);
        check(&mut peer, &sign);
        for (script, alg) in &scripts {
            let mut group = criterion.benchmark_group(script.name);
            if script.name.starts_with("generate") || script.name.contains("rsa") {
                group.sample_size(20);
            }
            let ours = measure(&mut group, &mut s9, S9, script, *alg);
            let theirs = measure(&mut group, &mut peer, PEER, script, *alg);
            group.finish();
            rows.push((script.name, ours, theirs));
        }
    });
    // The same peer on trussed's own runner: what the polling costs.
    let counts = Arc::new(Counts::default());
    platform::with_polled_client(Arc::clone(&counts), |client| {
        let mut peer = PeerCard::new(client, counts);
        check(&mut peer, &sign);
        for (script, alg) in &scripts {
            let mut group = criterion.benchmark_group(script.name);
            group.sample_size(10);
            measure(&mut group, &mut peer, PEER_POLLED, script, *alg);
            group.finish();
        }
    });
    criterion.final_summary();

    println!(
        "\nflash per command: one run (programs / bytes / erases), and programs averaged over 20 runs"
    );
    println!(
        "{:<14} {:>24} {:>9} {:>24} {:>9}",
        "command", S9, "mean", PEER, "mean"
    );
    for (name, ours, theirs) in &rows {
        let cell = |(ops, mean): &(FlashOps, f64)| {
            (
                format!("{} / {} / {}", ops.programs, ops.bytes, ops.erases),
                format!("{mean:.2}"),
            )
        };
        let (s9, s9_mean) = cell(ours);
        let (peer, peer_mean) = cell(theirs);
        println!("{name:<14} {s9:>24} {s9_mean:>9} {peer:>24} {peer_mean:>9}");
    }

    println!("\nlatency in process (criterion means); ratios to s9card");
    println!(
        "{:<14} {:>10} {:>18} {:>7} {:>30} {:>8}",
        "command", S9, PEER, "ratio", PEER_POLLED, "ratio"
    );
    for (name, _, _) in &rows {
        let mean = |id: &str| -> Option<f64> {
            let path = format!("{out}/{name}/{id}/new/estimates.json");
            let text = std::fs::read_to_string(path).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            json["mean"]["point_estimate"].as_f64()
        };
        match (mean(S9), mean(PEER), mean(PEER_POLLED)) {
            (Some(s9), Some(peer), Some(polled)) => println!(
                "{name:<14} {:>10} {:>18} {:>6.1}x {:>30} {:>7.1}x",
                micros(s9),
                micros(peer),
                peer / s9,
                micros(polled),
                polled / s9
            ),
            _ => println!("{name:<14} (not measured in this run)"),
        }
    }
}

fn micros(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}
