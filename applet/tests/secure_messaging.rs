//! Secure messaging on a whole card, driven as a client drives it: the
//! issuer gives the card key `04`, its CVC and the signer's certificate;
//! the client opens a session, checking the CVC, and everything it sends
//! goes protected. The protected answers must be the answers in the clear.

mod common;

use client::cvc;
use client::{ClientError, PivClient, Status, Suite};
use common::sm::*;
use common::*;

fn session_works(suite: Suite) {
    let (mut card, signer) = personalised(suite);
    let mut piv = PivClient::new(&mut card);
    assert_eq!(piv.secure_messaging_suite().unwrap(), Some(suite));

    // What the card says in the clear, to compare with.
    let chuid = piv.get_object(0x5FC102).unwrap().unwrap();
    let tries = piv.tries(0x80).unwrap();

    let object = piv.get_object(0x5FC122).unwrap().unwrap();
    let signer_key = cvc::signer_key(&object).unwrap();
    assert_eq!(signer_key, signer);
    let card_cvc = piv.open_secure_messaging(suite, Some(&signer_key)).unwrap();
    assert_eq!(card_cvc.subject_id, [0x11; 16]);
    assert!(piv.is_secure());

    assert_eq!(piv.get_object(0x5FC102).unwrap().unwrap(), chuid);
    assert_eq!(piv.tries(0x80).unwrap(), tries);
    // A wrong PIN: the card's `63 C2` travels inside the session.
    let e = piv.verify_pin(b"999999").unwrap_err();
    assert!(
        matches!(e.status(), Some(Status::VerificationFailed(t)) if t.get() == 2),
        "{e}"
    );
    assert!(piv.is_secure());
    piv.verify_pin(b"123456").unwrap();

    // Management and keys, protected too; a signature that verifies.
    drop(piv);
    admin_default_protected(&mut card, suite, &signer);
}

/// Authenticates with the default management key, its algorithm read
/// from its metadata (through the session, if one is open).
fn admin(piv: &mut PivClient<&mut PivCard>) {
    let (metadata, s) = piv.exchange([0x00, 0xF7, 0x00, 0x9B], &[]).unwrap();
    assert_eq!(s, 0x9000);
    let alg = match metadata[..] {
        [0x01, 0x01, alg, ..] => mgm(alg),
        _ => panic!("management key metadata: {metadata:02X?}"),
    };
    piv.authenticate(alg, &DEFAULT_MGM).unwrap();
}

/// Authenticates with the management key, generates a key in `9A` and
/// signs with it, all under a session; the signature verifies.
fn admin_default_protected(card: &mut PivCard, suite: Suite, signer: &[u8]) {
    let mut piv = PivClient::new(&mut *card);
    piv.open_secure_messaging(suite, Some(signer)).unwrap();
    admin(&mut piv);
    let public = piv.generate(client::Slot::Authentication, false).unwrap();
    piv.verify_pin(b"123456").unwrap();
    let digest = [0x5A; 32];
    let signature = piv.sign(client::Slot::Authentication, &digest).unwrap();
    assert!(piv.is_secure());
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public[public.len() - 65..]).unwrap();
    let signature = p256::ecdsa::Signature::from_der(&signature).unwrap();
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    key.verify_prehash(&digest, &signature).unwrap();
}

#[test]
fn a_cs2_session_protects_what_a_tool_sends() {
    session_works(Suite::Cs2);
}

#[test]
fn a_cs7_session_protects_what_a_tool_sends() {
    session_works(Suite::Cs7);
}

/// Answers longer than a short APDU's come back in `61 xx` parts of the
/// wrapped answer, and a command longer than one APDU is chained wrapped.
#[test]
fn long_commands_and_answers_go_protected() {
    let (mut card, signer) = personalised(Suite::Cs2);
    let mut piv = PivClient::new(&mut card);
    piv.open_secure_messaging(Suite::Cs2, Some(&signer))
        .unwrap();
    admin(&mut piv);
    let object = certificate_object(applet::algorithm::Algorithm::P256, &signer, 2000);
    piv.put_object(0x5FC105, &object).unwrap();
    assert_eq!(piv.get_object(0x5FC105).unwrap().unwrap(), object);
    assert!(piv.is_secure());
}

/// A protected command whose MAC does not verify is answered `69 88` in
/// the clear, and the session is over: the next one is `69 82`.
#[test]
fn a_command_that_is_not_the_sessions_ends_the_session() {
    let (mut card, signer) = personalised(Suite::Cs2);
    let mut piv = PivClient::new(&mut card);
    piv.open_secure_messaging(Suite::Cs2, Some(&signer))
        .unwrap();
    // A protected GET DATA with its MAC changed.
    let rsp = piv
        .raw(&hex("0CCB3FFF 0D 970100 8E08 0102030405060708 00"))
        .unwrap();
    assert_eq!(sw(&rsp), 0x6988);
    assert_eq!(rsp.len(), 2, "nothing but the status");
    // The client's session is now stale: the card refuses it.
    let e = piv.get_object(0x5FC102).unwrap_err();
    assert_eq!(e.status(), Some(Status::SecurityStatusNotSatisfied), "{e}");
    // And one without its MAC: `69 87`.
    piv.open_secure_messaging(Suite::Cs2, Some(&signer))
        .unwrap();
    let rsp = piv.raw(&hex("0CCB3FFF 03 970100")).unwrap();
    assert_eq!(sw(&rsp), 0x6987);
}

