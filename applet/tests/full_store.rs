//! A card whose flash PUT DATA filled to the brim still counts and checks
//! PIN tries: growth stops a page short of where counter updates stop, so a
//! VERIFY (right or wrong), a PIN change and an unblock never answer
//! `6A 84` for want of room.

mod common;

use common::*;

#[test]
fn a_full_card_still_counts_pin_tries() {
    let mut card = fresh();
    admin_default(&mut card);
    // Objects of falling sizes in every free object tag, each size until the
    // card says it has no room, so the gaps the large ones leave fill too.
    let mut tags: Vec<u32> = (0x5FC10Du32..=0x5FC120)
        .chain(0x5FFF02..=0x5FFF15)
        .collect();
    let mut stored = 0;
    for size in [3000usize, 1500, 700, 300, 120, 40, 10, 1] {
        while let Some(&tag) = tags.first() {
            let content = vec![stored as u8; size];
            let mut data = vec![0x5C, 0x03];
            data.extend_from_slice(&tag.to_be_bytes()[1..]);
            data.extend([0x53, 0x82]);
            data.extend_from_slice(&(content.len() as u16).to_be_bytes());
            data.extend_from_slice(&content);
            let (_, s) = exchange(&mut card, [0x00, 0xDB, 0x3F, 0xFF], &data);
            match s {
                0x9000 => {
                    stored += 1;
                    tags.remove(0);
                }
                0x6A84 => break,
                other => panic!("PUT DATA {tag:06X}: {other:04X}"),
            }
        }
    }
    assert!(
        !tags.is_empty(),
        "ran out of object tags before the card filled"
    );
    println!("full store: {stored} objects, then 6A84 for one more byte");

    let mut change = |old: &[u8], new: &[u8]| {
        let mut apdu = vec![0x00, 0x24, 0x00, 0x80, 0x10];
        apdu.extend_from_slice(&padded(old));
        apdu.extend_from_slice(&padded(new));
        sw(&send(&mut card, &apdu))
    };
    assert_eq!(change(b"123456", b"482915"), 0x9000);
    for round in 0..300 {
        assert_eq!(
            verify(&mut card, b"000000"),
            0x63C2,
            "round {round}: wrong PIN"
        );
        assert_eq!(
            verify(&mut card, b"482915"),
            0x9000,
            "round {round}: right PIN"
        );
    }
    // Blocked, then unblocked with the PUK: both counters move.
    for left in [0x63C2, 0x63C1, 0x63C0] {
        assert_eq!(verify(&mut card, b"000000"), left);
    }
    let mut unblock = vec![0x00, 0x2C, 0x00, 0x80, 0x10];
    unblock.extend_from_slice(&padded(b"12345678"));
    unblock.extend_from_slice(&padded(b"593017"));
    assert_eq!(sw(&send(&mut card, &unblock)), 0x9000);
    assert_eq!(verify(&mut card, b"593017"), 0x9000);
}
