//! Serving cards to readers, and talking to the server that does:
//! `serve`, `eject`, `insert`, `readers`, `scenario`.

use std::path::PathBuf;

use virtual_reader::control::Request;
use virtual_reader::server::{self, TraceTo};

use crate::images::{entropy, random_serial};
use crate::{Done, paths};

/// Serve cards in vpcd readers: the first image in `Virtual PCD 00 00`,
/// the second in `00 01`: card n listens on 127.0.0.1 port 29963 + n,
/// where reader n of `s9card pcscd`'s configuration dials it (more than
/// two need `s9card pcscd --readers N`). With no image, the default
/// card in the data directory (created on first use).
#[derive(clap::Args)]
pub struct Serve {
    /// A card image; repeat for more readers.
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// Where the first card listens for vpcd (the next card at port + 1);
    /// loopback only.
    #[arg(long, default_value = "127.0.0.1:29963")]
    vpcd: String,
    /// `-` for decoded lines on standard output; a file for raw lines
    /// (secrets redacted) that `s9card trace decode` reads.
    #[arg(long)]
    trace: Option<String>,
    /// The control socket that `eject` and `insert` talk to.
    #[arg(long)]
    control: Option<PathBuf>,
    /// Do not re-arm TCP_QUICKACK (only to measure what it buys).
    #[arg(long, hide = true)]
    no_quickack: bool,
    /// Do not fdatasync each flash operation (kill -9 still cannot tear
    /// more than one operation; a host crash could).
    #[arg(long)]
    no_fsync: bool,
    /// Seed the cards' RNG (reproducible test runs only).
    #[arg(long, hide = true)]
    seed: Option<u64>,
    /// Answer every APDU with 90 00 without the card (the transport
    /// floor, for benchmarks).
    #[arg(long, hide = true)]
    null_card: bool,
    /// Run the card as Cortex-M4 firmware under QEMU
    /// (`qemu-system-arm`): this ELF, built in `firmware/`. Each
    /// `--image` is then a firmware flash file (`s9card image
    /// to-firmware` makes one from a card image).
    #[arg(long)]
    firmware: Option<PathBuf>,
    /// Count instructions deterministically (`-icount shift=0`):
    /// slower, for the firmware benchmarks.
    #[arg(long, hide = true, requires = "firmware")]
    icount: bool,
    /// Damage, drop and delay this share of the characters on the
    /// firmware card's I/O line (0.01: one in a hundred), on a schedule
    /// from `--seed` (random, and logged, without it): T=1 must recover
    /// every fault and run every command exactly once.
    #[arg(long, value_name = "RATE", requires = "firmware", value_parser = parse_rate)]
    line_noise: Option<f64>,
    /// Answer as slowly as a real card: a built-in profile (yubikey5,
    /// nitrokey3, javacard, none) or a profile file (TOML; see the
    /// simulator README).
    #[arg(long, value_name = "PROFILE")]
    latency: Option<String>,
    /// Seed of the latency draws (reader n uses seed + n): the same
    /// seed waits the same every run.
    #[arg(long, default_value_t = 0)]
    latency_seed: u64,
    /// Stage removals and faults from a scenario file (TOML; see the
    /// simulator README).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// The interface the cards are in: `contact`, or `contactless` (the
    /// ATR a reader makes of a contactless card; PIV's contactless rules:
    /// secure messaging and the pairing code open the rest). The
    /// firmware card is a contact card.
    #[arg(long, value_enum, default_value = "contact")]
    interface: CardInterface,
}

/// `--interface`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CardInterface {
    /// ISO/IEC 7816 contacts.
    Contact,
    /// ISO/IEC 14443, as an NFC reader presents it.
    Contactless,
}

impl CardInterface {
    /// The card OS's name for it.
    pub fn interface(self) -> server::Interface {
        match self {
            CardInterface::Contact => server::Interface::Contact,
            CardInterface::Contactless => server::Interface::Contactless,
        }
    }
}

/// Load a scenario file (removals and faults) into the running server;
/// its counts and clocks start now.
#[derive(clap::Args)]
pub struct Scenario {
    /// The scenario file.
    file: PathBuf,
    #[arg(long)]
    control: Option<PathBuf>,
}

