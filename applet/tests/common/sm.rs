//! A card made ready for secure messaging by its issuer, as the tests
//! need one: key `04`, its CVC, the signer's certificate.

use client::Suite;
use client::cvc;
use p256::ecdsa::signature::hazmat::PrehashSigner;

use super::*;

/// The Secure Messaging Certificate Signer of a test issuer, per suite.
pub enum Signer {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl Signer {
    pub fn new(suite: Suite) -> Signer {
        match suite {
            Suite::Cs2 => Signer::P256(p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap()),
            Suite::Cs7 => Signer::P384(p384::ecdsa::SigningKey::from_slice(&[0x43; 48]).unwrap()),
        }
    }

    pub fn point(&self) -> Vec<u8> {
        match self {
            Signer::P256(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
            Signer::P384(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
        }
    }

    pub fn sign(&self, suite: Suite, body: &[u8]) -> Vec<u8> {
        let digest = cvc::hash(suite, body);
        match self {
            Signer::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign_prehash(&digest).unwrap();
                s.to_der().as_bytes().to_vec()
            }
            Signer::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign_prehash(&digest).unwrap();
                s.to_der().as_bytes().to_vec()
            }
        }
    }
}

/// The signer's certificate object (`70 {certificate} 71 00 FE 00`): a
/// well-formed X.509 certificate for `point`, as a client parses it (its
/// signature is not what this test is about).
pub fn signer_object(signer: &Signer) -> Vec<u8> {
    let oid = |bytes: &[u8]| der(0x06, bytes);
    let curve = match signer {
        Signer::P256(_) => oid(&[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]),
        Signer::P384(_) => oid(&[0x2B, 0x81, 0x04, 0x00, 0x22]),
    };
    let ec = oid(&[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]);
    let spki = der(
        0x30,
        &[
            der(0x30, &[ec, curve].concat()),
            der(0x03, &[&[0u8][..], &signer.point()].concat()),
        ]
        .concat(),
    );
    let algorithm = der(
        0x30,
        &oid(&[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]),
    );
    let time = der(0x17, b"260101000000Z");
    let name = der(
        0x30,
        &der(
            0x31,
            &der(
                0x30,
                &[oid(&[0x55, 0x04, 0x03]), der(0x0C, b"SM signer")].concat(),
            ),
        ),
    );
    let tbs = der(
        0x30,
        &[
            der(0xA0, &der(0x02, &[2])),
            der(0x02, &[1]),
            algorithm.clone(),
            name.clone(),
            der(0x30, &[time.clone(), time].concat()),
            name,
            spki,
        ]
        .concat(),
    );
    let certificate = der(0x30, &[tbs, algorithm, der(0x03, &[0])].concat());
    [der(0x70, &certificate), hex("710100FE00")].concat()
}

pub const CVC_TAG: [u8; 3] = [0x5F, 0xFF, 0x40];
pub const SIGNER_TAG: [u8; 3] = [0x5F, 0xC1, 0x22];

pub fn put<F: embedded_storage::nor_flash::NorFlash>(
    card: &mut PivCard<F>,
    tag: [u8; 3],
    content: &[u8],
) -> u16 {
    let data = [der(0x5C, &tag), der(0x53, content)].concat();
    exchange(card, [0x00, 0xDB, 0x3F, 0xFF], &data).1
}

/// The issuer's part: key `04` for `suite`, its CVC, the signer's
/// certificate. The signer's public point.
pub fn personalise<F: embedded_storage::nor_flash::NorFlash>(
    card: &mut PivCard<F>,
    suite: Suite,
) -> Vec<u8> {
    admin_default(card);
    let alg = suite.algorithm().byte();
    let (data, s) = exchange(
        card,
        [0x00, 0x47, 0x00, 0x04],
        &[0xAC, 0x03, 0x80, 0x01, alg],
    );
    assert_eq!(s, 0x9000, "GENERATE 04");
    let point = data[data.len() - suite.point_len()..].to_vec();
    let signer = Signer::new(suite);
    let cvc = cvc::build(suite, b"S9CARDCA", &[0x11; 16], &point, |body| {
        Ok(signer.sign(suite, body))
    })
    .unwrap();
    assert_eq!(put(card, CVC_TAG, &cvc), 0x9000);
    assert_eq!(put(card, SIGNER_TAG, &signer_object(&signer)), 0x9000);
    signer.point()
}

pub fn personalised(suite: Suite) -> (PivCard, Vec<u8>) {
    let mut card = fresh();
    let signer = personalise(&mut card, suite);
    // The issuer's management-key session ends with the card's.
    card.power_off();
    card.power_on();
    assert_eq!(sw(&send(&mut card, &hex(SELECT))), 0x9000);
    (card, signer)
}
