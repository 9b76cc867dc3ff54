//! GENERAL AUTHENTICATE: the management key's challenge-response (`9B`),
//! and the private-key operations of the slots.

use apdu::Command;
use apdu::tlv::{Reader, Tag};
use card_os::{Context, Reply};
use zeroize::Zeroizing;

use crate::Piv;
use crate::Profile;
use crate::admin::{self, AuthFields, ManagementKey};
use crate::algorithm::{Algorithm, Use};
use crate::crypto::MAX_OUTPUT;
use crate::error::{Error, Result};
use crate::ins::KEY_REF_ADMIN;
use crate::keys::KeyRecord;
use crate::layout;
use crate::slot::{AdminAlgorithm, PinPolicy, Slot};
use crate::sm::{self, Establishment, Suite};

const TEMPLATE: Tag = Tag::constant(0x7C);
const RESPONSE: Tag = Tag::constant(0x82);

/// What a GENERAL AUTHENTICATE asks for, parsed once.
enum Request<'a> {
    /// Management-key authentication, a step of it.
    Admin {
        algorithm: AdminAlgorithm,
        fields: AuthFields<'a>,
    },
    /// Secure messaging key establishment with key `04`: the client's
    /// `CB_H || ID_sH || Q_eH`.
    Establish { suite: Suite, request: &'a [u8] },
    /// An operation with the key in a slot.
    Key {
        slot: Slot,
        algorithm: Algorithm,
        operation: Use,
        input: &'a [u8],
    },
}

impl<'a> Request<'a> {
    fn parse(cmd: &'a Command<'a>) -> Result<Request<'a>> {
        let t = Template::parse(cmd.data())?;
        if cmd.p2() == KEY_REF_ADMIN {
            if t.exponentiation.is_some() {
                return Err(Error::BadData);
            }
            return Ok(Request::Admin {
                algorithm: AdminAlgorithm::from_byte(cmd.p1())?,
                fields: AuthFields {
                    witness: t.witness,
                    challenge: t.challenge,
                    response: t.response,
                },
            });
        }
        if cmd.p2() == sm::ESTABLISH_P2 {
            let suite = Suite::from_id(cmd.p1()).ok_or(Error::BadParameters)?;
            return match (t.challenge, t.response, t.witness, t.exponentiation) {
                (Some(request), Some([]), None, None) => Ok(Request::Establish { suite, request }),
                _ => Err(Error::BadData),
            };
        }
        let slot = Slot::from_byte(cmd.p2())?;
        let algorithm = Algorithm::built(cmd.p1()).ok_or(Error::BadParameters)?;
        // A key operation asks for its answer with an empty `82`.
        if t.response != Some(&[]) || t.witness.is_some() {
            return Err(Error::BadData);
        }
        let (operation, input) = match (t.challenge, t.exponentiation) {
            (Some(challenge), None) => (Use::Sign, challenge),
            (None, Some(peer)) => (Use::Agree, peer),
            _ => return Err(Error::BadData),
        };
        Ok(Request::Key {
            slot,
            algorithm,
            operation,
            input,
        })
    }
}

/// The fields of a `7C` dynamic authentication template.
struct Template<'a> {
    witness: Option<&'a [u8]>,
    challenge: Option<&'a [u8]>,
    response: Option<&'a [u8]>,
    exponentiation: Option<&'a [u8]>,
}

