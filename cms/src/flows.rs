//! The CMS flows, as library functions the CLI calls.

use std::path::{Path, PathBuf};

use super::ca::{self, CertInfo, Role, TestCa};
use super::db::{
    self, Attempt, CardRow, Db, FAILURES_BEFORE_LOCK, Holder, REQUESTS_PER_HOUR, RequestRefused,
};
use super::derive::MasterSecret;
use super::keys::CardKey;
use super::time::{self, DAY};
use crate::{CmsError, Result, Step};
use client::{
    AdminAlgorithm, Algorithm, ClientError, DEFAULT_MGM, PivClient, Status as Sw, Transport,
    unwrap_tlv,
};

/// Certificate objects of the two slots a staff card uses.
pub const SLOTS: [(u8, u32); 2] = [(0x9A, 0x5FC105), (0x9C, 0x5FC10A)];

/// The CMS state: database, test CA and master secret, kept side by side.
pub struct Cms {
    /// The database.
    pub db: Db,
    /// The test CA.
    pub ca: TestCa,
    master: MasterSecret,
}

/// Where the CA and the master secret live, beside the database.
pub fn paths(db: &Path) -> (PathBuf, PathBuf) {
    let dir = db.parent().map(Path::to_path_buf).unwrap_or_default();
    (dir.join("ca"), dir.join("master.key"))
}

impl Cms {
    /// Opens the CMS whose database is at `db` (the CA must exist).
    pub fn open(db: &Path) -> Result<Cms> {
        let (ca_dir, master) = paths(db);
        let ca = TestCa::load(&ca_dir)?;
        Ok(Cms {
            db: Db::open(db)?,
            ca,
            master: MasterSecret::load_or_create(&master)?,
        })
    }

    /// Creates the test CA (and the master secret) beside `db`.
    pub fn init_ca(db: &Path, now: u64) -> Result<TestCa> {
        let (ca_dir, master) = paths(db);
        let ca = TestCa::init(&ca_dir, now)?;
        MasterSecret::load_or_create(&master)?;
        Db::open(db)?;
        Ok(ca)
    }

    /// The derived PUK of a card (never printed; for the flows only).
    fn puk(&self, serial: u32) -> String {
        self.master.puk(serial)
    }
}

/// Who a new card is for.
#[derive(Clone, Debug)]
pub struct Request {
    /// 12-digit UUID.
    pub uuid: String,
    /// Name.
    pub name: String,
    /// Email, for self-service unlock.
    pub email: Option<String>,
    /// Mobile number, for self-service unlock.
    pub mobile: Option<String>,
    /// Holder or sponsor.
    pub role: Role,
    /// The passcode the holder chose; wiped when the request is dropped.
    pub passcode: zeroize::Zeroizing<String>,
    /// The serial to give the card (`09…`), if the issuer assigns one;
    /// otherwise the card keeps its own.
    pub serial: Option<u32>,
    /// The algorithm of the card's keys (P-256, P-384 or RSA-2048); a
    /// renewal keeps each slot's.
    pub algorithm: Algorithm,
}

/// Checks a request before any card is touched.
pub fn validate(r: &Request) -> Result<()> {
    if r.uuid.len() != 12 || !r.uuid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CmsError::BadUuid(r.uuid.clone()));
    }
    if r.name.trim().is_empty() {
        return Err(CmsError::NoName);
    }
    if let Some(e) = &r.email {
        let ok = matches!(e.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'))
            && !e.contains(char::is_whitespace);
        if !ok {
            return Err(CmsError::BadEmail(e.clone()));
        }
    }
    if let Some(m) = &r.mobile {
        let digits = m.trim_start_matches('+');
        if !(10..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CmsError::BadMobile(m.clone()));
        }
    }
    acceptable(&r.passcode)
}

/// Checks a passcode a holder chose, as the card will.
fn acceptable(passcode: &str) -> Result<()> {
    if applet::passcode::acceptable_new(passcode.as_bytes()) {
        Ok(())
    } else {
        Err(CmsError::WeakPasscode)
    }
}

