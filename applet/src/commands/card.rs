//! The card as a whole: its identity and factory state, RESET, CARD INFO,
//! SET SERIAL.

use apdu::Command;
use apdu::tlv::{Tag, Writer};
use card_os::store::{Key, Op};
use card_os::{Context, Persistent, Reply};

use super::{admin_of, params};
use crate::admin::ManagementKey;
use crate::attest::{self, Subject};
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::keys::{self, KeyRecord, MAX_RECORD, Origin};
use crate::pin::{self, Tries};
use crate::session::Admin;
use crate::slot::{Passcode, PinPolicy, Slot, TouchPolicy};
use crate::{Piv, layout, objects};

/// The card's identity, creating the factory state on a blank card.
#[inline(never)]
pub(super) fn identity(piv: &Piv, ctx: &mut Context<'_>) -> Result<Identity> {
    if let Some(id) = Identity::load(ctx.store, &piv.device)? {
        return Ok(id);
    }
    let serial = piv
        .factory_serial
        .unwrap_or_else(|| Identity::random_serial(ctx.rng));
    let id = Identity::new(serial, piv.is_virtual, ctx.rng)?;
    factory(piv, ctx, &id, Birth::Blank)?;
    Ok(id)
}

/// Why a card takes its factory state, with the proof each case needs.
pub enum Birth<'a> {
    /// A card with no identity record yet: nothing to lose.
    Blank,
    /// RESET, once PIN and PUK are both blocked.
    Reset(#[allow(dead_code, reason = "a proof is held, not read")] &'a pin::BothBlocked),
    /// SET SERIAL on a card still in its factory state.
    Reissue(#[allow(dead_code, reason = "a proof is held, not read")] &'a Admin),
}

/// Writes the factory state in one transaction, clearing everything first:
/// identity, default PIN, PUK and management key, CHUID, CCC, and a fresh
/// attestation key with its self-signed certificate.
///
/// A blank birth clears too. A card without an identity record should hold
/// nothing else, but one whose identity record a flash writer deleted
/// still holds its keys: given the factory PIN, PUK and management key
/// beside them, that writer could use every key. Cleared, the keys go with
/// the identity.
#[inline(never)]
pub fn factory(piv: &Piv, ctx: &mut Context<'_>, id: &Identity, birth: Birth<'_>) -> Result<()> {
    // Every birth's proof (none for a blank card) is in its type.
    let _ = birth;
    let card = id.encode(&piv.device, ctx.rng)?;
    let (pin, puk) = pin::factory_records(id)?;
    let pin_tries = Tries::full(pin::DEFAULT_TRIES).sealed(id, Passcode::Pin)?;
    let puk_tries = Tries::full(pin::DEFAULT_TRIES).sealed(id, Passcode::Puk)?;
    let (admin, admin_len) = ManagementKey::factory(piv.profile)?.encode(&piv.device, ctx.rng)?;
    let mut chuid = [0u8; 96];
    let chuid_len = objects::default_chuid(id, &mut chuid)?;
    let mut ccc = [0u8; 96];
    let ccc_len = objects::default_ccc(id, &mut ccc)?;

    let attestation = keys::attestation_key(ctx.rng)?;
    let label = layout::slot_key(Slot::Attestation);
    let policy = (PinPolicy::Never, TouchPolicy::NEVER);
    let attestation_record = KeyRecord::new(
        &attestation,
        policy,
        Origin::Generated,
        label,
        &piv.device,
        ctx.rng,
    )?;
    let mut record = [0u8; MAX_RECORD];
    let record = attestation_record.encode(&mut record);
    let mut name = [0u8; 29];
    let issuer = attestation_name(id, &mut name);
    let mut cert = [0u8; 700];
    let cert_len = certificate_object(&mut cert, |w| {
        let subject = Subject {
            name: issuer,
            algorithm: attestation_record.algorithm,
            public: attestation_record.public(),
            attested: None,
        };
        attest::certificate(
            w,
            &subject,
            issuer,
            &attestation,
            attestation_record.public(),
            ctx.rng,
        )
    })?;
    let cert_key = Slot::Attestation
        .certificate_tag()
        .and_then(layout::object)
        .ok_or(Error::Flash)?;

    let mut ops: heapless::Vec<Op<'_>, { card_os::store::MAX_TX_OPS }> = heapless::Vec::new();
    push(&mut ops, Op::Clear)?;
    for op in [
        Op::Put(layout::CARD, &card),
        Op::Put(layout::PIN_HASH, &pin),
        Op::Put(layout::PIN_TRIES, &pin_tries),
        Op::Put(layout::PUK_HASH, &puk),
        Op::Put(layout::PUK_TRIES, &puk_tries),
        Op::Put(layout::ADMIN, admin.get(..admin_len).unwrap_or_default()),
        Op::Put(
            object_key(objects::CHUID)?,
            chuid.get(..chuid_len).unwrap_or_default(),
        ),
        Op::Put(
            object_key(objects::CCC)?,
            ccc.get(..ccc_len).unwrap_or_default(),
        ),
        Op::Put(label, record),
        Op::Put(cert_key, cert.get(..cert_len).unwrap_or_default()),
    ] {
        push(&mut ops, op)?;
    }
    ctx.store.commit(&ops)?;
    Ok(())
}

fn push<'a>(
    ops: &mut heapless::Vec<Op<'a>, { card_os::store::MAX_TX_OPS }>,
    op: Op<'a>,
) -> Result<()> {
    ops.push(op).map_err(|_| Error::NoSpace)
}

