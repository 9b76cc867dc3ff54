//! The contactless interface and the virtual contact interface (SP
//! 800-73-4 Part 1 Table 1, Part 2 §3.2 and §4): in the clear, the card
//! answers what identifies it; a secure messaging session with the pairing
//! code verified opens the rest, protected; card management stays on the
//! contact interface. And the pairing code: its form, its counter, its
//! changes.

mod common;

use card_os::Interface;
use client::{PivClient, Slot, Status, Suite};
use common::sm::*;
use common::*;

const PAIRING: &[u8; 8] = b"12345678";

/// `Some(code)`: the issuer sets a pairing code.
fn issued(code: Option<&[u8; 8]>) -> (PivCard, Vec<u8>) {
    let mut card = fresh();
    let signer = personalise(&mut card, Suite::Cs2);
    // A 9A key and a card authentication key, to use.
    generate(&mut card, 0x9A);
    generate(&mut card, 0x9E);
    if let Some(code) = code {
        let content = [der(0x99, code), hex("FE00")].concat();
        assert_eq!(put(&mut card, [0x5F, 0xC1, 0x23], &content), 0x9000);
    }
    (card, signer)
}

/// The card in a contactless reader, freshly in the field.
fn contactless(card: &mut PivCard) {
    let atr = applet::atr_on(applet::Profile::Series9, true, Interface::Contactless);
    card.set_interface(Interface::Contactless, atr);
    card.power_off();
    assert_eq!(&card.power_on()[..4], &[0x3B, 0x8D, 0x80, 0x01]);
    assert_eq!(sw(&send(card, &hex(SELECT))), 0x9000);
}

fn status(e: client::ClientError) -> Option<Status> {
    e.status()
}

/// `5F2F`'s first byte in the Discovery object.
fn discovery_policy(piv: &mut PivClient<&mut PivCard>) -> u8 {
    let (data, s) = piv
        .exchange([0x00, 0xCB, 0x3F, 0xFF], &hex("5C017E"))
        .unwrap();
    assert_eq!(s, 0x9000);
    let at = data
        .windows(3)
        .position(|w| w == [0x5F, 0x2F, 0x02])
        .unwrap();
    data[at + 3]
}

#[test]
fn in_the_clear_the_card_answers_only_what_identifies_it() {
    let (mut card, _) = issued(Some(PAIRING));
    contactless(&mut card);
    let mut piv = PivClient::new(&mut card);
    assert!(piv.get_object(0x5FC102).unwrap().is_some(), "CHUID");
    assert_eq!(
        discovery_policy(&mut piv),
        0x48,
        "PIN, VCI with a pairing code"
    );
    // Card authentication works; the PIV authentication key does not.
    piv.sign(Slot::CardAuthentication, &[0x5A; 32]).unwrap();
    let e = piv.sign(Slot::Authentication, &[0x5A; 32]).unwrap_err();
    assert_eq!(status(e), Some(Status::SecurityStatusNotSatisfied));
    for (header, data) in [
        ([0x00, 0xCB, 0x3F, 0xFF], hex("5C035FC105")),
        ([0x00, 0x20, 0x00, 0x80], padded(b"123456")),
        ([0x00, 0xF7, 0x00, 0x9A], vec![]),
    ] {
        let (_, s) = piv.exchange(header, &data).unwrap();
        assert_eq!(s, 0x6982, "{header:02X?}");
    }
    // Nothing was spent: the PIN is untouched.
    drop(piv);
    contact_again(&mut card);
    assert_eq!(verify(&mut card, b"123456"), 0x9000);
}

fn contact_again(card: &mut PivCard) {
    card.set_interface(
        Interface::Contact,
        applet::atr(applet::Profile::Series9, true),
    );
    card.power_off();
    card.power_on();
    assert_eq!(sw(&send(card, &hex(SELECT))), 0x9000);
}

