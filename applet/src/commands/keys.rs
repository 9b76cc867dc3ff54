//! The slots' keys: GENERATE (and STAGE, its renewal form), IMPORT, GET
//! METADATA, MOVE KEY, ATTEST, COMMIT and ABORT RENEWAL.

use apdu::Command;
use apdu::tlv::{Reader, Tag, Writer};
use card_os::store::{Key, Op};
use card_os::{Context, Reply};

use super::card::{attestation_name, identity};
use super::{admin_of, pin_of};
use crate::admin::ManagementKey;
use crate::algorithm::{Algorithm, RSA_EXPONENT};
use crate::attest::Subject;
use crate::crypto::Private;
#[cfg(feature = "rsa")]
use crate::crypto::rsa::Parts;
use crate::error::{Error, Result};
use crate::ins::KEY_REF_ADMIN;
use crate::keys::{self, Imported, KeyRecord, MAX_RECORD, Origin};
use crate::pin;
use crate::slot::{KeySlot, Passcode, PinPolicy, Slot, TouchPolicy};
use crate::{Piv, layout, objects};

const PUBLIC_KEY: Tag = Tag::constant(0x7F49);

/// Writes a public key as GENERATE and GET METADATA answer it: RSA as
/// `81` modulus and `82` exponent, the others as an `86` point.
fn public_key(w: &mut Writer<'_>, algorithm: Algorithm, public: &[u8]) -> Result<()> {
    if algorithm.rsa_bits().is_some() {
        w.tlv(Tag::constant(0x81), public)?;
        w.tlv(Tag::constant(0x82), &RSA_EXPONENT.to_be_bytes()[1..])?;
    } else {
        w.tlv(Tag::constant(0x86), public)?;
    }
    Ok(())
}

/// The policies of a GENERATE or IMPORT: `AA` PIN policy, `AB` touch policy.
fn policies(
    slot: Slot,
    pin: Option<&[u8]>,
    touch: Option<&[u8]>,
) -> Result<(PinPolicy, TouchPolicy)> {
    let pin = match pin {
        None => slot.default_pin_policy(),
        Some([b]) => PinPolicy::from_byte(*b, slot)?,
        Some(_) => return Err(Error::BadData),
    };
    // Key establishment happens before any PIN can be sent (over the
    // contactless interface, a PIN travels only inside the session).
    if slot == Slot::SecureMessaging && pin != PinPolicy::Never {
        return Err(Error::BadData);
    }
    let touch = match touch {
        None => TouchPolicy::NEVER,
        Some([b]) => TouchPolicy::from_byte(*b)?,
        Some(_) => return Err(Error::BadData),
    };
    Ok((pin, touch))
}

/// A GENERATE, parsed: `AC { 80 alg [AA pin] [AB touch] }`.
struct Generate {
    slot: KeySlot,
    algorithm: Algorithm,
    policy: (PinPolicy, TouchPolicy),
}

impl Generate {
    fn parse(cmd: &Command<'_>) -> Result<Generate> {
        if cmd.p1() != 0 {
            return Err(Error::BadParameters);
        }
        let slot = KeySlot::from_byte(cmd.p2())?;
        let (outer, rest) = apdu::tlv::Tlv::parse(cmd.data())?;
        if outer.tag != Tag::constant(0xAC) || !rest.is_empty() {
            return Err(Error::BadData);
        }
        let (mut alg, mut pin, mut touch) = (None, None, None);
        for tlv in Reader::new(outer.value) {
            let tlv = tlv?;
            let field = match tlv.tag.value() {
                0x80 => &mut alg,
                0xAA => &mut pin,
                0xAB => &mut touch,
                _ => return Err(Error::BadData),
            };
            if field.replace(tlv.value).is_some() {
                return Err(Error::BadData);
            }
        }
        let algorithm = match alg {
            Some([b]) => Algorithm::built(*b).ok_or(Error::BadData)?,
            _ => return Err(Error::BadData),
        };
        if !slot.slot().accepts(algorithm) {
            return Err(Error::BadData);
        }
        Ok(Generate {
            slot,
            algorithm,
            policy: policies(slot.slot(), pin, touch)?,
        })
    }
}

