//! Power cuts during every state-changing PIV command.
//!
//! Each scenario runs once uncut to learn how many flash operations the
//! command performs, then once per operation with the power cut during it.
//! After a reboot the store must hold the state before the command, the
//! state after it, or (for commands that check a passcode) the state before
//! it with one try spent: never a mix, never a try given back. The card must
//! then still answer.

mod common;

use std::collections::BTreeMap;

use applet::Profile;
use card_os::store::Store;
use card_os::testing::{TearingFlash, for_each_record};
use common::*;

type Torn = TearingFlash<Flash>;
type Dump = BTreeMap<u16, Vec<u8>>;

const PIN_TRIES: u16 = 0x0011;
/// Ways each operation is torn (how much of it happened, half-written words).
const WAYS: u64 = 4;
const PUK_TRIES: u16 = 0x0013;
const PAIRING_TRIES: u16 = 0x0016;
/// Every retry counter.
const COUNTERS: [u16; 3] = [PIN_TRIES, PUK_TRIES, PAIRING_TRIES];

fn dump(flash: &Flash) -> Dump {
    let mut store: Store<Flash> = Store::mount(flash.clone()).unwrap();
    let mut all = BTreeMap::new();
    for_each_record(&mut store, &mut [0; 4096], |k, v| {
        all.insert(k, v.to_vec());
    })
    .unwrap();
    all
}

/// A state as the checks compare it: a retry counter by its counts alone.
/// Its tag is over the counts under the card's secret passcode key, which
/// the test does not have; the rebooted card's acceptance of every counter
/// (below) is what shows each tag right.
fn counts_only(state: &Dump) -> Dump {
    let mut s = state.clone();
    for key in COUNTERS {
        if let Some(record) = s.get_mut(&key) {
            record.truncate(2);
        }
    }
    s
}

/// `state` with one try taken off the counter under `key`.
fn spent(state: &Dump, key: u16) -> Dump {
    let mut s = state.clone();
    let tries = s.get_mut(&key).unwrap();
    tries[0] -= 1;
    s
}

struct Scenario {
    name: &'static str,
    /// Runs once, uncut, to make the starting card.
    setup: fn(&mut PivCard<Torn>),
    /// Runs before the command in every attempt (authentication…).
    prelude: fn(&mut PivCard<Torn>),
    /// The command; returns its status word (checked only when uncut).
    command: fn(&mut PivCard<Torn>) -> u16,
    expect: u16,
    /// Counters a passcode check may leave spent.
    checks: &'static [u16],
}

fn nothing(_: &mut PivCard<Torn>) {}

fn admin(card: &mut PivCard<Torn>) {
    admin_default(card);
}

fn admin_and_pin(card: &mut PivCard<Torn>) {
    admin_default(card);
    assert_eq!(verify(card, b"123456"), 0x9000);
}

fn with_key_9a(card: &mut PivCard<Torn>) {
    admin_default(card);
    generate(card, 0x9A);
}

fn both_blocked(card: &mut PivCard<Torn>) {
    for _ in 0..3 {
        verify(card, b"000001");
    }
    let mut apdu = hex("002C008010");
    apdu.extend(padded(b"00000000"));
    apdu.extend(padded(b"482915"));
    for _ in 0..3 {
        send(card, &apdu);
    }
}

fn staged_9a(card: &mut PivCard<Torn>) {
    admin_and_pin(card);
    generate(card, 0x9A);
    exchange(card, [0x00, 0xE0, 0x00, 0x9A], &hex("AC03800111"));
}

fn with_rsa_9a(card: &mut PivCard<Torn>) {
    admin_default(card);
    assert_eq!(
        exchange(card, [0x00, 0xFE, 0x07, 0x9A], &rsa2048_import()).1,
        0x9000
    );
}

fn with_ed25519_9a(card: &mut PivCard<Torn>) {
    admin_default(card);
    assert_eq!(
        exchange(card, [0x00, 0x47, 0x00, 0x9A], &hex("AC038001E0")).1,
        0x9000
    );
}

