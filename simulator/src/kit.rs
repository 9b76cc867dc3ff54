//! Readers and cards for a CI job: `pcscd`, `up`, `down`.

use std::path::PathBuf;

use virtual_reader::readers::{self, Layout, MAX_READERS, ReadersError, ensure_layout};
use virtual_reader::up::{self as kit, CardProfile};

use crate::{Done, paths};

/// Bring cards up for a CI job or a test session, and return: checks
/// prerequisites, starts pcscd with the vpcd readers if none runs,
/// serves fresh virtual cards in the background, waits until PC/SC
/// sees them, and prints readers and serials. `s9card down` stops
/// exactly what it started.
#[derive(clap::Args)]
pub struct Up {
    /// How many cards, one reader each (1 to 14; the YubiKey profile
    /// has one reader).
    #[arg(long, default_value_t = 1)]
    cards: usize,
    /// The card.
    #[arg(long, value_enum, default_value = "series9")]
    profile: CardProfile,
    /// With the YubiKey profile: refuse trivial new PINs and PUKs
    /// (`69 85`), as a YubiKey with PIN complexity does.
    #[arg(long)]
    pin_complexity: bool,
    /// A latency profile: yubikey5, nitrokey3, javacard, none, or a file.
    #[arg(long, value_name = "PROFILE")]
    latency: Option<String>,
    /// Serve the cards as firmware under QEMU (this ELF).
    #[arg(long)]
    firmware: Option<PathBuf>,
    /// Seed the cards' keys and the latency draws (reproducible runs).
    #[arg(long)]
    seed: Option<u64>,
    /// Where the cards, logs and state go (default: `up` in the data
    /// directory).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Print what is up as JSON (readers, serials, pids, paths).
    #[arg(long)]
    json: bool,
    /// `contactless`: serve the cards as contactless cards (see `s9card
    /// serve --interface`), to test a PIV secure messaging client.
    #[arg(long, value_enum, default_value = "contact")]
    interface: crate::serving::CardInterface,
    /// Give the cards PIV secure messaging: cs2 (P-256), cs7 (P-384) or
    /// none. Contactless cards get cs2 unless told otherwise.
    #[arg(long, value_name = "SUITE", value_parser = ["cs2", "cs7", "none"])]
    secure_messaging: Option<String>,
    /// With secure messaging, the cards' pairing code (8 digits), or
    /// `none` for a card whose session alone opens the virtual contact
    /// interface.
    #[arg(long, value_name = "CODE", default_value = "12345678")]
    pairing_code: String,
}

/// Stop what `s9card up` started (its server, and pcscd if it started
/// one), and remove its cards; logs and the trace stay.
#[derive(clap::Args)]
pub struct Down {
    /// The state directory `up` used.
    #[arg(long)]
    state: Option<PathBuf>,
}

/// Make sure pcscd runs with vpcd readers for N cards: if no pcscd
/// runs, write a reader configuration of s9card's own (under
/// /run/s9card/pcscd, as root or through sudo; the system's is never
/// changed) and start pcscd with it; if the pcscd that runs is one
/// s9card started with fewer readers, restart it with both sets
/// (served cards come back by themselves). Prints the readers.
#[derive(clap::Args)]
pub struct Pcscd {
    /// How many `Virtual PCD` readers (1 to 14): reader n dials
    /// 127.0.0.1 port 29963 + n, where `s9card serve` listens.
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Also the reader named like a YubiKey (reader 14, port 29977),
    /// for cards of the YubiKey profile.
    #[arg(long)]
    yubikey: bool,
}

pub fn up(args: Up) -> Done {
    let options = kit::UpOptions {
        cards: args.cards,
        profile: args.profile,
        pin_complexity: args.pin_complexity,
        latency: args.latency,
        firmware: args.firmware,
        seed: args.seed,
        state: args.state.unwrap_or_else(|| paths::data_dir().join("up")),
        contactless: args.interface == crate::serving::CardInterface::Contactless,
        secure_messaging: match args.secure_messaging.as_deref() {
            Some("cs2") => Some(client::Suite::Cs2),
            Some("cs7") => Some(client::Suite::Cs7),
            Some(_) => None,
            None if args.interface == crate::serving::CardInterface::Contactless => {
                Some(client::Suite::Cs2)
            }
            None => None,
        },
        pairing_code: Some(args.pairing_code).filter(|c| c != "none"),
    };
    let up = kit::up(&options, &std::env::current_exe()?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&up)?);
        return Ok(());
    }
    let pcscd = match up.pcscd_pid {
        Some(pid) => format!("pcscd started, pid {pid}"),
        None => "pcscd was running".into(),
    };
    println!(
        "s9card is up: {} card{} (server pid {}; {pcscd})",
        up.cards.len(),
        if up.cards.len() == 1 { "" } else { "s" },
        up.server_pid
    );
    for card in &up.cards {
        println!("  {:<22} serial {}", card.reader, card.serial);
    }
    if up.interface == "contactless" {
        println!("In a contactless reader: PIV's contactless rules apply.");
    }
    if let Some(suite) = &up.secure_messaging {
        match &up.pairing_code {
            Some(code) => println!("Secure messaging {suite}; pairing code {code}."),
            None => println!("Secure messaging {suite}; no pairing code."),
        }
    }
    if up.cards.len() > 4 {
        println!(
            "OpenSC shows four cards unless: export OPENSC_CONF={}",
            up.opensc_conf.display()
        );
    }
    if args.profile == CardProfile::Yubikey {
        second_yubikey_reader_note();
    }
    println!("Log: {}; stop with: s9card down", up.log.display());
    Ok(())
}

pub fn down(args: Down) -> Done {
    let dir = args.state.unwrap_or_else(|| paths::data_dir().join("up"));
    let down = kit::down(&dir)?;
    println!(
        "s9card is down: {}{}",
        down.server
            .map_or("the server had already stopped".to_string(), |p| format!(
                "server {p} stopped"
            )),
        down.pcscd
            .map_or(String::new(), |p| format!(", pcscd {p} stopped"))
    );
    Ok(())
}

pub fn pcscd(args: Pcscd) -> Done {
    if args.readers == 0 || args.readers > MAX_READERS {
        return Err(ReadersError::Count(args.readers).into());
    }
    let layout = Layout {
        readers: args.readers,
        yubikey: args.yubikey,
    };
    let state = ensure_layout(layout, layout.reader_numbers(), true)?;
    if let readers::Pcscd::Started(pid) = state {
        println!("pcscd started (pid {pid}) with {}", readers::CONF_DIR);
    }
    for n in layout.reader_numbers() {
        println!("{}", readers::reader_name(n));
    }
    if args.yubikey {
        second_yubikey_reader_note();
    }
    Ok(())
}

/// Where vpcd's driver could not be made single-slot, tools that look for
/// YubiKeys see a second, empty one.
fn second_yubikey_reader_note() {
    if readers::second_yubikey_reader() {
        println!(
            "note: pcscd also lists an empty {} 00 01 (this vpcd driver could not be made single-slot): \
             name the card to ykman with --device SERIAL",
            readers::YUBIKEY_NAME
        );
    }
}
