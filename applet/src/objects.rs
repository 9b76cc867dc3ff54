//! PIV data objects: GET DATA, PUT DATA, and the objects a card is born with.

use apdu::tlv::{Reader, Tag, Writer};
use card_os::store::Op;
use card_os::{Persistent, Reply};

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::layout;
use crate::session::{Admin, Session};

/// The PIV AID.
pub const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];
/// The largest object content the card stores: a 3 KiB certificate with
/// its PIV wrapping.
pub const MAX_OBJECT: usize = 3 * 1024 + 128;
/// CHUID.
pub const CHUID: u32 = 0x5FC102;
/// X.509 certificate for Card Authentication (`9E`).
pub const CARD_AUTH_CERT: u32 = 0x5FC101;
/// Biometric Information Templates Group Template.
pub const BIT_GROUP: u32 = 0x7F61;
/// Secure Messaging Certificate Signer: the X.509 certificate clients
/// check the card's CVC with.
pub const SM_SIGNER: u32 = 0x5FC122;
/// Pairing Code Reference Data Container: written to set the pairing
/// code, never read back (the card keeps its digest only).
pub const PAIRING_CODE: u32 = 0x5FC123;
/// Card Capability Container.
pub const CCC: u32 = 0x5FC107;
/// Key History: how many retired key management keys the card holds
/// (`C1` with their certificates on the card, `C2` without).
pub const KEY_HISTORY: u32 = 0x5FC10C;
/// The longest Key History a renewal writes: the two counts and an
/// off-card certificates URL.
pub const MAX_KEY_HISTORY: usize = 128;
/// The secure messaging key's card-verifiable certificate (s9card's
/// vendor object): the issuer writes it with PUT DATA at personalisation,
/// and key establishment sends it as C_ICC.
pub const SM_CVC: u32 = 0x5FFF40;
/// Discovery object (read-only, built on the fly).
pub const DISCOVERY: u32 = 0x7E;

const TAG_LIST: Tag = Tag::constant(0x5C);
const TAG_DATA: Tag = Tag::constant(0x53);

/// Objects that only a PIN-verified session may read: biometrics and the
/// printed information.
pub(crate) fn needs_pin(tag: u32) -> bool {
    matches!(
        tag,
        0x5FC103 | 0x5FC108 | 0x5FC109 | 0x5FC121 | PAIRING_CODE
    )
}

/// The object a GET DATA or PUT DATA names: its data starts with a whole
/// `5C` tag list.
pub fn requested(data: &[u8]) -> Result<u32> {
    let (tlv, _) = apdu::tlv::Tlv::parse(data)?;
    if tlv.tag != TAG_LIST {
        return Err(Error::BadData);
    }
    requested_tag(tlv.value)
}

/// Reads the object tag from a `5C` tag list.
pub(crate) fn requested_tag(list: &[u8]) -> Result<u32> {
    if list.is_empty() || list.len() > 3 {
        return Err(Error::BadData);
    }
    Ok(list.iter().fold(0u32, |t, &b| (t << 8) | u32::from(b)))
}

/// GET DATA: `5C len tag` → `53 {content}` (discovery: `7E {…}`).
pub fn get(
    data: &[u8],
    store: &mut dyn Persistent,
    session: &Session,
    policy: PinPolicy,
    reply: &mut Reply<'_>,
) -> Result<()> {
    let (tlv, rest) = apdu::tlv::Tlv::parse(data)?;
    if tlv.tag != TAG_LIST || !rest.is_empty() {
        return Err(Error::BadData);
    }
    let tag = requested_tag(tlv.value)?;
    if tag == DISCOVERY {
        return discovery(policy, reply);
    }
    let key = layout::object(tag).ok_or(Error::ObjectNotFound)?;
    if needs_pin(tag) && session.pin.is_none() {
        return Err(Error::SecurityStatus);
    }
    let len = store.len_of(key).ok_or(Error::ObjectNotFound)?;
    reply.header(TAG_DATA, len)?;
    // Read straight into the reply buffer: no second 3 KiB buffer.
    let dst = reply.reserve(len)?;
    store.read(key, dst)?.ok_or(Error::ObjectNotFound)?;
    Ok(())
}

/// The content of a PUT DATA: `5C len tag 53 {content}`, nothing after.
pub fn content(data: &[u8]) -> Result<&[u8]> {
    let mut tlvs = Reader::new(data);
    match (tlvs.next(), tlvs.next(), tlvs.next()) {
        (Some(Ok(list)), Some(Ok(content)), None)
            if list.tag == TAG_LIST && content.tag == TAG_DATA =>
        {
            Ok(content.value)
        }
        _ => Err(Error::BadData),
    }
}