fn staged_rsa_9a(card: &mut PivCard<Torn>) {
    with_rsa_9a(card);
    assert_eq!(verify(card, b"123456"), 0x9000);
    assert_eq!(
        exchange(card, [0x00, 0xE0, 0x00, 0x9A], &hex("AC03800107")).1,
        0x9000
    );
}

fn staged_ed25519_9a(card: &mut PivCard<Torn>) {
    with_ed25519_9a(card);
    assert_eq!(verify(card, b"123456"), 0x9000);
    assert_eq!(
        exchange(card, [0x00, 0xE0, 0x00, 0x9A], &hex("AC038001E0")).1,
        0x9000
    );
}

fn staged_9d(card: &mut PivCard<Torn>) {
    admin_and_pin(card);
    generate(card, 0x9D);
    exchange(card, [0x00, 0xE0, 0x00, 0x9D], &hex("AC03800111"));
}

/// COMMIT RENEWAL of 9D keeping the old key in retired slot 82, with the
/// Key History object that counts it.
fn commit_renewal_retiring(c: &mut PivCard<Torn>) -> u16 {
    let certificate = staged_certificate(c, applet::slot::Slot::KeyManagement, 1200);
    let data = [der(0x53, &certificate), der(0x53, &hex("C10101C20100FE00"))].concat();
    exchange(c, [0x00, 0xE1, 0x82, 0x9D], &data).1
}

fn commit_renewal(c: &mut PivCard<Torn>) -> u16 {
    let data = der(0x53, &certificate(c));
    exchange(c, [0x00, 0xE1, 0x00, 0x9A], &data).1
}

/// The staged 9A key's certificate object, about 1.5 KB, as a real one is.
fn certificate(c: &mut PivCard<Torn>) -> Vec<u8> {
    staged_certificate(c, applet::slot::Slot::Authentication, 1200)
}

/// Rewrites objects until the store is one small write away from collecting
/// garbage, and returns the flash as it was just before that write.
fn crowd(card: &mut PivCard<Torn>) -> Flash {
    admin_default(card);
    let put = |card: &mut PivCard<Torn>, tag: &str, len: usize, fill: u8| {
        let erases = card.store().flash().inner().erase_ops();
        let mut data = hex(&format!("5C03{tag}5382"));
        data.extend((len as u16).to_be_bytes());
        data.extend(vec![fill; len]);
        assert_eq!(exchange(card, [0x00, 0xDB, 0x3F, 0xFF], &data).1, 0x9000);
        card.store().flash().inner().erase_ops() > erases
    };
    // Large rewrites until the log wraps round once…
    let mut i = 0usize;
    while !put(card, "5FC10D", 1000 + (i % 7) * 300, i as u8) {
        i += 1;
    }
    // …then ones as small as a counter record until the next would collect.
    for j in 0usize.. {
        let snapshot = card.store().flash().inner().clone();
        if put(card, "5FC10E", 1, j as u8) {
            return snapshot;
        }
    }
    unreachable!()
}

