//! Replays the exchange files against fresh cards: `exchanges.txt` on the
//! Series 9 profile, `exchanges-yubikey.txt` (where the YubiKey profile
//! answers otherwise, and its Management application) on the YubiKey one.

mod common;

use applet::Profile;
use common::*;

#[test]
fn exchange_file() {
    replay(include_str!("data/exchanges.txt"), Profile::Series9, 150);
}

#[test]
fn yubikey_exchange_file() {
    let profile = Profile::YubiKey {
        pin_complexity: false,
    };
    replay(include_str!("data/exchanges-yubikey.txt"), profile, 40);
}

#[test]
fn yubikey_pin_complexity_exchange_file() {
    let profile = Profile::YubiKey {
        pin_complexity: true,
    };
    replay(include_str!("data/exchanges-complexity.txt"), profile, 10);
}

/// Replays `text`, each `==` scenario on a fresh card of `profile`, and
/// checks that it held at least `at_least` exchanges.
fn replay(text: &str, profile: Profile, at_least: usize) {
    let mut card = boot_as(Flash::new(), 1, profile);
    let mut scenario = String::new();
    let mut last = Vec::new();
    let mut exchanges = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let at = format!("line {} ({scenario})", n + 1);
        if let Some(name) = line.strip_prefix("==") {
            scenario = name.trim().to_string();
            card = boot_as(Flash::new(), 1, profile);
        } else if let Some(cmd) = line.strip_prefix('>') {
            last = send(&mut card, &hex(cmd));
            exchanges += 1;
        } else if let Some(expected) = line.strip_prefix('<') {
            let expected = expected.trim();
            if expected == "* 61 XX" {
                assert_eq!(last[last.len() - 2], 0x61, "{at}: more data expected");
            } else if let Some(sw) = expected.strip_prefix('*') {
                assert_eq!(to_hex(&last[last.len() - 2..]), to_hex(&hex(sw)), "{at}");
            } else {
                assert_eq!(to_hex(&last), to_hex(&hex(expected)), "{at}");
            }
        } else if let Some(args) = line.strip_prefix("@admin") {
            let args: Vec<&str> = args.split_whitespace().collect();
            let status = match args[..] {
                [] => {
                    let alg = match profile {
                        Profile::Series9 => 0x03,
                        Profile::YubiKey { .. } => 0x0A,
                    };
                    admin_auth(&mut card, alg, &DEFAULT_MGM)
                }
                [alg, key] => {
                    admin_auth(&mut card, u8::from_str_radix(alg, 16).unwrap(), &hex(key))
                }
                _ => panic!("{at}: @admin takes nothing or ALG KEY"),
            };
            assert_eq!(status, 0x9000, "{at}");
            exchanges += 2;
        } else if line == "! reset" {
            card.warm_reset();
        } else {
            assert!(
                line.is_empty() || line.starts_with('#'),
                "{at}: cannot read {line:?}"
            );
        }
    }
    println!("PIV exchange vectors ({profile:?}): {exchanges} exchanges replayed");
    assert!(
        exchanges >= at_least,
        "the vector file has only {exchanges} exchanges"
    );
}
