//! The passcode rules, from the table in `tests/data/passcodes.txt`.

use applet::passcode::{Padded, acceptable_new, is_weak};

#[test]
fn weak_passcode_table() {
    let mut n = 0;
    for line in include_str!("data/passcodes.txt").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        let [digits, weak, new, why] = f[..] else {
            panic!("bad line {line}")
        };
        assert_eq!(
            is_weak(digits.as_bytes()),
            weak == "weak",
            "{digits}: {why}"
        );
        assert_eq!(
            acceptable_new(digits.as_bytes()),
            new == "yes",
            "{digits}: {why}"
        );
        n += 1;
    }
    assert!(n >= 30, "table lost rows");
}

#[test]
fn piv_field_form() {
    assert!(
        Padded::pin(b"1234\xFF\xFF\xFF\xFF").is_ok(),
        "legacy 4 digits verify"
    );
    assert!(Padded::pin(b"12345678").is_ok());
    assert!(Padded::pin(b"123\xFF\xFF\xFF\xFF\xFF").is_err(), "3 digits");
    assert!(Padded::pin(b"1234\xFF\xFF\xFF").is_err(), "7 bytes");
    assert!(
        Padded::pin(b"1234\xFF5\xFF\xFF").is_err(),
        "digit after padding"
    );
    assert!(
        Padded::pin(b"1234\x00\x00\x00\x00").is_err(),
        "zero padding"
    );
    assert!(Padded::pin(b"12a4\xFF\xFF\xFF\xFF").is_err(), "not a digit");
    assert!(Padded::puk(b"12345678").is_ok());
    assert!(
        Padded::puk(b"abcdef\xFF\xFF").is_ok(),
        "a PUK need not be digits"
    );
    assert!(Padded::puk(b"abcde\xFF\xFF\xFF").is_err(), "five bytes");
}