#[test]
fn the_pairing_code_opens_the_virtual_contact_interface() {
    let (mut card, signer) = issued(Some(PAIRING));
    contactless(&mut card);
    let mut piv = PivClient::new(&mut card);
    piv.open_secure_messaging(Suite::Cs2, Some(&signer))
        .unwrap();
    // A session alone is not the VCI.
    let e = piv.get_object(0x5FC105).unwrap_err();
    assert_eq!(status(e), Some(Status::SecurityStatusNotSatisfied));
    // A wrong pairing code costs a try of its own counter.
    let (_, s) = piv.exchange([0x00, 0x20, 0x00, 0x98], b"87654321").unwrap();
    assert_eq!(s, 0x63C4);
    let (_, s) = piv.exchange([0x00, 0x20, 0x00, 0x98], &[]).unwrap();
    assert_eq!(s, 0x63C4, "status of the pairing code");
    let (_, s) = piv.exchange([0x00, 0x20, 0x00, 0x98], PAIRING).unwrap();
    assert_eq!(s, 0x9000);
    let (_, s) = piv.exchange([0x00, 0x20, 0x00, 0x98], &[]).unwrap();
    assert_eq!(s, 0x9000, "verified in this session");
    // Now the holder's card works as on contact, protected.
    assert!(
        piv.get_object(0x5FC105).unwrap().is_none(),
        "no certificate yet"
    );
    piv.verify_pin(b"123456").unwrap();
    piv.sign(Slot::Authentication, &[0x5A; 32]).unwrap();
    // In the clear, still only what identifies the card.
    let rsp = piv.raw(&hex("00CB3FFF 05 5C035FC105 00")).unwrap();
    assert_eq!(sw(&rsp), 0x6982);
    // Card management stays on the contact interface.
    let e = piv
        .authenticate(client::AdminAlgorithm::Tdes, &DEFAULT_MGM)
        .unwrap_err();
    assert_eq!(status(e), Some(Status::SecurityStatusNotSatisfied));
    // A new session is a new start: the VCI is closed again.
    piv.open_secure_messaging(Suite::Cs2, Some(&signer))
        .unwrap();
    let e = piv.get_object(0x5FC105).unwrap_err();
    assert_eq!(status(e), Some(Status::SecurityStatusNotSatisfied));
}

#[test]
fn without_a_pairing_code_the_session_is_the_virtual_contact_interface() {
    let (mut card, signer) = issued(None);
    contactless(&mut card);
    let mut piv = PivClient::new(&mut card);
    assert_eq!(
        discovery_policy(&mut piv),
        0x4C,
        "VCI without a pairing code"
    );
    piv.open_secure_messaging(Suite::Cs2, Some(&signer))
        .unwrap();
    piv.verify_pin(b"123456").unwrap();
    piv.sign(Slot::Authentication, &[0x5A; 32]).unwrap();
    let (_, s) = piv.exchange([0x00, 0x20, 0x00, 0x98], PAIRING).unwrap();
    assert_eq!(s, 0x6A88, "no pairing code to verify");
}

