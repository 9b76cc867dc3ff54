//! The card's side of the virtual reader's link: the frame loop that turns
//! a byte stream into power events and APDUs and the card's answers back
//! into bytes, and [`Respond`], whatever answers them (the card, or a proxy
//! to one: the firmware card behind its contacts, [`crate::contact`]).
//!
//! The framing is vsmartcard vpcd's. Both directions carry frames: a
//! 2-byte big-endian length, then that many bytes. From the reader, a
//! 1-byte frame is a control command (`00` power off, `01` power on, `02`
//! reset, `04` get ATR); anything longer is a command APDU.

use embedded_io::{ErrorType, Read, ReadExactError, Write};

use crate::card::{CHAIN_CAPACITY, Card, Mute, ResponseApdu};

/// The longest frame the card takes in whole: an extended-length APDU
/// (7 header bytes, 2 of Le) carrying as much data as a whole command
/// chain may. A longer one is drained and answered `67 00`.
pub const FRAME_CAPACITY: usize = CHAIN_CAPACITY + 9;

/// What a frame from the reader asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
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
    Apdu(&'a [u8]),
    /// A command longer than [`FRAME_CAPACITY`], this long; its bytes
    /// were read and dropped.
    Oversized(usize),
    /// The command the card gathered itself, part by part
    /// ([`Respond::gather`]): a T=1 chain, or a command held while the
    /// reader granted it time.
    Gathered,
}

