//! Self-service unlock: the code's rules at their edges, on card images.

use simulator::card::{self, Entropy, Make, SimCard};
use simulator::client::PivClient;
use simulator::cms::ca::Role;
use simulator::cms::flows::{self, Cms, Request};
use simulator::cms::time::{self, DAY};

struct World {
    dir: tempfile::TempDir,
    cms: Cms,
    now: u64,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let now = time::parse("2026-11-25T09:00:00Z").unwrap();
    Cms::init_ca(&dir.path().join("cms.db"), now).unwrap();
    let cms = Cms::open(&dir.path().join("cms.db")).unwrap();
    World { dir, cms, now }
}

impl World {
    /// A personalised card, locked (three wrong passcodes).
    fn locked_card(&mut self, serial: u32, uuid: &str, email: Option<&str>) -> SimCard {
        let image = self.dir.path().join(format!("{serial}.s9img"));
        card::init(
            &image,
            Make::virtual_card(serial, piv::Profile::Series9),
            Entropy::Seed(u64::from(serial)),
        )
        .unwrap();
        let (_, mut sim) = card::boot(&image, Entropy::Seed(1), false).unwrap();
        sim.power_on();
        let request = Request {
            uuid: uuid.into(),
            name: "Holder".into(),
            email: email.map(str::to_string),
            mobile: None,
            role: Role::Holder,
            passcode: String::from("482915").into(),
            serial: None,
            algorithm: piv::algorithm::Algorithm::P256,
        };
        flows::personalize(
            &mut self.cms,
            &mut PivClient::new(&mut sim),
            &request,
            self.now,
        )
        .unwrap();
        let mut c = PivClient::new(&mut sim);
        for _ in 0..3 {
            let _ = c.verify_pin(b"000000");
        }
        assert_eq!(c.tries(0x80).unwrap().0, 0);
        sim
    }

    fn outbox(&self) -> std::path::PathBuf {
        self.dir.path().join("outbox")
    }

    /// Requests a code and reads it from the outbox message.
    fn request(&mut self, sim: &mut SimCard, now: u64) -> String {
        let outbox = self.outbox();
        let path =
            flows::self_unlock_request(&mut self.cms, &mut PivClient::new(sim), &outbox, now)
                .unwrap();
        // The message holds the code: readable by its owner only.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&outbox), mode(&path)), (0o700, 0o600));
        let mail = std::fs::read_to_string(path).unwrap();
        assert!(mail.starts_with("To: h@nhs.example\r\n"), "{mail}");
        let at = mail.find("security code is ").unwrap() + "security code is ".len();
        mail[at..at + 6].to_string()
    }
}

/// Completes `after` seconds past the world's start.
fn complete(
    w: &mut World,
    sim: &mut SimCard,
    code: &str,
    new: &str,
    after: u64,
) -> Result<u32, String> {
    let now = w.now + after;
    flows::self_unlock_complete(&mut w.cms, &mut PivClient::new(sim), code, new, now)
}

#[test]
fn a_code_works_once_within_15_minutes() {
    let mut w = world();
    let mut sim = w.locked_card(900_000_050, "555000111222", Some("h@nhs.example"));
    let code = w.request(&mut sim, w.now);
    assert!(
        complete(&mut w, &mut sim, &code, "111111", 60)
            .unwrap_err()
            .contains("not easy to guess")
    );
    let serial = complete(&mut w, &mut sim, &code, "731026", 14 * 60 + 59).unwrap();
    assert_eq!(serial, 900_000_050);
    PivClient::new(&mut sim).verify_pin(b"731026").unwrap();
    // Used once.
    let again = complete(&mut w, &mut sim, &code, "604182", 15 * 60 - 1).unwrap_err();
    assert!(again.contains("void"), "{again}");
}

#[test]
fn an_expired_code_is_refused() {
    let mut w = world();
    let mut sim = w.locked_card(900_000_051, "555000111223", Some("h@nhs.example"));
    let code = w.request(&mut sim, w.now);
    let late = complete(&mut w, &mut sim, &code, "731026", 15 * 60 + 1).unwrap_err();
    assert!(late.contains("expired"), "{late}");
    assert_eq!(
        PivClient::new(&mut sim).tries(0x80).unwrap().0,
        0,
        "still locked"
    );
}

#[test]
fn three_wrong_codes_void_it() {
    let mut w = world();
    let mut sim = w.locked_card(900_000_052, "555000111224", Some("h@nhs.example"));
    let code = w.request(&mut sim, w.now);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for left in [2, 1, 0] {
        let e = complete(&mut w, &mut sim, wrong, "731026", 60).unwrap_err();
        assert!(e.contains(&format!("{left} tries left")), "{e}");
    }
    let void = complete(&mut w, &mut sim, &code, "731026", 60).unwrap_err();
    assert!(void.contains("void"), "{void}");
    // A new request gives a new chance.
    let fresh = w.request(&mut sim, w.now + 120);
    complete(&mut w, &mut sim, &fresh, "731026", 180).unwrap();
}

#[test]
fn a_code_for_another_card_does_not_work() {
    let mut w = world();
    let mut a = w.locked_card(900_000_053, "555000111225", Some("h@nhs.example"));
    let mut b = w.locked_card(900_000_054, "555000111226", Some("h@nhs.example"));
    let code_a = w.request(&mut a, w.now);
    let e = complete(&mut w, &mut b, &code_a, "731026", 60).unwrap_err();
    assert!(e.contains("no security code"), "{e}");
    let code_b = w.request(&mut b, w.now);
    if code_a != code_b {
        let e = complete(&mut w, &mut b, &code_a, "731026", 60).unwrap_err();
        assert!(e.contains("wrong security code"), "{e}");
    }
}

#[test]
fn only_for_holders_with_an_address_and_live_certificates() {
    let mut w = world();
    let mut no_email = w.locked_card(900_000_055, "555000111227", None);
    let outbox = w.outbox();
    let e = flows::self_unlock_request(
        &mut w.cms,
        &mut PivClient::new(&mut no_email),
        &outbox,
        w.now,
    )
    .unwrap_err();
    assert!(e.contains("email"), "{e}");
    let mut expired = w.locked_card(900_000_056, "555000111228", Some("h@nhs.example"));
    let e = flows::self_unlock_request(
        &mut w.cms,
        &mut PivClient::new(&mut expired),
        &outbox,
        w.now + 731 * DAY,
    )
    .unwrap_err();
    assert!(e.contains("expired"), "{e}");
    // No message was written for either.
    assert_eq!(
        std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0),
        0
    );
}
