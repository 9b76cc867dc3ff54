//! The card through the `pcsc` crate: two readers, removal and insertion,
//! resets, AES management keys, power cuts (kill -9), pcscd restarts, and a
//! transport that misbehaves.

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use pcsc::{Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};
use s9card_e2e::*;

const SELECT: &[u8] = &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
const VERIFY_123456: &[u8] = &[
    0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF,
];
const VERIFY_STATUS: &[u8] = &[0x00, 0x20, 0x00, 0x80];
const MGM: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

fn reader(n: usize) -> CString {
    CString::new(if n == 0 { READER_0 } else { READER_1 }).unwrap()
}

fn connect(n: usize) -> pcsc::Card {
    let ctx = Context::establish(Scope::User).expect("PC/SC context");
    ctx.connect(&reader(n), ShareMode::Shared, Protocols::ANY)
        .expect("connect")
}

fn tx(card: &pcsc::Card, apdu: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 300];
    card.transmit(apdu, &mut buf).expect("transmit").to_vec()
}

fn sw(rsp: &[u8]) -> u16 {
    u16::from_be_bytes([rsp[rsp.len() - 2], rsp[rsp.len() - 1]])
}

/// Sends a command, chaining it and collecting `61 xx` as tools do.
fn exchange(card: &pcsc::Card, header: [u8; 4], data: &[u8]) -> (Vec<u8>, u16) {
    let parts: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(255).collect()
    };
    let mut rsp = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut apdu = vec![
            header[0] | if last { 0 } else { 0x10 },
            header[1],
            header[2],
            header[3],
        ];
        if !part.is_empty() {
            apdu.push(part.len() as u8);
            apdu.extend_from_slice(part);
        }
        if last {
            apdu.push(0);
        }
        rsp = tx(card, &apdu);
    }
    let mut out = Vec::new();
    loop {
        out.extend_from_slice(&rsp[..rsp.len() - 2]);
        let s = sw(&rsp);
        if s >> 8 != 0x61 {
            return (out, s);
        }
        rsp = tx(card, &[0x00, 0xC0, 0x00, 0x00, s as u8]);
    }
}

fn cipher(alg: u8, key: &[u8], block: &mut [u8], encrypt: bool) {
    fn run<C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt>(
        key: &[u8],
        block: &mut [u8],
        encrypt: bool,
    ) {
        let c = C::new_from_slice(key).unwrap();
        let mut b = Array::try_from(&*block).unwrap();
        if encrypt {
            c.encrypt_block(&mut b)
        } else {
            c.decrypt_block(&mut b)
        }
        block.copy_from_slice(&b);
    }
    match alg {
        0x03 => run::<des::TdesEde3>(key, block, encrypt),
        0x0C => run::<aes::Aes256>(key, block, encrypt),
        _ => unreachable!(),
    }
}

fn admin(card: &pcsc::Card, alg: u8, key: &[u8]) -> u16 {
    let block = if alg == 0x03 { 8 } else { 16 };
    let rsp = tx(
        card,
        &[0x00, 0x87, alg, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00, 0x00],
    );
    if sw(&rsp) != 0x9000 {
        return sw(&rsp);
    }
    let mut witness = rsp[4..4 + block].to_vec();
    cipher(alg, key, &mut witness, false);
    let mut data = vec![0x7C, 4 + 2 * block as u8, 0x80, block as u8];
    data.extend(&witness);
    data.extend([0x81, block as u8]);
    data.extend(vec![0x42; block]);
    let mut apdu = vec![0x00, 0x87, alg, 0x9B, data.len() as u8];
    apdu.extend(&data);
    apdu.push(0);
    let rsp = tx(card, &apdu);
    if sw(&rsp) == 0x9000 {
        let mut expected = vec![0x42; block];
        cipher(alg, key, &mut expected, true);
        assert_eq!(&rsp[4..4 + block], &expected[..]);
    }
    sw(&rsp)
}

