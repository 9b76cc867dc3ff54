//! One card, one process: an image (or a firmware flash file) that one
//! s9card serves or writes cannot be opened by another, so that no card
//! ever runs twice with two sets of retry counters.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use virtual_card::image::ImageError;
use virtual_card::{Entropy, Make};

fn fresh(dir: &std::path::Path) -> std::path::PathBuf {
    let image = dir.join("card.s9img");
    virtual_card::init(
        &image,
        Make::virtual_card(900_000_070, applet::Profile::Series9),
        Entropy::Seed(1),
    )
    .unwrap();
    image
}

#[test]
fn an_open_card_cannot_be_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let image = fresh(dir.path());
    let (_, first) = virtual_card::boot(&image, Entropy::Seed(2), false).unwrap();
    match virtual_card::boot(&image, Entropy::Seed(3), false) {
        Err(e @ ImageError::InUse) => assert!(e.to_string().contains("in use"), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the card opened twice"),
    }
    // Closed, it opens again.
    drop(first);
    virtual_card::boot(&image, Entropy::Seed(4), false).unwrap();
}

#[test]
fn a_second_server_of_one_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = fresh(dir.path());
    let serve = |control: &str| {
        Command::new(env!("CARGO_BIN_EXE_s9card"))
            .args(["serve", "--no-fsync", "--image", image.to_str().unwrap()])
            .args(["--vpcd", "127.0.0.1:1"])
            .arg("--control")
            .arg(dir.path().join(control))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = serve("first.sock");
    // Serving: its control socket answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = virtual_reader::control::Request::Status {};
    while virtual_reader::server::control_send(&dir.path().join("first.sock"), &status).is_err() {
        assert!(Instant::now() < deadline, "the first server never served");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = serve("second.sock").wait_with_output().unwrap();
    let _ = first.kill();
    let _ = first.wait();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("the card is in use"), "{said}");
}
