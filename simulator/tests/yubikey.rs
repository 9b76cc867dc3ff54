//! The YubiKey-compatible card as tools that look for YubiKeys meet it:
//! brought up with `s9card up --profile yubikey --pin-complexity` (as the
//! firmware card too, with `S9CARD_CARD=firmware`), in the one reader named
//! like a YubiKey, spoken to through PC/SC. yubikey-manager's own tests run
//! against it in `scripts/ykman-tests`; this is what they take for granted.

mod harness;

use client::{Pcsc, PivClient, Transport};
use harness::*;
use virtual_reader::readers::{YUBIKEY_FIRST, YUBIKEY_NAME, reader_name};

/// A YubiKey 5's ATR (USB, T=1, "YubiKey" in the historical bytes).
const YUBIKEY_ATR: [u8; 23] = [
    0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59,
    0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40,
];
const SELECT_MANAGEMENT: [u8; 13] = [
    0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17,
];
const SELECT_PIV: [u8; 10] = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];

/// `s9card up` with these arguments, brought down on drop.
struct Up {
    state: tempfile::TempDir,
    serial: u32,
}

impl Up {
    fn start(extra: &[&str]) -> Up {
        let state = tempfile::tempdir().unwrap();
        let mut args = vec![
            "up",
            "--profile",
            "yubikey",
            "--seed",
            "15",
            "--json",
            "--state",
            state.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let firmware = firmware_elf_if_asked();
        if let Some(elf) = &firmware {
            args.extend(["--firmware", elf.to_str().unwrap()]);
        }
        let out = run(s9card().to_str().unwrap(), &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "s9card {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let up: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let card = &up["cards"][0];
        assert_eq!(card["reader"], reader_name(YUBIKEY_FIRST));
        Up {
            serial: card["serial"].as_str().unwrap().parse().unwrap(),
            state,
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = run(
            s9card().to_str().unwrap(),
            &["down", "--state", self.state.path().to_str().unwrap()],
        );
    }
}

fn firmware_elf_if_asked() -> Option<std::path::PathBuf> {
    (Kind::current() == Kind::Firmware).then(firmware_elf)
}

/// Sends one APDU; the answer's data and status word.
fn send(card: &mut PivClient<Pcsc>, apdu: &[u8]) -> (Vec<u8>, u16) {
    let mut answer = card.transport_mut().transmit(apdu).unwrap();
    assert!(answer.len() >= 2, "{apdu:02X?}: {answer:02X?}");
    let sw = answer.split_off(answer.len() - 2);
    (answer, u16::from_be_bytes([sw[0], sw[1]]))
}

/// The simple TLVs of the device-info record (`len ‖ tag len value …`).
fn device_info(record: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let (&len, mut rest) = record.split_first().unwrap();
    assert_eq!(usize::from(len), rest.len(), "{record:02X?}");
    let mut tlvs = Vec::new();
    while let [tag, len, tail @ ..] = rest {
        let (value, next) = tail.split_at(usize::from(*len));
        tlvs.push((*tag, value.to_vec()));
        rest = next;
    }
    tlvs
}

#[test]
fn tools_looking_for_a_yubikey_find_one_and_its_rules() {
    let _held = Readers::exclusive();
    let _reader = virtual_reader::fixture::ReaderLock::take(YUBIKEY_FIRST).unwrap();
    let up = Up::start(&["--pin-complexity"]);

    // One reader named like a YubiKey, with the card in it: tools count
    // one device.
    let named: Vec<(String, bool)> = virtual_reader::readers::listed()
        .into_iter()
        .filter(|(name, _)| name.contains(YUBIKEY_NAME))
        .collect();
    assert_eq!(named, [(format!("{YUBIKEY_NAME} 00 00"), true)]);

    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let name = std::ffi::CString::new(reader_name(YUBIKEY_FIRST)).unwrap();
    let reader_card = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    let status = reader_card.status2_owned().unwrap();
    assert_eq!(status.atr(), YUBIKEY_ATR);
    drop(reader_card);

    let mut card = PivClient::new(Pcsc::connect_exact(&reader_name(YUBIKEY_FIRST)).unwrap());
    // PIV first, so the card has made its identity (the serial).
    assert_eq!(send(&mut card, &SELECT_PIV).1, 0x9000);

    // The Management application: 5.7.1, the serial, PIV only, and PIN
    // complexity on.
    assert_eq!(
        send(&mut card, &SELECT_MANAGEMENT),
        (b"5.7.1".to_vec(), 0x9000)
    );
    let (record, sw) = send(&mut card, &[0x00, 0x1D, 0x00, 0x00, 0x00]);
    assert_eq!(sw, 0x9000);
    let info = device_info(&record);
    let field = |tag| {
        info.iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no tag {tag:02X} in {record:02X?}"))
    };
    assert_eq!(field(0x02), up.serial.to_be_bytes());
    assert_eq!(field(0x05), [5, 7, 1]);
    assert_eq!(field(0x01), [0x00, 0x10], "USB: PIV supported");
    assert_eq!(field(0x03), [0x00, 0x10], "USB: PIV enabled");
    assert_eq!(field(0x16), [0x01], "PIN complexity");

    // PIV with the YubiKey rules.
    assert_eq!(send(&mut card, &SELECT_PIV).1, 0x9000);
    // GET METADATA of the Bio reference the card does not have (yubikit
    // asks it first), and of the factory management key (AES-192).
    assert_eq!(send(&mut card, &[0x00, 0xF7, 0x00, 0x96, 0x00]).1, 0x6A88);
    let (metadata, sw) = send(&mut card, &[0x00, 0xF7, 0x00, 0x9B, 0x00]);
    assert_eq!(sw, 0x9000);
    assert!(metadata.starts_with(&[0x01, 0x01, 0x0A]), "{metadata:02X?}");

    // Re-selecting PIV ends the PIN session.
    let pin = [b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF];
    let verify = |value: &[u8]| [&[0x00, 0x20, 0x00, 0x80, value.len() as u8][..], value].concat();
    assert_eq!(send(&mut card, &verify(&pin)).1, 0x9000);
    assert_eq!(send(&mut card, &[0x00, 0x20, 0x00, 0x80]).1, 0x9000);
    assert_eq!(send(&mut card, &SELECT_PIV).1, 0x9000);
    assert_eq!(send(&mut card, &[0x00, 0x20, 0x00, 0x80]).1, 0x63C3);

    // A PIN of the wrong length (in the 8-byte field) is a wrong try, and
    // a right one gives the tries back.
    assert_eq!(send(&mut card, &verify(b"1234\xFF\xFF\xFF\xFF")).1, 0x63C2);
    assert_eq!(card.tries(0x80).unwrap().0, 2);
    assert_eq!(send(&mut card, &verify(&pin)).1, 0x9000);

    // PIN complexity: a repeated digit or a common passcode is refused
    // after the old PIN is checked, which costs no try.
    let change = |new: &[u8]| {
        let data = [&pin[..], new].concat();
        [&[0x00, 0x24, 0x00, 0x80, data.len() as u8][..], &data].concat()
    };
    for weak in [b"111111\xFF\xFF", b"password", b"123123\xFF\xFF"] {
        assert_eq!(send(&mut card, &change(weak)).1, 0x6985, "{weak:02X?}");
    }
    assert_eq!(card.tries(0x80).unwrap().0, 3);
    assert_eq!(send(&mut card, &change(b"24681357")).1, 0x9000);
    assert_eq!(send(&mut card, &verify(b"24681357")).1, 0x9000);
}