/// GENERATE ASYMMETRIC KEY PAIR (or, `staged`, into a slot's renewal
/// staging area, where the key in the slot keeps working).
#[inline(never)]
pub(super) fn generate(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
    staged: bool,
) -> Result<()> {
    let Generate {
        slot,
        algorithm,
        policy,
    } = Generate::parse(cmd)?;
    let admin = admin_of(piv)?;
    // A renewal's key is staged by its holder or sponsor: the PIN too.
    let secret = if staged {
        keys::generate_staged(algorithm, ctx.rng, admin, pin_of(piv)?)?
    } else {
        keys::generate(algorithm, ctx.rng, admin)?
    };
    keep_generated(piv, ctx, reply, &secret, slot, policy, staged)
}

/// Seals and stores a key GENERATE made, and answers its public key. Not
/// inlined: the record it builds (2 KiB for RSA-4096) is no part of the
/// frame that is alive while the key is generated, the card's deepest
/// stack.
#[inline(never)]
fn keep_generated(
    piv: &mut Piv,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
    secret: &Private,
    slot: KeySlot,
    policy: (PinPolicy, TouchPolicy),
    staged: bool,
) -> Result<()> {
    let algorithm = secret.algorithm();
    // A staged key is sealed for the slot it will live in, so committing
    // the renewal copies its record without opening it.
    let label = layout::slot_key(slot.slot());
    let target = if staged {
        layout::staged_key(slot.slot())
    } else {
        label
    };
    let record = store_key(piv, ctx, secret, (policy, Origin::Generated), label, target)?;
    reply.nested(PUBLIC_KEY, |w| {
        public_key(w, algorithm, record.public()).map_err(|_| apdu::Error::BufferTooSmall)
    })?;
    Ok(())
}

/// An IMPORT, parsed: P1 the algorithm, P2 the slot, the key's parts by
/// Yubico's tags (`01`–`05` RSA CRT, `06` EC scalar, `07` Ed25519, `08`
/// X25519) and the policies.
struct Import<'a> {
    slot: Slot,
    algorithm: Algorithm,
    key: Imported<'a>,
    policy: (PinPolicy, TouchPolicy),
}

impl<'a> Import<'a> {
    fn parse(cmd: &'a Command<'a>) -> Result<Import<'a>> {
        let algorithm = Algorithm::built(cmd.p1()).ok_or(Error::BadParameters)?;
        let slot = Slot::from_byte(cmd.p2())?;
        if !slot.accepts(algorithm) {
            return Err(Error::BadData);
        }
        let mut fields: [Option<&[u8]>; 8] = [None; 8];
        let (mut pin, mut touch) = (None, None);
        for tlv in Reader::new(cmd.data()) {
            let tlv = tlv?;
            let field = match tlv.tag.value() {
                t @ 0x01..=0x08 => fields
                    .get_mut(usize::from(t as u8 - 1))
                    .ok_or(Error::BadData)?,
                0xAA => &mut pin,
                0xAB => &mut touch,
                _ => return Err(Error::BadData),
            };
            if field.replace(tlv.value).is_some() {
                return Err(Error::BadData);
            }
        }
        // Exactly the parts of this algorithm, nothing else.
        let key = match (algorithm, fields) {
            #[cfg(feature = "rsa")]
            (
                _,
                [
                    Some(p),
                    Some(q),
                    Some(dp),
                    Some(dq),
                    Some(qinv),
                    None,
                    None,
                    None,
                ],
            ) if algorithm.rsa_bits().is_some() => Imported::Rsa(Parts { p, q, dp, dq, qinv }),
            (
                Algorithm::P256 | Algorithm::P384,
                [None, None, None, None, None, Some(s), None, None],
            )
            | (Algorithm::Ed25519, [None, None, None, None, None, None, Some(s), None])
            | (Algorithm::X25519, [None, None, None, None, None, None, None, Some(s)]) => {
                Imported::Scalar(s)
            }
            _ => return Err(Error::BadData),
        };
        Ok(Import {
            slot,
            algorithm,
            key,
            policy: policies(slot, pin, touch)?,
        })
    }
}

/// IMPORT ASYMMETRIC KEY (Yubico). A key that is not consistent is refused
/// with nothing stored.
#[inline(never)]
pub(super) fn import(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    let Import {
        slot,
        algorithm,
        key,
        policy,
    } = Import::parse(cmd)?;
    let secret = keys::import(algorithm, &key, admin_of(piv)?)?;
    let label = layout::slot_key(slot);
    store_key(piv, ctx, &secret, (policy, Origin::Imported), label, label)?;
    Ok(())
}