fn run(s: &Scenario, crowded: bool, profile: Profile) -> usize {
    let boot_on = |flash, seed| boot_as(flash, seed, profile);
    // The starting card.
    let mut card = boot_on(Torn::new(Flash::new(), None, 0), 7);
    send(&mut card, &hex(SELECT));
    (s.setup)(&mut card);
    let base = if crowded {
        crowd(&mut card)
    } else {
        card.into_parts().0.into_inner()
    };

    // Uncut: learn the states and the number of operations.
    let mut card = boot_on(Torn::new(base.clone(), None, 0), 9);
    send(&mut card, &hex(SELECT));
    (s.prelude)(&mut card);
    let before = card.store().flash().ops();
    let old = dump(card.store().flash().inner());
    assert_eq!((s.command)(&mut card), s.expect, "{}: uncut status", s.name);
    let total = card.store().flash().ops();
    let new = dump(card.store().flash().inner());
    assert!(total > before, "{}: the command wrote nothing", s.name);
    let mut allowed = vec![old.clone(), new];
    allowed.extend(s.checks.iter().map(|&k| spent(&old, k)));
    let allowed: Vec<Dump> = allowed.iter().map(counts_only).collect();

    let mut cuts = 0;
    for n in before..total {
        for way in 0..WAYS {
            let mut card = boot_on(
                Torn::new(base.clone(), Some(n), u64::from(n) * WAYS + way),
                9,
            );
            send(&mut card, &hex(SELECT));
            (s.prelude)(&mut card);
            let status = (s.command)(&mut card);
            assert!(
                status == 0x6581 || status == s.expect,
                "{}: {status:04X}",
                s.name
            );
            let flash = card.into_parts().0;
            assert!(flash.is_cut(), "{}: op {n} was not reached", s.name);
            let flash = flash.into_inner();
            let state = counts_only(&dump(&flash));
            assert!(
                allowed.contains(&state),
                "{}: cut at op {} leaves a mixed state",
                s.name,
                n - before
            );
            // Only the completed command (a right PUK, say) may restore tries.
            if state != allowed[1] {
                for k in COUNTERS.iter().filter(|k| old.contains_key(k)) {
                    assert!(
                        state[k][0] <= old[k][0],
                        "{}: cut at op {} gave a try back",
                        s.name,
                        n - before
                    );
                }
            }
            let mut rebooted = boot_as(flash, 11, profile);
            assert_eq!(sw(&send(&mut rebooted, &hex(SELECT))), 0x9000);
            assert_eq!(send(&mut rebooted, &hex("00FD000000")), hex("0507019000"));
            // Both counters' records are ones the card wrote: their tags
            // verify, and GET METADATA reads them.
            for reference in [0x80u8, 0x81] {
                let meta = send(&mut rebooted, &[0x00, 0xF7, 0x00, reference, 0x00]);
                assert_eq!(sw(&meta), 0x9000, "{}: counter {reference:02X}", s.name);
            }
            cuts += 1;
        }
    }
    cuts
}

/// The right PIN, in every profile: the try is committed, then given back.
const VERIFY_RIGHT: Scenario = Scenario {
    name: "VERIFY right",
    setup: nothing,
    prelude: nothing,
    checks: &[PIN_TRIES],
    expect: 0x9000,
    command: |c| verify(c, b"123456"),
};

/// Key `04` and its CVC.
fn with_sm_key(card: &mut PivCard<Torn>) {
    common::sm::personalise(card, client::Suite::Cs2);
}

/// Key `04`, its CVC, and a pairing code, as an issuer leaves a card.
fn with_pairing_code(card: &mut PivCard<Torn>) {
    common::sm::personalise(card, client::Suite::Cs2);
    let content = [der(0x99, b"12345678"), hex("FE00")].concat();
    assert_eq!(common::sm::put(card, [0x5F, 0xC1, 0x23], &content), 0x9000);
}

/// VERIFY of the pairing code in a fresh secure messaging session (whose
/// establishment writes nothing); its status word, as the card put it
/// inside the session's answer.
fn verify_pairing_code(card: &mut PivCard<Torn>, code: &[u8; 8]) -> u16 {
    let mut piv = client::PivClient::new(card);
    piv.open_secure_messaging(client::Suite::Cs2, None).unwrap();
    piv.exchange([0x00, 0x20, 0x00, 0x98], code).unwrap().1
}

/// Key establishment changes nothing on flash (the session lives in RAM),
/// so no cut during it can leave anything half-written: it performs no
/// flash operation at all, as a protected command's unwrapping does not.
#[test]
fn key_establishment_writes_nothing() {
    let mut card = boot_as(Torn::new(Flash::new(), None, 0), 7, Profile::Series9);
    send(&mut card, &hex(SELECT));
    with_pairing_code(&mut card);
    let before = card.store().flash().ops();
    let mut piv = client::PivClient::new(&mut card);
    piv.open_secure_messaging(client::Suite::Cs2, None).unwrap();
    piv.exchange([0x00, 0xCB, 0x3F, 0xFF], &hex("5C035FC102"))
        .unwrap();
    piv.open_secure_messaging(client::Suite::Cs2, None).unwrap();
    drop(piv);
    assert_eq!(card.store().flash().ops(), before, "flash operations");
}