/// A card step's failure, named.
fn step(step: Step) -> impl FnOnce(ClientError) -> CmsError {
    move |source| CmsError::CardStep { step, source }
}

/// The CHUID the CMS writes: the applet's layout (FASC-N with no agency,
/// empty signature and LRC) with a GUID naming the holder (`S9` and the
/// UUID) and the certificates' expiry.
pub fn chuid(uuid: &str, expiry: u64) -> Result<Vec<u8>> {
    let mut guid = [0u8; 16];
    for (g, b) in guid.iter_mut().zip(b"S9".iter().chain(uuid.as_bytes())) {
        *g = *b;
    }
    let mut date = [0u8; 8];
    for (d, b) in date.iter_mut().zip(time::compact_date(expiry).bytes()) {
        *d = b;
    }
    let mut out = [0u8; applet::objects::CHUID_LEN];
    let len = applet::objects::chuid(&guid, &date, &mut out)
        .map_err(|e| CmsError::Encoding(format!("CHUID: {e:?}")))?;
    Ok(out[..len].to_vec())
}

/// What personalisation produced.
#[derive(Clone, Debug)]
pub struct Personalised {
    /// The card's serial.
    pub serial: u32,
    /// When its certificates expire.
    pub expiry: u64,
    /// A virtual card.
    pub is_virtual: bool,
}

/// Personalises a factory-fresh card for `r`: diversified PUK, the holder's
/// passcode, keys generated on the card in 9A and 9C with certificates from
/// the test CA, the CHUID, and the diversified management key last; then
/// registers holder and card. The database is written only once the card
/// is done, so a failure leaves no record of a card that is not ready.
///
/// An attempt cut short (the card pulled, the host gone) can be run again
/// and resumes: GET METADATA's "still the factory value" flags say which of
/// PUK, passcode and management key were already set, and those steps are
/// skipped rather than tried again with factory values (which would spend
/// the card's PUK tries). A card whose management key is already this
/// CMS's derived key has every card step done and is only registered. The
/// passcode an earlier attempt set must be the one the request carries.
pub fn personalize<T: Transport>(
    cms: &mut Cms,
    card: &mut PivClient<T>,
    r: &Request,
    now: u64,
) -> Result<Personalised> {
    validate(r)?;
    if cms.db.holder(&r.uuid)?.is_some() {
        return Err(CmsError::HolderRegistered(r.uuid.clone()));
    }
    card.select()?;
    let mut info = card.card_info()?;
    if cms.db.card(info.serial)?.is_some() {
        return Err(CmsError::CardRegistered(info.serial));
    }
    if card.is_default(0x9B)? {
        card.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)?;
        info = personalize_card(cms, card, r, info, now)?;
    } else {
        // Either an earlier attempt finished every card step, or this is
        // somebody else's card.
        card.authenticate(
            AdminAlgorithm::Aes256,
            &cms.master.management_key(info.serial),
        )
        .map_err(|source| CmsError::NotFactoryFresh {
            serial: info.serial,
            source,
        })?;
        if r.serial.is_some_and(|s| s != info.serial) {
            return Err(CmsError::SerialFixed(info.serial));
        }
        let holder = slot_certificate(cms, card, SLOTS[0].1)?;
        if holder.uuid != r.uuid {
            return Err(CmsError::PersonalisedFor {
                serial: info.serial,
                holder: holder.uuid,
            });
        }
    }
    let expiry = card_expiry(cms, card)?;
    let holder = Holder {
        uuid: r.uuid.clone(),
        name: r.name.clone(),
        email: r.email.clone(),
        mobile: r.mobile.clone(),
        role: r.role,
    };
    let row = CardRow {
        serial: info.serial,
        holder: r.uuid.clone(),
        expiry,
        is_virtual: info.is_virtual,
        status: "active".into(),
    };
    cms.db
        .register(&holder, &row, "registration authority", now)?;
    Ok(Personalised {
        serial: info.serial,
        expiry,
        is_virtual: info.is_virtual,
    })
}

