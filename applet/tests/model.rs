//! A model test: random sequences of passcode operations, key generation,
//! resets and power cuts at random flash operations, checked after every
//! step against a small reference model.
//!
//! Invariants: a try is never regained without the right value; a blocked
//! PIN stays blocked until unblocked; the key in 9A changes only through
//! GENERATE; a reset or a wrong PIN clears the security status; a cut leaves
//! the effect of the command whole or absent (a spent try aside).

mod common;

use card_os::testing::TearingFlash;
use common::*;
use proptest::prelude::*;

type Torn = TearingFlash<Flash>;

#[derive(Clone, Debug)]
enum Step {
    VerifyRight,
    VerifyWrong,
    ChangePin { right: bool, new: [u8; 6] },
    Unblock { right: bool, new: [u8; 6] },
    Generate,
    Sign,
    Reset,
}

#[derive(Clone, Debug)]
struct Model {
    pin: Vec<u8>,
    pin_left: u8,
    puk_left: u8,
    verified: bool,
    key: Option<Vec<u8>>,
}

fn step() -> impl Strategy<Value = Step> {
    // New passcodes: six digits that pass the weak-passcode rule.
    let good = prop_oneof![
        Just(*b"482915"),
        Just(*b"731026"),
        Just(*b"604182"),
        Just(*b"295731")
    ];
    prop_oneof![
        3 => Just(Step::VerifyRight),
        3 => Just(Step::VerifyWrong),
        2 => (any::<bool>(), good.clone()).prop_map(|(right, new)| Step::ChangePin { right, new }),
        2 => (any::<bool>(), good).prop_map(|(right, new)| Step::Unblock { right, new }),
        1 => Just(Step::Generate),
        2 => Just(Step::Sign),
        1 => Just(Step::Reset),
    ]
}

fn tries(card: &mut PivCard<Torn>, p2: u8) -> u8 {
    let rsp = send(card, &[0x00, 0xF7, 0x00, p2, 0x00]);
    assert_eq!(sw(&rsp), 0x9000);
    rsp[rsp.len() - 3]
}

fn key_9a(card: &mut PivCard<Torn>) -> Option<Vec<u8>> {
    let rsp = send(card, &hex("00F7009A00"));
    (sw(&rsp) == 0x9000).then(|| rsp[rsp.len() - 67..rsp.len() - 2].to_vec())
}

fn reboot(card: PivCard<Torn>, cut: Option<u32>, seed: u64) -> PivCard<Torn> {
    let flash = card.into_parts().0.into_inner();
    let mut card = boot_on(Torn::new(flash, cut, seed), seed);
    assert_eq!(sw(&send(&mut card, &hex(SELECT))), 0x9000);
    card
}

fn wrong_digits() -> &'static [u8] {
    b"000001"
}

