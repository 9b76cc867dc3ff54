//! Self-service unlock: the code's rules at their edges, on card images.

use client::PivClient;
use cms::CmsError;
use cms::ca::Role;
use cms::flows::{self, Cms, Request};
use cms::time::{self, DAY};
use virtual_card::{Entropy, Make, SimCard};

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
        self.card_of(serial, uuid, email, Role::Holder, true)
    }

    /// A personalised card, of a holder or a sponsor, locked or not.
    fn card_of(
        &mut self,
        serial: u32,
        uuid: &str,
        email: Option<&str>,
        role: Role,
        locked: bool,
    ) -> SimCard {
        let image = self.dir.path().join(format!("{serial}.s9img"));
        virtual_card::init(
            &image,
            Make::virtual_card(serial, applet::Profile::Series9),
            Entropy::Seed(u64::from(serial)),
        )
        .unwrap();
        let (_, mut sim) = virtual_card::boot(&image, Entropy::Seed(1), false).unwrap();
        sim.power_on();
        let request = Request {
            uuid: uuid.into(),
            name: "Holder".into(),
            email: email.map(str::to_string),
            mobile: None,
            role,
            passcode: String::from("482915").into(),
            serial: None,
            algorithm: applet::algorithm::Algorithm::P256,
            secure_messaging: None,
        };
        flows::personalize(
            &mut self.cms,
            &mut PivClient::new(&mut sim),
            &request,
            self.now,
        )
        .unwrap();
        if locked {
            let mut c = PivClient::new(&mut sim);
            for _ in 0..3 {
                let _ = c.verify_pin(b"000000");
            }
            assert_eq!(c.tries(0x80).unwrap().0, 0);
        }
        sim
    }

    fn image(&self, serial: u32) -> std::path::PathBuf {
        self.dir.path().join(format!("{serial}.s9img"))
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
) -> Result<u32, CmsError> {
    let now = w.now + after;
    flows::self_unlock_complete(&mut w.cms, &mut PivClient::new(sim), code, new, now)
}

#[test]
fn a_code_works_once_within_15_minutes() {
    let mut w = world();
    let mut sim = w.locked_card(900_000_050, "555000111222", Some("h@nhs.example"));
    let code = w.request(&mut sim, w.now);
    assert!(matches!(
        complete(&mut w, &mut sim, &code, "111111", 60),
        Err(CmsError::WeakPasscode)
    ));
    let serial = complete(&mut w, &mut sim, &code, "731026", 14 * 60 + 59).unwrap();
    assert_eq!(serial, 900_000_050);
    PivClient::new(&mut sim).verify_pin(b"731026").unwrap();
    // Used once.
    let again = complete(&mut w, &mut sim, &code, "604182", 15 * 60 - 1).unwrap_err();
    assert!(matches!(again, CmsError::CodeVoid), "{again}");
}

#[test]
fn an_expired_code_is_refused() {
    let mut w = world();
    let mut sim = w.locked_card(900_000_051, "555000111223", Some("h@nhs.example"));
    let code = w.request(&mut sim, w.now);
    let late = complete(&mut w, &mut sim, &code, "731026", 15 * 60 + 1).unwrap_err();
    assert!(matches!(late, CmsError::CodeExpired), "{late}");
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
        assert!(matches!(e, CmsError::WrongCode(l) if l == left), "{e}");
    }
    let void = complete(&mut w, &mut sim, &code, "731026", 60).unwrap_err();
    assert!(matches!(void, CmsError::CodeVoid), "{void}");
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
    assert!(matches!(e, CmsError::NoCode), "{e}");
    let code_b = w.request(&mut b, w.now);
    if code_a != code_b {
        let e = complete(&mut w, &mut b, &code_a, "731026", 60).unwrap_err();
        assert!(matches!(e, CmsError::WrongCode(_)), "{e}");
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
    assert!(matches!(e, CmsError::NoAddress), "{e}");
    let mut expired = w.locked_card(900_000_056, "555000111228", Some("h@nhs.example"));
    let e = flows::self_unlock_request(
        &mut w.cms,
        &mut PivClient::new(&mut expired),
        &outbox,
        w.now + 731 * DAY,
    )
    .unwrap_err();
    assert!(matches!(e, CmsError::CertificatesExpired), "{e}");
    // No message was written for either.
    assert_eq!(
        std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0),
        0
    );
}

/// A wrong code that is not `code`.
fn wrong_for(code: &str) -> &'static str {
    if code == "000000" { "000001" } else { "000000" }
}

