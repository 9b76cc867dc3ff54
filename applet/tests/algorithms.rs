//! Every slot algorithm against known answers and host-side peers: RSA
//! (OpenSSL's keys and signatures, the `rsa` crate's encryption), P-384
//! (RFC 6979), Ed25519 (RFC 8032), X25519 (RFC 7748 and all 518 Wycheproof
//! tests), and attestation of each. Vectors are in
//! `tests/data/algorithms/`. (Wycheproof's Ed25519 and ECDSA files test
//! verifiers, with public keys only: they cannot drive a card that signs.)

mod common;

use applet::algorithm::Algorithm;
use client::{PivClient, Slot};
use common::*;
use der::{Decode, Encode};
use rsa::BoxedUint;
use rsa::traits::PublicKeyParts;
use sha2::Digest;
use std::collections::HashMap;

fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    client::tlv(tag, value)
}

/// IMPORT `parts` (tag, value) into `slot` with algorithm `alg`.
fn import(card: &mut PivCard, alg: Algorithm, slot: u8, parts: &[(u8, Vec<u8>)]) -> u16 {
    let data: Vec<u8> = parts.iter().flat_map(|(t, v)| tlv(*t, v)).collect();
    exchange(card, [0x00, 0xFE, alg.byte(), slot], &data).1
}

/// GENERAL AUTHENTICATE with `tag` (`81` or `85`); data and SW.
fn operate(card: &mut PivCard, alg: u8, slot: u8, tag: u8, input: &[u8]) -> (Vec<u8>, u16) {
    let mut inner = vec![0x82, 0x00];
    inner.extend(tlv(tag, input));
    let (rsp, s) = exchange(card, [0x00, 0x87, alg, slot], &tlv(0x7C, &inner));
    if s != 0x9000 {
        return (rsp, s);
    }
    let template = client::unwrap_tlv(&rsp, 0x7C).unwrap();
    (client::unwrap_tlv(template, 0x82).unwrap().to_vec(), s)
}

/// EMSA-PKCS1-v1_5 for SHA-256 of `message`, `k` bytes long.
fn pkcs1_sha256(message: &[u8], k: usize) -> Vec<u8> {
    let mut t = hex("3031300D060960864801650304020105000420");
    t.extend(sha2::Sha256::digest(message));
    let mut em = vec![0x00, 0x01];
    em.resize(k - t.len() - 1, 0xFF);
    em.push(0x00);
    em.extend(t);
    em
}

fn rsa_algorithm(bits: usize) -> Algorithm {
    Algorithm::ALL
        .into_iter()
        .find(|a| a.rsa_bits() == Some(bits))
        .unwrap()
}

fn rsa_parts(v: &std::collections::HashMap<String, String>) -> Vec<(u8, Vec<u8>)> {
    ["p", "q", "dp", "dq", "qinv"]
        .iter()
        .zip(1u8..)
        .map(|(k, t)| (t, hex(&v[*k])))
        .collect()
}

#[test]
fn rsa_known_answers_from_openssl() {
    for v in vector_blocks("rsa.txt") {
        let bits: usize = v["bits"].parse().unwrap();
        let alg = rsa_algorithm(bits);
        let mut card = fresh();
        admin_default(&mut card);
        assert_eq!(
            import(&mut card, alg, 0x9A, &rsa_parts(&v)),
            0x9000,
            "{bits}"
        );
        let (a, public) = PivClient::new(&mut card)
            .key_metadata(Slot::Authentication)
            .unwrap()
            .unwrap();
        assert_eq!((a, to_hex(&public)), (alg, v["n"].clone()), "{bits}");
        assert_eq!(verify(&mut card, b"123456"), 0x9000);
        let em = pkcs1_sha256(&hex(&v["message"]), bits / 8);
        let (sig, s) = operate(&mut card, alg.byte(), 0x9A, 0x81, &em);
        assert_eq!(
            (to_hex(&sig), s),
            (v["signature"].clone(), 0x9000),
            "{bits}"
        );
        // A block of the wrong length, or not below the modulus, is wrong
        // data; another algorithm in P1 is a wrong parameter.
        assert_eq!(
            operate(&mut card, alg.byte(), 0x9A, 0x81, &em[1..]).1,
            0x6A80
        );
        let over = vec![0xFF; bits / 8];
        assert_eq!(operate(&mut card, alg.byte(), 0x9A, 0x81, &over).1, 0x6A80);
        assert_eq!(operate(&mut card, 0x11, 0x9A, 0x81, &[1; 32]).1, 0x6A86);
        // An RSA key does not agree keys.
        assert_eq!(operate(&mut card, alg.byte(), 0x9A, 0x85, &em).1, 0x6A80);
    }
}

