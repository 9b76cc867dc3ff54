//! PIN and PUK: checking with the counter persisted first, and changing.
//!
//! The order is the classic anti-tearing rule of card PIN objects: the try
//! is taken off the counter and *committed* before the comparison, and given
//! back afterwards if the value was right. Whatever instant the power is cut
//! at, a wrong try stays spent. The flash sees the same two writes on a right
//! and a wrong try (on a wrong one the second rewrites the spent counter), so
//! the two look alike from outside.

use card_os::Persistent;
use card_os::store::{Key, Op};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::layout;
use crate::passcode::Padded;
use crate::secrets::{self, Digest};
use crate::session::{Admin, Session};
use crate::slot::Passcode;

/// Proof that the PIN was verified in this session. Its field is private
/// to this module: only [`verify`] makes one.
#[derive(Debug)]
pub struct PinVerified(());

/// Proof that both the PIN and the PUK are blocked, the one condition on
/// which RESET may return a card to its factory state.
#[derive(Debug)]
pub struct BothBlocked(());

/// Default tries for PIN and PUK.
pub const DEFAULT_TRIES: u8 = 3;
/// Tries of a pairing code, set with it: more than a PIN's, since a
/// blocked code takes the holder back to the issuer to open the virtual
/// contact interface again, and 8 digits leave a guesser no real chance
/// in five.
pub const PAIRING_TRIES: u8 = 5;
/// The factory PIN and PUK.
pub const DEFAULT_PIN: &[u8] = b"123456";
/// The factory PUK.
pub const DEFAULT_PUK: &[u8] = b"12345678";

/// A retry counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tries {
    /// Tries left; 0 is blocked.
    pub left: u8,
    /// Tries allowed.
    pub max: u8,
}

/// A counter's record: the two counts and a 16-byte tag.
pub const TRIES_RECORD: usize = 2 + TAG;
const TAG: usize = 16;

impl Tries {
    /// A full counter of `max` tries.
    pub const fn full(max: u8) -> Tries {
        Tries { left: max, max }
    }

    /// The stored form: `[left, max]` and a tag, HMAC-SHA-256 under the
    /// identity's passcode key over the passcode's reference and the two
    /// counts. Without the key no one can write a count the card takes,
    /// and a record from another card, another identity of this card or
    /// the other passcode does not verify. (What a tag cannot tell apart
    /// is an earlier record of this very counter put back together with
    /// everything else of its time: a whole flash rolled back.)
    pub fn sealed(self, id: &Identity, which: Passcode) -> Result<[u8; TRIES_RECORD]> {
        let mut out = [0u8; TRIES_RECORD];
        let (counts, tag) = out.split_at_mut(2);
        counts.copy_from_slice(&[self.left, self.max]);
        tag.copy_from_slice(&self.tag(id, which)?);
        Ok(out)
    }

    fn tag(self, id: &Identity, which: Passcode) -> Result<[u8; TAG]> {
        let full = secrets::tag_counter(&id.pin_key, reference(which), [self.left, self.max])?;
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(full.get(..TAG).ok_or(Error::Flash)?);
        Ok(tag)
    }
}

/// The stored digest and whether it is still the factory value.
pub struct Stored {
    /// HMAC of the padded value.
    pub digest: Digest,
    /// Still the factory default.
    pub is_default: bool,
}

/// The store keys of a passcode.
pub const fn keys(which: Passcode) -> (Key, Key) {
    match which {
        Passcode::Pin => (layout::PIN_HASH, layout::PIN_TRIES),
        Passcode::Puk => (layout::PUK_HASH, layout::PUK_TRIES),
        Passcode::PairingCode => (layout::PAIRING_HASH, layout::PAIRING_TRIES),
    }
}

/// The reference byte mixed into the digest.
const fn reference(which: Passcode) -> u8 {
    match which {
        Passcode::Pin => 0x80,
        Passcode::Puk => 0x81,
        Passcode::PairingCode => crate::ins::PAIRING_CODE_REF,
    }
}

/// Reads a counter; one whose tag does not verify (or of another length)
/// is [`Error::Tampered`]: the card does not take it, in either direction.
pub fn tries(store: &mut dyn Persistent, id: &Identity, which: Passcode) -> Result<Tries> {
    let mut buf = [0u8; TRIES_RECORD];
    let Some(record) = store.read(keys(which).1, &mut buf)? else {
        return Err(Error::Flash);
    };
    let [left, max, tag @ ..] = record else {
        return Err(Error::Tampered);
    };
    let tries = Tries {
        left: *left,
        max: *max,
    };
    if tag.len() != TAG || !secrets::same(tag, &tries.tag(id, which)?) {
        return Err(Error::Tampered);
    }
    Ok(tries)
}

/// The digest record: `[default flag, digest…]`.
pub fn encode_digest(digest: &Digest, is_default: bool) -> [u8; 33] {
    let mut out = [0u8; 33];
    let (flag, rest) = out.split_at_mut(1);
    flag.copy_from_slice(&[u8::from(is_default)]);
    rest.copy_from_slice(digest);
    out
}

