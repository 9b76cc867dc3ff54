//! Secure messaging against sessions captured with NIST's test PIV cards
//! (Special Database 33), CS2 and CS7, contact and contactless:
//! `data/sm/sd33-vectors.txt` (made by `data/sm/sd33.py` from the published
//! captures). The card's private key `04` is not in a capture, so the
//! establishment is checked from the ECDH secret Z on: OtherInfo, the four
//! session keys, the key confirmation. Then the card's half of every
//! protected exchange: its unwrapping of the client's command (the MAC
//! chain verifies, the pairing code and the PIN decrypt to what the
//! client sent), and its wrapping of the answer the test card gave (the
//! same bytes, so the same IV, padding and response MAC chain).

use std::collections::HashMap;

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use apdu::{Header, Status};
use applet::sm::{self, Establishment, RESERVED, Suite};
use sha2::{Digest, Sha256};

struct Card {
    name: String,
    values: HashMap<String, Vec<u8>>,
    /// (header, wrapped command data, wrapped answer)
    exchanges: Vec<([u8; 4], Vec<u8>, Vec<u8>)>,
}

impl Card {
    fn get(&self, name: &str) -> &[u8] {
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("{}: {name} missing", self.name))
    }
}

fn cards() -> Vec<Card> {
    let mut out: Vec<Card> = Vec::new();
    for line in include_str!("data/sm/sd33-vectors.txt").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push(Card {
                name: name.into(),
                values: HashMap::new(),
                exchanges: Vec::new(),
            });
            continue;
        }
        let card = out.last_mut().expect("a section");
        let (key, value) = line.split_once(" = ").expect("key = value");
        let fields: Vec<Vec<u8>> = value
            .split(' ')
            .map(|f| hex::decode(f).expect("hex"))
            .collect();
        if key == "exchange" {
            let header = fields[0].clone().try_into().expect("a header");
            card.exchanges
                .push((header, fields[1].clone(), fields[2].clone()));
        } else {
            card.values.insert(key.into(), fields[0].clone());
        }
    }
    out
}

/// The block `counter` enciphered: a response's IV is the answer
/// counter's, `80 00 … n`.
fn iv(suite: Suite, key: &[u8], n: u32) -> [u8; 16] {
    let mut block = [0u8; 16];
    block[0] = 0x80;
    block[12..].copy_from_slice(&n.to_be_bytes());
    let b: &mut aes::Block = (&mut block).into();
    match suite {
        Suite::Cs2 => aes::Aes128::new_from_slice(key).unwrap().encrypt_block(b),
        Suite::Cs7 => aes::Aes256::new_from_slice(key).unwrap().encrypt_block(b),
    }
    block
}

/// What a test card's answer says: its plaintext data (decrypted here, as
/// a client does) and its status word.
fn open_answer(suite: Suite, enc: &[u8], n: u32, answer: &[u8]) -> (Vec<u8>, u16) {
    let at = answer.len() - 14;
    assert_eq!(answer[at..at + 2], [0x99, 0x02]);
    let sw = u16::from_be_bytes([answer[at + 2], answer[at + 3]]);
    if at == 0 {
        return (Vec::new(), sw);
    }
    let (tlv, rest) = apdu::tlv::Tlv::parse(&answer[..at]).unwrap();
    assert!(rest.is_empty() && tlv.tag.value() == 0x87);
    let (&indicator, blocks) = tlv.value.split_first().unwrap();
    assert_eq!(indicator, 0x01);
    let mut chain = iv(suite, enc, n);
    let mut plain = Vec::new();
    for block in blocks.chunks(16) {
        let mut b: [u8; 16] = block.try_into().unwrap();
        let ab: &mut aes::Block = (&mut b).into();
        match suite {
            Suite::Cs2 => aes::Aes128::new_from_slice(enc).unwrap().decrypt_block(ab),
            Suite::Cs7 => aes::Aes256::new_from_slice(enc).unwrap().decrypt_block(ab),
        }
        for (p, c) in b.iter_mut().zip(chain) {
            *p ^= c;
        }
        plain.extend_from_slice(&b);
        chain = block.try_into().unwrap();
    }
    let end = plain.iter().rposition(|&b| b == 0x80).unwrap();
    assert!(plain[end + 1..].iter().all(|&b| b == 0));
    plain.truncate(end);
    (plain, sw)
}