#[test]
fn rsa_import_refuses_inconsistent_keys_and_stores_nothing() {
    let v = &vector_blocks("rsa.txt")[1];
    assert_eq!(v["bits"], "2048");
    let mut card = fresh();
    admin_default(&mut card);
    let good = rsa_parts(v);
    type Parts = Vec<(u8, Vec<u8>)>;
    let mut cases: Vec<(&str, Parts)> = Vec::new();
    let mut wrong_dp = good.clone();
    *wrong_dp[2].1.last_mut().unwrap() ^= 2;
    cases.push(("dP of another key", wrong_dp));
    let mut wrong_qinv = good.clone();
    wrong_qinv[4].1[10] ^= 1;
    cases.push(("qInv of another key", wrong_qinv));
    let mut same_primes = good.clone();
    same_primes[1] = same_primes[0].clone();
    cases.push(("p = q", same_primes));
    cases.push(("a part missing", good[..4].to_vec()));
    let mut too_long = good.clone();
    too_long[0].1.insert(0, 1);
    cases.push(("p longer than half the modulus", too_long));
    for (what, parts) in cases {
        assert_eq!(
            import(&mut card, Algorithm::Rsa2048, 0x9A, &parts),
            0x6A80,
            "{what}"
        );
        assert_eq!(sw(&send(&mut card, &hex("00F7009A00"))), 0x6A88, "{what}");
    }
    // The right parts under another size are refused too.
    assert_eq!(import(&mut card, Algorithm::Rsa3072, 0x9A, &good), 0x6A80);
    assert_eq!(import(&mut card, Algorithm::Rsa2048, 0x9A, &good), 0x9000);
}

#[test]
fn rsa_generated_keys_match_the_rsa_crate() {
    for bits in [1024, 2048] {
        let alg = rsa_algorithm(bits);
        let mut card = fresh();
        admin_default(&mut card);
        let n = PivClient::new(&mut card)
            .generate_key(Slot::KeyManagement, alg, false)
            .unwrap();
        assert_eq!(n.len(), bits / 8);
        assert!(n[0] & 0x80 != 0, "a full-length modulus");
        let public = rsa::PublicKey::new(
            BoxedUint::from_be_slice_vartime(&n),
            BoxedUint::from(65_537u32),
        )
        .unwrap();
        assert_eq!(verify(&mut card, b"123456"), 0x9000);
        // Decryption: the raw operation inverts the public one.
        let m = {
            let mut m = vec![0x42; bits / 8];
            m[0] = 0;
            m
        };
        let c = rsa::hazmat::rsa_encrypt(&public, &BoxedUint::from_be_slice_vartime(&m)).unwrap();
        let c = c.to_be_bytes_trimmed_vartime();
        let mut block = vec![0u8; bits / 8 - c.len()];
        block.extend_from_slice(&c);
        let (back, s) = operate(&mut card, alg.byte(), 0x9D, 0x81, &block);
        assert_eq!((back, s), (m, 0x9000), "{bits}");
        // A PKCS#1 v1.5 signature the `rsa` crate verifies.
        let message = b"signed on the card";
        let (sig, s) = operate(
            &mut card,
            alg.byte(),
            0x9D,
            0x81,
            &pkcs1_sha256(message, bits / 8),
        );
        assert_eq!(s, 0x9000);
        let hashed = sha2::Sha256::digest(message);
        public
            .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &hashed, &sig)
            .unwrap();
        assert_eq!(public.size(), bits / 8);
    }
}