/// The pairing code never travels in the clear, on either interface; it
/// is 8 digits; five wrong ones block it until the issuer sets a new one.
#[test]
fn the_pairing_code_has_its_own_rules_and_counter() {
    let (mut card, signer) = issued(Some(PAIRING));
    // On contact, in the clear: refused, nothing spent.
    let mut apdu = hex("00200098 08");
    apdu.extend_from_slice(PAIRING);
    assert_eq!(sw(&send(&mut card, &apdu)), 0x6982);
    let mut piv = PivClient::new(&mut card);
    assert_eq!(discovery_policy(&mut piv), 0x48);
    piv.open_secure_messaging(Suite::Cs2, Some(&signer))
        .unwrap();
    let (_, s) = piv.exchange([0x00, 0x20, 0x00, 0x98], &[]).unwrap();
    assert_eq!(s, 0x63C5, "five tries, none spent");
    // Not 8 digits: refused, no try spent.
    for bad in [
        &b"1234567"[..],
        b"1234567A",
        b"123456789",
        b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF",
    ] {
        let (_, s) = piv.exchange([0x00, 0x20, 0x00, 0x98], bad).unwrap();
        assert_eq!(s, 0x6A80, "{bad:02X?}");
    }
    // Changed inside the session, the old code given.
    let change = [&PAIRING[..], b"24681357"].concat();
    let (_, s) = piv.exchange([0x00, 0x24, 0x00, 0x98], &change).unwrap();
    assert_eq!(s, 0x9000);
    let (_, s) = piv.exchange([0x00, 0x20, 0x00, 0x98], PAIRING).unwrap();
    assert_eq!(s, 0x63C4, "the old code is wrong now");
    for left in (0..4).rev() {
        let (_, s) = piv.exchange([0x00, 0x20, 0x00, 0x98], b"00000000").unwrap();
        assert_eq!(s, 0x63C0 | left);
    }
    let (_, s) = piv.exchange([0x00, 0x20, 0x00, 0x98], b"24681357").unwrap();
    assert_eq!(s, 0x6983, "blocked, the right code too");
    // The PIN is untouched by all this.
    piv.verify_pin(b"123456").unwrap();
    drop(piv);
    // The issuer sets a new code: a full counter again.
    power_cycle(&mut card);
    admin_default(&mut card);
    let content = [der(0x99, b"11223344"), hex("FE00")].concat();
    assert_eq!(put(&mut card, [0x5F, 0xC1, 0x23], &content), 0x9000);
    // The container is not read back, PIN or not.
    assert_eq!(verify(&mut card, b"123456"), 0x9000);
    let (_, s) = exchange(&mut card, [0x00, 0xCB, 0x3F, 0xFF], &hex("5C035FC123"));
    assert_eq!(s, 0x6A82);
    let mut piv = PivClient::new(&mut card);
    piv.open_secure_messaging(Suite::Cs2, Some(&signer))
        .unwrap();
    let (_, s) = piv.exchange([0x00, 0x20, 0x00, 0x98], b"11223344").unwrap();
    assert_eq!(s, 0x9000);
    drop(piv);
    // Malformed containers are refused; an empty one removes the code.
    power_cycle(&mut card);
    admin_default(&mut card);
    for bad in [
        "99071122334455",
        "990811223344556677",
        "980811223344556677",
        "99083132333435363738FE0100",
    ] {
        assert_eq!(
            put(&mut card, [0x5F, 0xC1, 0x23], &hex(bad)),
            0x6A80,
            "{bad}"
        );
    }
    assert_eq!(put(&mut card, [0x5F, 0xC1, 0x23], &[]), 0x9000);
    let mut piv = PivClient::new(&mut card);
    assert_eq!(discovery_policy(&mut piv), 0x4C);
}

fn power_cycle(card: &mut PivCard) {
    card.power_off();
    card.power_on();
    assert_eq!(sw(&send(card, &hex(SELECT))), 0x9000);
}

/// The YubiKey profile knows no pairing code, and over NFC answers as
/// over USB.
#[test]
fn the_yubikey_profile_has_no_pairing_code_and_no_contactless_rules() {
    let profile = applet::Profile::YubiKey {
        pin_complexity: false,
    };
    let mut card = boot_as(Flash::new(), 1, profile);
    let atr = applet::atr_on(profile, true, Interface::Contactless);
    card.set_interface(Interface::Contactless, atr);
    let atr = card.power_on().to_vec();
    assert_eq!(atr, hex("3B8D80018073C021C057597562694B6579F9"));
    assert_eq!(sw(&send(&mut card, &hex(SELECT))), 0x9000);
    assert_eq!(verify(&mut card, b"123456"), 0x9000);
    admin_default(&mut card);
    let content = [der(0x99, PAIRING), hex("FE00")].concat();
    assert_eq!(put(&mut card, [0x5F, 0xC1, 0x23], &content), 0x6A80);
    let mut apdu = hex("00240098 10");
    apdu.extend_from_slice(&[*PAIRING, *PAIRING].concat());
    assert_eq!(sw(&send(&mut card, &apdu)), 0x6A86);
}
