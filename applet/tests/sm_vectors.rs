//! Secure messaging against known answers: `data/sm/sm-vectors.txt`,
//! written by an independent client on OpenSSL (`data/sm/generate.py`).
//! The card's KDF, key confirmation, MAC chains and cryptograms must give
//! the same bytes, for both cipher suites, exchange after exchange.

use std::collections::HashMap;

use apdu::{Header, Status};
use applet::error::Error;
use applet::sm::{self, Channel, Establishment, RESERVED, Suite};
use sha2::{Digest, Sha256};

/// One suite's section: its named values and its exchanges in order.
struct Section {
    values: HashMap<String, Vec<u8>>,
    /// (header, plaintext, wrapped command data)
    commands: Vec<([u8; 4], Vec<u8>, Vec<u8>)>,
    /// (status, plaintext answer, wrapped answer)
    answers: Vec<(u16, Vec<u8>, Vec<u8>)>,
}

impl Section {
    fn get(&self, name: &str) -> &[u8] {
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }
}

fn sections() -> HashMap<String, Section> {
    let mut out = HashMap::new();
    let mut current: Option<(String, Section)> = None;
    for line in include_str!("data/sm/sm-vectors.txt").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if let Some((n, s)) = current.take() {
                out.insert(n, s);
            }
            let section = Section {
                values: HashMap::new(),
                commands: Vec::new(),
                answers: Vec::new(),
            };
            current = Some((name.to_string(), section));
            continue;
        }
        let (key, value) = line.split_once(" = ").expect("key = value");
        let section = &mut current.as_mut().expect("a section").1;
        let fields: Vec<Vec<u8>> = value
            .split(' ')
            .map(|f| hex::decode(f).expect("hex"))
            .collect();
        match key {
            "command" => section.commands.push((
                fields[0].clone().try_into().expect("4-byte header"),
                fields[1].clone(),
                fields[2].clone(),
            )),
            "answer" => section.answers.push((
                u16::from_be_bytes(fields[0].clone().try_into().expect("SW")),
                fields[1].clone(),
                fields[2].clone(),
            )),
            _ => {
                section.values.insert(key.to_string(), fields[0].clone());
            }
        }
    }
    if let Some((n, s)) = current {
        out.insert(n, s);
    }
    out
}

/// The request a client sends: CB_H || ID_sH || Q_eH.
fn request(v: &Section) -> Vec<u8> {
    [v.get("control"), v.get("host_id"), v.get("host_public")].concat()
}

fn ecdh(suite: Suite, v: &Section) -> Vec<u8> {
    match suite {
        Suite::Cs2 => {
            let d = p256::SecretKey::from_slice(v.get("card_private")).expect("key");
            let q = p256::PublicKey::from_sec1_bytes(v.get("host_public")).expect("point");
            p256::ecdh::diffie_hellman(d.to_nonzero_scalar(), q.as_affine())
                .raw_secret_bytes()
                .to_vec()
        }
        Suite::Cs7 => {
            let d = p384::SecretKey::from_slice(v.get("card_private")).expect("key");
            let q = p384::PublicKey::from_sec1_bytes(v.get("host_public")).expect("point");
            p384::ecdh::diffie_hellman(d.to_nonzero_scalar(), q.as_affine())
                .raw_secret_bytes()
                .to_vec()
        }
    }
}

/// The card's side of a section's key establishment.
fn establish(suite: Suite, v: &Section) -> (Channel, sm::Block) {
    let request = request(v);
    let request = Establishment::parse(suite, &request).expect("request");
    let card_id: [u8; 8] = v.get("card_id").try_into().expect("8 bytes");
    sm::establish(suite, &request, &ecdh(suite, v), &card_id, v.get("nonce")).expect("establish")
}

