//! The card OS's APDU pipeline: the vector file, then the cases that need
//! code (long responses, chain limits, applet events).

use card_os::testing::{EchoApplet, RamFlash};
use card_os::{CHAIN_CAPACITY, Card, Mute, atr};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

type Flash = RamFlash<{ 16 * 1024 }, 1024>;
type TestCard = Card<Flash, ChaCha8Rng, (EchoApplet, EchoApplet)>;

const AID_A: &[u8] = &[0xF0, 0x01, 0x02, 0x03, 0x04, 0x05];
const AID_B: &[u8] = &[0xF0, 0x01, 0x02, 0x03, 0x04, 0x06];
const SELECT_A: &[u8] = &[
    0x00, 0xA4, 0x04, 0x00, 0x06, 0xF0, 0x01, 0x02, 0x03, 0x04, 0x05,
];

fn card() -> TestCard {
    let atr = atr::t1(b"\x80\x5ftest").unwrap();
    let applets = (EchoApplet::new(AID_A), EchoApplet::new(AID_B));
    let mut card = Card::boot(Flash::new(), ChaCha8Rng::seed_from_u64(7), applets, atr).unwrap();
    card.power_on();
    card
}

/// A vector file's hex, spaces allowed between bytes.
fn hex(text: &str) -> Vec<u8> {
    hex::decode(text.split_whitespace().collect::<String>()).unwrap()
}

fn send(card: &mut TestCard, apdu: &[u8]) -> Vec<u8> {
    card.transmit(apdu).unwrap().to_vec()
}

#[test]
fn vector_file() {
    let text = include_str!("data/pipeline.txt");
    let mut card = card();
    let mut scenario = String::new();
    let mut last = Vec::new();
    let mut exchanges = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let at = format!("line {} ({scenario})", n + 1);
        if let Some(name) = line.strip_prefix("==") {
            scenario = name.trim().to_string();
            card = self::card();
        } else if let Some(cmd) = line.strip_prefix('>') {
            last = send(&mut card, &hex(cmd));
            exchanges += 1;
        } else if let Some(expected) = line.strip_prefix('<') {
            let expected = expected.trim();
            if let Some(sw) = expected.strip_prefix('*') {
                assert_eq!(&last[last.len() - 2..], &hex(sw)[..], "{at}");
            } else {
                assert_eq!(last, hex(expected), "{at}");
            }
        } else if line == "! reset" {
            card.warm_reset();
        } else if line == "! cycle" {
            card.power_off();
            card.power_on();
        } else {
            assert!(
                line.is_empty() || line.starts_with('#'),
                "{at}: cannot read {line:?}"
            );
        }
    }
    assert!(exchanges >= 80, "vector file lost exchanges: {exchanges}");
}

#[test]
fn atr_is_valid_t1() {
    let card = card();
    let atr = card.atr();
    assert_eq!(atr[0], 0x3B);
    let k = usize::from(atr[1] & 0x0F);
    assert_eq!(atr.len(), 2 + 4 + k + 1);
    assert_eq!(atr.iter().skip(1).fold(0, |x, b| x ^ b), 0, "TCK");
    assert_ne!(&atr[1..4], &[0x80, 0x80, 0x01][..], "contactless form");
    assert!(atr::t1(&[0; 16]).is_none());
}

#[test]
fn unpowered_card_is_mute() {
    let mut card = card();
    card.power_off();
    assert_eq!(card.transmit(SELECT_A), Err(Mute::NoPower));
}

#[test]
fn long_response_comes_in_chunks_of_256() {
    let mut card = card();
    send(&mut card, SELECT_A);
    let mut got = Vec::new();
    let mut rsp = send(&mut card, &[0x00, 0x02, 0x02, 0x58, 0x00]); // 600 bytes
    loop {
        let (data, sw) = rsp.split_at(rsp.len() - 2);
        got.extend_from_slice(data);
        match sw {
            [0x90, 0x00] => break,
            [0x61, n] => {
                let expected_left = 600 - got.len();
                assert_eq!(usize::from(*n), expected_left.min(256) % 256);
                rsp = send(&mut card, &[0x00, 0xC0, 0x00, 0x00, *n]);
            }
            other => panic!("unexpected SW {other:02X?}"),
        }
    }
    let expected: Vec<u8> = (0..600).map(|i| i as u8).collect();
    assert_eq!(got, expected);
}

