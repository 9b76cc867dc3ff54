//! Do the latency profiles keep their word? Each built-in profile's rules,
//! measured through PC/SC (pcscd + vpcd + `s9card serve --latency P`),
//! against the same commands on a card without a profile in the same run:
//! the profile's delay is the difference of the means, its spread the
//! square root of the difference of the variances.
//!
//! `scripts/test` runs it (`cargo test -p simulator --test latency --
//! --show-output` alone): it prints the table, and fails if a measured mean
//! or spread is further from the file than four standard errors (plus
//! 0.3 ms for the host's sleep and pcscd). The draws are seeded, so a run
//! repeats its own sample. It holds the machine alone, so that no other
//! test's load is in its figures.

mod harness;

use std::time::Instant;

use client::{AdminAlgorithm, DEFAULT_MGM, Pcsc, PivClient, Slot, Transport};
use harness::{Harness, Readers};
use virtual_reader::latency::{Delay, Profile};

const SELECT: &[u8] = &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
const VERIFY: &[u8] = &[
    0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF,
];
/// GET DATA of an object the card does not hold (a retired key's
/// certificate): `6A 82`, what a profile's default covers.
const GET_EMPTY: &[u8] = &[
    0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x0D, 0x00,
];

/// A card through PC/SC, timing single APDUs.
struct Reader {
    card: Pcsc,
}

impl Reader {
    fn connect(h: &Harness) -> Reader {
        Reader { card: h.connect(0) }
    }

    /// Sends `apdu`, returns (response, milliseconds).
    fn timed(&mut self, apdu: &[u8]) -> (Vec<u8>, f64) {
        let start = Instant::now();
        let rsp = self.card.transmit(apdu).unwrap();
        (rsp, start.elapsed().as_secs_f64() * 1000.0)
    }

    /// Collects a `61 xx` answer's remaining parts.
    fn collect(&mut self, mut rsp: Vec<u8>) {
        while let [.., 0x61, n] = rsp[..] {
            rsp = self.timed(&[0x00, 0xC0, 0x00, 0x00, n]).0;
        }
        assert_eq!(rsp[rsp.len() - 2..], [0x90, 0x00], "{rsp:02X?}");
    }
}

impl Transport for Reader {
    fn transmit(&mut self, apdu: &[u8]) -> client::Result<Vec<u8>> {
        Ok(self.timed(apdu).0)
    }
}

/// What one rule's check exercises.
#[derive(Clone, Copy, Debug)]
enum Probe {
    Select,
    Verify,
    Empty,
    SignP256,
    SignRsa2048,
    GenerateRsa2048,
}

impl Probe {
    /// The probe for a rule (by its name and algorithm).
    fn of(name: &str, algorithm: Option<&str>) -> Probe {
        match (name, algorithm) {
            ("SELECT", None) => Probe::Select,
            ("VERIFY PIN", None) => Probe::Verify,
            (n, Some("P-256")) if n.starts_with("GENERAL AUTHENTICATE") => Probe::SignP256,
            (n, None) if n.starts_with("GENERAL AUTHENTICATE") => Probe::SignP256,
            (n, Some("RSA-2048")) if n.starts_with("GENERAL AUTHENTICATE") => Probe::SignRsa2048,
            ("GENERATE", Some("RSA-2048")) => Probe::GenerateRsa2048,
            other => panic!("no probe for the rule {other:?}: add one"),
        }
    }

    /// How many samples: about 3 s of each, at least 10.
    fn samples(self, delay: Delay) -> usize {
        let per = delay.mean_ms + 1.0;
        ((3000.0 / per) as usize).clamp(10, 200)
    }