fn serial(card: &pcsc::Card) -> u32 {
    assert_eq!(sw(&tx(card, SELECT)), 0x9000);
    let rsp = tx(card, &[0x00, 0xF8, 0x00, 0x00, 0x00]);
    u32::from_be_bytes(rsp[..4].try_into().unwrap())
}

#[test]
fn two_cards_in_two_readers() {
    let _h = Harness::start(2);
    let (a, b) = (connect(0), connect(1));
    assert_eq!((serial(&a), serial(&b)), (900_000_001, 900_000_002));
    // Each card keeps its own state.
    assert_eq!(sw(&tx(&a, VERIFY_123456)), 0x9000);
    assert_eq!(sw(&tx(&b, VERIFY_STATUS)), 0x63C3);
    assert_eq!(sw(&tx(&a, VERIFY_STATUS)), 0x9000);
}

#[test]
fn removal_and_insertion_are_reader_state_changes() {
    let h = Harness::start(1);
    let ctx = Context::establish(Scope::User).unwrap();
    let mut states = vec![ReaderState::new(reader(0), State::UNAWARE)];
    ctx.get_status_change(Duration::from_secs(5), &mut states)
        .unwrap();
    assert!(states[0].event_state().contains(State::PRESENT));
    states[0].sync_current_state();
    h.control("eject", 0);
    ctx.get_status_change(Duration::from_secs(10), &mut states)
        .unwrap();
    assert!(
        states[0].event_state().contains(State::EMPTY),
        "{:?}",
        states[0].event_state()
    );
    states[0].sync_current_state();
    h.control("insert", 0);
    ctx.get_status_change(Duration::from_secs(10), &mut states)
        .unwrap();
    assert!(
        states[0].event_state().contains(State::PRESENT),
        "{:?}",
        states[0].event_state()
    );
    assert_eq!(serial(&connect(0)), 900_000_001);
}

#[test]
fn a_card_reset_clears_the_pin_status() {
    let _h = Harness::start(1);
    let card = connect(0);
    tx(&card, SELECT);
    assert_eq!(sw(&tx(&card, VERIFY_123456)), 0x9000);
    assert_eq!(sw(&tx(&card, VERIFY_STATUS)), 0x9000);
    card.disconnect(Disposition::ResetCard)
        .map_err(|(_, e)| e)
        .unwrap();
    let card = connect(0);
    tx(&card, SELECT);
    assert_eq!(
        sw(&tx(&card, VERIFY_STATUS)),
        0x63C3,
        "SCARD_RESET_CARD must clear the PIN status"
    );
}

#[test]
fn aes_management_key_over_pcsc() {
    let _h = Harness::start(1);
    let card = connect(0);
    tx(&card, SELECT);
    assert_eq!(admin(&card, 0x03, &MGM), 0x9000);
    let key: Vec<u8> = (0..32).collect();
    let mut apdu = vec![0x00, 0xFF, 0xFF, 0xFF, 35, 0x0C, 0x9B, 32];
    apdu.extend(&key);
    assert_eq!(sw(&tx(&card, &apdu)), 0x9000);
    card.disconnect(Disposition::ResetCard)
        .map_err(|(_, e)| e)
        .unwrap();
    let card = connect(0);
    tx(&card, SELECT);
    assert_eq!(admin(&card, 0x03, &MGM), 0x6A86, "the 3DES key is gone");
    assert_eq!(admin(&card, 0x0C, &key), 0x9000);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut h = Harness::start(1);
    let status = h.stop_server();
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        h.server_log()
    );
    h.wait_for_card(0, false);
}

