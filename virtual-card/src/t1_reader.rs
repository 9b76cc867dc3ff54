//! The reader's side of ISO 7816-3 T=1: what a contact reader's firmware
//! does with a card's I/O line, so that the simulator can be that reader
//! for the firmware card and hand whole APDUs to pcscd. It cuts a command
//! into I-blocks, takes the card's answer block by block, grants waiting
//! time, and recovers what the line loses or damages with R-blocks,
//! retransmission and, when that fails, RESYNCH — ISO 7816-3 §11.6.3.
//! The card's side is [`card_os::t1`]; both use its block codec.

use std::io;

use card_os::t1::{self, Block, MAX_BLOCK, MAX_INF, Pcb, RCode, SKind};

/// The line to the card: one block out, the card's next block back, or
/// `None` when the card stays silent past the block waiting time.
pub trait Line {
    /// Sends `block` and waits for the card's answer, for `waits` block
    /// waiting times (more than one once the card was granted more).
    fn exchange(&mut self, block: &[u8], waits: u8) -> io::Result<Option<Vec<u8>>>;
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum T1Error {
    /// The line failed.
    #[error("the card's line: {0}")]
    Io(#[from] io::Error),
    /// The card's answers stayed bad through every retry; the link was
    /// resynchronised and the command's fate is unknown.
    #[error("T=1: no valid answer after {0} tries; the link was resynchronised")]
    Lost(u32),
    /// An answer longer than any response APDU.
    #[error("T=1: an answer longer than any response APDU")]
    TooLong,
}

/// What the link did, for the fault figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Blocks sent.
    pub blocks: u64,
    /// Blocks that came back damaged, or not at all.
    pub bad: u64,
    /// Blocks sent again, by either side's request.
    pub retransmitted: u64,
    /// Waiting time extensions granted.
    pub wtx: u64,
    /// Resynchronisations.
    pub resynchs: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, more: Counts) {
        self.blocks += more.blocks;
        self.bad += more.bad;
        self.retransmitted += more.retransmitted;
        self.wtx += more.wtx;
        self.resynchs += more.resynchs;
    }
}

/// The reader's T=1 state for one card session (from its ATR).
#[derive(Clone, Debug)]
pub struct Reader {
    /// The largest information field the reader sends (at most the
    /// card's IFSC).
    chunk: usize,
    /// N(S) of the reader's next I-block.
    ns: bool,
    /// N(S) the reader expects of the card's next I-block.
    card_ns: bool,
    /// Bad or missing answers in a row before RESYNCH.
    retries: u32,
    /// What happened so far.
    pub counts: Counts,
}

/// The longest response APDU with its status word.
const MAX_RESPONSE: usize = 65_536 + 2;

/// Waiting time extensions a command may ask for: a card that asks for
/// ever is as lost as one that never answers.
const MAX_WAITS: u32 = 64;

/// What the reader does next in an exchange.
enum Turn {
    /// The answer is complete.
    Done,
    /// Send this block: the exchange moved on.
    Progress(Vec<u8>),
    /// Send this block: the card asked for time.
    Wait(Vec<u8>),
    /// Send this block: something was lost or out of turn.
    Retry(Vec<u8>),
}

impl Reader {
    /// A reader for a card whose IFSC is `ifsc`, sending at most `chunk`
    /// bytes a block (a reader on a noisy line sends short blocks), trying
    /// a block `retries` times before it resynchronises.
    pub fn new(ifsc: usize, chunk: usize, retries: u32) -> Reader {
        Reader {
            chunk: chunk.clamp(1, ifsc.clamp(1, MAX_INF)),
            ns: false,
            card_ns: false,
            retries: retries.max(1),
            counts: Counts::default(),
        }
    }

    /// Tells the card the reader takes blocks of `ifsd` bytes (S(IFS)).
    pub fn set_ifsd(&mut self, line: &mut impl Line, ifsd: u8) -> Result<(), T1Error> {
        let request = encode(
            Pcb::S {
                kind: SKind::Ifs,
                response: false,
            },
            &[ifsd],
        );
        for _ in 0..self.retries {
            self.counts.blocks += 1;
            match line.exchange(&request, 1)?.as_deref().map(t1::parse) {
                Some(Ok(Block {
                    pcb:
                        Pcb::S {
                            kind: SKind::Ifs,
                            response: true,
                        },
                    inf,
                })) if inf == [ifsd] => return Ok(()),
                _ => {
                    self.counts.bad += 1;
                    self.counts.retransmitted += 1;
                }
            }
        }
        self.resynch(line)?;
        Err(T1Error::Lost(self.retries))
    }

