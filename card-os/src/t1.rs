//! ISO/IEC 7816-3 §11, the half-duplex block protocol T=1: the card's side.
//!
//! A contact card's I/O line carries blocks, `NAD PCB LEN INF… LRC`. The
//! reader sends one and the card answers with exactly one; a block that is
//! lost or damaged is asked for again with an R-block, so that neither side
//! ever acts on a block twice. [`T1`] is the card's state machine over whole
//! blocks: it hands on a command's parts as they come (a chained command
//! is gathered by the card itself, in its own buffer: T=1 keeps none),
//! says when a command is complete (the only moment a command is run, once
//! per sequence number: a block the reader sends again is answered, never
//! executed again), cuts the response into blocks the reader can take
//! (IFSD), answers the reader's S-blocks (IFS, RESYNCH, ABORT) and asks for
//! waiting time (S(WTX)) when a command will take long. It keeps one block,
//! the last it sent, to send again; the response lives in the caller's
//! buffer, so the card needs no heap.
//!
//! The epilogue is the LRC (the ATR announces no CRC: TC3 is absent).

/// The card's node address, and the reader's, in every block: addressing
/// is not used.
const NAD: u8 = 0x00;

/// The longest information field T=1 allows, and the IFSC the card's ATR
/// announces (TA3 = `FE`).
pub const MAX_INF: usize = 254;

/// The longest block: prologue, information field and LRC.
pub const MAX_BLOCK: usize = 3 + MAX_INF + 1;

/// The reader's information field size until it says otherwise with
/// S(IFS request) (ISO 7816-3 §11.4.2).
pub const DEFAULT_IFSD: u8 = 32;

/// What an R-block says about the block it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RCode {
    /// No error: an acknowledgement (of a chained I-block).
    Ok,
    /// The block's LRC or a parity check failed.
    Edc,
    /// Any other error (a bad PCB, LEN, or an unexpected block).
    Other,
}

/// An S-block's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SKind {
    /// Reset both sides' sequence numbers and sizes.
    Resynch,
    /// A new information field size.
    Ifs,
    /// Abort a chain.
    Abort,
    /// Waiting time extension.
    Wtx,
}

impl SKind {
    const fn bits(self) -> u8 {
        match self {
            SKind::Resynch => 0x00,
            SKind::Ifs => 0x01,
            SKind::Abort => 0x02,
            SKind::Wtx => 0x03,
        }
    }
}

/// A block's protocol control byte, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pcb {
    /// An information block: its send-sequence number and whether more of
    /// the chain follows.
    I {
        /// N(S).
        ns: bool,
        /// M: the chain goes on.
        more: bool,
    },
    /// A receive-ready block: the N(S) of the I-block its sender expects.
    R {
        /// N(R).
        nr: bool,
        /// What it says about the block it answers.
        code: RCode,
    },
    /// A supervisory block.
    S {
        /// Which.
        kind: SKind,
        /// A response (else a request).
        response: bool,
    },
}

impl Pcb {
    /// The byte.
    pub const fn byte(self) -> u8 {
        match self {
            Pcb::I { ns, more } => ((ns as u8) << 6) | ((more as u8) << 5),
            Pcb::R { nr, code } => {
                0x80 | ((nr as u8) << 4)
                    | match code {
                        RCode::Ok => 0,
                        RCode::Edc => 1,
                        RCode::Other => 2,
                    }
            }
            Pcb::S { kind, response } => 0xC0 | ((response as u8) << 5) | kind.bits(),
        }
    }

    /// Reads a PCB; None for a value ISO 7816-3 does not define.
    pub const fn from_byte(b: u8) -> Option<Pcb> {
        match b >> 6 {
            0b00 | 0b01 => {
                if b & 0x1F != 0 {
                    return None;
                }
                Some(Pcb::I {
                    ns: b & 0x40 != 0,
                    more: b & 0x20 != 0,
                })
            }
            0b10 => {
                if b & 0x20 != 0 {
                    return None;
                }
                let code = match b & 0x0F {
                    0 => RCode::Ok,
                    1 => RCode::Edc,
                    2 => RCode::Other,
                    _ => return None,
                };
                Some(Pcb::R {
                    nr: b & 0x10 != 0,
                    code,
                })
            }
            _ => {
                let kind = match b & 0x1F {
                    0x00 => SKind::Resynch,
                    0x01 => SKind::Ifs,
                    0x02 => SKind::Abort,
                    0x03 => SKind::Wtx,
                    _ => return None,
                };
                Some(Pcb::S {
                    kind,
                    response: b & 0x20 != 0,
                })
            }
        }
    }
}

