//! Personalisation and status on a card image, in process, through the same
//! client a PC/SC reader would use.

mod common;

use client::{AdminAlgorithm, ClientError, DEFAULT_MGM, PivClient, Slot, Status, unwrap_tlv};
use cms::CmsError;
use cms::ca::Role;
use cms::flows::{self, Request};
use cms::time;
use common::{Flaky, request, setup};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use virtual_card::{Entropy, Make};

#[test]
fn personalise_then_status() {
    let mut s = setup();
    let (_, mut sim) = virtual_card::boot(&s.image, Entropy::Seed(2), false).unwrap();
    sim.power_on();
    let mut client = PivClient::new(&mut sim);
    let done =
        flows::personalize(&mut s.cms, &mut client, &request("555000111222"), s.now).unwrap();
    assert_eq!(done.serial, 912_345_678);
    assert!(done.is_virtual);

    let status = flows::status(&mut client, Some(&s.cms.ca)).unwrap();
    let cert = status.certificate.clone().unwrap();
    assert_eq!(cert.uuid, "555000111222");
    assert_eq!(cert.role, Some(Role::Holder));
    assert_eq!(cert.not_after, s.now + 730 * time::DAY);
    assert_eq!((status.pin, status.puk), ((3, 3), (3, 3)));
    let text = status.render(s.now + 700 * time::DAY);
    assert!(text.contains("expire 2028-11-24 (30 days left)"), "{text}");

    // The passcode works, and 9A signs under the certified key.
    client.verify_pin(b"482915").unwrap();
    let digest = [7u8; 32];
    let sig = client.sign(Slot::Authentication, &digest).unwrap();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&cert.key.public).unwrap();
    key.verify_prehash(
        &digest,
        &p256::ecdsa::DerSignature::from_bytes(&sig).unwrap(),
    )
    .unwrap();
    // The factory management key and PUK are gone.
    assert!(matches!(
        client.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM),
        Err(ClientError::Refused {
            status: Status::IncorrectP1P2,
            ..
        })
    ));
    assert!(client.change(0x81, b"12345678", b"11223344").is_err());
    // The CHUID's GUID is a version-4 UUID, and the certificates name it.
    let chuid = client.get_object(0x5FC102).unwrap().unwrap();
    let guid = unwrap_tlv(&chuid[27..], 0x34).unwrap();
    assert_eq!((guid[6] >> 4, guid[8] >> 6), (4, 0b10), "{guid:02x?}");
    // Registered once, audited, with no secret in the log.
    assert_eq!(
        s.cms.db.card(912_345_678).unwrap().unwrap().holder,
        "555000111222"
    );
    let log = s.cms.db.audit_log().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].action.as_str(), log[0].outcome.as_str()),
        ("personalise", "ok")
    );
    assert!(!log[0].detail.contains("482915"));

    // The same card again is refused.
    let again =
        flows::personalize(&mut s.cms, &mut client, &request("555000111333"), s.now).unwrap_err();
    assert!(
        matches!(again, CmsError::CardRegistered(912_345_678)),
        "{again}"
    );
}

/// What a refusal must be.
type Why = fn(&CmsError) -> bool;

#[test]
fn bad_requests_touch_neither_card_nor_database() {
    let mut s = setup();
    let (_, mut sim) = virtual_card::boot(&s.image, Entropy::Seed(3), false).unwrap();
    sim.power_on();
    let mut client = PivClient::new(&mut sim);
    let cases: [(Request, Why); 5] = [
        (
            Request {
                uuid: "55500011122".into(),
                ..request("")
            },
            |e| matches!(e, CmsError::BadUuid(u) if u == "55500011122"),
        ),
        (
            Request {
                email: Some("ann at nhs".into()),
                ..request("555000111222")
            },
            |e| matches!(e, CmsError::BadEmail(_)),
        ),
        (
            Request {
                passcode: String::from("123456").into(),
                ..request("555000111222")
            },
            |e| matches!(e, CmsError::WeakPasscode),
        ),
        (
            Request {
                passcode: String::from("01011990").into(),
                ..request("555000111222")
            },
            |e| matches!(e, CmsError::WeakPasscode),
        ),
        (
            Request {
                passcode: String::from("4829").into(),
                ..request("555000111222")
            },
            |e| matches!(e, CmsError::WeakPasscode),
        ),
    ];
    for (r, why) in cases {
        let e = flows::personalize(&mut s.cms, &mut client, &r, s.now).unwrap_err();
        assert!(why(&e), "{e}");
    }
    assert_eq!(s.cms.db.card(912_345_678).unwrap(), None);
    // The card is still factory-fresh.
    client.select().unwrap();
    client
        .authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
        .unwrap();
    client.verify_pin(b"123456").unwrap();
}

