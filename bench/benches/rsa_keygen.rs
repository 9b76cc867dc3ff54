//! RSA-2048 key generation: mean and spread over 50 seeded keys through
//! the whole card (GENERATE into 9A), beside `crypto-primes` alone drawing
//! the same two 1024-bit primes (two top bits set) from the same kind of
//! RNG. Generation time is a random variable (how far the sieve walks), so
//! the spread matters as much as the mean; criterion's resampling would
//! hide it.

use std::time::Instant;

use crypto_bigint::U1024;
use crypto_primes::hazmat::{SetBits, SmallFactorsSieveFactory};
use crypto_primes::{Flavor, is_prime, sieve_and_find};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

mod common;
use common::*;

const KEYS: usize = 50;
const GENERATE_RSA2048: &[u8] = &[
    0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x07, 0x00,
];

struct Spread {
    mean: f64,
    sd: f64,
    min: f64,
    max: f64,
}

fn spread(seconds: &[f64]) -> Spread {
    let n = seconds.len() as f64;
    let mean = seconds.iter().sum::<f64>() / n;
    let var = seconds.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Spread {
        mean,
        sd: var.sqrt(),
        min: seconds.iter().copied().fold(f64::INFINITY, f64::min),
        max: seconds.iter().copied().fold(0.0, f64::max),
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut card_times = Vec::new();
    for seed in 0..KEYS as u64 {
        let mut card = boot_seeded(Flash::new(), 1_000 + seed);
        admin(&mut card);
        let started = Instant::now();
        let answer = card.transmit(GENERATE_RSA2048).unwrap();
        card_times.push(started.elapsed().as_secs_f64());
        // The 270-byte public key comes in two parts: `61 0E` says the rest
        // waits for GET RESPONSE.
        assert_eq!(answer[answer.len() - 2..], [0x61, 0x0E]);
    }
    let mut prime_times = Vec::new();
    for seed in 0..KEYS as u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(1_000 + seed);
        let factory =
            SmallFactorsSieveFactory::<U1024>::new(Flavor::Any, 1024, SetBits::TwoMsb).unwrap();
        let started = Instant::now();
        for _ in 0..2 {
            let p = sieve_and_find(&mut rng, factory, |_, c| is_prime(Flavor::Any, c));
            assert!(p.unwrap().is_some());
        }
        prime_times.push(started.elapsed().as_secs_f64());
    }
    let (card, primes) = (spread(&card_times), spread(&prime_times));
    println!("RSA-2048 key generation, {KEYS} seeded keys each (seconds)");
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8}",
        "", "mean", "sd", "min", "max"
    );
    for (name, s) in [
        ("card GENERATE 9A", &card),
        ("crypto-primes, two primes", &primes),
    ] {
        println!(
            "{name:<34} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            s.mean, s.sd, s.min, s.max
        );
    }
    println!("ratio of means: {:.2}", card.mean / primes.mean);
}