/// IMPORTs `v`'s private scalar of `alg` into 9A, checks the public point
/// the card computed against `v`'s, and verifies the PIN; the point.
fn import_known(card: &mut PivCard, alg: Algorithm, v: &HashMap<String, String>) -> Vec<u8> {
    let private = [(0x06, hex(&v["private"]))];
    assert_eq!(import(card, alg, 0x9A, &private), 0x9000);
    let public = PivClient::new(&mut *card)
        .public_key(Slot::Authentication)
        .unwrap()
        .unwrap();
    assert_eq!(to_hex(&public), v["public"]);
    assert_eq!(verify(card, b"123456"), 0x9000);
    public
}

/// RFC 6979's P-256 signatures and RFC 5903's shared secret, through
/// IMPORT and GENERAL AUTHENTICATE (the firmware's assembly back end meets
/// the same file through the reader: `simulator/tests/algorithms.rs`).
#[test]
fn p256_known_answers_and_ecdh() {
    let blocks = vector_blocks("p256.txt");
    assert_eq!(blocks.len(), 4);
    let mut card = fresh();
    admin_default(&mut card);
    for v in &blocks {
        import_known(&mut card, Algorithm::P256, v);
        if let Some(message) = v.get("message") {
            let digest = sha2::Sha256::digest(hex(message));
            let (der, s) = operate(&mut card, 0x11, 0x9A, 0x81, &digest);
            assert_eq!(s, 0x9000);
            let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
            let (r, s_) = sig.split_bytes();
            assert_eq!((to_hex(&r), to_hex(&s_)), (v["r"].clone(), v["s"].clone()));
        } else {
            let (shared, s) = operate(&mut card, 0x11, 0x9A, 0x85, &hex(&v["peer"]));
            assert_eq!(s, 0x9000);
            assert_eq!(to_hex(&shared), v["shared"]);
        }
    }
}

#[test]
fn p384_known_answer_and_ecdh() {
    let v = &vector_blocks("p384.txt")[0];
    let mut card = fresh();
    admin_default(&mut card);
    let public = import_known(&mut card, Algorithm::P384, v);
    let digest = sha2::Sha384::digest(hex(&v["message"]));
    let (der, s) = operate(&mut card, 0x14, 0x9A, 0x81, &digest);
    assert_eq!(s, 0x9000);
    let sig = p384::ecdsa::Signature::from_der(&der).unwrap();
    let (r, s_) = sig.split_bytes();
    assert_eq!((to_hex(&r), to_hex(&s_)), (v["r"].clone(), v["s"].clone()));
    // ECDH against a host key: both sides get the same secret.
    let peer = p384::SecretKey::from_slice(&[7u8; 48]).unwrap();
    let point = p384::elliptic_curve::sec1::ToSec1Point::to_sec1_point(&peer.public_key(), false);
    let (shared, s) = operate(&mut card, 0x14, 0x9A, 0x85, point.as_bytes());
    assert_eq!(s, 0x9000);
    let card_key = p384::PublicKey::from_sec1_bytes(&public).unwrap();
    let expected = p384::ecdh::diffie_hellman(peer.to_nonzero_scalar(), card_key.as_affine());
    assert_eq!(shared, expected.raw_secret_bytes().as_slice());
    // A P-256 point is the wrong length for this key; a point off the
    // curve, and a compressed one padded to length, are refused too.
    assert_eq!(
        operate(&mut card, 0x14, 0x9A, 0x85, &point.as_bytes()[..65]).1,
        0x6A80
    );
    let mut off = point.as_bytes().to_vec();
    off[96] ^= 1;
    assert_eq!(operate(&mut card, 0x14, 0x9A, 0x85, &off).1, 0x6A80);
    let mut compressed = point.as_bytes().to_vec();
    compressed[0] = 0x02;
    assert_eq!(operate(&mut card, 0x14, 0x9A, 0x85, &compressed).1, 0x6A80);
}

