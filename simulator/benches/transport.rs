//! The virtual reader's speed, all in one run:
//! - GET DATA (CHUID) round trips through pcscd + vpcd to s9card, against
//!   the same transport with a *null card* that answers `90 00` at once
//!   (the floor); goal ≤ 1.10× the floor;
//! - the same without re-arming TCP_QUICKACK, to show what it buys;
//! - a pkcs11-tool login + sign, 20 times, whole processes.
//!
//! Needs pcscd with vpcd (scripts/pcscd-up). It holds the machine alone.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use client::{Pcsc, Transport};
use harness::{Harness, PKCS11, Readers, key_with_certificate, run};

const SELECT: &[u8] = &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
const GET_CHUID: &[u8] = &[
    0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02, 0x00,
];

/// Mean round trip of `n` GET DATA commands.
fn round_trips(h: &Harness, n: u32) -> Duration {
    let mut card = Pcsc::connect_exact(&h.reader(0)).unwrap();
    card.transmit(SELECT).unwrap();
    for _ in 0..20 {
        card.transmit(GET_CHUID).unwrap();
    }
    let start = Instant::now();
    for _ in 0..n {
        let rsp = card.transmit(GET_CHUID).unwrap();
        assert!(rsp.len() >= 2);
    }
    start.elapsed() / n
}

fn main() {
    let _alone = Readers::exclusive();
    // Card and floor alternate, three runs each, and the medians are
    // compared, so drift in the machine's speed hits both alike.
    let n = 2000;
    let (mut cards, mut floors) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let h = Harness::start_with(1, false, &[]);
        cards.push(round_trips(&h, n));
        drop(h);
        let h = Harness::start_with(1, false, &["--null-card"]);
        floors.push(round_trips(&h, n));
        drop(h);
    }
    cards.sort();
    floors.sort();
    let (card, floor) = (cards[1], floors[1]);
    let no_quickack = {
        let h = Harness::start_with(1, false, &["--no-quickack"]);
        round_trips(&h, 40)
    };
    let per_signature = {
        let h = Harness::start_with(1, false, &[]);
        key_with_certificate(&h, "9a", "bench");
        let data = h.write("digest", &[0x11; 32]);
        let sig = h.path("sig");
        let start = Instant::now();
        for _ in 0..20 {
            let out = run(
                "pkcs11-tool",
                &[
                    "--module",
                    PKCS11,
                    "--slot-description",
                    &h.reader(0),
                    "--login",
                    "--pin",
                    "123456",
                    "--sign",
                    "-m",
                    "ECDSA",
                    "--id",
                    "01",
                    "-i",
                    data.to_str().unwrap(),
                    "-o",
                    sig.to_str().unwrap(),
                ],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        start.elapsed() / 20
    };
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("GET DATA round trip through pcscd + vpcd (median of 3 runs of {n}):");
    println!("  s9card                 {:>10.1} us", us(card));
    println!("  null card (floor)      {:>10.1} us", us(floor));
    println!("  s9card / floor         {:>10.3}x", us(card) / us(floor));
    println!(
        "  without TCP_QUICKACK   {:>10.1} us  ({:.0}x the quick-ACK round trip)",
        us(no_quickack),
        us(no_quickack) / us(card)
    );
    println!(
        "pkcs11-tool --login --sign, 20 runs: {:.1} ms per signature, process start included ({:.0}x a GET DATA round trip)",
        us(per_signature) / 1000.0,
        us(per_signature) / us(card)
    );
}
