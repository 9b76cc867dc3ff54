//! Credential management on cards: `ca`, `personalize`, `renew`,
//! `unlock`, `self-unlock`, `revoke`, `status`. The flows are the `cms`
//! crate's; here the command line chooses the card (a reader, or an image
//! opened in this process), reads passcodes and prints what was done.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use clap::Subcommand;
use client::{Pcsc, PivClient, Transport};
use cms::ca::Role;
use cms::flows::{self, Cms, Request};
use cms::time;
use virtual_card::Entropy;

use crate::images::parse_serial;
use crate::passcode::{self, PasscodeFrom};
use crate::{Done, paths};

/// How long a flow waits for other applications to let go of the card.
const READER_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The test certificate authority.
#[derive(clap::Args)]
pub struct Ca {
    #[command(subcommand)]
    command: CaCommand,
    #[command(flatten)]
    cms: CmsArgs,
}

/// Personalise a factory-fresh card for a holder, or (`--bulk`) up to
/// 300 holders from a CSV file onto new virtual card images.
#[derive(clap::Args)]
pub struct Personalize {
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
    /// Give the card PIV secure messaging: key 04 for cipher suite cs2
    /// (P-256) or cs7 (P-384), its CVC from the CA's secure messaging
    /// signer, and a pairing code, printed once for the holder.
    #[arg(long, value_name = "SUITE", value_parser = ["cs2", "cs7"], conflicts_with = "bulk")]
    secure_messaging: Option<String>,
    #[command(flatten)]
    cms: CmsArgs,
}

/// Renew a card's keys and certificates, in the 90 days before they
/// expire (all or nothing; an interrupted renewal resumes).
#[derive(clap::Args)]
pub struct Renew {
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
}

/// Unlock a locked card: the sponsor's card in one reader proves the
/// sponsor, the locked card in another gets the holder's new passcode.
#[derive(clap::Args)]
pub struct Unlock {
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
}

/// Self-service unlock with a security code sent to the holder.
#[derive(clap::Args)]
pub struct SelfUnlock {
    #[command(subcommand)]
    step: SelfUnlockStep,
}

/// Revoke a card (lost, stolen, or replaced by a new one): unlock,
/// self-service unlock and renewal refuse it from then on, and so does
/// sponsor unlock when it is the sponsor's card.
#[derive(clap::Args)]
pub struct Revoke {
    /// The card's serial (`09` and eight digits).
    #[arg(long)]
    serial: String,
    /// A new card replaces it (otherwise: lost or stolen).
    #[arg(long)]
    replaced: bool,
    #[command(flatten)]
    cms: CmsArgs,
}