    /// One command APDU, its response back.
    pub fn transmit(&mut self, line: &mut impl Line, apdu: &[u8]) -> Result<Vec<u8>, T1Error> {
        let chunks: Vec<&[u8]> = if apdu.is_empty() {
            vec![&[][..]]
        } else {
            apdu.chunks(self.chunk).collect()
        };
        // Chunks the card has taken (the last one, once it answers).
        let mut sent = 0;
        let mut out = Vec::new();
        let mut next = self.i_block(&chunks, sent);
        let (mut failures, mut waits) = (0, 0);
        // Block waiting times the card may take: more once it asked.
        let mut granted = 1;
        loop {
            self.counts.blocks += 1;
            let answer = line.exchange(&next, granted)?;
            granted = 1;
            let turn = match answer.as_deref().map(t1::parse) {
                Some(Ok(block)) => self.turn(block, &chunks, &mut sent, &mut out)?,
                // Damaged or missing: ask for the block expected, which the
                // card answers by sending it again or by asking for the
                // reader's.
                bad => {
                    self.counts.bad += 1;
                    let code = match bad {
                        Some(Err(t1::BlockError::Edc)) => RCode::Edc,
                        _ => RCode::Other,
                    };
                    Turn::Retry(self.ask(code))
                }
            };
            next = match turn {
                Turn::Done => return Ok(out),
                Turn::Progress(block) => {
                    failures = 0;
                    block
                }
                Turn::Wait(block) if waits < MAX_WAITS => {
                    waits += 1;
                    granted = t1::parse(&block)
                        .ok()
                        .and_then(|b| b.inf.first().copied())
                        .unwrap_or(1);
                    block
                }
                Turn::Retry(block) if failures + 1 < self.retries => {
                    failures += 1;
                    block
                }
                Turn::Wait(_) | Turn::Retry(_) => {
                    self.resynch(line)?;
                    return Err(T1Error::Lost(failures + 1));
                }
            };
        }
    }

    /// What the card's `block` means for an exchange in which the card has
    /// taken `sent` of the command's `chunks`, and `out` holds the answer
    /// so far.
    fn turn(
        &mut self,
        block: Block<'_>,
        chunks: &[&[u8]],
        sent: &mut usize,
        out: &mut Vec<u8>,
    ) -> Result<Turn, T1Error> {
        let answering = *sent + 1 >= chunks.len();
        Ok(match block.pcb {
            // The card asks for the block in flight again.
            Pcb::R { nr, .. } if *sent < chunks.len() && nr == self.ns => {
                self.counts.retransmitted += 1;
                Turn::Retry(self.i_block(chunks, *sent))
            }
            // It acknowledges a chained block: the next one.
            Pcb::R { .. } if !answering => {
                self.ns = !self.ns;
                *sent += 1;
                Turn::Progress(self.i_block(chunks, *sent))
            }
            // A block of the answer other than the one expected: ask again.
            Pcb::I { ns, .. } if answering && ns != self.card_ns => {
                self.counts.retransmitted += 1;
                Turn::Retry(self.ask(RCode::Ok))
            }
            Pcb::I { more, .. } if answering => {
                if *sent < chunks.len() {
                    // The answer's first block acknowledges the command's
                    // last.
                    self.ns = !self.ns;
                    *sent += 1;
                }
                self.card_ns = !self.card_ns;
                out.extend_from_slice(block.inf);
                if out.len() > MAX_RESPONSE {
                    return Err(T1Error::TooLong);
                }
                if more {
                    Turn::Progress(self.ask(RCode::Ok))
                } else {
                    Turn::Done
                }
            }
            Pcb::S {
                kind: SKind::Wtx,
                response: false,
            } => {
                self.counts.wtx += 1;
                Turn::Wait(encode(
                    Pcb::S {
                        kind: SKind::Wtx,
                        response: true,
                    },
                    block.inf,
                ))
            }
            // Anything else is out of turn: ask for what is expected.
            _ => Turn::Retry(self.ask(RCode::Other)),
        })
    }

    /// An R-block naming the card's I-block the reader expects.
    fn ask(&self, code: RCode) -> Vec<u8> {
        encode(
            Pcb::R {
                nr: self.card_ns,
                code,
            },
            &[],
        )
    }

    fn i_block(&self, chunks: &[&[u8]], n: usize) -> Vec<u8> {
        let chunk = chunks.get(n).copied().unwrap_or_default();
        encode(
            Pcb::I {
                ns: self.ns,
                more: n + 1 < chunks.len(),
            },
            chunk,
        )
    }

    /// S(RESYNCH): both sides' sequence numbers back to 0.
    fn resynch(&mut self, line: &mut impl Line) -> Result<(), T1Error> {
        self.counts.resynchs += 1;
        let request = encode(
            Pcb::S {
                kind: SKind::Resynch,
                response: false,
            },
            &[],
        );
        for _ in 0..self.retries {
            self.counts.blocks += 1;
            if let Some(Ok(Block {
                pcb:
                    Pcb::S {
                        kind: SKind::Resynch,
                        response: true,
                    },
                ..
            })) = line.exchange(&request, 1)?.as_deref().map(t1::parse)
            {
                self.ns = false;
                self.card_ns = false;
                return Ok(());
            }
        }
        Err(T1Error::Lost(self.retries))
    }
}

