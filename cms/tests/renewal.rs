//! Renewal and sponsor unlock, in process: the window rule at its edges,
//! the flows, and power cut at every flash operation of a whole renewal.

mod common;

use applet::{DeviceKey, Piv};
use card_os::testing::{RamFlash, TearingFlash};
use card_os::{Card, atr};
use client::{ClientError, PivClient, Slot, Status};
use cms::CmsError;
use cms::ca::{self, Role};
use cms::flows::{self, Cms, Request, Window};
use cms::time::{self, DAY};
use common::Flaky;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

type Flash = RamFlash<{ 128 * 1024 }, 4096>;
type Torn = TearingFlash<Flash>;

fn boot(flash: Torn, serial: u32, seed: u64) -> Card<Torn, ChaCha20Rng, (Piv,)> {
    let applet = Piv::new(DeviceKey::new([9; 32]), true).with_factory_serial(serial);
    let mut card = Card::boot(
        flash,
        ChaCha20Rng::seed_from_u64(seed),
        (applet,),
        atr::t1(b"S9CARDV").unwrap(),
    )
    .unwrap();
    card.power_on();
    card
}

fn request_with(uuid: &str, role: Role, algorithm: applet::algorithm::Algorithm) -> Request {
    Request {
        uuid: uuid.into(),
        name: format!("Person {uuid}"),
        email: Some("p@nhs.example".into()),
        mobile: None,
        role,
        passcode: String::from("482915").into(),
        serial: None,
        algorithm,
        secure_messaging: None,
    }
}

fn t0() -> u64 {
    time::parse("2026-11-25").unwrap()
}

/// A CMS directory with one personalised card; returns the card's flash.
fn personalised(dir: &std::path::Path, serial: u32, uuid: &str, role: Role) -> Flash {
    personalised_with(dir, serial, uuid, role, applet::algorithm::Algorithm::P256)
}

fn personalised_with(
    dir: &std::path::Path,
    serial: u32,
    uuid: &str,
    role: Role,
    algorithm: applet::algorithm::Algorithm,
) -> Flash {
    let db = dir.join("cms.db");
    if !db.exists() {
        Cms::init_ca(&db, t0()).unwrap();
    }
    let mut cms = Cms::open(&db).unwrap();
    let mut card = boot(Torn::new(Flash::new(), None, 0), serial, 1);
    flows::personalize(
        &mut cms,
        &mut PivClient::new(&mut card),
        &request_with(uuid, role, algorithm),
        t0(),
    )
    .unwrap();
    card.into_parts().0.into_inner()
}

#[test]
fn the_window_rule_at_its_edges() {
    let expiry = t0() + 730 * DAY;
    assert_eq!(
        flows::window(expiry, expiry - 91 * DAY),
        Window::TooEarly {
            from: expiry - 90 * DAY
        }
    );
    assert_eq!(flows::window(expiry, expiry - 90 * DAY), Window::Open);
    assert_eq!(flows::window(expiry, expiry - DAY), Window::Open);
    assert_eq!(flows::window(expiry, expiry - 1), Window::Open);
    assert_eq!(flows::window(expiry, expiry), Window::Expired);
    assert_eq!(flows::window(expiry, expiry + DAY), Window::Expired);
}

/// Several 128 KiB cards on one stack: more than a test thread has.
fn big_stack(f: fn()) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn renewal_refused_outside_the_window_then_done_inside() {
    big_stack(renewal_window_flow);
}

