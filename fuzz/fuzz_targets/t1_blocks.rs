//! Blocks as a reader on a noisy line might send them: valid ones (their
//! LRC made right) and damaged ones, in any order. The card's T=1 layer
//! never panics; every block it sends parses, an I-block within the
//! reader's IFSD; and a command runs only on an in-sequence last block of
//! a chain, never again on that same block sent again (a retransmission):
//! the model follows the reader's sequence number, as the card must.
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
    Execute(usize),
    Resume,
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mut card = T1::new();
    let mut command = [0u8; 512];
    let mut response: Vec<u8> = Vec::new();
    // The model: the N(S) the card must expect next, and the block that
    // last ran a command.
    let mut expected_ns = false;
    let mut last_run: Option<Vec<u8>> = None;
    // The largest IFSD in force since the answer began: a block sent again
    // is the same block, even if the reader has since asked for smaller.
    let mut allowed = usize::from(card.ifsd());
    for block in std::iter::from_fn(|| next_block(&mut data)).take(4096) {
        let parsed = t1::parse(&block).ok();
        let did = match card.receive(&block, &mut command, &response) {
            Step::Send(out) => Did::Sent(out.to_vec()),
            Step::Execute(len) => Did::Execute(len),
            Step::Resume => Did::Resume,
        };
        allowed = allowed.max(usize::from(card.ifsd()));
        match did {
            Did::Sent(out) => {
                let sent = t1::parse(&out).expect("the card sends well-formed blocks");
                if let Pcb::I { .. } = sent.pcb {
                    assert!(sent.inf.len() <= allowed);
                }
                match (parsed.map(|b| b.pcb), sent.pcb) {
                    // An in-sequence block of a chain, acknowledged.
                    (
                        Some(Pcb::I { ns, more: true }),
                        Pcb::R {
                            code: RCode::Ok, ..
                        },
                    ) => {
                        assert_eq!(ns, expected_ns, "a chain went on out of sequence");
                        expected_ns = !expected_ns;
                        // A new chain began: its last block may repeat an
                        // earlier command's bytes and is a new command.
                        last_run = None;
                    }
                    (
                        _,
                        Pcb::S {
                            kind: SKind::Resynch,
                            response: true,
                        },
                    ) => {
                        expected_ns = false;
                        last_run = None;
                    }
                    _ => {}
                }
            }
            Did::Execute(len) => {
                let Some(Pcb::I { ns, more: false }) = parsed.map(|b| b.pcb) else {
                    panic!("a command ran on a block that ends no chain: {block:02X?}");
                };
                assert_eq!(ns, expected_ns, "a command ran out of sequence");
                assert_ne!(
                    last_run.as_deref(),
                    Some(block.as_slice()),
                    "a command ran twice on one block"
                );
                expected_ns = !expected_ns;
                last_run = Some(block.clone());
                // The answer echoes the command, long enough to chain.
                response = command[..len]
                    .iter()
                    .cycle()
                    .take(len * 3)
                    .copied()
                    .collect();
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
                } else {
                    allowed = usize::from(card.ifsd());
                    let first = t1::parse(card.respond(&response)).expect("the answer parses");
                    assert!(first.inf.len() <= allowed);
                }
            }
            Did::Resume => {
                allowed = usize::from(card.ifsd());
                let first = t1::parse(card.respond(&response)).expect("the answer parses");
                assert!(first.inf.len() <= allowed);
            }
        }
    }
});
