//! The in-process fixture: a card in one call, through the host PIV
//! client, with no pcscd.

use client::{AdminAlgorithm, Algorithm, DEFAULT_MGM, Slot};
use virtual_reader::fixture;

#[test]
fn a_seeded_card_makes_the_same_key_every_run() {
    let key = |seed| {
        let mut card = fixture::card()
            .seed(seed)
            .serial(900_000_042)
            .in_process()
            .unwrap();
        let mut piv = card.client();
        piv.select().unwrap();
        assert_eq!(piv.card_info().unwrap().serial, 900_000_042);
        piv.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
            .unwrap();
        piv.generate_key(Slot::Authentication, Algorithm::P256, false)
            .unwrap()
    };
    let first = key(11);
    assert_eq!(first.len(), 65);
    assert_eq!(first, key(11));
    assert_ne!(first, key(12));
}

#[test]
fn a_card_with_a_latency_profile_answers_as_any_other() {
    let mut card = fixture::card().latency("yubikey5").in_process().unwrap();
    let mut piv = card.client();
    piv.select().unwrap();
    piv.verify_pin(b"123456").unwrap();
    assert_eq!(piv.tries(0x80).unwrap(), (3, 3));
    assert!(
        fixture::card()
            .latency("no-such-card")
            .in_process()
            .is_err()
    );
}

#[test]
fn reinsertion_ends_the_pin_session_but_keeps_the_card() {
    let mut card = fixture::card().in_process().unwrap();
    {
        let mut piv = card.client();
        piv.select().unwrap();
        piv.verify_pin(b"123456").unwrap();
        piv.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
            .unwrap();
        piv.put_object(0x5FC105, b"kept").unwrap();
    }
    card.reinsert();
    let mut piv = card.client();
    piv.select().unwrap();
    assert_eq!(piv.raw(&[0x00, 0x20, 0x00, 0x80]).unwrap(), [0x63, 0xC3]);
    assert_eq!(
        piv.get_object(0x5FC105).unwrap().as_deref(),
        Some(&b"kept"[..])
    );
}
