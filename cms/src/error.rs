//! Why a CMS flow stopped: one enum for the crate, so that the command line
//! prints a sentence a registration authority can act on and a test asserts
//! on the reason itself (a card's refusal keeps its status word, as
//! [`client::ClientError::Refused`] carries it). No variant carries a
//! passcode, a PUK, a security code or a key.

use std::path::PathBuf;

use client::ClientError;

/// The card operation a [`CmsError::CardStep`] failed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Giving the card the serial the issuer assigned.
    SetSerial,
    /// Replacing the factory PUK with the derived one.
    SetPuk,
    /// Replacing the factory passcode with the holder's.
    SetPasscode,
    /// RESET RETRY COUNTER with the derived PUK.
    Unblock,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::SetSerial => "setting the serial",
            Step::SetPuk => "setting the PUK",
            Step::SetPasscode => "setting the passcode",
            Step::Unblock => "unblock failed",
        })
    }
}

/// Why a CMS operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    // What an operator typed or a file said.
    /// A pairing code that is not 8 digits.
    #[error("a pairing code is 8 digits")]
    BadPairingCode,
    /// A card that offers no secure messaging (no key `04` and CVC, or no
    /// signer certificate).
    #[error("the card has no secure messaging (no key 04, CVC or signer certificate)")]
    NoSecureMessaging,
    /// A time that is not a calendar time.
    #[error("{0:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")]
    BadTime(String),
    /// A UUID that is not twelve digits.
    #[error("UUID {0:?}: twelve digits expected")]
    BadUuid(String),
    /// A request without a name.
    #[error("a name is required")]
    NoName,
    /// An email address that is not one.
    #[error("email {0:?} is not an email address")]
    BadEmail(String),
    /// A mobile number that is not one.
    #[error("mobile {0:?}: 10 to 15 digits expected")]
    BadMobile(String),
    /// A passcode the card would refuse.
    #[error(
        "the passcode must be 6 to 8 digits and not easy to guess (no repeated digits, runs or dates)"
    )]
    WeakPasscode,
    /// A role that is neither holder nor sponsor.
    #[error("role {0:?}: holder or sponsor")]
    BadRole(String),
    /// A key algorithm the CMS does not issue.
    #[error("algorithm {:?}: one of {}", .0, crate::keys::algorithm_names())]
    BadAlgorithm(String),
    /// A bulk file whose header is not the columns.
    #[error("{}: the columns must be {columns}", path.display())]
    BulkColumns {
        /// The file.
        path: PathBuf,
        /// The columns it must have, comma-separated.
        columns: String,
    },
    /// A bulk file longer than one batch.
    #[error("{}: {rows} rows; a batch takes at most {max}", path.display())]
    BulkTooLong {
        /// The file.
        path: PathBuf,
        /// Its rows.
        rows: usize,
        /// The most a batch takes.
        max: usize,
    },
    /// A bulk row with the wrong number of fields.
    #[error("{found} fields, expected {expected}")]
    BulkFields {
        /// Fields in the row.
        found: usize,
        /// Fields a row has.
        expected: usize,
    },
    /// A UUID a bulk file has twice.
    #[error("duplicate UUID in this file")]
    BulkDuplicate,
    /// A bulk row for a holder the database has already.
    #[error("duplicate: holder registered already")]
    BulkRegistered,
    /// A CSV file that could not be read or written.
    #[error("{}: {source}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// Why.
        source: csv::Error,
    },

    // The register.
    /// A holder registered already.
    #[error("holder {0} is registered already")]
    HolderRegistered(String),
    /// A card registered already.
    #[error("card {0:010} is registered already")]
    CardRegistered(u32),
    /// A serial the issuer would assign that another card has.
    #[error("serial {0:010} is registered already")]
    SerialTaken(u32),
    /// A card the register does not know.
    #[error("card {0:010} is not registered")]
    CardNotRegistered(u32),
    /// A registered card whose holder is not.
    #[error("the card's holder is not registered")]
    HolderNotRegistered,
    /// A card revoked or replaced.
    #[error("card {serial:010} is {status}: it may not be used (issue a new card)")]
    CardUnusable {
        /// The card.
        serial: u32,
        /// Its status (`revoked`, `replaced`).
        status: String,
    },
    /// A card revoked before.
    #[error("card {0:010} is revoked already")]
    RevokedAlready(u32),

    // Which card is in the reader.
    /// A card whose management key is neither the factory's nor ours.
    #[error(
        "card {serial:010} is not factory-fresh (its management key is neither the default nor this CMS's): {source}"
    )]
    NotFactoryFresh {
        /// The card.
        serial: u32,
        /// The card's refusal.
        source: ClientError,
    },
    /// A card personalised earlier under its own serial, asked for another.
    #[error("card {0:010} was personalised under its own serial already")]
    SerialFixed(u32),
    /// A card personalised earlier for someone else.
    #[error("card {serial:010} was personalised for {holder} already")]
    PersonalisedFor {
        /// The card.
        serial: u32,
        /// Its holder.
        holder: String,
    },
    /// A half-personalised card whose passcode is not the request's.
    #[error(
        "card {serial:010} is half-personalised and an earlier attempt set another passcode ({source}): retry with the same passcode, or re-issue the card"
    )]
    HalfPersonalised {
        /// The card.
        serial: u32,
        /// The card's refusal.
        source: ClientError,
    },
    /// A card that cannot prove the management key issued for its serial.
    #[error(
        "card {serial:010} is not the card issued under that serial: it does not prove the management key the CMS gave it ({source}); nothing was sent to it"
    )]
    NotIssuedCard {
        /// The serial it claims.
        serial: u32,
        /// The card's refusal.
        source: ClientError,
    },
    /// A card without the certificate personalisation writes.
    #[error("the card has no certificate: personalise it first")]
    NoCertificate,
    /// A card whose certificate names another holder than its record.
    #[error("the card's certificate names another holder")]
    OtherHolder,
    /// A card's PUK is blocked.
    #[error("the card's PUK is blocked: it must be re-issued")]
    PukBlocked,

    // Renewal.
    /// Every retired slot is in use (a renewal then replaces the oldest
    /// retired key; the error reaches a user only from a card whose
    /// retired slots it cannot read).
    #[error("all {0} retired key management slots of the card are in use")]
    KeyHistoryFull(usize),
    /// Too early to renew.
    #[error("renew from {}", crate::time::date(*from))]
    TooEarly {
        /// When the window opens.
        from: u64,
    },
    /// Too late to renew.
    #[error("expired: re-issue in person")]
    Expired,
    /// A wrong passcode.
    #[error("passcode refused: {0} tries left")]
    PasscodeRefused(u8),
    /// A card whose passcode is blocked.
    #[error("the card is locked: unlock it first")]
    CardLocked,

    // Sponsor unlock.
    /// The sponsor's card failed a check.
    #[error("sponsor card: {0}")]
    SponsorCard(Box<CmsError>),
    /// The sponsor's card's certificate names another holder.
    #[error("sponsor card: its certificate names another holder than the card's record")]
    SponsorRecord,
    /// A sponsor certificate without the sponsor role.
    #[error("{0} is not a sponsor: the certificate lacks the sponsor role")]
    NotSponsor(String),
    /// An expired sponsor certificate.
    #[error("the sponsor's certificate has expired")]
    SponsorExpired,
    /// The sponsor's passcode refused.
    #[error("sponsor passcode refused: {0}")]
    SponsorPasscode(ClientError),
    /// A sponsor card whose signature does not match its certificate.
    #[error("the sponsor card's signature does not match its certificate")]
    SponsorSignature,

    // Self-service unlock.
    /// A holder with no address for a code.
    #[error("self-service unlock needs a registered email address or mobile number: ask a sponsor")]
    NoAddress,
    /// A card whose certificates have expired.
    #[error(
        "the card's certificates have expired: self-service unlock is not possible, re-issue in person"
    )]
    CertificatesExpired,
    /// Too many wrong codes: self-service is over for this card.
    #[error("self-service unlock of {} is locked after {failures} wrong codes: ask a sponsor", card_words(*serial))]
    SelfServiceLocked {
        /// The card, when the refusal names it.
        serial: Option<u32>,
        /// Wrong codes that lock.
        failures: u32,
    },
    /// Too many codes asked for in an hour.
    #[error("card {serial:010} asked for {requests} codes in the last hour: try again later")]
    TooManyRequests {
        /// The card.
        serial: u32,
        /// Codes an hour allows.
        requests: u32,
    },
    /// A wrong code.
    #[error("wrong security code ({0} tries left)")]
    WrongCode(u32),
    /// No code was asked for.
    #[error("no security code was requested for this card")]
    NoCode,
    /// A code made void by wrong entries or by use.
    #[error("this security code is void: request a new one")]
    CodeVoid,
    /// A code past its 15 minutes.
    #[error("this security code has expired: request a new one")]
    CodeExpired,

    // Certificates and keys.
    /// A realm that is not DNS labels.
    #[error("realm {0:?}: letters, digits and hyphens in dot-separated labels, like NHS.EXAMPLE")]
    BadRealm(String),
    /// A CA directory that has one already.
    #[error("{}: a CA exists already", .0.display())]
    CaExists(PathBuf),
    /// No CA where one is needed.
    #[error("no test CA in {} ({source}): run `s9card ca init`", dir.display())]
    NoCa {
        /// Where it was looked for.
        dir: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A certificate another CA issued.
    #[error("certificate not issued by the test CA")]
    ForeignCertificate,
    /// A certificate whose signature is wrong.
    #[error("certificate signature invalid")]
    BadCertificateSignature,
    /// An RSA key of a size the card has not.
    #[error("an RSA key of a size the card does not have")]
    RsaSize,
    /// A key of an algorithm the card has not.
    #[error("a key of algorithm {0} the card does not have")]
    KeyAlgorithm(String),
    /// A public key of the wrong length.
    #[error("a public key of the wrong length")]
    KeyLength,
    /// A key kind that signs no challenge.
    #[error("{0:?} keys do not sign challenges here")]
    NoChallenge(client::Algorithm),
    /// A signature that does not verify.
    #[error("the signature does not match the key")]
    BadSignature,
    /// An encoding error building or reading a certificate or key.
    #[error("certificate encoding: {0}")]
    Encoding(String),

    // Below the flows.
    /// The card refused or went away.
    #[error("{0}")]
    Card(#[from] ClientError),
    /// A card step failed.
    #[error("{step}: {source}")]
    CardStep {
        /// Which.
        step: Step,
        /// The card's refusal.
        source: ClientError,
    },
    /// A virtual card's image could not be made or opened.
    #[error("{0}")]
    Image(#[from] virtual_card::image::ImageError),
    /// The database failed.
    #[error("{0}")]
    Database(#[from] rusqlite::Error),
    /// The database could not be opened or migrated.
    #[error("{}: {what} ({source})", path.display())]
    DatabaseFile {
        /// The database.
        path: PathBuf,
        /// What failed.
        what: &'static str,
        /// Why.
        source: rusqlite::Error,
    },
    /// A schema migration failed.
    #[error("migration {number}: {source}")]
    Migration {
        /// Its number.
        number: usize,
        /// Why.
        source: rusqlite::Error,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A master-secret file that is not one.
    #[error("{}: not a master secret", .0.display())]
    NotAMasterSecret(PathBuf),
    /// The OS gave no randomness.
    #[error("no OS randomness: {0}")]
    Random(getrandom::Error),
}

fn card_words(serial: Option<u32>) -> String {
    serial.map_or_else(|| "this card".into(), |s| format!("card {s:010}"))
}

impl CmsError {
    /// A file error at `path`.
    pub fn file(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CmsError + '_ {
        move |source| CmsError::File {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An encoding error from `der`, `x509-cert`, `pkcs8` or a curve.
    pub fn encoding(e: impl std::fmt::Display) -> CmsError {
        CmsError::Encoding(e.to_string())
    }
}

/// A CMS result.
pub type Result<T, E = CmsError> = std::result::Result<T, E>;
