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

/// VERIFY: check the PIN, report its status (no data), or log out (P1 `FF`).
#[inline(never)]
pub(super) fn verify(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    if Passcode::from_byte(cmd.p2())? != Passcode::Pin {
        return Err(Error::BadParameters);
    }
    match (cmd.p1(), cmd.data()) {
        (0xFF, []) => {
            piv.session.forget_pin();
            Ok(())
        }
        (0xFF, _) => Err(Error::WrongLength),
        (0x00, []) => {
            let id = identity(piv, ctx)?;
            let tries = pin::tries(ctx.store, &id, Passcode::Pin)?;
            match (tries.left, piv.session.pin.is_some()) {
                (0, _) => Err(Error::Blocked),
                (_, true) => Ok(()),
                (left, false) => Err(Error::WrongPasscode(left)),
            }
        }
        (0x00, field) => {
            let candidate = piv.rules().presented(Passcode::Pin, field)?;
            let id = identity(piv, ctx)?;
            pin::verify(ctx.store, &mut piv.session, &id, &candidate)
        }
        _ => Err(Error::BadParameters),
    }
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

/// CHANGE REFERENCE DATA for the PIN (`80`) or the PUK (`81`).
#[inline(never)]
pub(super) fn change_reference(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
) -> Result<()> {
    if cmd.p1() != 0 {
        return Err(Error::BadParameters);
    }
    let which = Passcode::from_byte(cmd.p2())?;
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
