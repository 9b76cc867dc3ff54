//! The contact interface of ISO/IEC 7816-3: what a contact card does with
//! its contacts.
//!
//! The reader drives two of them, VCC and RST, which reach the card as
//! [`Contact`] events; the third, I/O, is a half-duplex serial line. After
//! every reset the card sends its ATR on I/O, answers a PPS request if
//! one comes first (ISO 7816-3 §9), then answers T=1 blocks ([`crate::t1`])
//! for as long as it is powered. A board gives the card its
//! contacts through [`IoLine`]: the characters it received, with their
//! parity verdict, the silence after the last one, and the contacts'
//! changes. [`serve`] is the whole session; the card behind it is any
//! [`Respond`], the same as behind the vpcd link ([`crate::link`]).
//!
//! Timing is the board's: it alone knows its clock. It reports
//! [`Signal::Quiet`] when a block's next character does not come within the
//! character waiting time (CWT), which is how a card tells a block cut short
//! from one still arriving, and when nothing follows a block within the
//! block guard time (BGT), which is how it knows the block is what it
//! seems; the block waiting time (BWT) is the reader's to keep, and the
//! card asks for more of it ([`Respond::waiting_time`]) before a command
//! that will outlast it.

use embedded_io::Write;

use crate::card::ResponseApdu;
use crate::link::{Frame, Observer, Outcome, Respond};
use crate::t1::{MAX_BLOCK, MAX_INF, RCode, Step, T1};

/// What the reader did with VCC and RST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contact {
    /// VCC off: the session and everything volatile is gone.
    PowerOff,
    /// VCC on and RST released: a cold reset.
    ColdReset,
    /// RST pulsed while powered: a warm reset.
    WarmReset,
}

/// What the board saw on the contacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// A character on I/O.
    Byte(u8),
    /// A character on I/O that failed its parity check.
    ParityError,
    /// No character within the time waited for ([`Wait`]).
    Quiet,
    /// VCC or RST changed.
    Contact(Contact),
}

/// How long [`IoLine::receive`] waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Until something happens: the card is idle between blocks.
    Idle,
    /// At most the character waiting time: a block is arriving.
    Character,
    /// At most the block guard time, after a block's last character: the
    /// reader sends nothing then, so a character that comes means the
    /// block was not what its LEN said (a character of it lost on the
    /// line) and must not be acted on.
    Guard,
}

/// The card's contacts, as a board wires them: characters are sent with
/// [`embedded_io::Write`] (a UART, in smartcard mode on a chip that has
/// one), and everything the reader does arrives through
/// [`IoLine::receive`].
pub trait IoLine: Write {
    /// The next thing the reader did, waiting as `wait` says. With
    /// [`Wait::Idle`] it never returns [`Signal::Quiet`].
    ///
    /// The times are the board's to set from its clock: ISO 7816-3 gives
    /// the CWT (CWI 5 in the ATR: 43 etu) and the BGT (22 etu).
    fn receive(&mut self, wait: Wait) -> Signal;
}

/// Characters a card takes in while it waits for a damaged block's end:
/// a reader that never stops sending is answered all the same.
const MAX_DRAIN: usize = 4 * MAX_BLOCK;

/// One block off the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Received {
    /// A whole block of this many bytes, its parity sound (its LRC is
    /// [`T1`]'s to check).
    Block(usize),
    /// A block the card must ask for again.
    Bad(RCode),
    /// The contacts changed; the block, if one was arriving, is void.
    Contact(Contact),
    /// A whole PPS request of this many bytes (its check byte is the
    /// session's to verify).
    Pps(usize),
    /// A PPS request that did not arrive whole and sound: the card stays
    /// silent, and the reader resets it (ISO 7816-3 §9.1).
    BadPps,
}

/// The first character of a PPS request (ISO 7816-3 §9.2).
const PPSS: u8 = 0xFF;

