//! Command handlers. Each parses its parameters into types first, checks the
//! security conditions, and only then changes state, in one transaction.

use apdu::Command;
use apdu::tlv::{Reader, Tag, Writer};
use card_os::store::{Key, Op};
use card_os::{Context, Persistent, Reply};
use zeroize::Zeroizing;

use crate::admin::{self, AuthFields, ManagementKey};
use crate::attest::{self, Subject};
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::ins::*;
use crate::keys::{self, KeyRecord, Origin};
use crate::passcode::{self, FIELD, Padded};
use crate::pin::{self, Tries};
use crate::session::{Admin, PinVerified};
use crate::slot::{ALG_P256, AdminAlgorithm, Passcode, PinPolicy, Slot, TouchPolicy};
use crate::{Piv, layout, objects};

const TEMPLATE: Tag = Tag::constant(0x7C);
const PUBLIC_KEY: Tag = Tag::constant(0x7F49);
const POINT: Tag = Tag::constant(0x86);

/// SELECT: make sure the card has its factory state, then answer with the
/// application property template.
pub fn select(piv: &mut Piv, ctx: &mut Context<'_>, reply: &mut Reply<'_>) -> Result<()> {
    identity(piv, ctx)?;
    reply.nested(Tag::constant(0x61), |w| {
        w.tlv(Tag::constant(0x4F), &[0x00, 0x00, 0x10, 0x00, 0x01, 0x00])?;
        w.nested(Tag::constant(0x79), |w| {
            w.tlv(Tag::constant(0x4F), &[0xA0, 0x00, 0x00, 0x03, 0x08])
        })?;
        w.tlv(Tag::constant(0x50), b"s9card PIV")?;
        w.nested(Tag::constant(0xAC), |w| {
            for alg in [0x03, 0x08, 0x0A, 0x0C, ALG_P256] {
                w.tlv(Tag::constant(0x80), &[alg])?;
            }
            w.tlv(Tag::constant(0x06), &[0x00])
        })
    })?;
    Ok(())
}

