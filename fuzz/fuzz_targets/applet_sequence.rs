//! Structured sequences of PIV operations, recorded tool commands, raw
//! APDUs, resets and power cuts at arbitrary flash operations, against a
//! reference model: tries never rise without the right PIN or PUK, blocked
//! stays blocked until unblocked (or the application is reset, which needs
//! both blocked), the key in 9A changes only through a new key (GENERATE,
//! or IMPORT for RSA) or a raw command, the private key never appears in a
//! response, and a reset clears the PIN status. The card's profile is the
//! input's last byte: Series 9, or YubiKey-compatible (its passcode order,
//! its session rules) without or with PIN complexity; on a Series 9 card
//! the same byte may put the typed operations through a secure messaging
//! session, against the same model.
//!
//! Speed is what lets a short run explore: every input starts from a copy
//! of one card booted once per profile (not a freshly formatted flash), RSA
//! keys come from a pool of known keys through IMPORT (a generation costs
//! as much as thousands of other operations, and the applet's tests cover
//! it), and the private key is unsealed from flash only when a response
//! could hold it and the key has changed since it was last unsealed.
#![no_main]

use applet::{DeviceKey, Piv, Profile};
use arbitrary::{Arbitrary, Unstructured};
use card_os::testing::{RamFlash, TearingFlash};
use card_os::{Card, atr};
use client::{AdminAlgorithm, Algorithm, DEFAULT_MGM, PivClient, Slot};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::sync::OnceLock;

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
    /// A new key in 9A, of one of the card's algorithms (by index):
    /// GENERATE, or for RSA the IMPORT of a key from the pool.
    Generate(u8),
    /// The private operation of 9A's key: a signature, a raw RSA block, or
    /// a key agreement.
    Sign,
    Reset,
    /// The next operation loses power at its n-th flash operation.
    Cut(u8),
    Raw(Vec<u8>),
    /// One of the commands real tools sent (`traces/commands.hex`), sent
    /// as a raw APDU: GENERAL AUTHENTICATE templates, chained PUT DATA,
    /// Yubico extensions, that random bytes rarely reach.
    Recorded(u16),
}

impl Op {
    /// The APDU of an operation that sends one as it is.
    fn raw(&self) -> Option<&[u8]> {
        match self {
            Op::Raw(apdu) => Some(apdu),
            Op::Recorded(n) => {
                let all = recorded();
                all.get(usize::from(*n) % all.len()).map(Vec::as_slice)
            }
            _ => None,
        }
    }
}

fn recorded() -> &'static [Vec<u8>] {
    static ALL: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ALL.get_or_init(|| {
        include_str!("../traces/commands.hex")
            .lines()
            .map(|line| hex::decode(line).unwrap())
            .collect()
    })
}

const GOOD: [&[u8]; 4] = [b"482915", b"731026", b"604182", b"295731"];

/// The `n`-th new PIN that passes the weak-passcode rule.
fn good(n: u8) -> Field {
    field(GOOD[usize::from(n) % GOOD.len()])
}
const FACTORY_PIN: &[u8] = b"123456";
const FACTORY_PUK: &[u8] = b"12345678";

/// A PIN or PUK as the card receives it: padded with FF to 8 bytes.
type Field = [u8; 8];

fn field(value: &[u8]) -> Field {
    let mut f = [0xFF; 8];
    for (d, s) in f.iter_mut().zip(value) {
        *d = *s;
    }
    f
}

/// What the model knows of one passcode: the values it may have now. A
/// command cut short by a power loss may or may not have landed, so its
/// new value joins the old ones; `None` means any value is possible (a
/// change whose data the model could not follow).
struct Passcode(Option<Vec<Field>>);

impl Passcode {
    fn new(value: &[u8]) -> Self {
        Passcode(Some(vec![field(value)]))
    }
    fn may_be(&self, value: &Field) -> bool {
        self.0.as_ref().is_none_or(|all| all.contains(value))
    }
    /// The value the model would present as the right one.
    fn likeliest(&self) -> Field {
        self.0
            .as_ref()
            .and_then(|all| all.last().copied())
            .unwrap_or_else(|| field(FACTORY_PIN))
    }
    /// What a typed operation presents: the likeliest right value, or `wrong`.
    fn offered(&self, right: bool, wrong: &[u8]) -> Field {
        if right {
            self.likeliest()
        } else {
            field(wrong)
        }
    }
    /// Applies a change that either landed for sure or may have.
    fn change(&mut self, to: Option<Field>, landed: bool) {
        match (to, &mut self.0) {
            (None, _) => self.0 = None,
            (Some(v), _) if landed => self.0 = Some(vec![v]),
            (Some(v), Some(all)) => all.push(v),
            (Some(_), None) => {}
        }
    }
}