/// Why a block could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The LRC does not match.
    Edc,
    /// Too short, LEN not the length, a LEN over 254, a PCB that means
    /// nothing, or an S-block's field of the wrong size.
    Malformed,
}

/// A block as it arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block<'a> {
    /// Its control byte.
    pub pcb: Pcb,
    /// Its information field.
    pub inf: &'a [u8],
}

/// The LRC: the XOR of every byte before it.
fn lrc(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |x, b| x ^ b)
}

/// Reads one whole block (`NAD PCB LEN INF LRC`).
pub fn parse(bytes: &[u8]) -> Result<Block<'_>, BlockError> {
    let Some((&check, body)) = bytes.split_last() else {
        return Err(BlockError::Malformed);
    };
    let [_nad, pcb, len, inf @ ..] = body else {
        return Err(BlockError::Malformed);
    };
    if lrc(body) != check {
        return Err(BlockError::Edc);
    }
    if usize::from(*len) != inf.len() || inf.len() > MAX_INF {
        return Err(BlockError::Malformed);
    }
    let pcb = Pcb::from_byte(*pcb).ok_or(BlockError::Malformed)?;
    // S-blocks carry one byte for IFS and WTX, none otherwise; R-blocks none.
    let inf_ok = match pcb {
        Pcb::I { .. } => true,
        Pcb::R { .. } => inf.is_empty(),
        Pcb::S {
            kind: SKind::Ifs | SKind::Wtx,
            ..
        } => inf.len() == 1,
        Pcb::S { .. } => inf.is_empty(),
    };
    if !inf_ok {
        return Err(BlockError::Malformed);
    }
    Ok(Block { pcb, inf })
}

/// Writes a block into `out`; its length. `inf` is at most [`MAX_INF`]
/// bytes (longer is cut: no caller makes one).
pub fn write(pcb: Pcb, inf: &[u8], out: &mut [u8; MAX_BLOCK]) -> usize {
    let inf = inf.get(..inf.len().min(MAX_INF)).unwrap_or_default();
    let end = 3 + inf.len();
    let [nad, p, len, rest @ ..] = out;
    *nad = NAD;
    *p = pcb.byte();
    *len = inf.len() as u8;
    if let Some(field) = rest.get_mut(..inf.len()) {
        field.copy_from_slice(inf);
    }
    let check = lrc(out.get(..end).unwrap_or_default());
    if let Some(slot) = out.get_mut(end) {
        *slot = check;
    }
    end + 1
}

/// What the card does after a block from the reader.
#[derive(Debug, PartialEq, Eq)]
///
/// A command's parts borrow the block they came in (`'b`); blocks to send
/// borrow the state (`'s`).
pub enum Step<'s, 'b> {
    /// Send this block.
    Send(&'s [u8]),
    /// A part of a command, with more to come: take it in, then send
    /// `ack`.
    Part {
        /// The part: the I-block's INF.
        inf: &'b [u8],
        /// It begins a command.
        first: bool,
        /// The acknowledgement, which asks for the next part.
        ack: &'s [u8],
    },
    /// A command's last part: run the command and hand its response to
    /// [`T1::respond`] (after [`T1::wtx`] if it will take long).
    Last {
        /// The part: the I-block's INF.
        inf: &'b [u8],
        /// It begins the command too: `inf` is all of it.
        first: bool,
        /// The command's length, every part together.
        len: usize,
    },
    /// The reader granted the waiting time asked for: go on with the
    /// command, then [`T1::respond`].
    Resume,
    /// The command being received, or waiting for time, is dropped (the
    /// reader aborted it or resynchronised): what was taken of it is void
    /// and must be wiped. Send this block.
    Dropped(&'s [u8]),
}

/// The response being sent, block by block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sending {
    /// Bytes of the response sent in blocks the reader acknowledged, or in
    /// the block it has now.
    sent: usize,
    /// Bytes in the block in flight.
    in_flight: usize,
    /// The response's length.
    len: usize,
}

/// Where the card is in the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a command (or its next block).
    Receiving,
    /// A command was handed on; its response has not come.
    Executing,
    /// A WTX request is out; the reader's answer has not come.
    Waiting,
    /// A chained response is going out.
    Sending(Sending),
}

