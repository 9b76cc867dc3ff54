//! The simulator's vpcd frame decoder and control handling on any byte
//! stream, with a PIV card behind it: no panic; get ATR answers the ATR;
//! every APDU answer ends in a status word.
#![no_main]

use card_os::testing::RamFlash;
use card_os::{Card, atr};
use libfuzzer_sys::fuzz_target;
use piv::{DeviceKey, Piv};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use simulator::vpcd::{self, Frame};

type Flash = RamFlash<{ 64 * 1024 }, 4096>;

fuzz_target!(|data: &[u8]| {
    let atr = atr::t1(b"S9CARDV").unwrap();
    let mut card: Card<Flash, ChaCha8Rng, _> = Card::boot(
        Flash::new(),
        ChaCha8Rng::seed_from_u64(3),
        (Piv::new(DeviceKey::new([1; 32]), true),),
        atr.clone(),
    )
    .unwrap();
    let mut stream = std::io::Cursor::new(data);
    let mut frames = 0;
    while let Ok(frame) = vpcd::read_frame(&mut stream) {
        frames += 1;
        if frames > 64 {
            break;
        }
        let answer = vpcd::respond(&mut card, &frame);
        match (&frame, answer) {
            (Frame::GetAtr, Some(a)) => assert_eq!(a.bytes, atr.as_slice()),
            (Frame::Apdu(_), Some(r)) => assert!(r.bytes.len() >= 2, "an answer without a status word"),
            (Frame::Apdu(_), None) => panic!("an APDU went unanswered"),
            (_, None) => {}
            (f, Some(_)) => panic!("{f:?} must not be answered"),
        }
        // What we would send back always fits a frame.
        let mut out = Vec::new();
        vpcd::write_frame(&mut out, card.atr()).unwrap();
    }
});