#[test]
fn wrong_codes_count_across_requests_and_lock_until_a_sponsor_acts() {
    let mut w = world();
    let serial = 900_000_057;
    let mut sim = w.locked_card(serial, "555000111229", Some("h@nhs.example"));
    // Three wrong entries of one code (it is void), two of the next: the
    // fifth locks self-service, and takes the code with it.
    let code = w.request(&mut sim, w.now);
    for _ in 0..3 {
        complete(&mut w, &mut sim, wrong_for(&code), "731026", 60).unwrap_err();
    }
    let code = w.request(&mut sim, w.now + 120);
    let e = complete(&mut w, &mut sim, wrong_for(&code), "731026", 180).unwrap_err();
    assert!(matches!(e, CmsError::WrongCode(2)), "{e}");
    let e = complete(&mut w, &mut sim, wrong_for(&code), "731026", 181).unwrap_err();
    assert!(
        matches!(
            e,
            CmsError::SelfServiceLocked {
                serial: None,
                failures: 5
            }
        ),
        "{e}"
    );
    // Locked: the right code is refused, and so is a new request.
    let e = complete(&mut w, &mut sim, &code, "731026", 182).unwrap_err();
    assert!(matches!(e, CmsError::SelfServiceLocked { .. }), "{e}");
    let outbox = w.outbox();
    let e = flows::self_unlock_request(
        &mut w.cms,
        &mut PivClient::new(&mut sim),
        &outbox,
        w.now + 2 * 3600,
    )
    .unwrap_err();
    assert!(
        matches!(e, CmsError::SelfServiceLocked { serial: Some(s), failures: 5 } if s == serial),
        "{e}"
    );
    assert_eq!(PivClient::new(&mut sim).tries(0x80).unwrap().0, 0);
    let log = w.cms.db.audit_log().unwrap();
    assert!(
        log.iter().any(|a| a.action == "self-unlock"
            && a.outcome == "locked"
            && a.serial == Some(serial))
    );

    // A sponsor unlocks the card: self-service starts afresh.
    let mut sponsor = w.card_of(
        900_000_058,
        "555000111230",
        Some("s@nhs.example"),
        Role::Sponsor,
        false,
    );
    flows::sponsor_unlock(
        &mut w.cms,
        &mut PivClient::new(&mut sponsor),
        b"482915",
        &mut PivClient::new(&mut sim),
        "604182",
        w.now + 3 * 3600,
    )
    .unwrap();
    let mut c = PivClient::new(&mut sim);
    for _ in 0..3 {
        let _ = c.verify_pin(b"000000");
    }
    let code = w.request(&mut sim, w.now + 4 * 3600);
    complete(&mut w, &mut sim, &code, "731026", 4 * 3600 + 60).unwrap();
}

#[test]
fn three_requests_an_hour() {
    let mut w = world();
    let mut sim = w.locked_card(900_000_059, "555000111231", Some("h@nhs.example"));
    for minute in [0, 10, 20] {
        w.request(&mut sim, w.now + minute * 60);
    }
    let outbox = w.outbox();
    let e = flows::self_unlock_request(
        &mut w.cms,
        &mut PivClient::new(&mut sim),
        &outbox,
        w.now + 59 * 60,
    )
    .unwrap_err();
    assert!(
        matches!(e, CmsError::TooManyRequests { requests: 3, .. }),
        "{e}"
    );
    // An hour after the first, one more.
    let code = w.request(&mut sim, w.now + 3601);
    complete(&mut w, &mut sim, &code, "731026", 3601 + 60).unwrap();
}

