//! `s9card`: virtual NHS Series 9-style staff smartcards for PC/SC.

use std::path::PathBuf;
use std::process::ExitCode;
use zeroize::Zeroizing;

use clap::{Parser, Subcommand};
use simulator::card::{self, Entropy};
use simulator::client::{Pcsc, PivClient, Transport};
use simulator::cms::ca::Role;
use simulator::cms::flows::{self, Cms, Request};
use simulator::cms::time;
use simulator::server::{self, TraceTo};
use simulator::trace::Record;

#[derive(Parser)]
#[command(
    name = "s9card",
    version,
    about = "Virtual Series 9-style staff smartcards for PC/SC (vsmartcard vpcd)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Write a firmware flash file (16 MiB, for `serve --firmware`) holding
    /// the card in a card image, and its key store beside it (`FLASH.keys`:
    /// the device key and seed, which the flash file does not hold).
    ToFirmware {
        /// The card image.
        image: PathBuf,
        /// The flash file to create.
        flash: PathBuf,
    },
    /// Write a card image holding the card in a firmware flash file, with
    /// its key store (`FLASH.keys`, where the firmware keeps its device key
    /// and seed; the flash alone opens nothing).
    FromFirmware {
        /// The flash file.
        flash: PathBuf,
        /// The card image to create.
        image: PathBuf,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Serve cards in vpcd readers: the first image in `Virtual PCD 00 00`,
    /// the second in `00 01`: card n listens on 127.0.0.1 port 29963 + n,
    /// where reader n of `s9card pcscd`'s configuration dials it (more than
    /// two need `s9card pcscd --readers N`). With no image, the default
    /// card in the data directory (created on first use).
    Serve {
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
    },
    /// Bring cards up for a CI job or a test session, and return: checks
    /// prerequisites, starts pcscd with the vpcd readers if none runs,
    /// serves fresh virtual cards in the background, waits until PC/SC
    /// sees them, and prints readers and serials. `s9card down` stops
    /// exactly what it started.
    Up {
        /// How many cards, one reader each (1 to 14; the YubiKey profile
        /// has one reader).
        #[arg(long, default_value_t = 1)]
        cards: usize,
        /// The card.
        #[arg(long, value_enum, default_value = "series9")]
        profile: simulator::up::CardProfile,
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
    },
    /// Stop what `s9card up` started (its server, and pcscd if it started
    /// one), and remove its cards; logs and the trace stay.
    Down {
        /// The state directory `up` used.
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Load a scenario file (removals and faults) into the running server;
    /// its counts and clocks start now.
    Scenario {
        /// The scenario file.
        file: PathBuf,
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// Convert between card images and firmware flash files.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Create a factory-fresh card image.
    Init {
        #[arg(long)]
        image: PathBuf,
        /// Serial, `09` and eight digits; drawn at random if absent.
        #[arg(long)]
        serial: Option<String>,
        /// Mark the card as virtual (ATR and CARD INFO say so).
        #[arg(long = "virtual")]
        is_virtual: bool,
        /// The card it presents itself as: series9 (the NHS staff card) or
        /// yubikey (a YubiKey 5.7 to tools; see the applet README for what
        /// differs).
        #[arg(long, value_enum, default_value = "series9")]
        profile: simulator::up::CardProfile,
        /// With the YubiKey profile: refuse trivial new PINs and PUKs
        /// (`69 85`), as a YubiKey with PIN complexity does.
        #[arg(long)]
        pin_complexity: bool,
        #[arg(long, hide = true)]
        seed: Option<u64>,
    },
    /// Remove the card from a reader of the running server.
    Eject {
        #[arg(long, default_value_t = 0)]
        reader: usize,
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// The running server's readers: card inserted or ejected, vpcd
    /// connected, and a firmware card's QEMU process.
    Readers {
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// Make sure pcscd runs with vpcd readers for N cards: if no pcscd
    /// runs, write a reader configuration of s9card's own (under
    /// /run/s9card/pcscd, as root or through sudo; the system's is never
    /// changed) and start pcscd with it; if the pcscd that runs is one
    /// s9card started with fewer readers, restart it with both sets
    /// (served cards come back by themselves). Prints the readers.
    Pcscd {
        /// How many `Virtual PCD` readers (1 to 14): reader n dials
        /// 127.0.0.1 port 29963 + n, where `s9card serve` listens.
        #[arg(long, default_value_t = 2)]
        readers: usize,
        /// Also the reader named like a YubiKey (reader 14, port 29977),
        /// for cards of the YubiKey profile.
        #[arg(long)]
        yubikey: bool,
    },
    /// Put the card back into a reader of the running server.
    Insert {
        #[arg(long, default_value_t = 0)]
        reader: usize,
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// Traces.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// The test certificate authority.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
        #[command(flatten)]
        cms: CmsArgs,
    },
    /// Personalise a factory-fresh card for a holder, or (`--bulk`) up to
    /// 300 holders from a CSV file onto new virtual card images.
    Personalize {
        /// A reader (any part of its name).
        #[arg(long, conflicts_with_all = ["image", "bulk"])]
        reader: Option<String>,
        /// A card image, opened directly.
        #[arg(long, conflicts_with = "bulk")]
        image: Option<PathBuf>,
        /// A CSV file with columns uuid,name,email,mobile,role,passcode.
        #[arg(long, requires = "out")]
        bulk: Option<PathBuf>,
        /// Where bulk card images and results.csv go.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The holder's 12-digit user identifier.
        #[arg(long, required_unless_present = "bulk")]
        uuid: Option<String>,
        /// The holder's name.
        #[arg(long, required_unless_present = "bulk")]
        name: Option<String>,
        /// Email address (needed for self-service unlock).
        #[arg(long)]
        email: Option<String>,
        /// Mobile number (needed for self-service unlock).
        #[arg(long)]
        mobile: Option<String>,
        /// The holder is a sponsor.
        #[arg(long)]
        sponsor: bool,
        /// The holder's new passcode. Visible to every user in `ps`: prefer
        /// `--passcode-fd`, `$S9CARD_PASSCODE` or the unechoed prompt.
        #[arg(long)]
        passcode: Option<String>,
        /// Read the passcode from this file descriptor (one line).
        #[arg(long, conflicts_with = "passcode")]
        passcode_fd: Option<u32>,
        /// Give the card this serial (`09` and eight digits) while it is
        /// still factory-fresh; otherwise it keeps its own.
        #[arg(long, conflicts_with = "bulk")]
        serial: Option<String>,
        /// The algorithm of the card's keys: p256, p384 or rsa2048
        /// (generated on the card; RSA-2048 takes seconds, as on a real
        /// card). Renewals keep it.
        #[arg(long, default_value = "p256")]
        algorithm: String,
        #[command(flatten)]
        cms: CmsArgs,
    },
    /// Renew a card's keys and certificates, in the 90 days before they
    /// expire (all or nothing; an interrupted renewal resumes).
    Renew {
        #[command(flatten)]
        card: CardArgs,
        /// The holder's passcode. Visible to every user in `ps`: prefer
        /// `--passcode-fd`, `$S9CARD_PASSCODE` or the unechoed prompt.
        #[arg(long)]
        passcode: Option<String>,
        /// Read the passcode from this file descriptor (one line).
        #[arg(long, conflicts_with = "passcode")]
        passcode_fd: Option<u32>,
        #[command(flatten)]
        cms: CmsArgs,
    },
    /// Unlock a locked card: the sponsor's card in one reader proves the
    /// sponsor, the locked card in another gets the holder's new passcode.
    Unlock {
        /// The sponsor's reader (any part of its name).
        #[arg(
            long,
            conflicts_with = "sponsor_image",
            required_unless_present = "sponsor_image"
        )]
        sponsor_reader: Option<String>,
        /// The sponsor's card image, opened directly.
        #[arg(long)]
        sponsor_image: Option<PathBuf>,
        /// The locked card's reader.
        #[arg(
            long,
            conflicts_with = "card_image",
            required_unless_present = "card_image"
        )]
        card_reader: Option<String>,
        /// The locked card's image, opened directly.
        #[arg(long)]
        card_image: Option<PathBuf>,
        /// The sponsor's passcode. Visible in `ps`: prefer
        /// `--sponsor-passcode-fd`, `$S9CARD_SPONSOR_PASSCODE` or the prompt.
        #[arg(long)]
        sponsor_passcode: Option<String>,
        /// Read the sponsor's passcode from this file descriptor.
        #[arg(long, conflicts_with = "sponsor_passcode")]
        sponsor_passcode_fd: Option<u32>,
        /// The holder's new passcode. Visible in `ps`: prefer
        /// `--new-passcode-fd`, `$S9CARD_NEW_PASSCODE` or the prompt.
        #[arg(long)]
        new_passcode: Option<String>,
        /// Read the new passcode from this file descriptor.
        #[arg(long, conflicts_with = "new_passcode")]
        new_passcode_fd: Option<u32>,
        #[command(flatten)]
        cms: CmsArgs,
    },
    /// Self-service unlock with a security code sent to the holder.
    SelfUnlock {
        #[command(subcommand)]
        step: SelfUnlockStep,
    },
    /// Revoke a card (lost, stolen, or replaced by a new one): unlock,
    /// self-service unlock and renewal refuse it from then on, and so does
    /// sponsor unlock when it is the sponsor's card.
    Revoke {
        /// The card's serial (`09` and eight digits).
        #[arg(long)]
        serial: String,
        /// A new card replaces it (otherwise: lost or stolen).
        #[arg(long)]
        replaced: bool,
        #[command(flatten)]
        cms: CmsArgs,
    },
    /// Show a card's holder, serial, certificate expiry and tries left.
    Status {
        #[command(flatten)]
        card: CardArgs,
        #[command(flatten)]
        cms: CmsArgs,
    },
}

