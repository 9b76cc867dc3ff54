//! Unlocking a locked card: with a sponsor's card, or by the holder with a
//! security code sent to their registered address.

use std::path::{Path, PathBuf};

use crate::ca::Role;
use crate::db::{self, Attempt, FAILURES_BEFORE_LOCK, REQUESTS_PER_HOUR, RequestRefused};
use crate::{CmsError, Result, Step};
use client::{ClientError, PivClient, Slot, Status as Sw, Transport};

use super::{
    Cms, SLOTS, Window, acceptable, issued_card, registered, slot_certificate, step, usable_card,
    window,
};

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
    let sig = sponsor.private_operation(
        Slot::Authentication,
        key.algorithm,
        0x81,
        &key.to_sign(&challenge)?,
    )?;
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
