//! A std stream (the TCP connection to vpcd) as a card-os link, so that
//! the vpcd link runs card-os's framing ([`card_os::link`]). Reads go straight
//! to the socket; writes are gathered until `flush`, so that a frame
//! leaves in one piece (a frame split over two TCP segments waits on the
//! peer's delayed ACK).

use std::io::{self, BufWriter, Read, Write};

/// A stream as an `embedded-io` link.
pub struct StreamLink<S: Write> {
    reader: S,
    writer: BufWriter<S>,
}

impl<S: Read + Write> StreamLink<S> {
    /// A link reading from `reader` and writing to `writer`: two handles
    /// on one stream (`try_clone`).
    pub fn new(reader: S, writer: S) -> StreamLink<S> {
        StreamLink {
            reader,
            writer: BufWriter::new(writer),
        }
    }

    /// The stream (for socket options).
    pub fn stream(&self) -> &S {
        &self.reader
    }
}

impl<S: Write> embedded_io::ErrorType for StreamLink<S> {
    type Error = io::Error;
}

impl<S: Read + Write> embedded_io::Read for StreamLink<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl<S: Read + Write> embedded_io::Write for StreamLink<S> {
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
