//! Nothing of ours listens beyond loopback: not pcscd's vpcd readers, not
//! the cards that vpcd dials, not QEMU's serial lines. A card reachable from
//! the network could be driven by anyone there, and a reader reachable from
//! it could be filled with a card that collects the PINs tools send.

mod harness;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::*;

#[test]
fn served_cards_and_readers_listen_on_loopback_only() {
    let h = Harness::start(1);
    h.wait_for_card(0, true);

    // A second server whose card no reader dials: its port stays open, so
    // the check sees one of our listening sockets and where it is bound.
    let port = free_port();
    let image = h.path("waiting.s9img");
    init_card(&image, "0900000077");
    let waiting = Command::new(s9card())
        .args(["serve", "--no-fsync", "--image", image.to_str().unwrap()])
        .args(["--vpcd", &format!("127.0.0.1:{port}")])
        .args(["--control", h.path("waiting.sock").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut waiting = Stopped(waiting);
    // Connecting to it would be taken for vpcd: the check is what waits.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = assert_nothing_beyond_loopback();
        if listed.contains(&format!("listens on 127.0.0.1:{port}\n")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the waiting card's port is not listed:\n{listed}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(waiting.0.id(), "TERM");
    assert!(waiting.0.wait().unwrap().success());
}

/// A server this test started, killed if the test fails before it stops it.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_card_is_never_served_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("card.s9img");
    init_card(&image, "0900000078");
    for addr in ["0.0.0.0:35999", "192.0.2.1:35999", "[::]:35999"] {
        let out = Command::new(s9card())
            .args(["serve", "--image", image.to_str().unwrap(), "--vpcd", addr])
            .args(["--control", dir.path().join("c.sock").to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "served on {addr}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("loopback only"), "{addr}: {said}");
    }
}