/// Which card: one in a PC/SC reader, or a card image used directly.
#[derive(clap::Args)]
struct CardArgs {
    /// A reader (any part of its name, e.g. "Virtual PCD 00 00").
    #[arg(long, conflicts_with = "image", required_unless_present = "image")]
    reader: Option<String>,
    /// A card image, opened directly (no server may be serving it).
    #[arg(long)]
    image: Option<PathBuf>,
}

/// Where the CMS keeps its state.
#[derive(clap::Args)]
struct CmsArgs {
    /// The CMS database (the CA and master secret live beside it).
    #[arg(long, global = true)]
    db: Option<PathBuf>,
    /// Pretend it is this time (YYYY-MM-DD[THH:MM:SSZ]), for tests. Only
    /// debug builds (the tests') have it: a CMS whose clock the command
    /// line sets would renew out of its window and take expired
    /// certificates for good ones.
    #[cfg(debug_assertions)]
    #[arg(long, global = true, hide = true)]
    now: Option<String>,
}

impl CmsArgs {
    fn db(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| simulator::data_dir().join("cms.db"))
    }

    fn now(&self) -> Result<u64, String> {
        #[cfg(debug_assertions)]
        if let Some(now) = self.now.as_deref() {
            return time::parse(now);
        }
        Ok(time::system_now())
    }
}

