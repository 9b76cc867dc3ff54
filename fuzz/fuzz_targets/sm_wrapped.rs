//! The secure messaging layer, the card's side: in a session (CS2 or CS7,
//! by the input's first byte), a sequence of protected commands, each
//! either wrapped right by the client from a fuzzed header and data, or
//! those bytes with one changed, or arbitrary bytes under class `0C`. No
//! panic and never `6F 00`; a command wrapped right is answered with a
//! wrapped answer the client opens (its MAC verifies, whatever the command
//! inside did); any other is refused (`69 87` or `69 88`, or `69 82` with
//! no session), leaves the card's flash as it was, and ends the session:
//! the next command wrapped right is `69 82` until a new establishment.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use applet::{DeviceKey, Piv, Profile};
use arbitrary::{Arbitrary, Unstructured};
use card_os::store::Store;
use card_os::testing::{RamFlash, for_each_record};
use card_os::{Card, atr};
use client::{AdminAlgorithm, DEFAULT_MGM, PivClient, Slot, Suite};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

type Flash = RamFlash<{ 64 * 1024 }, 4096>;
type TheCard = Card<Flash, ChaCha8Rng, (Piv,)>;

#[derive(Arbitrary, Debug)]
enum Op {
    /// A command wrapped right, by the session's client.
    Wrapped { ins: u8, p1: u8, p2: u8, data: Vec<u8> },
    /// The same, with one byte of its data field changed.
    Changed {
        ins: u8,
        p1: u8,
        p2: u8,
        data: Vec<u8>,
        at: u16,
        xor: u8,
    },
    /// Arbitrary bytes under class `0C`, as one APDU.
    Raw(Vec<u8>),
    /// A new key establishment.
    Establish,
}

fn boot(flash: Flash) -> TheCard {
    let mut card = Card::boot(
        flash,
        ChaCha8Rng::seed_from_u64(3),
        (Piv::new(DeviceKey::new([7; 32]), true).with_profile(Profile::Series9),),
        atr::t1(&[]).unwrap(),
    )
    .unwrap();
    card.power_on();
    card.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08])
        .unwrap();
    card
}

/// A Series 9 card with key `04` for `suite` and its CVC, and a P-256 key
/// in 9A, made once per process.
fn base(suite: Suite) -> &'static Flash {
    static CARDS: [OnceLock<Flash>; 2] = [OnceLock::new(), OnceLock::new()];
    CARDS[usize::from(suite == Suite::Cs7)].get_or_init(|| {
        let mut card = boot(Flash::new());
        let mut c = PivClient::new(&mut card);
        c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM).unwrap();
        c.generate_key(Slot::Authentication, client::Algorithm::P256, false)
            .unwrap();
        let public = c
            .generate_key(Slot::SecureMessaging, suite.algorithm(), false)
            .unwrap();
        let point = &public[public.len() - suite.point_len()..];
        let cvc = client::cvc::build(suite, &[1; 8], &[2; 16], point, |_| {
            Ok(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])
        })
        .unwrap();
        c.put_object(applet::objects::SM_CVC, &cvc).unwrap();
        card.into_parts().0
    })
}

fn dump(flash: &Flash) -> BTreeMap<u16, Vec<u8>> {
    let mut store: Store<Flash> = Store::mount(flash.clone()).unwrap();
    let mut all = BTreeMap::new();
    for_each_record(&mut store, &mut [0; 4096], |k, v| {
        all.insert(k, v.to_vec());
    })
    .unwrap();
    all
}

fn sw(rsp: &[u8]) -> u16 {
    u16::from_be_bytes([rsp[rsp.len() - 2], rsp[rsp.len() - 1]])
}

