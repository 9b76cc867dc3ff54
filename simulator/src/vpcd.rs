//! The vsmartcard vpcd protocol, card side.
//!
//! Both directions carry frames: a 2-byte big-endian length and that many
//! bytes. From vpcd, a 1-byte frame is a control command (`00` power off,
//! `01` power on, `02` reset, `04` get ATR); anything longer is a command
//! APDU. The card answers get ATR and APDUs, one frame each, written with a
//! single `write` so that no partial frame ever waits on a delayed ACK.

use std::io::{self, Read, Write};

use card_os::{Card, Mute, Secrecy};

/// The longest frame vpcd can send: a 2-byte length says at most this.
pub const MAX_FRAME: usize = u16::MAX as usize;

/// What vpcd asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Power the card off.
    PowerOff,
    /// Power it on.
    PowerOn,
    /// Warm reset.
    Reset,
    /// Send the ATR.
    GetAtr,
    /// A 1-byte control command vpcd does not define.
    UnknownControl(u8),
    /// A zero-length frame: nothing to do.
    Empty,
    /// A command APDU.
    Apdu(Vec<u8>),
}

impl Frame {
    /// Interprets a frame body.
    pub fn from_body(body: Vec<u8>) -> Frame {
        match body.as_slice() {
            [] => Frame::Empty,
            [0x00] => Frame::PowerOff,
            [0x01] => Frame::PowerOn,
            [0x02] => Frame::Reset,
            [0x04] => Frame::GetAtr,
            [other] => Frame::UnknownControl(*other),
            _ => Frame::Apdu(body),
        }
    }
}

/// Reads one frame; an error means the connection is unusable (closed, or
/// cut in the middle of a frame).
pub fn read_frame(r: &mut impl Read) -> io::Result<Frame> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len)?;
    let len = usize::from(u16::from_be_bytes(len));
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Frame::from_body(body))
}

/// Writes one frame in a single `write` call.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u16::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    let mut frame = Vec::with_capacity(2 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    w.write_all(&frame)
}

/// What goes back to vpcd for a frame, with the card's verdict on what of
/// the exchange is secret (public for the ATR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The frame's body.
    pub bytes: Vec<u8>,
    /// What a trace of this exchange must redact.
    pub secrecy: Secrecy,
}

impl Answer {
    fn of(rsp: &card_os::ResponseApdu) -> Answer {
        Answer {
            bytes: rsp.to_vec(),
            secrecy: rsp.secrecy(),
        }
    }
}

/// What the card does with a frame: the answer to send back, if any.
pub fn respond<F, R, A, const K: usize>(
    card: &mut Card<F, R, A, K>,
    frame: &Frame,
) -> Option<Answer>
where
    F: embedded_storage::nor_flash::NorFlash,
    R: rand_chacha::rand_core::CryptoRng,
    A: card_os::Applets,
{
    if !matches!(frame, Frame::Apdu(_)) {
        tracing::debug!(?frame, "vpcd control");
    }
    match frame {
        Frame::PowerOff => {
            card.power_off();
            None
        }
        Frame::PowerOn => {
            card.power_on();
            None
        }
        Frame::Reset => {
            card.warm_reset();
            None
        }
        Frame::GetAtr => Some(Answer {
            bytes: card.atr().to_vec(),
            secrecy: Secrecy::PUBLIC,
        }),
        Frame::UnknownControl(b) => {
            tracing::warn!(control = b, "unknown vpcd control byte ignored");
            None
        }
        Frame::Empty => {
            tracing::warn!("empty vpcd frame ignored");
            None
        }
        Frame::Apdu(apdu) => match card.transmit(apdu) {
            Ok(rsp) => Some(Answer::of(&rsp)),
            Err(Mute::NoPower) => {
                // vpcd powers the card before it sends APDUs; if it did not,
                // power it now rather than leave the reader hanging.
                tracing::warn!("APDU to an unpowered card: powering on");
                card.power_on();
                card.transmit(apdu).ok().map(|r| Answer::of(&r))
            }
        },
    }
}
