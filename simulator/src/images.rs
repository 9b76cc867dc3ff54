//! Card images: `init` makes a factory-fresh one, `image` converts between
//! card images and firmware flash files.

use std::path::PathBuf;

use clap::Subcommand;
use virtual_card::Entropy;
use virtual_reader::up::CardProfile;

use crate::Done;

/// Convert between card images and firmware flash files.
#[derive(clap::Args)]
pub struct Image {
    #[command(subcommand)]
    command: ImageCommand,
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

/// Create a factory-fresh card image.
#[derive(clap::Args)]
pub struct Init {
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
    profile: CardProfile,
    /// With the YubiKey profile: refuse trivial new PINs and PUKs
    /// (`69 85`), as a YubiKey with PIN complexity does.
    #[arg(long)]
    pin_complexity: bool,
    #[arg(long, hide = true)]
    seed: Option<u64>,
}

pub fn convert(args: Image) -> Done {
    let (header, made) = match args.command {
        ImageCommand::ToFirmware { image, flash } => {
            (virtual_card::firmware::to_firmware(&image, &flash)?, flash)
        }
        ImageCommand::FromFirmware { flash, image } => (
            virtual_card::firmware::from_firmware(&flash, &image)?,
            image,
        ),
    };
    println!(
        "{}: serial {:010}{}",
        made.display(),
        header.serial,
        if header.is_virtual { ", virtual" } else { "" }
    );
    Ok(())
}

pub fn init(args: Init) -> Done {
    let serial = match args.serial {
        Some(s) => parse_serial(&s)?,
        None => 900_000_000 + (random_serial()? % 100_000_000),
    };
    let profile = args
        .profile
        .profile(args.pin_complexity)
        .ok_or(virtual_reader::up::COMPLEXITY_NEEDS_YUBIKEY)?;
    let make = virtual_card::Make {
        serial,
        is_virtual: args.is_virtual,
        profile,
    };
    virtual_card::init(&args.image, make, entropy(args.seed))?;
    println!(
        "{}: serial {serial:010}{}{}",
        args.image.display(),
        if args.is_virtual { ", virtual" } else { "" },
        match profile {
            applet::Profile::Series9 => "",
            applet::Profile::YubiKey {
                pin_complexity: false,
            } => ", YubiKey profile",
            applet::Profile::YubiKey {
                pin_complexity: true,
            } => ", YubiKey profile with PIN complexity",
        }
    );
    Ok(())
}

/// A card's serial as users write it: `09` and eight digits.
pub fn parse_serial(text: &str) -> Result<u32, String> {
    let ok = text.len() == 10 && text.starts_with("09") && text.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return Err(format!(
            "serial {text:?}: Series 9 serials are 09 followed by eight digits"
        ));
    }
    text.parse().map_err(|e| format!("serial {text:?}: {e}"))
}

/// The cards' randomness: the OS's, or a seed's for reproducible runs.
pub fn entropy(seed: Option<u64>) -> Entropy {
    seed.map_or(Entropy::Os, Entropy::Seed)
}

/// Four random bytes for a serial nobody chose.
pub fn random_serial() -> Result<u32, Box<dyn std::error::Error>> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|e| format!("no OS randomness: {e}"))?;
    Ok(u32::from_le_bytes(b))
}
