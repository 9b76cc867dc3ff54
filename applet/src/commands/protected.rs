//! Commands under secure messaging: class `0C` (`1C` for a chain's parts,
//! which the card OS has put together). The command is unwrapped, run
//! exactly as it would run in the clear, and its answer, status word
//! included, wrapped; the wrapped answer goes out with `90 00` (and GET
//! RESPONSE fetches it in the clear, as any long answer).
//!
//! A command that is not the session's (no MAC, a MAC that does not
//! verify, a malformed cryptogram) ends the session and is answered in the
//! clear, `69 87` or `69 88`; with no session open, `69 82`.
//!
//! Everything happens in the card's one buffer, so SM costs no RAM of its
//! own beyond the session's keys: a chained command is decrypted where it
//! lies, a one-APDU command copied to the far end of the response room and
//! decrypted there; the plaintext answer is written after room for the
//! cryptogram's header and encrypted where it lies. Every plaintext is
//! wiped before the wrapped answer leaves.

use apdu::tlv::{Filled, Writer};
use apdu::{Command, Header, Status};
use card_os::{Context, Reply};
use zeroize::Zeroize;

use crate::Piv;
use crate::error::{Error, Result};
use crate::ins::INS_GENERAL_AUTHENTICATE;
use crate::sm::{AFTER, ESTABLISH_P2, RESERVED};

/// Whether a class byte asks for secure messaging with the header
/// authenticated, as PIV's does.
pub fn is_protected(cla: u8) -> bool {
    cla & 0x0C == 0x0C
}

/// Where a protected command's data is.
pub enum Data<'a> {
    /// In the APDU as it came: copied before it is decrypted.
    Sent(&'a [u8]),
    /// Put together from a chain in the card's buffer: decrypted there.
    Chained(&'a mut [u8]),
}

/// Runs a protected command.
#[inline(never)]
pub fn run(
    piv: &mut Piv,
    header: Header,
    data: Data<'_>,
    ctx: &mut Context<'_>,
    reply: &mut Reply<'_>,
) -> Result<()> {
    if !piv.profile.has_secure_messaging() {
        return Err(Error::NoSecureMessaging);
    }
    // The channel is taken out while the command inside runs (which may
    // borrow the whole applet), and put back after.
    let mut channel = piv.session.sm.take().ok_or(Error::SecurityStatus)?;
    let outcome = reply.in_place(|rest: &mut [u8]| -> Result<Filled> {
        let room = rest.len();
        // The command's bytes, where they can be decrypted in place.
        let (front, command) = match data {
            Data::Chained(bytes) => (rest, bytes),
            Data::Sent(bytes) => {
                let at = room.checked_sub(bytes.len()).ok_or(Error::NoSpace)?;
                let (front, scratch) = rest.split_at_mut(at);
                scratch.copy_from_slice(bytes);
                (front, scratch)
            }
        };
        if front.len() < RESERVED + AFTER {
            command.zeroize();
            return Err(Error::NoSpace);
        }
        let plain = match channel.unwrap(&header, command) {
            Ok(plain) => plain,
            Err(e) => {
                command.zeroize();
                return Err(e);
            }
        };
        let status = run_inner(
            piv,
            header,
            command.get(plain).unwrap_or_default(),
            ctx,
            front,
        );
        command.zeroize();
        let (len, status) = match status {
            Ok(len) => (len, Status::Success),
            Err(e) => (0, e.status()),
        };
        let n = channel.wrap(front, len, status)?;
        Ok(Filled {
            len: n,
            touched: room,
        })
    });
    match outcome {
        // The command was not the session's: the session is over.
        Err(e @ (Error::SmMissing | Error::SmIncorrect)) => Err(e),
        other => {
            piv.session.sm = Some(channel);
            other
        }
    }
}

/// Runs the unwrapped command, its answer written to `front` after
/// [`RESERVED`] bytes; the answer's length. Whatever an error left
/// written is wiped.
fn run_inner(
    piv: &mut Piv,
    header: Header,
    plain: &[u8],
    ctx: &mut Context<'_>,
    front: &mut [u8],
) -> Result<usize> {
    // Key establishment is never inside a session.
    if header.ins == INS_GENERAL_AUTHENTICATE && header.p2 == ESTABLISH_P2 {
        return Err(Error::Conditions);
    }
    let inner = Command::new(
        Header {
            cla: 0x00,
            ..header
        },
        plain,
        None,
    )
    .map_err(|_| Error::WrongLength)?;
    let limit = front.len() - AFTER;
    let answer = front.get_mut(RESERVED..limit).ok_or(Error::NoSpace)?;
    let mut w = Writer::new(answer);
    let result = super::run(piv, &inner, ctx, &mut w, crate::access::Via::Protected);
    let len = if result.is_ok() { w.len() } else { 0 };
    let high = w.high_water();
    if let Some(stale) = answer.get_mut(len..high.max(len)) {
        stale.zeroize();
    }
    result.map(|()| len)
}