/// With no session, a protected command is `69 82`; a command in the
/// clear during a session on the contact interface runs and leaves the
/// session open.
#[test]
fn protected_commands_need_a_session_and_clear_ones_leave_it() {
    let (mut card, signer) = personalised(Suite::Cs2);
    let rsp = send(&mut card, &hex("0CCB3FFF 03 970100"));
    assert_eq!(sw(&rsp), 0x6982);
    let mut piv = PivClient::new(&mut card);
    piv.open_secure_messaging(Suite::Cs2, Some(&signer))
        .unwrap();
    let rsp = piv.raw(&hex("00CB3FFF 05 5C035FC102 00")).unwrap();
    assert_eq!(sw(&rsp), 0x9000);
    assert!(piv.get_object(0x5FC102).unwrap().is_some());
}

/// A CVC signed by someone else, and a key confirmation that does not
/// verify, stop the client before it sends anything protected.
#[test]
fn the_client_checks_the_cvc_and_the_key_confirmation() {
    let (mut card, _) = personalised(Suite::Cs2);
    let mut piv = PivClient::new(&mut card);
    let other = Signer::new(Suite::Cs7).point();
    let e = piv
        .open_secure_messaging(Suite::Cs2, Some(&other))
        .unwrap_err();
    assert!(matches!(e, ClientError::Malformed(_)), "{e}");
    assert!(!piv.is_secure());
}

/// Before the issuer gives it key `04` and its CVC, a card offers no
/// suite; with the key and no CVC, establishment is refused `69 85`; a
/// key of the other suite is a wrong P1; inside a session, a second
/// establishment is refused (inside the session's answer).
#[test]
fn establishment_needs_the_issuers_key_and_certificate() {
    let mut card = fresh();
    let mut piv = PivClient::new(&mut card);
    assert_eq!(piv.secure_messaging_suite().unwrap(), None);
    let e = piv.open_secure_messaging(Suite::Cs2, None).unwrap_err();
    assert_eq!(e.status(), Some(Status::ReferenceNotFound), "{e}");
    drop(piv);
    admin_default(&mut card);
    let (_, s) = exchange(&mut card, [0x00, 0x47, 0x00, 0x04], &hex("AC03800111"));
    assert_eq!(s, 0x9000);
    // Key 04 takes only the suites' curves, and never a PIN policy.
    let (_, s) = exchange(&mut card, [0x00, 0x47, 0x00, 0x04], &hex("AC03800107"));
    assert_eq!(s, 0x6A80);
    let (_, s) = exchange(
        &mut card,
        [0x00, 0x47, 0x00, 0x04],
        &hex("AC06800111AA0102"),
    );
    assert_eq!(s, 0x6A80);
    let mut piv = PivClient::new(&mut card);
    assert_eq!(piv.secure_messaging_suite().unwrap(), None);
    let e = piv.open_secure_messaging(Suite::Cs2, None).unwrap_err();
    assert_eq!(e.status(), Some(Status::ConditionsOfUseNotSatisfied), "{e}");
    let e = piv.open_secure_messaging(Suite::Cs7, None).unwrap_err();
    assert_eq!(e.status(), Some(Status::IncorrectP1P2), "{e}");
}

#[test]
fn a_cvc_for_another_key_is_not_sent() {
    let (mut card, _) = personalised(Suite::Cs2);
    admin_default(&mut card);
    let signer = Signer::new(Suite::Cs2);
    let stranger = Signer::new(Suite::Cs2).point();
    let cvc = cvc::build(Suite::Cs2, b"S9CARDCA", &[0x11; 16], &stranger, |body| {
        Ok(signer.sign(Suite::Cs2, body))
    })
    .unwrap();
    assert_eq!(put(&mut card, CVC_TAG, &cvc), 0x9000);
    let mut piv = PivClient::new(&mut card);
    let e = piv.open_secure_messaging(Suite::Cs2, None).unwrap_err();
    assert_eq!(e.status(), Some(Status::ConditionsOfUseNotSatisfied), "{e}");
}

#[test]
fn a_second_establishment_inside_a_session_is_refused() {
    let (mut card, signer) = personalised(Suite::Cs2);
    let mut piv = PivClient::new(&mut card);
    piv.open_secure_messaging(Suite::Cs2, Some(&signer))
        .unwrap();
    let request = client::sm::Request::new(Suite::Cs2).unwrap();
    let (p1, data) = request.command();
    let (_, s) = piv.exchange([0x00, 0x87, p1, 0x04], &data).unwrap();
    assert_eq!(s, 0x6985);
    assert!(piv.is_secure());
}

/// The YubiKey profile answers as a YubiKey: no suite offered, key `04`
/// unknown, class `0C` not spoken.
#[test]
fn the_yubikey_profile_has_no_secure_messaging() {
    let profile = applet::Profile::YubiKey {
        pin_complexity: false,
    };
    let mut card = boot_as(Flash::new(), 1, profile);
    assert_eq!(sw(&send(&mut card, &hex(SELECT))), 0x9000);
    let mut piv = PivClient::new(&mut card);
    assert_eq!(piv.secure_messaging_suite().unwrap(), None);
    let e = piv.open_secure_messaging(Suite::Cs2, None).unwrap_err();
    assert_eq!(e.status(), Some(Status::IncorrectP1P2), "{e}");
    let rsp = piv.raw(&hex("0CCB3FFF 03 970100")).unwrap();
    assert_eq!(sw(&rsp), 0x6882);
}