/// Seals `secret` for the slot whose record key is `label` and puts the
/// record under `target` (the slot itself, or its staging area) in one
/// transaction.
fn store_key(
    piv: &Piv,
    ctx: &mut Context<'_>,
    secret: &Private,
    (policy, origin): ((PinPolicy, TouchPolicy), Origin),
    label: Key,
    target: Key,
) -> Result<KeyRecord> {
    let record = KeyRecord::new(secret, policy, origin, label, &piv.device, ctx.rng)?;
    let mut buf = [0u8; MAX_RECORD];
    let mut ops: heapless::Vec<Op<'_>, { card_os::store::MAX_TX_OPS }> = heapless::Vec::new();
    // A key staged for another slot is older than this renewal's newest
    // step: a renewal stages and commits one slot at a time, so whatever
    // is still staged elsewhere was left by an earlier one, and goes in
    // the same transaction as this key comes.
    if Slot::all().any(|s| layout::staged_key(s) == target) {
        for slot in Slot::all() {
            let other = layout::staged_key(slot);
            if other != target && ctx.store.len_of(other).is_some() {
                ops.push(Op::Delete(other)).map_err(|_| Error::NoSpace)?;
            }
        }
    }
    ops.push(Op::Put(target, record.encode(&mut buf)))
        .map_err(|_| Error::NoSpace)?;
    ctx.store.commit(&ops)?;
    Ok(record)
}

/// GET METADATA (Yubico) for the PIN, PUK, management key or a slot.
#[inline(never)]
pub(super) fn metadata(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
) -> Result<()> {
    if cmd.p1() != 0 {
        return Err(Error::BadParameters);
    }
    match cmd.p2() {
        0x80 | 0x81 => {
            let which = Passcode::from_byte(cmd.p2())?;
            let id = identity(piv, ctx)?;
            let tries = pin::tries(ctx.store, &id, which)?;
            let stored = pin::stored(ctx.store, which)?;
            reply.tlv(Tag::constant(0x01), &[0xFF])?;
            reply.tlv(Tag::constant(0x05), &[u8::from(stored.is_default)])?;
            reply.tlv(Tag::constant(0x06), &[tries.max, tries.left])?;
        }
        KEY_REF_ADMIN => {
            let key = ManagementKey::load(ctx.store, &piv.device)?;
            reply.tlv(Tag::constant(0x01), &[key.algorithm.byte()])?;
            reply.tlv(Tag::constant(0x02), &[0x00, key.touch.byte()])?;
            reply.tlv(Tag::constant(0x05), &[u8::from(key.is_default)])?;
        }
        other => {
            // A reference the card does not have (a YubiKey Bio's `96`,
            // say) is data not found, as a YubiKey answers: tools probe
            // with it.
            let slot = Slot::from_byte(other).map_err(|_| Error::KeyNotFound)?;
            let record = KeyRecord::load(ctx.store, layout::slot_key(slot), slot, &piv.device)?
                .ok_or(Error::KeyNotFound)?;
            reply.tlv(Tag::constant(0x01), &[record.algorithm.byte()])?;
            reply.tlv(
                Tag::constant(0x02),
                &[record.pin.byte(), record.touch.byte()],
            )?;
            reply.tlv(Tag::constant(0x03), &[record.origin.byte()])?;
            reply.nested(Tag::constant(0x04), |w| {
                public_key(w, record.algorithm, record.public())
                    .map_err(|_| apdu::Error::BufferTooSmall)
            })?;
        }
    }
    Ok(())
}