/// A chained command's response is written after its data, in the card's
/// one buffer: 1,600 bytes in and echoed out fit; 3 KiB in and out do not,
/// and are refused (`6A 84`) with nothing sent and nothing left behind.
#[test]
fn a_chained_command_and_its_response_share_the_buffer() {
    let mut card = card();
    send(&mut card, SELECT_A);
    let echo = |card: &mut _, body: &[u8]| -> Vec<u8> {
        let parts: Vec<&[u8]> = body.chunks(255).collect();
        let mut rsp = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let cla = if i + 1 == parts.len() { 0x00 } else { 0x10 };
            let mut apdu = vec![cla, 0x01, 0x00, 0x00, part.len() as u8];
            apdu.extend_from_slice(part);
            rsp = send(card, &apdu);
        }
        let mut got = Vec::new();
        loop {
            let (data, sw) = rsp.split_at(rsp.len() - 2);
            got.extend_from_slice(data);
            match sw {
                [0x61, n] => rsp = send(card, &[0x00, 0xC0, 0x00, 0x00, *n]),
                _ => {
                    got.extend_from_slice(sw);
                    return got;
                }
            }
        }
    };
    let body: Vec<u8> = (0..1600).map(|i| (i * 3) as u8).collect();
    let mut expected = body.clone();
    expected.extend_from_slice(&[0x90, 0x00]);
    assert_eq!(echo(&mut card, &body), expected);
    assert_eq!(card.residue(), 0);

    let body: Vec<u8> = (0..3 * 1024).map(|i| (i * 5) as u8).collect();
    assert_eq!(echo(&mut card, &body), [0x6A, 0x84]);
    assert_eq!(card.residue(), 0);
}

#[test]
fn chain_up_to_capacity_and_beyond() {
    let mut card = card();
    send(&mut card, SELECT_A);
    // A certificate-sized chain (3 KiB in 255-byte parts) reassembles: the
    // test applet keeps what it was given (and, for INS 03, refuses it).
    let body: Vec<u8> = (0..3 * 1024).map(|i| (i * 7) as u8).collect();
    let parts: Vec<&[u8]> = body.chunks(255).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut apdu = vec![if last { 0x00 } else { 0x10 }, 0x03, 0x00, 0x00];
        apdu.push(part.len() as u8);
        apdu.extend_from_slice(part);
        let rsp = send(&mut card, &apdu);
        let sw = if last { [0x6A, 0x80] } else { [0x90, 0x00] };
        assert_eq!(rsp, sw, "part {i}");
    }
    assert_eq!(card.applets().0.last_data.as_slice(), &body[..]);

    // One byte more than the buffer: refused, nothing stored, nothing sent on.
    let too_long = vec![0x5A; CHAIN_CAPACITY + 1];
    let parts: Vec<&[u8]> = too_long.chunks(255).collect();
    let mut last = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let cla = if i + 1 == parts.len() { 0x00 } else { 0x10 };
        let mut apdu = vec![cla, 0x04, 0x00, 0x0A, part.len() as u8];
        apdu.extend_from_slice(part);
        last = send(&mut card, &apdu);
        if last != [0x90, 0x00] {
            break;
        }
    }
    assert_eq!(last, vec![0x6A, 0x84]);
    assert_eq!(
        send(&mut card, &[0x00, 0x05, 0x00, 0x0A, 0x00]),
        vec![0x6A, 0x82]
    );
}

#[test]
fn selection_events_reach_applets() {
    let mut card = card();
    send(&mut card, SELECT_A);
    send(&mut card, SELECT_A);
    let select_b = [
        0x00, 0xA4, 0x04, 0x00, 0x06, 0xF0, 0x01, 0x02, 0x03, 0x04, 0x06,
    ];
    send(&mut card, &select_b);
    let (a, b) = card.applets();
    assert_eq!(
        (a.events.selected, a.events.deselected),
        (2, 1),
        "reselect keeps, switching drops"
    );
    assert_eq!(b.events.selected, 1);
    card.warm_reset();
    assert_eq!(card.applets().0.events.resets, 2, "power on and warm reset");
}

