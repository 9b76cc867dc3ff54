//! The vsmartcard vpcd transport: a TCP stream as the card's link.
//!
//! The framing and the frame loop are card-os's ([`card_os::link`]); a
//! `TcpStream` becomes an `embedded-io` link through [`TcpLink`]. Reads go
//! straight to the socket; writes are gathered until `flush`, so that a
//! frame leaves in one piece (a frame split over two TCP segments waits on
//! the peer's delayed ACK).

use std::io::{self, BufWriter, Read, Write};
use std::net::TcpStream;

pub use card_os::link::{FRAME_CAPACITY, Frame, Observer, Outcome, Respond, serve};

/// A TCP stream as a card-os link.
pub struct TcpLink {
    reader: TcpStream,
    writer: BufWriter<TcpStream>,
}

impl TcpLink {
    /// The stream (for socket options).
    pub fn stream(&self) -> &TcpStream {
        &self.reader
    }
}

/// Wraps a connected stream.
pub fn tcp_link(stream: TcpStream) -> io::Result<TcpLink> {
    Ok(TcpLink {
        reader: stream.try_clone()?,
        writer: BufWriter::new(stream),
    })
}

impl embedded_io::ErrorType for TcpLink {
    type Error = io::Error;
}

impl embedded_io::Read for TcpLink {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl embedded_io::Write for TcpLink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// A card-os link error as the std error the stream gave, or a cut frame.
pub fn io_error(e: card_os::link::LinkError<io::Error>) -> io::Error {
    match e {
        card_os::link::LinkError::Truncated => io::ErrorKind::UnexpectedEof.into(),
        card_os::link::LinkError::Io(e) => e,
    }
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
