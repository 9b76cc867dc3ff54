//! Renewal: new keys and certificates in the 90 days before expiry, all or
//! nothing per slot.

use crate::ca;
use crate::ca::Identity;
use crate::content;
use crate::db::{self, Holder, Issued};
use crate::key_history::{self, KeyHistory};
use crate::keys::CardKey;
use crate::sm;
use crate::time::{self, DAY};
use crate::{CmsError, Result};
use client::{AdminAlgorithm, ClientError, PivClient, Slot, Status as Sw, Transport, unwrap_tlv};

use super::{
    Cms, SLOTS, card_expiry, issued_on, purpose, registered, slot_certificate, write_content,
};

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
    let id = identity(card, &holder)?;
    if all_new {
        let expiry = card_expiry(cms, card)?;
        // The run cut short may have stopped before the CHUID and the
        // Security Object caught up with the new expiry.
        card.authenticate(
            AdminAlgorithm::Aes256,
            &cms.master.management_key(info.serial),
        )?;
        write_content(cms, card, &id, info.serial, expiry, now)?;
        let certificates = issued_on(cms, card)?;
        update_expiry(cms, info.serial, &certificates, expiry, now, "reconciled")?;
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
        if info.staged.contains(&slot.byte()) {
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
        let cert = cms.ca.issue(&id, purpose(*slot), &key, now)?;
        if *slot == Slot::KeyManagement {
            retire_and_commit(cms, card, &cert)?;
        } else {
            card.commit_renewal(*slot, &cert)?;
        }
    }
    // A slot renewed by an interrupted earlier run expires before the ones
    // renewed now: the card's expiry is the earliest.
    let expiry = card_expiry(cms, card)?;
    write_content(cms, card, &id, info.serial, expiry, now)?;
    let certificates = issued_on(cms, card)?;
    update_expiry(cms, info.serial, &certificates, expiry, now, "ok")?;
    Ok(Renewed {
        serial: info.serial,
        expiry,
        reconciled: false,
    })
}

/// Installs a new key management certificate and keeps the key it
/// replaces in the card's key history ([`crate::key_history`]): the old
/// certificate object is copied to the chosen retired slot's object first,
/// then one card command moves the old key there, installs the new one and
/// counts it in the Key History object. A run cut short anywhere here
/// chooses the same slot again.
fn retire_and_commit<T: Transport>(
    cms: &Cms,
    card: &mut PivClient<T>,
    certificate: &[u8],
) -> Result<()> {
    let history = KeyHistory::read(card)?;
    let (retired, next) = match history.retire() {
        Err(CmsError::KeyHistoryFull(_)) => (oldest_retired(cms, card)?, history),
        other => other?,
    };
    let current = Slot::KeyManagement
        .certificate_tag()
        .ok_or(CmsError::NoCertificate)?;
    let old = card.get_object(current)?.ok_or(CmsError::NoCertificate)?;
    let place = retired.certificate_tag().ok_or(CmsError::NoCertificate)?;
    card.put_object(place, &old)?;
    card.commit_renewal_retiring(Slot::KeyManagement, certificate, retired, &next.encode())?;
    Ok(())
}

/// With every retired slot used, the oldest retired key makes room: its
/// slot is emptied (or found empty, by a run cut short after that), and
/// the count stays at twenty. Oldest is the certificate that expires
/// first.
fn oldest_retired<T: Transport>(cms: &Cms, card: &mut PivClient<T>) -> Result<Slot> {
    let mut oldest: Option<(u64, Slot)> = None;
    for slot in key_history::retired_slots() {
        if card.key_metadata(slot)?.is_none() {
            return Ok(slot);
        }
        let tag = slot.certificate_tag().ok_or(CmsError::NoCertificate)?;
        let expires = match card.get_object(tag)? {
            Some(content) => ca::inspect(&cms.ca, unwrap_tlv(&content, 0x70)?)?.not_after,
            None => 0,
        };
        if oldest.is_none_or(|(at, _)| expires < at) {
            oldest = Some((expires, slot));
        }
    }
    let (_, slot) = oldest.ok_or(CmsError::KeyHistoryFull(0))?;
    card.delete_key(slot)?;
    Ok(slot)
}

/// Who the card's certificates name: the registered holder, and the
/// card's GUID from its CHUID (a renewal keeps the card's identity).
fn identity<T: Transport>(card: &mut PivClient<T>, holder: &Holder) -> Result<Identity> {
    let chuid = card
        .get_object(content::CHUID)?
        .ok_or(CmsError::Encoding("the card has no CHUID".into()))?;
    let guid = sm::guid_of(&chuid).ok_or(CmsError::Encoding("a CHUID without a GUID".into()))?;
    Ok(Identity {
        uuid: holder.uuid.clone(),
        name: holder.name.clone(),
        role: holder.role,
        email: holder.email.clone(),
        guid,
    })
}

/// Records the card's new expiry and certificates (the ones they replaced
/// are revoked as superseded), with an audit record, in one transaction.
fn update_expiry(
    cms: &mut Cms,
    serial: u32,
    certificates: &[Issued],
    expiry: u64,
    now: u64,
    outcome: &str,
) -> Result<()> {
    let tx = cms.db.conn().transaction()?;
    db::record_certificates(&tx, serial, certificates, now)?;
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
