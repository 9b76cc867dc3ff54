//! The firmware card on its own, driven straight over its UART (no pcscd):
//! it answers exactly as the host card does, a card moves between the two
//! through the image conversions, no two boots repeat their randomness, and
//! a flash it cannot run on is refused with the reason, and its P-256 (the
//! Cortex-M4 assembly) agrees with the host's (RustCrypto).

mod harness;

use std::path::Path;

use client::{AdminAlgorithm, DEFAULT_MGM, PivClient, Transport};
use harness::{build_firmware, firmware_elf, series9_elf};
use virtual_card::firmware::{self, Firmware, FirmwareCard};
use virtual_card::{Entropy, Make};
use virtual_reader::vpcd::{Frame, Outcome, Respond};

/// A new Series 9 card's firmware flash (and key store) at `flash`.
fn series9_flash(flash: &Path, serial: u32, seed: u64) -> virtual_card::image::Header {
    firmware::init(
        flash,
        Make::virtual_card(serial, virtual_card::Profile::Series9),
        Entropy::Seed(seed),
    )
    .unwrap()
}

/// A new Series 9 card's image at `image`.
fn series9_image(image: &Path, serial: u32, seed: u64) {
    virtual_card::init(
        image,
        Make::virtual_card(serial, virtual_card::Profile::Series9),
        Entropy::Seed(seed),
    )
    .unwrap();
}

fn firmware_card(flash: &Path) -> FirmwareCard {
    let mut card = FirmwareCard::new(Firmware::new(firmware_elf(), flash.to_path_buf()));
    card.boot().unwrap();
    card
}

/// Commands whose answers depend on nothing random: SELECT, discovery,
/// CHUID, serial, version, a wrong PIN, metadata, an unknown object, a
/// malformed and an unknown command, and a chained PUT DATA without the
/// management key.
const SCRIPT: &[&[u8]] = &[
    &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08],
    &[0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x00],
    &[
        0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02, 0x00,
    ],
    &[0x00, 0xF8, 0x00, 0x00],
    &[0x00, 0xFD, 0x00, 0x00],
    &[
        0x00, 0x20, 0x00, 0x80, 0x08, b'9', b'9', b'9', b'9', b'9', b'9', 0xFF, 0xFF,
    ],
    &[0x00, 0x20, 0x00, 0x80],
    &[0x00, 0xF7, 0x00, 0x80],
    &[
        0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x0D, 0x00,
    ],
    &[0x00, 0x20, 0x00],
    &[0x00, 0x6A, 0x00, 0x00],
    &[0x10, 0xDB, 0x3F, 0xFF, 0x02, 0x5C, 0x03],
    &[0x00, 0xDB, 0x3F, 0xFF, 0x03, 0x5F, 0xC1, 0x05],
];

#[test]
fn the_firmware_answers_as_the_host_card_does() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("card.s9img");
    series9_image(&image, 900_000_123, 5);
    let flash = dir.path().join("card.flash");
    firmware::to_firmware(&image, &flash).unwrap();

    let (_, mut host) = virtual_card::boot(&image, Entropy::Seed(5), false).unwrap();
    host.power_on();
    let mut fw = firmware_card(&flash);
    for apdu in SCRIPT {
        let expected = Transport::transmit(&mut host, apdu).unwrap();
        let got = fw.transmit(apdu).unwrap();
        assert_eq!(got, expected, "{apdu:02X?}");
    }
    // The wrong PIN counted on both.
    let tries = [0x00, 0x20, 0x00, 0x80];
    assert_eq!(fw.transmit(&tries).unwrap(), [0x63, 0xC2]);
}

#[test]
fn a_card_moves_between_host_and_firmware() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("card.s9img");
    series9_image(&image, 900_000_124, 6);
    // Personalised on the host: a new PIN and an object.
    {
        let (_, mut host) = virtual_card::boot(&image, Entropy::Seed(6), false).unwrap();
        host.power_on();
        let mut c = PivClient::new(host);
        c.select().unwrap();
        c.change(0x80, b"123456", b"482915").unwrap();
        c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM).unwrap();
        c.put_object(0x5FC105, &[0xA5; 700]).unwrap();
    }
    let flash = dir.path().join("card.flash");
    firmware::to_firmware(&image, &flash).unwrap();
    assert_eq!(
        std::fs::metadata(&flash).unwrap().len(),
        virtual_card::image::FIRMWARE_FLASH_LEN
    );

    // Booted as firmware: the same card; it changes there too.
    let mut c = PivClient::new(firmware_card(&flash));
    c.select().unwrap();
    assert_eq!(c.get_object(0x5FC105).unwrap(), Some(vec![0xA5; 700]));
    c.verify_pin(b"482915").unwrap();
    c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM).unwrap();
    c.put_object(0x5FC10A, &[0x3C; 300]).unwrap();
    c.into_inner().halt();

    // And back on the host, through the other conversion.
    let back = dir.path().join("back.s9img");
    firmware::from_firmware(&flash, &back).unwrap();
    let (header, mut host) = virtual_card::boot(&back, Entropy::Seed(7), false).unwrap();
    host.power_on();
    assert_eq!(header.serial, 900_000_124);
    let mut c = PivClient::new(host);
    c.select().unwrap();
    assert_eq!(c.get_object(0x5FC10A).unwrap(), Some(vec![0x3C; 300]));
    assert_eq!(c.tries(0x80).unwrap().0, 3, "the right PIN reset the count");
    // Conversions never overwrite.
    assert!(firmware::from_firmware(&flash, &back).is_err());
    assert!(firmware::to_firmware(&back, &flash).is_err());
}