/// The card's T=1 state. It starts afresh at every reset.
#[derive(Clone, Debug)]
pub struct T1 {
    ifsd: u8,
    /// N(S) of the card's next I-block.
    card_ns: bool,
    /// N(S) the card expects of the reader's next I-block.
    reader_ns: bool,
    /// Bytes of a chained command received so far, once its first part
    /// has come.
    received: Option<usize>,
    phase: Phase,
    last: [u8; MAX_BLOCK],
    last_len: usize,
    /// N(S) of the last block sent, if it was an I-block.
    last_i_ns: Option<bool>,
    /// An R-block reporting an error (`NAD PCB 00 LRC`).
    error_block: [u8; 4],
    /// An S-block response.
    s_block: [u8; 5],
}

impl Default for T1 {
    fn default() -> Self {
        Self::new()
    }
}

impl T1 {
    /// The state after reset: sequence numbers 0, IFSD 32.
    pub const fn new() -> T1 {
        T1 {
            ifsd: DEFAULT_IFSD,
            card_ns: false,
            reader_ns: false,
            received: None,
            phase: Phase::Receiving,
            last: [0; MAX_BLOCK],
            last_len: 0,
            last_i_ns: None,
            error_block: [0; 4],
            s_block: [0; 5],
        }
    }

    /// The reader's information field size, as it last said.
    pub fn ifsd(&self) -> u8 {
        self.ifsd
    }

    fn send(&mut self, pcb: Pcb, inf: &[u8]) -> Step<'_, 'static> {
        Step::Send(self.keep(pcb, inf))
    }

    /// Writes a block into the last block sent, which it becomes.
    fn keep(&mut self, pcb: Pcb, inf: &[u8]) -> &[u8] {
        self.last_i_ns = match pcb {
            Pcb::I { ns, .. } => Some(ns),
            _ => None,
        };
        self.last_len = write(pcb, inf, &mut self.last);
        self.last.get(..self.last_len).unwrap_or_default()
    }

    /// The last block again, for a reader that lost it.
    fn resend(&mut self) -> Step<'_, 'static> {
        if self.last_len == 0 {
            return self.reject(RCode::Other);
        }
        Step::Send(self.last.get(..self.last_len).unwrap_or_default())
    }

    /// An S-block response. It is not kept as the last block: a reader that
    /// loses it sends its request again (§11.6.3.2).
    fn answer_s(&mut self, kind: SKind, inf: Option<u8>) -> Step<'_, 'static> {
        let pcb = Pcb::S {
            kind,
            response: true,
        }
        .byte();
        let len = match inf {
            Some(value) => {
                self.s_block = [NAD, pcb, 1, value, NAD ^ pcb ^ 1 ^ value];
                5
            }
            None => {
                self.s_block = [NAD, pcb, 0, NAD ^ pcb, 0];
                4
            }
        };
        Step::Send(self.s_block.get(..len).unwrap_or_default())
    }

    /// An R-block asking for the I-block the card expects, after a bad or
    /// unexpected block. It is not kept as the last block: what the reader
    /// may ask for again is the card's last real answer. The card answers
    /// every block: the reader bounds its retries (and resynchronises or
    /// resets the card), as ISO 7816-3 §11.6.3.2 has it.
    fn reject(&mut self, code: RCode) -> Step<'_, 'static> {
        let pcb = Pcb::R {
            nr: self.reader_ns,
            code,
        }
        .byte();
        self.error_block = [NAD, pcb, 0, NAD ^ pcb];
        Step::Send(&self.error_block)
    }

    /// A block the line delivered damaged (a parity error: [`RCode::Edc`])
    /// or cut short (a character waiting time passed mid-block:
    /// [`RCode::Other`]): the card asks for it again.
    pub fn bad_block(&mut self, code: RCode) -> Step<'_, 'static> {
        self.reject(code)
    }

