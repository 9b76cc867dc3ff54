//! A PIV card in-process, and the host side of its protocols, for tests.
#![allow(dead_code)]

pub mod sm;

use applet::{DeviceKey, Management, Piv, Profile};
use card_os::Card;
use card_os::testing::RamFlash;
use client::{AdminAlgorithm, PivClient};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

pub type Flash = RamFlash<{ 128 * 1024 }, 4096>;
/// PIV, and the Management application a YubiKey-compatible card has.
pub type PivCard<F = Flash> = Card<F, ChaCha8Rng, (Piv, Option<Management>)>;

pub const SELECT: &str = "00A4040005A000000308";
pub const DEFAULT_MGM: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// Hex as the tests and vector files write it, spaces allowed.
pub fn hex(text: &str) -> Vec<u8> {
    hex::decode(text.split_whitespace().collect::<String>()).unwrap()
}

pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

pub fn device_key() -> DeviceKey {
    DeviceKey::new([0x5D; 32])
}

/// Boots a Series 9 card on `flash`, powered, with a seeded RNG.
pub fn boot_on<F: embedded_storage::nor_flash::NorFlash>(flash: F, seed: u64) -> PivCard<F> {
    boot_as(flash, seed, Profile::Series9)
}

/// Boots a card of `profile` on `flash`, as the simulator makes one.
pub fn boot_as<F: embedded_storage::nor_flash::NorFlash>(
    flash: F,
    seed: u64,
    profile: Profile,
) -> PivCard<F> {
    let management = match profile {
        Profile::Series9 => None,
        Profile::YubiKey { pin_complexity } => Some(Management::new(device_key(), pin_complexity)),
    };
    let mut card = Card::boot(
        flash,
        ChaCha8Rng::seed_from_u64(seed),
        (
            Piv::new(device_key(), true).with_profile(profile),
            management,
        ),
        applet::atr(profile, true),
    )
    .unwrap();
    card.power_on();
    card
}

/// A fresh card, selected.
pub fn fresh() -> PivCard {
    let mut card = boot_on(Flash::new(), 1);
    assert_eq!(sw(&send(&mut card, &hex(SELECT))), 0x9000);
    card
}

/// Sends one APDU; returns data ‖ SW.
pub fn send<F: embedded_storage::nor_flash::NorFlash>(
    card: &mut PivCard<F>,
    apdu: &[u8],
) -> Vec<u8> {
    card.transmit(apdu).unwrap().to_vec()
}

/// Sends an APDU as a tool would (the host PIV client: chained above
/// 255 bytes, `61 xx` parts collected). Returns data and SW.
pub fn exchange<F: embedded_storage::nor_flash::NorFlash>(
    card: &mut PivCard<F>,
    header: [u8; 4],
    data: &[u8],
) -> (Vec<u8>, u16) {
    PivClient::new(card).exchange(header, data).unwrap()
}

pub fn sw(rsp: &[u8]) -> u16 {
    u16::from_be_bytes([rsp[rsp.len() - 2], rsp[rsp.len() - 1]])
}

pub fn padded(pin: &[u8]) -> Vec<u8> {
    let mut v = pin.to_vec();
    v.resize(8, 0xFF);
    v
}

pub fn verify<F: embedded_storage::nor_flash::NorFlash>(card: &mut PivCard<F>, pin: &[u8]) -> u16 {
    let mut apdu = vec![0x00, 0x20, 0x00, 0x80, 0x08];
    apdu.extend_from_slice(&padded(pin));
    sw(&send(card, &apdu))
}

/// The management key algorithm of an algorithm byte, as the vectors write it.
pub fn mgm(alg: u8) -> AdminAlgorithm {
    match alg {
        0x00 | 0x03 => AdminAlgorithm::Tdes,
        0x08 => AdminAlgorithm::Aes128,
        0x0A => AdminAlgorithm::Aes192,
        0x0C => AdminAlgorithm::Aes256,
        _ => panic!("alg {alg:02X}"),
    }
}

