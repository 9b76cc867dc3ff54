//! Sealed records changed on flash: every bit of every sealed record of a
//! personalised card flipped in turn (rewritten with a valid store entry,
//! as an attacker with the flash would, since the store's CRC is no MAC).
//! The card must notice every flip, answer `65 81` where the secret is
//! needed, never use the record (no signature, no authentication, no
//! staged key installed), and never move a retry counter. Records cut to
//! any length, and the card booted with another device key, likewise.

mod common;

use applet::layout;
use applet::slot::Slot;
use card_os::store::{Key, Op};
use common::*;

const PIN: &[u8] = b"482915";
const SLOTS: [u8; 4] = [0x9A, 0x9C, 0x9D, 0x9E];

/// A personalised card: PIN changed, keys in 9A 9C 9D 9E, a renewal key
/// staged for 9A; the PIN verified and the management key authenticated.
fn personalised() -> PivCard {
    let mut card = fresh();
    let mut change = vec![0x00, 0x24, 0x00, 0x80, 0x10];
    change.extend_from_slice(&padded(b"123456"));
    change.extend_from_slice(&padded(PIN));
    assert_eq!(sw(&send(&mut card, &change)), 0x9000);
    admin_default(&mut card);
    for slot in SLOTS {
        generate(&mut card, slot);
    }
    assert_eq!(verify(&mut card, PIN), 0x9000);
    let (_, s) = exchange(&mut card, [0x00, 0xE0, 0x00, 0x9A], &hex("AC03800111"));
    assert_eq!(s, 0x9000);
    card
}

fn read(card: &mut PivCard, key: Key) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let value = card.store_mut().read_value(key, &mut buf).unwrap();
    value.expect("record present").to_vec()
}

fn put(card: &mut PivCard, key: Key, value: &[u8]) {
    card.store_mut().commit(&[Op::Put(key, value)]).unwrap();
}

fn counters(card: &mut PivCard) -> (Vec<u8>, Vec<u8>) {
    (read(card, layout::PIN_TRIES), read(card, layout::PUK_TRIES))
}

struct Probe {
    name: String,
    key: Key,
    /// The command that needs the record's secret.
    apdu: Vec<u8>,
}

fn probes(card: &mut PivCard) -> Vec<Probe> {
    let mut digest = vec![0x7C, 0x24, 0x82, 0x00, 0x81, 0x20];
    digest.extend([0x42; 32]);
    let mut probes = vec![
        Probe {
            name: "identity (PIN hashing key)".into(),
            key: layout::CARD,
            apdu: [&[0x00, 0x20, 0x00, 0x80, 0x08][..], &padded(PIN)].concat(),
        },
        Probe {
            name: "management key".into(),
            key: layout::ADMIN,
            apdu: hex("0087039B047C028100"),
        },
        Probe {
            name: "attestation key F9".into(),
            key: layout::slot_key(Slot::Attestation),
            apdu: hex("00F99A0000"),
        },
        Probe {
            name: "staged 9A".into(),
            key: layout::staged_key(Slot::from_byte(0x9A).unwrap()),
            // With the staged key's own certificate, so that the untouched
            // record commits.
            apdu: {
                let object = staged_certificate(card, Slot::Authentication, 0);
                let data = der(0x53, &object);
                [vec![0x00, 0xE1, 0x00, 0x9A, data.len() as u8], data].concat()
            },
        },
    ];
    for slot in SLOTS {
        let mut apdu = vec![0x00, 0x87, 0x11, slot, digest.len() as u8];
        apdu.extend_from_slice(&digest);
        probes.push(Probe {
            name: format!("slot {slot:02X}"),
            key: layout::slot_key(Slot::from_byte(slot).unwrap()),
            apdu,
        });
    }
    probes
}

#[test]
fn every_flipped_bit_of_every_sealed_record_is_refused() {
    let mut card = personalised();
    let before = counters(&mut card);
    let slot_9a = read(&mut card, layout::slot_key(Slot::from_byte(0x9A).unwrap()));
    let (mut tried, mut detected) = (0usize, 0usize);
    for probe in probes(&mut card) {
        let original = read(&mut card, probe.key);
        for bit in 0..original.len() * 8 {
            let mut flipped = original.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            put(&mut card, probe.key, &flipped);
            let rsp = send(&mut card, &probe.apdu);
            tried += 1;
            if rsp == [0x65, 0x81] {
                detected += 1;
            } else {
                panic!(
                    "{}: bit {bit} flipped answered {}",
                    probe.name,
                    to_hex(&rsp)
                );
            }
            assert_eq!(
                counters(&mut card),
                before,
                "{}: bit {bit} moved a counter",
                probe.name
            );
            put(&mut card, probe.key, &original);
        }
    }
    assert_eq!(
        read(&mut card, layout::slot_key(Slot::from_byte(0x9A).unwrap())),
        slot_9a,
        "no tampered staged key was installed"
    );
    println!("sealed-record bit flips: {tried} tried, {detected} detected");
    assert!(
        tried > 7_000,
        "every bit of {} records",
        probes(&mut card).len()
    );

    // Untouched, every probe works: the refusals above were the seal's.
    for probe in probes(&mut card) {
        assert_eq!(verify(&mut card, PIN), 0x9000);
        let rsp = send(&mut card, &probe.apdu);
        let ok = sw(&rsp) == 0x9000 || sw(&rsp) >> 8 == 0x61;
        assert!(ok, "{} untouched: {}", probe.name, to_hex(&rsp));
    }
}