/// Runs a step; returns the status word of its main command.
fn apply(card: &mut PivCard<Torn>, model: &Model, s: &Step) -> u16 {
    match s {
        Step::VerifyRight => verify(card, &model.pin),
        Step::VerifyWrong => verify(card, wrong_digits()),
        Step::ChangePin { right, new } => {
            let mut apdu = hex("0024008010");
            apdu.extend(padded(if *right { &model.pin } else { wrong_digits() }));
            apdu.extend(padded(new));
            sw(&send(card, &apdu))
        }
        Step::Unblock { right, new } => {
            let mut apdu = hex("002C008010");
            apdu.extend(padded(if *right { b"12345678" } else { b"00000000" }));
            apdu.extend(padded(new));
            sw(&send(card, &apdu))
        }
        Step::Generate => {
            admin_default(card);
            exchange(card, [0x00, 0x47, 0x00, 0x9A], &hex("AC03800111")).1
        }
        Step::Sign => sign(card, 0x9A, &[0x11; 32]).1,
        Step::Reset => {
            card.warm_reset();
            sw(&send(card, &hex(SELECT)))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn passcodes_keys_resets_and_cuts_follow_the_model(
        steps in proptest::collection::vec((step(), proptest::option::weighted(0.3, 0u32..6)), 1..25)
    ) {
        let mut card = boot_on(Torn::new(Flash::new(), None, 0), 3);
        send(&mut card, &hex(SELECT));
        let mut m = Model { pin: b"123456".to_vec(), pin_left: 3, puk_left: 3, verified: false, key: None };
        for (i, (s, cut)) in steps.iter().enumerate() {
            let seed = i as u64 + 100;
            if let Some(k) = cut {
                // The card is taken out and put back: the session is gone,
                // and this step's k-th flash operation loses power.
                card = reboot(card, Some(*k), seed);
                m.verified = false;
            }
            let before = m.clone();
            let status = apply(&mut card, &m, s);
            let was_cut = card.store().flash().is_cut();
            if was_cut {
                card = reboot(card, None, seed);
                m.verified = false;
            }
            // What the card now says.
            let pin_left = tries(&mut card, 0x80);
            let puk_left = tries(&mut card, 0x81);
            let key = key_9a(&mut card);

            // The model's expectations, step by step.
            match s {
                Step::VerifyRight | Step::VerifyWrong => {
                    let right = matches!(s, Step::VerifyRight);
                    if before.pin_left == 0 {
                        prop_assert!(was_cut || status == 0x6983);
                        prop_assert_eq!(pin_left, 0, "blocked stays blocked");
                    } else if was_cut {
                        let spent = before.pin_left - 1;
                        let allowed = if right { vec![before.pin_left, spent, 3] } else { vec![before.pin_left, spent] };
                        prop_assert!(allowed.contains(&pin_left), "cut VERIFY left {pin_left}");
                    } else if right {
                        prop_assert_eq!(status, 0x9000);
                        prop_assert_eq!(pin_left, 3);
                        m.verified = true;
                    } else {
                        prop_assert_eq!(pin_left, before.pin_left - 1, "a wrong PIN costs exactly one try");
                        m.verified = false;
                    }
                    m.pin_left = pin_left;
                }
                Step::ChangePin { right, new } => {
                    if was_cut {
                        let ceiling = if *right { 3 } else { before.pin_left };
                        prop_assert!(pin_left <= ceiling, "PIN tries {} above {}", pin_left, ceiling);
                        // Did the change happen? Ask the card, at the price of a try.
                        m.pin_left = pin_left;
                        if *right && pin_left > 0 {
                            match verify(&mut card, new) {
                                0x9000 => { m.pin = new.to_vec(); m.pin_left = 3; m.verified = true; }
                                s => { prop_assert_eq!(s, 0x63C0 | u16::from(pin_left - 1)); m.pin_left -= 1; }
                            }
                        }
                    } else if before.pin_left == 0 {
                        prop_assert_eq!(status, 0x6983);
                    } else if *right {
                        prop_assert_eq!(status, 0x9000);
                        m.pin = new.to_vec();
                        m.pin_left = 3;
                    } else {
                        prop_assert_eq!(pin_left, before.pin_left - 1);
                        m.pin_left = pin_left;
                        // A wrong current PIN ends the PIN session.
                        m.verified = false;
                    }
                    prop_assert!(m.pin_left == pin_left || was_cut);
                }
                Step::Unblock { right, new } => {
                    if was_cut {
                        let ceiling = if *right { 3 } else { before.puk_left };
                        prop_assert!(puk_left <= ceiling, "PUK tries {} above {}", puk_left, ceiling);
                        m.puk_left = puk_left;
                        if pin_left == 3 && before.pin_left != 3 {
                            // Only a completed unblock resets the PIN.
                            prop_assert!(*right);
                            m.pin = new.to_vec();
                        } else if *right
                            && pin_left == before.pin_left
                            && pin_left > 0
                            && verify(&mut card, new) == 0x9000
                        {
                            m.pin = new.to_vec();
                            m.verified = true;
                        }
                        m.pin_left = tries(&mut card, 0x80);
                    } else if before.puk_left == 0 {
                        prop_assert_eq!(status, 0x6983);
                    } else if *right {
                        prop_assert_eq!(status, 0x9000);
                        m.pin = new.to_vec();
                        m.pin_left = 3;
                        m.puk_left = 3;
                        m.verified = false;
                    } else {
                        prop_assert_eq!(puk_left, before.puk_left - 1, "a wrong PUK costs exactly one try");
                        m.puk_left = puk_left;
                    }
                }
                Step::Generate => {
                    if was_cut {
                        prop_assert!(key == before.key || key.is_some());
                    } else {
                        prop_assert_eq!(status, 0x9000);
                        prop_assert_ne!(&key, &before.key);
                    }
                    m.key = key.clone();
                }
                Step::Sign => {
                    match (&before.key, before.verified && !was_cut) {
                        (None, _) => prop_assert!(was_cut || status == 0x6A88 || status == 0x6982),
                        (Some(_), true) => prop_assert_eq!(status, 0x9000),
                        (Some(_), false) => prop_assert!(was_cut || status == 0x6982),
                    }
                }
                Step::Reset => {
                    m.verified = false;
                    prop_assert_eq!(sw(&send(&mut card, &hex("0020008000"))) == 0x9000, false, "reset kept the PIN status");
                }
            }
            // Never a try regained without the right value.
            if !matches!(s, Step::VerifyRight | Step::ChangePin { right: true, .. } | Step::Unblock { right: true, .. }) {
                prop_assert!(tries(&mut card, 0x80) <= before.pin_left, "PIN try regained at step {i}: {s:?}");
            }
            if !matches!(s, Step::Unblock { right: true, .. }) {
                prop_assert!(tries(&mut card, 0x81) <= before.puk_left, "PUK try regained at step {i}: {s:?}");
            }
            // The key changes only through GENERATE.
            if !matches!(s, Step::Generate) {
                prop_assert_eq!(&key, &before.key, "key changed at step {}: {:?}", i, s);
            }
            m.pin_left = tries(&mut card, 0x80);
            m.puk_left = tries(&mut card, 0x81);
            // The card's PIN status is exactly the model's.
            let status = sw(&send(&mut card, &hex("0020008000")));
            prop_assert_eq!(status == 0x9000, m.verified, "PIN status {:04X} at step {}: {:?}", status, i, s);
        }
    }
}
