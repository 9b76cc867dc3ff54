//! The passcodes and the management key: VERIFY, CHANGE REFERENCE DATA,
//! RESET RETRY COUNTER, SET PIN RETRIES, SET MANAGEMENT KEY.

use apdu::Command;
use card_os::Context;
use card_os::store::Op;

use super::card::identity;
use super::{admin_of, pin_of};
use crate::admin::{self, ManagementKey};
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::ins::KEY_REF_ADMIN;
use crate::passcode::{FIELD, Padded};
use crate::pin::{self, Tries};
use crate::slot::{AdminAlgorithm, Passcode, TouchPolicy};
use crate::{Piv, layout};

/// VERIFY: check the PIN, report its status (no data), or log out (P1
/// `FF`); the same for the pairing code (`98`), whose success opens the
/// virtual contact interface (the command comes protected: see
/// [`crate::access`]).
#[inline(never)]
pub(super) fn verify(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    let which = match Passcode::from_byte(cmd.p2())? {
        Passcode::Puk => return Err(Error::BadParameters),
        Passcode::PairingCode => pairing_code_set(piv, ctx)?,
        Passcode::Pin => Passcode::Pin,
    };
    match (cmd.p1(), cmd.data()) {
        (0xFF, []) => {
            match which {
                Passcode::PairingCode => piv.session.vci = false,
                _ => piv.session.forget_pin(),
            }
            Ok(())
        }
        (0xFF, _) => Err(Error::WrongLength),
        (0x00, []) => {
            let id = identity(piv, ctx)?;
            let tries = pin::tries(ctx.store, &id, which)?;
            let verified = match which {
                Passcode::PairingCode => piv.session.vci,
                _ => piv.session.pin.is_some(),
            };
            match (tries.left, verified) {
                (0, _) => Err(Error::Blocked),
                (_, true) => Ok(()),
                (left, false) => Err(Error::WrongPasscode(left)),
            }
        }
        (0x00, field) => {
            let candidate = piv.rules().presented(which, field)?;
            let id = identity(piv, ctx)?;
            match which {
                Passcode::PairingCode => {
                    pin::check(ctx.store, &mut piv.session, &id, which, &candidate, &[])?;
                    piv.session.vci = true;
                    Ok(())
                }
                _ => pin::verify(ctx.store, &mut piv.session, &id, &candidate),
            }
        }
        _ => Err(Error::BadParameters),
    }
}

/// The pairing code's reference, if the card has one set: a card without
/// secure messaging (the YubiKey profile) knows no `98` (`6A 86`), and a
/// card whose issuer set no code has none to check (`6A 88`).
fn pairing_code_set(piv: &Piv, ctx: &Context<'_>) -> Result<Passcode> {
    if !piv.profile.has_secure_messaging() {
        return Err(Error::BadParameters);
    }
    if ctx.store.len_of(layout::PAIRING_TRIES).is_none() {
        return Err(Error::KeyNotFound);
    }
    Ok(Passcode::PairingCode)
}

/// PUT DATA of the Pairing Code Reference Data Container (`5FC123`): the
/// issuer sets the pairing code, `99 08 digits [FE 00]`, with a full
/// counter, in one transaction; empty content removes it (the virtual
/// contact interface then needs none). The card keeps the code's digest
/// only, so the container itself is never read back (`6A 82`): the CMS
/// shows the holder the code once.
#[inline(never)]
pub(super) fn set_pairing_code(piv: &mut Piv, content: &[u8], ctx: &mut Context<'_>) -> Result<()> {
    admin_of(piv)?;
    if !piv.profile.has_secure_messaging() {
        return Err(Error::BadData);
    }
    if content.is_empty() {
        ctx.store.commit(&[
            Op::Delete(layout::PAIRING_HASH),
            Op::Delete(layout::PAIRING_TRIES),
        ])?;
        piv.session.vci = false;
        return Ok(());
    }
    let mut tlvs = apdu::tlv::Reader::new(content);
    let code = match tlvs.next() {
        Some(Ok(t)) if t.tag.value() == 0x99 => t.value,
        _ => return Err(Error::BadData),
    };
    match tlvs.next() {
        None => {}
        Some(Ok(t)) if t.tag.value() == 0xFE && t.value.is_empty() && tlvs.next().is_none() => {}
        _ => return Err(Error::BadData),
    }
    let code = crate::passcode::Padded::pairing(code)?;
    let id = identity(piv, ctx)?;
    let record = pin::encode_digest(&pin::digest(&id, Passcode::PairingCode, &code)?, false);
    let tries = Tries::full(pin::PAIRING_TRIES).sealed(&id, Passcode::PairingCode)?;
    ctx.store.commit(&[
        Op::Put(layout::PAIRING_HASH, &record),
        Op::Put(layout::PAIRING_TRIES, &tries),
    ])?;
    Ok(())
}