#[test]
fn randomness_comes_from_the_injected_rng() {
    let run = || {
        let mut card = card();
        send(&mut card, SELECT_A);
        send(&mut card, &[0x00, 0x06, 0x00, 0x00, 0x08])
    };
    let first = run();
    assert_eq!(first, run(), "same seed, same bytes");
    assert_eq!(first.len(), 10);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn apdu() -> impl Strategy<Value = Vec<u8>> {
        let cla = prop_oneof![Just(0x00u8), Just(0x10), any::<u8>()];
        let ins = prop_oneof![Just(0xA4u8), Just(0xC0), 0x01u8..=0x06, any::<u8>()];
        let select = Just(SELECT_A.to_vec());
        let structured = (
            cla,
            ins,
            any::<[u8; 2]>(),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::option::of(any::<u8>()),
        )
            .prop_map(|(cla, ins, p, data, le)| {
                let mut v = vec![cla, ins, p[0], p[1]];
                if !data.is_empty() {
                    v.push(data.len().min(255) as u8);
                    v.extend_from_slice(&data[..data.len().min(255)]);
                }
                v.extend(le);
                v
            });
        prop_oneof![
            select,
            structured,
            proptest::collection::vec(any::<u8>(), 0..40)
        ]
    }

    /// Commands that reach the buffer's limits: long answers (INS 02
    /// answers P1 P2 bytes) and extended-length data, in chains of one INS
    /// or alone. Well-formed, and none a GET RESPONSE: the one way a
    /// command handed over in parts may differ from one handed over whole
    /// is a malformed one too long to sit beside what is pending
    /// (`a_long_command_gathered_ends_what_was_pending`). Echoes stop at
    /// half the buffer: a command gathered shares the buffer with its
    /// response, as a chained one does.
    fn long_apdu() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u16..3400).prop_map(|n| {
                let [hi, lo] = n.to_be_bytes();
                vec![0x00, 0x02, hi, lo, 0x00]
            }),
            (
                prop_oneof![Just(0x00u8), Just(0x10)],
                prop_oneof![Just(0x01u8), Just(0x07)],
                1usize..1660
            )
                .prop_map(|(cla, ins, n)| {
                    let [hi, lo] = (n as u16).to_be_bytes();
                    let mut v = vec![cla, ins, 0x00, 0x00, 0x00, hi, lo];
                    v.extend((0..n).map(|i| i as u8 | 1));
                    v.extend([0x00, 0x00]);
                    v
                }),
        ]
    }

    /// Cuts `apdu` into parts at the offsets `cuts` say (each taken
    /// modulo what is left, plus one).
    fn parts<'a>(apdu: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = apdu;
        let mut cuts = cuts.iter().cycle();
        while !rest.is_empty() {
            let n = cuts
                .next()
                .map_or(rest.len(), |c| c % rest.len() + 1)
                .min(254);
            let (part, tail) = rest.split_at(n);
            out.push(part);
            rest = tail;
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A command a link hands over in parts (T=1's chains, gathered in
        /// the card's own buffer) gets the very response it gets handed
        /// over whole, and leaves the card in the same state: the same
        /// answers to every later command, and no residue.
        #[test]
        fn a_command_gathered_in_parts_is_answered_as_one_handed_over_whole(
            seq in proptest::collection::vec(prop_oneof![3 => apdu(), 1 => long_apdu()], 1..30),
            cuts in proptest::collection::vec(0usize..400, 1..8),
        ) {
            let (mut whole, mut gathered) = (card(), card());
            for cmd in &seq {
                let expected = whole.transmit(cmd).unwrap();
                for (n, part) in parts(cmd, &cuts).into_iter().enumerate() {
                    prop_assert!(gathered.gather(part, n == 0));
                }
                if cmd.is_empty() {
                    prop_assert!(gathered.gather(&[], true));
                }
                let got = gathered.transmit_gathered().unwrap();
                prop_assert_eq!(got.as_slice(), expected.as_slice(), "{:02X?}", &cmd[..cmd.len().min(8)]);
                prop_assert_eq!(got.secrecy(), expected.secrecy());
                prop_assert_eq!(gathered.residue(), 0);
            }
        }

        #[test]
        fn any_sequence_gets_valid_bounded_responses(seq in proptest::collection::vec(apdu(), 1..40)) {
            let mut card = card();
            for cmd in &seq {
                let rsp = card.transmit(cmd).unwrap();
                prop_assert!(rsp.len() >= 2 && rsp.len() <= 258);
                let sw = u16::from_be_bytes([rsp[rsp.len() - 2], rsp[rsp.len() - 1]]);
                let status = apdu::Status::from_sw(sw);
                prop_assert!(status.is_some(), "unknown SW {sw:04X}");
                prop_assert_ne!(sw, 0x6F00);
                if !status.unwrap().is_success() {
                    prop_assert_eq!(rsp.len(), 2, "error with data");
                }
            }
        }
    }
}

