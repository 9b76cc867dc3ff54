//! Command handlers, one module per family. Each handler parses its
//! command once into a typed value (key references with their own types,
//! so which slots a command accepts is decided by parsing), checks the
//! security conditions, and only then changes state, in one transaction.

mod authenticate;
mod card;
mod keys;
mod passcodes;
pub mod protected;

use apdu::Command;
use apdu::tlv::Tag;
use card_os::{Context, Reply};

use crate::access::{self, Via};
use crate::algorithm::Algorithm;
use crate::error::{Error, Result};
use crate::ins::*;
use crate::keys::record_len;
use crate::session::{Admin, PinVerified};
use crate::slot::Slot;
use crate::sm::Suite;
use crate::{Piv, layout, objects};

/// SELECT: make sure the card has its factory state, then answer with the
/// application property template.
pub fn select(piv: &mut Piv, ctx: &mut Context<'_>, reply: &mut Reply<'_>) -> Result<()> {
    card::identity(piv, ctx)?;
    let suite = secure_messaging(piv, ctx.store);
    reply.nested(Tag::constant(0x61), |w| {
        w.tlv(Tag::constant(0x4F), &[0x00, 0x00, 0x10, 0x00, 0x01, 0x00])?;
        w.nested(Tag::constant(0x79), |w| {
            w.tlv(Tag::constant(0x4F), &[0xA0, 0x00, 0x00, 0x03, 0x08])
        })?;
        w.tlv(Tag::constant(0x50), b"s9card PIV")?;
        w.nested(Tag::constant(0xAC), |w| {
            // The management-key algorithms, then every slot algorithm this
            // build has, so that OpenSC offers what the card has.
            let admin = [0x03, 0x08, 0x0A, 0x0C];
            let slots = Algorithm::ALL.into_iter().filter(|a| a.is_built());
            for alg in admin.into_iter().chain(slots.map(Algorithm::byte)) {
                w.tlv(Tag::constant(0x80), &[alg])?;
            }
            w.tlv(Tag::constant(0x06), &[0x00])
        })?;
        // The secure messaging cipher suite, once the issuer has made the
        // card ready for it, in a template of its own as SP 800-73-4
        // Part 2 Table 3 has it and NIST's test cards send it (`AC { 80
        // 27 06 01 00 }`): OpenSC reads the first `80` of each template.
        match suite {
            Some(suite) => w.nested(Tag::constant(0xAC), |w| {
                w.tlv(Tag::constant(0x80), &[suite.id()])?;
                w.tlv(Tag::constant(0x06), &[0x00])
            }),
            None => Ok(()),
        }
    })?;
    Ok(())
}

/// The cipher suite a card offers: the one of its key `04`, once the
/// certificate for it is there too. Told from the record's length (the two
/// suites' keys differ in it) rather than by opening the key on every
/// SELECT; key establishment loads and checks the key itself.
pub fn secure_messaging(piv: &Piv, store: &dyn card_os::Persistent) -> Option<Suite> {
    if !piv.profile.has_secure_messaging() {
        return None;
    }
    store.len_of(layout::object(objects::SM_CVC)?)?;
    let len = store.len_of(layout::slot_key(Slot::SecureMessaging))?;
    [Suite::Cs2, Suite::Cs7]
        .into_iter()
        .find(|s| record_len(s.algorithm()) == len && Suite::from_id(s.id()).is_some())
}

// Every handler `run` calls is `#[inline(never)]`: inlined into one
// dispatcher, the handlers' locals (key records, certificates, RSA parts)
// made a single frame as large as all of them, which every command then
// paid for on a card's small stack. Apart, each command pays only for its
// own.
/// The Discovery object's PIN usage policy for this card now.
fn pin_policy(piv: &Piv, store: &dyn card_os::Persistent) -> objects::PinPolicy {
    match secure_messaging(piv, store) {
        None => objects::PinPolicy::Pin,
        Some(_) if store.len_of(layout::PAIRING_TRIES).is_some() => objects::PinPolicy::Vci,
        Some(_) => objects::PinPolicy::VciWithoutPairingCode,
    }
}

/// Runs one command, which came `via` the clear or a secure messaging
/// session.
pub fn run(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
    via: Via,
) -> Result<()> {
    access::check(piv, cmd, ctx.interface, via)?;
    // "PIN always" means the VERIFY comes immediately before the key is
    // used: any command other than a signature or key agreement spends it.
    if !matches!(cmd.ins(), INS_VERIFY | INS_GENERAL_AUTHENTICATE) {
        piv.session.pin_always = None;
    }
    match cmd.ins() {
        INS_VERIFY => passcodes::verify(piv, cmd, ctx),
        INS_CHANGE_REFERENCE => passcodes::change_reference(piv, cmd, ctx),
        INS_RESET_RETRY => passcodes::reset_retry_counter(piv, cmd, ctx),
        INS_GENERAL_AUTHENTICATE => authenticate::general_authenticate(piv, cmd, ctx, reply),
        INS_GENERATE => keys::generate(piv, cmd, ctx, reply, false),
        INS_STAGE_KEY => keys::generate(piv, cmd, ctx, reply, true),
        INS_GET_DATA => {
            params(cmd, 0x3F, 0xFF)?;
            let policy = pin_policy(piv, ctx.store);
            objects::get(cmd.data(), ctx.store, &piv.session, policy, reply)
        }
        INS_PUT_DATA => {
            params(cmd, 0x3F, 0xFF)?;
            if objects::requested(cmd.data()) == Ok(objects::PAIRING_CODE) {
                let content = objects::content(cmd.data())?;
                return passcodes::set_pairing_code(piv, content, ctx);
            }
            objects::put(cmd.data(), ctx.store, admin_of(piv)?)
        }
        INS_GET_VERSION => {
            params(cmd, 0, 0)?;
            Ok(reply.raw(&crate::VERSION)?)
        }
        INS_GET_SERIAL => {
            params(cmd, 0, 0)?;
            let id = card::identity(piv, ctx)?;
            Ok(reply.raw(&id.serial.to_be_bytes())?)
        }
        INS_GET_METADATA => keys::metadata(piv, cmd, ctx, reply),
        INS_SET_PIN_RETRIES => passcodes::set_pin_retries(piv, cmd, ctx),
        INS_RESET => card::reset(piv, cmd, ctx),
        INS_SET_MANAGEMENT_KEY => passcodes::set_management_key(piv, cmd, ctx),
        INS_IMPORT_KEY => keys::import(piv, cmd, ctx),
        INS_ATTEST => keys::attest(piv, cmd, ctx, reply),
        INS_MOVE_KEY => keys::move_key(piv, cmd, ctx),
        INS_COMMIT_RENEWAL => keys::commit_renewal(piv, cmd, ctx),
        INS_ABORT_RENEWAL => keys::abort_renewal(piv, cmd, ctx),
        INS_CARD_INFO => card::card_info(piv, cmd, ctx, reply),
        INS_SET_SERIAL => card::set_serial(piv, cmd, ctx),
        _ => Err(Error::UnknownInstruction),
    }
}

pub(crate) fn params(cmd: &Command<'_>, p1: u8, p2: u8) -> Result<()> {
    if cmd.p1() == p1 && cmd.p2() == p2 {
        Ok(())
    } else {
        Err(Error::BadParameters)
    }
}

pub(crate) fn admin_of(piv: &Piv) -> Result<&Admin> {
    piv.session.admin.as_ref().ok_or(Error::SecurityStatus)
}

pub(crate) fn pin_of(piv: &Piv) -> Result<&PinVerified> {
    piv.session.pin.as_ref().ok_or(Error::SecurityStatus)
}
