//! Replays `tests/data/exchanges.txt` against fresh cards.

mod common;

use common::*;

#[test]
fn exchange_file() {
    let text = include_str!("data/exchanges.txt");
    let mut card = boot_on(Flash::new(), 1);
    let mut scenario = String::new();
    let mut last = Vec::new();
    let mut exchanges = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let at = format!("line {} ({scenario})", n + 1);
        if let Some(name) = line.strip_prefix("==") {
            scenario = name.trim().to_string();
            card = boot_on(Flash::new(), 1);
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
                [] => admin_auth(&mut card, 0x03, &DEFAULT_MGM),
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
    println!("PIV exchange vectors: {exchanges} exchanges replayed");
    assert!(
        exchanges >= 150,
        "the vector file has only {exchanges} exchanges"
    );
}
