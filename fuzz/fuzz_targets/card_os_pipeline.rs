//! Any APDU sequence against the card OS with a trivial applet: no panic,
//! every response ends in a known status word, none is 6F 00, and none is
//! longer than 256 data bytes.
#![no_main]

use card_os::testing::{EchoApplet, RamFlash};
use card_os::{Card, atr};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

type Flash = RamFlash<{ 16 * 1024 }, 1024>;

fuzz_target!(|data: &[u8]| {
    let applets = (
        EchoApplet::new(&[0xF0, 1, 2, 3, 4, 5]),
        EchoApplet::new(&[0xF0, 1, 2, 3, 4, 6]),
    );
    let mut card: Card<Flash, ChaCha8Rng, _> = Card::boot(
        Flash::new(),
        ChaCha8Rng::seed_from_u64(0),
        applets,
        atr::t1(&[]).unwrap(),
    )
    .unwrap();
    card.power_on();
    // Each APDU is a length byte and that many bytes; 0xFF resets.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0xFF {
            card.warm_reset();
            rest = tail;
            continue;
        }
        let (apdu, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        let rsp = card.transmit(apdu).unwrap();
        assert!((2..=258).contains(&rsp.len()));
        let sw = u16::from_be_bytes([rsp[rsp.len() - 2], rsp[rsp.len() - 1]]);
        let status = apdu::Status::from_sw(sw).expect("a status word from the table");
        assert_ne!(sw, 0x6F00);
        if !status.is_success() {
            assert_eq!(rsp.len(), 2, "an error with data");
        }
    }
});