#[test]
fn every_state_changing_command_survives_a_cut_at_every_operation() {
    let scenarios = [
        VERIFY_RIGHT,
        Scenario {
            name: "VERIFY pairing code right",
            setup: with_pairing_code,
            prelude: nothing,
            checks: &[PAIRING_TRIES],
            expect: 0x9000,
            command: |c| verify_pairing_code(c, b"12345678"),
        },
        Scenario {
            name: "VERIFY pairing code wrong",
            setup: with_pairing_code,
            prelude: nothing,
            checks: &[],
            expect: 0x63C4,
            command: |c| verify_pairing_code(c, b"00000000"),
        },
        Scenario {
            name: "CHANGE pairing code",
            setup: with_pairing_code,
            prelude: nothing,
            checks: &[PAIRING_TRIES],
            expect: 0x9000,
            command: |c| {
                let mut piv = client::PivClient::new(c);
                piv.open_secure_messaging(client::Suite::Cs2, None).unwrap();
                piv.exchange([0x00, 0x24, 0x00, 0x98], b"1234567824681357")
                    .unwrap()
                    .1
            },
        },
        Scenario {
            name: "PUT DATA pairing code",
            setup: with_sm_key,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| {
                let content = [der(0x99, b"12345678"), hex("FE00")].concat();
                common::sm::put(c, [0x5F, 0xC1, 0x23], &content)
            },
        },
        Scenario {
            name: "VERIFY wrong",
            setup: nothing,
            prelude: nothing,
            checks: &[],
            expect: 0x63C2,
            command: |c| verify(c, b"654321"),
        },
        Scenario {
            name: "CHANGE PIN",
            setup: nothing,
            prelude: nothing,
            checks: &[PIN_TRIES],
            expect: 0x9000,
            command: |c| {
                let mut apdu = hex("0024008010");
                apdu.extend(padded(b"123456"));
                apdu.extend(padded(b"482915"));
                sw(&send(c, &apdu))
            },
        },
        Scenario {
            name: "CHANGE PUK",
            setup: nothing,
            prelude: nothing,
            checks: &[PUK_TRIES],
            expect: 0x9000,
            command: |c| {
                let mut apdu = hex("0024008110");
                apdu.extend(padded(b"12345678"));
                apdu.extend(padded(b"87654321"));
                sw(&send(c, &apdu))
            },
        },
        Scenario {
            name: "RESET RETRY COUNTER",
            setup: |c| {
                for _ in 0..3 {
                    verify(c, b"000001");
                }
            },
            prelude: nothing,
            checks: &[PUK_TRIES],
            expect: 0x9000,
            command: |c| {
                let mut apdu = hex("002C008010");
                apdu.extend(padded(b"12345678"));
                apdu.extend(padded(b"482915"));
                sw(&send(c, &apdu))
            },
        },
        Scenario {
            name: "GENERATE",
            setup: nothing,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| exchange(c, [0x00, 0x47, 0x00, 0x9A], &hex("AC03800111")).1,
        },
        Scenario {
            name: "IMPORT",
            setup: nothing,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| {
                let data =
                    hex("0620C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721");
                exchange(c, [0x00, 0xFE, 0x11, 0x9D], &data).1
            },
        },
        Scenario {
            name: "PUT DATA (chained 1.5 KiB)",
            setup: nothing,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| {
                // Any bytes: PUT DATA does not read a certificate object.
                let mut object = vec![0x70, 0x82, 0x05, 0xDC];
                object.extend((0..1500).map(|i| (i * 13 % 256) as u8));
                object.extend(hex("710100"));
                let mut data = hex("5C035FC105538205E3");
                data.extend(&object);
                exchange(c, [0x00, 0xDB, 0x3F, 0xFF], &data).1
            },
        },
        Scenario {
            name: "SET MANAGEMENT KEY",
            setup: nothing,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| {
                sw(&send(
                    c,
                    &hex(
                        "00FFFFFF230C9B20000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
                    ),
                ))
            },
        },
        Scenario {
            name: "SET PIN RETRIES",
            setup: nothing,
            prelude: admin_and_pin,
            checks: &[],
            expect: 0x9000,
            command: |c| sw(&send(c, &hex("00FA0708"))),
        },
        Scenario {
            name: "RESET",
            setup: |c| {
                with_key_9a(c);
                both_blocked(c);
            },
            prelude: nothing,
            checks: &[],
            expect: 0x9000,
            command: |c| sw(&send(c, &hex("00FB0000"))),
        },
        Scenario {
            name: "MOVE KEY",
            setup: with_key_9a,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| sw(&send(c, &hex("00F6829A"))),
        },
        Scenario {
            name: "DELETE KEY",
            setup: with_key_9a,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| sw(&send(c, &hex("00F6FF9A"))),
        },
        Scenario {
            name: "STAGE KEY",
            setup: with_key_9a,
            prelude: admin_and_pin,
            checks: &[],
            expect: 0x9000,
            command: |c| exchange(c, [0x00, 0xE0, 0x00, 0x9A], &hex("AC03800111")).1,
        },
        Scenario {
            name: "SET SERIAL",
            setup: nothing,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| sw(&send(c, &hex("00E400000436354C42"))),
        },
        Scenario {
            name: "COMMIT RENEWAL",
            setup: staged_9a,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: commit_renewal,
        },
        Scenario {
            name: "COMMIT RENEWAL retiring 9D",
            setup: staged_9d,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: commit_renewal_retiring,
        },
        // The other algorithms' records: an RSA-2048 key's is 941 bytes,
        // many flash words more than a P-256 key's 142.
        Scenario {
            name: "GENERATE RSA-2048",
            setup: nothing,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| exchange(c, [0x00, 0x47, 0x00, 0x9A], &hex("AC03800107")).1,
        },
        Scenario {
            name: "GENERATE Ed25519",
            setup: nothing,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| exchange(c, [0x00, 0x47, 0x00, 0x9A], &hex("AC038001E0")).1,
        },
        Scenario {
            name: "IMPORT RSA-2048",
            setup: nothing,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| exchange(c, [0x00, 0xFE, 0x07, 0x9D], &rsa2048_import()).1,
        },
        Scenario {
            name: "IMPORT Ed25519",
            setup: nothing,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| {
                let data =
                    hex("07209D61B19DEFFD5A60BA844AF492EC2CC44449C5697B326919703BAC031CAE7F60");
                exchange(c, [0x00, 0xFE, 0xE0, 0x9D], &data).1
            },
        },
        Scenario {
            name: "MOVE KEY RSA-2048",
            setup: with_rsa_9a,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| sw(&send(c, &hex("00F6829A"))),
        },
        Scenario {
            name: "MOVE KEY Ed25519",
            setup: with_ed25519_9a,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| sw(&send(c, &hex("00F6829A"))),
        },
        Scenario {
            name: "COMMIT RENEWAL RSA-2048",
            setup: staged_rsa_9a,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: commit_renewal,
        },
        Scenario {
            name: "COMMIT RENEWAL Ed25519",
            setup: staged_ed25519_9a,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: commit_renewal,
        },
    ];
    let (total, grew) = run_all(&scenarios, Profile::Series9);
    println!(
        "PIV tear tests: {total} cut points over {} commands ({WAYS} ways per operation)",
        scenarios.len()
    );
    assert!(
        grew >= scenarios.len() - 3,
        "the crowded store rarely collected during the command"
    );
}