#[test]
fn the_server_reconnects_when_pcscd_restarts() {
    let h = Harness::start(1);
    let _ = std::process::Command::new("pkill")
        .args(["-x", "pcscd"])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while run("pgrep", &["-x", "pcscd"]).status.success() {
        assert!(Instant::now() < deadline, "pcscd did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    ok("pcscd", &[]);
    h.wait_for_card(0, true);
    assert_eq!(serial(&connect(0)), 900_000_001);
}

/// kill -9 in the middle of a PUT DATA chain: the chain lives in RAM, so the
/// object is unchanged after a restart, and the card works.
#[test]
fn kill_during_a_put_data_chain() {
    let mut h = Harness::start(1);
    let card = connect(0);
    tx(&card, SELECT);
    assert_eq!(admin(&card, 0x03, &MGM), 0x9000);
    let object = |fill: u8| {
        let mut d = vec![0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x82, 0x04, 0x00];
        d.extend(vec![fill; 1024]);
        d
    };
    assert_eq!(
        exchange(&card, [0x00, 0xDB, 0x3F, 0xFF], &object(1)).1,
        0x9000
    );
    // Send two parts of a new object's chain, then cut the power.
    let new = object(2);
    for part in new.chunks(255).take(2) {
        let mut apdu = vec![0x10, 0xDB, 0x3F, 0xFF, part.len() as u8];
        apdu.extend_from_slice(part);
        assert_eq!(sw(&tx(&card, &apdu)), 0x9000);
    }
    h.kill_server();
    drop(card);
    h.wait_for_card(0, false);
    h.start_server();
    let card = connect(0);
    tx(&card, SELECT);
    let (got, s) = exchange(
        &card,
        [0x00, 0xCB, 0x3F, 0xFF],
        &[0x5C, 0x03, 0x5F, 0xC1, 0x05],
    );
    assert_eq!(s, 0x9000);
    assert_eq!(&got[4..], &[1u8; 1024][..], "the old object, whole");
    assert_eq!(sw(&tx(&card, VERIFY_STATUS)), 0x63C3, "counters intact");
}

/// kill -9 at random moments while the card generates keys and counts PIN
/// tries: after every restart no try has come back, and the key in 9A signs
/// and verifies under the public key the card reports.
#[test]
fn kill_during_generate_and_verify() {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let mut h = Harness::start(1);
    let mut pin: &[u8] = b"123456";
    let verify = |pin: &[u8]| [&[0x00, 0x20, 0x00, 0x80, 0x08][..], pin, &[0xFF, 0xFF]].concat();
    let tries = |card: &pcsc::Card| {
        let meta = tx(card, &[0x00, 0xF7, 0x00, 0x80, 0x00]);
        meta[meta.len() - 3]
    };
    for round in 0..8u64 {
        let card = connect(0);
        tx(&card, SELECT);
        assert_eq!(admin(&card, 0x03, &MGM), 0x9000);
        let before = tries(&card);
        let delay = Duration::from_micros(200 + (round * 7919) % 3000);
        let killer = std::thread::spawn(move || std::thread::sleep(delay));
        // Work until the kill lands: key generation and, now and then, a
        // wrong PIN.
        let wrong = verify(b"999999");
        let mut buf = [0u8; 300];
        for n in 0.. {
            if killer.is_finished() {
                break;
            }
            let generate = [
                0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00,
            ];
            if card.transmit(&generate, &mut buf).is_err()
                || (n % 5 == 4 && card.transmit(&wrong, &mut buf).is_err())
            {
                break;
            }
        }
        h.kill_server();
        drop(card);
        h.wait_for_card(0, false);
        h.start_server();

        let card = connect(0);
        tx(&card, SELECT);
        let left = tries(&card);
        assert!(
            left <= before,
            "round {round}: a PIN try came back ({left} > {before})"
        );
        if left == 0 {
            let mut unblock = vec![0x00, 0x2C, 0x00, 0x80, 0x10];
            unblock.extend(b"12345678482915\xFF\xFF");
            assert_eq!(sw(&tx(&card, &unblock)), 0x9000);
            pin = b"482915";
        }
        assert_eq!(sw(&tx(&card, &verify(pin))), 0x9000, "round {round}");
        let meta = tx(&card, &[0x00, 0xF7, 0x00, 0x9A, 0x00]);
        if sw(&meta) == 0x6A88 {
            continue;
        }
        let point = &meta[meta.len() - 67..meta.len() - 2];
        let digest = [0x24u8; 32];
        let mut data = vec![0x7C, 0x24, 0x82, 0x00, 0x81, 0x20];
        data.extend(digest);
        let (rsp, s) = exchange(&card, [0x00, 0x87, 0x11, 0x9A], &data);
        assert_eq!(s, 0x9000, "round {round}");
        let sig = p256::ecdsa::DerSignature::from_bytes(&rsp[4..]).unwrap();
        p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .unwrap()
            .verify_prehash(&digest, &sig)
            .unwrap();
    }
}

/// A peer that sends nonsense: empty frames, unknown control bytes, a frame
/// cut short, a connection dropped mid-frame. The server logs, reconnects,
/// and the card answers properly afterwards.
#[test]
fn bad_transport_input_never_crashes_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("card.s9img");
    ok(
        s9card().to_str().unwrap(),
        &[
            "init",
            "--image",
            image.to_str().unwrap(),
            "--serial",
            "0900000009",
        ],
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let control = dir.path().join("c.sock");
    let mut server = std::process::Command::new(s9card())
        .args([
            "serve",
            "--image",
            image.to_str().unwrap(),
            "--vpcd",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--control", control.to_str().unwrap(), "--no-fsync"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    listener.set_nonblocking(false).unwrap();
    let frame = |body: &[u8]| [&(body.len() as u16).to_be_bytes()[..], body].concat();
    // Zero-length frames, unknown control bytes, then a truncated frame.
    let (mut s, _) = listener.accept().unwrap();
    s.write_all(&frame(&[])).unwrap();
    s.write_all(&frame(&[0x7F])).unwrap();
    s.write_all(&[0x01, 0x00, 0x00, 0xA4]).unwrap();
    drop(s);
    // A length with nothing after it.
    let (mut s, _) = listener.accept().unwrap();
    s.write_all(&[0xFF]).unwrap();
    drop(s);
    // A well-behaved exchange on the next connection.
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&frame(&[0x01])).unwrap();
    s.write_all(&frame(&[0x04])).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut atr = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut atr).unwrap();
    assert_eq!(&atr[..2], &[0x3B, 0x8D]);
    s.write_all(&frame(SELECT)).unwrap();
    s.read_exact(&mut len).unwrap();
    let mut rsp = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut rsp).unwrap();
    assert_eq!(&rsp[rsp.len() - 2..], &[0x90, 0x00]);
    assert!(
        server.try_wait().unwrap().is_none(),
        "the server must still run"
    );
    signal(server.id(), "TERM");
    assert!(server.wait().unwrap().success());
}

/// The raw trace names every command and never holds a PIN.
#[test]
fn trace_decodes_without_secrets() {
    let h = Harness::start(1);
    ok(
        "yubico-piv-tool",
        &[
            "-r",
            READER_0,
            "-a",
            "verify-pin",
            "-P",
            "123456",
            "-a",
            "status",
        ],
    );
    let raw = std::fs::read_to_string(&h.trace).unwrap();
    assert!(
        !raw.contains("313233343536"),
        "the PIN reached the trace:\n{raw}"
    );
    let decoded = ok(
        s9card().to_str().unwrap(),
        &["trace", "decode", h.trace.to_str().unwrap()],
    );
    assert!(decoded.contains("SELECT PIV"), "{decoded}");
    assert!(
        decoded.contains("VERIFY PIN") && decoded.contains("[8 redacted]"),
        "{decoded}"
    );
    assert!(decoded.contains("GET DATA 5FC102"), "{decoded}");
    assert!(decoded.contains("GET SERIAL"), "{decoded}");
}
