//! Credential management through pcscd + vpcd, as a registration authority
//! and a sponsor would do it with two readers: personalise, check the
//! certificates with OpenSSL, use them with PKCS#11, lock, unlock with the
//! sponsor's card, renew.

mod harness;

use std::path::Path;

use harness::*;

fn s9(args: &[&str]) -> String {
    ok(s9card().to_str().unwrap(), args)
}

fn s9_fails(args: &[&str]) -> String {
    let out = run(s9card().to_str().unwrap(), args);
    assert!(!out.status.success(), "s9card {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn personalise_unlock_and_renew_with_two_readers() {
    let h = Harness::start(2);
    let (sponsor, holder) = (h.reader(0), h.reader(1));
    let (r0, r1) = (sponsor.as_str(), holder.as_str());
    let db = h.path("cms.db");
    let db = db.to_str().unwrap();
    let ca = h.path("ca/ca.pem");
    s9(&["ca", "init", "--db", db, "--now", "2026-11-25"]);
    s9(&[
        "personalize",
        "--reader",
        r0,
        "--uuid",
        "555000999888",
        "--name",
        "Sam Sponsor",
        "--sponsor",
        "--passcode",
        "731026",
        "--db",
        db,
        "--now",
        "2026-11-25",
    ]);
    s9(&[
        "personalize",
        "--reader",
        r1,
        "--uuid",
        "555000111222",
        "--name",
        "Ann Holder",
        "--email",
        "ann@nhs.example",
        "--passcode",
        "482915",
        "--db",
        db,
        "--now",
        "2026-11-25",
    ]);

    // The issued certificates chain to the test CA.
    let cert = h.path("holder.pem");
    certificate_chains_to(r1, &cert, &ca, None);
    let subject = ok(
        "openssl",
        &["x509", "-in", cert.to_str().unwrap(), "-noout", "-subject"],
    );
    assert!(
        subject.contains("555000111222") && subject.contains("holder"),
        "{subject}"
    );

    // PKCS#11 sees the key and signs with it.
    let objects = h.ok("pkcs15-tool", &["--reader", r1, "-D"]);
    assert!(objects.contains("PKCS#15 Card [Ann Holder]"), "{objects}");
    pkcs11_signs_for(&h, r1, "482915", &cert, b"log in to the spine\n");

    // Status as a sponsor sees it.
    let status = s9(&["status", "--reader", r1, "--db", db, "--now", "2026-11-25"]);
    assert!(
        status.contains("holder        555000111222 (holder)"),
        "{status}"
    );
    assert!(status.contains("730 days left"), "{status}");

    // Locked by three wrong passcodes; the holder cannot unlock themself
    // with the sponsor's role check failing for a non-sponsor card.
    for _ in 0..3 {
        let _ = run(
            "yubico-piv-tool",
            &["-r", r1, "-a", "verify-pin", "-P", "000000"],
        );
    }
    assert!(s9(&["status", "--reader", r1, "--db", db, "--now", "2026-11-25"]).contains("LOCKED"));
    let refused = s9_fails(&[
        "unlock",
        "--sponsor-reader",
        r1,
        "--card-reader",
        r1,
        "--sponsor-passcode",
        "482915",
        "--new-passcode",
        "604182",
        "--db",
        db,
    ]);
    assert!(refused.contains("not a sponsor"), "{refused}");
    s9(&[
        "unlock",
        "--sponsor-reader",
        r0,
        "--card-reader",
        r1,
        "--sponsor-passcode",
        "731026",
        "--new-passcode",
        "604182",
        "--db",
        db,
        "--now",
        "2026-11-26",
    ]);
    ok(
        "yubico-piv-tool",
        &["-r", r1, "-a", "verify-pin", "-P", "604182"],
    );

    // Renewal: refused too early, done inside the window.
    let early = s9_fails(&[
        "renew",
        "--reader",
        r1,
        "--passcode",
        "604182",
        "--db",
        db,
        "--now",
        "2027-01-01",
    ]);
    assert!(early.contains("renew from 2028-08-26"), "{early}");
    let renewed = s9(&[
        "renew",
        "--reader",
        r1,
        "--passcode",
        "604182",
        "--db",
        db,
        "--now",
        "2028-10-01",
    ]);
    assert!(
        renewed.contains("certificates expire 2030-10-01"),
        "{renewed}"
    );
    certificate_chains_to(r1, &cert, &ca, Some("1917000000"));
    let late = s9_fails(&[
        "renew",
        "--reader",
        r1,
        "--passcode",
        "604182",
        "--db",
        db,
        "--now",
        "2031-01-01",
    ]);
    assert!(late.contains("expired: re-issue in person"), "{late}");
}

/// `kill -9` of the card (the simulator, or the firmware's QEMU) in the
/// middle of `s9card renew`, many times over: after every restart each key
/// on the card has its own certificate (checked through PC/SC by signing
/// and verifying), old or new, and the next renewal completes the
/// interrupted one.
///
/// Each cut lands inside the renewal: the test waits until the renewal has
/// exchanged its k-th APDU (k drawn over the whole renewal, whose length a
/// first, uncut renewal measures), then waits a few hundred microseconds
/// more, so that the card is at work on the next command or the host is
/// between two, and cuts. A renewal that ends before its k-th APDU is
/// counted as finished; at least 40 % of the runs must be cut. 24 runs cut
/// at 24 points spread over the renewal's APDUs (S9CARD_KILL_RUNS for more).
#[test]
fn kill_the_card_during_renewals() {
    use client::{Pcsc, PivClient};
    use cms::{ca, flows, time};

    let runs: u32 = std::env::var("S9CARD_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut h = Harness::start(1);
    let reader = h.reader(0);
    let r0 = reader.as_str();
    let db = h.path("cms.db");
    let db = db.to_str().unwrap().to_string();
    s9(&["ca", "init", "--db", &db, "--now", "2026-11-25"]);
    s9(&[
        "personalize",
        "--reader",
        r0,
        "--uuid",
        "555000111222",
        "--name",
        "Ann",
        "--passcode",
        "482915",
        "--db",
        &db,
        "--now",
        "2026-11-25",
    ]);
    let test_ca = ca::TestCa::load(&h.path("ca")).unwrap();
    let trace = h.trace.clone();
    let exchanged = || {
        std::fs::read(&trace)
            .map(|t| t.iter().filter(|&&b| b == b'\n').count())
            .unwrap_or(0)
    };
    let renew_args = |now: &str| {
        [
            "renew",
            "--reader",
            r0,
            "--passcode",
            "482915",
            "--db",
            &db,
            "--now",
            now,
        ]
        .map(str::to_string)
    };
    let expiry_now = |now: &str| {
        let status = s9(&["status", "--reader", r0, "--db", &db, "--now", now]);
        let at = status.find("expire ").expect("an expiry") + "expire ".len();
        time::parse(&status[at..at + 10]).unwrap()
    };

    // One renewal uncut: how many APDUs a renewal exchanges.
    let mut expiry = time::parse("2028-11-24").unwrap();
    let now = time::date(expiry - 30 * time::DAY);
    let before = exchanged();
    s9(&renew_args(&now).each_ref().map(String::as_str));
    let length = exchanged() - before;
    assert!(length > 4, "a renewal of {length} APDUs");
    expiry = expiry_now(&now);

    let (mut cut, mut completed) = (0u32, 0u32);
    for run in 0..runs {
        let now = time::date(expiry - 30 * time::DAY);
        let args = renew_args(&now);
        let before = exchanged();
        let mut renew = std::process::Command::new(s9card())
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The k-th APDU of the renewal, k in 1..length, drawn evenly.
        let k = 1 + (run as usize * 7_919) % (length - 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while exchanged() < before + k && renew.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "run {run}: the renewal stalled"
            );
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        let extra = (u64::from(run) * 131) % 1_000;
        std::thread::sleep(std::time::Duration::from_micros(extra));
        h.power_cut();
        let finished = renew.wait().unwrap().success();

        // Through PC/SC: every key matches its certificate.
        let mut card = PivClient::new(Pcsc::connect(r0).unwrap());
        card.select().unwrap();
        let mut expiries = Vec::new();
        for (slot, object) in flows::SLOTS {
            let info = key_matches_certificate(&mut card, &test_ca, slot, object, [run as u8; 32])
                .unwrap_or_else(|| {
                    panic!(
                        "run {run}: slot {:02X} has a key without its certificate",
                        slot.byte()
                    )
                });
            expiries.push(info.not_after);
        }
        drop(card);
        // Finish what the kill interrupted (or, when the card committed both
        // slots before the database heard, let the next renewal reconcile),
        // then carry on from the new expiry.
        if finished {
            completed += 1;
        } else {
            cut += 1;
        }
        if expiries.contains(&expiry) || !finished {
            s9(&args.each_ref().map(String::as_str));
        }
        expiry = expiry_now(&now);
    }
    println!(
        "kill -9 during renewal: {runs} runs, {cut} cut inside the renewal's {length} APDUs and resumed, {completed} finished before the cut"
    );

    // Key history: each of the runs + 1 renewals kept the key management
    // key it replaced, the oldest giving way once twenty are kept; every
    // retired key still matches its certificate, cut or not.
    let mut card = PivClient::new(Pcsc::connect(r0).unwrap());
    card.select().unwrap();
    let history = cms::key_history::KeyHistory::read(&mut card).unwrap();
    let renewals = runs as usize + 1;
    assert_eq!(usize::from(history.on_card), renewals.min(20));
    let first_expiry = time::parse("2028-11-24").unwrap();
    let mut kept = std::collections::BTreeSet::new();
    for slot in cms::key_history::retired_slots().take(history.on_card.into()) {
        let tag = slot.certificate_tag().unwrap();
        let info = key_matches_certificate(&mut card, &test_ca, slot, tag, [slot.byte(); 32])
            .unwrap_or_else(|| {
                panic!(
                    "retired slot {:02X}: key and certificate differ",
                    slot.byte()
                )
            });
        assert!(kept.insert(info.not_after), "a key retired twice");
    }
    if renewals > 20 {
        assert!(
            kept.first().is_some_and(|&oldest| oldest > first_expiry),
            "the first key, the oldest, should have given way"
        );
    }
    assert!(
        cut * 10 >= runs * 4,
        "only {cut} of {runs} runs were cut inside the renewal"
    );
}

/// The certificate in `object`, if the key in `slot` is its key: the card
/// signs `digest` (after the passcode: `9C` wants it every time) and the
/// signature verifies with the certificate's P-256 key.
fn key_matches_certificate(
    card: &mut client::PivClient<client::Pcsc>,
    ca: &cms::ca::TestCa,
    slot: client::Slot,
    object: u32,
    digest: [u8; 32],
) -> Option<cms::ca::CertInfo> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let content = card.get_object(object).unwrap().expect("a certificate");
    let info = cms::ca::inspect(ca, client::unwrap_tlv(&content, 0x70).unwrap()).unwrap();
    card.verify_pin(b"482915").unwrap();
    let sig = card.sign(slot, &digest).unwrap();
    let signature = p256::ecdsa::DerSignature::from_bytes(&sig).unwrap();
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&info.key.public)
        .unwrap()
        .verify_prehash(&digest, &signature)
        .ok()
        .map(|()| info)
}

/// Reads the 9A certificate of the card in `reader` into `cert` with
/// yubico-piv-tool and checks with OpenSSL that it chains to `ca`, now or at
/// the Unix time `at`.
fn certificate_chains_to(reader: &str, cert: &Path, ca: &Path, at: Option<&str>) {
    let pem = ok(
        "yubico-piv-tool",
        &["-r", reader, "-a", "read-certificate", "-s", "9a"],
    );
    std::fs::write(cert, &pem).unwrap();
    let mut args = vec!["verify", "-CAfile", ca.to_str().unwrap()];
    if let Some(at) = at {
        args.extend(["-attime", at]);
    }
    args.push(cert.to_str().unwrap());
    let verified = ok("openssl", &args);
    assert!(verified.contains(": OK"), "{verified}");
}