/// The card's identity, creating the factory state on a blank card.
fn identity(piv: &Piv, ctx: &mut Context<'_>) -> Result<Identity> {
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

/// Writes the factory state (clearing everything first unless the card is
/// blank) in one transaction: identity, default PIN, PUK and management
/// key, CHUID, CCC, and a fresh attestation key with its self-signed
/// certificate.
pub fn factory(piv: &Piv, ctx: &mut Context<'_>, id: &Identity, birth: Birth<'_>) -> Result<()> {
    let clear = !matches!(birth, Birth::Blank);
    let card = id.encode(&piv.device, ctx.rng)?;
    let (pin, puk) = pin::factory_records(id)?;
    let tries = Tries::full(pin::DEFAULT_TRIES).encode();
    let (admin, admin_len) = ManagementKey::factory()?.encode(&piv.device, ctx.rng)?;
    let mut chuid = [0u8; 96];
    let chuid_len = objects::default_chuid(id, &mut chuid)?;
    let mut ccc = [0u8; 96];
    let ccc_len = objects::default_ccc(id, &mut ccc)?;

    let attestation = keys::attestation_key(ctx.rng);
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
    let record = attestation_record.encode();
    let mut name = [0u8; 29];
    let issuer = attestation_name(id, &mut name);
    let mut cert = [0u8; 700];
    let cert_len = certificate_object(&mut cert, |w| {
        let subject = Subject {
            name: issuer,
            public: &attestation_record.public,
            attested: None,
        };
        attest::certificate(w, &subject, issuer, &attestation, serial(ctx.rng))
    })?;
    let cert_key = Slot::Attestation
        .certificate_tag()
        .and_then(layout::object)
        .ok_or(Error::Flash)?;

    let mut ops: heapless::Vec<Op<'_>, { card_os::store::MAX_TX_OPS }> = heapless::Vec::new();
    if clear {
        push(&mut ops, Op::Clear)?;
    }
    for op in [
        Op::Put(layout::CARD, &card),
        Op::Put(layout::PIN_HASH, &pin),
        Op::Put(layout::PIN_TRIES, &tries),
        Op::Put(layout::PUK_HASH, &puk),
        Op::Put(layout::PUK_TRIES, &tries),
        Op::Put(layout::ADMIN, admin.get(..admin_len).unwrap_or_default()),
        Op::Put(
            object_key(objects::CHUID)?,
            chuid.get(..chuid_len).unwrap_or_default(),
        ),
        Op::Put(
            object_key(objects::CCC)?,
            ccc.get(..ccc_len).unwrap_or_default(),
        ),
        Op::Put(label, &record),
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

/// 16 random bytes for a certificate serial.
fn serial(rng: &mut dyn rand_core::CryptoRng) -> [u8; 16] {
    let mut s = [0u8; 16];
    rng.fill_bytes(&mut s);
    s
}

/// "s9card attestation 09NNNNNNNN", the attestation key's name.
fn attestation_name<'b>(id: &Identity, out: &'b mut [u8; 29]) -> &'b [u8] {
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

/// Runs one command.
pub fn run(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
) -> Result<()> {
    // "PIN always" means the VERIFY comes immediately before the key is
    // used: any command other than a signature or key agreement spends it.
    if !matches!(cmd.ins(), INS_VERIFY | INS_GENERAL_AUTHENTICATE) {
        piv.session.pin_always = None;
    }
    match cmd.ins() {
        INS_VERIFY => verify(piv, cmd, ctx),
        INS_CHANGE_REFERENCE => change_reference(piv, cmd, ctx),
        INS_RESET_RETRY => reset_retry_counter(piv, cmd, ctx),
        INS_GENERAL_AUTHENTICATE => general_authenticate(piv, cmd, ctx, reply),
        INS_GENERATE => generate(piv, cmd, ctx, reply, false),
        INS_STAGE_KEY => generate(piv, cmd, ctx, reply, true),
        INS_GET_DATA => {
            params(cmd, 0x3F, 0xFF)?;
            objects::get(cmd.data(), ctx.store, &piv.session, reply)
        }
        INS_PUT_DATA => {
            params(cmd, 0x3F, 0xFF)?;
            objects::put(cmd.data(), ctx.store, admin_of(piv)?)
        }
        INS_GET_VERSION => {
            params(cmd, 0, 0)?;
            Ok(reply.raw(&crate::VERSION)?)
        }
        INS_GET_SERIAL => {
            params(cmd, 0, 0)?;
            let id = identity(piv, ctx)?;
            Ok(reply.raw(&id.serial.to_be_bytes())?)
        }
        INS_GET_METADATA => metadata(piv, cmd, ctx, reply),
        INS_SET_PIN_RETRIES => set_pin_retries(piv, cmd, ctx),
        INS_RESET => reset(piv, cmd, ctx),
        INS_SET_MANAGEMENT_KEY => set_management_key(piv, cmd, ctx),
        INS_IMPORT_KEY => import(piv, cmd, ctx),
        INS_ATTEST => attest_slot(piv, cmd, ctx, reply),
        INS_MOVE_KEY => move_key(piv, cmd, ctx),
        INS_COMMIT_RENEWAL => commit_renewal(piv, cmd, ctx),
        INS_ABORT_RENEWAL => abort_renewal(piv, cmd, ctx),
        INS_CARD_INFO => card_info(piv, cmd, ctx, reply),
        INS_SET_SERIAL => set_serial(piv, cmd, ctx),
        _ => Err(Error::UnknownInstruction),
    }
}

fn params(cmd: &Command<'_>, p1: u8, p2: u8) -> Result<()> {
    if cmd.p1() == p1 && cmd.p2() == p2 {
        Ok(())
    } else {
        Err(Error::BadParameters)
    }
}

fn admin_of(piv: &Piv) -> Result<&Admin> {
    piv.session.admin.as_ref().ok_or(Error::SecurityStatus)
}

fn pin_of(piv: &Piv) -> Result<&PinVerified> {
    piv.session.pin.as_ref().ok_or(Error::SecurityStatus)
}

/// VERIFY: check the PIN, report its status (no data), or log out (P1 `FF`).
fn verify(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
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
            let tries = pin::tries(ctx.store, Passcode::Pin)?;
            match (tries.left, piv.session.pin.is_some()) {
                (0, _) => Err(Error::Blocked),
                (_, true) => Ok(()),
                (left, false) => Err(Error::WrongPasscode(left)),
            }
        }
        (0x00, field) => {
            let candidate = Padded::pin(field)?;
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

/// The new PIN, refused (at no cost in tries) unless 6–8 digits and not weak.
fn new_pin(field: &[u8]) -> Result<Padded> {
    let new = Padded::pin(field)?;
    if passcode::acceptable_new(new.value()) {
        Ok(new)
    } else {
        Err(Error::BadData)
    }
}

/// CHANGE REFERENCE DATA for the PIN (`80`) or the PUK (`81`).
fn change_reference(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    if cmd.p1() != 0 {
        return Err(Error::BadParameters);
    }
    let which = Passcode::from_byte(cmd.p2())?;
    let (old, new) = two_fields(cmd.data())?;
    let (old, new) = match which {
        Passcode::Pin => (Padded::pin(old)?, new_pin(new)?),
        Passcode::Puk => (Padded::puk(old)?, Padded::puk(new)?),
    };
    let id = identity(piv, ctx)?;
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
fn reset_retry_counter(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    if cmd.p1() != 0 || Passcode::from_byte(cmd.p2())? != Passcode::Pin {
        return Err(Error::BadParameters);
    }
    let (puk, new) = two_fields(cmd.data())?;
    let (puk, new) = (Padded::puk(puk)?, new_pin(new)?);
    let id = identity(piv, ctx)?;
    let pin_tries = pin::tries(ctx.store, Passcode::Pin)?;
    let record = pin::encode_digest(&pin::digest(&id, Passcode::Pin, &new)?, false);
    let full = Tries::full(pin_tries.max).encode();
    let then = [
        Op::Put(layout::PIN_HASH, &record),
        Op::Put(layout::PIN_TRIES, &full),
    ];
    pin::check(ctx.store, &mut piv.session, &id, Passcode::Puk, &puk, &then)?;
    piv.session.forget_pin();
    Ok(())
}

/// The fields of a `7C` dynamic authentication template.
struct Template<'a> {
    witness: Option<&'a [u8]>,
    challenge: Option<&'a [u8]>,
    response: Option<&'a [u8]>,
    exponentiation: Option<&'a [u8]>,
}

fn template(data: &[u8]) -> Result<Template<'_>> {
    let (outer, rest) = apdu::tlv::Tlv::parse(data)?;
    if outer.tag != TEMPLATE || !rest.is_empty() {
        return Err(Error::BadData);
    }
    let mut t = Template {
        witness: None,
        challenge: None,
        response: None,
        exponentiation: None,
    };
    for tlv in Reader::new(outer.value) {
        let tlv = tlv?;
        let field = match tlv.tag.value() {
            0x80 => &mut t.witness,
            0x81 => &mut t.challenge,
            0x82 => &mut t.response,
            0x85 => &mut t.exponentiation,
            _ => return Err(Error::BadData),
        };
        if field.replace(tlv.value).is_some() {
            return Err(Error::BadData);
        }
    }
    Ok(t)
}

/// GENERAL AUTHENTICATE: management-key authentication (`9B`), or a
/// signature or key agreement with a slot's key.
fn general_authenticate(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
) -> Result<()> {
    let t = template(cmd.data())?;
    if cmd.p2() == KEY_REF_ADMIN {
        let algorithm = AdminAlgorithm::from_byte(cmd.p1())?;
        if t.exponentiation.is_some() {
            return Err(Error::BadData);
        }
        let key = ManagementKey::load(ctx.store, &piv.device)?;
        let fields = AuthFields {
            witness: t.witness,
            challenge: t.challenge,
            response: t.response,
        };
        let mut out = Zeroizing::new([0u8; 18]);
        let n = admin::authenticate(
            &mut piv.session,
            &key,
            algorithm,
            &fields,
            ctx.rng,
            &mut out,
        )?;
        if n > 0 {
            reply.nested(TEMPLATE, |w| w.raw(out.get(..n).unwrap_or_default()))?;
        }
        return Ok(());
    }
    let slot = Slot::from_byte(cmd.p2())?;
    if cmd.p1() != ALG_P256 {
        return Err(Error::BadParameters);
    }
    if t.response != Some(&[]) || t.witness.is_some() {
        return Err(Error::BadData);
    }
    let label = layout::slot_key(slot);
    let record = KeyRecord::load(ctx.store, label, slot, &piv.device)?.ok_or(Error::KeyNotFound)?;
    let authorized = piv
        .session
        .authorize(record.pin)
        .ok_or(Error::SecurityStatus)?;
    match (t.challenge, t.exponentiation) {
        (Some(digest), None) => {
            let mut sig = [0u8; 80];
            let sig = record.sign(&piv.device, digest, &mut sig, &authorized)?;
            reply.nested(TEMPLATE, |w| w.tlv(Tag::constant(0x82), sig))?;
        }
        (None, Some(peer)) => {
            let shared = record.agree(&piv.device, peer, &authorized)?;
            reply.nested(TEMPLATE, |w| w.tlv(Tag::constant(0x82), &*shared))?;
        }
        _ => return Err(Error::BadData),
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
    let touch = match touch {
        None => TouchPolicy::NEVER,
        Some([b]) => TouchPolicy::from_byte(*b)?,
        Some(_) => return Err(Error::BadData),
    };
    Ok((pin, touch))
}

/// GENERATE ASYMMETRIC KEY PAIR (or, `staged`, into a slot's renewal
/// staging area, where the key in the slot keeps working).
fn generate(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
    staged: bool,
) -> Result<()> {
    if cmd.p1() != 0 {
        return Err(Error::BadParameters);
    }
    let slot = Slot::from_byte(cmd.p2())?;
    if slot == Slot::Attestation {
        return Err(Error::BadParameters);
    }
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
    if alg != Some(&[ALG_P256]) {
        return Err(Error::BadData);
    }
    let policy = policies(slot, pin, touch)?;
    let admin = admin_of(piv)?;
    // A renewal's key is staged by its holder or sponsor: the PIN too.
    let secret = if staged {
        keys::generate_staged(ctx.rng, admin, pin_of(piv)?)
    } else {
        keys::generate(ctx.rng, admin)
    };
    // A staged key is sealed for the slot it will live in, so committing
    // the renewal copies its record without opening it.
    let label = layout::slot_key(slot);
    let target = if staged {
        layout::staged_key(slot)
    } else {
        label
    };
    let record = KeyRecord::new(
        &secret,
        policy,
        Origin::Generated,
        label,
        &piv.device,
        ctx.rng,
    )?;
    ctx.store.commit(&[Op::Put(target, &record.encode())])?;
    public_key(reply, &record.public)
}

fn public_key(reply: &mut Reply<'_>, point: &[u8; keys::POINT]) -> Result<()> {
    reply.nested(PUBLIC_KEY, |w| w.tlv(POINT, point))?;
    Ok(())
}

/// IMPORT ASYMMETRIC KEY (Yubico): `06 scalar [AA pin] [AB touch]`.
fn import(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    if cmd.p1() != ALG_P256 {
        return Err(Error::BadParameters);
    }
    let slot = Slot::from_byte(cmd.p2())?;
    let (mut scalar, mut pin, mut touch) = (None, None, None);
    for tlv in Reader::new(cmd.data()) {
        let tlv = tlv?;
        let field = match tlv.tag.value() {
            0x06 => &mut scalar,
            0xAA => &mut pin,
            0xAB => &mut touch,
            _ => return Err(Error::BadData),
        };
        if field.replace(tlv.value).is_some() {
            return Err(Error::BadData);
        }
    }
    let policy = policies(slot, pin, touch)?;
    let secret = keys::import(scalar.ok_or(Error::BadData)?, admin_of(piv)?)?;
    let label = layout::slot_key(slot);
    let record = KeyRecord::new(
        &secret,
        policy,
        Origin::Imported,
        label,
        &piv.device,
        ctx.rng,
    )?;
    ctx.store.commit(&[Op::Put(label, &record.encode())])?;
    Ok(())
}

/// GET METADATA (Yubico) for the PIN, PUK, management key or a slot.
fn metadata(
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
            let tries = pin::tries(ctx.store, which)?;
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
            let slot = Slot::from_byte(other)?;
            let record = KeyRecord::load(ctx.store, layout::slot_key(slot), slot, &piv.device)?
                .ok_or(Error::KeyNotFound)?;
            reply.tlv(Tag::constant(0x01), &[record.algorithm])?;
            reply.tlv(
                Tag::constant(0x02),
                &[record.pin.byte(), record.touch.byte()],
            )?;
            reply.tlv(Tag::constant(0x03), &[record.origin.byte()])?;
            reply.nested(Tag::constant(0x04), |w| w.tlv(POINT, &record.public))?;
        }
    }
    Ok(())
}

/// SET PIN RETRIES (Yubico): new try counts; PIN and PUK go back to their
/// factory values, as on the cards tools expect.
fn set_pin_retries(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
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

/// RESET (Yubico): back to the factory state, only once PIN and PUK are
/// both blocked. The serial and the virtual marker stay.
fn reset(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    params(cmd, 0, 0)?;
    let blocked = pin::both_blocked(ctx.store)?;
    let old = identity(piv, ctx)?;
    let id = Identity::new(old.serial, old.is_virtual, ctx.rng)?;
    factory(piv, ctx, &id, Birth::Reset(&blocked))?;
    piv.session = crate::session::Session::default();
    Ok(())
}

/// SET MANAGEMENT KEY (Yubico): `alg 9B len key`.
fn set_management_key(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
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
    let new = ManagementKey::new(algorithm, touch, key)?;
    admin::replace(ctx.store, &piv.device, ctx.rng, &new, admin_of(piv)?)
}

/// MOVE KEY (Yubico): P1 destination (`FF` deletes), P2 source.
fn move_key(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    let source = Slot::from_byte(cmd.p2())?;
    let destination = match cmd.p1() {
        0xFF => None,
        b => Some(Slot::from_byte(b)?),
    };
    if source == Slot::Attestation
        || destination == Some(Slot::Attestation)
        || destination == Some(source)
    {
        return Err(Error::BadParameters);
    }
    if !cmd.data().is_empty() {
        return Err(Error::WrongLength);
    }
    let admin = admin_of(piv)?;
    let from = layout::slot_key(source);
    let record =
        KeyRecord::load(ctx.store, from, source, &piv.device)?.ok_or(Error::KeyNotFound)?;
    let to = destination.map(layout::slot_key);
    keys::relocate(ctx.store, &record, from, to, &piv.device, ctx.rng, admin)
}

/// ATTEST (Yubico): a certificate for a generated key, signed by `F9`.
fn attest_slot(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
) -> Result<()> {
    let slot = Slot::from_byte(cmd.p1())?;
    if cmd.p2() != 0 || slot == Slot::Attestation {
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
        public: &record.public,
        attested: Some((
            crate::VERSION,
            id.serial,
            [record.pin.byte(), record.touch.byte()],
        )),
    };
    let serial = serial(ctx.rng);
    let authorized = piv
        .session
        .authorize(signer.pin)
        .ok_or(Error::SecurityStatus)?;
    signer.attest(&piv.device, reply, &subject, issuer, serial, &authorized)
}

/// COMMIT RENEWAL (vendor): installs the staged key and its new certificate
/// in one transaction. Data: `53 {certificate object}` as for PUT DATA.
fn commit_renewal(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    if cmd.p1() != 0 {
        return Err(Error::BadParameters);
    }
    let slot = Slot::from_byte(cmd.p2())?;
    let (content, rest) = apdu::tlv::Tlv::parse(cmd.data())?;
    if content.tag != Tag::constant(0x53) || !rest.is_empty() || content.value.is_empty() {
        return Err(Error::BadData);
    }
    if content.value.len() > objects::MAX_OBJECT {
        return Err(Error::NoSpace);
    }
    admin_of(piv)?;
    let admin = admin_of(piv)?;
    keys::install_staged(ctx.store, slot, content.value, &piv.device, admin)
}

/// ABORT RENEWAL (vendor): forgets a staged key.
fn abort_renewal(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
    if cmd.p1() != 0 {
        return Err(Error::BadParameters);
    }
    let slot = Slot::from_byte(cmd.p2())?;
    keys::drop_staged(ctx.store, slot, admin_of(piv)?)
}

/// CARD INFO (vendor): `01` serial, `02` flags (bit 0: virtual card),
/// `03` applet version, `04` slots with a staged renewal key.
fn card_info(
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
fn set_serial(piv: &mut Piv, cmd: &Command<'_>, ctx: &mut Context<'_>) -> Result<()> {
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