fn object_key(tag: u32) -> Result<Key> {
    layout::object(tag).ok_or(Error::Flash)
}

/// "s9card attestation 09NNNNNNNN", the attestation key's name.
pub(super) fn attestation_name<'b>(id: &Identity, out: &'b mut [u8; 29]) -> &'b [u8] {
    let (head, tail) = out.split_at_mut(19);
    head.copy_from_slice(b"s9card attestation ");
    tail.copy_from_slice(&id.serial_digits());
    out
}

/// Wraps a certificate as PIV stores it: `70 {cert} 71 01 00 FE 00`.
fn certificate_object<F>(out: &mut [u8], cert: F) -> Result<usize>
where
    F: FnOnce(&mut Writer<'_>) -> Result<()>,
{
    let mut w = Writer::new(out);
    let mut result = Ok(());
    w.nested(Tag::constant(0x70), |w| {
        result = cert(w);
        result.map_err(|_| apdu::Error::BufferTooSmall)
    })
    .map_err(|e| result.err().unwrap_or(Error::from(e)))?;
    w.tlv(Tag::constant(0x71), &[0x00])?;
    w.tlv(Tag::constant(0xFE), &[])?;
    Ok(w.len())
}

/// RESET (Yubico): back to the factory state, only once PIN and PUK are
/// both blocked. The serial and the virtual marker stay.
#[inline(never)]
pub(super) fn reset(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    params(cmd, 0, 0)?;
    let old = identity(piv, ctx)?;
    let blocked = pin::both_blocked(ctx.store, &old)?;
    let id = Identity::new(old.serial, old.is_virtual, ctx.rng)?;
    factory(piv, ctx, &id, Birth::Reset(&blocked))?;
    piv.session = crate::session::Session::default();
    Ok(())
}

/// CARD INFO (vendor): `01` serial, `02` flags (bit 0: virtual card),
/// `03` applet version, `04` slots with a staged renewal key.
#[inline(never)]
pub(super) fn card_info(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
) -> Result<()> {
    params(cmd, 0, 0)?;
    let id = identity(piv, ctx)?;
    let flags = if id.is_virtual {
        layout::FLAG_VIRTUAL
    } else {
        0
    };
    reply.tlv(Tag::constant(0x01), &id.serial.to_be_bytes())?;
    reply.tlv(Tag::constant(0x02), &[flags])?;
    reply.tlv(Tag::constant(0x03), &crate::VERSION)?;
    let store: &dyn Persistent = ctx.store;
    let mut staged: heapless::Vec<u8, { crate::slot::SLOT_COUNT }> = heapless::Vec::new();
    for slot in Slot::all().filter(|s| store.len_of(layout::staged_key(*s)).is_some()) {
        staged.push(slot.byte()).map_err(|_| Error::NoSpace)?;
    }
    reply.tlv(Tag::constant(0x04), &staged)?;
    Ok(())
}

/// SET SERIAL (vendor): gives a card still in its factory state the serial
/// its issuer assigns (`0900000000`–`0999999999`, 4 bytes big-endian) by
/// writing the factory state again under that serial. Refused once the PIN
/// or PUK has been changed: a personalised card keeps its serial.
#[inline(never)]
pub(super) fn set_serial(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    params(cmd, 0, 0)?;
    let serial: [u8; 4] = cmd.data().try_into().map_err(|_| Error::BadData)?;
    let serial = u32::from_be_bytes(serial);
    if !(crate::identity::SERIAL_MIN..=crate::identity::SERIAL_MAX).contains(&serial) {
        return Err(Error::BadData);
    }
    let factory_state = pin::stored(ctx.store, Passcode::Pin)?.is_default
        && pin::stored(ctx.store, Passcode::Puk)?.is_default;
    let admin = admin_of(piv)?;
    if !factory_state {
        return Err(Error::Conditions);
    }
    let old = identity(piv, ctx)?;
    let id = Identity::new(serial, old.is_virtual, ctx.rng)?;
    factory(piv, ctx, &id, Birth::Reissue(admin))?;
    // The management key is the factory one again: the session keeps it.
    piv.session.forget_pin();
    Ok(())
}