/// Runs each scenario on a fresh store and on a crowded one; the cut
/// points, and how many commands the crowded store made collect.
fn run_all(scenarios: &[Scenario], profile: Profile) -> (usize, usize) {
    let mut total = 0;
    let mut grew = 0;
    println!("  {:<36} {:>6} {:>9}", "command", "fresh", "crowded");
    for s in scenarios {
        let fresh = run(s, false, profile);
        // The same command on a store that must collect garbage to make room.
        let crowded = run(s, true, profile);
        println!("  {:<36} {fresh:>6} {crowded:>9}", s.name);
        assert!(fresh >= 1, "{}: no flash operation to cut", s.name);
        // A prelude that writes (VERIFY) may collect before the command does.
        assert!(
            crowded >= fresh,
            "{}: fewer operations on a crowded store",
            s.name
        );
        grew += usize::from(crowded > fresh);
        total += fresh + crowded;
    }
    (total, grew)
}

/// CHANGE REFERENCE DATA of `reference` from `old` to `new`, each padded.
fn change(reference: u8, old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut apdu = vec![0x00, 0x24, 0x00, reference, 0x10];
    apdu.extend(padded(old));
    apdu.extend(padded(new));
    apdu
}

/// The YubiKey profile's own passcode paths: any 8 bytes are a presented
/// value (a PIN of the wrong length is a wrong try), the old value is
/// checked before the new one's form, and PIN complexity refuses a new
/// value after a right old one. Each commits its try first, as VERIFY does.
#[test]
fn yubikey_passcode_paths_survive_a_cut_at_every_operation() {
    let scenarios = [
        Scenario {
            name: "VERIFY of the wrong length",
            setup: nothing,
            prelude: nothing,
            checks: &[],
            expect: 0x63C2,
            command: |c| verify(c, b"1234"),
        },
        VERIFY_RIGHT,
        Scenario {
            name: "CHANGE PIN, wrong old, short new",
            setup: nothing,
            prelude: nothing,
            checks: &[],
            expect: 0x63C2,
            command: |c| sw(&send(c, &change(0x80, b"999999", b"1"))),
        },
        Scenario {
            name: "CHANGE PIN, right old, repeated new",
            setup: nothing,
            prelude: nothing,
            checks: &[PIN_TRIES],
            expect: 0x6985,
            command: |c| sw(&send(c, &change(0x80, b"123456", b"111111"))),
        },
        Scenario {
            name: "CHANGE PUK, old of the wrong length",
            setup: nothing,
            prelude: nothing,
            checks: &[],
            expect: 0x63C2,
            command: |c| sw(&send(c, &change(0x81, b"1234", b"87654321"))),
        },
        Scenario {
            name: "GENERATE (AES-192 management key)",
            setup: nothing,
            prelude: admin,
            checks: &[],
            expect: 0x9000,
            command: |c| exchange(c, [0x00, 0x47, 0x00, 0x9A], &hex("AC03800111")).1,
        },
    ];
    let (total, _) = run_all(
        &scenarios,
        Profile::YubiKey {
            pin_complexity: true,
        },
    );
    println!(
        "YubiKey-profile tear tests: {total} cut points over {} commands ({WAYS} ways per operation)",
        scenarios.len()
    );
}