    /// Makes the card ready (a key in 9A), then takes `n` samples of the
    /// probed command's time in milliseconds.
    fn measure(self, h: &Harness, n: usize) -> Vec<f64> {
        let mut reader = Reader::connect(h);
        reader.timed(SELECT);
        let needs_key = match self {
            Probe::SignP256 => Some(applet::algorithm::Algorithm::P256),
            Probe::SignRsa2048 => Some(applet::algorithm::Algorithm::Rsa2048),
            _ => None,
        };
        let mut piv = PivClient::new(reader);
        if let Some(algorithm) = needs_key {
            piv.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
                .unwrap();
            piv.generate_key(Slot::Authentication, algorithm, false)
                .unwrap();
        }
        if let Probe::GenerateRsa2048 = self {
            piv.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
                .unwrap();
        }
        let mut reader = piv.into_inner();
        (0..n)
            .map(|_| match self {
                Probe::Select => reader.timed(SELECT).1,
                Probe::Verify => reader.timed(VERIFY).1,
                Probe::Empty => reader.timed(GET_EMPTY).1,
                Probe::SignP256 => {
                    reader.timed(VERIFY);
                    let mut apdu = vec![0x00, 0x87, 0x11, 0x9A, 0x26, 0x7C, 0x24, 0x82, 0x00];
                    apdu.extend([0x81, 0x20]);
                    apdu.extend([0x5A; 32]);
                    apdu.push(0x00);
                    let (rsp, ms) = reader.timed(&apdu);
                    reader.collect(rsp);
                    ms
                }
                Probe::SignRsa2048 => {
                    reader.timed(VERIFY);
                    // 7C 82 01 06 { 82 00, 81 82 01 00 <256 bytes below n> }
                    let mut data = vec![0x7C, 0x82, 0x01, 0x06, 0x82, 0x00, 0x81, 0x82, 0x01, 0x00];
                    data.extend([0x00, 0x01]);
                    data.extend([0xA5; 254]);
                    let (first, last) = data.split_at(255);
                    let mut part = vec![0x10, 0x87, 0x07, 0x9A, 0xFF];
                    part.extend(first);
                    let (rsp, _) = reader.timed(&part);
                    assert_eq!(rsp, [0x90, 0x00]);
                    let mut part = vec![0x00, 0x87, 0x07, 0x9A, last.len() as u8];
                    part.extend(last);
                    part.push(0x00);
                    // The rule is for the command, which is its last part.
                    let (rsp, ms) = reader.timed(&part);
                    reader.collect(rsp);
                    ms
                }
                Probe::GenerateRsa2048 => {
                    let apdu = [
                        0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x07, 0x00,
                    ];
                    let (rsp, ms) = reader.timed(&apdu);
                    reader.collect(rsp);
                    ms
                }
            })
            .collect()
    }
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// One rule's figures.
struct Row {
    profile: String,
    rule: String,
    file: Delay,
    n: usize,
    mean: f64,
    spread: f64,
    ok: bool,
}

#[test]
fn latency_profiles_keep_their_word() {
    let _alone = Readers::exclusive();
    let mut rows = Vec::new();
    for name in ["yubikey5", "nitrokey3", "javacard"] {
        let profile = Profile::load(name).unwrap();
        let mut probes: Vec<(String, Option<String>, Delay)> = profile
            .rules
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    r.algorithm.map(|a| {
                        match a {
                            applet::algorithm::Algorithm::P256 => "P-256",
                            applet::algorithm::Algorithm::Rsa2048 => "RSA-2048",
                            other => panic!("no probe for {other:?}"),
                        }
                        .to_string()
                    }),
                    r.delay,
                )
            })
            .collect();
        if let Some(d) = profile.default {
            probes.push(("default (GET DATA, empty)".into(), None, d));
        }
        for (rule, algorithm, delay) in probes {
            let probe = if rule.starts_with("default") {
                Probe::Empty
            } else {
                Probe::of(&rule, algorithm.as_deref())
            };
            let n = probe.samples(delay);
            let profiled = {
                let h = Harness::start_with(1, false, &["--latency", name, "--latency-seed", "1"]);
                probe.measure(&h, n)
            };
            let bare = {
                let h = Harness::start_with(1, false, &[]);
                probe.measure(&h, n)
            };
            let (m, v) = mean_var(&profiled);
            let (bm, bv) = mean_var(&bare);
            let mean = m - bm;
            let spread = (v - bv).max(0.0).sqrt();
            let nf = n as f64;
            let se_mean = ((delay.spread_ms.powi(2) + bv) / nf).sqrt();
            let se_spread = delay.spread_ms / (2.0 * nf).sqrt() + (bv / nf).sqrt();
            let ok = (mean - delay.mean_ms).abs() <= 4.0 * se_mean + 0.3
                && (spread - delay.spread_ms).abs() <= 4.0 * se_spread + 0.3;
            let rule = match algorithm {
                Some(a) => format!("{rule} {a}"),
                None => rule,
            };
            rows.push(Row {
                profile: name.into(),
                rule,
                file: delay,
                n,
                mean,
                spread,
                ok,
            });
        }
    }
    println!(
        "{:<10} {:<36} {:>16} {:>18} {:>5} {:>6}",
        "profile", "command", "file (ms)", "measured (ms)", "n", "ratio"
    );
    for r in &rows {
        println!(
            "{:<10} {:<36} {:>8.2} ± {:<7.2} {:>9.2} ± {:<7.2} {:>5} {:>6.3}{}",
            r.profile,
            r.rule,
            r.file.mean_ms,
            r.file.spread_ms,
            r.mean,
            r.spread,
            r.n,
            r.mean / r.file.mean_ms,
            if r.ok { "" } else { "  OUT OF TOLERANCE" }
        );
    }
    assert!(
        rows.iter().all(|r| r.ok),
        "a latency profile's measured figures are not its file's"
    );
}
