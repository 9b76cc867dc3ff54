//! Personalisation: a factory-fresh card made a holder's, resumable when cut short.

use crate::ca::{self, Identity, Role};
use crate::content;
use crate::db::{CardRow, Holder};
use crate::keys::CardKey;
use crate::sm;
use crate::time::DAY;
use crate::{CmsError, Result, Step};
use client::{AdminAlgorithm, Algorithm, DEFAULT_MGM, PivClient, Suite, Transport};

use super::{
    Cms, SLOTS, acceptable, card_expiry, issued_on, purpose, slot_certificate, step, write_content,
};

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
    /// Secure messaging with this cipher suite: key `04`, its CVC from the
    /// CA's signer, and a pairing code for the virtual contact interface.
    pub secure_messaging: Option<Suite>,
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

/// What personalisation produced.
#[derive(Clone, Debug)]
pub struct Personalised {
    /// The card's serial.
    pub serial: u32,
    /// When its certificates expire.
    pub expiry: u64,
    /// A virtual card.
    pub is_virtual: bool,
    /// The pairing code set on the card, to show the holder this once
    /// (the CMS keeps no copy, the card only a digest).
    pub pairing_code: Option<zeroize::Zeroizing<String>>,
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
    let mut pairing_code = None;
    if card.is_default(0x9B)? {
        card.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM)?;
        (info, pairing_code) = personalize_card(cms, card, r, info, now)?;
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
    let certificates = issued_on(cms, card)?;
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
        .register(&holder, &row, &certificates, "registration authority", now)?;
    Ok(Personalised {
        serial: info.serial,
        expiry,
        is_virtual: info.is_virtual,
        pairing_code,
    })
}

/// The card steps of personalisation, each skipped if an earlier attempt
/// did it; ends with the derived management key. Returns the card's info
/// under its final serial, and the pairing code it set.
fn personalize_card<T: Transport>(
    cms: &mut Cms,
    card: &mut PivClient<T>,
    r: &Request,
    info: client::CardInfo,
    now: u64,
) -> Result<(client::CardInfo, Option<zeroize::Zeroizing<String>>)> {
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
    // A new card identity: a resumed attempt makes it again, with the keys
    // and certificates (a key without its certificate from the attempt cut
    // short is replaced) and everything that names the GUID.
    let id = Identity {
        uuid: r.uuid.clone(),
        name: r.name.clone(),
        role: r.role,
        email: r.email.clone(),
        guid: content::new_guid()?,
    };
    for (slot, object) in SLOTS {
        let key = CardKey {
            algorithm: r.algorithm,
            public: card.generate_key(slot, r.algorithm, false)?,
        };
        let cert = cms.ca.issue(&id, purpose(slot), &key, now)?;
        card.put_object(object, &PivClient::<T>::certificate_object(&cert))?;
    }
    write_content(cms, card, &id, info.serial, expiry, now)?;
    let pairing_code = match r.secure_messaging {
        Some(suite) => {
            let signer = sm::SmSigner::load_or_create(&cms.ca, now)?;
            let code = sm::new_pairing_code()?;
            sm::make_ready(card, &signer, suite, &id.guid, Some(&code))?;
            Some(code)
        }
        None => None,
    };
    card.set_management_key(
        AdminAlgorithm::Aes256,
        &cms.master.management_key(info.serial),
    )?;
    Ok((info, pairing_code))
}