/// The try is on flash before the card knows the answer: with the power cut
/// right after the first write, a right PIN has cost a try just like a wrong
/// one. And both take the same flash writes, two each, so the two cannot be
/// told apart by watching the flash.
#[test]
fn the_counter_is_committed_before_the_comparison() {
    // Several 128 KiB cards at once: more stack than a test thread has.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(counter_first)
        .unwrap()
        .join()
        .unwrap();
}

fn counter_first() {
    let mut card = boot_on(Torn::new(Flash::new(), None, 0), 7);
    send(&mut card, &hex(SELECT));
    let base = card.into_parts().0.into_inner();
    for pin in [&b"123456"[..], b"654321"] {
        let mut card = boot_on(Torn::new(base.clone(), None, 0), 9);
        send(&mut card, &hex(SELECT));
        let before = card.store().flash().inner().programs();
        verify(&mut card, pin);
        let programs = card.store().flash().inner().programs() - before;
        assert_eq!(
            programs,
            2,
            "VERIFY {} took {programs} programs",
            String::from_utf8_lossy(pin)
        );

        // Cut the power during the second write, whatever it was.
        let mut card = boot_on(Torn::new(base.clone(), None, 0), 9);
        send(&mut card, &hex(SELECT));
        let first = card.store().flash().ops();
        let flash = card.into_parts().0.into_inner();
        let mut card = boot_on(Torn::new(flash, Some(first + 1), 0), 9);
        send(&mut card, &hex(SELECT));
        assert_eq!(verify(&mut card, pin), 0x6581);
        let mut rebooted = boot_on(card.into_parts().0.into_inner(), 11);
        send(&mut rebooted, &hex(SELECT));
        let rsp = send(&mut rebooted, &hex("00F7008000"));
        assert_eq!(
            rsp[rsp.len() - 3],
            2,
            "a try must stay spent for PIN {}",
            String::from_utf8_lossy(pin)
        );
    }
}