/// Reads the rest of a PPS request whose PPSS is in `buf`: PPS0, the
/// PPS1-3 its bits 5-7 announce, and PCK.
fn receive_pps<L: IoLine>(line: &mut L, buf: &mut [u8; MAX_BLOCK]) -> Received {
    let mut len = 1;
    let mut expected = 3;
    while len < expected {
        match line.receive(Wait::Character) {
            Signal::Contact(contact) => return Received::Contact(contact),
            Signal::Quiet => return Received::BadPps,
            Signal::ParityError => return drain_pps(line),
            Signal::Byte(b) => {
                if let Some(slot) = buf.get_mut(len) {
                    *slot = b;
                }
                if len == 1 {
                    expected = 3 + (b >> 4 & 0x07).count_ones() as usize;
                }
                len += 1;
            }
        }
    }
    match line.receive(Wait::Guard) {
        Signal::Quiet => Received::Pps(len),
        Signal::Contact(contact) => Received::Contact(contact),
        Signal::Byte(_) | Signal::ParityError => drain_pps(line),
    }
}

/// A damaged PPS request: the card lets it pass and says nothing.
fn drain_pps<L: IoLine>(line: &mut L) -> Received {
    match drain(line, RCode::Other) {
        Received::Contact(contact) => Received::Contact(contact),
        _ => Received::BadPps,
    }
}

/// Waits for the line to fall quiet after a block the card cannot read:
/// its answer must not run into the rest of it.
fn drain<L: IoLine>(line: &mut L, code: RCode) -> Received {
    for _ in 0..MAX_DRAIN {
        match line.receive(Wait::Character) {
            Signal::Quiet => break,
            Signal::Contact(contact) => return Received::Contact(contact),
            Signal::Byte(_) | Signal::ParityError => {}
        }
    }
    Received::Bad(code)
}

/// Reads one block: `NAD PCB LEN`, then `LEN` bytes and the LRC, each
/// within the character waiting time of the one before.
/// With `pps` (nothing but the ATR has passed since the reset), a first
/// character `FF` begins a PPS request instead ([`receive_pps`]).
fn receive_block<L: IoLine>(line: &mut L, buf: &mut [u8; MAX_BLOCK], pps: bool) -> Received {
    let mut len = 0;
    // Until LEN has come, the shortest block: prologue and LRC.
    let mut expected = 4;
    let mut damaged = false;
    while len < expected {
        let wait = if len == 0 {
            Wait::Idle
        } else {
            Wait::Character
        };
        match line.receive(wait) {
            Signal::Contact(contact) => return Received::Contact(contact),
            Signal::Quiet if len == 0 => {}
            // Cut short: what came is not a block.
            Signal::Quiet => return Received::Bad(RCode::Other),
            // A damaged LEN leaves the block's end unknown: wait for it
            // to pass.
            Signal::ParityError if len <= 2 => return drain(line, RCode::Edc),
            Signal::ParityError => {
                damaged = true;
                len += 1;
            }
            Signal::Byte(PPSS) if len == 0 && pps => {
                if let Some(first) = buf.first_mut() {
                    *first = PPSS;
                }
                return receive_pps(line, buf);
            }
            Signal::Byte(b) => {
                if let Some(slot) = buf.get_mut(len) {
                    *slot = b;
                }
                len += 1;
                if len == 3 {
                    if usize::from(b) > MAX_INF {
                        return drain(line, RCode::Other);
                    }
                    expected = 4 + usize::from(b);
                }
            }
        }
    }
    if damaged {
        return Received::Bad(RCode::Edc);
    }
    // A lost character shifts LEN onto a data byte: the block read may end
    // early, and one in 256 of those passes its LRC. The rest of it, coming
    // on within the guard time, gives it away.
    match line.receive(Wait::Guard) {
        Signal::Quiet => Received::Block(len),
        Signal::Contact(contact) => Received::Contact(contact),
        Signal::Byte(_) | Signal::ParityError => drain(line, RCode::Other),
    }
}

/// Fi 372 and Di 1: the speed every card runs at after reset.
const DEFAULT_TA1: u8 = 0x11;

/// An ATR's TA1, or the default if T0 announces none.
fn ta1(atr: &[u8]) -> u8 {
    match atr {
        [_, t0, ta1, ..] if t0 & 0x10 != 0 => *ta1,
        _ => DEFAULT_TA1,
    }
}