/// What one operation presents and may change, as the card sees it.
#[derive(Default)]
struct Presents {
    pin: Option<Field>,
    puk: Option<Field>,
    new_pin: Option<Field>,
    new_puk: Option<Field>,
    /// SET PIN RETRIES or RESET: both back to the factory values.
    factory: bool,
    /// A passcode command the model cannot read (a chain, odd lengths).
    opaque: bool,
}

/// Reads a raw APDU the way the card would, for the passcode model.
fn presents_raw(apdu: &[u8], chain_open: bool) -> Presents {
    let mut p = Presents::default();
    let Ok(cmd) = apdu::Command::parse(apdu) else {
        return p;
    };
    let (ins, p2, data) = (cmd.ins(), cmd.p2(), cmd.data());
    if !matches!(ins, 0x20 | 0x24 | 0x2C | 0xFA | 0xFB) {
        return p;
    }
    // A chain's part, or a command under secure messaging: what it
    // presents is not in its bytes.
    if chain_open || cmd.cla() & 0x10 != 0 || cmd.cla() & 0x0C == 0x0C {
        p.opaque = true;
        return p;
    }
    let old = field(data.get(..8).unwrap_or(data));
    let new = data.get(8..).filter(|n| !n.is_empty()).map(field);
    match ins {
        0x20 if p2 == 0x81 => p.puk = Some(old),
        0x20 => p.pin = Some(old),
        0x24 if p2 == 0x81 => (p.puk, p.new_puk) = (Some(old), new),
        0x24 => (p.pin, p.new_pin) = (Some(old), new),
        0x2C => (p.puk, p.new_pin) = (Some(old), new),
        _ => p.factory = true,
    }
    p
}
const DEVICE: [u8; 32] = [5; 32];

/// The RSA pool: the known keys of the applet's vectors, by size, as the
/// CRT parts IMPORT takes (tags 01 to 05).
fn rsa_pool(bits: usize) -> Option<Vec<u8>> {
    let mut current = None;
    let mut data = Vec::new();
    for line in include_str!("../../applet/tests/data/algorithms/rsa.txt").lines() {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        if name == "bits" {
            if current == Some(bits) {
                break;
            }
            current = value.parse().ok();
            continue;
        }
        let tag = match name {
            "p" => 0x01,
            "q" => 0x02,
            "dp" => 0x03,
            "dq" => 0x04,
            "qinv" => 0x05,
            _ => continue,
        };
        if current == Some(bits) {
            let bytes = hex::decode(value).unwrap();
            data.extend(client::tlv(tag, &bytes));
        }
    }
    (!data.is_empty()).then_some(data)
}

fn rsa_import(bits: usize) -> &'static [u8] {
    static POOL: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        [1024, 2048].map(|b| rsa_pool(b).expect("an RSA key of that size in the vectors"))
    });
    if bits == 1024 { &pool[0] } else { &pool[1] }
}