/// MOVE KEY (Yubico): P1 destination (`FF` deletes), P2 source; neither
/// can be the attestation key.
#[inline(never)]
pub(super) fn move_key(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    let source = KeySlot::from_byte(cmd.p2())?;
    let destination = match cmd.p1() {
        0xFF => None,
        b => Some(KeySlot::from_byte(b)?),
    };
    if destination == Some(source) {
        return Err(Error::BadParameters);
    }
    if !cmd.data().is_empty() {
        return Err(Error::WrongLength);
    }
    let admin = admin_of(piv)?;
    let from = layout::slot_key(source.slot());
    let record =
        KeyRecord::load(ctx.store, from, source.slot(), &piv.device)?.ok_or(Error::KeyNotFound)?;
    if let Some(d) = destination
        && !d.slot().accepts(record.algorithm)
    {
        return Err(Error::BadData);
    }
    let to = destination.map(|d| layout::slot_key(d.slot()));
    keys::relocate(ctx.store, &record, from, to, &piv.device, ctx.rng, admin)
}

/// ATTEST (Yubico): a certificate for a generated key, signed by `F9`.
#[inline(never)]
pub(super) fn attest(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
) -> Result<()> {
    let slot = KeySlot::from_byte(cmd.p1())?.slot();
    if cmd.p2() != 0 {
        return Err(Error::BadParameters);
    }
    let record = KeyRecord::load(ctx.store, layout::slot_key(slot), slot, &piv.device)?
        .ok_or(Error::KeyNotFound)?;
    if record.origin != Origin::Generated {
        return Err(Error::BadData);
    }
    let f9 = layout::slot_key(Slot::Attestation);
    let signer =
        KeyRecord::load(ctx.store, f9, Slot::Attestation, &piv.device)?.ok_or(Error::Conditions)?;
    let id = identity(piv, ctx)?;
    let mut issuer = [0u8; 29];
    let issuer = attestation_name(&id, &mut issuer);
    let mut name = *b"s9card attested key 9A";
    let hex = b"0123456789ABCDEF";
    let b = slot.byte();
    if let (Some(hi), Some(lo), [.., n1, n2]) = (
        hex.get(usize::from(b >> 4)),
        hex.get(usize::from(b & 15)),
        &mut name,
    ) {
        (*n1, *n2) = (*hi, *lo);
    }
    let subject = Subject {
        name: &name,
        algorithm: record.algorithm,
        public: record.public(),
        attested: Some((
            crate::VERSION,
            id.serial,
            [record.pin.byte(), record.touch.byte()],
        )),
    };
    let authorized = piv
        .session
        .authorize(signer.pin)
        .ok_or(Error::SecurityStatus)?;
    signer.attest(&piv.device, reply, &subject, issuer, ctx.rng, &authorized)
}

/// COMMIT RENEWAL (vendor): installs the staged key and its new certificate
/// in one transaction. Data: `53 {certificate object}` as for PUT DATA.
/// With P1 a retired slot (`82`-`95`, `9D` only) the replaced key moves
/// there in the same transaction, and the data carries a second `53`: the
/// new Key History object ([`keys::Retirement`]).
#[inline(never)]
pub(super) fn commit_renewal(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
) -> Result<()> {
    let slot = KeySlot::from_byte(cmd.p2())?;
    let to = match cmd.p1() {
        0 => None,
        b => Some(KeySlot::from_byte(b)?),
    };
    let content = Tag::constant(0x53);
    let (certificate, rest) = apdu::tlv::Tlv::parse(cmd.data())?;
    if certificate.tag != content || certificate.value.is_empty() {
        return Err(Error::BadData);
    }
    if certificate.value.len() > objects::MAX_OBJECT {
        return Err(Error::NoSpace);
    }
    let retirement = match to {
        None if rest.is_empty() => None,
        None => return Err(Error::BadData),
        Some(to) => {
            let (history, rest) = apdu::tlv::Tlv::parse(rest)?;
            if history.tag != content
                || !rest.is_empty()
                || history.value.is_empty()
                || history.value.len() > objects::MAX_KEY_HISTORY
            {
                return Err(Error::BadData);
            }
            Some(keys::Retirement {
                to,
                history: history.value,
            })
        }
    };
    let admin = admin_of(piv)?;
    keys::install_staged(
        ctx.store,
        slot,
        certificate.value,
        retirement,
        &piv.device,
        ctx.rng,
        admin,
    )
}

/// ABORT RENEWAL (vendor): forgets a staged key.
#[inline(never)]
pub(super) fn abort_renewal(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    if cmd.p1() != 0 {
        return Err(Error::BadParameters);
    }
    let slot = KeySlot::from_byte(cmd.p2())?;
    keys::drop_staged(ctx.store, slot, admin_of(piv)?)
}