fn check_suite(name: &str, suite: Suite) {
    let all = sections();
    let v = &all[name];
    assert_eq!(v.get("suite"), [suite.id()]);
    assert_eq!(ecdh(suite, v), v.get("z"), "{name}: Z");
    assert_eq!(
        &Sha256::digest(v.get("cvc"))[..8],
        v.get("card_id"),
        "{name}: ID_sICC"
    );

    let request = request(v);
    let request = Establishment::parse(suite, &request).expect("request");
    let card_id: [u8; 8] = v.get("card_id").try_into().expect("8 bytes");
    let mut info = [0u8; 69];
    let info = sm::other_info(suite, &request, &card_id, v.get("nonce"), &mut info).expect("info");
    assert_eq!(info, v.get("other_info"), "{name}: OtherInfo");

    let mut keying = vec![0u8; 4 * suite.key_len()];
    sm::kdf(suite, v.get("z"), info, &mut keying).expect("kdf");
    let expected = [
        v.get("sk_cfrm"),
        v.get("sk_mac"),
        v.get("sk_enc"),
        v.get("sk_rmac"),
    ]
    .concat();
    assert_eq!(keying, expected, "{name}: session keys");

    let (mut channel, cryptogram) = establish(suite, v);
    assert_eq!(
        cryptogram,
        v.get("cryptogram"),
        "{name}: AuthCryptogram_ICC"
    );
    assert_eq!(v.commands.len(), v.answers.len());
    assert!(v.commands.len() >= 5, "{name}: exchanges");

    for (n, ((head, plain, wrapped), (sw, answer, wrapped_answer))) in
        v.commands.iter().zip(&v.answers).enumerate()
    {
        let header = Header {
            cla: head[0],
            ins: head[1],
            p1: head[2],
            p2: head[3],
        };
        let mut data = wrapped.clone();
        let at = channel
            .unwrap(&header, &mut data)
            .unwrap_or_else(|e| panic!("{name} #{n}: unwrap: {e:?}"));
        assert_eq!(&data[at], &plain[..], "{name} #{n}: command plaintext");

        let mut buf = vec![0u8; 1024];
        buf[RESERVED..RESERVED + answer.len()].copy_from_slice(answer);
        let status = Status::from_sw(*sw).expect("a known status");
        let len = channel.wrap(&mut buf, answer.len(), status).expect("wrap");
        assert_eq!(
            hex::encode(&buf[..len]),
            hex::encode(wrapped_answer),
            "{name} #{n}: answer"
        );
    }
    assert_eq!(channel.counter(), v.commands.len() as u32);
}

#[test]
fn cs2_known_answers() {
    check_suite("cs2", Suite::Cs2);
}

#[test]
fn cs7_known_answers() {
    check_suite("cs7", Suite::Cs7);
}

/// A command whose MAC is off by one bit, or replayed, or taken out of
/// order, is refused as the session's data objects incorrect, and one
/// without a MAC as missing; nothing is decrypted.
#[test]
fn a_command_that_is_not_the_sessions_is_refused() {
    let all = sections();
    let v = &all["cs2"];
    let (head, _, wrapped) = &v.commands[0];
    let header = Header {
        cla: head[0],
        ins: head[1],
        p1: head[2],
        p2: head[3],
    };
    let plain = &v.commands[0].1;

    // Every single-bit change of the wrapped data is caught, and leaves no
    // plaintext behind.
    for bit in 0..wrapped.len() * 8 {
        let (mut channel, _) = establish(Suite::Cs2, v);
        let mut bad = wrapped.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let e = channel.unwrap(&header, &mut bad).expect_err("changed");
        assert!(
            matches!(e, Error::SmIncorrect | Error::SmMissing),
            "bit {bit}: {e:?}"
        );
        assert!(
            !bad.windows(plain.len()).any(|w| w == &plain[..]),
            "bit {bit}: plaintext"
        );
    }

    // A changed header is a different command.
    let (mut channel, _) = establish(Suite::Cs2, v);
    let other = Header { p2: 0x81, ..header };
    assert_eq!(
        channel.unwrap(&other, &mut wrapped.clone()),
        Err(Error::SmIncorrect)
    );

    // Replayed: the MAC chain has moved on.
    let (mut channel, _) = establish(Suite::Cs2, v);
    channel
        .unwrap(&header, &mut wrapped.clone())
        .expect("first");
    assert_eq!(
        channel.unwrap(&header, &mut wrapped.clone()),
        Err(Error::SmIncorrect)
    );

    // Out of order: the second command first.
    let (mut channel, _) = establish(Suite::Cs2, v);
    let (head2, _, wrapped2) = &v.commands[1];
    let header2 = Header {
        cla: head2[0],
        ins: head2[1],
        p1: head2[2],
        p2: head2[3],
    };
    assert_eq!(
        channel.unwrap(&header2, &mut wrapped2.clone()),
        Err(Error::SmIncorrect)
    );

    // No MAC at all.
    let (mut channel, _) = establish(Suite::Cs2, v);
    let without = &wrapped[..wrapped.len() - 10];
    assert_eq!(
        channel.unwrap(&header, &mut without.to_vec()),
        Err(Error::SmMissing)
    );
}

/// The request's point must be the suite's, uncompressed, and the control
/// byte may not ask for persistent binding.
#[test]
fn a_malformed_request_is_refused() {
    let all = sections();
    let v = &all["cs2"];
    let good = request(v);
    assert!(Establishment::parse(Suite::Cs2, &good).is_ok());
    assert_eq!(Establishment::parse(Suite::Cs7, &good), Err(Error::BadData));
    let mut bound = good.clone();
    bound[0] = 0x10;
    assert_eq!(
        Establishment::parse(Suite::Cs2, &bound),
        Err(Error::BadData)
    );
    let mut compressed = good.clone();
    compressed[9] = 0x02;
    assert_eq!(
        Establishment::parse(Suite::Cs2, &compressed),
        Err(Error::BadData)
    );
    assert_eq!(
        Establishment::parse(Suite::Cs2, &good[..good.len() - 1]),
        Err(Error::BadData)
    );
    assert_eq!(Establishment::parse(Suite::Cs2, &[]), Err(Error::BadData));
}