/// The card steps of personalisation, each skipped if an earlier attempt
/// did it; ends with the derived management key. Returns the card's info
/// under its final serial.
fn personalize_card<T: Transport>(
    cms: &mut Cms,
    card: &mut PivClient<T>,
    r: &Request,
    info: client::CardInfo,
    now: u64,
) -> Result<client::CardInfo> {
    let info = match r.serial {
        Some(serial) if serial != info.serial => {
            if cms.db.card(serial)?.is_some() {
                return Err(CmsError::SerialTaken(serial));
            }
            card.set_serial(serial).map_err(step(Step::SetSerial))?;
            card.card_info()?
        }
        _ => info,
    };
    if card.is_default(0x81)? {
        let puk = cms.puk(info.serial);
        card.change(0x81, b"12345678", puk.as_bytes())
            .map_err(step(Step::SetPuk))?;
    }
    if card.is_default(0x80)? {
        card.change(0x80, b"123456", r.passcode.as_bytes())
            .map_err(step(Step::SetPasscode))?;
    } else {
        card.verify_pin(r.passcode.as_bytes())
            .map_err(|source| CmsError::HalfPersonalised {
                serial: info.serial,
                source,
            })?;
    }
    let expiry = now + ca::CERT_DAYS * DAY;
    // Keys and certificates are made again on a resumed attempt: a key
    // without its certificate from the attempt cut short is replaced.
    for (slot, object) in SLOTS {
        let key = CardKey {
            algorithm: r.algorithm,
            public: card.generate_key(slot, r.algorithm, false)?,
        };
        let cert = cms.ca.issue(&r.uuid, &r.name, r.role, &key, now)?;
        card.put_object(object, &PivClient::<T>::certificate_object(&cert))?;
    }
    card.put_object(0x5FC102, &chuid(&r.uuid, expiry)?)?;
    card.set_management_key(
        AdminAlgorithm::Aes256,
        &cms.master.management_key(info.serial),
    )?;
    Ok(info)
}

/// When a card's certificates expire: the earliest `notAfter` of its
/// slots, read from the card (the one source that is never out of date).
fn card_expiry<T: Transport>(cms: &Cms, card: &mut PivClient<T>) -> Result<u64> {
    let mut earliest = u64::MAX;
    for (_, object) in SLOTS {
        earliest = earliest.min(slot_certificate(cms, card, object)?.not_after);
    }
    Ok(earliest)
}

/// What `s9card status` shows.
#[derive(Clone, Debug)]
pub struct Status {
    /// Serial.
    pub serial: u32,
    /// Virtual or physical.
    pub is_virtual: bool,
    /// The holder, from the authentication certificate.
    pub certificate: Option<CertInfo>,
    /// PIN tries (left, allowed).
    pub pin: (u8, u8),
    /// PUK tries (left, allowed).
    pub puk: (u8, u8),
}

/// Reads a card's status; `ca` checks the certificate if given.
pub fn status<T: Transport>(card: &mut PivClient<T>, ca: Option<&TestCa>) -> Result<Status> {
    card.select()?;
    let info = card.card_info()?;
    let certificate = match (card.get_object(0x5FC105)?, ca) {
        (Some(object), Some(ca)) => Some(ca::inspect(ca, unwrap_tlv(&object, 0x70)?)?),
        _ => None,
    };
    Ok(Status {
        serial: info.serial,
        is_virtual: info.is_virtual,
        certificate,
        pin: card.tries(0x80)?,
        puk: card.tries(0x81)?,
    })
}

impl Status {
    /// The lines `s9card status` prints.
    pub fn render(&self, now: u64) -> String {
        let mut out = format!(
            "serial        {:010}\ncard          {}\n",
            self.serial,
            if self.is_virtual {
                "virtual"
            } else {
                "physical"
            }
        );
        match &self.certificate {
            Some(c) => {
                let days = (c.not_after as i64 - now as i64).div_euclid(DAY as i64);
                out += &format!(
                    "holder        {} ({})\n",
                    c.uuid,
                    c.role.map_or("unknown role", Role::as_str)
                );
                out += &format!(
                    "certificates  expire {} ({} days left)\n",
                    time::date(c.not_after),
                    days
                );
            }
            None => out += "holder        none (not personalised)\n",
        }
        out += &format!(
            "passcode      {} of {} tries left{}\n",
            self.pin.0,
            self.pin.1,
            if self.pin.0 == 0 { " (LOCKED)" } else { "" }
        );
        out += &format!(
            "PUK           {} of {} tries left{}\n",
            self.puk.0,
            self.puk.1,
            if self.puk.0 == 0 {
                " (BLOCKED: re-issue needed)"
            } else {
                ""
            }
        );
        out
    }
}

