//! The card through the `pcsc` crate (via the host PIV client): two readers,
//! removal and insertion, resets, AES management keys, power cuts (kill -9),
//! pcscd restarts, a misbehaving transport, and traces.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use client::{AdminAlgorithm, ClientError, DEFAULT_MGM, Pcsc, PivClient, Slot, Status};
use harness::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use pcsc::{Context, ReaderState, Scope, State};

fn card(h: &Harness, n: usize) -> PivClient<Pcsc> {
    let mut c = PivClient::new(h.connect(n));
    c.select().unwrap();
    c
}

fn status(e: ClientError) -> Status {
    e.status().unwrap_or_else(|| panic!("{e}"))
}

fn pin_status(c: &mut PivClient<Pcsc>) -> u16 {
    let rsp = c.raw(&[0x00, 0x20, 0x00, 0x80]).unwrap();
    u16::from_be_bytes([rsp[rsp.len() - 2], rsp[rsp.len() - 1]])
}

#[test]
fn two_cards_in_two_readers() {
    let h = Harness::start(2);
    let (mut a, mut b) = (card(&h, 0), card(&h, 1));
    assert_eq!(
        (a.card_info().unwrap().serial, b.card_info().unwrap().serial),
        (900_000_001, 900_000_002)
    );
    // Each card keeps its own state.
    a.verify_pin(b"123456").unwrap();
    assert_eq!(pin_status(&mut b), 0x63C3);
    assert_eq!(pin_status(&mut a), 0x9000);
}

/// Waits, through as many reader state changes as come (pcscd reports a
/// card's power-up and its ATR as changes too), until the reader's state
/// contains `wanted`; fails after `within`.
fn wait_for_state(ctx: &Context, states: &mut [ReaderState], wanted: State, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(
            !left.is_zero(),
            "no {wanted:?}: {:?}",
            states[0].event_state()
        );
        match ctx.get_status_change(left, states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => continue,
            Err(e) => panic!("{e}"),
        }
        let now = states[0].event_state();
        states[0].sync_current_state();
        if now.contains(wanted) {
            return;
        }
    }
}

#[test]
fn removal_and_insertion_are_reader_state_changes() {
    let h = Harness::start(1);
    let ctx = Context::establish(Scope::User).unwrap();
    let reader = std::ffi::CString::new(h.reader(0)).unwrap();
    let mut states = vec![ReaderState::new(reader, State::UNAWARE)];
    wait_for_state(&ctx, &mut states, State::PRESENT, Duration::from_secs(5));
    h.control("eject", 0);
    wait_for_state(&ctx, &mut states, State::EMPTY, Duration::from_secs(10));
    h.control("insert", 0);
    wait_for_state(&ctx, &mut states, State::PRESENT, Duration::from_secs(10));
    assert_eq!(card(&h, 0).card_info().unwrap().serial, 900_000_001);
}

#[test]
fn a_card_reset_clears_the_pin_status() {
    let h = Harness::start(1);
    let mut c = card(&h, 0);
    c.verify_pin(b"123456").unwrap();
    assert_eq!(pin_status(&mut c), 0x9000);
    c.into_inner().reset().unwrap();
    assert_eq!(
        pin_status(&mut card(&h, 0)),
        0x63C3,
        "SCARD_RESET_CARD must clear the PIN status"
    );
}