#[test]
fn ed25519_rfc8032_through_import_and_sign() {
    for v in vector_blocks("ed25519.txt") {
        let mut card = fresh();
        admin_default(&mut card);
        assert_eq!(
            import(
                &mut card,
                Algorithm::Ed25519,
                0x9A,
                &[(0x07, hex(&v["seed"]))]
            ),
            0x9000
        );
        let public = PivClient::new(&mut card)
            .public_key(Slot::Authentication)
            .unwrap()
            .unwrap();
        assert_eq!(to_hex(&public), v["public"]);
        assert_eq!(verify(&mut card, b"123456"), 0x9000);
        let (sig, s) = operate(&mut card, 0xE0, 0x9A, 0x81, &hex(&v["message"]));
        assert_eq!((to_hex(&sig), s), (v["signature"].clone(), 0x9000));
        assert_eq!(operate(&mut card, 0xE0, 0x9A, 0x85, &[9; 32]).1, 0x6A80);
    }
    // Ed25519 signs the message itself: a long one arrives chained.
    let mut card = fresh();
    admin_default(&mut card);
    let public = PivClient::new(&mut card)
        .generate_key(Slot::Authentication, Algorithm::Ed25519, false)
        .unwrap();
    assert_eq!(verify(&mut card, b"123456"), 0x9000);
    let message: Vec<u8> = (0..1500u32).map(|i| (i * 7) as u8).collect();
    let (sig, s) = operate(&mut card, 0xE0, 0x9A, 0x81, &message);
    assert_eq!(s, 0x9000);
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public.try_into().unwrap()).unwrap();
    key.verify_strict(
        &message,
        &ed25519_dalek::Signature::from_slice(&sig).unwrap(),
    )
    .unwrap();
}

#[test]
fn x25519_rfc7748_through_import_and_agree() {
    for v in vector_blocks("x25519.txt") {
        let mut card = fresh();
        admin_default(&mut card);
        assert_eq!(
            import(
                &mut card,
                Algorithm::X25519,
                0x9D,
                &[(0x08, hex(&v["private"]))]
            ),
            0x9000
        );
        let public = PivClient::new(&mut card)
            .public_key(Slot::KeyManagement)
            .unwrap()
            .unwrap();
        assert_eq!(to_hex(&public), v["public"]);
        assert_eq!(verify(&mut card, b"123456"), 0x9000);
        let (shared, s) = operate(&mut card, 0xE1, 0x9D, 0x85, &hex(&v["peer"]));
        assert_eq!((to_hex(&shared), s), (v["shared"].clone(), 0x9000));
        // A low-order point would give an all-zero secret: refused.
        assert_eq!(operate(&mut card, 0xE1, 0x9D, 0x85, &[0; 32]).1, 0x6A80);
        assert_eq!(operate(&mut card, 0xE1, 0x9D, 0x85, &[9; 31]).1, 0x6A80);
        assert_eq!(operate(&mut card, 0xE1, 0x9D, 0x81, &[1; 32]).1, 0x6A80);
    }
}

/// 1.2.840.113549.1.1.1, 1.2.840.10045.2.1, 1.3.101.112, 1.3.101.110.
fn spki_oid(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::P256 | Algorithm::P384 => "1.2.840.10045.2.1",
        Algorithm::Ed25519 => "1.3.101.112",
        Algorithm::X25519 => "1.3.101.110",
        _ => "1.2.840.113549.1.1.1",
    }
}

