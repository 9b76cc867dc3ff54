//! The card's contacts as a hostile or noisy reader drives them: any run of
//! characters (some with parity errors), silences, power cuts and resets.
//! The contact session never panics or stalls (every step takes something
//! off the line); everything it sends is an ATR, a PPS answer or a
//! well-formed block; no command runs on an unpowered card; and a command
//! runs only on a whole, sound I-block that ends a chain, so never more
//! often than such blocks arrived.
#![no_main]

use std::collections::VecDeque;

use card_os::contact::{Contact, IoLine, Session, Signal, Wait};
use card_os::link::{Frame, Outcome, Respond};
use card_os::t1::{self, Pcb};
use card_os::{ResponseApdu, Secrecy};
use libfuzzer_sys::fuzz_target;

const ATR: [u8; 4] = [0x3B, 0x80, 0x01, 0x81];

/// Signals from the input: `F0` a parity error, `F1` a silence, `F2`-`F4`
/// power off, cold and warm reset, `F5 b` the character `b`, anything else
/// itself. Blocks the input spells out are counted as they pass.
struct Line {
    signals: VecDeque<Signal>,
    sent: Vec<u8>,
    taken: usize,
}

impl embedded_io::ErrorType for Line {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for Line {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.sent.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl IoLine for Line {
    fn receive(&mut self, wait: Wait) -> Signal {
        self.taken += 1;
        match self.signals.pop_front() {
            Some(signal) => signal,
            None if wait != Wait::Idle => Signal::Quiet,
            None => Signal::Contact(Contact::PowerOff),
        }
    }
}

/// A card that echoes its command and counts what it ran; commands of a
/// length divisible by three ask for waiting time. It gathers commands
/// that come in parts, up to 600 bytes, as the card does in its buffer.
struct Echo {
    powered: bool,
    runs: usize,
    inbox: Option<Vec<u8>>,
}

const INBOX: usize = 600;

impl Echo {
    fn run(&mut self, apdu: &[u8]) -> Outcome {
        assert!(self.powered, "a command ran on an unpowered card");
        self.runs += 1;
        let mut answer = apdu[..apdu.len().min(200)].to_vec();
        answer.extend_from_slice(&[0x90, 0x00]);
        Outcome::Answer(ResponseApdu::relayed(&answer, Secrecy::PUBLIC).unwrap())
    }
}

impl Respond for Echo {
    fn respond(&mut self, frame: Frame<'_>) -> Outcome {
        match frame {
            Frame::PowerOn | Frame::Reset | Frame::PowerOff => {
                self.powered = frame != Frame::PowerOff;
                // A reset wipes whatever was being gathered.
                self.inbox = None;
            }
            Frame::GetAtr => {
                return Outcome::Answer(ResponseApdu::relayed(&ATR, Secrecy::PUBLIC).unwrap());
            }
            Frame::Apdu(apdu) => {
                assert!(self.inbox.is_none(), "a command ran over one gathered");
                return self.run(apdu);
            }
            Frame::Gathered => {
                let apdu = self.inbox.take().expect("a gathered command");
                return self.run(&apdu);
            }
            Frame::Oversized(_) => {
                assert!(self.inbox.is_none(), "an oversized command left its parts");
                return Outcome::Answer(ResponseApdu::status(apdu::Status::WrongLength));
            }
            _ => {}
        }
        Outcome::Silent
    }

    fn waiting_time(&self, frame: &Frame<'_>) -> u8 {
        let len = match frame {
            Frame::Apdu(apdu) => apdu.len(),
            Frame::Gathered => self.inbox.as_ref().map_or(1, Vec::len),
            _ => 1,
        };
        u8::from(len % 3 == 0) * 2
    }

    fn gather(&mut self, part: &[u8], first: bool) -> bool {
        assert!(self.powered, "an unpowered card was handed a part");
        if first {
            assert!(self.inbox.is_none(), "a command gathered over another unwiped");
            self.inbox = Some(Vec::new());
        }
        let inbox = self.inbox.as_mut().expect("a part before the first");
        inbox.extend_from_slice(part);
        inbox.len() <= INBOX
    }

    fn abandon(&mut self) {
        self.inbox = None;
    }
}

fn signals(data: &[u8]) -> VecDeque<Signal> {
    let mut out = VecDeque::new();
    let mut bytes = data.iter();
    while let Some(&b) = bytes.next() {
        out.push_back(match b {
            0xF0 => Signal::ParityError,
            0xF1 => Signal::Quiet,
            0xF2 => Signal::Contact(Contact::PowerOff),
            0xF3 => Signal::Contact(Contact::ColdReset),
            0xF4 => Signal::Contact(Contact::WarmReset),
            0xF5 => match bytes.next() {
                Some(&b) => Signal::Byte(b),
                None => break,
            },
            b => Signal::Byte(b),
        });
    }
    out
}

/// Whole, sound I-blocks ending a chain that the signals spell out
/// anywhere: an upper bound on the commands that can run.
fn chain_ends(signals: &VecDeque<Signal>) -> usize {
    let bytes: Vec<Option<u8>> = signals
        .iter()
        .map(|s| match s {
            Signal::Byte(b) => Some(*b),
            _ => None,
        })
        .collect();
    (0..bytes.len())
        .filter(|&start| {
            let Some(Some(len)) = bytes.get(start + 2) else {
                return false;
            };
            let end = start + 4 + usize::from(*len);
            let Some(block) = bytes.get(start..end) else {
                return false;
            };
            let block: Option<Vec<u8>> = block.iter().copied().collect();
            matches!(
                block.as_deref().map(t1::parse),
                Some(Ok(t1::Block {
                    pcb: Pcb::I { more: false, .. },
                    ..
                }))
            )
        })
        .count()
}

fuzz_target!(|data: &[u8]| {
    let signals = signals(data);
    let bound = chain_ends(&signals);
    let total = signals.len();
    let mut line = Line {
        signals,
        sent: Vec::new(),
        taken: 0,
    };
    let mut card = Echo {
        powered: false,
        runs: 0,
        inbox: None,
    };
    let mut session = Session::new();
    let Ok(()) = session.power_up(&mut line, &mut card);
    let mut steps = 0;
    while !line.signals.is_empty() {
        let before = line.taken;
        let Ok(true) = session.step(&mut line, &mut card, &mut ()) else {
            panic!("the session ended");
        };
        assert!(line.taken > before, "a step took nothing off the line");
        steps += 1;
        assert!(steps <= total, "more steps than signals");
    }
    assert!(
        card.runs <= bound,
        "{} commands ran, {} blocks could run one",
        card.runs,
        bound
    );

    // Everything sent: ATRs and whole, well-formed blocks.
    let mut out = line.sent.as_slice();
    while !out.is_empty() {
        if out.starts_with(&ATR) {
            out = &out[ATR.len()..];
            continue;
        }
        // A PPS answer: PPSS, PPS0 for T=1 with or without PPS1, PCK.
        if let Some(rest) = out
            .strip_prefix(&[0xFF, 0x11, 0x11, 0xFF])
            .or_else(|| out.strip_prefix(&[0xFF, 0x01, 0xFE]))
        {
            out = rest;
            continue;
        }
        assert!(out.len() >= 4, "a cut block: {out:02X?}");
        let len = 4 + usize::from(out[2]);
        assert!(out.len() >= len, "a cut block: {out:02X?}");
        t1::parse(&out[..len]).expect("the card sends well-formed blocks");
        out = &out[len..];
    }
});