fn renewal_window_flow() {
    let dir = tempfile::tempdir().unwrap();
    let flash = personalised(dir.path(), 900_000_010, "555000111222", Role::Holder);
    let mut cms = Cms::open(&dir.path().join("cms.db")).unwrap();
    let mut card = boot(Torn::new(flash, None, 0), 900_000_010, 2);
    let mut client = PivClient::new(&mut card);
    let expiry = t0() + 730 * DAY;
    let early = flows::renew(&mut cms, &mut client, b"482915", expiry - 91 * DAY).unwrap_err();
    assert!(
        matches!(early, CmsError::TooEarly { from } if from == expiry - 90 * DAY),
        "{early}"
    );
    assert_eq!(
        early.to_string(),
        format!("renew from {}", time::date(expiry - 90 * DAY))
    );
    let late = flows::renew(&mut cms, &mut client, b"482915", expiry).unwrap_err();
    assert!(matches!(late, CmsError::Expired), "{late}");
    let wrong = flows::renew(&mut cms, &mut client, b"000000", expiry - 10 * DAY).unwrap_err();
    assert!(matches!(wrong, CmsError::PasscodeRefused(2)), "{wrong}");
    let now = expiry - 30 * DAY;
    let old_key = client.public_key(Slot::Authentication).unwrap().unwrap();
    let done = flows::renew(&mut cms, &mut client, b"482915", now).unwrap();
    assert_eq!(done.expiry, now + 730 * DAY);
    assert!(!done.reconciled);
    assert_ne!(
        client.public_key(Slot::Authentication).unwrap().unwrap(),
        old_key
    );
    assert_eq!(
        cms.db.card(900_000_010).unwrap().unwrap().expiry,
        done.expiry
    );
    // Run again: nothing to do but say it is renewed (the window is closed).
    let again = flows::renew(&mut cms, &mut client, b"482915", now).unwrap_err();
    assert!(matches!(again, CmsError::TooEarly { .. }), "{again}");
}

#[test]
fn sponsor_unlock_needs_a_sponsor() {
    big_stack(sponsor_flow);
}

fn sponsor_flow() {
    let dir = tempfile::tempdir().unwrap();
    let sponsor_flash = personalised(dir.path(), 900_000_020, "555000999888", Role::Sponsor);
    let holder_flash = personalised(dir.path(), 900_000_021, "555000111222", Role::Holder);
    let other_flash = personalised(dir.path(), 900_000_022, "555000333444", Role::Holder);
    let mut cms = Cms::open(&dir.path().join("cms.db")).unwrap();
    let mut sponsor = boot(Torn::new(sponsor_flash, None, 0), 900_000_020, 3);
    let mut holder = boot(Torn::new(holder_flash, None, 0), 900_000_021, 4);
    let mut other = boot(Torn::new(other_flash, None, 0), 900_000_022, 5);
    let mut h = PivClient::new(&mut holder);
    h.select().unwrap();
    for _ in 0..3 {
        let _ = h.verify_pin(b"000000");
    }
    assert_eq!(h.tries(0x80).unwrap().0, 0, "locked");
    // A holder is no sponsor; a weak passcode is refused; a wrong sponsor
    // passcode fails.
    let e = flows::sponsor_unlock(
        &mut cms,
        &mut PivClient::new(&mut other),
        b"482915",
        &mut h,
        "731026",
        t0(),
    )
    .unwrap_err();
    assert!(
        matches!(e, CmsError::NotSponsor(ref u) if u == "555000333444"),
        "{e}"
    );
    let e = flows::sponsor_unlock(
        &mut cms,
        &mut PivClient::new(&mut sponsor),
        b"482915",
        &mut h,
        "111111",
        t0(),
    )
    .unwrap_err();
    assert!(matches!(e, CmsError::WeakPasscode), "{e}");
    let e = flows::sponsor_unlock(
        &mut cms,
        &mut PivClient::new(&mut sponsor),
        b"000000",
        &mut h,
        "731026",
        t0(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            CmsError::SponsorPasscode(ClientError::Refused {
                status: Status::VerificationFailed(_),
                ..
            })
        ),
        "{e}"
    );
    // The sponsor unlocks.
    let serial = flows::sponsor_unlock(
        &mut cms,
        &mut PivClient::new(&mut sponsor),
        b"482915",
        &mut h,
        "731026",
        t0(),
    )
    .unwrap();
    assert_eq!(serial, 900_000_021);
    h.verify_pin(b"731026").unwrap();
    let log = cms.db.audit_log().unwrap();
    assert!(
        log.iter()
            .any(|a| a.action == "sponsor unlock" && a.outcome == "refused")
    );
    assert!(
        log.iter()
            .any(|a| a.action == "sponsor unlock" && a.outcome == "ok" && a.serial == Some(serial))
    );
}