impl<'a> Frame<'a> {
    /// Interprets a frame's body.
    pub fn from_body(body: &'a [u8]) -> Frame<'a> {
        match body {
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

/// One frame's body as it came off a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'b> {
    /// The body, within the buffer.
    Fits(&'b [u8]),
    /// A body longer than the buffer, this long; its bytes were read and
    /// dropped.
    Oversized(usize),
}

/// What became of a frame.
// Returned by value once per frame and sent at once; a card has no heap to
// box the answer in.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer to send back.
    Answer(ResponseApdu),
    /// Nothing to send (power and unknown control frames).
    Silent,
    /// The card is gone (a proxy's card died): the session ends, as when a
    /// card leaves the reader.
    Gone,
}

/// Whatever answers frames: the card, a proxy to a card elsewhere (the
/// firmware under QEMU), or a stand-in with no card behind it (the
/// simulator's transport benchmark). The ATR comes as a [`ResponseApdu`]
/// too, judged public.
pub trait Respond {
    /// What `frame` gets.
    fn respond(&mut self, frame: Frame<'_>) -> Outcome;

    /// How many block waiting times the command `frame` (an APDU, or the
    /// one gathered) may take to answer, 0 if it answers within one: a T=1
    /// card asks the reader for them (S(WTX)) before it runs such a
    /// command rather than fall silent ([`crate::contact`]).
    fn waiting_time(&self, frame: &Frame<'_>) -> u8 {
        let _ = frame;
        0
    }

    /// Takes the next part of a command that comes in several pieces (a
    /// T=1 chain) into the card's own buffer, `first` for a command's
    /// first part; [`Frame::Gathered`] then runs it. A link layer so needs
    /// no command buffer of its own beside the card's, which on a chip is
    /// 3 KiB of RAM. False if the card keeps no such buffer (the default):
    /// the link then answers the command as too long for the card.
    fn gather(&mut self, part: &[u8], first: bool) -> bool {
        let _ = (part, first);
        false
    }

    /// Wipes what [`Respond::gather`] took of a command that will not run
    /// (the reader aborted its chain).
    fn abandon(&mut self) {}
}

impl<F, R, A, const K: usize, V, S> Respond for Card<F, R, A, K, V, S>
where
    F: embedded_storage::nor_flash::NorFlash,
    R: rand_core::CryptoRng,
    A: crate::applet::Applets,
    V: core::borrow::BorrowMut<crate::card::Volatile>,
    S: core::borrow::BorrowMut<crate::store::Store<F, K>>,
{
    fn respond(&mut self, frame: Frame<'_>) -> Outcome {
        match frame {
            Frame::PowerOff => self.power_off(),
            Frame::PowerOn => {
                self.power_on();
            }
            Frame::Reset => {
                self.warm_reset();
            }
            Frame::GetAtr => return Outcome::Answer(ResponseApdu::atr(self.atr())),
            Frame::UnknownControl(_) | Frame::Empty => {}
            // Refused as a command gathered past the buffer is: one
            // mapping to a status word, in `Error`.
            Frame::Oversized(_) => {
                return Outcome::Answer(ResponseApdu::status(
                    crate::error::Error::CommandTooLong.status(),
                ));
            }
            // One call for both: each inlined would give this frame a
            // response's 260 bytes of stack twice.
            Frame::Apdu(_) | Frame::Gathered => {
                let rsp = match self.transmit_frame(&frame) {
                    Ok(rsp) => Ok(rsp),
                    Err(Mute::NoPower) => {
                        // vpcd powers the card before it sends APDUs; if it
                        // did not, power it now rather than leave the reader
                        // hanging.
                        self.power_on();
                        self.transmit_frame(&frame)
                    }
                };
                if let Ok(rsp) = rsp {
                    return Outcome::Answer(rsp);
                }
            }
        }
        Outcome::Silent
    }

    fn waiting_time(&self, frame: &Frame<'_>) -> u8 {
        match frame {
            Frame::Apdu(apdu) => Card::waiting_time(self, apdu),
            Frame::Gathered => self
                .gathered()
                .map_or(0, |apdu| Card::waiting_time(self, apdu)),
            _ => 0,
        }
    }

    fn gather(&mut self, part: &[u8], first: bool) -> bool {
        Card::gather(self, part, first)
    }

    fn abandon(&mut self) {
        Card::abandon(self)
    }
}

/// Why the link stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError<E> {
    /// The stream ended in the middle of a frame.
    Truncated,
    /// The stream failed.
    Io(E),
}

impl<E> From<ReadExactError<E>> for LinkError<E> {
    fn from(e: ReadExactError<E>) -> Self {
        match e {
            ReadExactError::UnexpectedEof => LinkError::Truncated,
            ReadExactError::Other(e) => LinkError::Io(e),
        }
    }
}

/// Reads the next frame into `buf`. `Ok(None)`: the stream ended cleanly,
/// between frames. A frame longer than `buf` is read to its end and dropped,
/// so the stream stays in step.
pub fn read_frame<'b, L: Read>(
    link: &mut L,
    buf: &'b mut [u8],
) -> Result<Option<Frame<'b>>, LinkError<L::Error>> {
    Ok(read_body(link, buf)?.map(|body| match body {
        Body::Fits(body) => Frame::from_body(body),
        Body::Oversized(len) => Frame::Oversized(len),
    }))
}

/// Reads the next frame's body into `buf`. `Ok(None)`: the stream ended
/// cleanly.
fn read_body<'b, L: Read>(
    link: &mut L,
    buf: &'b mut [u8],
) -> Result<Option<Body<'b>>, LinkError<L::Error>> {
    let mut len = [0u8; 2];
    // The first byte decides between a clean end and a cut frame.
    let first = len.get_mut(..1).unwrap_or_default();
    if link.read(first).map_err(LinkError::Io)? == 0 {
        return Ok(None);
    }
    link.read_exact(len.get_mut(1..).unwrap_or_default())?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > buf.len() {
        let mut scratch = [0u8; 1];
        let sink: &mut [u8] = if buf.is_empty() { &mut scratch } else { buf };
        let mut left = len;
        while left > 0 {
            let step = left.min(sink.len());
            link.read_exact(sink.get_mut(..step).unwrap_or_default())?;
            left -= step;
        }
        return Ok(Some(Body::Oversized(len)));
    }
    let body = buf.get_mut(..len).unwrap_or_default();
    link.read_exact(body)?;
    Ok(Some(Body::Fits(body)))
}

