//! Scripted removal and faults (`serve --scenario`, `s9card scenario`),
//! seen through PKCS#11 and PC/SC as integrators' software sees a real
//! card misbehave: pulled out mid-signature, a status word it should not
//! give, a response that never completes, a reader that drops, a card
//! that goes mute.

mod harness;

use std::time::{Duration, Instant};

use client::{Pcsc, PivClient};
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::{SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use harness::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use virtual_reader::control::{self, Answer, Refusal, Request};

const DIGEST: [u8; 32] = [0x3C; 32];

fn scenario(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The PKCS#11 slot of the harness's reader.
fn slot_of(h: &Harness, p11: &Pkcs11) -> Slot {
    let reader = h.reader(0);
    p11.get_all_slots()
        .unwrap()
        .into_iter()
        .find(|s| {
            p11.get_slot_info(*s)
                .is_ok_and(|i| i.slot_description().trim() == reader)
        })
        .expect("a PKCS#11 slot for the reader")
}

/// Logs in with the passcode and signs [`DIGEST`] with key `01` (9A).
fn login_and_sign(p11: &Pkcs11, slot: Slot) -> cryptoki::error::Result<Vec<u8>> {
    let session = p11.open_ro_session(slot)?;
    session.login(UserType::User, Some(&AuthPin::new("123456".into())))?;
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![1]),
        ])?
        .into_iter()
        .next()
        .expect("the 9A private key");
    session.sign(&Mechanism::Ecdsa, key, &DIGEST)
}

fn token_present(p11: &Pkcs11, slot: Slot) -> bool {
    p11.get_slot_info(slot).is_ok_and(|i| i.token_present())
}

#[test]
fn nhs_login_session_ends_on_removal_and_logs_in_again_on_reinsertion() {
    let files = tempfile::tempdir().unwrap();
    // The holder's second signature: the card is pulled out mid-command,
    // and put back 1.5 s later.
    let script = scenario(
        &files,
        "[[event]]\n\
         during = \"GENERAL AUTHENTICATE ECDSA 9A\"\n\
         nth = 2\n\
         action = \"remove\"\n\
         reinsert_after_ms = 1500\n",
    );
    // Alone: OpenSC runs in this process (C_WaitForSlotEvent), which reads
    // its configuration from the environment as it loads, and so opens
    // every card PC/SC shows.
    let h = Harness::start_alone_with(1, true, &["--scenario", &script]);
    key_with_certificate(&h, "9a", "holder 555000111222");
    let public =
        std::fs::read_to_string(h.path("holder 555000111222-9a.pub")).expect("the 9A public key");
    let public = p256::ecdsa::VerifyingKey::from_public_key_pem(&public).unwrap();
    let verifies = |sig: &[u8]| {
        p256::ecdsa::Signature::from_slice(sig)
            .is_ok_and(|s| public.verify_prehash(&DIGEST, &s).is_ok())
    };

    let p11 = Pkcs11::new(PKCS11).unwrap();
    p11.initialize(CInitializeArgs::OsThreads).unwrap();
    let slot = slot_of(&h, &p11);
    // Events so far (the card was there when the module loaded) are not
    // what this test waits for.
    while p11.get_slot_event().unwrap().is_some() {}

    // Log in and sign, as the clinical system does at the start of a
    // session.
    let session = p11.open_ro_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::new("123456".into())))
        .unwrap();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![1]),
        ])
        .unwrap()[0];
    let first = session.sign(&Mechanism::Ecdsa, key, &DIGEST).unwrap();
    assert!(verifies(&first));

    // The second signature never comes: the card left during it.
    let second = session.sign(&Mechanism::Ecdsa, key, &DIGEST);
    assert!(second.is_err(), "a card pulled out mid-signature signed");

    // C_WaitForSlotEvent reports the removal (the events of other readers,
    // whose cards come and go in tests running beside this one, are passed
    // over).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match p11.get_slot_event() {
            Ok(Some(s)) if s == slot => break,
            Ok(_) => {}
            Err(e) => panic!("C_WaitForSlotEvent: {e}"),
        }
        assert!(Instant::now() < deadline, "no event for the card's removal");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!token_present(&p11, slot), "the token is still present");

    // The session is over: nothing more is signed in it.
    assert!(session.sign(&Mechanism::Ecdsa, key, &DIGEST).is_err());

    // It reports the re-insertion (polled, so a card that never comes back
    // fails the test instead of hanging it).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match p11.get_slot_event() {
            Ok(Some(s)) if s == slot && token_present(&p11, slot) => break,
            Ok(_) => {}
            Err(e) => panic!("C_WaitForSlotEvent: {e}"),
        }
        assert!(Instant::now() < deadline, "the card never came back");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The card came back locked: a new session is not logged in, and its
    // private key shows only after the passcode.
    let locked = p11.open_ro_session(slot).unwrap();
    assert_eq!(
        locked.get_session_info().unwrap().session_state(),
        SessionState::RoPublic
    );
    let private = [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Id(vec![1]),
    ];
    assert!(locked.find_objects(&private).unwrap().is_empty());
    drop(locked);
    let again = login_and_sign(&p11, slot).unwrap();
    assert!(verifies(&again));

    // The removal was the scenario's, and the card lost no try: the PIN
    // counter is full after the interrupted signature.
    assert!(h.server_log().contains("scenario: card removed"));
    drop(p11);
    let mut piv = PivClient::new(h.connect(0));
    piv.select().unwrap();
    assert_eq!(piv.tries(0x80).unwrap(), (3, 3));
}