#[test]
fn power_cut_during_a_command_leaves_old_or_new() {
    use card_os::testing::TearingFlash;
    type Torn = TearingFlash<Flash>;
    let store_cmd = |value: u8| {
        let mut v = vec![0x00, 0x04, 0x00, 0x01, 0x20];
        v.extend_from_slice(&[value; 0x20]);
        v
    };
    let read_cmd = [0x00, 0x05, 0x00, 0x01, 0x00];
    let base = {
        let mut c = card();
        send(&mut c, SELECT_A);
        assert_eq!(send(&mut c, &store_cmd(1)), vec![0x90, 0x00]);
        c.into_parts().0
    };
    let mut cuts = 0;
    for n in 0.. {
        let applets = (EchoApplet::new(AID_A), EchoApplet::new(AID_B));
        let atr = atr::t1(&[]).unwrap();
        let rng = ChaCha8Rng::seed_from_u64(1);
        let mut c: Card<Torn, ChaCha8Rng, (EchoApplet, EchoApplet)> = Card::boot(
            Torn::new(base.clone(), Some(n), n as u64),
            rng,
            applets,
            atr,
        )
        .unwrap();
        c.power_on();
        c.transmit(SELECT_A).unwrap();
        let rsp = c.transmit(&store_cmd(2)).unwrap();
        let (flash, rng, applets) = c.into_parts();
        if !flash.is_cut() {
            assert_eq!(rsp.as_slice(), &[0x90, 0x00]);
            break;
        }
        cuts += 1;
        assert_eq!(
            rsp.as_slice(),
            &[0x65, 0x81],
            "a failed write reports memory failure"
        );
        let mut rebooted: TestCard =
            Card::boot(flash.into_inner(), rng, applets, atr::t1(&[]).unwrap()).unwrap();
        rebooted.power_on();
        rebooted.transmit(SELECT_A).unwrap();
        let value = rebooted.transmit(&read_cmd).unwrap();
        assert!(
            value[..0x20] == [1; 0x20] || value[..0x20] == [2; 0x20],
            "cut at {n}: {value:02X?}"
        );
    }
    assert!(cuts >= 1);
}

