//! A PIV card in-process for the benches.
#![allow(dead_code)]

use applet::{DeviceKey, Piv};
use card_os::testing::RamFlash;
use card_os::{Card, atr};
use client::{AdminAlgorithm, DEFAULT_MGM, PivClient};
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

pub fn boot(flash: Flash) -> PivCard {
    boot_seeded(flash, 5)
}

/// A card whose RNG starts from `seed`.
pub fn boot_seeded(flash: Flash, seed: u64) -> PivCard {
    let atr = atr::t1(b"S9CARDV").unwrap();
    let mut card = Card::boot(
        flash,
        ChaCha8Rng::seed_from_u64(seed),
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

/// Mutual authentication with the factory management key, through the
/// host PIV client.
pub fn admin(card: &mut PivCard) {
    let mut client = PivClient::new(card);
    client
        .authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
        .unwrap();
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
