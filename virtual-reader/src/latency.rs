//! Latency profiles: how long a real card takes to answer each command, so
//! that software tested against the virtual card meets real timing.
//!
//! A profile is a list of rules, each a command name as the trace names it
//! (`VERIFY PIN`, `GENERAL AUTHENTICATE ECDSA`, `GENERATE`: a rule matches
//! a name it begins, word by word), optionally an algorithm, and a delay
//! with a mean and a spread (the standard deviation of a normal
//! distribution, floored at zero). The first rule that matches wins;
//! commands no rule matches, and the parts of a chained command before its
//! last, take the profile's `default` (none if it has none). Draws come
//! from a seeded generator, so a seeded run waits exactly as long every
//! time.
//!
//! The delay is spent before the card sees the command, and a card removed
//! during it never sees it: no state is ever held half-written while
//! waiting, and a removal mid-command is what the card's store had
//! committed before it.

use std::path::Path;
use std::time::{Duration, Instant};

use applet::algorithm::Algorithm;
use applet::ins::Instruction;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Deserialize;

use crate::trace::{self, Data, UnknownCommand};

/// The profiles built in, by name, as TOML files in `virtual-reader/profiles/`.
pub const BUILT_IN: [(&str, &str); 4] = [
    ("none", include_str!("../profiles/none.toml")),
    ("yubikey5", include_str!("../profiles/yubikey5.toml")),
    ("nitrokey3", include_str!("../profiles/nitrokey3.toml")),
    ("javacard", include_str!("../profiles/javacard.toml")),
];

/// A delay distribution.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    /// Mean, in milliseconds.
    pub mean_ms: f64,
    /// Standard deviation, in milliseconds.
    #[serde(default)]
    pub spread_ms: f64,
}

/// One rule as a profile file writes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    #[serde(default)]
    algorithm: Option<String>,
    mean_ms: f64,
    #[serde(default)]
    spread_ms: f64,
}

/// A profile file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    #[serde(default)]
    about: String,
    #[serde(default)]
    default: Option<Delay>,
    #[serde(default, rename = "command")]
    commands: Vec<RuleFile>,
}

/// A rule, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The command name it matches the beginning of.
    pub name: String,
    /// The algorithm it is limited to.
    pub algorithm: Option<Algorithm>,
    /// Its delay.
    pub delay: Delay,
}

/// A latency profile, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Its name.
    pub name: String,
    /// What card it models.
    pub about: String,
    /// For commands no rule matches.
    pub default: Option<Delay>,
    /// The rules, first match wins.
    pub rules: Vec<Rule>,
}

/// The algorithm names profile files use, as the applet's README writes
/// them.
const ALGORITHMS: [(&str, Algorithm); 8] = [
    ("RSA-1024", Algorithm::Rsa1024),
    ("RSA-2048", Algorithm::Rsa2048),
    ("RSA-3072", Algorithm::Rsa3072),
    ("RSA-4096", Algorithm::Rsa4096),
    ("P-256", Algorithm::P256),
    ("P-384", Algorithm::P384),
    ("Ed25519", Algorithm::Ed25519),
    ("X25519", Algorithm::X25519),
];

fn check(what: &str, d: Delay) -> Result<Delay, LatencyError> {
    let ok = |x: f64| x.is_finite() && x >= 0.0;
    if ok(d.mean_ms) && ok(d.spread_ms) && d.mean_ms <= 600_000.0 {
        Ok(d)
    } else {
        Err(LatencyError::Delay(what.to_string()))
    }
}

