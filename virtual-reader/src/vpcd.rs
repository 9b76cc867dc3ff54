//! The vsmartcard vpcd transport: a TCP stream as the card's link.
//!
//! The framing and the frame loop are card-os's ([`card_os::link`]); a
//! `TcpStream` becomes a link through [`virtual_card::link::StreamLink`].

use std::io;
use std::net::TcpStream;

use virtual_card::link::StreamLink;

pub use card_os::link::{FRAME_CAPACITY, Frame, Observer, Outcome, Respond, serve};

/// A TCP stream as a link.
pub type TcpLink = StreamLink<TcpStream>;

/// Wraps a connected stream.
pub fn tcp_link(stream: TcpStream) -> io::Result<TcpLink> {
    Ok(StreamLink::new(stream.try_clone()?, stream))
}

/// A card whose APDUs are answered `90 00` at once, without the card: the
/// transport's floor, for benchmarks. Power and the ATR are still the
/// card's. No card judged those answers, so a trace keeps nothing of them.
pub struct NullCard<'c, C>(pub &'c mut C);

impl<C: Respond> Respond for NullCard<'_, C> {
    fn respond(&mut self, frame: Frame<'_>) -> Outcome {
        match frame {
            Frame::Apdu(_) | Frame::Oversized(_) => {
                Outcome::Answer(card_os::ResponseApdu::status(apdu::Status::Success))
            }
            other => self.0.respond(other),
        }
    }
}