/// Sends a command not wrapped by the session, and checks the card
/// refused it as not the session's and changed nothing.
fn refused(card: &mut TheCard, apdu: &[u8]) {
    let before = dump(card.store().flash());
    let rsp = card.transmit(apdu).unwrap();
    let sw = sw(&rsp);
    assert_ne!(sw, 0x6F00);
    // Not the session's, no session, malformed, SM on SELECT or GET
    // RESPONSE, or an instruction ISO 7816-3 reserves.
    let allowed = [0x6987, 0x6988, 0x6982, 0x6700, 0x6882, 0x6D00];
    assert!(allowed.contains(&sw), "{sw:04X} for {apdu:02X?}");
    assert_eq!(rsp.len(), 2, "an answer to a command not the session's");
    assert_eq!(dump(card.store().flash()), before, "the card changed");
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let suite = if first & 1 == 0 { Suite::Cs2 } else { Suite::Cs7 };
    let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(rest)) else {
        return;
    };
    let mut card = boot(base(suite).clone());
    let mut session = {
        let mut c = PivClient::new(&mut card);
        c.open_secure_messaging(suite, None).unwrap();
        c.take_secure_session()
    };
    for op in ops.iter().take(24) {
        match op {
            Op::Establish => {
                let mut c = PivClient::new(&mut card);
                c.open_secure_messaging(suite, None).unwrap();
                session = c.take_secure_session();
            }
            Op::Wrapped { ins, p1, p2, data } => {
                // SELECT and GET RESPONSE are never protected (the OS
                // refuses them under class 0C), nor are the bytes ISO
                // 7816-3 reserves instructions.
                let ins = if matches!(*ins, 0xA4 | 0xC0) || matches!(*ins & 0xF0, 0x60 | 0x90) {
                    0xCB
                } else {
                    *ins
                };
                let mut c = PivClient::new(&mut card);
                let open = session.is_some();
                if let Some(s) = session.take() {
                    c.resume_secure_session(s);
                }
                let data = &data[..data.len().min(1024)];
                match c.exchange([0x0C, ins, *p1, *p2], data) {
                    // The answer opened: its MAC verified.
                    Ok((_, sw)) => {
                        assert_ne!(sw, 0x6F00);
                        if open {
                            // The card's own refusals of a whole command
                            // (too long for its buffer, a chain too long)
                            // come in the clear; SM's never do, for a
                            // command wrapped right.
                            assert!(!matches!(sw, 0x6987 | 0x6988), "{sw:04X}");
                        } else {
                            // Sent unwrapped under class 0C: never run.
                            assert!(matches!(sw, 0x6982 | 0x6987 | 0x6988 | 0x6700), "{sw:04X}");
                        }
                    }
                    Err(e) => panic!("a right command's answer did not open: {e}"),
                }
                session = c.take_secure_session();
            }
            Op::Changed {
                ins,
                p1,
                p2,
                data,
                at,
                xor,
            } => {
                let Some(mut s) = session.take() else {
                    continue;
                };
                let mut wrapped = s.wrap([0x0C, *ins, *p1, *p2], &data[..data.len().min(200)]);
                if wrapped.len() > 255 || *xor == 0 {
                    // Not sent, but the client's chain moved on: a new
                    // session puts both ends together again.
                    let mut c = PivClient::new(&mut card);
                    c.open_secure_messaging(suite, None).unwrap();
                    session = c.take_secure_session();
                    continue;
                }
                let i = usize::from(*at) % wrapped.len();
                wrapped[i] ^= xor;
                let mut apdu = vec![0x0C, *ins, *p1, *p2, wrapped.len() as u8];
                apdu.extend_from_slice(&wrapped);
                apdu.push(0);
                refused(&mut card, &apdu);
            }
            Op::Raw(bytes) => {
                let mut apdu = bytes.clone();
                if apdu.len() < 4 {
                    continue;
                }
                apdu[0] = 0x0C;
                // Not an instruction ISO 7816-3 reserves: the card OS
                // answers those `6D 00` before any applet.
                if matches!(apdu[1] & 0xF0, 0x60 | 0x90) {
                    apdu[1] = 0xCB;
                }
                // Arbitrary bytes are no command wrapped by this session:
                // their MAC cannot verify (1 in 2^64).
                refused(&mut card, &apdu);
                session = None;
            }
        }
    }
});
