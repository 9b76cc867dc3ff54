//! Personalisation with secure messaging, then the card in a contactless
//! reader: the CMS's CA's signer vouches for the card's CVC, the pairing
//! code shown once opens the virtual contact interface.

mod common;

use card_os::Interface;
use client::{PivClient, Slot, Status, Suite};
use cms::flows::{self, Request};
use cms::{CmsError, sm};
use common::{request, setup};
use virtual_card::Entropy;

fn personalise(suite: Suite) {
    let common::Setup {
        dir: _dir,
        mut cms,
        image,
        now,
    } = setup();
    let request = Request {
        email: None,
        secure_messaging: Some(suite),
        ..request("555000111222")
    };
    let (header, mut card) = virtual_card::boot(&image, Entropy::Seed(2), false).unwrap();
    card.power_on();
    let done = flows::personalize(&mut cms, &mut PivClient::new(&mut card), &request, now).unwrap();
    let code = done.pairing_code.expect("a pairing code");
    assert_eq!(code.len(), 8);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    // The signer's certificate and the key files are the CA's, the key
    // readable by its owner only.
    let key = cms.ca.dir().join("sm-signer.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // In a contactless reader.
    virtual_card::set_interface(&mut card, &header, Interface::Contactless);
    card.power_off();
    card.power_on();
    let mut piv = PivClient::new(&mut card);
    piv.select().unwrap();
    assert_eq!(piv.secure_messaging_suite().unwrap(), Some(suite));
    // Without the VCI the holder's keys are out of reach.
    let e = piv.verify_pin(b"482915").unwrap_err();
    assert_eq!(e.status(), Some(Status::SecurityStatusNotSatisfied));
    // A wrong pairing code is refused, and costs a try.
    let wrong = if code.as_str() == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    match sm::open_vci(&mut piv, Some(&cms.ca), Some(wrong)) {
        Err(CmsError::Card(e)) => {
            assert!(
                matches!(e.status(), Some(Status::VerificationFailed(t)) if t.get() == 4),
                "{e}"
            )
        }
        other => panic!("{:?}", other.err()),
    }
    sm::open_vci(&mut piv, Some(&cms.ca), Some(&code)).unwrap();
    piv.verify_pin(b"482915").unwrap();
    piv.sign(Slot::Authentication, &[5; 32]).unwrap();
    let status = flows::status(&mut piv, Some(&cms.ca)).unwrap();
    assert_eq!(status.certificate.unwrap().uuid, "555000111222");
}

#[test]
fn a_card_personalised_with_cs2_opens_its_vci_with_the_pairing_code() {
    personalise(Suite::Cs2);
}

#[test]
fn a_card_personalised_with_cs7_opens_its_vci_with_the_pairing_code() {
    personalise(Suite::Cs7);
}

/// A signer certificate another CA issued is refused before anything is
/// sent protected.
#[test]
fn a_signer_from_another_ca_is_refused() {
    let common::Setup {
        dir,
        cms,
        image,
        now,
    } = setup();
    let other_dir = dir.path().join("other");
    let other = cms::ca::TestCa::init(&other_dir, now).unwrap();
    let signer = sm::SmSigner::load_or_create(&other, now).unwrap();
    let (_, mut card) = virtual_card::boot(&image, Entropy::Seed(2), false).unwrap();
    card.power_on();
    let mut piv = PivClient::new(&mut card);
    piv.select().unwrap();
    piv.authenticate(client::AdminAlgorithm::Tdes, &client::DEFAULT_MGM)
        .unwrap();
    sm::make_ready(&mut piv, &signer, Suite::Cs2, &[0x11; 16], None).unwrap();
    match sm::open_vci(&mut piv, Some(&cms.ca), None) {
        // Both CAs are named alike: the signature tells them apart.
        Err(CmsError::ForeignCertificate | CmsError::BadCertificateSignature) => {}
        other => panic!("{:?}", other.err()),
    }
    assert!(!piv.is_secure());
    // With the right CA, and no pairing code set, the session is the VCI.
    let ca = other;
    sm::open_vci(&mut piv, Some(&ca), None).unwrap();
}

#[test]
fn pairing_codes_are_eight_digits() {
    for _ in 0..50 {
        let code = sm::new_pairing_code().unwrap();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert!(sm::pairing_code_object(&code).is_ok());
    }
    for bad in ["1234567", "123456789", "1234567a"] {
        assert!(matches!(
            sm::pairing_code_object(bad),
            Err(CmsError::BadPairingCode)
        ));
    }
}