/// Reads the stored digest.
pub fn stored(store: &mut dyn Persistent, which: Passcode) -> Result<Stored> {
    let mut buf = [0u8; 33];
    let rec = store.read(keys(which).0, &mut buf)?.ok_or(Error::Flash)?;
    let (&flag, digest) = rec.split_first().ok_or(Error::Flash)?;
    Ok(Stored {
        digest: digest.try_into().map_err(|_| Error::Flash)?,
        is_default: flag == 1,
    })
}

/// Digests a passcode under the card's hashing key.
pub fn digest(id: &Identity, which: Passcode, value: &Padded) -> Result<Digest> {
    secrets::hash_passcode(&id.pin_key, reference(which), value.field())
}

/// Checks `candidate` against the stored passcode.
///
/// On a right value, `then` is committed together with the restored counter
/// in one transaction (a PIN change, an unblock). Returns the outcome of the
/// comparison after the counter is safe on flash.
///
/// A PIN check that fails ends the PIN session, whichever command presented
/// the PIN: whoever typed a wrong one must not keep a session the holder
/// opened, and a PIN it blocks must not leave one behind that VERIFY can no
/// longer report.
pub fn check(
    store: &mut dyn Persistent,
    session: &mut Session,
    id: &Identity,
    which: Passcode,
    candidate: &Padded,
    then: &[Op<'_>],
) -> Result<()> {
    let outcome = compare(store, id, which, candidate, then);
    if which == Passcode::Pin && outcome.is_err() {
        session.forget_pin();
    }
    outcome
}

/// VERIFY: checks the PIN and, if it is right, opens the PIN session (the
/// proofs for "once" and "PIN always" keys).
pub fn verify(
    store: &mut dyn Persistent,
    session: &mut Session,
    id: &Identity,
    candidate: &Padded,
) -> Result<()> {
    check(store, session, id, Passcode::Pin, candidate, &[])?;
    session.pin = Some(PinVerified(()));
    session.pin_always = Some(PinVerified(()));
    Ok(())
}

/// The proof that PIN and PUK are both blocked, or `69 85`. A counter the
/// card does not take counts as blocked: RESET, which clears every key,
/// is then the way back.
pub fn both_blocked(store: &mut dyn Persistent, id: &Identity) -> Result<BothBlocked> {
    let left = |store: &mut dyn Persistent, which| match tries(store, id, which) {
        Ok(tries) => Ok(tries.left),
        Err(Error::Tampered) => Ok(0),
        Err(e) => Err(e),
    };
    if left(store, Passcode::Pin)? != 0 || left(store, Passcode::Puk)? != 0 {
        return Err(Error::Conditions);
    }
    Ok(BothBlocked(()))
}

/// The factory PIN and PUK digest records for `id`.
pub fn factory_records(id: &Identity) -> Result<([u8; 33], [u8; 33])> {
    let pin = encode_digest(
        &digest(id, Passcode::Pin, &Padded::from_text(DEFAULT_PIN)?)?,
        true,
    );
    let puk = encode_digest(
        &digest(id, Passcode::Puk, &Padded::from_text(DEFAULT_PUK)?)?,
        true,
    );
    Ok((pin, puk))
}

/// SET PIN RETRIES: new try counts, PIN and PUK back to their factory
/// values, in one transaction. Needs the management key and the PIN.
pub fn set_retries(
    store: &mut dyn Persistent,
    id: &Identity,
    (pin_tries, puk_tries): (u8, u8),
    _admin: &Admin,
    _pin: &PinVerified,
) -> Result<()> {
    let (pin, puk) = factory_records(id)?;
    let (pt, kt) = (
        Tries::full(pin_tries).sealed(id, Passcode::Pin)?,
        Tries::full(puk_tries).sealed(id, Passcode::Puk)?,
    );
    store.commit(&[
        Op::Put(layout::PIN_HASH, &pin),
        Op::Put(layout::PIN_TRIES, &pt),
        Op::Put(layout::PUK_HASH, &puk),
        Op::Put(layout::PUK_TRIES, &kt),
    ])?;
    Ok(())
}

/// The comparison of `check`, with the counter committed first.
fn compare(
    store: &mut dyn Persistent,
    id: &Identity,
    which: Passcode,
    candidate: &Padded,
    then: &[Op<'_>],
) -> Result<()> {
    let (_, tries_key) = keys(which);
    let tries = tries(store, id, which)?;
    if tries.left == 0 {
        return Err(Error::Blocked);
    }
    let spent = Tries {
        left: tries.left - 1,
        max: tries.max,
    };
    let spent_record = spent.sealed(id, which)?;
    store.commit(&[Op::Put(tries_key, &spent_record)])?;

    let expected = Zeroizing::new(stored(store, which)?.digest);
    let given = Zeroizing::new(digest(id, which, candidate)?);
    let right = secrets::same(&*expected, &*given);

    if right {
        let restored = Tries::full(tries.max).sealed(id, which)?;
        let mut ops: heapless::Vec<Op<'_>, { card_os::store::MAX_TX_OPS }> = heapless::Vec::new();
        ops.push(Op::Put(tries_key, &restored))
            .map_err(|_| Error::NoSpace)?;
        ops.extend_from_slice(then).map_err(|_| Error::NoSpace)?;
        store.commit(&ops)?;
        Ok(())
    } else {
        store.commit(&[Op::Put(tries_key, &spent_record)])?;
        // The try that blocks still answers `63 C0`; `69 83` comes after.
        Err(Error::WrongPasscode(spent.left))
    }
}