fn piv(h: &Harness) -> PivClient<Pcsc> {
    let mut c = PivClient::new(h.connect(0));
    c.select().unwrap();
    c
}

fn sw(rsp: &[u8]) -> u16 {
    u16::from_be_bytes([rsp[rsp.len() - 2], rsp[rsp.len() - 1]])
}

const GET_CHUID: [u8; 11] = [
    0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02, 0x00,
];
const GET_RESPONSE: [u8; 5] = [0x00, 0xC0, 0x00, 0x00, 0x00];

#[test]
fn a_chosen_status_word_and_a_response_that_never_completes() {
    let files = tempfile::tempdir().unwrap();
    let h = Harness::start(1);
    let mut card = piv(&h);
    let chuid = card.raw(&GET_CHUID).unwrap();
    assert_eq!(sw(&chuid), 0x9000);

    // Loaded into the running server: its count starts now.
    let script = scenario(
        &files,
        "[[event]]\nduring = \"GET DATA 5FC102\"\nnth = 2\naction = \"answer\"\nsw = \"6F00\"\n\
         [[event]]\nduring = \"GET DATA 5FC102\"\nnth = 3\naction = \"answer\"\nsw = \"6110\"\nendless = true\n",
    );
    let answer = ok(
        s9card().to_str().unwrap(),
        &[
            "scenario",
            &script,
            "--control",
            h.control.to_str().unwrap(),
        ],
    );
    assert!(answer.contains("ok: 2 events"), "{answer}");
    // A path is not a scenario: the server opens no file a client names,
    // so another user's client cannot have it read /etc/shadow. The text
    // protocol of earlier versions is refused by name, and so is a
    // scenario longer than the server takes.
    let protocol = Refusal::Protocol {
        expected: control::PROTOCOL.into(),
    };
    for line in ["scenario /etc/passwd", "scenario 5000000"] {
        assert_eq!(raw_control(&h.control, line), refused(protocol.clone()));
    }
    let long = control::encode_request(&Request::Scenario {
        text: " ".repeat(control::MAX_SCENARIO + 1),
    });
    assert_eq!(
        raw_control(&h.control, &long),
        refused(Refusal::TooLong {
            max: control::MAX_SCENARIO
        })
    );
    let passwd = control::encode_request(&Request::Scenario {
        text: "/etc/passwd".into(),
    });
    assert!(matches!(
        raw_control(&h.control, &passwd),
        Answer::Refused {
            refusal: Refusal::Scenario { .. }
        }
    ));

    assert_eq!(
        card.raw(&GET_CHUID).unwrap(),
        chuid,
        "the first is the card's"
    );
    assert_eq!(card.raw(&GET_CHUID).unwrap(), [0x6F, 0x00]);
    assert_eq!(card.raw(&GET_CHUID).unwrap(), [0x61, 0x10]);
    for _ in 0..5 {
        assert_eq!(card.raw(&GET_RESPONSE).unwrap(), [0x61, 0x10]);
    }
    // Any other command ends it, and the card answers for itself again.
    card.select().unwrap();
    assert_eq!(card.raw(&GET_CHUID).unwrap(), chuid);
}