/// The management key's challenge (GENERAL AUTHENTICATE, witness request)
/// comes from the card's RNG: across boots it must never repeat.
fn witness(card: &mut FirmwareCard) -> Vec<u8> {
    let select = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
    assert!(card.transmit(&select).unwrap().ends_with(&[0x90, 0x00]));
    let rsp = card
        .transmit(&[0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00, 0x00])
        .unwrap();
    assert!(rsp.ends_with(&[0x90, 0x00]), "{rsp:02X?}");
    rsp
}

#[test]
fn no_two_boots_repeat_a_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("card.flash");
    series9_flash(&flash, 900_000_125, 8);
    let mut seen = std::collections::HashSet::new();
    for boot in 0..6 {
        let mut card = firmware_card(&flash);
        // Twice per boot: within a boot the generator moves on as well.
        assert!(seen.insert(witness(&mut card)), "boot {boot}");
        assert!(seen.insert(witness(&mut card)), "boot {boot}");
        card.halt();
    }
    // A copy of the flash taken now boots on from the same ratchet state:
    // the one repeat a ratchet cannot prevent is a flash rolled back.
    let copy = dir.path().join("copy.flash");
    std::fs::copy(&flash, &copy).unwrap();
    std::fs::copy(
        virtual_card::image::key_store_path(&flash),
        virtual_card::image::key_store_path(&copy),
    )
    .unwrap();
    let mut a = firmware_card(&flash);
    let mut b = firmware_card(&copy);
    assert_eq!(witness(&mut a), witness(&mut b), "the documented limit");
}

#[test]
fn a_flash_the_firmware_cannot_run_on_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // QEMU would create a missing file zeroed: the card finds no record.
    let blank = dir.path().join("blank.flash");
    std::fs::File::create(&blank)
        .unwrap()
        .set_len(virtual_card::image::FIRMWARE_FLASH_LEN)
        .unwrap();
    let mut card = FirmwareCard::new(Firmware::new(firmware_elf(), blank));
    let err = card.boot().unwrap_err().to_string();
    assert!(err.contains("no factory record"), "{err}");

    // A factory record from before the seed (version 1): the firmware has
    // no randomness to run on. (`image to-firmware` adds a seed to such
    // images; this flash is written by hand.)
    let flash = dir.path().join("card.flash");
    series9_flash(&flash, 900_000_126, 9);
    let mut header = firmware::flash_header(&flash).unwrap();
    header.seed = None;
    let mut bytes = std::fs::read(&flash).unwrap();
    let record = header.encode();
    bytes[..record.len()].copy_from_slice(&record);
    std::fs::write(&flash, &bytes).unwrap();
    let mut card = FirmwareCard::new(Firmware::new(firmware_elf(), flash));
    let err = card.boot().unwrap_err().to_string();
    assert!(err.contains("without a randomness seed"), "{err}");
}

/// The firmware's flash holds no device key and no seed: they are in its
/// key store, a file of their own that QEMU puts where an MCU's OTP would
/// be. A dump of the flash (what `image from-firmware` reads) opens no
/// sealed record without it.
#[test]
fn the_flash_holds_no_device_key_and_converts_only_with_its_key_store() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("card.flash");
    let header = series9_flash(&flash, 900_000_127, 10);
    let key_store = virtual_card::image::key_store_path(&flash);
    let dumped = std::fs::read(&flash).unwrap();
    let seed = header.seed.unwrap();
    for secret in [&header.device_key[..], &seed[..]] {
        assert!(
            !secret.windows(8).any(|w| dumped.windows(8).any(|d| d == w)),
            "a piece of a secret is in the flash"
        );
    }
    assert_eq!(
        std::fs::metadata(&key_store).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // It boots, reading its key store.
    let mut c = PivClient::new(firmware_card(&flash));
    c.select().unwrap();
    c.into_inner().halt();

    // Without the key store, the flash is no card for the host either.
    let moved = dir.path().join("elsewhere.keys");
    std::fs::rename(&key_store, &moved).unwrap();
    let back = dir.path().join("back.s9img");
    let err = firmware::from_firmware(&flash, &back)
        .unwrap_err()
        .to_string();
    assert!(err.contains("key store"), "{err}");
    assert!(!back.exists());
    let err = virtual_card::boot(&flash, Entropy::Seed(11), false)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("key store"), "{err}");
    // Nor for the firmware.
    let mut card = FirmwareCard::new(Firmware::new(firmware_elf(), flash.clone()));
    let err = card.boot().unwrap_err().to_string();
    assert!(err.contains("no key store"), "{err}");
    // With it, the card converts back, key and all.
    std::fs::rename(&moved, &key_store).unwrap();
    firmware::from_firmware(&flash, &back).unwrap();
    let (back_header, _) = virtual_card::boot(&back, Entropy::Seed(12), false).unwrap();
    assert_eq!(back_header, header);
}