/// PUT DATA: `5C len tag 53 {content}`; empty content deletes.
pub fn put(data: &[u8], store: &mut dyn Persistent, _admin: &Admin) -> Result<()> {
    let mut tlvs = Reader::new(data);
    let list = tlvs.next().ok_or(Error::BadData)??;
    if list.tag != TAG_LIST {
        return Err(Error::BadData);
    }
    let tag = requested_tag(list.value)?;
    if tag == DISCOVERY {
        return Err(Error::Unsupported);
    }
    let key = layout::object(tag).ok_or(Error::BadData)?;
    let content = tlvs.next().ok_or(Error::BadData)??;
    if content.tag != TAG_DATA || tlvs.next().is_some() {
        return Err(Error::BadData);
    }
    if content.value.len() > MAX_OBJECT {
        return Err(Error::NoSpace);
    }
    let op = if content.value.is_empty() {
        Op::Delete(key)
    } else {
        Op::Put(key, content.value)
    };
    store.commit(&[op])?;
    Ok(())
}

/// What the Discovery object's PIN usage policy says (SP 800-73-4 Part 1
/// §3.3.2): the PIV PIN, and the virtual contact interface where the
/// card has secure messaging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinPolicy {
    /// The PIV PIN only.
    Pin,
    /// The PIV PIN; the VCI, opened with the pairing code.
    Vci,
    /// The PIV PIN; the VCI, opened by secure messaging alone.
    VciWithoutPairingCode,
}

impl PinPolicy {
    /// The policy's two bytes: `40` the PIV PIN, `08` VCI implemented,
    /// `04` VCI without the pairing code; no second PIN to rank.
    pub const fn bytes(self) -> [u8; 2] {
        match self {
            PinPolicy::Pin => [0x40, 0x00],
            PinPolicy::Vci => [0x48, 0x00],
            PinPolicy::VciWithoutPairingCode => [0x4C, 0x00],
        }
    }
}

/// The discovery object: the PIV AID and the PIN usage policy.
fn discovery(policy: PinPolicy, reply: &mut Writer<'_>) -> Result<()> {
    reply.nested(Tag::constant(0x7E), |w| {
        w.tlv(Tag::constant(0x4F), &PIV_AID)?;
        w.tlv(Tag::constant(0x5F2F), &policy.bytes())
    })?;
    Ok(())
}

/// The FASC-N of a card with no federal agency code (all 9999 fields), as
/// PIV middleware expects to find.
pub const FASC_N: [u8; 25] = [
    0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE, 0x73, 0x9D, 0x83, 0x68, 0x58, 0x21, 0x08,
    0x42, 0x10, 0x84, 0x21, 0xC8, 0x42, 0x10, 0xC3, 0xEB,
];

/// The largest CHUID [`chuid`] writes.
pub const CHUID_LEN: usize = 2 + 25 + 2 + 16 + 2 + 8 + 2 + 2;

/// A CHUID as the factory and the CMS write it (SP 800-73-4 Part 1
/// §3.1.2): the FASC-N, `guid`, the expiry `YYYYMMDD`, an empty issuer
/// signature and an empty LRC.
pub fn chuid(guid: &[u8; 16], expiry: &[u8; 8], out: &mut [u8]) -> Result<usize> {
    let mut w = Writer::new(out);
    w.tlv(Tag::constant(0x30), &FASC_N)?;
    w.tlv(Tag::constant(0x34), guid)?;
    w.tlv(Tag::constant(0x35), expiry)?;
    w.tlv(Tag::constant(0x3E), &[])?;
    w.tlv(Tag::constant(0xFE), &[])?;
    Ok(w.len())
}

/// The factory CHUID: a GUID naming the card (`S9CARD` and its serial),
/// no expiry before 2099.
pub fn default_chuid(id: &Identity, out: &mut [u8]) -> Result<usize> {
    let mut guid = [0u8; 16];
    let (prefix, rest) = guid.split_at_mut(6);
    prefix.copy_from_slice(b"S9CARD");
    rest.copy_from_slice(&id.serial_digits());
    chuid(&guid, b"20991231", out)
}

/// The factory CCC, its card identifier carrying the serial.
pub fn default_ccc(id: &Identity, out: &mut [u8]) -> Result<usize> {
    let mut card_id = [0u8; 21];
    let (head, rest) = card_id.split_at_mut(7);
    // GSC-RID, manufacturer and card type as PIV cards carry them.
    head.copy_from_slice(&[0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02]);
    let (serial, _) = rest.split_at_mut(10);
    serial.copy_from_slice(&id.serial_digits());
    let mut w = Writer::new(out);
    w.tlv(Tag::constant(0xF0), &card_id)?;
    w.tlv(Tag::constant(0xF1), &[0x21])?;
    w.tlv(Tag::constant(0xF2), &[0x21])?;
    w.tlv(Tag::constant(0xF3), &[])?;
    w.tlv(Tag::constant(0xF4), &[0x00])?;
    w.tlv(Tag::constant(0xF5), &[0x10])?;
    for t in [0xF6, 0xF7, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE] {
        w.tlv(Tag::constant(t), &[])?;
    }
    Ok(w.len())
}