/// The host side of a management-key block cipher, straight from the
/// cipher crates rather than the applet's own code, so that a handshake
/// test would catch a card whose cipher is wrong both ways.
pub fn cipher(alg: u8, key: &[u8], block: &mut [u8], encrypt: bool) {
    use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
    fn run<C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt>(
        key: &[u8],
        block: &mut [u8],
        encrypt: bool,
    ) {
        let c = C::new_from_slice(key).unwrap();
        let mut b = Array::try_from(&*block).unwrap();
        if encrypt {
            c.encrypt_block(&mut b);
        } else {
            c.decrypt_block(&mut b);
        }
        block.copy_from_slice(&b);
    }
    match mgm(alg) {
        AdminAlgorithm::Tdes => run::<des::TdesEde3>(key, block, encrypt),
        AdminAlgorithm::Aes128 => run::<aes::Aes128>(key, block, encrypt),
        AdminAlgorithm::Aes192 => run::<aes::Aes192>(key, block, encrypt),
        AdminAlgorithm::Aes256 => run::<aes::Aes256>(key, block, encrypt),
    }
}

/// Mutual management-key authentication as yubico-piv-tool does it.
pub fn admin_auth<F: embedded_storage::nor_flash::NorFlash>(
    card: &mut PivCard<F>,
    alg: u8,
    key: &[u8],
) -> u16 {
    let block = if matches!(alg, 0x00 | 0x03) { 8 } else { 16 };
    let rsp = send(card, &[0x00, 0x87, alg, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00]);
    if sw(&rsp) != 0x9000 {
        return sw(&rsp);
    }
    assert_eq!(&rsp[..4], &[0x7C, 2 + block as u8, 0x80, block as u8]);
    let mut witness = rsp[4..4 + block].to_vec();
    cipher(alg, key, &mut witness, false);
    let challenge: Vec<u8> = (0..block as u8)
        .map(|i| i.wrapping_mul(37) ^ 0x5A)
        .collect();
    let mut data = vec![0x7C, 4 + 2 * block as u8, 0x80, block as u8];
    data.extend_from_slice(&witness);
    data.extend_from_slice(&[0x81, block as u8]);
    data.extend_from_slice(&challenge);
    let mut apdu = vec![0x00, 0x87, alg, 0x9B, data.len() as u8];
    apdu.extend_from_slice(&data);
    let rsp = send(card, &apdu);
    if sw(&rsp) != 0x9000 {
        return sw(&rsp);
    }
    let mut expected = challenge.clone();
    cipher(alg, key, &mut expected, true);
    assert_eq!(
        &rsp[4..4 + block],
        &expected[..],
        "card's response to our challenge"
    );
    0x9000
}

/// Authenticates with the factory management key, of the algorithm the
/// card's metadata gives (3DES on Series 9, AES-192 on the YubiKey
/// profile), as ykman does.
pub fn admin_default<F: embedded_storage::nor_flash::NorFlash>(card: &mut PivCard<F>) {
    let metadata = send(card, &[0x00, 0xF7, 0x00, 0x9B, 0x00]);
    let alg = match metadata[..] {
        [0x01, 0x01, alg, ..] => alg,
        _ => panic!("management key metadata: {metadata:02X?}"),
    };
    assert_eq!(admin_auth(card, alg, &DEFAULT_MGM), 0x9000);
}

/// GENERATE a P-256 key in `slot`; returns the uncompressed point.
pub fn generate<F: embedded_storage::nor_flash::NorFlash>(
    card: &mut PivCard<F>,
    slot: u8,
) -> Vec<u8> {
    let (data, s) = exchange(card, [0x00, 0x47, 0x00, slot], &hex("AC03800111"));
    assert_eq!(s, 0x9000, "generate {slot:02X}");
    assert_eq!(&data[..5], &hex("7F49438641")[..]);
    data[5..].to_vec()
}

/// ECDSA through GENERAL AUTHENTICATE; returns the DER signature.
pub fn sign<F: embedded_storage::nor_flash::NorFlash>(
    card: &mut PivCard<F>,
    slot: u8,
    digest: &[u8],
) -> (Vec<u8>, u16) {
    let mut inner = vec![0x82, 0x00, 0x81, digest.len() as u8];
    inner.extend_from_slice(digest);
    let mut data = vec![0x7C, inner.len() as u8];
    data.extend_from_slice(&inner);
    let (rsp, s) = exchange(card, [0x00, 0x87, 0x11, slot], &data);
    if s != 0x9000 {
        return (rsp, s);
    }
    assert_eq!(rsp[0], 0x7C);
    assert_eq!(rsp[2], 0x82);
    (rsp[4..].to_vec(), s)
}