fn encode(pcb: Pcb, inf: &[u8]) -> Vec<u8> {
    let mut out = [0u8; MAX_BLOCK];
    let len = t1::write(pcb, inf, &mut out);
    out.get(..len).unwrap_or_default().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line_noise::LineNoise;
    use card_os::t1::{Step, T1};

    /// A card behind a line: its T=1 layer and a command that answers
    /// its own bytes (three times over, to chain) and `90 00`, counting
    /// each time it runs; the line damages, drops or delays characters
    /// (`LineNoise`) both ways.
    struct NoisyCard {
        t1: T1,
        command: Vec<u8>,
        response: Vec<u8>,
        runs: Vec<Vec<u8>>,
        noise: LineNoise,
    }

    impl NoisyCard {
        fn new(seed: u64, rate: f64) -> NoisyCard {
            NoisyCard {
                t1: T1::new(),
                command: Vec::new(),
                response: Vec::new(),
                runs: Vec::new(),
                noise: LineNoise::new(rate, seed),
            }
        }
    }

    impl Line for NoisyCard {
        fn exchange(&mut self, block: &[u8], _waits: u8) -> io::Result<Option<Vec<u8>>> {
            let Some(arrived) = self.noise.receive(block) else {
                return Ok(None);
            };
            let response = std::mem::take(&mut self.response);
            // A block short of its LEN is one the card's character waiting
            // time cut short (card_os::contact): asked for again.
            let step = match t1::parse(&arrived) {
                Err(t1::BlockError::Malformed) if arrived.len() < block.len() => {
                    self.t1.bad_block(RCode::Other)
                }
                _ => self.t1.receive(&arrived, &response),
            };
            let answer = match step {
                Step::Send(out) | Step::Dropped(out) => out.to_vec(),
                Step::Part { inf, first, ack } => {
                    if first {
                        self.command.clear();
                    }
                    self.command.extend_from_slice(inf);
                    ack.to_vec()
                }
                Step::Last { inf, first, len } => {
                    if first {
                        self.command.clear();
                    }
                    self.command.extend_from_slice(inf);
                    assert_eq!(self.command.len(), len);
                    let command = self.command.clone();
                    self.runs.push(command.clone());
                    let mut answer: Vec<u8> =
                        command.iter().cycle().take(len * 3).copied().collect();
                    answer.extend_from_slice(&[0x90, 0x00]);
                    self.response = answer;
                    // Commands whose first byte is `47` ask for time.
                    if command.first() == Some(&0x47) {
                        self.t1.wtx(4).to_vec()
                    } else {
                        self.t1.respond(&self.response).to_vec()
                    }
                }
                Step::Resume => self.t1.respond(&response).to_vec(),
            };
            if self.response.is_empty() {
                self.response = response;
            }
            Ok(self.noise.receive(&answer))
        }
    }

    fn command(n: u32, len: usize) -> Vec<u8> {
        let mut c = n.to_be_bytes().to_vec();
        c.resize(len, n as u8);
        c
    }

    #[test]
    fn a_clean_line_carries_short_long_and_slow_commands() {
        let mut card = NoisyCard::new(1, 0.0);
        let mut reader = Reader::new(254, 254, 3);
        reader.set_ifsd(&mut card, 254).unwrap();
        for (n, len) in [(1u32, 5usize), (2, 300), (0x4700_0003, 20), (4, 1000)] {
            let c = command(n, len);
            let answer = reader.transmit(&mut card, &c).unwrap();
            assert_eq!(answer.len(), len * 3 + 2);
            assert_eq!(&answer[..len], &c[..]);
        }
        assert_eq!(card.runs.len(), 4);
        assert_eq!(reader.counts.wtx, 1);
        assert_eq!(reader.counts.retransmitted, 0);
    }

    /// One byte in a hundred damaged: every command runs exactly once and
    /// every answer arrives whole; the figures say how much was recovered.
    #[test]
    fn at_one_percent_byte_errors_every_command_runs_once() {
        let mut card = NoisyCard::new(7, 0.01);
        let mut reader = Reader::new(254, 32, 12);
        let mut sent = 0;
        for n in 0..300u32 {
            let len = 5 + (n as usize * 37) % 400;
            let c = command(n, len);
            let answer = reader.transmit(&mut card, &c).unwrap();
            assert_eq!(&answer[..len], &c[..], "command {n}");
            assert_eq!(answer[answer.len() - 2..], [0x90, 0x00]);
            sent += 1;
        }
        assert_eq!(card.runs.len(), sent, "commands run = commands sent");
        for (n, run) in card.runs.iter().enumerate() {
            assert_eq!(run[..4], (n as u32).to_be_bytes(), "in order, each once");
        }
        let faults = card.noise.faults;
        println!(
            "1 % of characters hit: {} commands, {} run, {faults:?}, {:?}",
            sent,
            card.runs.len(),
            reader.counts
        );
        assert!(faults.corrupted() > 100, "{faults:?}");
        assert!(reader.counts.retransmitted + reader.counts.bad > 0);
        assert_eq!(reader.counts.resynchs, 0);
    }
}