#[test]
fn rsa_and_p384_cards_personalise_renew_and_sponsor_with_their_algorithm() {
    big_stack(other_algorithms_flow);
}

fn other_algorithms_flow() {
    use applet::algorithm::Algorithm;
    let dir = tempfile::tempdir().unwrap();
    let sponsor = personalised_with(
        dir.path(),
        900_000_030,
        "555000999777",
        Role::Sponsor,
        Algorithm::Rsa2048,
    );
    let holder = personalised_with(
        dir.path(),
        900_000_031,
        "555000111666",
        Role::Holder,
        Algorithm::P384,
    );
    let mut cms = Cms::open(&dir.path().join("cms.db")).unwrap();
    let mut sponsor = boot(Torn::new(sponsor, None, 0), 900_000_030, 6);
    let mut holder = boot(Torn::new(holder, None, 0), 900_000_031, 7);
    for (card, algorithm) in [
        (&mut sponsor, Algorithm::Rsa2048),
        (&mut holder, Algorithm::P384),
    ] {
        let mut client = PivClient::new(card);
        client.select().unwrap();
        for (slot, object) in flows::SLOTS {
            let (got, _) = client.key_metadata(slot).unwrap().unwrap();
            assert_eq!(got, algorithm, "slot {slot:02X}");
            key_matches_certificate(&cms, &mut client, slot, object);
        }
    }
    // The RSA sponsor card signs the challenge that unlocks the holder.
    let mut h = PivClient::new(&mut holder);
    h.select().unwrap();
    for _ in 0..3 {
        let _ = h.verify_pin(b"000000");
    }
    let serial = flows::sponsor_unlock(
        &mut cms,
        &mut PivClient::new(&mut sponsor),
        b"482915",
        &mut h,
        "731026",
        t0(),
    )
    .unwrap();
    assert_eq!(serial, 900_000_031);
    // Renewal keeps P-384, with new keys matching new certificates.
    let old = h.public_key(Slot::Authentication).unwrap().unwrap();
    let now = t0() + 700 * DAY;
    flows::renew(&mut cms, &mut h, b"731026", now).unwrap();
    assert_ne!(h.public_key(Slot::Authentication).unwrap().unwrap(), old);
    for (slot, object) in flows::SLOTS {
        assert_eq!(h.key_metadata(slot).unwrap().unwrap().0, Algorithm::P384);
        let content = h.get_object(object).unwrap().unwrap();
        let info = ca::inspect(&cms.ca, client::unwrap_tlv(&content, 0x70).unwrap()).unwrap();
        assert_eq!(info.not_after, now + 730 * DAY);
        h.verify_pin(b"731026").unwrap();
        let digest = [0x5A; 32];
        let sig = h
            .private_operation(
                slot,
                info.key.algorithm,
                0x81,
                &info.key.to_sign(&digest).unwrap(),
            )
            .unwrap();
        info.key.verify(&digest, &sig).unwrap();
    }
}

/// Every slot's key must match its certificate: sign with the card, verify
/// with the certified key.
fn key_matches_certificate(
    cms: &Cms,
    card: &mut PivClient<&mut Card<Torn, ChaCha20Rng, (Piv,)>>,
    slot: Slot,
    object: u32,
) -> u64 {
    let content = card.get_object(object).unwrap().unwrap();
    let info = ca::inspect(&cms.ca, client::unwrap_tlv(&content, 0x70).unwrap()).unwrap();
    card.verify_pin(b"482915").unwrap();
    let digest = [slot.byte(); 32];
    let key = &info.key;
    let sig = card
        .private_operation(slot, key.algorithm, 0x81, &key.to_sign(&digest).unwrap())
        .unwrap();
    key.verify(&digest, &sig)
        .unwrap_or_else(|_| panic!("slot {slot:02X}: key without its certificate"));
    info.not_after
}

