//! The card-os frame loop (the vpcd link's framing) on any byte stream, with a PIV card behind it: no
//! panic; get ATR answers the ATR; every APDU answer ends in a status word;
//! every answer goes out as one well-formed frame.
#![no_main]

use applet::{DeviceKey, Piv};
use card_os::link::{self, Frame, Observer, Outcome, Respond};
use card_os::testing::RamFlash;
use card_os::{Card, ResponseApdu};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

type Flash = RamFlash<{ 64 * 1024 }, 4096>;

/// Checks each answer, and remembers the last frame for the messages.
struct Check {
    frame: Option<String>,
    answers: usize,
}

impl Observer for Check {
    fn received(&mut self, frame: &Frame<'_>) -> bool {
        self.frame = Some(format!("{frame:?}"));
        self.answers < 64
    }

    fn answered(&mut self, _command: &[u8], answer: &ResponseApdu) {
        self.answers += 1;
        assert!(answer.len() >= 2, "an answer without a status word");
    }
}

fuzz_target!(|data: &[u8]| {
    let atr = applet::atr(applet::Profile::Series9, true);
    let mut card: Card<Flash, ChaCha8Rng, _> = Card::boot(
        Flash::new(),
        ChaCha8Rng::seed_from_u64(3),
        (Piv::new(DeviceKey::new([1; 32]), true),),
        atr.clone(),
    )
    .unwrap();

    // Frame by frame, as the loop sees them.
    let mut input = data;
    let mut buf = vec![0u8; link::FRAME_CAPACITY];
    for _ in 0..64 {
        let Ok(Some(frame)) = link::read_frame(&mut input, &mut buf) else {
            break;
        };
        match (frame, card.respond(frame)) {
            (Frame::GetAtr, Outcome::Answer(a)) => assert_eq!(a.as_slice(), atr.as_slice()),
            (Frame::Apdu(_) | Frame::Oversized(_), Outcome::Answer(r)) => assert!(r.len() >= 2),
            (_, Outcome::Gone) => panic!("a card cannot leave by itself"),
            (Frame::Apdu(_), Outcome::Silent) => panic!("an APDU went unanswered"),
            (_, Outcome::Silent) => {}
            (f, Outcome::Answer(_)) => panic!("{f:?} must not be answered"),
        }
    }

    // The whole loop into a buffer: every frame it wrote parses.
    let mut stream = Stream {
        input: data,
        output: Vec::new(),
    };
    let mut check = Check {
        frame: None,
        answers: 0,
    };
    let _ = link::serve(&mut stream, &mut card, &mut buf, &mut check);
    let mut out = stream.output.as_slice();
    while !out.is_empty() {
        let len = usize::from(u16::from_be_bytes([out[0], out[1]]));
        let body = &out[2..2 + len];
        // At least a status word (or an ATR).
        assert!(body.len() >= 2, "short frame after {:?}", check.frame);
        out = &out[2 + len..];
    }
});

/// A byte stream: the fuzzer's bytes in, the card's frames out.
struct Stream<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl embedded_io::ErrorType for Stream<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        embedded_io::Read::read(&mut self.input, buf)
    }
}

impl embedded_io::Write for Stream<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