#[test]
fn attestation_certifies_every_algorithm_under_a_ca_root() {
    use x509_cert::Certificate;
    let mut card = fresh();
    admin_default(&mut card);
    let f9 = PivClient::new(&mut card)
        .get_object(0x5FFF01)
        .unwrap()
        .unwrap();
    let f9 = client::unwrap_tlv(&f9, 0x70).unwrap();
    let root = Certificate::from_der(f9).unwrap();
    let ext = root.tbs_certificate().extensions().unwrap();
    let constraints = ext
        .iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.19")
        .expect("basic constraints");
    assert!(constraints.critical);
    assert_eq!(constraints.extn_value.as_bytes(), &hex("30030101FF")[..]);
    assert!(ext.iter().any(|e| e.extn_id.to_string() == "2.5.29.15"));
    let root_key = root
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    let root_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(root_key).unwrap();

    for alg in [
        Algorithm::Rsa1024,
        Algorithm::Rsa2048,
        // The largest certificate the card makes.
        Algorithm::Rsa4096,
        Algorithm::P256,
        Algorithm::P384,
        Algorithm::Ed25519,
        Algorithm::X25519,
    ] {
        let public = PivClient::new(&mut card)
            .generate_key(Slot::CardAuthentication, alg, false)
            .unwrap();
        let (der, s) = exchange(&mut card, [0x00, 0xF9, 0x9E, 0x00], &[]);
        assert_eq!(s, 0x9000, "{alg:?}");
        let cert = Certificate::from_der(&der).unwrap();
        let spki = cert.tbs_certificate().subject_public_key_info();
        assert_eq!(spki.algorithm.oid.to_string(), spki_oid(alg), "{alg:?}");
        let key_bits = spki.subject_public_key.raw_bytes();
        if alg.rsa_bits().is_some() {
            let key = <rsa::PublicKey as rsa::pkcs1::DecodeRsaPublicKey>::from_pkcs1_der(key_bits)
                .unwrap();
            assert_eq!(key.n().to_be_bytes_trimmed_vartime().as_ref(), &public[..]);
            assert_eq!(key.e(), &BoxedUint::from(65_537u32));
        } else {
            assert_eq!(key_bits, &public[..], "{alg:?}");
        }
        assert_eq!(
            cert.tbs_certificate().issuer(),
            root.tbs_certificate().subject()
        );
        let tbs = cert.tbs_certificate().to_der().unwrap();
        let sig = p256::ecdsa::Signature::from_der(cert.signature().raw_bytes()).unwrap();
        use p256::ecdsa::signature::Verifier;
        root_key.verify(&tbs, &sig).unwrap();

        // The card reads its own certificates back (COMMIT RENEWAL's
        // check): this key under this algorithm, and nothing else.
        use applet::attest::certifies;
        let object = [&[0x70, 0x82][..], &(der.len() as u16).to_be_bytes(), &der].concat();
        assert_eq!(certifies(&object, alg, &public), Ok(true), "{alg:?}");
        let mut other = public.clone();
        *other.last_mut().unwrap() ^= 1;
        assert_eq!(certifies(&object, alg, &other), Ok(false), "{alg:?}");
        let another = if alg == Algorithm::P384 {
            Algorithm::P256
        } else {
            Algorithm::P384
        };
        assert_eq!(certifies(&object, another, &public), Ok(false), "{alg:?}");
        let cut = [
            &[0x70, 0x82][..],
            &(der.len() as u16 - 1).to_be_bytes(),
            &der[..der.len() - 1],
        ]
        .concat();
        assert!(certifies(&cut, alg, &public).is_err(), "{alg:?}");
    }
}

#[test]
fn every_algorithm_is_listed_at_select_and_in_metadata() {
    let mut card = boot_on(Flash::new(), 3);
    let (fci, s) = exchange(&mut card, [0x00, 0xA4, 0x04, 0x00], &hex("A000000308"));
    assert_eq!(s, 0x9000);
    let template = client::unwrap_tlv(&fci, 0x61).unwrap();
    let fields = client::tlvs(template).unwrap();
    let (_, ac) = fields.iter().find(|(t, _)| *t == 0xAC).expect("AC");
    let listed: Vec<u8> = client::tlvs(ac)
        .unwrap()
        .into_iter()
        .filter(|(t, _)| *t == 0x80)
        .map(|(_, v)| v[0])
        .collect();
    assert_eq!(listed, hex("03080A0C 06070516 1114 E0E1"));
    admin_default(&mut card);
    for alg in Algorithm::ALL
        .into_iter()
        .filter(|a| a.rsa_bits() < Some(3072))
    {
        let retired = Slot::from_byte(0x82).unwrap();
        let public = PivClient::new(&mut card)
            .generate_key(retired, alg, false)
            .unwrap();
        let meta = PivClient::new(&mut card)
            .key_metadata(retired)
            .unwrap()
            .unwrap();
        assert_eq!(meta, (alg, public), "{alg:?}");
    }
}