#[test]
fn a_renewal_cut_at_every_flash_operation_keeps_keys_and_certificates_paired() {
    big_stack(tear_renewal);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn tear_renewal() {
    let base_dir = tempfile::tempdir().unwrap();
    let serial = 900_000_030;
    let base = personalised(base_dir.path(), serial, "555000111222", Role::Holder);
    let old_expiry = t0() + 730 * DAY;
    let now = old_expiry - 30 * DAY;
    let new_expiry = now + 730 * DAY;

    // The certificates' sizes vary by a byte or two (random serials, DER
    // signatures), so the number of flash operations does too: cut at
    // operation 0, 1, 2… until a renewal completes before the cut.
    let before = boot(Torn::new(base.clone(), None, 0), serial, 7)
        .store()
        .flash()
        .ops();
    let mut cuts = 0;
    'cuts: for n in 0u32.. {
        for way in 0..4u64 {
            let work = tempfile::tempdir().unwrap();
            copy_dir(base_dir.path(), work.path());
            let mut cms = Cms::open(&work.path().join("cms.db")).unwrap();
            let mut card = boot(
                Torn::new(base.clone(), Some(before + n), u64::from(n) * 4 + way),
                serial,
                7,
            );
            let result = flows::renew(&mut cms, &mut PivClient::new(&mut card), b"482915", now);
            let flash = card.into_parts().0;
            if !flash.is_cut() {
                assert_eq!(result.map(|r| r.expiry).ok(), Some(new_expiry));
                break 'cuts;
            }
            assert!(
                result.is_err(),
                "cut {n}: a renewal cut short reported success"
            );
            cuts += 1;
            // Power back: every key still has its own certificate, old or new.
            let mut card = boot(Torn::new(flash.into_inner(), None, 0), serial, 8);
            let mut client = PivClient::new(&mut card);
            client.select().unwrap();
            for (slot, object) in flows::SLOTS {
                let expiry = key_matches_certificate(&cms, &mut client, slot, object);
                assert!(
                    expiry == old_expiry || expiry == new_expiry,
                    "cut {n}: slot {slot:02X} has a third certificate"
                );
            }
            // The renewal resumes and completes; the database follows.
            let tries = client.tries(0x80).unwrap().0;
            assert!(tries >= 2, "cut {n}: tries {tries}");
            let done = flows::renew(&mut cms, &mut client, b"482915", now)
                .unwrap_or_else(|e| panic!("cut {n}: resume failed: {e}"));
            assert_eq!(done.expiry, new_expiry);
            for (slot, object) in flows::SLOTS {
                assert_eq!(
                    key_matches_certificate(&cms, &mut client, slot, object),
                    new_expiry
                );
            }
            assert_eq!(cms.db.card(serial).unwrap().unwrap().expiry, new_expiry);
        }
    }
    println!(
        "renewal tear test: {cuts} cut points (every flash operation of the renewal, 4 ways each)"
    );
    assert!(cuts >= 40);
}

/// A renewal cut short after its first slot, finished a day later: the
/// card's expiry on record is the earliest of its certificates (the slot
/// renewed first), not the day the run finished plus the validity.
#[test]
fn a_resumed_renewal_records_the_earliest_expiry() {
    big_stack(resumed_renewal_flow);
}

