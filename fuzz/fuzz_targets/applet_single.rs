//! One arbitrary APDU against a selected PIV card with keys, of each
//! profile (Series 9; YubiKey-compatible without and with PIN complexity,
//! beside its Management application): no panic, never 6F 00, and an error
//! leaves the persistent state byte for byte as it was, except that a wrong
//! PIN or PUK costs exactly one try.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use applet::{DeviceKey, Management, Piv, Profile};
use card_os::store::Store;
use card_os::testing::{RamFlash, for_each_record};
use card_os::{Card, atr};
use client::{AdminAlgorithm, DEFAULT_MGM, PivClient, Slot};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

type Flash = RamFlash<{ 64 * 1024 }, 4096>;
type TheCard = Card<Flash, ChaCha8Rng, (Piv, Option<Management>)>;

const PROFILES: [Profile; 3] = [
    Profile::Series9,
    Profile::YubiKey {
        pin_complexity: false,
    },
    Profile::YubiKey {
        pin_complexity: true,
    },
];

fn boot(flash: Flash, profile: Profile) -> TheCard {
    let device = DeviceKey::new([3; 32]);
    let management = match profile {
        Profile::Series9 => None,
        Profile::YubiKey { pin_complexity } => {
            Some(Management::new(device.clone(), pin_complexity))
        }
    };
    let mut card = Card::boot(
        flash,
        ChaCha8Rng::seed_from_u64(1),
        (Piv::new(device, true).with_profile(profile), management),
        atr::t1(&[]).unwrap(),
    )
    .unwrap();
    card.power_on();
    card
}

/// The factory management key's algorithm: 3DES, or AES-192 as on a
/// YubiKey 5.7.
fn factory_mgm(profile: Profile) -> AdminAlgorithm {
    match profile {
        Profile::Series9 => AdminAlgorithm::Tdes,
        Profile::YubiKey { .. } => AdminAlgorithm::Aes192,
    }
}

/// A card of profile `n` with keys in 9A and 9E and a certificate object.
fn base(n: usize) -> &'static Flash {
    static BASES: [OnceLock<Flash>; 3] = [const { OnceLock::new() }; 3];
    BASES[n].get_or_init(|| {
        let profile = PROFILES[n];
        let mut card = boot(Flash::new(), profile);
        let mut c = PivClient::new(&mut card);
        c.select().unwrap();
        c.authenticate(factory_mgm(profile), &DEFAULT_MGM).unwrap();
        c.generate(Slot::Authentication, false).unwrap();
        c.generate(Slot::CardAuthentication, false).unwrap();
        c.put_object(0x5FC105, &[0x70, 0x01, 0xAA]).unwrap();
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

fuzz_target!(|data: &[u8]| {
    for n in 0..PROFILES.len() {
        one_apdu(data, n);
    }
});

fn one_apdu(data: &[u8], n: usize) {
    let before = dump(base(n));
    let mut card = boot(base(n).clone(), PROFILES[n]);
    card.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08])
        .unwrap();
    let rsp = card.transmit(data).unwrap();
    let sw = u16::from_be_bytes([rsp[rsp.len() - 2], rsp[rsp.len() - 1]]);
    assert_ne!(sw, 0x6F00);
    if matches!(sw, 0x9000 | 0x6100..=0x61FF) {
        return;
    }
    let after = dump(&card.into_parts().0);
    let mut expected = before.clone();
    // A status query (VERIFY without data) also answers 63 CX, and spends
    // nothing; a presented wrong PIN or PUK spends exactly one try.
    let presented = apdu::Command::parse(data).is_ok_and(|c| !c.data().is_empty());
    if sw & 0xFFF0 == 0x63C0 && presented {
        // A wrong PIN (0011) or PUK (0013): exactly one try, nothing else.
        let spent: Vec<u16> = [0x0011, 0x0013]
            .into_iter()
            .filter(|k| before[k] != after[k])
            .collect();
        assert_eq!(
            spent.len(),
            1,
            "a wrong passcode must cost exactly one counter"
        );
        // One try fewer, the same maximum; the record's tag (over the
        // counts) changes with them.
        let k = spent[0];
        let (was, is) = (&before[&k], &after[&k]);
        assert_eq!((is[0], is[1]), (was[0] - 1, was[1]), "exactly one try");
        *expected.get_mut(&k).unwrap() = is.clone();
    }
    assert_eq!(
        after, expected,
        "an error changed the card (SW {sw:04X}, {:?})",
        PROFILES[n]
    );
}