/// Entries made at once, each from its own process's connection and its
/// own reader, never get more tries than the code has: a try is spent in
/// the same statement that checks one is left.
#[test]
fn entries_at_once_get_no_more_than_three_tries() {
    const AT_ONCE: usize = 8;
    let mut w = world();
    let serial = 900_000_060;
    let sim = w.locked_card(serial, "555000111232", Some("h@nhs.example"));
    drop(sim);
    // The same card in eight readers: copies of its image.
    let copies: Vec<std::path::PathBuf> = (0..AT_ONCE)
        .map(|i| {
            let copy = w.dir.path().join(format!("copy{i}.s9img"));
            std::fs::copy(w.image(serial), &copy).unwrap();
            copy
        })
        .collect();
    let (_, mut sim) = virtual_card::boot(&copies[0], Entropy::Seed(2), false).unwrap();
    sim.power_on();
    let code = w.request(&mut sim, w.now);
    drop(sim);
    let wrong = wrong_for(&code);
    let db = w.dir.path().join("cms.db");
    let start = std::sync::Barrier::new(AT_ONCE);
    let now = w.now + 60;
    let answers: Vec<Result<u32, CmsError>> = std::thread::scope(|scope| {
        let threads: Vec<_> = copies
            .iter()
            .map(|image| {
                let (db, start) = (&db, &start);
                scope.spawn(move || {
                    let mut cms = Cms::open(db).unwrap();
                    let (_, mut sim) = virtual_card::boot(image, Entropy::Seed(3), false).unwrap();
                    sim.power_on();
                    start.wait();
                    flows::self_unlock_complete(
                        &mut cms,
                        &mut PivClient::new(&mut sim),
                        wrong,
                        "731026",
                        now,
                    )
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let wrong_answers = answers
        .iter()
        .filter(|a| matches!(a, Err(CmsError::WrongCode(_))))
        .count();
    let void = answers
        .iter()
        .filter(|a| matches!(a, Err(CmsError::CodeVoid)))
        .count();
    assert_eq!((wrong_answers, void), (3, AT_ONCE - 3), "{answers:?}");
    let stored = w.cms.db.code(serial).unwrap().unwrap();
    assert_eq!(stored.tries_left, 0);
    let counted = w
        .cms
        .db
        .audit_log()
        .unwrap()
        .iter()
        .filter(|a| a.action == "self-unlock" && a.outcome == "wrong code")
        .count();
    assert_eq!(counted, 3);
}

/// A card's transport that keeps every command sent to it.
struct Recorded<'c> {
    card: &'c mut SimCard,
    sent: Vec<Vec<u8>>,
}

impl client::Transport for Recorded<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> client::Result<Vec<u8>> {
        self.sent.push(apdu.to_vec());
        client::Transport::transmit(self.card, apdu)
    }
}

/// Whether any command could carry a PUK: RESET RETRY COUNTER, or CHANGE
/// REFERENCE DATA of the PUK.
fn puk_bearing(sent: &[Vec<u8>]) -> bool {
    sent.iter()
        .any(|c| matches!(c[..], [_, 0x2C, ..] | [_, 0x24, _, 0x81, ..]))
}

#[test]
fn a_card_that_only_claims_a_serial_is_sent_no_puk() {
    let mut w = world();
    let serial = 900_000_061;
    let mut genuine = w.locked_card(serial, "555000111233", Some("h@nhs.example"));
    // `s9card init --serial`: a blank card with the genuine card's serial.
    let fake = w.dir.path().join("impostor.s9img");
    virtual_card::init(
        &fake,
        Make::virtual_card(serial, applet::Profile::Series9),
        Entropy::Seed(99),
    )
    .unwrap();
    let (_, mut impostor) = virtual_card::boot(&fake, Entropy::Seed(4), false).unwrap();
    impostor.power_on();
    let mut sponsor = w.card_of(
        900_000_062,
        "555000111234",
        Some("s@nhs.example"),
        Role::Sponsor,
        false,
    );

    // Sponsor unlock.
    let mut recorded = Recorded {
        card: &mut impostor,
        sent: Vec::new(),
    };
    let e = flows::sponsor_unlock(
        &mut w.cms,
        &mut PivClient::new(&mut sponsor),
        b"482915",
        &mut PivClient::new(&mut recorded),
        "604182",
        w.now,
    )
    .unwrap_err();
    assert!(
        matches!(e, CmsError::NotIssuedCard { serial: s, .. } if s == serial),
        "{e}"
    );
    assert!(!puk_bearing(&recorded.sent), "{:02X?}", recorded.sent);

    // Self-service: no code is sent for it, and the genuine card's code
    // does not unlock it.
    let outbox = w.outbox();
    let e = flows::self_unlock_request(
        &mut w.cms,
        &mut PivClient::new(&mut recorded),
        &outbox,
        w.now,
    )
    .unwrap_err();
    assert!(
        matches!(e, CmsError::NotIssuedCard { serial: s, .. } if s == serial),
        "{e}"
    );
    let code = w.request(&mut genuine, w.now);
    let e = flows::self_unlock_complete(
        &mut w.cms,
        &mut PivClient::new(&mut recorded),
        &code,
        "731026",
        w.now + 60,
    )
    .unwrap_err();
    assert!(
        matches!(e, CmsError::NotIssuedCard { serial: s, .. } if s == serial),
        "{e}"
    );
    assert!(!puk_bearing(&recorded.sent), "{:02X?}", recorded.sent);
    // The impostor's PUK is still the factory's: nothing changed it.
    assert!(recorded.sent.iter().any(|c| c.get(1) == Some(&0x87)));

    // Each refusal is audited.
    let refused = w
        .cms
        .db
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|a| a.outcome == "refused" && a.serial == Some(serial))
        .map(|a| a.action)
        .collect::<Vec<_>>();
    assert_eq!(
        refused,
        ["sponsor unlock", "self-unlock request", "self-unlock"]
    );
    // The genuine card, with its code untouched, unlocks.
    complete(&mut w, &mut genuine, &code, "731026", 120).unwrap();
}