fn resumed_renewal_flow() {
    let expiry = t0() + 730 * DAY;
    let (first, second) = (expiry - 30 * DAY, expiry - 29 * DAY);
    for cut in 1.. {
        let dir = tempfile::tempdir().unwrap();
        let flash = personalised(dir.path(), 900_000_030, "555000111222", Role::Holder);
        let mut cms = Cms::open(&dir.path().join("cms.db")).unwrap();
        let mut card = boot(Torn::new(flash, None, 0), 900_000_030, 7);
        let cut_short = flows::renew(
            &mut cms,
            &mut PivClient::new(Flaky {
                inner: &mut card,
                left: cut,
            }),
            b"482915",
            first,
        );
        assert!(cut_short.is_err(), "the whole renewal fits in {cut} APDUs");
        card.power_off();
        card.power_on();
        let mut client = PivClient::new(&mut card);
        client.select().unwrap();
        let renewed = |c: &mut PivClient<_>, object| {
            let content = c.get_object(object).unwrap().unwrap();
            let der = client::unwrap_tlv(&content, 0x70).unwrap().to_vec();
            ca::inspect(&cms.ca, &der).unwrap().not_after > expiry
        };
        let (a, c) = (
            renewed(&mut client, 0x5FC105),
            renewed(&mut client, 0x5FC10A),
        );
        if !a {
            continue; // cut before the first slot was committed
        }
        assert!(!c, "9C is renewed second");
        let done = flows::renew(&mut cms, &mut client, b"482915", second).unwrap();
        assert_eq!(
            done.expiry,
            first + 730 * DAY,
            "the 9A certificate's notAfter"
        );
        assert_eq!(
            cms.db.card(900_000_030).unwrap().unwrap().expiry,
            done.expiry
        );
        return;
    }
}

/// A revoked or replaced card is refused by renewal and both unlocks, and a
/// sponsor whose own card is revoked cannot unlock anyone.
#[test]
fn revoked_cards_are_refused_everywhere() {
    big_stack(revoked_flow);
}

fn revoked_flow() {
    let dir = tempfile::tempdir().unwrap();
    let sponsor_flash = personalised(dir.path(), 900_000_040, "555000999777", Role::Sponsor);
    let holder_flash = personalised(dir.path(), 900_000_041, "555000111333", Role::Holder);
    let mut cms = Cms::open(&dir.path().join("cms.db")).unwrap();
    let mut sponsor = boot(Torn::new(sponsor_flash, None, 0), 900_000_040, 3);
    let mut holder = boot(Torn::new(holder_flash, None, 0), 900_000_041, 4);
    let mut h = PivClient::new(&mut holder);
    h.select().unwrap();
    for _ in 0..3 {
        let _ = h.verify_pin(b"000000");
    }
    let now = t0() + 700 * DAY;

    // The sponsor's card revoked: no unlock with it.
    flows::revoke(&mut cms, 900_000_040, false, now).unwrap();
    let e = flows::revoke(&mut cms, 900_000_040, false, now).unwrap_err();
    assert!(matches!(e, CmsError::RevokedAlready(900_000_040)), "{e}");
    let e = flows::sponsor_unlock(
        &mut cms,
        &mut PivClient::new(&mut sponsor),
        b"482915",
        &mut h,
        "731026",
        now,
    )
    .unwrap_err();
    assert!(
        matches!(
            &e,
            CmsError::SponsorCard(inner) if matches!(
                **inner,
                CmsError::CardUnusable { serial: 900_000_040, ref status } if status == "revoked"
            )
        ),
        "{e}"
    );

    // The holder's card replaced: no renewal, no unlock of any kind.
    flows::revoke(&mut cms, 900_000_041, true, now).unwrap();
    let e = flows::renew(&mut cms, &mut h, b"482915", now).unwrap_err();
    let replaced = |e: &CmsError| matches!(e, CmsError::CardUnusable { serial: 900_000_041, status } if status == "replaced");
    assert!(replaced(&e), "{e}");
    let outbox = dir.path().join("outbox");
    let e = flows::self_unlock_request(&mut cms, &mut h, &outbox, now).unwrap_err();
    assert!(replaced(&e), "{e}");
    let e = flows::self_unlock_complete(&mut cms, &mut h, "123456", "731026", now).unwrap_err();
    assert!(replaced(&e), "{e}");
    assert!(!outbox.exists(), "no code was sent");
    assert_eq!(h.tries(0x80).unwrap().0, 0, "still locked");
    let log = cms.db.audit_log().unwrap();
    let revokes: Vec<_> = log.iter().filter(|a| a.action == "revoke").collect();
    assert_eq!(revokes.len(), 2);
    assert_eq!(revokes[1].detail, "replaced");
}
