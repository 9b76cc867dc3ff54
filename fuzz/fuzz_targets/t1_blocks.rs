//! Blocks as a reader on a noisy line might send them: valid ones (their
//! LRC made right) and damaged ones, in any order. The card's T=1 layer
//! never panics; every block it sends parses, an I-block within the
//! reader's IFSD; a command's parts are handed on only from in-sequence
//! I-blocks, each once, and say truly whether they begin the command and
//! how long it is; a command runs only on an in-sequence last block of a
//! chain, never again on that same block sent again (a retransmission);
//! and a command dropped (S(ABORT), S(RESYNCH)) is reported as dropped, so
//! that the card wipes what it held of it. The model follows the reader's
//! sequence number, as the card must.
#![no_main]

use card_os::t1::{self, Pcb, RCode, SKind, Step, T1};
use libfuzzer_sys::fuzz_target;

/// Reads the next block from the input: an op byte, then either a PCB, an
/// information length (under 64, or 254 for a long one) and the field,
/// with the LRC made right unless the op says to damage it; or raw bytes.
fn next_block(data: &mut &[u8]) -> Option<Vec<u8>> {
    let (&op, rest) = data.split_first()?;
    *data = rest;
    if op & 0x80 != 0 {
        let len = usize::from(op & 0x3F).min(data.len());
        let (raw, rest) = data.split_at(len);
        *data = rest;
        return Some(raw.to_vec());
    }
    let (&pcb, rest) = data.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let len = if len == 0xFF {
        254
    } else {
        usize::from(len % 64)
    };
    let len = len.min(rest.len());
    let (inf, rest) = rest.split_at(len);
    *data = rest;
    let mut block = vec![0x00, pcb, len as u8];
    block.extend_from_slice(inf);
    let lrc = block.iter().fold(0u8, |x, b| x ^ b);
    block.push(if op & 0x40 != 0 { lrc ^ 0x01 } else { lrc });
    Some(block)
}

/// A step, owned, so that the card can be asked more meanwhile.
enum Did {
    Sent(Vec<u8>),
    Part { inf: Vec<u8>, first: bool },
    Last { inf: Vec<u8>, first: bool, len: usize },
    Resume,
    Dropped(Vec<u8>),
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mut card = T1::new();
    let mut response: Vec<u8> = Vec::new();
    // The model: the N(S) the card must expect next, the block that last
    // ran a command, the command gathered so far (`None` between
    // commands), and whether a command waits for time.
    let mut expected_ns = false;
    let mut last_run: Option<Vec<u8>> = None;
    let mut command: Option<Vec<u8>> = None;
    let mut waiting = false;
    // The largest IFSD in force since the answer began: a block sent again
    // is the same block, even if the reader has since asked for smaller.
    let mut allowed = usize::from(card.ifsd());
    for block in std::iter::from_fn(|| next_block(&mut data)).take(4096) {
        let parsed = t1::parse(&block).ok();
        let did = match card.receive(&block, &response) {
            Step::Send(out) => Did::Sent(out.to_vec()),
            Step::Part { inf, first, ack } => {
                let ack = t1::parse(ack).expect("the acknowledgement parses");
                assert!(matches!(ack.pcb, Pcb::R { code: RCode::Ok, .. }));
                Did::Part {
                    inf: inf.to_vec(),
                    first,
                }
            }
            Step::Last { inf, first, len } => Did::Last {
                inf: inf.to_vec(),
                first,
                len,
            },
            Step::Resume => Did::Resume,
            Step::Dropped(out) => Did::Dropped(out.to_vec()),
        };
        allowed = allowed.max(usize::from(card.ifsd()));
        let in_sequence_i = |more: bool| {
            let Some(Pcb::I { ns, more: m }) = parsed.map(|b| b.pcb) else {
                panic!("a command's part from a block that is no I-block: {block:02X?}");
            };
            assert_eq!(m, more, "a part's place in its chain is wrong");
            assert_eq!(ns, expected_ns, "a part handed on out of sequence");
        };
        match did {
            Did::Sent(out) => {
                let sent = t1::parse(&out).expect("the card sends well-formed blocks");
                if let Pcb::I { .. } = sent.pcb {
                    assert!(sent.inf.len() <= allowed);
                }
                if let Pcb::S {
                    kind: SKind::Resynch | SKind::Abort,
                    response: true,
                } = sent.pcb
                {
                    assert!(
                        command.is_none() && !waiting,
                        "a command was dropped unreported"
                    );
                    if let Pcb::S {
                        kind: SKind::Resynch,
                        ..
                    } = sent.pcb
                    {
                        expected_ns = false;
                        last_run = None;
                    }
                }
            }
            Did::Dropped(out) => {
                let sent = t1::parse(&out).expect("the card sends well-formed blocks");
                assert!(
                    command.is_some() || waiting,
                    "a drop reported with nothing held"
                );
                command = None;
                waiting = false;
                if let Pcb::S {
                    kind: SKind::Resynch,
                    response: true,
                } = sent.pcb
                {
                    expected_ns = false;
                    last_run = None;
                } else {
                    assert_eq!(
                        sent.pcb,
                        Pcb::S {
                            kind: SKind::Abort,
                            response: true
                        }
                    );
                }
            }
            Did::Part { inf, first } => {
                in_sequence_i(true);
                assert_eq!(first, command.is_none(), "a part misplaced");
                command.get_or_insert_with(Vec::new).extend_from_slice(&inf);
                expected_ns = !expected_ns;
                // A new chain began: its last block may repeat an earlier
                // command's bytes and is a new command.
                last_run = None;
            }
            Did::Last { inf, first, len } => {
                in_sequence_i(false);
                assert_eq!(first, command.is_none(), "a last part misplaced");
                assert_ne!(
                    last_run.as_deref(),
                    Some(block.as_slice()),
                    "a command ran twice on one block"
                );
                let mut whole = command.take().unwrap_or_default();
                whole.extend_from_slice(&inf);
                assert_eq!(whole.len(), len, "the command's length is wrong");
                expected_ns = !expected_ns;
                last_run = Some(block.clone());
                // The answer echoes the command, long enough to chain.
                response = whole.iter().cycle().take(len * 3).copied().collect();
                response.extend_from_slice(&[0x90, 0x00]);
                if len % 3 == 0 {
                    // A long command: the card asks for time, and answers
                    // once the reader grants it.
                    let ask = t1::parse(card.wtx(2)).expect("a WTX request parses");
                    assert_eq!(
                        ask.pcb,
                        Pcb::S {
                            kind: SKind::Wtx,
                            response: false
                        }
                    );
                    waiting = true;
                } else {
                    allowed = usize::from(card.ifsd());
                    let first = t1::parse(card.respond(&response)).expect("the answer parses");
                    assert!(first.inf.len() <= allowed);
                }
            }
            Did::Resume => {
                assert!(waiting, "a command resumed that waited for nothing");
                waiting = false;
                allowed = usize::from(card.ifsd());
                let first = t1::parse(card.respond(&response)).expect("the answer parses");
                assert!(first.inf.len() <= allowed);
            }
        }
    }
});