    /// Takes one block from the reader. `response` is the response being
    /// sent (the one given to [`T1::respond`]), read again for each block
    /// of a chain.
    pub fn receive<'s, 'b>(&'s mut self, bytes: &'b [u8], response: &[u8]) -> Step<'s, 'b> {
        let block = match parse(bytes) {
            Ok(block) => block,
            Err(BlockError::Edc) => return self.reject(RCode::Edc),
            Err(BlockError::Malformed) => return self.reject(RCode::Other),
        };
        match block.pcb {
            Pcb::S {
                kind,
                response: false,
            } => self.supervise(kind, block.inf),
            Pcb::S {
                kind: SKind::Wtx,
                response: true,
            } if self.phase == Phase::Waiting => {
                self.phase = Phase::Executing;
                Step::Resume
            }
            Pcb::S { .. } => self.reject(RCode::Other),
            Pcb::R { nr, .. } => self.on_r(nr, response),
            Pcb::I { ns, more } => self.on_i(ns, more, block.inf),
        }
    }

    fn supervise(&mut self, kind: SKind, inf: &[u8]) -> Step<'_, 'static> {
        match kind {
            SKind::Ifs => match inf {
                [size @ 1..=0xFE] => {
                    self.ifsd = *size;
                    let size = *size;
                    self.answer_s(SKind::Ifs, Some(size))
                }
                _ => self.reject(RCode::Other),
            },
            SKind::Resynch => {
                let dropped = self.holds_a_command();
                *self = T1::new();
                self.dropping(dropped, SKind::Resynch)
            }
            SKind::Abort => {
                // The chain either way is dropped; the command, if it was
                // being received or waiting for time, never runs.
                let dropped = self.holds_a_command();
                self.received = None;
                self.phase = Phase::Receiving;
                self.dropping(dropped, SKind::Abort)
            }
            // Only the card asks for waiting time.
            SKind::Wtx => self.reject(RCode::Other),
        }
    }

    /// An R-block names the I-block its sender expects (§11.6.3.2): the
    /// card's next block of a chain (an acknowledgement), the card's last
    /// I-block again (the reader lost it), or, if neither, the reader's
    /// own block was lost on the way and the card asks for it.
    fn on_r(&mut self, nr: bool, response: &[u8]) -> Step<'_, 'static> {
        match self.phase {
            // A command runs: nothing to send until its response.
            Phase::Executing => return self.reject(RCode::Other),
            Phase::Sending(s) if s.sent + s.in_flight < s.len && nr == self.card_ns => {
                let sending = Sending {
                    sent: s.sent + s.in_flight,
                    in_flight: 0,
                    len: s.len,
                };
                return self.next_block(sending, response);
            }
            // The WTX request again.
            Phase::Waiting => return self.resend(),
            Phase::Sending(_) | Phase::Receiving => {}
        }
        // The last block is the card's I-block, or its acknowledgement of a
        // chained block (which asks for the reader's next block anyway).
        if self.last_i_ns == Some(nr) || self.last_i_ns.is_none() && self.last_len > 0 {
            return self.resend();
        }
        let pcb = Pcb::R {
            nr: self.reader_ns,
            code: RCode::Ok,
        }
        .byte();
        self.error_block = [NAD, pcb, 0, NAD ^ pcb];
        Step::Send(&self.error_block)
    }

    /// Whether part of a command has been handed on that has not run: a
    /// chain being received, or a whole command waiting for time.
    fn holds_a_command(&self) -> bool {
        self.received.is_some() || self.phase == Phase::Waiting
    }

    /// The answer to S(RESYNCH) or S(ABORT), telling the card to wipe the
    /// command it held if `dropped`.
    fn dropping(&mut self, dropped: bool, kind: SKind) -> Step<'_, 'static> {
        match self.answer_s(kind, None) {
            Step::Send(block) if dropped => Step::Dropped(block),
            step => step,
        }
    }