#[test]
fn aes_management_key_over_pcsc() {
    let h = Harness::start(1);
    let mut c = card(&h, 0);
    c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM).unwrap();
    let key: Vec<u8> = (0..32).collect();
    c.set_management_key(AdminAlgorithm::Aes256, &key).unwrap();
    c.into_inner().reset().unwrap();
    let mut c = card(&h, 0);
    assert_eq!(
        status(
            c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)
                .unwrap_err()
        ),
        Status::IncorrectP1P2,
        "the 3DES key is gone"
    );
    c.authenticate(AdminAlgorithm::Aes256, &key).unwrap();
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
    // Alone: every other test's cards would leave with pcscd.
    let h = Harness::start_alone(1);
    // Started again as it was running (with the same reader configuration).
    let pid = virtual_reader::readers::pcscd_pid().expect("pcscd runs");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let _ = run("pkill", &["-x", "pcscd"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while run("pgrep", &["-x", "pcscd"]).status.success() {
        assert!(Instant::now() < deadline, "pcscd did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (program, args) = argv.split_first().expect("pcscd's command line");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(program, &args);
    h.wait_for_card(0, true);
    assert_eq!(card(&h, 0).card_info().unwrap().serial, 900_000_001);
}

/// kill -9 in the middle of a PUT DATA chain: the chain lives in RAM, so the
/// object is unchanged after a restart, and the card works.
#[test]
fn kill_during_a_put_data_chain() {
    let mut h = Harness::start(1);
    let mut c = card(&h, 0);
    c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM).unwrap();
    c.put_object(0x5FC105, &[1; 1024]).unwrap();
    // Send two parts of a new object's chain, then cut the power.
    let mut data = vec![0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x82, 0x04, 0x00];
    data.extend([2u8; 1024]);
    for part in data.chunks(255).take(2) {
        let mut apdu = vec![0x10, 0xDB, 0x3F, 0xFF, part.len() as u8];
        apdu.extend_from_slice(part);
        assert_eq!(c.raw(&apdu).unwrap(), [0x90, 0x00]);
    }
    h.power_cut();
    drop(c);
    let mut c = card(&h, 0);
    assert_eq!(
        c.get_object(0x5FC105).unwrap(),
        Some(vec![1; 1024]),
        "the old object, whole"
    );
    assert_eq!(pin_status(&mut c), 0x63C3, "counters intact");
}

/// kill -9 at random moments while the card generates keys and counts PIN
/// tries: after every restart no try has come back, and the key in 9A signs
/// and verifies under the public key the card reports.
#[test]
fn kill_during_generate_and_verify() {
    let mut h = Harness::start(1);
    let mut pin: &[u8] = b"123456";
    for round in 0..8u64 {
        let mut c = card(&h, 0);
        c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM).unwrap();
        let (before, _) = c.tries(0x80).unwrap();
        let delay = Duration::from_micros(200 + (round * 7919) % 3000);
        let killer = std::thread::spawn(move || std::thread::sleep(delay));
        // Work until the kill lands: key generation and, now and then, a
        // wrong PIN.
        let generate = [
            0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00,
        ];
        let wrong = [
            0x00, 0x20, 0x00, 0x80, 0x08, b'9', b'9', b'9', b'9', b'9', b'9', 0xFF, 0xFF,
        ];
        for n in 0.. {
            if killer.is_finished()
                || c.raw(&generate).is_err()
                || (n % 5 == 4 && c.raw(&wrong).is_err())
            {
                break;
            }
        }
        h.power_cut();
        drop(c);

        let mut c = card(&h, 0);
        let (left, _) = c.tries(0x80).unwrap();
        assert!(
            left <= before,
            "round {round}: a PIN try came back ({left} > {before})"
        );
        if left == 0 {
            c.unblock(b"12345678", b"482915").unwrap();
            pin = b"482915";
        }
        c.verify_pin(pin).unwrap();
        let Some(point) = c.public_key(Slot::Authentication).unwrap() else {
            continue;
        };
        let digest = [0x24u8; 32];
        let sig = c.sign(Slot::Authentication, &digest).unwrap();
        let sig = p256::ecdsa::DerSignature::from_bytes(&sig).unwrap();
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
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
    init_card(&image, "0900000009");
    // A free port for the card to listen on, where this test plays vpcd.
    let port = free_port();
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
    let frame = |body: &[u8]| [&(body.len() as u16).to_be_bytes()[..], body].concat();
    // vpcd dials the card, again whenever the card hangs up: the server
    // opens the port again half a second after each connection.
    let dial = || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => return s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("the card never listened on port {port}: {e}"),
            }
        }
    };
    // Each bad connection ends when the card has hung up on it: a dial
    // made before would wait in the port's queue and be reset with it.
    let hang_up = |mut s: TcpStream| {
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let _ = s.read_to_end(&mut Vec::new());
    };
    // Zero-length frames, unknown control bytes, then a truncated frame.
    let mut s = dial();
    s.write_all(&frame(&[])).unwrap();
    s.write_all(&frame(&[0x7F])).unwrap();
    s.write_all(&[0x01, 0x00, 0x00, 0xA4]).unwrap();
    hang_up(s);
    // Half a length field.
    let mut s = dial();
    s.write_all(&[0xFF]).unwrap();
    hang_up(s);
    // A well-behaved exchange on the next connection.
    let mut s = dial();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let read_frame = |s: &mut std::net::TcpStream| {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut body).unwrap();
        body
    };
    s.write_all(&frame(&[0x01])).unwrap();
    s.write_all(&frame(&[0x04])).unwrap();
    assert_eq!(&read_frame(&mut s)[..2], &[0x3B, 0x8D]);
    s.write_all(&frame(&[
        0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08,
    ]))
    .unwrap();
    assert!(read_frame(&mut s).ends_with(&[0x90, 0x00]));
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
            &h.reader(0),
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