fn refused(refusal: Refusal) -> Answer {
    Answer::Refused { refusal }
}

/// One line to a server's control socket as any client could write it,
/// and its answer.
fn raw_control(socket: &std::path::Path, line: &str) -> Answer {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    writeln!(stream, "{line}").unwrap();
    let mut answer = String::new();
    std::io::BufReader::new(&stream)
        .read_line(&mut answer)
        .unwrap();
    control::decode_answer(answer.trim()).unwrap()
}

#[test]
fn a_dropped_reader_comes_back_as_a_power_cycled_card() {
    let files = tempfile::tempdir().unwrap();
    let script = scenario(
        &files,
        "[[event]]\nduring = \"VERIFY PIN (status)\"\naction = \"drop-reader\"\nreconnect_after_ms = 300\n",
    );
    let h = Harness::start_with(1, true, &["--scenario", &script]);
    let mut card = piv(&h);
    card.verify_pin(b"123456").unwrap();
    // The PIN status query is where the connection drops.
    // pcscd gets no status word back (an error, or an empty answer).
    let dropped = card.raw(&[0x00, 0x20, 0x00, 0x80]);
    assert!(
        dropped.as_ref().map_or(true, |r| r.len() < 2),
        "{dropped:?}\n{}",
        h.server_log()
    );
    h.wait_for_card(0, false);
    h.wait_for_card(0, true);
    // A new card session: the PIN must be presented again.
    let mut card = piv(&h);
    let status = card.raw(&[0x00, 0x20, 0x00, 0x80]).unwrap();
    assert_eq!(status, [0x63, 0xC3]);
    assert!(h.server_log().contains("scenario: vpcd connection dropped"));
}

#[test]
fn a_mute_card_answers_after_its_silence_and_a_count_removes_it() {
    let files = tempfile::tempdir().unwrap();
    let h = Harness::start(1);
    let mut card = piv(&h);
    let script = scenario(
        &files,
        "[[event]]\nduring = \"GET DATA\"\naction = \"mute\"\nmute_ms = 700\n\
         [[event]]\nafter_apdus = 3\naction = \"remove\"\nreinsert_after_ms = 200\n",
    );
    ok(
        s9card().to_str().unwrap(),
        &[
            "scenario",
            &script,
            "--control",
            h.control.to_str().unwrap(),
        ],
    );
    // The mute holds the answer back, then the card answers as itself.
    let start = Instant::now();
    let chuid = card.raw(&GET_CHUID).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "answered during the mute"
    );
    assert_eq!(sw(&chuid), 0x9000);
    // Two more answers make three: then the card leaves, and returns.
    assert_eq!(card.raw(&GET_CHUID).unwrap(), chuid);
    assert_eq!(card.raw(&GET_CHUID).unwrap(), chuid);
    h.wait_for_card(0, false);
    h.wait_for_card(0, true);
    assert_eq!(piv(&h).raw(&GET_CHUID).unwrap(), chuid);
}

#[test]
fn a_timed_removal_happens_without_any_command() {
    let files = tempfile::tempdir().unwrap();
    let h = Harness::start(1);
    // Loaded once the card is in its reader: the clock starts then.
    let script = scenario(
        &files,
        "[[event]]\nafter_ms = 300\naction = \"remove\"\nreinsert_after_ms = 1500\n",
    );
    ok(
        s9card().to_str().unwrap(),
        &[
            "scenario",
            &script,
            "--control",
            h.control.to_str().unwrap(),
        ],
    );
    // Nobody sends anything: the clock alone takes the card out and puts
    // it back.
    h.wait_for_card(0, false);
    h.wait_for_card(0, true);
    assert!(h.server_log().contains("scenario: card re-inserted"));
    assert_eq!(piv(&h).card_info().unwrap().serial, 900_000_001);
}
