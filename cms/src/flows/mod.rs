//! The CMS flows, as library functions the CLI calls: personalisation,
//! status, renewal, and sponsor and self-service unlock, one module each;
//! here, the CMS's state and the checks every flow shares (which card is in
//! the reader, whether the register lets it be used).

mod personalise;
mod renewal;
mod status;
mod unlock;

pub use personalise::*;
pub use renewal::*;
pub use status::*;
pub use unlock::*;

use std::path::{Path, PathBuf};

use super::ca::{self, CertInfo, Identity, Purpose, TestCa};
use super::content::{self, ContentSigner};
use super::db::{CardRow, Db, Holder, Issued};
use super::derive::MasterSecret;
use crate::{CmsError, Result, Step};
use client::{AdminAlgorithm, ClientError, PivClient, Slot, Transport, unwrap_tlv};

/// The keys a staff card carries and their certificate objects: logon
/// (`9A`, first: it names the holder), signature, key management and card
/// authentication.
pub const SLOTS: [(Slot, u32); 4] = [
    (Slot::Authentication, 0x5FC105),
    (Slot::Signature, 0x5FC10A),
    (Slot::KeyManagement, 0x5FC10B),
    (Slot::CardAuthentication, 0x5FC101),
];

/// What the certificate of a key in [`SLOTS`] is for.
pub fn purpose(slot: Slot) -> Purpose {
    match slot {
        Slot::Signature => Purpose::Signature,
        Slot::KeyManagement => Purpose::KeyManagement,
        Slot::CardAuthentication => Purpose::CardAuthentication,
        _ => Purpose::Authentication,
    }
}

/// Writes the card's signed content for a card whose certificates expire
/// at `expiry`: the CHUID (its GUID kept), the Printed Information, and
/// the Security Object over both. The management key must be
/// authenticated.
fn write_content<T: Transport>(
    cms: &Cms,
    card: &mut PivClient<T>,
    id: &Identity,
    serial: u32,
    expiry: u64,
    now: u64,
) -> Result<Vec<u8>> {
    let signer = ContentSigner::load_or_create(&cms.ca, now)?;
    let chuid = signer.chuid(&id.guid, expiry)?;
    let printed = content::printed_information(&id.name, id.role.as_str(), expiry, serial);
    card.put_object(content::CHUID, &chuid)?;
    card.put_object(content::PRINTED_INFORMATION, &printed)?;
    let security_object = signer.security_object(&[&chuid, &printed])?;
    card.put_object(content::SECURITY_OBJECT, &security_object)?;
    Ok(chuid)
}

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
        Cms::init_ca_in_realm(db, now, ca::Realm::default())
    }

    /// [`Cms::init_ca`] for holders in `realm`: their UPNs and Kerberos
    /// principals name it.
    pub fn init_ca_in_realm(db: &Path, now: u64, realm: ca::Realm) -> Result<TestCa> {
        let (ca_dir, master) = paths(db);
        let ca = TestCa::init_in_realm(&ca_dir, now, realm)?;
        MasterSecret::load_or_create(&master)?;
        Db::open(db)?;
        Ok(ca)
    }

    /// The derived PUK of a card (never printed; for the flows only).
    fn puk(&self, serial: u32) -> String {
        self.master.puk(serial)
    }
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

/// The certificates on a card, as the database records them.
fn issued_on<T: Transport>(cms: &Cms, card: &mut PivClient<T>) -> Result<Vec<Issued>> {
    SLOTS
        .iter()
        .map(|&(slot, object)| {
            let cert = slot_certificate(cms, card, object)?;
            Ok(Issued {
                serial: cert.serial,
                slot: slot.byte(),
                not_after: cert.not_after,
            })
        })
        .collect()
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

/// The certificate in a slot, checked against the CA.
fn slot_certificate<T: Transport>(
    cms: &Cms,
    card: &mut PivClient<T>,
    object: u32,
) -> Result<CertInfo> {
    let content = card.get_object(object)?.ok_or(CmsError::NoCertificate)?;
    ca::inspect(&cms.ca, unwrap_tlv(&content, 0x70)?)
}