#[test]
fn the_card_speaks_as_nists_test_cards() {
    let cards = cards();
    assert_eq!(cards.len(), 6);
    let mut suites = Vec::new();
    let mut exchanges = 0;
    for card in &cards {
        let name = &card.name;
        let suite = Suite::from_id(card.get("suite")[0]).expect("a suite");
        suites.push(suite);
        assert_eq!(
            &Sha256::digest(card.get("cvc"))[..8],
            card.get("card_id"),
            "{name}: ID_sICC"
        );

        let request = [
            card.get("control"),
            card.get("host_id"),
            card.get("host_public"),
        ]
        .concat();
        let request = Establishment::parse(suite, &request).expect("request");
        let card_id: [u8; 8] = card.get("card_id").try_into().unwrap();
        let mut info = [0u8; sm::MAX_OTHER_INFO];
        let info = sm::other_info(suite, &request, &card_id, card.get("nonce"), &mut info).unwrap();
        assert_eq!(info, card.get("other_info"), "{name}: OtherInfo");
        let mut keying = vec![0u8; 4 * suite.key_len()];
        sm::kdf(suite, card.get("z"), info, &mut keying).unwrap();
        let keys = [
            card.get("sk_cfrm"),
            card.get("sk_mac"),
            card.get("sk_enc"),
            card.get("sk_rmac"),
        ];
        assert_eq!(keying, keys.concat(), "{name}: session keys");
        let (mut channel, cryptogram) =
            sm::establish(suite, &request, card.get("z"), &card_id, card.get("nonce")).unwrap();
        assert_eq!(
            cryptogram,
            card.get("cryptogram"),
            "{name}: AuthCryptogram_ICC"
        );

        let enc = card.get("sk_enc");
        for (n, (head, wrapped, answer)) in card.exchanges.iter().enumerate() {
            let header = Header {
                cla: head[0],
                ins: head[1],
                p1: head[2],
                p2: head[3],
            };
            let mut data = wrapped.clone();
            let plain = channel
                .unwrap(&header, &mut data)
                .unwrap_or_else(|e| panic!("{name} #{n}: the client's command: {e:?}"));
            let plain = &data[plain];
            // The codes the client sent, as it sent them.
            if header.ins == 0x20 && header.p2 == 0x98 {
                assert_eq!(plain, card.get("pairing_code"), "{name}: pairing code");
            }
            if header.ins == 0x20 && matches!(header.p2, 0x00 | 0x80) {
                // Some captures note the PIN without its `FF` padding.
                let mut pin = card.get("pin").to_vec();
                pin.resize(8, 0xFF);
                assert_eq!(plain, pin, "{name}: PIN");
            }
            // The card's answer, wrapped by this card as the test card
            // wrapped it.
            let (answer_plain, sw) = open_answer(suite, enc, channel.counter(), answer);
            let mut buf = vec![0u8; answer_plain.len() + RESERVED + sm::AFTER];
            buf[RESERVED..RESERVED + answer_plain.len()].copy_from_slice(&answer_plain);
            let status = Status::from_sw(sw).expect("a known status");
            let len = channel.wrap(&mut buf, answer_plain.len(), status).unwrap();
            assert_eq!(
                hex::encode(&buf[..len]),
                hex::encode(answer),
                "{name} #{n}: the answer"
            );
            exchanges += 1;
        }
    }
    assert!(suites.contains(&Suite::Cs2) && suites.contains(&Suite::Cs7));
    assert!(exchanges >= 60, "{exchanges} exchanges");
}