/// The card's answer to a PPS request (ISO 7816-3 §9.3), `None` for one
/// it leaves unanswered (a wrong PCK, a protocol other than T=1, or a
/// malformed request). PPS1 is accepted if it asks for the ATR's TA1 or
/// the default, and echoed; otherwise, and for PPS2 and PPS3 (which this
/// card does not use), the answer leaves it out, which keeps the default.
fn pps(request: &[u8], ta1: u8) -> Option<([u8; 4], usize)> {
    if request.iter().fold(0u8, |x, b| x ^ b) != 0 {
        return None;
    }
    let [PPSS, pps0, rest @ ..] = request else {
        return None;
    };
    if pps0 & 0x0F != 1 || pps0 & 0x80 != 0 {
        return None;
    }
    let pps1 = if pps0 & 0x10 != 0 {
        rest.first().copied()
    } else {
        None
    };
    Some(match pps1.filter(|&p| p == ta1 || p == DEFAULT_TA1) {
        Some(p) => ([PPSS, 0x11, p, PPSS ^ 0x11 ^ p], 4),
        None => ([PPSS, 0x01, PPSS ^ 0x01, 0], 3),
    })
}

/// The response being sent, or none yet.
struct Answer {
    response: Option<ResponseApdu>,
}

impl Answer {
    fn bytes(&self) -> &[u8] {
        self.response.as_ref().map_or(&[], ResponseApdu::as_slice)
    }
}

/// Serves the reader over the contacts: the ATR now (the board has just
/// powered the card) and after every reset, T=1 in between. It returns when
/// the observer ends the session (`Ok`) or the line fails.
pub fn serve<L, C, O>(
    line: &mut L,
    card: &mut C,
    session: &mut Session,
    observer: &mut O,
) -> Result<(), L::Error>
where
    L: IoLine,
    C: Respond,
    O: Observer,
{
    session.power_up(line, card)?;
    loop {
        observer.waiting();
        if !session.step(line, card, observer)? {
            return Ok(());
        }
    }
}

/// The contact interface's state: T=1's, the block arriving and the
/// response being sent, under 900 bytes. A command that comes in several
/// blocks is gathered by the card, in its own buffer ([`Respond::gather`]):
/// a second 3 KiB command buffer here would be a fifth of a card's RAM.
pub struct Session {
    t1: T1,
    block: [u8; MAX_BLOCK],
    answer: Answer,
    /// A command, gathered by the card, waits for the reader to grant the
    /// waiting time the card asked for.
    waiting: bool,
    /// The card had no room for a part of the command being received: the
    /// command is answered as too long.
    overflow: bool,
    powered: bool,
    /// Nothing but the ATR has passed since the last reset: the reader
    /// may still send a PPS request.
    fresh: bool,
    /// The ATR's TA1 (Fi and Di), `11` (the default) if it has none: the
    /// one speed other than the default the card accepts in a PPS.
    ta1: u8,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// The state before the first reset.
    pub const fn new() -> Session {
        Session {
            t1: T1::new(),
            block: [0; MAX_BLOCK],
            answer: Answer { response: None },
            waiting: false,
            overflow: false,
            powered: false,
            fresh: false,
            ta1: DEFAULT_TA1,
        }
    }

    /// Takes the next block or contact change off the line and answers
    /// it; false if the observer ended the session. [`serve`] is a reset
    /// and then this for ever; a board with other work between blocks
    /// (or a fuzz target) calls it itself, after [`Session::power_up`].
    pub fn step<L: IoLine, C: Respond, O: Observer>(
        &mut self,
        line: &mut L,
        card: &mut C,
        observer: &mut O,
    ) -> Result<bool, L::Error> {
        let received = receive_block(line, &mut self.block, self.fresh && self.powered);
        self.fresh = false;
        self.on(received, line, card, observer)
    }

    /// The board has just powered the card: it answers with its ATR.
    pub fn power_up<L: IoLine, C: Respond>(
        &mut self,
        line: &mut L,
        card: &mut C,
    ) -> Result<(), L::Error> {
        self.reset(line, card, Contact::ColdReset)
    }

