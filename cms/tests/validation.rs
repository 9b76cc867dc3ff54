//! What a FIPS 201 relying party checks on a personalised card, checked
//! the way one would, with OpenSSL from outside the card: the CHUID's
//! issuer signature, every digest in the Security Object, the
//! certificates' names and purposes; and a tampered object is caught.

mod common;

use std::path::Path;
use std::process::Command;

use client::{PivClient, unwrap_tlv};
use cms::content;
use cms::flows::{self, Request};
use cms::time;
use virtual_card::Entropy;

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every TLV of a CHUID but the signature (`3E`): what it signs.
fn chuid_signed_content(chuid: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = chuid;
    while !rest.is_empty() {
        let tag = rest[0];
        let (len, head) = match rest[1] {
            0x81 => (usize::from(rest[2]), 3),
            0x82 => (usize::from(rest[2]) << 8 | usize::from(rest[3]), 4),
            n => (usize::from(n), 2),
        };
        if tag != 0x3E {
            out.extend_from_slice(&rest[..head + len]);
        }
        rest = &rest[head + len..];
    }
    out
}

/// The value of the first `tag` among a container's TLVs.
fn field(data: &[u8], tag: u32) -> Vec<u8> {
    client::tlvs(data)
        .unwrap()
        .into_iter()
        .find(|(t, _)| *t == tag)
        .map(|(_, v)| v.to_vec())
        .unwrap_or_else(|| panic!("no {tag:X}"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

struct Card {
    dir: tempfile::TempDir,
    ca: String,
    chuid: Vec<u8>,
    printed: Vec<u8>,
    security_object: Vec<u8>,
    certificates: Vec<Vec<u8>>,
}

/// A CMS with its CA, and a factory-fresh card for it, powered.
fn cms_and_card() -> (common::Setup, virtual_card::SimCard) {
    let setup = common::setup();
    let (_, mut sim) = virtual_card::boot(&setup.image, Entropy::Seed(2), false).unwrap();
    sim.power_on();
    (setup, sim)
}

/// Ann's card request.
fn ann(uuid: &str, algorithm: applet::algorithm::Algorithm) -> Request {
    Request {
        algorithm,
        ..common::request(uuid)
    }
}

/// A card personalised for Ann with `algorithm`, its objects read back
/// through the client as any reader would (the Printed Information with
/// her passcode).
fn personalised(algorithm: applet::algorithm::Algorithm) -> Card {
    let (
        common::Setup {
            dir, mut cms, now, ..
        },
        mut sim,
    ) = cms_and_card();
    let mut card = PivClient::new(&mut sim);
    let request = ann("555000111222", algorithm);
    flows::personalize(&mut cms, &mut card, &request, now).unwrap();
    let chuid = card.get_object(content::CHUID).unwrap().unwrap();
    let security_object = card.get_object(content::SECURITY_OBJECT).unwrap().unwrap();
    assert!(
        card.get_object(content::PRINTED_INFORMATION).is_err(),
        "the Printed Information needs the passcode"
    );
    card.verify_pin(b"482915").unwrap();
    let printed = card
        .get_object(content::PRINTED_INFORMATION)
        .unwrap()
        .unwrap();
    let certificates = flows::SLOTS
        .iter()
        .map(|&(_, object)| {
            let content = card.get_object(object).unwrap().unwrap();
            unwrap_tlv(&content, 0x70).unwrap().to_vec()
        })
        .collect();
    Card {
        ca: dir.path().join("ca/ca.pem").to_str().unwrap().to_string(),
        dir,
        chuid,
        printed,
        security_object,
        certificates,
    }
}

#[test]
fn the_chuid_signature_verifies_and_a_changed_chuid_does_not() {
    let card = personalised(applet::algorithm::Algorithm::P256);
    let dir = card.dir.path();
    let signature = write(dir, "chuid.p7", &field(&card.chuid, 0x3E));
    let signed = chuid_signed_content(&card.chuid);
    let content = write(dir, "chuid.bin", &signed);
    let verify = |content: &str| {
        openssl(&[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            &signature,
            "-content",
            content,
            "-binary",
            "-CAfile",
            &card.ca,
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ])
    };
    let (ok, text) = verify(&content);
    assert!(ok, "{text}");
    assert!(text.contains("Verification successful"), "{text}");

    // What OpenSSL sees in it: the PIV content type, the signer's name as
    // pivSigner-DN, and the signer's certificate with its PIV purpose.
    let (ok, text) = openssl(&[
        "cms", "-cmsout", "-print", "-inform", "DER", "-in", &signature,
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("eContentType: undefined (2.16.840.1.101.3.6.1)"),
        "{text}"
    );
    assert!(
        text.contains("object: undefined (2.16.840.1.101.3.6.5)"),
        "{text}"
    );
    assert!(text.contains("eContent: <ABSENT>"), "{text}");
    let signer = write(dir, "signer.pem", b"");
    let (ok, text) = openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        &signature,
        "-print_certs",
        "-out",
        &signer,
    ]);
    assert!(ok, "{text}");
    let (_, text) = openssl(&["x509", "-in", &signer, "-noout", "-ext", "extendedKeyUsage"]);
    assert!(text.contains("2.16.840.1.101.3.6.7"), "{text}");

    // The expiry is the certificates'.
    let expiry = field(&signed, 0x35);
    assert_eq!(expiry, b"20281124");

    // A GUID changed by one bit no longer verifies.
    let mut tampered = signed.clone();
    tampered[27 + 2] ^= 1;
    let (ok, text) = verify(&write(dir, "tampered.bin", &tampered));
    assert!(!ok, "{text}");
    assert!(text.contains("CMS_SignerInfo_verify_content"), "{text}");
}

#[test]
fn every_security_object_digest_matches_and_a_changed_object_is_caught() {
    let card = personalised(applet::algorithm::Algorithm::Rsa2048);
    let dir = card.dir.path();
    // The mapping: data group 1 is the CHUID (container 3000), 2 the
    // Printed Information (3001).
    assert_eq!(
        field(&card.security_object, 0xBA),
        [0x01, 0x30, 0x00, 0x02, 0x30, 0x01]
    );
    let signed = write(dir, "so.p7", &field(&card.security_object, 0xBB));
    let lds = dir.join("lds.der");
    let lds_path = lds.to_str().unwrap();
    let (ok, text) = openssl(&[
        "cms", "-verify", "-inform", "DER", "-in", &signed, "-CAfile", &card.ca, "-purpose", "any",
        "-binary", "-out", lds_path,
    ]);
    assert!(ok, "{text}");
    // The LDSSecurityObject's digests, as OpenSSL parses them, against
    // OpenSSL's digests of the objects as the card returns them.
    let (ok, parsed) = openssl(&["asn1parse", "-inform", "DER", "-in", lds_path]);
    assert!(ok, "{parsed}");
    let digests: Vec<String> = parsed
        .lines()
        .filter(|l| l.contains("OCTET STRING"))
        .map(|l| l.rsplit(':').next().unwrap().to_ascii_lowercase())
        .collect();
    let dgst = |name: &str, bytes: &[u8]| {
        let (ok, text) = openssl(&["dgst", "-sha256", "-r", &write(dir, name, bytes)]);
        assert!(ok, "{text}");
        text.split_whitespace().next().unwrap().to_string()
    };
    assert_eq!(
        digests,
        [dgst("dg1", &card.chuid), dgst("dg2", &card.printed)],
        "{parsed}"
    );
    // The Printed Information says what the card shows.
    assert_eq!(field(&card.printed, 0x01), b"Ann Example");
    assert_eq!(field(&card.printed, 0x04), b"2028NOV24");
    // A printed name changed on the card no longer matches its digest.
    let mut changed = card.printed.clone();
    changed[2] = b'E';
    assert_ne!(dgst("dg2-changed", &changed), digests[1]);
    // Nor does a Security Object whose content was changed verify.
    let mut forged = field(&card.security_object, 0xBB).to_vec();
    let at = forged
        .windows(3)
        .position(|w| w == [0x04, 0x20, digests_first_byte(&digests[0])])
        .expect("the first digest in the signed content");
    forged[at + 3] ^= 1;
    let (ok, text) = openssl(&[
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        &write(dir, "forged.p7", &forged),
        "-CAfile",
        &card.ca,
        "-purpose",
        "any",
        "-binary",
        "-out",
        "/dev/null",
    ]);
    assert!(!ok, "{text}");
}

fn digests_first_byte(hex: &str) -> u8 {
    u8::from_str_radix(&hex[..2], 16).unwrap()
}

#[test]
fn the_certificates_carry_what_logon_and_card_authentication_check() {
    let card = personalised(applet::algorithm::Algorithm::P256);
    let dir = card.dir.path();
    let guid = field(&card.chuid, 0x34);
    let hex: String = guid.iter().map(|b| format!("{b:02x}")).collect();
    let urn = format!(
        "URI:urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    let text_of = |n: usize| {
        let path = write(dir, &format!("cert{n}.der"), &card.certificates[n]);
        let (ok, text) = openssl(&[
            "x509", "-inform", "DER", "-in", &path, "-noout", "-text", "-nameopt", "RFC2253",
        ]);
        assert!(ok, "{text}");
        let (ok, verdict) = openssl(&["verify", "-CAfile", &card.ca, &{
            let pem = write(dir, &format!("cert{n}.pem"), b"");
            openssl(&["x509", "-inform", "DER", "-in", &path, "-out", &pem]);
            pem
        }]);
        assert!(ok, "{verdict}");
        text
    };
    // 9A: Windows smartcard logon and PKINIT (EKUs, UPN, principal), the
    // card's FASC-N and GUID, and the holder in the subject.
    let auth = text_of(0);
    for want in [
        "TLS Web Client Authentication",
        "Microsoft Smartcard Login",
        "PKINIT Client Auth",
        "UPN::555000111222@s9card.test",
        "othername: 1.3.6.1.5.2.2::<unsupported>",
        "othername: 2.16.840.1.101.3.6.6::<unsupported>",
        urn.as_str(),
        "UID=555000111222,CN=Ann Example,OU=holder,O=s9card",
        "Digital Signature",
    ] {
        assert!(auth.contains(want), "9A lacks {want}:\n{auth}");
    }
    // 9C: signing mail, non-repudiation, her address.
    let sign = text_of(1);
    for want in [
        "E-mail Protection",
        "Non Repudiation",
        "email:ann@nhs.example",
    ] {
        assert!(sign.contains(want), "9C lacks {want}:\n{sign}");
    }
    // 9D: key agreement for an EC key.
    let km = text_of(2);
    assert!(km.contains("Key Agreement"), "{km}");
    // 9E: PIV card authentication, the FASC-N and GUID, and no logon use.
    let card_auth = text_of(3);
    for want in [
        "2.16.840.1.101.3.6.8",
        "othername: 2.16.840.1.101.3.6.6::<unsupported>",
        urn.as_str(),
    ] {
        assert!(card_auth.contains(want), "9E lacks {want}:\n{card_auth}");
    }
    assert!(!card_auth.contains("Client Authentication"), "{card_auth}");
}

/// Revocation reaches relying parties through the CA's CRL: a renewal
/// revokes the certificates it replaced as superseded, a card reported
/// lost has its certificates revoked for key compromise; OpenSSL checks
/// the CRL's signature and finds each serial with its reason.
#[test]
fn renewal_and_revocation_reach_the_crl() {
    let (
        common::Setup {
            dir, mut cms, now, ..
        },
        mut sim,
    ) = cms_and_card();
    let mut card = PivClient::new(&mut sim);
    let request = ann("555000111444", applet::algorithm::Algorithm::P256);
    flows::personalize(&mut cms, &mut card, &request, now).unwrap();
    let first = serials(&cms.ca, &mut card);
    assert!(cms.db.revoked_certificates(now).unwrap().is_empty());

    let later = now + 700 * time::DAY;
    flows::renew(&mut cms, &mut card, b"482915", later).unwrap();
    let renewed = serials(&cms.ca, &mut card);
    flows::revoke(&mut cms, 912_345_678, false, later + time::DAY).unwrap();

    let crl = cms
        .ca
        .crl(
            &cms.db.revoked_certificates(later + 2 * time::DAY).unwrap(),
            later + 2 * time::DAY,
        )
        .unwrap();
    let path = write(dir.path(), "crl.der", &crl);
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &path,
        "-CAfile",
        dir.path().join("ca/ca.pem").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("verify OK"), "{text}");
    let entry = |serial: &str| {
        let at = text
            .find(&format!("Serial Number: {serial}"))
            .unwrap_or_else(|| panic!("{serial} not in the CRL:\n{text}"));
        text[at..].lines().take(5).collect::<Vec<_>>().join("\n")
    };
    for serial in &first {
        assert!(entry(serial).contains("Superseded"), "{}", entry(serial));
    }
    for serial in &renewed {
        assert!(
            entry(serial).contains("Key Compromise"),
            "{}",
            entry(serial)
        );
    }
    assert_eq!(text.matches("Serial Number:").count(), 8, "{text}");
}

/// The serial numbers (hex, as `openssl crl -text` prints them) of the
/// certificates on a card, checked against the CA.
fn serials(ca: &cms::ca::TestCa, card: &mut PivClient<impl client::Transport>) -> Vec<String> {
    flows::SLOTS
        .iter()
        .map(|&(_, object)| {
            let content = card.get_object(object).unwrap().unwrap();
            let info = cms::ca::inspect(ca, unwrap_tlv(&content, 0x70).unwrap()).unwrap();
            info.serial.iter().map(|b| format!("{b:02X}")).collect()
        })
        .collect()
}