    fn on_i<'s, 'b>(&'s mut self, ns: bool, more: bool, inf: &'b [u8]) -> Step<'s, 'b> {
        if ns != self.reader_ns || !matches!(self.phase, Phase::Receiving | Phase::Sending(_)) {
            return self.reject(RCode::Other);
        }
        if let Phase::Sending(s) = self.phase {
            // The reader may only send once the card's chain has ended.
            if s.sent + s.in_flight < s.len {
                return self.reject(RCode::Other);
            }
        }
        self.reader_ns = !self.reader_ns;
        let first = self.received.is_none();
        let len = self.received.unwrap_or(0).saturating_add(inf.len());
        if more {
            self.received = Some(len);
            self.phase = Phase::Receiving;
            let nr = self.reader_ns;
            let ack = self.keep(
                Pcb::R {
                    nr,
                    code: RCode::Ok,
                },
                &[],
            );
            return Step::Part { inf, first, ack };
        }
        self.received = None;
        self.phase = Phase::Executing;
        Step::Last { inf, first, len }
    }

    /// Asks the reader for `multiplier` times the block waiting time, for a
    /// command that will run long (an RSA key generation): the block to
    /// send. The reader's S(WTX response) comes back through
    /// [`T1::receive`] as [`Step::Resume`].
    pub fn wtx(&mut self, multiplier: u8) -> &[u8] {
        self.phase = Phase::Waiting;
        self.last_i_ns = None;
        self.last_len = write(
            Pcb::S {
                kind: SKind::Wtx,
                response: false,
            },
            &[multiplier.max(1)],
            &mut self.last,
        );
        self.last.get(..self.last_len).unwrap_or_default()
    }

    /// The response to the command [`Step::Last`] announced: the first
    /// block to send. Later blocks of a long response go out as the reader
    /// acknowledges each ([`T1::receive`] with the same `response`).
    pub fn respond(&mut self, response: &[u8]) -> &[u8] {
        let sending = Sending {
            sent: 0,
            in_flight: 0,
            len: response.len(),
        };
        match self.next_block(sending, response) {
            Step::Send(_) => self.last.get(..self.last_len).unwrap_or_default(),
            _ => &[],
        }
    }