impl<'a> Template<'a> {
    fn parse(data: &'a [u8]) -> Result<Template<'a>> {
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
}

/// GENERAL AUTHENTICATE.
#[inline(never)]
pub(super) fn general_authenticate(
    piv: &mut Piv,
    cmd: &Command<'_>,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
) -> Result<()> {
    match Request::parse(cmd)? {
        Request::Admin { algorithm, fields } => {
            let key = ManagementKey::load(ctx.store, &piv.device)?;
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
            Ok(())
        }
        Request::Establish { suite, request } => establish(piv, suite, request, ctx, reply),
        Request::Key {
            slot,
            algorithm,
            operation,
            input,
        } => {
            let label = layout::slot_key(slot);
            let record =
                KeyRecord::load(ctx.store, label, slot, &piv.device)?.ok_or(Error::KeyNotFound)?;
            // P1 names the key's algorithm; another is a wrong parameter
            // (`6A 86`), which a YubiKey reports as wrong data (`6A 80`):
            // ykman tells a key that is not the certificate's by it.
            if record.algorithm != algorithm {
                return Err(match piv.profile {
                    Profile::Series9 => Error::BadParameters,
                    Profile::YubiKey { .. } => Error::BadData,
                });
            }
            if !algorithm.can(operation) {
                return Err(Error::BadData);
            }
            let authorized = piv
                .session
                .authorize(record.pin)
                .ok_or(Error::SecurityStatus)?;
            match operation {
                Use::Sign => {
                    let mut out = Zeroizing::new([0u8; MAX_OUTPUT]);
                    let out = record.sign(&piv.device, input, &mut out, ctx.rng, &authorized)?;
                    reply.nested(TEMPLATE, |w| w.tlv(RESPONSE, out))?;
                }
                Use::Agree => {
                    let shared = record.agree(&piv.device, input, &authorized)?;
                    reply.nested(TEMPLATE, |w| w.tlv(RESPONSE, &shared))?;
                }
            }
            Ok(())
        }
    }
}

/// Secure messaging key establishment (SP 800-73-4 Part 2 §4.1, the
/// card's steps C1–C11): ECDH of key `04` with the client's ephemeral key,
/// a fresh nonce, the session keys and the key confirmation; the answer is
/// `7C { 82 { CB_ICC N_ICC AuthCryptogram_ICC C_ICC } }`, C_ICC being the
/// key's card-verifiable certificate as the issuer wrote it.
///
/// Whatever the outcome, the session open before it is over, and with it
/// the security status gained so far: a new channel starts from nothing.
#[inline(never)]
fn establish(
    piv: &mut Piv,
    suite: Suite,
    request: &[u8],
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
) -> Result<()> {
    if !piv.profile.has_secure_messaging() {
        return Err(Error::BadParameters);
    }
    piv.session = crate::session::Session::default();
    let request = Establishment::parse(suite, request)?;
    let slot = Slot::SecureMessaging;
    let record = KeyRecord::load(ctx.store, layout::slot_key(slot), slot, &piv.device)?
        .ok_or(Error::KeyNotFound)?;
    if Suite::of(record.algorithm) != Some(suite) {
        return Err(Error::BadParameters);
    }
    let cvc_key = layout::object(crate::objects::SM_CVC).ok_or(Error::Flash)?;
    let cvc_len = ctx.store.len_of(cvc_key).ok_or(Error::Conditions)?;
    let authorized = piv
        .session
        .authorize(PinPolicy::Never)
        .ok_or(Error::SecurityStatus)?;
    let shared = record.agree(&piv.device, request.ephemeral, &authorized)?;

    // The answer's frame first, its fields filled in where they lie: the
    // cryptogram is a MAC over the identifier hashed from the certificate
    // that follows it.
    let nonce_len = suite.nonce_len();
    let fields = 1 + nonce_len + sm::CRYPTOGRAM_LEN;
    reply.nested(TEMPLATE, |w| {
        w.nested(RESPONSE, |w| w.reserve(fields + cvc_len).map(|_| ()))
    })?;
    let written = reply.written_mut();
    let body = written
        .len()
        .checked_sub(fields + cvc_len)
        .and_then(|at| written.get_mut(at..))
        .ok_or(Error::NoSpace)?;
    let (head, cvc) = body.split_at_mut(fields);
    ctx.store.read(cvc_key, cvc)?.ok_or(Error::Conditions)?;
    // A certificate for another key would make every client's cryptogram
    // check fail; say so here instead.
    if crate::cvc::public_key(cvc)? != record.public() {
        return Err(Error::Conditions);
    }
    let mut digest = [0u8; 48];
    sm::hash(Suite::Cs2, &[cvc], &mut digest)?;
    let card_id: &[u8; 8] = digest.first_chunk::<8>().ok_or(Error::Flash)?;
    let (control, rest) = head.split_at_mut(1);
    let (nonce, cryptogram_dst) = rest.split_at_mut(nonce_len);
    control.copy_from_slice(&[sm::CB_ICC]);
    ctx.rng.fill_bytes(nonce);
    let (channel, cryptogram) = sm::establish(suite, &request, &shared, card_id, nonce)?;
    cryptogram_dst.copy_from_slice(&cryptogram);
    piv.session.sm = Some(channel);
    // A card whose issuer set no pairing code opens the virtual contact
    // interface with the session (the Discovery object says so).
    piv.session.vci = ctx.store.len_of(layout::PAIRING_TRIES).is_none();
    Ok(())
}