#[derive(Subcommand)]
enum SelfUnlockStep {
    /// Send a 6-digit code (valid 15 minutes, once) to the holder's outbox.
    Request {
        #[command(flatten)]
        card: CardArgs,
        /// Where messages go (default: `outbox` beside the database).
        #[arg(long)]
        outbox: Option<PathBuf>,
        #[command(flatten)]
        cms: CmsArgs,
    },
    /// Unlock with the code and a new passcode.
    Complete {
        #[command(flatten)]
        card: CardArgs,
        /// The security code.
        #[arg(long)]
        code: String,
        /// The new passcode. Visible in `ps`: prefer `--new-passcode-fd`,
        /// `$S9CARD_NEW_PASSCODE` or the unechoed prompt.
        #[arg(long)]
        new_passcode: Option<String>,
        /// Read the new passcode from this file descriptor.
        #[arg(long, conflicts_with = "new_passcode")]
        new_passcode_fd: Option<u32>,
        #[command(flatten)]
        cms: CmsArgs,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create the test CA and the master secret beside the database.
    Init,
}

/// The card chosen on the command line: in a reader, or an image opened
/// in this process.
enum AnyCard {
    Reader(Pcsc),
    Image(Box<simulator::card::SimCard>),
}

impl Transport for AnyCard {
    fn transmit(&mut self, apdu: &[u8]) -> simulator::client::Result<Vec<u8>> {
        match self {
            AnyCard::Reader(r) => r.transmit(apdu),
            AnyCard::Image(c) => Transport::transmit(c.as_mut(), apdu),
        }
    }
}

impl CardArgs {
    fn open(&self) -> Result<PivClient<AnyCard>, Box<dyn std::error::Error>> {
        let card = match (&self.reader, &self.image) {
            (Some(r), _) => AnyCard::Reader(Pcsc::connect(r)?),
            (None, Some(path)) => {
                let (_, mut card) = card::boot(path, Entropy::Os, true)?;
                card.power_on();
                AnyCard::Image(Box::new(card))
            }
            (None, None) => return Err("give --reader or --image".into()),
        };
        Ok(PivClient::new(card))
    }
}

/// Reads a passcode from the flag, or asks without echo.
/// Where a passcode comes from, in order: the flag (with a warning: the
/// command line is visible to every user of the machine), a file
/// descriptor (as gpg's `--passphrase-fd`), an environment variable, or an
/// unechoed prompt.
struct PasscodeFrom<'a> {
    flag: Option<String>,
    flag_name: &'a str,
    fd: Option<u32>,
    env: &'a str,
    prompt: &'a str,
}

