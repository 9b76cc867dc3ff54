//! `s9card`: virtual NHS Series 9-style staff smartcards for PC/SC.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use simulator::card::{self, Entropy};
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
enum Command {
    /// Serve cards in vpcd readers: the first image in `Virtual PCD 00 00`,
    /// the second in `00 01`. With no image, the default card in the data
    /// directory (created on first use).
    Serve {
        /// A card image; repeat for more readers.
        #[arg(long = "image")]
        images: Vec<PathBuf>,
        /// vpcd address of the first reader (the next reader is port + 1).
        #[arg(long, default_value = "127.0.0.1:35963")]
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
        } => {
            let images = if images.is_empty() {
                let path = simulator::data_dir().join("default.s9img");
                if !path.exists() {
                    std::fs::create_dir_all(simulator::data_dir())?;
                    let serial = 900_000_000 + (rand_serial()? % 100_000_000);
                    card::init(&path, serial, true, entropy(seed))?;
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
                vpcd: server::resolve(&vpcd)?,
                trace,
                control: control_path(control),
                quickack: !no_quickack,
                durable: !no_fsync,
                entropy: entropy(seed),
                null_card,
            })
        }
        Command::Init {
            image,
            serial,
            is_virtual,
            seed,
        } => {
            let serial = match serial {
                Some(s) => parse_serial(&s)?,
                None => 900_000_000 + (rand_serial()? % 100_000_000),
            };
            card::init(&image, serial, is_virtual, entropy(seed))?;
            println!(
                "{}: serial {serial:010}{}",
                image.display(),
                if is_virtual { ", virtual" } else { "" }
            );
            Ok(())
        }
        Command::Eject { reader, control } => {
            let answer = server::control_send(&control_path(control), &format!("eject {reader}"))?;
            finish(answer)
        }
        Command::Insert { reader, control } => {
            let answer = server::control_send(&control_path(control), &format!("insert {reader}"))?;
            finish(answer)
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
