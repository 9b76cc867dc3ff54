//! A PIV card in-process for the benches, and the host side of management
//! key authentication.
#![allow(dead_code)]

use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use card_os::testing::RamFlash;
use card_os::{Card, atr};
use piv::{DeviceKey, Piv};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

pub type Flash = RamFlash<{ 128 * 1024 }, 4096>;
pub type PivCard = Card<Flash, ChaCha8Rng, (Piv,)>;

pub const SELECT: &[u8] = &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
pub const VERIFY_RIGHT: &[u8] = &[
    0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF,
];
pub const VERIFY_WRONG: &[u8] = &[
    0x00, 0x20, 0x00, 0x80, 0x08, b'6', b'5', b'4', b'3', b'2', b'1', 0xFF, 0xFF,
];
pub const GENERATE_9A: &[u8] = &[
    0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00,
];
pub const DEFAULT_MGM: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

pub fn boot(flash: Flash) -> PivCard {
    let atr = atr::t1(b"S9CARDV").unwrap();
    let mut card = Card::boot(
        flash,
        ChaCha8Rng::seed_from_u64(5),
        (Piv::new(DeviceKey::new([7; 32]), true),),
        atr,
    )
    .unwrap();
    card.power_on();
    ok(&mut card, SELECT);
    card
}

pub fn send(card: &mut PivCard, apdu: &[u8]) -> Vec<u8> {
    card.transmit(apdu).unwrap().to_vec()
}

pub fn ok(card: &mut PivCard, apdu: &[u8]) -> Vec<u8> {
    let rsp = send(card, apdu);
    assert_eq!(&rsp[rsp.len() - 2..], &[0x90, 0x00], "{apdu:02X?}");
    rsp
}

fn tdes(key: &[u8], block: &mut [u8], encrypt: bool) {
    let c = des::TdesEde3::new_from_slice(key).unwrap();
    let mut b = Array::try_from(&*block).unwrap();
    if encrypt {
        c.encrypt_block(&mut b);
    } else {
        c.decrypt_block(&mut b);
    }
    block.copy_from_slice(&b);
}

/// Mutual authentication with the factory management key.
pub fn admin(card: &mut PivCard) {
    let rsp = ok(
        card,
        &[0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00],
    );
    let mut witness = rsp[4..12].to_vec();
    tdes(&DEFAULT_MGM, &mut witness, false);
    let mut apdu = vec![0x00, 0x87, 0x03, 0x9B, 0x16, 0x7C, 0x14, 0x80, 0x08];
    apdu.extend(&witness);
    apdu.extend([0x81, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]);
    ok(card, &apdu);
}

/// `7C { 82 00, 81 20 digest }` for slot `slot`.
pub fn sign_apdu(slot: u8, digest: &[u8; 32]) -> Vec<u8> {
    let mut apdu = vec![
        0x00, 0x87, 0x11, slot, 0x26, 0x7C, 0x24, 0x82, 0x00, 0x81, 0x20,
    ];
    apdu.extend(digest);
    apdu.push(0x00);
    apdu
}