/// Remove the card from a reader of the running server.
#[derive(clap::Args)]
pub struct Eject {
    #[arg(long, default_value_t = 0)]
    reader: usize,
    #[arg(long)]
    control: Option<PathBuf>,
}

/// Put the card back into a reader of the running server.
#[derive(clap::Args)]
pub struct Insert {
    #[arg(long, default_value_t = 0)]
    reader: usize,
    #[arg(long)]
    control: Option<PathBuf>,
}

/// The running server's readers: card inserted or ejected, vpcd
/// connected, and a firmware card's QEMU process.
#[derive(clap::Args)]
pub struct Readers {
    #[arg(long)]
    control: Option<PathBuf>,
}

pub fn serve(args: Serve) -> Done {
    let latency = args
        .latency
        .map(|p| virtual_reader::latency::Profile::load(&p))
        .transpose()?;
    let scenario = args
        .scenario
        .map(|f| virtual_reader::scenario::load(&f))
        .transpose()?
        .unwrap_or_default();
    let images = if args.images.is_empty() {
        vec![default_card(args.firmware.is_some(), args.seed)?]
    } else {
        args.images
    };
    let trace = args.trace.map(|t| {
        if t == "-" {
            TraceTo::Stdout
        } else {
            TraceTo::File(t.into())
        }
    });
    server::serve(server::Config {
        images,
        vpcd: server::loopback(&args.vpcd)?,
        trace,
        control: paths::control(args.control),
        quickack: !args.no_quickack,
        durable: !args.no_fsync,
        entropy: entropy(args.seed),
        null_card: args.null_card,
        firmware: args.firmware.map(|elf| server::FirmwareOptions {
            elf,
            icount: args.icount,
            line_noise: args.line_noise.map(|rate| {
                let seed = args.seed.unwrap_or_else(rand_seed);
                tracing::info!(rate, seed, "line noise on the firmware cards' I/O");
                (rate, seed)
            }),
        }),
        latency,
        latency_seed: args.latency_seed,
        scenario,
        interface: args.interface.interface(),
    })?;
    Ok(())
}

/// The default card in the data directory, made on first use: a card
/// image, or for the firmware a flash file.
fn default_card(firmware: bool, seed: Option<u64>) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let name = if firmware {
        "default.flash"
    } else {
        "default.s9img"
    };
    let path = paths::data_dir().join(name);
    if !path.exists() {
        private_files::dir_all(&paths::data_dir())?;
        let serial = 900_000_000 + (random_serial()? % 100_000_000);
        let make = virtual_card::Make::virtual_card(serial, applet::Profile::Series9);
        if firmware {
            virtual_card::firmware::init(&path, make, entropy(seed))?;
        } else {
            virtual_card::init(&path, make, entropy(seed))?;
        }
        tracing::info!(image = %path.display(), "created the default card");
    }
    Ok(path)
}

pub fn scenario(args: Scenario) -> Done {
    // Read here, with this user's rights, and sent as text: the server
    // never opens a file a client names.
    let text = std::fs::read(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let text =
        String::from_utf8(text).map_err(|_| virtual_reader::scenario::ScenarioError::In {
            path: args.file.clone(),
            source: Box::new(virtual_reader::scenario::ScenarioError::NotText),
        })?;
    finish(args.control, Request::Scenario { text })
}

pub fn eject(args: Eject) -> Done {
    finish(
        args.control,
        Request::Eject {
            reader: args.reader,
        },
    )
}

pub fn insert(args: Insert) -> Done {
    finish(
        args.control,
        Request::Insert {
            reader: args.reader,
        },
    )
}

pub fn readers(args: Readers) -> Done {
    finish(args.control, Request::Status {})
}

/// Sends `request` to the server at `control` and prints its answer; its
/// refusal is the command's error.
fn finish(control: Option<PathBuf>, request: Request) -> Done {
    let answer = server::control_send(&paths::control(control), &request)?;
    println!("{answer}");
    Ok(())
}

/// A `--line-noise` rate: a share of characters, from 0 to 1.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text:?}: a share of characters from 0 to 1")),
    }
}

/// A seed for a schedule nobody fixed.
fn rand_seed() -> u64 {
    let mut seed = [0u8; 8];
    let _ = getrandom::fill(&mut seed);
    u64::from_le_bytes(seed)
}