#[test]
fn a_card_removed_mid_personalisation_leaves_no_record() {
    let mut s = setup();
    // Pull the card after 1, 3, 5… APDUs, until personalisation gets
    // through: before then, the database never holds the card or holder.
    for cut in (1..).step_by(2) {
        let (_, mut sim) = virtual_card::boot(&s.image, Entropy::Seed(cut as u64), false).unwrap();
        sim.power_on();
        let mut flaky = PivClient::new(Flaky {
            inner: &mut sim,
            left: cut,
        });
        match flows::personalize(&mut s.cms, &mut flaky, &request("555000111222"), s.now) {
            Ok(done) => {
                assert_eq!(
                    s.cms.db.card(done.serial).unwrap().unwrap().holder,
                    "555000111222"
                );
                assert!(cut > 10);
                break;
            }
            Err(e) => {
                assert!(
                    matches!(&e, CmsError::Card(ClientError::Transport(t)) if t == "card removed")
                        || matches!(&e, CmsError::CardStep { source: ClientError::Transport(t), .. } if t == "card removed"),
                    "{e}"
                );
                assert_eq!(
                    s.cms.db.card(912_345_678).unwrap(),
                    None,
                    "after {cut} APDUs"
                );
                assert!(s.cms.db.holder("555000111222").unwrap().is_none());
            }
        }
        // A fresh image for the next attempt: this one may be half-done.
        std::fs::remove_file(&s.image).unwrap();
        virtual_card::init(
            &s.image,
            Make::virtual_card(912_345_678, applet::Profile::Series9),
            Entropy::Seed(1),
        )
        .unwrap();
    }
}

#[test]
fn concurrent_invocations_do_not_corrupt_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cms.db");
    cms::db::Db::open(&db).unwrap();
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut d = cms::db::Db::open(&db).unwrap();
                for n in 0..25u32 {
                    let uuid = format!("{:012}", 555_000_000_000u64 + u64::from(t * 100 + n));
                    let holder = cms::db::Holder {
                        uuid: uuid.clone(),
                        name: "N".into(),
                        email: None,
                        mobile: None,
                        role: Role::Holder,
                    };
                    let card = cms::db::CardRow {
                        serial: 920_000_000 + t * 100 + n,
                        holder: uuid,
                        expiry: 1,
                        is_virtual: true,
                        status: "active".into(),
                    };
                    d.register(&holder, &card, &[], "ra", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut d = cms::db::Db::open(&db).unwrap();
    let cards: i64 = d
        .conn()
        .query_row("SELECT COUNT(*) FROM cards", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cards, 200);
    assert_eq!(d.audit_log().unwrap().len(), 200);
    let check: String = d
        .conn()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn the_issuer_assigns_the_serial_at_personalisation() {
    let mut s = setup();
    let (_, mut sim) = virtual_card::boot(&s.image, Entropy::Seed(5), false).unwrap();
    sim.power_on();
    let mut client = PivClient::new(&mut sim);
    let r = Request {
        serial: Some(912_000_001),
        algorithm: applet::algorithm::Algorithm::P256,
        secure_messaging: None,
        ..request("555000111222")
    };
    let done = flows::personalize(&mut s.cms, &mut client, &r, s.now).unwrap();
    assert_eq!(done.serial, 912_000_001);
    assert_eq!(client.card_info().unwrap().serial, 912_000_001);
    assert!(s.cms.db.card(912_000_001).unwrap().is_some());
    // Once personalised, the serial is the card's for good.
    client
        .authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
        .unwrap_err();
    assert!(client.set_serial(912_000_002).is_err());
}

/// The host gone after any APDU of a personalisation, then the same
/// request run again on the same card: it resumes and finishes, and the
/// card ends healthy (no PUK or PIN try lost, the derived management key
/// in place), whichever step the first attempt reached.
#[test]
fn personalisation_resumes_after_a_crash_at_every_step() {
    let mut s = setup();
    let mut cuts = 0;
    for cut in 1.. {
        let (_, mut sim) = virtual_card::boot(&s.image, Entropy::Seed(cut as u64), false).unwrap();
        sim.power_on();
        let first = flows::personalize(
            &mut s.cms,
            &mut PivClient::new(Flaky {
                inner: &mut sim,
                left: cut,
            }),
            &request("555000111222"),
            s.now,
        );
        if first.is_ok() {
            assert!(
                cuts >= 15,
                "a personalisation takes more than {cuts} APDUs (cut {cut})"
            );
            break;
        }
        cuts += 1;
        drop(sim);
        // The host starts over: the card was power-cycled meanwhile.
        let (_, mut sim) =
            virtual_card::boot(&s.image, Entropy::Seed(1000 + cut as u64), false).unwrap();
        sim.power_on();
        let mut c = PivClient::new(&mut sim);
        let done = flows::personalize(&mut s.cms, &mut c, &request("555000111222"), s.now)
            .unwrap_or_else(|e| panic!("resumed after {cut} APDUs: {e}"));
        c.select().unwrap();
        assert_eq!(
            c.tries(0x81).unwrap(),
            (3, 3),
            "PUK tries after {cut} APDUs"
        );
        assert_eq!(
            c.tries(0x80).unwrap(),
            (3, 3),
            "PIN tries after {cut} APDUs"
        );
        assert!(!c.is_default(0x9B).unwrap());
        c.verify_pin(b"482915").unwrap();
        let row = s.cms.db.card(done.serial).unwrap().unwrap();
        assert_eq!(row.holder, "555000111222");
        // Start the next cut from a fresh card and database row.
        drop(sim);
        let db = s.cms.db.conn();
        db.execute_batch(
            "DELETE FROM codes; DELETE FROM certificates; DELETE FROM cards; DELETE FROM holders;",
        )
        .unwrap();
        std::fs::remove_file(&s.image).unwrap();
        virtual_card::init(
            &s.image,
            Make::virtual_card(912_345_678, applet::Profile::Series9),
            Entropy::Seed(1),
        )
        .unwrap();
    }
    println!("personalisation resumed after a crash at each of {cuts} APDUs");
}