/// Why a latency profile is not one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LatencyError {
    /// Not TOML, or not a profile's fields.
    #[error("{0}")]
    Syntax(Box<toml::de::Error>),
    /// A delay that is not a number of milliseconds.
    #[error("{0}: mean_ms and spread_ms must be numbers from 0 (mean at most 600000)")]
    Delay(String),
    /// A rule for a command no trace names.
    #[error(transparent)]
    Name(#[from] UnknownCommand),
    /// An algorithm the card has not.
    #[error("algorithm {:?}: one of {}", .0, algorithm_names())]
    Algorithm(String),
    /// Neither a file nor a built-in profile.
    #[error("latency profile {:?}: neither a file nor one of {}", .0, built_in_names())]
    NotFound(String),
    /// The file could not be read.
    #[error("{name}: {source}")]
    Read {
        /// The file as named.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// What is wrong with the profile of this name or file.
    #[error("{name}: {source}")]
    In {
        /// `profile NAME` for a built-in one, or the file as named.
        name: String,
        /// What.
        source: Box<LatencyError>,
    },
}

fn algorithm_names() -> String {
    let names: Vec<&str> = ALGORITHMS.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

fn built_in_names() -> String {
    let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

impl Profile {
    /// Parses a profile file's text.
    pub fn parse(text: &str) -> Result<Profile, LatencyError> {
        let file: ProfileFile =
            toml::from_str(text).map_err(|e| LatencyError::Syntax(Box::new(e)))?;
        let default = file.default.map(|d| check("default", d)).transpose()?;
        let rules = file
            .commands
            .into_iter()
            .map(|r| {
                trace::check_name(&r.name)?;
                let algorithm = r
                    .algorithm
                    .map(|a| {
                        ALGORITHMS
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case(&a))
                            .map(|(_, alg)| *alg)
                            .ok_or(LatencyError::Algorithm(a))
                    })
                    .transpose()?;
                let delay = check(
                    &r.name,
                    Delay {
                        mean_ms: r.mean_ms,
                        spread_ms: r.spread_ms,
                    },
                )?;
                Ok(Rule {
                    name: r.name,
                    algorithm,
                    delay,
                })
            })
            .collect::<Result<_, LatencyError>>()?;
        Ok(Profile {
            name: file.name,
            about: file.about,
            default,
            rules,
        })
    }

    /// A built-in profile by name, or a profile file.
    pub fn load(name_or_path: &str) -> Result<Profile, LatencyError> {
        let within = |name: String| {
            move |e| LatencyError::In {
                name,
                source: Box::new(e),
            }
        };
        if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Profile::parse(text).map_err(within(format!("profile {name_or_path}")));
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(LatencyError::NotFound(name_or_path.into()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| LatencyError::Read {
            name: name_or_path.into(),
            source,
        })?;
        Profile::parse(&text).map_err(within(name_or_path.into()))
    }

    /// The delay for a command: its rule's, or the default.
    pub fn delay_for(&self, apdu: &[u8]) -> Option<Delay> {
        let Some(command) = Classified::of(apdu) else {
            return self.default;
        };
        if command.chained_part {
            return self.default;
        }
        self.rules
            .iter()
            .find(|r| {
                names_begin(&command.name, &r.name)
                    && r.algorithm.is_none_or(|a| command.algorithm == Some(a))
            })
            .map(|r| r.delay)
            .or(self.default)
    }
}

/// Whether `prefix` is the first words of `name`.
pub fn names_begin(name: &str, prefix: &str) -> bool {
    let prefix = prefix.trim();
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

/// What a command is, for profiles and scenarios.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    /// Its name as the trace gives it.
    pub name: String,
    /// The algorithm it names: GENERAL AUTHENTICATE's P1, GENERATE's `80`.
    pub algorithm: Option<Algorithm>,
    /// A part of a chain before its last.
    pub chained_part: bool,
}

impl Classified {
    /// Classifies a command APDU; `None` if it does not parse.
    pub fn of(apdu: &[u8]) -> Option<Classified> {
        let command = apdu::Command::parse(apdu).ok()?;
        let h = command.header();
        let header = [h.cla, h.ins, h.p1, h.p2];
        let [cla, ins, p1, _] = header;
        let data = command.data();
        let algorithm = match Instruction::from_byte(ins) {
            Some(Instruction::GeneralAuthenticate) => Algorithm::from_byte(p1),
            Some(Instruction::Generate | Instruction::StageKey) => apdu::tlv::Reader::new(data)
                .flatten()
                .find(|t| t.tag.value() == 0xAC)
                .and_then(|t| {
                    t.children()
                        .flatten()
                        .find(|t| t.tag.value() == 0x80)
                        .and_then(|t| t.value.first().copied())
                })
                .and_then(Algorithm::from_byte),
            _ => None,
        };
        // The name only reads the command's structure (which AID, which
        // object, which slot), never a secret value.
        let name = trace::name(header, &Data::Clear(data.to_vec()));
        let chained_part = cla & 0x10 != 0;
        let name = name.trim_end_matches(" (chained part)").to_string();
        Some(Classified {
            name,
            algorithm,
            chained_part,
        })
    }
}

/// A profile with its random draws.
pub struct Latency {
    profile: Profile,
    rng: ChaCha8Rng,
}

impl Latency {
    /// `profile`, drawing from `seed`.
    pub fn new(profile: Profile, seed: u64) -> Latency {
        Latency {
            profile,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// How long to wait before the card sees `apdu`.
    pub fn draw(&mut self, apdu: &[u8]) -> Duration {
        match self.profile.delay_for(apdu) {
            Some(d) => {
                let ms = d.mean_ms + d.spread_ms * self.standard_normal();
                Duration::from_secs_f64(ms.max(0.0) / 1000.0)
            }
            None => Duration::ZERO,
        }
    }

    /// One draw from N(0, 1) (Box–Muller).
    fn standard_normal(&mut self) -> f64 {
        let unit = |r: &mut ChaCha8Rng| ((r.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let (u1, u2) = (unit(&mut self.rng), unit(&mut self.rng));
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Waits `delay`, unless `cut` says the card left first: `false` then.
/// Sleeps in short steps so that a removal ends the wait within a few
/// milliseconds, and the last step to the deadline exactly.
pub fn wait(delay: Duration, cut: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + delay;
    loop {
        if cut() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFY: [u8; 13] = [
        0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF,
    ];
    /// GENERAL AUTHENTICATE, P-256 in 9A, a 32-byte challenge.
    fn sign_p256() -> Vec<u8> {
        let mut data = vec![0x7C, 0x24, 0x82, 0x00, 0x81, 0x20];
        data.extend([0x5A; 32]);
        [&[0x00, 0x87, 0x11, 0x9A, data.len() as u8][..], &data].concat()
    }

    #[test]
    fn every_built_in_profile_parses() {
        for (name, text) in BUILT_IN {
            let p = Profile::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.name, name);
        }
    }

    #[test]
    fn rules_match_by_leading_words_and_algorithm() {
        let p = Profile::load("yubikey5").unwrap();
        assert_eq!(p.delay_for(&VERIFY).unwrap().mean_ms, 9.0);
        assert_eq!(p.delay_for(&sign_p256()).unwrap().mean_ms, 72.0);
        // The same command with RSA-2048's byte is not the P-256 rule.
        let mut rsa = sign_p256();
        rsa[2] = 0x07;
        assert_eq!(p.delay_for(&rsa).unwrap().mean_ms, 0.8);
        // A chained part waits the default, the last part the rule.
        let mut part = sign_p256();
        part[0] = 0x10;
        assert_eq!(p.delay_for(&part).unwrap().mean_ms, 0.8);
        let select = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
        assert_eq!(p.delay_for(&select).unwrap().mean_ms, 1.3);
        assert!(names_begin("VERIFY PIN", "VERIFY"));
        assert!(!names_begin("VERIFY PIN", "VERIFY P"));
    }

    #[test]
    fn generate_is_classified_by_its_algorithm() {
        let generate = [0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x07];
        let c = Classified::of(&generate).unwrap();
        assert_eq!(c.algorithm, Some(Algorithm::Rsa2048));
        assert!(c.name.starts_with("GENERATE"));
        let p = Profile::load("javacard").unwrap();
        assert_eq!(p.delay_for(&generate).unwrap().mean_ms, 5100.0);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let e = Profile::parse("name = \"x\"\n[[command]]\nname = \"VERIFY\"\nmean_ms = -1\n")
            .unwrap_err();
        assert!(
            matches!(&e, LatencyError::Delay(what) if what == "VERIFY"),
            "{e}"
        );
        let e = Profile::parse(
            "name = \"x\"\n[[command]]\nname = \"GENERATE\"\nalgorithm = \"RSA-9\"\nmean_ms = 1\n",
        )
        .unwrap_err();
        assert!(
            matches!(&e, LatencyError::Algorithm(a) if a == "RSA-9"),
            "{e}"
        );
        assert!(matches!(
            Profile::parse("name = \"x\"\nmean = 3\n"),
            Err(LatencyError::Syntax(_))
        ));
        assert!(matches!(
            Profile::parse("name = \"x\"\n[[command]]\nname = \"SIGN\"\nmean_ms = 1\n"),
            Err(LatencyError::Name(_))
        ));
        assert!(matches!(
            Profile::load("no-such-profile"),
            Err(LatencyError::NotFound(_))
        ));
    }

    #[test]
    fn seeded_draws_repeat_and_have_the_profile_s_mean_and_spread() {
        let p = Profile::load("yubikey5").unwrap();
        let draws = |seed| {
            let mut l = Latency::new(p.clone(), seed);
            (0..20_000)
                .map(|_| l.draw(&VERIFY).as_secs_f64() * 1000.0)
                .collect::<Vec<f64>>()
        };
        let a = draws(7);
        assert_eq!(a, draws(7));
        assert_ne!(a, draws(8));
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        let sd = (a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / a.len() as f64).sqrt();
        // 20,000 draws: the standard errors are 0.007 ms and 0.005 ms.
        assert!((mean - 9.0).abs() < 0.05, "mean {mean}");
        assert!((sd - 1.0).abs() < 0.05, "sd {sd}");
    }

    #[test]
    fn a_cut_ends_the_wait() {
        assert!(wait(Duration::from_millis(1), || false));
        assert!(!wait(Duration::from_secs(3600), || true));
    }
}