    /// Handles one block or contact change; false if the observer ended
    /// the session.
    fn on<L: IoLine, C: Respond, O: Observer>(
        &mut self,
        received: Received,
        line: &mut L,
        card: &mut C,
        observer: &mut O,
    ) -> Result<bool, L::Error> {
        let Session {
            t1,
            block,
            answer,
            waiting,
            overflow,
            powered,
            ta1,
            ..
        } = self;
        let step = match received {
            Received::Contact(contact) => {
                self.reset(line, card, contact)?;
                return Ok(true);
            }
            // An unpowered card hears nothing.
            _ if !*powered => return Ok(true),
            Received::BadPps => return Ok(true),
            Received::Pps(len) => {
                let request = block.get(..len).unwrap_or_default();
                if let Some((answer, len)) = pps(request, *ta1) {
                    line.write_all(answer.get(..len).unwrap_or_default())?;
                    line.flush()?;
                }
                return Ok(true);
            }
            Received::Bad(code) => t1.bad_block(code),
            Received::Block(len) => {
                t1.receive(block.get(..len).unwrap_or_default(), answer.bytes())
            }
        };
        match step {
            Step::Send(bytes) => line.write_all(bytes)?,
            Step::Dropped(bytes) => {
                card.abandon();
                *waiting = false;
                line.write_all(bytes)?;
            }
            Step::Part { inf, first, ack } => {
                if first {
                    *overflow = false;
                }
                if !*overflow && !card.gather(inf, first) {
                    *overflow = true;
                    card.abandon();
                }
                line.write_all(ack)?;
            }
            Step::Last { inf, first, len } => {
                let frame = if first {
                    Frame::Apdu(inf)
                } else if !*overflow && card.gather(inf, false) {
                    Frame::Gathered
                } else {
                    card.abandon();
                    Frame::Oversized(len)
                };
                if !observer.received(&frame) {
                    return Ok(false);
                }
                let multiplier = card.waiting_time(&frame);
                // The command must outlast the blocks that ask for time:
                // one that came in a single block is handed to the card as
                // a chain's would be (a card that cannot hold it runs it
                // without asking).
                let held = match frame {
                    _ if multiplier == 0 => false,
                    Frame::Apdu(apdu) => {
                        let taken = card.gather(apdu, true);
                        if !taken {
                            card.abandon();
                        }
                        taken
                    }
                    Frame::Gathered => true,
                    _ => false,
                };
                if held {
                    *waiting = true;
                    line.write_all(t1.wtx(multiplier))?;
                } else {
                    run(t1, answer, line, card, frame, observer)?;
                }
            }
            Step::Resume => {
                if core::mem::take(waiting) {
                    run(t1, answer, line, card, Frame::Gathered, observer)?;
                }
            }
        }
        line.flush()?;
        Ok(true)
    }

    /// The contacts changed: the session starts afresh, with the ATR if
    /// the card is powered.
    fn reset<L: IoLine, C: Respond>(
        &mut self,
        line: &mut L,
        card: &mut C,
        contact: Contact,
    ) -> Result<(), L::Error> {
        self.t1 = T1::new();
        self.answer.response = None;
        self.waiting = false;
        self.overflow = false;
        let frame = match contact {
            Contact::PowerOff => {
                self.powered = false;
                card.respond(Frame::PowerOff);
                return Ok(());
            }
            Contact::ColdReset => Frame::PowerOn,
            Contact::WarmReset if self.powered => Frame::Reset,
            // RST alone does not power a card.
            Contact::WarmReset => return Ok(()),
        };
        self.powered = true;
        self.fresh = true;
        card.respond(frame);
        if let Outcome::Answer(atr) = card.respond(Frame::GetAtr) {
            self.ta1 = ta1(atr.as_slice());
            line.write_all(atr.as_slice())?;
        }
        line.flush()
    }
}