/// Show a card's holder, serial, certificate expiry and tries left.
#[derive(clap::Args)]
pub struct Status {
    #[command(flatten)]
    card: CardArgs,
    #[command(flatten)]
    cms: CmsArgs,
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
    /// A card in a contactless reader: its pairing code, which opens the
    /// virtual contact interface in a secure messaging session (none: a
    /// card whose session alone opens it). Or `$S9CARD_PAIRING_CODE`.
    #[arg(long)]
    pairing_code: Option<String>,
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
            .unwrap_or_else(|| paths::data_dir().join("cms.db"))
    }

    fn now(&self) -> Result<u64, cms::CmsError> {
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

/// The card chosen on the command line: in a reader, or an image opened
/// in this process.
enum AnyCard {
    /// The reader's one connection, exclusive to this process: shared by
    /// the sponsor's and the holder's clients when both name one reader.
    Reader(Rc<RefCell<Pcsc>>),
    Image(Box<virtual_card::SimCard>),
}

impl Transport for AnyCard {
    fn transmit(&mut self, apdu: &[u8]) -> client::Result<Vec<u8>> {
        match self {
            AnyCard::Reader(r) => r.borrow_mut().transmit(apdu),
            AnyCard::Image(c) => Transport::transmit(c.as_mut(), apdu),
        }
    }
}

impl AnyCard {
    /// Whether the reader reports the ATR of a contactless card (`3B 8x 80
    /// 01 …`, PC/SC Part 3's form).
    fn is_contactless(&self) -> bool {
        let atr = match self {
            AnyCard::Reader(r) => r.borrow().atr().unwrap_or_default(),
            AnyCard::Image(c) => c.atr().to_vec(),
        };
        matches!(atr[..], [0x3B, t0, 0x80, 0x01, ..] if t0 & 0xF0 == 0x80)
    }
}

/// A second client on the card `other` talks to, through its connection.
fn sharing(other: &mut PivClient<AnyCard>) -> Option<PivClient<AnyCard>> {
    match other.transport_mut() {
        AnyCard::Reader(r) => Some(PivClient::new(AnyCard::Reader(Rc::clone(r)))),
        AnyCard::Image(_) => None,
    }
}

impl CardArgs {
    /// The card, and on a contactless card its virtual contact interface
    /// opened (secure messaging, the card's CVC checked against `ca`'s
    /// signer when a CA is given, then the pairing code): the CMS's flows
    /// then run as on contact, protected.
    fn open_with(
        &self,
        ca: Option<&cms::ca::TestCa>,
    ) -> Result<PivClient<AnyCard>, Box<dyn std::error::Error>> {
        let mut client = self.open()?;
        if client.transport_mut().is_contactless() {
            client.select()?;
            let code = self
                .pairing_code
                .clone()
                .or_else(|| std::env::var("S9CARD_PAIRING_CODE").ok())
                .filter(|c| c != "none");
            cms::sm::open_vci(&mut client, ca, code.as_deref())?;
        }
        Ok(client)
    }

    fn open(&self) -> Result<PivClient<AnyCard>, Box<dyn std::error::Error>> {
        let card = match (&self.reader, &self.image) {
            // The flows hold the card's authentications between commands: this
            // application alone talks to it until they end.
            (Some(r), _) => AnyCard::Reader(Rc::new(RefCell::new(Pcsc::connect_exclusive(
                r,
                READER_WAIT,
            )?))),
            (None, Some(path)) => {
                let (_, mut card) = virtual_card::boot(path, Entropy::Os, true)?;
                card.power_on();
                AnyCard::Image(Box::new(card))
            }
            (None, None) => return Err("give --reader or --image".into()),
        };
        Ok(PivClient::new(card))
    }
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create the test CA and the master secret beside the database.
    Init {
        /// The Kerberos realm of the holders' principals and, in lower
        /// case, their UPNs' domain: the AD domain your relying parties
        /// expect.
        #[arg(long, default_value = cms::ca::Realm::DEFAULT)]
        realm: String,
    },
    /// Write the CA's CRL (PEM): the certificates of revoked cards and
    /// those renewals replaced, for relying parties' revocation checks.
    Crl {
        /// Where the CRL goes.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn ca(args: Ca) -> Done {
    let now = args.cms.now()?;
    match args.command {
        CaCommand::Init { realm } => {
            let realm = cms::ca::Realm::new(&realm)?;
            let ca = Cms::init_ca_in_realm(&args.cms.db(), now, realm)?;
            println!(
                "test CA created: {} (realm {})",
                ca.root_path().display(),
                ca.realm().as_str()
            );
        }
        CaCommand::Crl { out } => {
            let state = Cms::open(&args.cms.db())?;
            let revoked = state.db.revoked_certificates(now)?;
            let pem = cms::ca::pem("X509 CRL", &state.ca.crl(&revoked, now)?)?;
            std::fs::write(&out, pem)?;
            println!(
                "CRL with {} revoked certificate(s), current until {}: {}",
                revoked.len(),
                time::date(now + cms::ca::CRL_DAYS * time::DAY),
                out.display()
            );
        }
    }
    Ok(())
}

pub fn personalize(args: Personalize) -> Done {
    match args.bulk.clone() {
        Some(file) => personalize_bulk(args, file),
        None => personalize_one(args),
    }
}

fn personalize_bulk(args: Personalize, file: PathBuf) -> Done {
    let algorithm = cms::keys::parse_algorithm(&args.algorithm)?;
    let now = args.cms.now()?;
    let mut state = Cms::open(&args.cms.db())?;
    let rows = cms::bulk::read(&file)?;
    let out = args.out.ok_or("--bulk needs --out")?;
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    let summary = cms::bulk::personalize(&mut state, &rows, &out, algorithm, now, |n| {
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

fn personalize_one(args: Personalize) -> Done {
    let card = CardArgs {
        reader: args.reader,
        image: args.image,
        pairing_code: None,
    };
    let algorithm = cms::keys::parse_algorithm(&args.algorithm)?;
    let uuid = args.uuid.ok_or("--uuid is required")?;
    let name = args.name.ok_or("--name is required")?;
    let now = args.cms.now()?;
    let mut state = Cms::open(&args.cms.db())?;
    let passcode = passcode::read(PasscodeFrom {
        flag: args.passcode,
        flag_name: "--passcode",
        fd: args.passcode_fd,
        env: "S9CARD_PASSCODE",
        prompt: "New passcode (6-8 digits): ",
    })?;
    let request = Request {
        uuid,
        name,
        email: args.email,
        mobile: args.mobile,
        role: if args.sponsor {
            Role::Sponsor
        } else {
            Role::Holder
        },
        passcode,
        serial: args.serial.as_deref().map(parse_serial).transpose()?,
        algorithm,
        secure_messaging: args.secure_messaging.as_deref().map(|s| match s {
            "cs7" => client::Suite::Cs7,
            _ => client::Suite::Cs2,
        }),
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
    if let Some(code) = &done.pairing_code {
        // Shown this once: the CMS keeps no copy, the card only a digest.
        println!(
            "pairing code (for the holder, shown once): {}",
            code.as_str()
        );
    }
    Ok(())
}

pub fn renew(args: Renew) -> Done {
    let now = args.cms.now()?;
    let mut state = Cms::open(&args.cms.db())?;
    let mut client = args.card.open()?;
    let passcode = passcode::read(PasscodeFrom {
        flag: args.passcode,
        flag_name: "--passcode",
        fd: args.passcode_fd,
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

pub fn unlock(args: Unlock) -> Done {
    let now = args.cms.now()?;
    let mut state = Cms::open(&args.cms.db())?;
    let same_reader = args.sponsor_reader.is_some() && args.sponsor_reader == args.card_reader;
    let mut sponsor = CardArgs {
        reader: args.sponsor_reader,
        image: args.sponsor_image,
        pairing_code: None,
    }
    .open_with(None)?;
    // One card in one reader named twice: it is both (and is refused as a
    // sponsor unless it is one); its exclusive connection serves both.
    let mut card = if same_reader {
        sharing(&mut sponsor).ok_or("the card's connection cannot be shared")?
    } else {
        CardArgs {
            reader: args.card_reader,
            image: args.card_image,
            pairing_code: None,
        }
        .open_with(None)?
    };
    let sponsor_passcode = passcode::read(PasscodeFrom {
        flag: args.sponsor_passcode,
        flag_name: "--sponsor-passcode",
        fd: args.sponsor_passcode_fd,
        env: "S9CARD_SPONSOR_PASSCODE",
        prompt: "Sponsor's passcode: ",
    })?;
    let new_passcode = passcode::read(PasscodeFrom {
        flag: args.new_passcode,
        flag_name: "--new-passcode",
        fd: args.new_passcode_fd,
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

pub fn self_unlock(args: SelfUnlock) -> Done {
    match args.step {
        SelfUnlockStep::Request { card, outbox, cms } => {
            let now = cms.now()?;
            let db = cms.db();
            let outbox =
                outbox.unwrap_or_else(|| db.parent().map(|d| d.join("outbox")).unwrap_or_default());
            let mut state = Cms::open(&db)?;
            let mut client = card.open_with(None)?;
            let path = flows::self_unlock_request(&mut state, &mut client, &outbox, now)?;
            println!("security code sent: {}", path.display());
        }
        SelfUnlockStep::Complete {
            card,
            code,
            new_passcode,
            new_passcode_fd,
            cms,
        } => {
            let now = cms.now()?;
            let mut state = Cms::open(&cms.db())?;
            let mut client = card.open_with(None)?;
            let new_passcode = passcode::read(PasscodeFrom {
                flag: new_passcode,
                flag_name: "--new-passcode",
                fd: new_passcode_fd,
                env: "S9CARD_NEW_PASSCODE",
                prompt: "New passcode (6-8 digits): ",
            })?;
            let serial =
                flows::self_unlock_complete(&mut state, &mut client, &code, &new_passcode, now)?;
            println!("card {serial:010} unlocked");
        }
    }
    Ok(())
}

pub fn revoke(args: Revoke) -> Done {
    let serial = parse_serial(&args.serial)?;
    let mut state = Cms::open(&args.cms.db())?;
    flows::revoke(&mut state, serial, args.replaced, args.cms.now()?)?;
    println!(
        "card {serial:010} {}",
        if args.replaced { "replaced" } else { "revoked" }
    );
    Ok(())
}

pub fn status(args: Status) -> Done {
    let now = args.cms.now()?;
    let ca = cms::ca::TestCa::load(&cms::flows::paths(&args.cms.db()).0).ok();
    let mut client = args.card.open_with(ca.as_ref())?;
    let status = flows::status(&mut client, ca.as_ref())?;
    print!("{}", status.render(now));
    Ok(())
}