/// Writes one frame. The whole frame is handed over before `flush`, which
/// transports that send a frame in one piece (TCP, where a split frame
/// waits on a delayed ACK) rely on.
pub fn write_frame<L: Write>(link: &mut L, body: &[u8]) -> Result<(), L::Error> {
    // Bodies come from the card: an ATR or a response of at most 258 bytes.
    let len = body.len().min(usize::from(u16::MAX)) as u16;
    link.write_all(&len.to_be_bytes())?;
    link.write_all(body)?;
    link.flush()
}

/// What the host side of a link may watch or cut short; the firmware
/// watches nothing, the simulator traces and times exchanges.
pub trait Observer {
    /// Called before the loop waits for a frame.
    fn waiting(&mut self) {}
    /// A frame arrived; returning `false` ends the session before the card
    /// sees it.
    fn received(&mut self, frame: &Frame<'_>) -> bool {
        let _ = frame;
        true
    }
    /// The card answered a command APDU (the answer is not sent yet).
    fn answered(&mut self, command: &[u8], answer: &ResponseApdu) {
        let _ = (command, answer);
    }
    /// The answer to the last frame went out.
    fn sent(&mut self) {}
}

impl Observer for () {}

/// Serves frames until the stream ends (`Ok`), fails, or the observer ends
/// the session. `buf` holds one incoming frame: [`FRAME_CAPACITY`] bytes
/// take every command the card can.
pub fn serve<L, C, O>(
    link: &mut L,
    card: &mut C,
    buf: &mut [u8],
    observer: &mut O,
) -> Result<(), LinkError<<L as ErrorType>::Error>>
where
    L: Read + Write,
    C: Respond,
    O: Observer,
{
    loop {
        observer.waiting();
        let Some(frame) = read_frame(link, buf)? else {
            return Ok(());
        };
        if !observer.received(&frame) {
            return Ok(());
        }
        let answer = match card.respond(frame) {
            Outcome::Answer(answer) => answer,
            Outcome::Silent => continue,
            Outcome::Gone => return Ok(()),
        };
        if let Frame::Apdu(command) = frame {
            observer.answered(command, &answer);
        }
        write_frame(link, answer.as_slice()).map_err(LinkError::Io)?;
        observer.sent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte stream over two slices: what the reader sends, what the card
    /// wrote.
    struct Pipe<'a> {
        input: &'a [u8],
        output: heapless::Vec<u8, 4096>,
    }

    impl ErrorType for Pipe<'_> {
        type Error = core::convert::Infallible;
    }

    impl Read for Pipe<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Ok(n)
        }
    }

    impl Write for Pipe<'_> {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.output.capacity() - self.output.len());
            self.output.extend_from_slice(&buf[..n]).unwrap();
            Ok(n)
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    #[test]
    fn frames_are_read_and_oversized_ones_drained() {
        let input = [0, 1, 1, 0, 3, 0xAA, 0xBB, 0xCC, 0, 1, 4];
        let mut pipe = Pipe {
            input: &input,
            output: heapless::Vec::new(),
        };
        let mut buf = [0u8; 2];
        assert_eq!(read_frame(&mut pipe, &mut buf), Ok(Some(Frame::PowerOn)));
        assert_eq!(
            read_frame(&mut pipe, &mut buf),
            Ok(Some(Frame::Oversized(3)))
        );
        assert_eq!(read_frame(&mut pipe, &mut buf), Ok(Some(Frame::GetAtr)));
        assert_eq!(read_frame(&mut pipe, &mut buf), Ok(None));
    }

    #[test]
    fn a_cut_frame_is_an_error() {
        for input in [&[0u8][..], &[0, 3, 1, 2]] {
            let mut pipe = Pipe {
                input,
                output: heapless::Vec::new(),
            };
            assert_eq!(
                read_frame(&mut pipe, &mut [0u8; 8]),
                Err(LinkError::Truncated)
            );
        }
    }
}