/// What the noisy-line test asks of a card: management-key authentication,
/// objects of 10 to 2,900 bytes written (chained commands) and read back
/// (long responses), two wrong PINs and the retry counter. The answers,
/// which depend on nothing random, in order.
fn writes_and_wrong_pins<T: Transport>(c: &mut PivClient<T>) -> Vec<String> {
    let mut answers = Vec::new();
    c.select().unwrap();
    c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM).unwrap();
    for (n, tag) in [0x5F_C105u32, 0x5F_C10A, 0x5F_C10B, 0x5F_C101, 0x5F_C10D]
        .into_iter()
        .cycle()
        .take(15)
        .enumerate()
    {
        let len = 10 + n * 206;
        let content: Vec<u8> = (0..len).map(|i| (i * 7 + n) as u8).collect();
        c.put_object(tag, &content).unwrap();
        answers.push(format!("{:02X?}", c.get_object(tag).unwrap()));
    }
    for _ in 0..2 {
        answers.push(format!(
            "{:?}",
            c.verify_pin(b"999999").map_err(|e| e.status())
        ));
    }
    answers.push(format!("{:?}", c.tries(0x80).unwrap()));
    answers
}

/// At 1 % of the I/O line's characters damaged, dropped or delayed, T=1
/// recovers every fault: the card answers exactly as the host card does,
/// runs each command exactly once (its reports are numbered, and the
/// reader checks each number), and writes exactly what the host card
/// writes: the same number of store transactions, and the PIN's retry
/// counter down by one per wrong PIN, never by two.
#[test]
fn on_a_noisy_line_every_command_runs_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("card.s9img");
    series9_image(&image, 900_000_128, 13);
    let flash = dir.path().join("card.flash");
    firmware::to_firmware(&image, &flash).unwrap();

    let (_, mut host) = virtual_card::boot(&image, Entropy::Seed(13), false).unwrap();
    host.power_on();
    let mut host = PivClient::new(host);
    let expected = writes_and_wrong_pins(&mut host);
    let host_commits = host.into_inner().store().commits();

    let mut fw = Firmware::new(firmware_elf(), flash);
    fw.line_noise = Some((0.01, 26));
    let mut card = PivClient::new(FirmwareCard::new(fw));
    assert_eq!(writes_and_wrong_pins(&mut card), expected);
    let mut card = card.into_inner();
    let figures = card.figures();
    // The store's commits after each command; the first command (SELECT)
    // writes nothing, and what the card wrote before it (its randomness
    // ratchet, at boot) is not the script's.
    let commits: Vec<u32> = card
        .reports()
        .iter()
        .filter_map(|l| l.strip_prefix("apdu "))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("commits=")?.parse().ok())
        })
        .collect();
    let commits = commits.last().unwrap() - commits.first().unwrap();
    println!(
        "{figures:?}; the card committed {commits} transactions, the host card {host_commits}"
    );
    assert_eq!(figures.ran, figures.sent, "commands run = commands sent");
    assert_eq!(commits, host_commits);
    assert!(figures.faults.corrupted() > 30, "{figures:?}");
    assert!(
        figures.t1.retransmitted + figures.t1.bad > 30,
        "{figures:?}"
    );
}

/// A YubiKey-profile card's ATR offers a speed (TA1 = 13, as a YubiKey's
/// does): the reader asks for it with PPS after every reset, and the card
/// echoes it; a Series 9 card's ATR offers none, and gets no PPS. T=1
/// goes on after it either way.
#[test]
fn the_reader_asks_for_the_speed_the_atr_offers() {
    let dir = tempfile::tempdir().unwrap();
    for (profile, serial, pps) in [
        (
            virtual_card::Profile::YubiKey {
                pin_complexity: false,
            },
            900_000_129,
            2,
        ),
        (virtual_card::Profile::Series9, 900_000_130, 0),
    ] {
        let flash = dir.path().join(format!("{serial}.flash"));
        firmware::init(
            &flash,
            Make::virtual_card(serial, profile),
            Entropy::Seed(14),
        )
        .unwrap();
        let mut card = FirmwareCard::new(Firmware::new(firmware_elf(), flash));
        // Boot (QEMU's power-up), then a reader's cold reset.
        card.boot().unwrap();
        assert!(matches!(card.respond(Frame::PowerOn), Outcome::Silent));
        let mut c = PivClient::new(card);
        c.select().unwrap();
        assert_eq!(c.tries(0x80).unwrap().0, 3);
        assert_eq!(c.into_inner().figures().pps, pps, "{profile:?}");
    }
}