/// The blocks of a vector file in `tests/data/algorithms/`: `name value`
/// lines, blank-line separated, `#` comments.
pub fn vector_blocks(file: &str) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/algorithms/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut out = vec![std::collections::HashMap::new()];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        match line.split_once(' ') {
            Some((k, v)) => {
                out.last_mut().unwrap().insert(k.to_string(), v.to_string());
            }
            None if !out.last().unwrap().is_empty() => out.push(Default::default()),
            None => {}
        }
    }
    out.retain(|b| !b.is_empty());
    out
}

/// The IMPORT data field of the RSA-2048 key in `rsa.txt`: CRT parts under
/// tags `01`–`05`.
pub fn rsa2048_import() -> Vec<u8> {
    let v = vector_blocks("rsa.txt").swap_remove(1);
    assert_eq!(v["bits"], "2048");
    ["p", "q", "dp", "dq", "qinv"]
        .iter()
        .zip(1u8..)
        .flat_map(|(k, t)| client::tlv(t, &hex(&v[*k])))
        .collect()
}

/// A DER TLV (one- to three-byte lengths; BER-TLV reads them the same).
pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut out = vec![tag];
    match n {
        0..0x80 => out.push(n as u8),
        0x80..0x100 => out.extend([0x81, n as u8]),
        _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// A certificate object (`70` certificate, `71`, `FE`), as PUT DATA and
/// COMMIT RENEWAL take it, whose certificate names `public`, a key of
/// `algorithm` as the card keeps it (RSA: the modulus). Unsigned: the
/// card reads the subject key and never the signature. `pad` bytes of
/// issuer name make it as long as a real certificate.
pub fn certificate_object(
    algorithm: applet::algorithm::Algorithm,
    public: &[u8],
    pad: usize,
) -> Vec<u8> {
    use applet::algorithm::Algorithm;
    let oid = |bytes: &[u8]| der(0x06, bytes);
    let ec = oid(&[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]);
    let (identifier, key) = match algorithm {
        Algorithm::P256 => (
            [ec, oid(&[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07])].concat(),
            public.to_vec(),
        ),
        Algorithm::P384 => (
            [ec, oid(&[0x2B, 0x81, 0x04, 0x00, 0x22])].concat(),
            public.to_vec(),
        ),
        Algorithm::Ed25519 => (oid(&[0x2B, 0x65, 0x70]), public.to_vec()),
        Algorithm::X25519 => (oid(&[0x2B, 0x65, 0x6E]), public.to_vec()),
        _ => {
            let modulus = [&[0u8][..], public].concat();
            let rsa = der(0x30, &[der(0x02, &modulus), der(0x02, &[1, 0, 1])].concat());
            let identifier = [
                oid(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]),
                vec![0x05, 0x00],
            ]
            .concat();
            (identifier, rsa)
        }
    };
    let spki = der(
        0x30,
        &[
            der(0x30, &identifier),
            der(0x03, &[&[0u8][..], &key].concat()),
        ]
        .concat(),
    );
    let signature = der(
        0x30,
        &oid(&[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]),
    );
    let time = der(0x17, b"260101000000Z");
    let issuer = der(0x30, &der(0x04, &vec![0x5A; pad]));
    let tbs = der(
        0x30,
        &[
            der(0xA0, &der(0x02, &[2])),
            der(0x02, &[1]),
            signature.clone(),
            issuer,
            der(0x30, &[time.clone(), time].concat()),
            der(0x30, &[]),
            spki,
        ]
        .concat(),
    );
    let certificate = der(0x30, &[tbs, signature, der(0x03, &[0])].concat());
    [der(0x70, &certificate), hex("710100FE00")].concat()
}

/// The certificate object for the key staged for `slot`, read from the
/// card's store as COMMIT RENEWAL will.
pub fn staged_certificate<F: embedded_storage::nor_flash::NorFlash>(
    card: &mut PivCard<F>,
    slot: applet::slot::Slot,
    pad: usize,
) -> Vec<u8> {
    let record = applet::keys::KeyRecord::load(
        card.store_mut(),
        applet::layout::staged_key(slot),
        slot,
        &device_key(),
    )
    .unwrap()
    .expect("a staged key");
    certificate_object(record.algorithm, record.public(), pad)
}