/// A record of any other length is refused the same way, without a panic.
#[test]
fn records_of_any_length_are_refused() {
    let mut card = personalised();
    let before = counters(&mut card);
    for probe in probes(&mut card) {
        let original = read(&mut card, probe.key);
        for len in (0..original.len()).chain([original.len() + 1, original.len() + 40]) {
            let mut cut = original.clone();
            cut.resize(len, 0);
            put(&mut card, probe.key, &cut);
            let rsp = send(&mut card, &probe.apdu);
            assert_eq!(rsp, [0x65, 0x81], "{} cut to {len}", probe.name);
            assert_eq!(counters(&mut card), before);
        }
        put(&mut card, probe.key, &original);
    }
}

/// The same flash under another device key: nothing opens, no try is lost.
#[test]
fn another_device_key_opens_nothing() {
    use card_os::{Card, atr};
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;
    let mut card = personalised();
    let probes = probes(&mut card);
    let (flash, _, _) = card.into_parts();
    let mut other = Card::<_, ChaCha8Rng, (applet::Piv, Option<applet::Management>)>::boot(
        flash,
        ChaCha8Rng::seed_from_u64(9),
        (
            applet::Piv::new(applet::DeviceKey::new([0xA7; 32]), true),
            None,
        ),
        atr::t1(b"\x80\x73\xC0\x21\xC0\x57S9CARDV").unwrap(),
    )
    .unwrap();
    other.power_on();
    let before = counters(&mut other);
    assert_eq!(send(&mut other, &hex(SELECT)), [0x65, 0x81]);
    // The failed SELECT leaves no application selected (`69 85`).
    for probe in probes {
        let rsp = send(&mut other, &probe.apdu);
        assert!(
            rsp == [0x65, 0x81] || rsp == [0x69, 0x85],
            "{}: {rsp:02X?}",
            probe.name
        );
    }
    assert_eq!(counters(&mut other), before);
}

/// A flash writer deletes the identity record so that the card takes its
/// factory state again: the factory PIN, PUK and management key come back,
/// but the keys go with the old identity (0457aa2 kept them, and the
/// default PIN then signed with the holder's 9A key).
#[test]
fn a_deleted_identity_takes_every_key_with_it() {
    let mut card = personalised();
    card.store_mut()
        .commit(&[Op::Delete(layout::CARD)])
        .unwrap();
    card.power_off();
    card.power_on();
    assert_eq!(sw(&send(&mut card, &hex(SELECT))), 0x9000);
    // The factory state: the default PIN works again...
    assert_eq!(verify(&mut card, b"123456"), 0x9000);
    // ...and no slot holds a key, staged or not.
    for slot in SLOTS {
        let meta = send(&mut card, &hex(&format!("00F700{slot:02X}00")));
        assert_eq!(sw(&meta), 0x6A88, "slot {slot:02X} kept its key");
    }
    let mut buf = vec![0u8; 4096];
    for slot in [Slot::Authentication, Slot::Signature] {
        for key in [layout::slot_key(slot), layout::staged_key(slot)] {
            assert_eq!(card.store_mut().read_value(key, &mut buf).unwrap(), None);
        }
    }
}

/// A retry counter written by hand is not taken: more tries than the card
/// gave, the other passcode's counter moved over, or the plain two-byte
/// record 0457aa2 kept (which anyone with the flash could set to 15). The
/// card answers `65 81` and moves nothing; the genuine record works again.
#[test]
fn a_forged_retry_counter_is_refused_and_never_moved() {
    let mut card = personalised();
    let (pin, puk) = counters(&mut card);
    let mut more = pin.clone();
    more[0] = 15;
    more[1] = 15;
    for forged in [more, vec![15, 15], puk.clone()] {
        put(&mut card, layout::PIN_TRIES, &forged);
        assert_eq!(verify(&mut card, b"000000"), 0x6581, "{forged:02X?}");
        assert_eq!(verify(&mut card, PIN), 0x6581, "{forged:02X?}");
        assert_eq!(sw(&send(&mut card, &hex("0020008000"))), 0x6581);
        assert_eq!(read(&mut card, layout::PIN_TRIES), forged, "moved");
    }
    put(&mut card, layout::PIN_TRIES, &pin);
    assert_eq!(verify(&mut card, PIN), 0x9000);
    assert_eq!(counters(&mut card), (pin, puk));
}