/// A card of `profile` as its first boot left it, booted once per process:
/// each input starts from a copy.
fn fresh(profile: Profile) -> Flash {
    static CARDS: [OnceLock<Flash>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let index = match profile {
        Profile::Series9 => 0,
        Profile::YubiKey {
            pin_complexity: false,
        } => 1,
        Profile::YubiKey {
            pin_complexity: true,
        } => 2,
    };
    CARDS[index]
        .get_or_init(|| {
            let mut card = boot(Torn::new(Flash::new(), None, 0), profile);
            if profile == Profile::Series9 {
                ready_for_secure_messaging(&mut card);
            }
            card.into_parts().0.into_inner()
        })
        .clone()
}

fn boot(flash: Torn, profile: Profile) -> TheCard {
    let mut card = Card::boot(
        flash,
        ChaCha8Rng::seed_from_u64(2),
        (Piv::new(DeviceKey::new(DEVICE), true).with_profile(profile),),
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

/// The private key in 9A as the card seals it (a scalar, a seed, or RSA's
/// CRT parts), unsealed from the card's flash with the device key, as only
/// the card itself can.
fn secret_9a(card: &TheCard) -> Option<Vec<u8>> {
    let mut store: card_os::store::Store<Flash> =
        card_os::store::Store::mount(card.store().flash().inner().clone()).ok()?;
    let slot = applet::slot::Slot::Authentication;
    let label = applet::layout::slot_key(slot);
    let device = DeviceKey::new(DEVICE);
    let record = applet::keys::KeyRecord::load(&mut store, label, slot, &device).ok()??;
    let secret = record.secret_for_tests(&device).ok()?;
    let mut out = [0u8; applet::algorithm::MAX_SECRET];
    secret.write_secret(&mut out).ok().map(<[u8]>::to_vec)
}

/// The algorithms GENERATE draws from, by weight: RSA seldom, because one
/// RSA generation costs as much as hundreds of other operations (RSA-3072
/// and 4096 differ from 2048 only in integer width, and are left to the
/// tests).
const ALGORITHMS: [Algorithm; 32] = {
    let mut table = [Algorithm::P256; 32];
    let mut i = 0;
    while i < 32 {
        table[i] = match i % 8 {
            0..=2 => Algorithm::P256,
            3 | 4 => Algorithm::P384,
            5 => Algorithm::Ed25519,
            _ => Algorithm::X25519,
        };
        i += 1;
    }
    table[30] = Algorithm::Rsa1024;
    table[31] = Algorithm::Rsa2048;
    table
};

/// What 9A's key is asked to do in `Op::Sign`: a digest to sign, a block
/// below any modulus, or the X25519 base point to agree with.
fn operation(algorithm: Algorithm) -> (u8, Vec<u8>) {
    match algorithm {
        Algorithm::X25519 => (0x85, {
            let mut u = vec![0u8; 32];
            u[0] = 9;
            u
        }),
        a if a.rsa_bits().is_some() => (0x81, {
            let mut block = vec![0x5A; a.public_len()];
            block[0] = 0;
            block
        }),
        _ => (0x81, vec![1; 32]),
    }
}

/// The profile a byte names.
fn profile(byte: u8) -> Profile {
    match byte % 3 {
        0 => Profile::Series9,
        n => Profile::YubiKey {
            pin_complexity: n == 2,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    // The last byte, so that the operations keep their bytes' meaning: the
    // profile, and (bit 6, on a Series 9 card) whether the typed
    // operations go through a secure messaging session.
    let (profile, secure, ops) = match data.split_last() {
        Some((&last, rest)) => (profile(last), last & 0x40 != 0, rest),
        None => (Profile::Series9, false, data),
    };
    let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(ops)) else {
        return;
    };
    run(profile, secure && profile == Profile::Series9, &ops);
});

/// Key `04` and its CVC on a Series 9 card, so that secure messaging can
/// open (the CVC's signature is no one's: the card does not check it, and
/// the fuzzed client is not asked to).
fn ready_for_secure_messaging(card: &mut TheCard) {
    let mut c = PivClient::new(card);
    c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM).unwrap();
    let public = c
        .generate_key(Slot::SecureMessaging, Algorithm::P256, false)
        .unwrap();
    let point = &public[public.len() - 65..];
    let cvc = client::cvc::build(client::Suite::Cs2, &[1; 8], &[2; 16], point, |_| {
        Ok(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])
    })
    .unwrap();
    c.put_object(applet::objects::SM_CVC, &cvc).unwrap();
}

/// Runs the operations; with `secure`, every typed one inside a secure
/// messaging session (opened again after a reset, a cut, or a raw APDU
/// that ended it), the model unchanged: a protected command runs as the
/// same command in the clear, and opening a session forgets the PIN.
fn run(profile: Profile, secure: bool, ops: &[Op]) {
    let mgm = match profile {
        Profile::Series9 => AdminAlgorithm::Tdes,
        Profile::YubiKey { .. } => AdminAlgorithm::Aes192,
    };
    let boot = |flash| boot(flash, profile);
    let mut card = boot(Torn::new(fresh(profile), None, 0));
    let mut session: Option<client::sm::Session> = None;
    // The last public key of 9A whose private key was unsealed, and that
    // private key.
    let mut unsealed: Option<(Option<Vec<u8>>, Option<Vec<u8>>)> = None;
    // The tries and the 9A public key after the last operation.
    let mut after: Option<(u8, u8, Option<Vec<u8>>)> = None;
    let (mut pin, mut puk) = (Passcode::new(FACTORY_PIN), Passcode::new(FACTORY_PUK));
    let mut verified = false;
    let mut cut: Option<u32> = None;
    // Whether a raw APDU may have left a command chain open on the card.
    let mut chain_open = false;
    for op in ops.iter().take(40) {
        // What the last operation left (a reboot leaves the store as it is).
        let (pin_before, puk_before, key_before) = match after.take() {
            Some(seen) => seen,
            None => (
                tries(&mut card, 0x80),
                tries(&mut card, 0x81),
                PivClient::new(&mut card)
                    .public_key(Slot::Authentication)
                    .unwrap(),
            ),
        };
        if let Some(n) = cut.take() {
            let flash = card.into_parts().0.into_inner();
            card = boot(Torn::new(flash, Some(n), u64::from(n)));
            verified = false;
            chain_open = false;
            session = None;
        }
        let verified_before = verified;
        let mut responses = Vec::new();
        let presents = match op {
            Op::VerifyRight => Presents {
                pin: Some(pin.likeliest()),
                ..Default::default()
            },
            Op::VerifyWrong => Presents {
                pin: Some(field(b"999999")),
                ..Default::default()
            },
            Op::ChangePin { right, new } => Presents {
                pin: Some(pin.offered(*right, b"999998")),
                new_pin: Some(good(*new)),
                ..Default::default()
            },
            Op::Unblock { right, new } => Presents {
                puk: Some(puk.offered(*right, b"00000000")),
                new_pin: Some(good(*new)),
                ..Default::default()
            },
            _ => op
                .raw()
                .map(|a| presents_raw(a, chain_open))
                .unwrap_or_default(),
        };
        let succeeded = {
            let mut c = PivClient::new(&mut card);
            let typed = !matches!(op, Op::Raw(_) | Op::Recorded(_) | Op::Reset | Op::Cut(_));
            if secure && typed {
                match session.take() {
                    Some(open) => c.resume_secure_session(open),
                    None => {
                        if c.open_secure_messaging(client::Suite::Cs2, None).is_ok() {
                            verified = false;
                        }
                    }
                }
            }
            let succeeded = match op {
                Op::VerifyRight | Op::VerifyWrong => {
                    let pin = presents.pin.unwrap_or_default();
                    verified = c.verify_pin(&pin).is_ok();
                    verified
                }
                Op::ChangePin { .. } => {
                    let ok = c
                        .change(
                            0x80,
                            &presents.pin.unwrap_or_default(),
                            &presents.new_pin.unwrap_or_default(),
                        )
                        .is_ok();
                    // A PIN change that fails ends the PIN session.
                    verified &= ok;
                    ok
                }
                Op::Unblock { .. } => {
                    let ok = c
                        .unblock(
                            &presents.puk.unwrap_or_default(),
                            &presents.new_pin.unwrap_or_default(),
                        )
                        .is_ok();
                    // A new PIN has not been presented yet.
                    verified &= !ok;
                    ok
                }
                Op::Generate(n) => {
                    let algorithm = ALGORITHMS[usize::from(*n) % ALGORITHMS.len()];
                    if c.authenticate(mgm, &DEFAULT_MGM).is_ok() {
                        if let Some(bits) = algorithm.rsa_bits() {
                            let header = [0x00, 0xFE, algorithm.byte(), 0x9A];
                            if let Ok((answer, _)) = c.exchange(header, rsa_import(bits)) {
                                responses.push(answer);
                            }
                        } else if let Ok(p) = c.generate_key(Slot::Authentication, algorithm, false)
                        {
                            responses.push(p);
                        }
                    }
                    false
                }
                Op::Sign => {
                    let algorithm = c
                        .key_metadata(Slot::Authentication)
                        .ok()
                        .flatten()
                        .map_or(Algorithm::P256, |(a, _)| a);
                    let (tag, input) = operation(algorithm);
                    if let Ok(sig) =
                        c.private_operation(Slot::Authentication, algorithm, tag, &input)
                    {
                        assert!(verified, "signed without the PIN");
                        responses.push(sig);
                    }
                    false
                }
                Op::Reset => {
                    let card = c.transport_mut();
                    card.warm_reset();
                    card.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08])
                        .unwrap();
                    let status = card.transmit(&[0x00, 0x20, 0x00, 0x80]).unwrap();
                    assert_ne!(&status[..], &[0x90, 0x00], "reset kept the PIN status");
                    verified = false;
                    false
                }
                Op::Cut(n) => {
                    cut = Some(u32::from(*n % 16));
                    false
                }
                Op::Raw(_) | Op::Recorded(_) => {
                    let apdu = op.raw().unwrap_or_default();
                    let answer = c.raw(apdu).unwrap_or_default();
                    let ok = answer.ends_with(&[0x90, 0x00]);
                    responses.push(answer);
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
                    // A part of a chain (CLA bit `10`) is only gathered:
                    // its `90 00` says so, not that the command ran.
                    let ran = ok && apdu.first().is_some_and(|cla| cla & 0x10 == 0);
                    if ran && apdu.get(1) == Some(&0xFB) {
                        assert!(
                            pin_before == 0 && puk_before == 0,
                            "RESET with a passcode unblocked"
                        );
                    }
                    if ran && apdu.get(1) == Some(&0xFA) {
                        assert!(verified_before, "SET PIN RETRIES without the PIN");
                    }
                    // Sticky until a typed command or a reset: an APDU the
                    // card rejects before its chaining step keeps a chain.
                    chain_open |= apdu.first().is_some_and(|cla| cla & 0x10 != 0);
                    ok
                }
            };
            if typed {
                session = c.take_secure_session();
            }
            succeeded
        };
        if matches!(op, Op::Reset) {
            session = None;
        }
        if op.raw().is_none() && !matches!(op, Op::Cut(_)) {
            chain_open = false;
        }
        let torn = card.store().flash().is_cut();
        if torn {
            let flash = card.into_parts().0.into_inner();
            card = boot(Torn::new(flash, None, 0));
            verified = false;
            chain_open = false;
            session = None;
        }
        let (pin_after, puk_after) = (tries(&mut card, 0x80), tries(&mut card, 0x81));
        let pin_right = presents.pin.is_some_and(|v| pin.may_be(&v));
        let puk_right = presents.puk.is_some_and(|v| puk.may_be(&v));
        let wild = presents.factory || presents.opaque;
        let unblocks = wild || (puk_right && presents.new_pin.is_some());
        if !(pin_right || unblocks) {
            assert!(pin_after <= pin_before, "a PIN try came back: {op:?}");
        }
        if pin_before == 0 && !unblocks {
            assert_eq!(pin_after, 0, "a blocked PIN came back: {op:?}");
        }
        if !(puk_right || wild) {
            assert!(puk_after <= puk_before, "a PUK try came back: {op:?}");
        }
        if puk_before == 0 && !wild {
            assert_eq!(puk_after, 0, "a blocked PUK came back: {op:?}");
        }
        // What the card holds now, as far as the model can tell.
        if succeeded || torn {
            let landed = succeeded && !torn;
            if presents.opaque {
                pin.change(None, landed);
                puk.change(None, landed);
            }
            if presents.factory {
                pin.change(Some(field(FACTORY_PIN)), landed);
                puk.change(Some(field(FACTORY_PUK)), landed);
            }
            if let Some(v) = presents.new_pin {
                pin.change(Some(v), landed);
            }
            if let Some(v) = presents.new_puk {
                puk.change(Some(v), landed);
            }
        }
        let key_after = PivClient::new(&mut card)
            .public_key(Slot::Authentication)
            .unwrap();
        after = Some((pin_after, puk_after, key_after.clone()));
        if !matches!(op, Op::Generate(_)) && op.raw().is_none() {
            assert_eq!(key_after, key_before, "the key changed: {op:?}");
        }
        // Every 32-byte piece of the key, so that any CRT part (each starts
        // on a multiple of 32) that left the card whole is found. The key is
        // unsealed again only when its public key has changed.
        if responses.iter().all(|r| r.len() < 32) {
            continue;
        }
        if unsealed
            .as_ref()
            .is_none_or(|(public, _)| *public != key_after)
        {
            unsealed = Some((key_after.clone(), secret_9a(&card)));
        }
        if let Some((_, Some(secret))) = &unsealed {
            for piece in secret.chunks_exact(32) {
                for r in &responses {
                    assert!(
                        !r.windows(32).any(|w| w == piece),
                        "the private key left the card"
                    );
                }
            }
        }
    }
}