/// The applet's verdict travels with every response APDU: on each part of
/// a chain, on the answer, and on every GET RESPONSE part of that answer.
#[test]
fn secrecy_verdict_reaches_every_part_of_an_answer() {
    use card_os::Secrecy;
    let mut card = card();
    // Nothing selected: nobody can judge, so all is secret.
    let rsp = card
        .transmit(&[0x00, 0x01, 0x00, 0x00, 0x01, 0xAA])
        .unwrap();
    assert_eq!(rsp.secrecy(), Secrecy::SECRET);
    let rsp = card.transmit(SELECT_A).unwrap();
    assert_eq!(rsp.secrecy(), Secrecy::PUBLIC);
    assert!(rsp.ends_with(&[0x90, 0x00]));

    // A secret echoed back (INS 07): 600 bytes in, chained in parts of
    // 255, 255 and 90, then 600 bytes out in parts of 256, 256 and 88.
    let secret: Vec<u8> = (0..600u32).map(|i| (i % 251 + 1) as u8).collect();
    let parts: Vec<&[u8]> = secret.chunks(255).collect();
    let mut echoed = Vec::new();
    for (i, chunk) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut apdu = vec![if last { 0x00 } else { 0x10 }, 0x07, 0x00, 0x00];
        apdu.push(chunk.len() as u8);
        apdu.extend_from_slice(chunk);
        if last {
            apdu.push(0x00);
        }
        let rsp = card.transmit(&apdu).unwrap();
        assert_eq!(rsp.secrecy(), Secrecy::SECRET, "part {i}");
        if last {
            assert_eq!(&rsp[256..], &[0x61, 0x00]);
            echoed.extend_from_slice(&rsp[..256]);
        } else {
            assert_eq!(rsp.as_slice(), &[0x90, 0x00]);
        }
    }
    for expected_left in [0x58u8, 0x00] {
        let rsp = card.transmit(&[0x00, 0xC0, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!(rsp.secrecy(), Secrecy::RESPONSE, "a GET RESPONSE part");
        echoed.extend_from_slice(&rsp[..rsp.len() - 2]);
        if expected_left == 0 {
            assert_eq!(&rsp[rsp.len() - 2..], &[0x90, 0x00]);
        } else {
            assert_eq!(&rsp[rsp.len() - 2..], &[0x61, expected_left]);
        }
    }
    assert_eq!(echoed, secret);

    // A public echo afterwards is public, and so are its parts.
    let rsp = card
        .transmit(&[0x00, 0x01, 0x00, 0x00, 0x02, 0xAB, 0xCD])
        .unwrap();
    assert_eq!(rsp.secrecy(), Secrecy::PUBLIC);
    assert_eq!(rsp.as_slice(), &[0xAB, 0xCD, 0x90, 0x00]);
    // Bytes that are no APDU cannot be judged.
    assert_eq!(
        card.transmit(&[0x00, 0x01, 0x00]).unwrap().secrecy(),
        Secrecy::SECRET
    );
}

/// Neither a chain's data nor a response outlives the command it served:
/// once an answer is fetched, given up or replaced, or a chain is done or
/// broken, its bytes are wiped, not left for the next command to overwrite.
#[test]
fn buffers_are_wiped_after_the_command_they_served() {
    let mut card = card();
    send(&mut card, SELECT_A);
    assert_eq!(card.residue(), 0, "the FCI was sent and wiped");
    // A chained echo, fully fetched.
    let mut part = vec![0x10, 0x07, 0x00, 0x00, 0xFF];
    part.extend(std::iter::repeat_n(0x5A, 255));
    send(&mut card, &part);
    assert_eq!(card.residue(), 0, "a pending chain is not residue");
    let mut end = vec![0x00, 0x07, 0x00, 0x00, 0x10];
    end.extend(std::iter::repeat_n(0x5A, 16));
    end.push(0x00);
    assert_eq!(&send(&mut card, &end)[256..], &[0x61, 0x0F]);
    assert_eq!(card.residue(), 0, "the pending response is not residue");
    assert_eq!(
        &send(&mut card, &[0x00, 0xC0, 0x00, 0x00, 0x00])[15..],
        &[0x90, 0x00]
    );
    assert_eq!(card.residue(), 0, "fetched to the end: wiped");

    // An answer given up for another command.
    send(&mut card, &{
        let mut a = vec![0x00, 0x07, 0x00, 0x00, 0xFF];
        a.extend(std::iter::repeat_n(0x33, 255));
        a.push(0x10);
        a
    });
    send(&mut card, &[0x00, 0x01, 0x00, 0x00, 0x00]);
    assert_eq!(card.residue(), 0, "an abandoned answer: wiped");

    // A chain broken by another command, and an applet error.
    send(&mut card, &part);
    send(&mut card, &[0x00, 0x03, 0x00, 0x00, 0x01, 0x01]);
    assert_eq!(card.residue(), 0, "a broken chain: wiped");
    send(&mut card, &part);
    card.warm_reset();
    assert_eq!(card.residue(), 0, "a reset: wiped");
    send(&mut card, SELECT_A);
    let mut failing = vec![0x00, 0x08, 0x00, 0x00, 0x20];
    failing.extend(std::iter::repeat_n(0x77, 32));
    assert_eq!(send(&mut card, &failing), [0x6A, 0x80]);
    assert_eq!(card.residue(), 0, "what a failing command wrote: wiped");
}

/// The one difference a card's own gathering makes: a command too long to
/// sit beside a pending response is gathered from the buffer's start, so
/// it ends that response before it is parsed, even if it then turns out
/// malformed (handed over whole, a malformed command leaves it). A reader
/// may fetch a response only with the command right after it, so no
/// reader relies on the difference.
#[test]
fn a_long_command_gathered_ends_what_was_pending() {
    let mut card = card();
    send(&mut card, SELECT_A);
    // A 3,000-byte answer, 256 fetched.
    assert_eq!(
        &send(&mut card, &[0x00, 0x02, 0x0B, 0xB8, 0x00])[256..],
        [0x61, 0x00]
    );
    // 400 bytes whose Lc says 500: malformed.
    let mut bad = vec![0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0xF4];
    bad.extend([0x11; 393]);
    assert!(card.gather(&bad[..200], true));
    assert!(card.gather(&bad[200..], false));
    assert_eq!(card.transmit_gathered().unwrap().as_slice(), [0x67, 0x00]);
    assert_eq!(
        send(&mut card, &[0x00, 0xC0, 0x00, 0x00, 0x00]),
        [0x69, 0x85],
        "the answer is gone"
    );
    assert_eq!(card.residue(), 0);
    // A short one sits after the answer, which survives it.
    send(&mut card, &[0x00, 0x02, 0x0B, 0xB8, 0x00]);
    assert!(card.gather(&[0x00, 0x01, 0x00], true));
    assert!(card.gather(&[0x00, 0x05, 0x11], false));
    assert_eq!(card.transmit_gathered().unwrap().as_slice(), [0x67, 0x00]);
    assert_eq!(
        &send(&mut card, &[0x00, 0xC0, 0x00, 0x00, 0x00])[256..],
        [0x61, 0x00]
    );
}

/// A command gathered in parts that outgrows the buffer is refused as one
/// handed over whole would be: too long (`67 00`), or, continuing a chain,
/// a chain too long (`6A 84`, the chain dropped). Nothing of it stays.
#[test]
fn a_command_gathered_past_the_buffer_is_refused_and_wiped() {
    let mut card = card();
    send(&mut card, SELECT_A);
    let mut long = vec![0x00, 0x01, 0x00, 0x00, 0x00, 0x0D, 0x48];
    long.extend([0x5A; 3400]);
    long.extend([0x00, 0x00]);
    for (n, part) in long.chunks(254).enumerate() {
        assert!(card.gather(part, n == 0));
    }
    assert_eq!(card.gathered(), None);
    assert_eq!(card.residue(), 0, "only the header is kept");
    assert_eq!(card.transmit_gathered().unwrap().as_slice(), [0x67, 0x00]);
    assert_eq!(card.residue(), 0);

    // A chain of 3,000 bytes, then a part of 400 more gathered.
    let mut part = vec![0x10, 0x07, 0x00, 0x00, 0x00, 0x0B, 0xB8];
    part.extend([0x33; 3000]);
    assert_eq!(send(&mut card, &part), [0x90, 0x00]);
    let mut more = vec![0x00, 0x07, 0x00, 0x00, 0x00, 0x01, 0x90];
    more.extend([0x44; 400]);
    for (n, piece) in more.chunks(3).enumerate() {
        assert!(card.gather(piece, n == 0));
    }
    assert_eq!(card.transmit_gathered().unwrap().as_slice(), [0x6A, 0x84]);
    assert_eq!(card.residue(), 0, "the chain is dropped and wiped");
    // The chain is gone: its INS again starts afresh.
    let mut end = vec![0x00, 0x07, 0x00, 0x00, 0x02, 0x01, 0x02];
    end.push(0x00);
    assert_eq!(send(&mut card, &end), [0x01, 0x02, 0x90, 0x00]);
}