/// The Series 9 build carries P-256 and P-384 alone: SELECT lists only
/// those (after the management-key algorithms), and a request for another
/// algorithm is answered as by a card without it: `6A 80` for the
/// algorithm in a GENERATE template, `6A 86` for it as the P1 of IMPORT or
/// GENERAL AUTHENTICATE. What it has works.
#[test]
fn the_series9_build_has_p256_and_p384_and_refuses_the_rest() {
    use client::{Algorithm, Slot};
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("card.flash");
    series9_flash(&flash, 900_000_131, 15);
    let mut c = PivClient::new(FirmwareCard::new(Firmware::new(series9_elf(), flash)));
    let fci = c
        .raw(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08])
        .unwrap();
    let listed: Vec<u8> = fci
        .windows(3)
        .filter(|w| w[0] == 0x80 && w[1] == 0x01)
        .map(|w| w[2])
        .collect();
    assert_eq!(listed, [0x03, 0x08, 0x0A, 0x0C, 0x11, 0x14]);
    c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM).unwrap();
    for algorithm in [Algorithm::Rsa2048, Algorithm::Ed25519, Algorithm::X25519] {
        let generate = [
            0x00,
            0x47,
            0x00,
            0x9A,
            0x05,
            0xAC,
            0x03,
            0x80,
            0x01,
            algorithm.byte(),
        ];
        assert_eq!(c.raw(&generate).unwrap(), [0x6A, 0x80], "{algorithm:?}");
        let sign = [
            0x00,
            0x87,
            algorithm.byte(),
            0x9A,
            0x04,
            0x7C,
            0x02,
            0x81,
            0x00,
        ];
        assert_eq!(c.raw(&sign).unwrap(), [0x6A, 0x86], "{algorithm:?}");
    }
    let import = [0x00, 0xFE, 0x07, 0x9A, 0x03, 0x01, 0x01, 0x01];
    assert_eq!(c.raw(&import).unwrap(), [0x6A, 0x86]);
    for algorithm in [Algorithm::P256, Algorithm::P384] {
        c.generate_key(Slot::Authentication, algorithm, false)
            .unwrap();
    }
    c.verify_pin(b"123456").unwrap();
    let digest = [0x5A; 48];
    let signature = c
        .private_operation(Slot::Authentication, Algorithm::P384, 0x81, &digest)
        .unwrap();
    assert_eq!(signature[0], 0x30, "a DER ECDSA signature");
}

/// The firmware's P-256 back end (P256-Cortex-M4's assembly) against the
/// host's (RustCrypto's `p256`): the image built with `--features
/// crosscheck` runs `applet::crypto::p256_sweep` at boot (10,000 seeded
/// keys, each with its public point, an RFC 6979 signature its own
/// verifier checks, and an ECDH secret with the key before) and reports
/// the digest of it all; the host runs the same sweep. Equal digests:
/// equal keys, byte-identical signatures (each verified by both back
/// ends), equal shared secrets.
#[test]
fn the_assembly_p256_agrees_with_rustcrypto_on_10000_keys() {
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;
    let elf = build_firmware(Some("crosscheck"), &["--features", "crosscheck"]);
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("card.flash");
    series9_flash(&flash, 900_000_131, 13);
    let mut fw = Firmware::new(elf, flash);
    fw.boot_timeout = std::time::Duration::from_secs(240);
    let mut card = FirmwareCard::new(fw);
    card.boot().unwrap();
    let line = card
        .reports()
        .into_iter()
        .find(|l| l.starts_with("crosscheck "))
        .expect("the crosscheck image reports its sweep before it boots");
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .to_string()
    };
    let seed: u64 = field("seed").parse().unwrap();
    let count: u32 = field("n").parse().unwrap();
    assert_eq!(count, 10_000, "{line}");
    assert_eq!(field("unverified"), "0", "{line}");
    let host = applet::crypto::p256_sweep(&mut ChaCha20Rng::seed_from_u64(seed), count).unwrap();
    assert_eq!(host.unverified, 0);
    assert_eq!(field("digest"), hex::encode(host.digest), "{line}");
    println!(
        "P-256 sweep of {count} keys: equal digests; {} ns on the firmware",
        field("ns")
    );
}