/// Selects the card and finds it, and its holder, in the database.
fn registered<T: Transport>(
    cms: &Cms,
    card: &mut PivClient<T>,
) -> Result<(client::CardInfo, CardRow, Holder)> {
    card.select()?;
    let info = card.card_info()?;
    let row = usable_card(cms, info.serial)?;
    let holder = cms
        .db
        .holder(&row.holder)?
        .ok_or(CmsError::HolderNotRegistered)?;
    Ok((info, row, holder))
}

/// Proves that the card in the reader is the one the CMS issued under its
/// serial: mutual authentication with the management key the CMS derived
/// for it, which only that card holds. A serial is only a claim (`s9card
/// init --serial` makes any), so nothing that unlocks a card (its PUK) goes
/// to one that has not passed this; a card that fails is refused with an
/// audit row.
fn issued_card<T: Transport>(
    cms: &mut Cms,
    card: &mut PivClient<T>,
    serial: u32,
    flow: &str,
    now: u64,
) -> Result<()> {
    match card.authenticate(AdminAlgorithm::Aes256, &cms.master.management_key(serial)) {
        Ok(()) => Ok(()),
        Err(source) => {
            let _ = cms.db.audit(
                now,
                "card",
                flow,
                Some(serial),
                "refused",
                "the card does not hold the management key issued for its serial",
            );
            Err(CmsError::NotIssuedCard { serial, source })
        }
    }
}

/// The card's record, if the card is registered and may still be used: a
/// revoked or replaced card is refused by unlock, self-service unlock and
/// renewal alike.
fn usable_card(cms: &Cms, serial: u32) -> Result<CardRow> {
    let row = cms
        .db
        .card(serial)?
        .ok_or(CmsError::CardNotRegistered(serial))?;
    if row.status != "active" {
        return Err(CmsError::CardUnusable {
            serial,
            status: row.status,
        });
    }
    Ok(row)
}

/// Revokes a card: it was lost or stolen (`replaced: false`) or a new card
/// replaces it. From then on it is refused by every flow, and so is its
/// holder as a sponsor when presenting it.
pub fn revoke(cms: &mut Cms, serial: u32, replaced: bool, now: u64) -> Result<()> {
    let reason = if replaced { "replaced" } else { "revoked" };
    cms.db.revoke(serial, reason, "registration authority", now)
}

/// Days before expiry from which a holder may renew.
pub const RENEWAL_DAYS: u64 = 90;

/// Where `now` falls for a certificate expiring at `expiry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// More than 90 days left: renew from this time.
    TooEarly {
        /// When the window opens.
        from: u64,
    },
    /// Within the 90 days before expiry.
    Open,
    /// Expired: the card must be re-issued in person.
    Expired,
}

/// The renewal window rule: open in the 90 days before expiry, closed at
/// expiry.
pub fn window(expiry: u64, now: u64) -> Window {
    let from = expiry.saturating_sub(RENEWAL_DAYS * DAY);
    if now >= expiry {
        Window::Expired
    } else if now < from {
        Window::TooEarly { from }
    } else {
        Window::Open
    }
}

/// What a renewal did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewed {
    /// The card.
    pub serial: u32,
    /// The new expiry.
    pub expiry: u64,
    /// The card had been renewed already (an earlier run was interrupted
    /// after the card's commit): the database was brought up to date.
    pub reconciled: bool,
}