/// Runs a whole command (`frame`: in its block, gathered by the card, or
/// too long) and sends the first block of its response.
fn run<L: IoLine, C: Respond, O: Observer>(
    t1: &mut T1,
    answer: &mut Answer,
    line: &mut L,
    card: &mut C,
    frame: Frame<'_>,
    observer: &mut O,
) -> Result<(), L::Error> {
    // Straight into its place: a response is 260 bytes, and every copy of
    // it on the way would be stack.
    let response = answer.response.insert(match card.respond(frame) {
        Outcome::Answer(response) => response,
        // Only a proxy answers nothing to a command; the reader still gets
        // a status word.
        Outcome::Silent | Outcome::Gone => ResponseApdu::status(apdu::Status::NoPreciseDiagnosis),
    });
    if let Frame::Apdu(apdu) = frame {
        observer.answered(apdu, response);
    }
    line.write_all(t1.respond(response.as_slice()))?;
    observer.sent();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secrecy;
    use crate::t1::{self, Block, Pcb, SKind};
    use core::convert::Infallible;
    use std::collections::VecDeque;
    use std::vec::Vec;

    extern crate std;

    /// A reader's script of signals, and what the card sent.
    struct Script {
        input: VecDeque<Signal>,
        sent: Vec<u8>,
    }

    impl embedded_io::ErrorType for Script {
        type Error = Infallible;
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }

    impl IoLine for Script {
        fn receive(&mut self, wait: Wait) -> Signal {
            match self.input.pop_front() {
                Some(signal) => signal,
                None if wait != Wait::Idle => Signal::Quiet,
                None => Signal::Contact(Contact::PowerOff),
            }
        }
    }

    const ATR: [u8; 3] = [0x3B, 0x00, 0x00];

    /// A card that answers `90 00` and its command's length, counting
    /// every command it runs; INS `47` asks for 5 waiting times. It
    /// gathers commands that come in parts, up to 300 bytes.
    #[derive(Default)]
    struct Counter {
        runs: Vec<Vec<u8>>,
        resets: usize,
        powered: bool,
        inbox: Option<Vec<u8>>,
        abandoned: usize,
    }

    const INBOX: usize = 300;

    impl Counter {
        fn run(&mut self, apdu: Vec<u8>) -> Outcome {
            let len = apdu.len() as u8;
            self.runs.push(apdu);
            Outcome::Answer(ResponseApdu::relayed(&[len, 0x90, 0x00], Secrecy::PUBLIC).unwrap())
        }
    }

    impl Respond for Counter {
        fn respond(&mut self, frame: Frame<'_>) -> Outcome {
            match frame {
                Frame::PowerOn | Frame::Reset => {
                    self.resets += 1;
                    self.powered = true;
                    self.inbox = None;
                }
                Frame::PowerOff => {
                    self.powered = false;
                    self.inbox = None;
                }
                Frame::GetAtr => {
                    return Outcome::Answer(ResponseApdu::relayed(&ATR, Secrecy::PUBLIC).unwrap());
                }
                Frame::Apdu(apdu) => return self.run(apdu.to_vec()),
                Frame::Gathered => {
                    let apdu = self.inbox.take().unwrap();
                    return self.run(apdu);
                }
                Frame::Oversized(_) => {
                    return Outcome::Answer(ResponseApdu::status(apdu::Status::WrongLength));
                }
                _ => {}
            }
            Outcome::Silent
        }

        fn waiting_time(&self, frame: &Frame<'_>) -> u8 {
            let apdu = match frame {
                Frame::Apdu(apdu) => apdu,
                Frame::Gathered => self.inbox.as_deref().unwrap_or_default(),
                _ => &[],
            };
            if apdu.get(1) == Some(&0x47) { 5 } else { 0 }
        }

        fn gather(&mut self, part: &[u8], first: bool) -> bool {
            if first {
                assert!(self.inbox.is_none(), "a command gathered over another");
                self.inbox = Some(Vec::new());
            }
            let inbox = self.inbox.as_mut().expect("a part before the first");
            inbox.extend_from_slice(part);
            inbox.len() <= INBOX
        }

        fn abandon(&mut self) {
            self.abandoned += 1;
            self.inbox = None;
        }
    }

    /// A block's characters, then the guard time passing in silence.
    fn bytes(pcb: Pcb, inf: &[u8]) -> Vec<Signal> {
        let mut out = [0; MAX_BLOCK];
        let len = t1::write(pcb, inf, &mut out);
        let mut signals: Vec<Signal> = out[..len].iter().map(|&b| Signal::Byte(b)).collect();
        signals.push(Signal::Quiet);
        signals
    }

    fn i_block(ns: bool, inf: &[u8]) -> Vec<Signal> {
        bytes(Pcb::I { ns, more: false }, inf)
    }

    /// Runs the card on the script as [`serve`] does, until the script is
    /// over; the card's output cut into the ATRs and blocks it holds.
    fn run(script: Vec<Signal>, card: &mut Counter) -> Vec<Vec<u8>> {
        split(&run_raw(script, card))
    }

    /// The same, the card's output as it went out.
    fn run_raw(script: Vec<Signal>, card: &mut Counter) -> Vec<u8> {
        let mut line = Script {
            input: script.into(),
            sent: Vec::new(),
        };
        let mut session = Session::new();
        let Ok(()) = session.power_up(&mut line, card);
        while !line.input.is_empty() {
            let Ok(true) = session.step(&mut line, card, &mut ()) else {
                panic!("the session ended");
            };
        }
        line.sent
    }

    /// The card's output as ATRs (starting `3B`) and blocks.
    fn split(mut sent: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !sent.is_empty() {
            let len = if sent[0] == 0x3B {
                ATR.len()
            } else {
                4 + usize::from(sent[2])
            };
            out.push(sent[..len].to_vec());
            sent = &sent[len..];
        }
        out
    }

    fn pcb(block: &[u8]) -> Pcb {
        t1::parse(block).unwrap().pcb
    }

    #[test]
    fn the_card_answers_reset_then_runs_each_command_once() {
        let mut card = Counter::default();
        let mut script = i_block(false, &[0x00, 0xCB, 0x3F, 0xFF]);
        script.extend(i_block(true, &[0x00, 0x20, 0x00, 0x80]));
        let out = run(script, &mut card);
        assert_eq!(out[0], ATR);
        assert_eq!(
            t1::parse(&out[1]).unwrap(),
            Block {
                pcb: Pcb::I {
                    ns: false,
                    more: false
                },
                inf: &[4, 0x90, 0x00]
            }
        );
        assert_eq!(
            pcb(&out[2]),
            Pcb::I {
                ns: true,
                more: false
            }
        );
        assert_eq!(card.runs.len(), 2);
    }

    #[test]
    fn a_parity_error_is_answered_r_edc_and_the_block_sent_again_runs_once() {
        let mut card = Counter::default();
        let good = i_block(false, &[0x00, 0xCB, 0x3F, 0xFF]);
        // A data byte damaged: the block's length is known, no drain.
        let mut damaged = good.clone();
        damaged[4] = Signal::ParityError;
        // LEN damaged: the card waits for the line to fall quiet.
        let mut no_len = good.clone();
        no_len[2] = Signal::ParityError;
        no_len.push(Signal::Quiet);
        let script: Vec<Signal> = [damaged, no_len, good].concat();
        let out = run(script, &mut card);
        let edc = Pcb::R {
            nr: false,
            code: RCode::Edc,
        };
        assert_eq!(pcb(&out[1]), edc);
        assert_eq!(pcb(&out[2]), edc);
        assert_eq!(
            pcb(&out[3]),
            Pcb::I {
                ns: false,
                more: false
            }
        );
        assert_eq!(out.len(), 4);
        assert_eq!(card.runs.len(), 1);
    }

    #[test]
    fn a_block_cut_short_is_asked_for_again() {
        let mut card = Counter::default();
        let good = i_block(false, &[0x00, 0xCB, 0x3F, 0xFF]);
        let mut cut = good[..5].to_vec();
        cut.push(Signal::Quiet);
        // A LEN over 254 is no block: drained, then refused.
        let mut long = Vec::from([Signal::Byte(0), Signal::Byte(0), Signal::Byte(0xFF)]);
        long.extend([Signal::Byte(1), Signal::Byte(2), Signal::Quiet]);
        let out = run([cut, long, good].concat(), &mut card);
        let other = Pcb::R {
            nr: false,
            code: RCode::Other,
        };
        assert_eq!(pcb(&out[1]), other);
        assert_eq!(pcb(&out[2]), other);
        assert_eq!(card.runs.len(), 1);
    }

    /// A lost LEN puts a data byte in its place: a block that ends early,
    /// even one whose LRC happens to pass, is given away by the characters
    /// that follow within the guard time, and never run.
    #[test]
    fn characters_after_a_block_void_it() {
        let mut card = Counter::default();
        let command = [0x00, 0x00, 0xA4, 0x04];
        let good = i_block(false, &command);
        // LEN 4 lost: the card reads `00 00 00 00` as an empty I-block
        // whose LRC passes, then `A4 04 …` keeps coming.
        let mut shifted: Vec<Signal> = good.clone();
        shifted.remove(2);
        let out = run([shifted, good].concat(), &mut card);
        assert_eq!(
            pcb(&out[1]),
            Pcb::R {
                nr: false,
                code: RCode::Other
            }
        );
        assert_eq!(
            pcb(&out[2]),
            Pcb::I {
                ns: false,
                more: false
            }
        );
        assert_eq!(card.runs, [command.to_vec()]);
    }

    fn chars(bytes: &[u8]) -> Vec<Signal> {
        let mut signals: Vec<Signal> = bytes.iter().map(|&b| Signal::Byte(b)).collect();
        signals.push(Signal::Quiet);
        signals
    }

    /// PPS right after the ATR: the default speed (and, with a TA1 in the
    /// ATR, that one) is echoed; another is answered without PPS1 (the
    /// default stays); a wrong PCK or a protocol other than T=1 gets no
    /// answer; after the first block, `FF` is no PPS.
    #[test]
    fn pps_is_answered_only_first_and_only_for_what_the_atr_offers() {
        let command = i_block(false, &[0x00, 0xCB, 0x3F, 0xFF]);
        let after = |request: &[u8]| {
            let mut card = Counter::default();
            let sent = run_raw([chars(request), command.clone()].concat(), &mut card);
            (sent[ATR.len()..].to_vec(), card.runs.len())
        };
        let (sent, runs) = after(&[0xFF, 0x11, 0x11, 0xFF]);
        assert_eq!(&sent[..4], &[0xFF, 0x11, 0x11, 0xFF]);
        assert_eq!(runs, 1, "T=1 goes on after the PPS");
        let (sent, _) = after(&[0xFF, 0x11, 0x13, 0xFD]);
        assert_eq!(&sent[..3], &[0xFF, 0x01, 0xFE]);
        // A wrong PCK, and T=0: nothing.
        let (sent, runs) = after(&[0xFF, 0x11, 0x11, 0x00]);
        assert_eq!(
            pcb(&sent),
            Pcb::I {
                ns: false,
                more: false
            }
        );
        assert_eq!(runs, 1);
        let (sent, _) = after(&[0xFF, 0x10, 0x11, 0xFE]);
        assert_eq!(
            pcb(&sent),
            Pcb::I {
                ns: false,
                more: false
            }
        );
        // With TA1 = 13 in the ATR, PPS1 = 13 is taken.
        assert_eq!(
            pps(&[0xFF, 0x11, 0x13, 0xFD], 0x13),
            Some(([0xFF, 0x11, 0x13, 0xFD], 4))
        );
        assert_eq!(ta1(&[0x3B, 0xFD, 0x13, 0x00]), 0x13);
        assert_eq!(ta1(&[0x3B, 0x8D, 0x81]), 0x11);
        // After a block: a block with NAD FF and a PCB that means nothing.
        let mut card = Counter::default();
        let out = run(
            [command.clone(), chars(&[0xFF, 0x11, 0x11, 0xFF])].concat(),
            &mut card,
        );
        assert_eq!(
            pcb(&out[2]),
            Pcb::R {
                nr: true,
                code: RCode::Other
            }
        );
    }

    #[test]
    fn resets_start_the_session_afresh_and_an_unpowered_card_hears_nothing() {
        let mut card = Counter::default();
        let mut script = i_block(false, &[0x00, 0xCB, 0x3F, 0xFF]);
        script.push(Signal::Contact(Contact::WarmReset));
        // N(S) 0 again: after a reset the reader starts from 0.
        script.extend(i_block(false, &[0x00, 0xCB, 0x3F, 0xFF]));
        script.push(Signal::Contact(Contact::PowerOff));
        script.extend(i_block(true, &[0x00, 0xCB, 0x3F, 0xFF]));
        script.push(Signal::Contact(Contact::WarmReset));
        script.push(Signal::Contact(Contact::ColdReset));
        let out = run(script, &mut card);
        assert_eq!(out.len(), 5, "{out:02X?}");
        assert_eq!(out[0], ATR);
        assert_eq!(out[2], ATR);
        assert_eq!(
            pcb(&out[3]),
            Pcb::I {
                ns: false,
                more: false
            }
        );
        assert_eq!(out[4], ATR);
        assert_eq!(card.runs.len(), 2);
        assert_eq!(card.resets, 3);
    }

    #[test]
    fn a_long_command_asks_for_time_and_runs_when_granted() {
        let mut card = Counter::default();
        let mut script = i_block(false, &[0x00, 0x47, 0x00, 0x9A]);
        // The reader lost the request and asks again, then grants it.
        script.extend(bytes(
            Pcb::R {
                nr: false,
                code: RCode::Ok,
            },
            &[],
        ));
        script.extend(bytes(
            Pcb::S {
                kind: SKind::Wtx,
                response: true,
            },
            &[5],
        ));
        let out = run(script, &mut card);
        let wtx = t1::parse(&out[1]).unwrap();
        assert_eq!(
            wtx.pcb,
            Pcb::S {
                kind: SKind::Wtx,
                response: false
            }
        );
        assert_eq!(wtx.inf, &[5]);
        assert_eq!(out[2], out[1]);
        assert_eq!(card.runs.len(), 1);
        assert_eq!(
            pcb(&out[3]),
            Pcb::I {
                ns: false,
                more: false
            }
        );
    }

    fn part(ns: bool, more: bool, inf: &[u8]) -> Vec<Signal> {
        bytes(Pcb::I { ns, more }, inf)
    }

    /// A chained command is handed to the card part by part, each part
    /// acknowledged, and runs once, whole; one longer than the card can
    /// hold is answered `67 00` and never runs; one the reader aborts is
    /// wiped.
    #[test]
    fn chained_commands_are_gathered_by_the_card() {
        let data: Vec<u8> = (0..=255u8).cycle().take(500).collect();
        let mut card = Counter::default();
        let script = [
            part(false, true, &data[..200]),
            part(true, false, &data[200..290]),
        ]
        .concat();
        let out = run(script, &mut card);
        assert_eq!(
            pcb(&out[1]),
            Pcb::R {
                nr: true,
                code: RCode::Ok
            }
        );
        assert_eq!(card.runs, [data[..290].to_vec()]);
        assert_eq!(t1::parse(&out[2]).unwrap().inf, &[34, 0x90, 0x00]);

        // 200 + 200 bytes: more than the card holds.
        let mut card = Counter::default();
        let script = [
            part(false, true, &data[..200]),
            part(true, false, &data[200..400]),
        ]
        .concat();
        let out = run(script, &mut card);
        assert!(card.runs.is_empty());
        assert_eq!(card.abandoned, 1);
        assert_eq!(t1::parse(&out[2]).unwrap().inf, &[0x67, 0x00]);

        // Aborted after its first part: wiped, and the next command runs.
        let mut card = Counter::default();
        let script = [
            part(false, true, &data[..100]),
            bytes(
                Pcb::S {
                    kind: SKind::Abort,
                    response: false,
                },
                &[],
            ),
            i_block(true, &[0x00, 0xCB, 0x3F, 0xFF]),
        ]
        .concat();
        run(script, &mut card);
        assert_eq!(card.abandoned, 1);
        assert_eq!(card.runs, [[0x00, 0xCB, 0x3F, 0xFF].to_vec()]);
    }

    /// A command in one block that asks for time is handed to the card to
    /// hold, and runs from there once the reader grants it; a reset while
    /// it waits drops it.
    #[test]
    fn a_command_waiting_for_time_is_held_by_the_card() {
        let mut card = Counter::default();
        let grant = bytes(
            Pcb::S {
                kind: SKind::Wtx,
                response: true,
            },
            &[5],
        );
        let long = [0x00, 0x47, 0x00, 0x9A, 0x05];
        let script = [i_block(false, &long), grant.clone()].concat();
        run(script, &mut card);
        assert_eq!(card.runs, [long.to_vec()]);
        assert!(card.inbox.is_none());

        let mut card = Counter::default();
        let mut script = i_block(false, &long);
        script.push(Signal::Contact(Contact::WarmReset));
        script.extend(grant);
        run(script, &mut card);
        assert!(card.runs.is_empty());
        assert!(card.inbox.is_none());
    }
}