fn passcode(from: PasscodeFrom<'_>) -> Result<Zeroizing<String>, Box<dyn std::error::Error>> {
    if let Some(p) = from.flag {
        eprintln!(
            "warning: {} on the command line is visible to every user of this machine (ps); use {}-fd, ${} or the prompt",
            from.flag_name, from.flag_name, from.env
        );
        return Ok(Zeroizing::new(p));
    }
    if let Some(fd) = from.fd {
        // /dev/fd/N opens the inherited descriptor without unsafe code.
        let path = format!("/dev/fd/{fd}");
        let text = Zeroizing::new(
            std::fs::read_to_string(&path)
                .map_err(|e| format!("{}-fd {fd}: {e}", from.flag_name))?,
        );
        let line = text.lines().next().unwrap_or_default();
        return Ok(Zeroizing::new(line.to_string()));
    }
    if let Ok(p) = std::env::var(from.env) {
        return Ok(Zeroizing::new(p));
    }
    Ok(Zeroizing::new(rpassword::prompt_password(from.prompt)?))
}

#[derive(Subcommand)]
enum TraceCommand {
    /// Decode a raw trace file written by `serve --trace FILE`.
    Decode { file: PathBuf },
}

fn control_path(p: Option<PathBuf>) -> PathBuf {
    p.unwrap_or_else(|| simulator::data_dir().join("s9card.sock"))
}

fn parse_serial(text: &str) -> Result<u32, String> {
    let ok = text.len() == 10 && text.starts_with("09") && text.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return Err(format!(
            "serial {text:?}: Series 9 serials are 09 followed by eight digits"
        ));
    }
    text.parse().map_err(|e| format!("serial {text:?}: {e}"))
}