    fn next_block(&mut self, s: Sending, response: &[u8]) -> Step<'_, 'static> {
        let left = s.len.saturating_sub(s.sent);
        let size = left.min(usize::from(self.ifsd));
        let more = left > size;
        let chunk = response.get(s.sent..s.sent + size).unwrap_or_default();
        let ns = self.card_ns;
        self.card_ns = !self.card_ns;
        self.phase = Phase::Sending(Sending {
            sent: s.sent,
            in_flight: size,
            len: s.len,
        });
        self.send(Pcb::I { ns, more }, chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as a reader writes it.
    fn block(pcb: Pcb, inf: &[u8]) -> ([u8; MAX_BLOCK], usize) {
        let mut out = [0; MAX_BLOCK];
        let len = write(pcb, inf, &mut out);
        (out, len)
    }

    fn i(ns: bool, more: bool, inf: &[u8]) -> ([u8; MAX_BLOCK], usize) {
        block(Pcb::I { ns, more }, inf)
    }

    fn r(nr: bool) -> ([u8; MAX_BLOCK], usize) {
        block(
            Pcb::R {
                nr,
                code: RCode::Ok,
            },
            &[],
        )
    }

    fn s(kind: SKind, response: bool, inf: &[u8]) -> ([u8; MAX_BLOCK], usize) {
        block(Pcb::S { kind, response }, inf)
    }

    fn sent<'s>(step: Step<'s, '_>) -> Block<'s> {
        match step {
            Step::Send(bytes) => parse(bytes).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_pcb_reads_back_as_written() {
        for b in 0..=255u8 {
            if let Some(pcb) = Pcb::from_byte(b) {
                assert_eq!(pcb.byte(), b, "{b:02X}");
            }
        }
        // ISO 7816-3's examples: I(0,0) 00, I(1,1) 60, R(1) 90, S(IFS req) C1.
        assert_eq!(
            Pcb::I {
                ns: true,
                more: true
            }
            .byte(),
            0x60
        );
        assert_eq!(
            Pcb::R {
                nr: true,
                code: RCode::Ok
            }
            .byte(),
            0x90
        );
        assert_eq!(
            Pcb::S {
                kind: SKind::Ifs,
                response: false
            }
            .byte(),
            0xC1
        );
        assert_eq!(
            Pcb::S {
                kind: SKind::Wtx,
                response: true
            }
            .byte(),
            0xE3
        );
    }

    #[test]
    fn blocks_carry_an_lrc_and_bad_ones_are_refused() {
        let (b, len) = i(false, false, &[0x00, 0xA4, 0x04, 0x00]);
        assert_eq!(&b[..len], &[0x00, 0x00, 0x04, 0x00, 0xA4, 0x04, 0x00, 0xA4]);
        let mut bad = b;
        bad[4] ^= 1;
        assert_eq!(parse(&bad[..len]), Err(BlockError::Edc));
        assert_eq!(parse(&[0x00, 0x00]), Err(BlockError::Malformed));
        // LEN says 5, four follow.
        let mut wrong_len = [0x00, 0x00, 0x05, 1, 2, 3, 4, 0];
        wrong_len[7] = lrc(&wrong_len[..7]);
        assert_eq!(parse(&wrong_len), Err(BlockError::Malformed));
    }

    #[test]
    fn a_command_runs_once_and_its_response_fits_one_block() {
        let mut t1 = T1::new();
        let (b, len) = i(false, false, &[0x00, 0xCB, 0x3F, 0xFF]);
        assert_eq!(
            t1.receive(&b[..len], &[]),
            Step::Last {
                inf: &[0x00, 0xCB, 0x3F, 0xFF],
                first: true,
                len: 4
            }
        );
        let answer = parse(t1.respond(&[0x90, 0x00])).unwrap();
        assert_eq!(
            answer,
            Block {
                pcb: Pcb::I {
                    ns: false,
                    more: false
                },
                inf: &[0x90, 0x00]
            }
        );
        // The reader lost the answer: it asks again, and the command is not
        // run again.
        let (again, len) = r(false);
        assert_eq!(
            sent(t1.receive(&again[..len], &[0x90, 0x00])).inf,
            &[0x90, 0x00]
        );
        // The reader's next command carries N(S) 1.
        let (b, len) = i(true, false, &[0x00, 0x20, 0x00, 0x80]);
        assert!(matches!(
            t1.receive(&b[..len], &[]),
            Step::Last { len: 4, .. }
        ));
        // The same block sent again is out of sequence: refused, not run.
        assert_eq!(
            sent(t1.receive(&b[..len], &[])).pcb,
            Pcb::R {
                nr: false,
                code: RCode::Other
            }
        );
    }

    #[test]
    fn chains_both_ways_within_the_readers_ifsd() {
        let mut t1 = T1::new();
        let data: [u8; 500] = core::array::from_fn(|n| n as u8);
        // The reader says it takes 100 bytes at once.
        let (b, len) = s(SKind::Ifs, false, &[100]);
        assert_eq!(sent(t1.receive(&b[..len], &[])).inf, &[100]);
        // A 500-byte command in blocks of 254, 246: the parts are handed
        // on, the first acknowledged with R(1).
        let (b, len) = i(false, true, &data[..254]);
        let Step::Part { inf, first, ack } = t1.receive(&b[..len], &[]) else {
            panic!("not a part");
        };
        assert_eq!((inf, first), (&data[..254], true));
        assert_eq!(
            parse(ack).unwrap().pcb,
            Pcb::R {
                nr: true,
                code: RCode::Ok
            }
        );
        let (b, len) = i(true, false, &data[254..]);
        assert_eq!(
            t1.receive(&b[..len], &[]),
            Step::Last {
                inf: &data[254..],
                first: false,
                len: 500
            }
        );
        // A 250-byte response in blocks of 100, 100, 50.
        let response = &data[..250];
        let first = parse(t1.respond(response)).unwrap();
        assert_eq!(
            first.pcb,
            Pcb::I {
                ns: false,
                more: true
            }
        );
        assert_eq!(first.inf, &data[..100]);
        let (ack, len) = r(true);
        let second = sent(t1.receive(&ack[..len], response));
        assert_eq!(
            (second.pcb, second.inf),
            (
                Pcb::I {
                    ns: true,
                    more: true
                },
                &data[100..200]
            )
        );
        // An R-block naming the block just sent asks for it again.
        let (again, len) = r(true);
        assert_eq!(
            sent(t1.receive(&again[..len], response)).inf,
            &data[100..200]
        );
        let (ack, len) = r(false);
        let third = sent(t1.receive(&ack[..len], response));
        assert_eq!(
            (third.pcb, third.inf),
            (
                Pcb::I {
                    ns: false,
                    more: false
                },
                &data[200..250]
            )
        );
    }

    #[test]
    fn damaged_and_lost_blocks_are_asked_for_again() {
        let mut t1 = T1::new();
        let (mut b, len) = i(false, false, &[0x00, 0xCB, 0x3F, 0xFF]);
        b[3] ^= 0x80;
        for _ in 0..5 {
            assert_eq!(
                sent(t1.receive(&b[..len], &[])).pcb,
                Pcb::R {
                    nr: false,
                    code: RCode::Edc
                }
            );
        }
        b[3] ^= 0x80;
        assert!(matches!(
            t1.receive(&b[..len], &[]),
            Step::Last { len: 4, .. }
        ));
        t1.respond(&[0x90, 0x00]);
        // The reader's next command is lost: it says it expects the card's
        // I-block 1, and the card asks for the command (N(S) 1) instead of
        // sending its last answer again.
        let (lost, llen) = r(true);
        assert_eq!(
            sent(t1.receive(&lost[..llen], &[0x90, 0x00])).pcb,
            Pcb::R {
                nr: true,
                code: RCode::Ok
            }
        );
        // RESYNCH starts afresh.
        let (rs, rlen) = s(SKind::Resynch, false, &[]);
        assert_eq!(
            sent(t1.receive(&rs[..rlen], &[])).pcb,
            Pcb::S {
                kind: SKind::Resynch,
                response: true
            }
        );
        assert!(matches!(
            t1.receive(&b[..len], &[]),
            Step::Last { len: 4, .. }
        ));
    }

    #[test]
    fn a_long_command_asks_for_time_and_an_aborted_chain_never_runs() {
        let mut t1 = T1::new();
        let (b, len) = i(false, false, &[0x00, 0x47, 0x00, 0x9A]);
        assert!(matches!(
            t1.receive(&b[..len], &[]),
            Step::Last { len: 4, .. }
        ));
        let ask = parse(t1.wtx(10)).unwrap();
        assert_eq!(
            (ask.pcb, ask.inf),
            (
                Pcb::S {
                    kind: SKind::Wtx,
                    response: false
                },
                &[10][..]
            )
        );
        let (grant, glen) = s(SKind::Wtx, true, &[10]);
        assert_eq!(t1.receive(&grant[..glen], &[]), Step::Resume);
        t1.respond(&[0x90, 0x00]);

        // A chain the reader aborts: its command never runs, and the card
        // is told to wipe what it took of it.
        let (b, len) = i(true, true, &[0x00, 0xDB, 0x3F, 0xFF]);
        assert!(matches!(
            t1.receive(&b[..len], &[]),
            Step::Part { first: true, .. }
        ));
        let (abort, alen) = s(SKind::Abort, false, &[]);
        let Step::Dropped(answer) = t1.receive(&abort[..alen], &[]) else {
            panic!("the chain was not dropped");
        };
        assert_eq!(
            parse(answer).unwrap().pcb,
            Pcb::S {
                kind: SKind::Abort,
                response: true
            }
        );
        // The next command begins afresh.
        let (b, len) = i(false, false, &[0x00, 0x20, 0x00, 0x80]);
        assert_eq!(
            t1.receive(&b[..len], &[]),
            Step::Last {
                inf: &[0x00, 0x20, 0x00, 0x80],
                first: true,
                len: 4
            }
        );
        // A command waiting for time that the reader resynchronises away
        // is dropped too; an abort with nothing held is only answered.
        t1.respond(&[0x90, 0x00]);
        let (b, len) = i(true, false, &[0x00, 0x47, 0x00, 0x9A]);
        t1.receive(&b[..len], &[]);
        t1.wtx(10);
        let (rs, rlen) = s(SKind::Resynch, false, &[]);
        assert!(matches!(t1.receive(&rs[..rlen], &[]), Step::Dropped(_)));
        assert!(matches!(t1.receive(&abort[..alen], &[]), Step::Send(_)));
    }
}
