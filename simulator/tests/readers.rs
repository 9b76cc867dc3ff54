//! Many cards at once, as an integrator's test rig holds them: eight cards
//! in eight vpcd readers, each with its own serial, CHUID and keys, found
//! and used through OpenSC's PKCS#11 module by token serial.

mod harness;

use std::collections::BTreeSet;

use harness::*;

#[test]
fn eight_cards_sign_side_by_side_by_token_serial_without_crosstalk() {
    const CARDS: usize = 8;
    // Alone: eight readers in a row are most of the pool, and tests that
    // wait for one would hold the eight back one after another.
    let h = Harness::start_alone(CARDS);

    let certs: Vec<_> = (0..CARDS)
        .map(|n| key_with_certificate_in(&h, &h.reader(n), "9a", &format!("card {n}")))
        .collect();

    // Each card is its own token: two cards with one CHUID would be one.
    let slots = token_slots(&h);
    let serial_of = |n: usize| {
        slots
            .iter()
            .find(|(_, reader, _)| *reader == h.reader(n))
            .map(|(_, _, serial)| serial.clone())
            .unwrap_or_else(|| panic!("no PKCS#11 token in {}: {slots:?}", h.reader(n)))
    };
    let serials: Vec<String> = (0..CARDS).map(serial_of).collect();
    let distinct: BTreeSet<&String> = serials.iter().collect();
    assert_eq!(distinct.len(), CARDS, "token serials: {serials:?}");

    // All eight sign at once, each picked by its token serial alone.
    let signatures: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CARDS)
            .map(|n| {
                let (h, slots, serial) = (&h, &slots, &serials[n]);
                s.spawn(move || {
                    let (id, _, _) = slots
                        .iter()
                        .find(|(_, _, s)| s == serial)
                        .expect("a slot with the token serial");
                    let msg = format!("card {n} signs this\n");
                    let sig = pkcs11_sign(
                        h,
                        &format!("card{n}"),
                        &["--slot", id],
                        "123456",
                        msg.as_bytes(),
                    );
                    (msg, sig)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    for (n, (msg, sig)) in signatures.iter().enumerate() {
        assert!(
            verifies(&h, &certs[n], msg.as_bytes(), sig),
            "card {n}'s signature does not verify with its own certificate"
        );
        let other = (n + 1) % CARDS;
        assert!(
            !verifies(&h, &certs[other], msg.as_bytes(), sig),
            "card {n}'s signature verifies with card {other}'s key"
        );
    }

    // The readers the server reports are the eight PC/SC shows.
    let listed = virtual_reader::readers::listed();
    for n in 0..CARDS {
        assert!(
            listed
                .iter()
                .any(|(r, present)| *r == h.reader(n) && *present),
            "{} has no card: {listed:?}",
            h.reader(n)
        );
    }
}