fn entropy(seed: Option<u64>) -> Entropy {
    seed.map_or(Entropy::Os, Entropy::Seed)
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Serve {
            images,
            vpcd,
            trace,
            control,
            no_quickack,
            no_fsync,
            seed,
            null_card,
            firmware,
            icount,
            latency,
            latency_seed,
            scenario,
        } => {
            let latency = latency
                .map(|p| simulator::latency::Profile::load(&p))
                .transpose()?;
            let scenario = scenario
                .map(|f| simulator::scenario::load(&f))
                .transpose()?
                .unwrap_or_default();
            let images = if images.is_empty() {
                let name = if firmware.is_some() {
                    "default.flash"
                } else {
                    "default.s9img"
                };
                let path = simulator::data_dir().join(name);
                if !path.exists() {
                    simulator::private::dir_all(&simulator::data_dir())?;
                    let serial = 900_000_000 + (rand_serial()? % 100_000_000);
                    let make = card::Make::virtual_card(serial, piv::Profile::Series9);
                    if firmware.is_some() {
                        simulator::firmware::init(&path, make, entropy(seed))?;
                    } else {
                        card::init(&path, make, entropy(seed))?;
                    }
                    tracing::info!(image = %path.display(), "created the default card");
                }
                vec![path]
            } else {
                images
            };
            let trace = trace.map(|t| {
                if t == "-" {
                    TraceTo::Stdout
                } else {
                    TraceTo::File(t.into())
                }
            });
            server::serve(server::Config {
                images,
                vpcd: server::loopback(&vpcd)?,
                trace,
                control: control_path(control),
                quickack: !no_quickack,
                durable: !no_fsync,
                entropy: entropy(seed),
                null_card,
                firmware: firmware.map(|elf| server::FirmwareOptions { elf, icount }),
                latency,
                latency_seed,
                scenario,
            })
        }
        Command::Image { command } => {
            let (header, made) = match command {
                ImageCommand::ToFirmware { image, flash } => {
                    (simulator::firmware::to_firmware(&image, &flash)?, flash)
                }
                ImageCommand::FromFirmware { flash, image } => {
                    (simulator::firmware::from_firmware(&flash, &image)?, image)
                }
            };
            println!(
                "{}: serial {:010}{}",
                made.display(),
                header.serial,
                if header.is_virtual { ", virtual" } else { "" }
            );
            Ok(())
        }
        Command::Init {
            image,
            serial,
            is_virtual,
            profile,
            pin_complexity,
            seed,
        } => {
            let serial = match serial {
                Some(s) => parse_serial(&s)?,
                None => 900_000_000 + (rand_serial()? % 100_000_000),
            };
            let profile = profile
                .profile(pin_complexity)
                .ok_or(simulator::up::COMPLEXITY_NEEDS_YUBIKEY)?;
            let make = card::Make {
                serial,
                is_virtual,
                profile,
            };
            card::init(&image, make, entropy(seed))?;
            println!(
                "{}: serial {serial:010}{}{}",
                image.display(),
                if is_virtual { ", virtual" } else { "" },
                match profile {
                    piv::Profile::Series9 => "",
                    piv::Profile::YubiKey {
                        pin_complexity: false,
                    } => ", YubiKey profile",
                    piv::Profile::YubiKey {
                        pin_complexity: true,
                    } => {
                        ", YubiKey profile with PIN complexity"
                    }
                }
            );
            Ok(())
        }
        Command::Eject { reader, control } => {
            let answer = server::control_send(&control_path(control), &format!("eject {reader}"))?;
            finish(answer)
        }
        Command::Up {
            cards,
            profile,
            pin_complexity,
            latency,
            firmware,
            seed,
            state,
            json,
        } => {
            let options = simulator::up::UpOptions {
                cards,
                profile,
                pin_complexity,
                latency,
                firmware,
                seed,
                state: state.unwrap_or_else(|| simulator::data_dir().join("up")),
            };
            let up = simulator::up::up(&options, &std::env::current_exe()?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&up)?);
            } else {
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
                if up.cards.len() > 4 {
                    println!(
                        "OpenSC shows four cards unless: export OPENSC_CONF={}",
                        up.opensc_conf.display()
                    );
                }
                if profile == simulator::up::CardProfile::Yubikey {
                    second_yubikey_reader_note();
                }
                println!("Log: {}; stop with: s9card down", up.log.display());
            }
            Ok(())
        }
        Command::Down { state } => {
            let dir = state.unwrap_or_else(|| simulator::data_dir().join("up"));
            let down = simulator::up::down(&dir)?;
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
        Command::Scenario { file, control } => {
            // Read here, with this user's rights, and sent as text.
            let text = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let answer = server::send_scenario(&control_path(control), &text)?;
            finish(answer)
        }
        Command::Readers { control } => {
            println!(
                "{}",
                server::control_send(&control_path(control), "status")?
            );
            Ok(())
        }
        Command::Pcscd { readers, yubikey } => {
            use simulator::readers::{Layout, MAX_READERS, ReadersError, ensure_layout};
            if readers == 0 || readers > MAX_READERS {
                return Err(ReadersError::Count(readers).into());
            }
            let layout = Layout { readers, yubikey };
            let state = ensure_layout(layout, layout.reader_numbers(), true)?;
            if let simulator::readers::Pcscd::Started(pid) = state {
                println!(
                    "pcscd started (pid {pid}) with {}",
                    simulator::readers::CONF_DIR
                );
            }
            for n in layout.reader_numbers() {
                println!("{}", simulator::readers::reader_name(n));
            }
            if yubikey {
                second_yubikey_reader_note();
            }
            Ok(())
        }
        Command::Insert { reader, control } => {
            let answer = server::control_send(&control_path(control), &format!("insert {reader}"))?;
            finish(answer)
        }
        Command::Ca {
            command: CaCommand::Init,
            cms,
        } => {
            let ca = Cms::init_ca(&cms.db(), cms.now()?)?;
            println!("test CA created: {}", ca.root_path().display());
            Ok(())
        }
        Command::Personalize {
            bulk: Some(file),
            out,
            algorithm,
            cms,
            ..
        } => {
            let algorithm = simulator::cms::keys::parse_algorithm(&algorithm)?;
            let now = cms.now()?;
            let mut state = Cms::open(&cms.db())?;
            let rows = simulator::cms::bulk::read(&file)?;
            let out = out.ok_or("--bulk needs --out")?;
            let bar = indicatif::ProgressBar::new(rows.len() as u64);
            let summary =
                simulator::cms::bulk::personalize(&mut state, &rows, &out, algorithm, now, |n| {
                    bar.set_position(n as u64)
                })?;
            bar.finish_and_clear();
            println!(
                "{} of {} rows personalised, {} refused, in {:.1} s; results in {}",
                summary.ok,
                rows.len(),
                summary.failed,
                summary.took.as_secs_f64(),
                summary.results.display()
            );
            if summary.failed > 0 {
                return Err(format!(
                    "{} rows refused: see {}",
                    summary.failed,
                    summary.results.display()
                )
                .into());
            }
            Ok(())
        }
        Command::Personalize {
            reader,
            image,
            uuid,
            name,
            email,
            mobile,
            sponsor,
            passcode: flag,
            passcode_fd,
            serial,
            algorithm,
            cms,
            ..
        } => {
            let card = CardArgs { reader, image };
            let algorithm = simulator::cms::keys::parse_algorithm(&algorithm)?;
            let uuid = uuid.ok_or("--uuid is required")?;
            let name = name.ok_or("--name is required")?;
            let now = cms.now()?;
            let mut state = Cms::open(&cms.db())?;
            let passcode = passcode(PasscodeFrom {
                flag,
                flag_name: "--passcode",
                fd: passcode_fd,
                env: "S9CARD_PASSCODE",
                prompt: "New passcode (6-8 digits): ",
            })?;
            let request = Request {
                uuid,
                name,
                email,
                mobile,
                role: if sponsor { Role::Sponsor } else { Role::Holder },
                passcode,
                serial: serial.as_deref().map(parse_serial).transpose()?,
                algorithm,
            };
            flows::validate(&request)?;
            let mut client = card.open()?;
            let done = flows::personalize(&mut state, &mut client, &request, now)?;
            println!(
                "card {:010} personalised for {} ({}); certificates expire {}",
                done.serial,
                request.uuid,
                if done.is_virtual {
                    "virtual"
                } else {
                    "physical"
                },
                time::date(done.expiry)
            );
            Ok(())
        }
        Command::Renew {
            card,
            passcode: flag,
            passcode_fd,
            cms,
        } => {
            let now = cms.now()?;
            let mut state = Cms::open(&cms.db())?;
            let mut client = card.open()?;
            let passcode = passcode(PasscodeFrom {
                flag,
                flag_name: "--passcode",
                fd: passcode_fd,
                env: "S9CARD_PASSCODE",
                prompt: "Passcode: ",
            })?;
            let done = flows::renew(&mut state, &mut client, passcode.as_bytes(), now)?;
            let how = if done.reconciled {
                "was renewed already; records updated"
            } else {
                "renewed"
            };
            println!(
                "card {:010} {how}: certificates expire {}",
                done.serial,
                time::date(done.expiry)
            );
            Ok(())
        }
        Command::Unlock {
            sponsor_reader,
            sponsor_image,
            card_reader,
            card_image,
            sponsor_passcode,
            sponsor_passcode_fd,
            new_passcode,
            new_passcode_fd,
            cms,
        } => {
            let now = cms.now()?;
            let mut state = Cms::open(&cms.db())?;
            let mut sponsor = CardArgs {
                reader: sponsor_reader,
                image: sponsor_image,
            }
            .open()?;
            let mut card = CardArgs {
                reader: card_reader,
                image: card_image,
            }
            .open()?;
            let sponsor_passcode = passcode(PasscodeFrom {
                flag: sponsor_passcode,
                flag_name: "--sponsor-passcode",
                fd: sponsor_passcode_fd,
                env: "S9CARD_SPONSOR_PASSCODE",
                prompt: "Sponsor's passcode: ",
            })?;
            let new_passcode = passcode(PasscodeFrom {
                flag: new_passcode,
                flag_name: "--new-passcode",
                fd: new_passcode_fd,
                env: "S9CARD_NEW_PASSCODE",
                prompt: "Holder's new passcode (6-8 digits): ",
            })?;
            let serial = flows::sponsor_unlock(
                &mut state,
                &mut sponsor,
                sponsor_passcode.as_bytes(),
                &mut card,
                &new_passcode,
                now,
            )?;
            println!("card {serial:010} unlocked with the holder's new passcode");
            Ok(())
        }
        Command::SelfUnlock {
            step: SelfUnlockStep::Request { card, outbox, cms },
        } => {
            let now = cms.now()?;
            let db = cms.db();
            let outbox =
                outbox.unwrap_or_else(|| db.parent().map(|d| d.join("outbox")).unwrap_or_default());
            let mut state = Cms::open(&db)?;
            let mut client = card.open()?;
            let path = flows::self_unlock_request(&mut state, &mut client, &outbox, now)?;
            println!("security code sent: {}", path.display());
            Ok(())
        }
        Command::SelfUnlock {
            step:
                SelfUnlockStep::Complete {
                    card,
                    code,
                    new_passcode,
                    new_passcode_fd,
                    cms,
                },
        } => {
            let now = cms.now()?;
            let mut state = Cms::open(&cms.db())?;
            let mut client = card.open()?;
            let new_passcode = passcode(PasscodeFrom {
                flag: new_passcode,
                flag_name: "--new-passcode",
                fd: new_passcode_fd,
                env: "S9CARD_NEW_PASSCODE",
                prompt: "New passcode (6-8 digits): ",
            })?;
            let serial =
                flows::self_unlock_complete(&mut state, &mut client, &code, &new_passcode, now)?;
            println!("card {serial:010} unlocked");
            Ok(())
        }
        Command::Revoke {
            serial,
            replaced,
            cms,
        } => {
            let serial = parse_serial(&serial)?;
            let mut state = Cms::open(&cms.db())?;
            flows::revoke(&mut state, serial, replaced, cms.now()?)?;
            println!(
                "card {serial:010} {}",
                if replaced { "replaced" } else { "revoked" }
            );
            Ok(())
        }
        Command::Status { card, cms } => {
            let now = cms.now()?;
            let ca =
                simulator::cms::ca::TestCa::load(&simulator::cms::flows::paths(&cms.db()).0).ok();
            let mut client = card.open()?;
            let status = flows::status(&mut client, ca.as_ref())?;
            print!("{}", status.render(now));
            Ok(())
        }
        Command::Trace {
            command: TraceCommand::Decode { file },
        } => {
            let text = std::fs::read_to_string(&file)?;
            for (n, line) in text.lines().enumerate() {
                match Record::parse(line) {
                    Some(r) => println!("{}", r.decoded()),
                    None if line.trim().is_empty() => {}
                    None => {
                        return Err(
                            format!("{}:{}: not a raw trace line", file.display(), n + 1).into(),
                        );
                    }
                }
            }
            Ok(())
        }
    }
}

fn finish(answer: String) -> Result<(), Box<dyn std::error::Error>> {
    if answer.starts_with("error") {
        return Err(answer.into());
    }
    println!("{answer}");
    Ok(())
}

/// Where vpcd's driver could not be made single-slot, tools that look for
/// YubiKeys see a second, empty one.
fn second_yubikey_reader_note() {
    if simulator::readers::second_yubikey_reader() {
        println!(
            "note: pcscd also lists an empty {} 00 01 (this vpcd driver could not be made single-slot): \
             name the card to ykman with --device SERIAL",
            simulator::readers::YUBIKEY_NAME
        );
    }
}

fn rand_serial() -> Result<u32, Box<dyn std::error::Error>> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|e| format!("no OS randomness: {e}"))?;
    Ok(u32::from_le_bytes(b))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("S9CARD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s9card: {e}");
            ExitCode::FAILURE
        }
    }
}
