//! The integrators' kit as integrators use it: `s9card up` and `down` from
//! a CI step, and the Rust fixture from a test, seen through PC/SC.

mod harness;

use std::process::Command;

use harness::*;
use virtual_reader::fixture;

fn s9(args: &[&str]) -> std::process::Output {
    Command::new(s9card())
        .args(args)
        .output()
        .expect("run s9card")
}

/// `s9card down` for a state directory when dropped, if anything is still up.
struct DownOnDrop(std::path::PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if self.0.join("up.json").exists() {
            let _ = s9(&["down", "--state", self.0.to_str().unwrap_or_default()]);
        }
    }
}

#[test]
fn up_serves_cards_pcsc_sees_and_down_stops_exactly_them() {
    let _held = Readers::all();
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("up");
    let dir_arg = dir.to_str().unwrap();
    let pcscd_before = virtual_reader::readers::pcscd_pid();

    let out = s9(&[
        "up", "--cards", "3", "--state", dir_arg, "--json", "--seed", "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Whatever fails below, nothing up started outlives the test.
    let _down = DownOnDrop(dir.clone());
    let up: virtual_reader::up::UpState = serde_json::from_slice(&out.stdout).unwrap();
    let serials: Vec<&str> = up.cards.iter().map(|c| c.serial.as_str()).collect();
    assert_eq!(serials, ["0900000001", "0900000002", "0900000003"]);
    assert!(virtual_reader::readers::alive(up.server_pid));

    // PC/SC sees them, each with the serial up printed.
    let listed = virtual_reader::readers::listed();
    for card in &up.cards {
        assert!(
            listed.iter().any(|(r, p)| *r == card.reader && *p),
            "{} not present: {listed:?}",
            card.reader
        );
        let mut client = client::PivClient::new(client::Pcsc::connect_exact(&card.reader).unwrap());
        client.select().unwrap();
        assert_eq!(
            format!("{:010}", client.card_info().unwrap().serial),
            card.serial
        );
    }
    let tools = ok(
        "yubico-piv-tool",
        &["-r", &up.cards[2].reader, "-a", "status"],
    );
    assert!(tools.contains("PIN tries left:\t3"), "{tools}");
    // The readers up started and the cards it serves: loopback only.
    assert_nothing_beyond_loopback();

    // A second up while these are up is refused, and changes nothing.
    let again = s9(&["up", "--cards", "1", "--state", dir_arg]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));
    assert!(virtual_reader::readers::alive(up.server_pid));

    let down = s9(&["down", "--state", dir_arg]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(!virtual_reader::readers::alive(up.server_pid));
    let listed = virtual_reader::readers::listed();
    assert!(
        up.cards
            .iter()
            .all(|c| !listed.iter().any(|(r, p)| *r == c.reader && *p)),
        "a card is still in its reader: {listed:?}"
    );
    // A pcscd that ran before up still runs; one that up started is gone.
    match pcscd_before {
        Some(pid) => {
            assert_eq!(up.pcscd_pid, None);
            assert!(virtual_reader::readers::alive(pid));
        }
        None => {
            let pid = up.pcscd_pid.expect("up started pcscd");
            assert!(!virtual_reader::readers::alive(pid));
        }
    }
    // The cards are gone; the log and the trace stay.
    assert!(up.cards.iter().all(|c| !c.image.exists()));
    assert!(up.log.exists() && up.trace.exists());
    let nothing = s9(&["down", "--state", dir_arg]);
    assert!(!nothing.status.success());
}

/// `s9card up` with `args`, which must refuse to start; what it said.
fn up_refuses(state: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["up", "--state", state.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = s9(&all);
    assert!(!out.status.success(), "up {args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn up_names_each_missing_prerequisite() {
    let state = tempfile::tempdir().unwrap();
    let text = up_refuses(
        state.path(),
        &["--cards", "17", "--firmware", "/nonexistent/firmware.elf"],
    );
    assert!(
        text.contains("--cards 17: from 1 to 14 for this profile"),
        "{text}"
    );
    assert!(
        text.contains("no firmware at /nonexistent/firmware.elf"),
        "{text}"
    );

    // One YubiKey-named reader, as a YubiKey is one; PIN complexity is a
    // YubiKey setting.
    let text = up_refuses(state.path(), &["--profile", "yubikey", "--cards", "2"]);
    assert!(
        text.contains("--cards 2: from 1 to 1 for this profile"),
        "{text}"
    );
    let text = up_refuses(state.path(), &["--pin-complexity"]);
    assert!(
        text.contains("--pin-complexity is a YubiKey profile setting"),
        "{text}"
    );
}

#[test]
fn fixture_cards_take_free_readers_and_leave_them_on_drop() {
    // No other test of the suite runs meanwhile; the readers stay free for
    // the fixtures to pick.
    let _held = Readers::exclusive();
    let a = fixture::card().serial(900_000_101).seed(1).pcsc().unwrap();
    let b = fixture::card().serial(900_000_102).pcsc().unwrap();
    assert_ne!(a.reader(), b.reader());
    let mut ca = a.client().unwrap();
    let mut cb = b.client().unwrap();
    ca.select().unwrap();
    cb.select().unwrap();
    assert_eq!(ca.card_info().unwrap().serial, 900_000_101);
    assert_eq!(cb.card_info().unwrap().serial, 900_000_102);

    // Removal and insertion through the fixture, as PC/SC sees them.
    ca.verify_pin(b"123456").unwrap();
    drop(ca);
    a.eject().unwrap();
    a.insert().unwrap();
    let mut ca = a.client().unwrap();
    ca.select().unwrap();
    let status = ca.raw(&[0x00, 0x20, 0x00, 0x80]).unwrap();
    assert_eq!(status, [0x63, 0xC3], "the PIN survived a removal");

    // Dropping a fixture empties its reader for the next one.
    let reader = a.reader().to_string();
    drop(ca);
    drop(a);
    assert!(
        !virtual_reader::readers::listed()
            .iter()
            .any(|(r, p)| *r == reader && *p)
    );
    let c = fixture::card().serial(900_000_103).pcsc().unwrap();
    assert_eq!(c.reader(), reader, "the freed reader is taken first");
}