/// Splits `old ‖ new`, two 8-byte fields.
fn two_fields(data: &[u8]) -> Result<(&[u8], &[u8])> {
    if data.len() != 2 * FIELD {
        return Err(Error::BadData);
    }
    Ok(data.split_at(FIELD))
}

/// The new value a command sets, as the profile's rules read it. A Series 9
/// card refuses a bad one outright, at no cost in tries. A YubiKey checks
/// the presented passcode first, so a bad new value after a wrong one is a
/// wrong try (yubikit blocks the PUK with empty values, and counts on it);
/// after a right one it is refused with nothing changed.
fn new_value(
    piv: &mut Piv,
    ctx: &mut Context<'_>,
    id: &Identity,
    (checked, presented): (Passcode, &Padded),
    (which, field): (Passcode, &[u8]),
) -> Result<Padded> {
    let rules = piv.rules();
    match rules.new_value(which, field) {
        Err(refused) if rules.checks_presented_first() => {
            pin::check(ctx.store, &mut piv.session, id, checked, presented, &[])?;
            Err(refused)
        }
        outcome => outcome,
    }
}

/// CHANGE REFERENCE DATA for the PIN (`80`), the PUK (`81`) or the
/// pairing code (`98`).
#[inline(never)]
pub(super) fn change_reference(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
) -> Result<()> {
    if cmd.p1() != 0 {
        return Err(Error::BadParameters);
    }
    let which = match Passcode::from_byte(cmd.p2())? {
        Passcode::PairingCode => pairing_code_set(piv, ctx)?,
        which => which,
    };
    let (old, new) = two_fields(cmd.data())?;
    let old = piv.rules().presented(which, old)?;
    let id = identity(piv, ctx)?;
    let new = new_value(piv, ctx, &id, (which, &old), (which, new))?;
    let record = pin::encode_digest(&pin::digest(&id, which, &new)?, false);
    pin::check(
        ctx.store,
        &mut piv.session,
        &id,
        which,
        &old,
        &[Op::Put(pin::keys(which).0, &record)],
    )
}

/// RESET RETRY COUNTER: PUK ‖ new PIN unblocks the PIN.
#[inline(never)]
pub(super) fn reset_retry_counter(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
) -> Result<()> {
    if cmd.p1() != 0 || Passcode::from_byte(cmd.p2())? != Passcode::Pin {
        return Err(Error::BadParameters);
    }
    let (puk, new) = two_fields(cmd.data())?;
    let puk = piv.rules().presented(Passcode::Puk, puk)?;
    let id = identity(piv, ctx)?;
    let new = new_value(piv, ctx, &id, (Passcode::Puk, &puk), (Passcode::Pin, new))?;
    let pin_tries = pin::tries(ctx.store, &id, Passcode::Pin)?;
    let record = pin::encode_digest(&pin::digest(&id, Passcode::Pin, &new)?, false);
    let full = Tries::full(pin_tries.max).sealed(&id, Passcode::Pin)?;
    let then = [
        Op::Put(layout::PIN_HASH, &record),
        Op::Put(layout::PIN_TRIES, &full),
    ];
    pin::check(ctx.store, &mut piv.session, &id, Passcode::Puk, &puk, &then)?;
    piv.session.forget_pin();
    Ok(())
}

/// SET PIN RETRIES (Yubico): new try counts; PIN and PUK go back to their
/// factory values, as on the cards tools expect.
#[inline(never)]
pub(super) fn set_pin_retries(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
) -> Result<()> {
    let (pin_tries, puk_tries) = (cmd.p1(), cmd.p2());
    if pin_tries == 0 || puk_tries == 0 {
        return Err(Error::BadParameters);
    }
    if !cmd.data().is_empty() {
        return Err(Error::WrongLength);
    }
    let id = identity(piv, ctx)?;
    pin::set_retries(
        ctx.store,
        &id,
        (pin_tries, puk_tries),
        admin_of(piv)?,
        pin_of(piv)?,
    )?;
    piv.session.forget_pin();
    Ok(())
}

/// SET MANAGEMENT KEY (Yubico): `alg 9B len key`.
#[inline(never)]
pub(super) fn set_management_key(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
) -> Result<()> {
    if cmd.p1() != 0xFF || !matches!(cmd.p2(), 0xFF | 0xFE) {
        return Err(Error::BadParameters);
    }
    let [alg, reference, len, key @ ..] = cmd.data() else {
        return Err(Error::BadData);
    };
    let algorithm = AdminAlgorithm::from_byte(*alg).map_err(|_| Error::BadData)?;
    if *reference != KEY_REF_ADMIN || usize::from(*len) != key.len() {
        return Err(Error::BadData);
    }
    let touch = if cmd.p2() == 0xFE {
        TouchPolicy::from_byte(0x02)?
    } else {
        TouchPolicy::NEVER
    };
    let new = ManagementKey::chosen(algorithm, touch, key, piv.profile)?;
    admin::replace(ctx.store, &piv.device, ctx.rng, &new, admin_of(piv)?)
}