/// The certificate in a slot, checked against the CA.
fn slot_certificate<T: Transport>(
    cms: &Cms,
    card: &mut PivClient<T>,
    object: u32,
) -> Result<CertInfo> {
    let content = card.get_object(object)?.ok_or(CmsError::NoCertificate)?;
    ca::inspect(&cms.ca, unwrap_tlv(&content, 0x70)?)
}

/// Renews a card's keys and certificates, all or nothing per slot: a key is
/// generated into the slot's staging area (the old one keeps working), the
/// CA issues its certificate, and one card command installs key and
/// certificate together. The database follows the card, and a run that
/// finds the card already renewed (an interrupted earlier run) reconciles.
pub fn renew<T: Transport>(
    cms: &mut Cms,
    card: &mut PivClient<T>,
    passcode: &[u8],
    now: u64,
) -> Result<Renewed> {
    let (info, row, holder) = registered(cms, card)?;
    let current = slot_certificate(cms, card, SLOTS[0].1)?;
    if current.uuid != holder.uuid {
        return Err(CmsError::OtherHolder);
    }
    // The card was renewed but the database was not told: catch up.
    let lagging = SLOTS
        .iter()
        .map(|&(_, o)| slot_certificate(cms, card, o))
        .collect::<Result<Vec<_>, _>>()?;
    let all_new = lagging.iter().all(|c| c.not_after > row.expiry);
    if all_new {
        let expiry = card_expiry(cms, card)?;
        update_expiry(cms, info.serial, expiry, now, "reconciled")?;
        return Ok(Renewed {
            serial: info.serial,
            expiry,
            reconciled: true,
        });
    }
    match window(row.expiry, now) {
        Window::TooEarly { from } => return Err(CmsError::TooEarly { from }),
        Window::Expired => return Err(CmsError::Expired),
        Window::Open => {}
    }
    card.verify_pin(passcode).map_err(|e| match e {
        ClientError::Refused {
            status: Sw::VerificationFailed(left),
            ..
        } => CmsError::PasscodeRefused(left.get()),
        ClientError::Refused {
            status: Sw::AuthenticationMethodBlocked,
            ..
        } => CmsError::CardLocked,
        other => other.into(),
    })?;
    card.authenticate(
        AdminAlgorithm::Aes256,
        &cms.master.management_key(info.serial),
    )?;
    for ((slot, _), old) in SLOTS.iter().zip(&lagging) {
        if old.not_after > row.expiry {
            continue; // renewed by an interrupted earlier run
        }
        if info.staged.contains(slot) {
            // Staging an earlier slot may have dropped it already: a card
            // keeps only the newest renewal's staged keys.
            match card.abort_renewal(*slot) {
                Ok(())
                | Err(ClientError::Refused {
                    status: Sw::ReferenceNotFound,
                    ..
                }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // STAGE needs the PIN; a "PIN always" policy would need it again.
        card.verify_pin(passcode)?;
        // The new key is of the algorithm the card was issued with.
        let algorithm = old.key.algorithm;
        let key = CardKey {
            algorithm,
            public: card.generate_key(*slot, algorithm, true)?,
        };
        let cert = cms
            .ca
            .issue(&holder.uuid, &holder.name, holder.role, &key, now)?;
        card.commit_renewal(*slot, &cert)?;
    }
    // A slot renewed by an interrupted earlier run expires before the ones
    // renewed now: the card's expiry is the earliest.
    let expiry = card_expiry(cms, card)?;
    update_expiry(cms, info.serial, expiry, now, "ok")?;
    Ok(Renewed {
        serial: info.serial,
        expiry,
        reconciled: false,
    })
}

fn update_expiry(cms: &mut Cms, serial: u32, expiry: u64, now: u64, outcome: &str) -> Result<()> {
    let tx = cms.db.conn().transaction()?;
    tx.execute(
        "UPDATE cards SET expiry = ?1, updated = ?2 WHERE serial = ?3",
        rusqlite::params![expiry as i64, now as i64, serial],
    )?;
    db::audit(
        &tx,
        now,
        "holder",
        "renew",
        Some(serial),
        outcome,
        &format!("expires {}", time::date(expiry)),
    )?;
    Ok(tx.commit()?)
}

/// Unlocks a locked card with a sponsor's card in another reader. The
/// sponsor proves themself: their passcode, then a signature over a fresh
/// challenge with their 9A key, checked against their certificate from the
/// test CA, which must carry the sponsor role. Then the locked card gets
/// RESET RETRY COUNTER with its derived PUK and the holder's new passcode.
pub fn sponsor_unlock<S: Transport, T: Transport>(
    cms: &mut Cms,
    sponsor: &mut PivClient<S>,
    sponsor_passcode: &[u8],
    card: &mut PivClient<T>,
    new_passcode: &str,
    now: u64,
) -> Result<u32> {
    acceptable(new_passcode)?;
    // The sponsor.
    sponsor.select()?;
    let sponsor_info = sponsor.card_info()?;
    let sponsor_card = |e| CmsError::SponsorCard(Box::new(e));
    let sponsor_row = usable_card(cms, sponsor_info.serial).map_err(sponsor_card)?;
    let sponsor_cert = slot_certificate(cms, sponsor, SLOTS[0].1).map_err(sponsor_card)?;
    if sponsor_cert.uuid != sponsor_row.holder {
        return Err(CmsError::SponsorRecord);
    }
    if sponsor_cert.role != Some(Role::Sponsor) {
        let _ = cms.db.audit(
            now,
            &sponsor_cert.uuid,
            "sponsor unlock",
            None,
            "refused",
            "no sponsor role",
        );
        return Err(CmsError::NotSponsor(sponsor_cert.uuid));
    }
    if window(sponsor_cert.not_after, now) == Window::Expired {
        return Err(CmsError::SponsorExpired);
    }
    sponsor
        .verify_pin(sponsor_passcode)
        .map_err(CmsError::SponsorPasscode)?;
    let mut challenge = [0u8; 32];
    getrandom::fill(&mut challenge).map_err(CmsError::Random)?;
    let key = &sponsor_cert.key;
    let sig = sponsor.private_operation(0x9A, key.algorithm, 0x81, &key.to_sign(&challenge)?)?;
    key.verify(&challenge, &sig)
        .map_err(|_| CmsError::SponsorSignature)?;

    // The locked card.
    card.select()?;
    let info = card.card_info()?;
    usable_card(cms, info.serial)?;
    issued_card(cms, card, info.serial, "sponsor unlock", now)?;
    let (puk_left, _) = card.tries(0x81)?;
    if puk_left == 0 {
        return Err(CmsError::PukBlocked);
    }
    let puk = cms.puk(info.serial);
    card.unblock(puk.as_bytes(), new_passcode.as_bytes())
        .map_err(|e| match e {
            ClientError::Refused {
                status: Sw::AuthenticationMethodBlocked,
                ..
            } => CmsError::PukBlocked,
            other => step(Step::Unblock)(other),
        })?;
    cms.db.self_service_reset(info.serial)?;
    cms.db.audit(
        now,
        &sponsor_cert.uuid,
        "sponsor unlock",
        Some(info.serial),
        "ok",
        "",
    )?;
    Ok(info.serial)
}

/// How long a self-service security code is valid.
pub const CODE_SECONDS: u64 = 15 * 60;
/// Wrong entries after which a code is void.
pub const CODE_TRIES: u32 = 3;

impl Cms {
    /// The stored form of a security code: HMAC under the master secret,
    /// bound to the card, so a code is useless for any other card and the
    /// database never holds one in clear.
    fn code_digest(&self, serial: u32, code: &str) -> Vec<u8> {
        self.master.code_digest(serial, code).to_vec()
    }
}

/// Starts a self-service unlock: for a registered holder with an email or
/// mobile and unexpired certificates, draws a 6-digit code from the OS,
/// stores its digest (valid 15 minutes, 3 tries) and writes the message to
/// the outbox. Returns the message's path.
pub fn self_unlock_request<T: Transport>(
    cms: &mut Cms,
    card: &mut PivClient<T>,
    outbox: &Path,
    now: u64,
) -> Result<PathBuf> {
    let (info, _, holder) = registered(cms, card)?;
    let address = holder
        .email
        .clone()
        .or(holder.mobile.clone())
        .ok_or(CmsError::NoAddress)?;
    issued_card(cms, card, info.serial, "self-unlock request", now)?;
    let cert = slot_certificate(cms, card, SLOTS[0].1)?;
    if now >= cert.not_after {
        return Err(CmsError::CertificatesExpired);
    }
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(CmsError::Random)?;
    let code = format!("{:06}", u64::from_be_bytes(raw) % 1_000_000);
    let digest = cms.code_digest(info.serial, &code);
    let tx = cms
        .db
        .conn()
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let issued = db::Db::new_code(
        &tx,
        info.serial,
        &digest,
        now + CODE_SECONDS,
        CODE_TRIES,
        now,
    )?;
    let (outcome, detail) = match issued {
        Ok(()) => ("ok", format!("code sent to {address}")),
        Err(RequestRefused::Locked) => ("locked", String::new()),
        Err(RequestRefused::TooMany) => ("too many requests", String::new()),
    };
    db::audit(
        &tx,
        now,
        &holder.uuid,
        "self-unlock request",
        Some(info.serial),
        outcome,
        &detail,
    )?;
    if let Err(refused) = issued {
        // The refusal is recorded; no code was made.
        tx.commit()?;
        return Err(match refused {
            RequestRefused::Locked => CmsError::SelfServiceLocked {
                serial: Some(info.serial),
                failures: FAILURES_BEFORE_LOCK,
            },
            RequestRefused::TooMany => CmsError::TooManyRequests {
                serial: info.serial,
                requests: REQUESTS_PER_HOUR,
            },
        });
    }
    private_files::dir_all(outbox).map_err(CmsError::file(outbox))?;
    let path = outbox.join(format!("{:010}-{now}.eml", info.serial));
    let message = format!(
        "To: {address}\r\nFrom: s9card CMS <cms@s9card.invalid>\r\nSubject: Your smartcard security code\r\n\r\n\
         Your security code is {code}.\r\nIt is valid for 15 minutes and works once, for card {:010}.\r\n",
        info.serial
    );
    // The code is written down only once its row is committed: a message
    // must never announce a code the database does not hold.
    tx.commit()?;
    private_files::write(&path, message.as_bytes()).map_err(CmsError::file(&path))?;
    Ok(path)
}

/// Completes a self-service unlock with the code and a new passcode.
pub fn self_unlock_complete<T: Transport>(
    cms: &mut Cms,
    card: &mut PivClient<T>,
    code: &str,
    new_passcode: &str,
    now: u64,
) -> Result<u32> {
    acceptable(new_passcode)?;
    let (info, _, _) = registered(cms, card)?;
    issued_card(cms, card, info.serial, "self-unlock", now)?;
    // A code of another length cannot be right, but it is an entry like
    // any other: it costs a try.
    let code = code.trim();
    let given = if code.len() == 6 {
        cms.code_digest(info.serial, code)
    } else {
        Vec::new()
    };
    // The code is spent before the card is touched: used once, whatever
    // happens next.
    match cms.db.attempt_code(info.serial, &given, now)? {
        Attempt::Right => {}
        Attempt::Wrong { locked: true, .. } | Attempt::Locked => {
            return Err(CmsError::SelfServiceLocked {
                serial: None,
                failures: FAILURES_BEFORE_LOCK,
            });
        }
        Attempt::Wrong { tries_left, .. } => return Err(CmsError::WrongCode(tries_left)),
        Attempt::NoCode => return Err(CmsError::NoCode),
        Attempt::Void => return Err(CmsError::CodeVoid),
        Attempt::Expired => return Err(CmsError::CodeExpired),
    }
    let (puk_left, _) = card.tries(0x81)?;
    if puk_left == 0 {
        return Err(CmsError::PukBlocked);
    }
    let puk = cms.puk(info.serial);
    card.unblock(puk.as_bytes(), new_passcode.as_bytes())
        .map_err(step(Step::Unblock))?;
    cms.db
        .audit(now, "holder", "self-unlock", Some(info.serial), "ok", "")?;
    Ok(info.serial)
}