#[test]
fn alg_00_is_triple_des_for_the_management_key() {
    let mut card = fresh();
    assert_eq!(admin_auth(&mut card, 0x00, &DEFAULT_MGM), 0x9000);
    // The card answers a witness request under 00 as under 03.
    let rsp = send(&mut card, &hex("0087009B047C028000"));
    assert_eq!((rsp.len(), sw(&rsp)), (14, 0x9000));
}

/// How many RSA-4096 keys, each with a certificate of a typical size, the
/// default 128 KiB image holds: the flash budget the README quotes.
#[test]
fn rsa4096_keys_with_certificates_fit_a_128k_image() {
    let v = &vector_blocks("rsa.txt")[3];
    assert_eq!(v["bits"], "4096");
    let mut card = fresh();
    admin_default(&mut card);
    let parts = rsa_parts(v);
    // An RSA-4096 certificate signed by an RSA-4096 CA is about 1.4 KB.
    let mut object = tlv(0x70, &vec![0x30; 1_400]);
    object.extend(hex("710100FE00"));
    let slots = [0x9A, 0x9C, 0x9D, 0x9E].into_iter().chain(0x82..=0x95);
    let mut fitted = 0;
    for slot in slots {
        if import(&mut card, Algorithm::Rsa4096, slot, &parts) != 0x9000 {
            break;
        }
        let tag: u32 = match slot {
            0x9A => 0x5FC105,
            0x9C => 0x5FC10A,
            0x9D => 0x5FC10B,
            0x9E => 0x5FC101,
            n => 0x5FC10C + u32::from(n) - 0x81,
        };
        let mut data = hex(&format!("5C03{tag:06X}"));
        data.extend(tlv(0x53, &object));
        let (_, s) = exchange(&mut card, [0x00, 0xDB, 0x3F, 0xFF], &data);
        if s != 0x9000 {
            assert_eq!(s, 0x6A84, "full is the only refusal");
            break;
        }
        fitted += 1;
    }
    println!("{fitted} RSA-4096 keys with 1,400-byte certificates fit a 128 KiB image");
    assert_eq!(fitted, 24, "every key slot but F9");
    // What fitted still works.
    assert_eq!(verify(&mut card, b"123456"), 0x9000);
    let em = pkcs1_sha256(&hex(&v["message"]), 512);
    let (sig, s) = operate(&mut card, 0x16, 0x9A, 0x81, &em);
    assert_eq!((to_hex(&sig), s), (v["signature"].clone(), 0x9000));
}

#[test]
fn key_record_sizes_are_the_ones_the_readme_quotes() {
    use applet::keys::{MAX_RECORD, record_len};
    assert_eq!(record_len(Algorithm::P256), 142);
    assert_eq!(record_len(Algorithm::Rsa2048), 941);
    assert_eq!(record_len(Algorithm::Rsa4096), 1_837);
    assert_eq!(MAX_RECORD, 1_837);
    for alg in Algorithm::ALL {
        assert!(record_len(alg) <= MAX_RECORD);
    }
}

#[test]
fn x25519_wycheproof_through_import_and_agree() {
    let vectors = vector_blocks("x25519_wycheproof.txt");
    assert_eq!(vectors.len(), 518);
    let mut card = fresh();
    admin_default(&mut card);
    assert_eq!(verify(&mut card, b"123456"), 0x9000);
    let (mut agreed, mut refused) = (0, 0);
    for v in &vectors {
        let id = &v["id"];
        assert_eq!(
            import(
                &mut card,
                Algorithm::X25519,
                0x9D,
                &[(0x08, hex(&v["private"]))]
            ),
            0x9000,
            "test {id}"
        );
        let (shared, s) = operate(&mut card, 0xE1, 0x9D, 0x85, &hex(&v["peer"]));
        if v["expect"] == "refused" {
            assert_eq!(s, 0x6A80, "test {id}: a zero secret must be refused");
            refused += 1;
        } else {
            assert_eq!(
                (to_hex(&shared), s),
                (v["expect"].clone(), 0x9000),
                "test {id}"
            );
            agreed += 1;
        }
    }
    println!("X25519 Wycheproof: {agreed} agreed, {refused} low-order peers refused");
    assert_eq!((agreed, refused), (487, 31));
}
