//! Structured sequences of PIV operations, resets and power cuts at
//! arbitrary flash operations, against a reference model: tries never rise
//! without the right PIN or PUK, blocked stays blocked until unblocked, the
//! key in 9A changes only through GENERATE, the private key never appears in
//! a response, and a reset clears the PIN status.
#![no_main]

use arbitrary::Arbitrary;
use card_os::testing::{RamFlash, TearingFlash};
use card_os::{Card, atr};
use libfuzzer_sys::fuzz_target;
use piv::{DeviceKey, Piv};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use simulator::client::{DEFAULT_MGM, MgmAlgorithm, PivClient};

type Flash = RamFlash<{ 64 * 1024 }, 4096>;
type Torn = TearingFlash<Flash>;
type TheCard = Card<Torn, ChaCha8Rng, (Piv,)>;

#[derive(Arbitrary, Debug)]
enum Op {
    VerifyRight,
    VerifyWrong,
    ChangePin {
        right: bool,
        new: u8,
    },
    Unblock {
        right: bool,
        new: u8,
    },
    Generate,
    Sign,
    Reset,
    /// The next operation loses power at its n-th flash operation.
    Cut(u8),
    Raw(Vec<u8>),
}

const GOOD: [&[u8]; 4] = [b"482915", b"731026", b"604182", b"295731"];
const DEVICE: [u8; 32] = [5; 32];

fn boot(flash: Torn) -> TheCard {
    let mut card = Card::boot(
        flash,
        ChaCha8Rng::seed_from_u64(2),
        (Piv::new(DeviceKey::new(DEVICE), true),),
        atr::t1(&[]).unwrap(),
    )
    .unwrap();
    card.power_on();
    card.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08])
        .unwrap();
    card
}

fn tries(card: &mut TheCard, r: u8) -> u8 {
    PivClient::new(card).tries(r).unwrap().0
}

/// The private scalar of the key in 9A, unsealed from the card's flash
/// with the device key, as only the card itself can.
fn secret_9a(card: &TheCard) -> Option<[u8; 32]> {
    let mut store: card_os::store::Store<Flash> =
        card_os::store::Store::mount(card.store().flash().inner().clone()).ok()?;
    let slot = piv::slot::Slot::Authentication;
    let label = piv::layout::slot_key(slot);
    let record = piv::keys::KeyRecord::load(&mut store, label, slot).ok()??;
    let secret = record.secret(label, &DeviceKey::new(DEVICE)).ok()?;
    Some(secret.to_bytes().into())
}

fuzz_target!(|ops: Vec<Op>| {
    let mut card = boot(Torn::new(Flash::new(), None, 0));
    let mut pin: &[u8] = b"123456";
    let mut verified = false;
    let mut cut: Option<u32> = None;
    for op in ops.iter().take(40) {
        let (pin_before, puk_before) = (tries(&mut card, 0x80), tries(&mut card, 0x81));
        let key_before = PivClient::new(&mut card).public_key(0x9A).unwrap();
        if let Some(n) = cut.take() {
            let flash = card.into_parts().0.into_inner();
            card = boot(Torn::new(flash, Some(n), u64::from(n)));
            verified = false;
        }
        let mut responses = Vec::new();
        // Whether this step presents the right PIN or PUK: then, even when a
        // cut makes the command fail, the restored counter may have reached
        // the flash.
        let right_value = matches!(
            op,
            Op::VerifyRight | Op::ChangePin { right: true, .. } | Op::Unblock { right: true, .. }
        );
        {
            let mut c = PivClient::new(&mut card);
            match op {
                Op::VerifyRight => verified = c.verify_pin(pin).is_ok(),
                Op::VerifyWrong => {
                    let _ = c.verify_pin(b"999999");
                    verified = false;
                }
                Op::ChangePin { right, new } => {
                    let new = GOOD[usize::from(*new) % GOOD.len()];
                    let old = if *right { pin } else { b"999998" };
                    if c.change(0x80, old, new).is_ok() {
                        pin = new;
                    }
                }
                Op::Unblock { right, new } => {
                    let new = GOOD[usize::from(*new) % GOOD.len()];
                    let puk: &[u8] = if *right { b"12345678" } else { b"00000000" };
                    if c.unblock(puk, new).is_ok() {
                        pin = new;
                        verified = false;
                    }
                }
                Op::Generate => {
                    if c.authenticate(MgmAlgorithm::Tdes, &DEFAULT_MGM).is_ok() {
                        if let Ok(p) = c.generate(0x9A, false) {
                            responses.push(p);
                        }
                    }
                }
                Op::Sign => {
                    if let Ok(sig) = c.sign(0x9A, &[1; 32]) {
                        assert!(verified, "signed without the PIN");
                        responses.push(sig);
                    }
                }
                Op::Reset => {
                    drop(c);
                    card.warm_reset();
                    card.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08])
                        .unwrap();
                    let status = card.transmit(&[0x00, 0x20, 0x00, 0x80]).unwrap();
                    assert_ne!(&status[..], &[0x90, 0x00], "reset kept the PIN status");
                    verified = false;
                }
                Op::Cut(n) => cut = Some(u32::from(*n % 16)),
                Op::Raw(apdu) => {
                    if let Ok(r) = c.raw(apdu) {
                        responses.push(r);
                    }
                    // Any APDU may clear the PIN status (a failed VERIFY,
                    // VERIFY P1=FF, a SELECT) or leave it; only VERIFY may
                    // grant it. The card's status query says which.
                    let now = c
                        .raw(&[0x00, 0x20, 0x00, 0x80])
                        .is_ok_and(|r| r.ends_with(&[0x90, 0x00]));
                    assert!(
                        !now || verified || apdu.get(1) == Some(&0x20),
                        "an APDU other than VERIFY granted the PIN: {apdu:02X?}"
                    );
                    verified = now;
                }
            }
        }
        if card.store().flash().is_cut() {
            let flash = card.into_parts().0.into_inner();
            card = boot(Torn::new(flash, None, 0));
            verified = false;
        }
        let (pin_after, puk_after) = (tries(&mut card, 0x80), tries(&mut card, 0x81));
        if !right_value {
            assert!(pin_after <= pin_before, "a PIN try came back: {op:?}");
        }
        if !(right_value && matches!(op, Op::Unblock { .. })) {
            assert!(puk_after <= puk_before, "a PUK try came back: {op:?}");
        }
        if pin_before == 0 && !matches!(op, Op::Unblock { .. } | Op::Raw(_)) {
            assert_eq!(pin_after, 0, "blocked did not stay blocked");
        }
        let key_after = PivClient::new(&mut card).public_key(0x9A).unwrap();
        if !matches!(op, Op::Generate | Op::Raw(_)) {
            assert_eq!(key_after, key_before, "the key changed: {op:?}");
        }
        if let Some(secret) = secret_9a(&card) {
            for r in &responses {
                assert!(
                    !r.windows(32).any(|w| w == secret),
                    "the private key left the card"
                );
            }
        }
    }
});
