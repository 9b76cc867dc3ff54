//! The vsmartcard vpcd transport: a TCP stream as the card's link.
//!
//! The framing and the frame loop are card-os's ([`card_os::link`]), the
//! same code the firmware runs over its UART; this module only adapts a
//! `TcpStream` to `embedded-io` so that each frame leaves in one `write`
//! (a frame split over two segments waits on vpcd's delayed ACK).

use std::io::{self, BufWriter, Read as _, Write as _};
use std::net::TcpStream;

pub use card_os::link::{FRAME_CAPACITY, Frame, Framing, Meta, Observer, Outcome, Respond, serve};

/// A TCP stream as a link: reads straight from the socket, writes gathered
/// until the frame is complete.
pub struct TcpLink {
    reader: TcpStream,
    writer: BufWriter<TcpStream>,
}

impl TcpLink {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream) -> io::Result<TcpLink> {
        let writer = BufWriter::new(stream.try_clone()?);
        Ok(TcpLink {
            reader: stream,
            writer,
        })
    }

    /// The stream (for socket options).
    pub fn stream(&self) -> &TcpStream {
        &self.reader
    }
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
