//! What an applet sees of the card: the commands for it, the persistent
//! store and the random number generator.

use apdu::{Command, Header, Status, tlv::Writer};
use rand_core::CryptoRng;

use crate::store::{Key, Op, Store, StoreError};
use embedded_storage::nor_flash::NorFlash;

/// The applet's response data, written in place into the card's response
/// buffer. Its TLV helpers build nested templates without a second buffer.
pub type Reply<'b> = Writer<'b>;

/// The persistent store, as an applet uses it. A trait so that applets do
/// not carry the flash type in theirs.
pub trait Persistent {
    /// Reads `key`'s value into `buf`; `None` if it holds nothing.
    fn read<'b>(&mut self, key: Key, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, StoreError>;
    /// The length of `key`'s value, if any.
    fn len_of(&self, key: Key) -> Option<usize>;
    /// Applies `ops` all together or not at all, even across a power cut.
    fn commit(&mut self, ops: &[Op<'_>]) -> Result<(), StoreError>;
}

impl<F: NorFlash, const KEYS: usize> Persistent for Store<F, KEYS> {
    fn read<'b>(&mut self, key: Key, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, StoreError> {
        self.read_value(key, buf)
    }

    fn len_of(&self, key: Key) -> Option<usize> {
        self.value_len(key)
    }

    fn commit(&mut self, ops: &[Op<'_>]) -> Result<(), StoreError> {
        Store::commit(self, ops)
    }
}

/// The interface a card is reached through: what it may be asked
/// depends on it (a PIV card keeps most of itself off the contactless
/// interface until a secure channel is open).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Interface {
    /// ISO/IEC 7816-3 contacts (or a USB token's CCID).
    #[default]
    Contact,
    /// ISO/IEC 14443 contactless.
    Contactless,
}

/// The card's services, lent to an applet for one command.
pub struct Context<'a> {
    /// Persistent records.
    pub store: &'a mut dyn Persistent,
    /// The card's random number generator.
    pub rng: &'a mut dyn CryptoRng,
    /// The interface the command came through.
    pub interface: Interface,
}

/// Which parts of one exchange are secret, in the judgement of the applet
/// that handles it.
///
/// The card alone knows what its commands carry: a PIN, an imported key, a
/// shared secret, a PIN-protected object. Everything outside the card (a
/// trace, a log, a fuzz corpus) must obey this verdict rather than guess
/// from headers, and card-os hands it out with every response APDU,
/// including each GET RESPONSE part of a long answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Secrecy {
    /// The command data is secret.
    pub command: bool,
    /// The response data is secret.
    pub response: bool,
}

impl Secrecy {
    /// Nothing secret.
    pub const PUBLIC: Secrecy = Secrecy {
        command: false,
        response: false,
    };
    /// Both directions secret: what the card says of a command it cannot
    /// judge (no applet selected, bytes that are no APDU).
    pub const SECRET: Secrecy = Secrecy {
        command: true,
        response: true,
    };
    /// The command data is secret, the response is not.
    pub const COMMAND: Secrecy = Secrecy {
        command: true,
        response: false,
    };
    /// The response data is secret, the command is not.
    pub const RESPONSE: Secrecy = Secrecy {
        command: false,
        response: true,
    };
}

/// A card application.
///
/// The OS handles framing, chaining, GET RESPONSE and selection; an applet
/// sees whole commands and writes whole responses. Its volatile state (what
/// has been verified, pending challenges) is its own, and it must drop it in
/// [`Applet::deselect`] and [`Applet::reset`].
pub trait Applet {
    /// The applet's full AID.
    fn aid(&self) -> &[u8];

    /// The applet has been selected (or selected again: then it keeps its
    /// security status). Writes the selection response into `reply`.
    fn select(&mut self, ctx: &mut Context<'_>, reply: &mut Reply<'_>) -> Result<(), Status>;

    /// Another applet was selected: drop the security status.
    fn deselect(&mut self);

    /// Processes one complete (reassembled) command.
    fn process(
        &mut self,
        command: &Command<'_>,
        ctx: &mut Context<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), Status>;

    /// Processes a command put together from a chain, whose data lies in
    /// the card's buffer: the applet may overwrite it (to decrypt a
    /// protected command where it lies, say); the OS wipes it after. By
    /// default, as [`Applet::process`].
    fn process_chained(
        &mut self,
        header: Header,
        data: &mut [u8],
        expected: Option<u32>,
        ctx: &mut Context<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), Status> {
        match Command::new(header, data, expected) {
            Ok(command) => self.process(&command, ctx, reply),
            Err(_) => Err(Status::WrongLength),
        }
    }

    /// Which parts of a command for this applet, and of its answer, are
    /// secret. `data` is the command data as far as the card has it: for a
    /// part of a chain, the parts received so far, so the verdict must hold
    /// for a prefix (judge "secret" when the prefix is too short to tell).
    /// It depends on the command alone, never on its outcome, so that an
    /// error path cannot forget it.
    fn secrecy(&self, header: &Header, data: &[u8]) -> Secrecy;

    /// How many block waiting times of the contact interface (about 1.5 s
    /// each at the ATR's BWI on a 3.57 MHz clock) this command may take on
    /// a card chip, 0 if it answers within one. The card asks the reader
    /// for the time before it runs the command (T=1's S(WTX)); a command
    /// that outlasts what it asked for is taken for a mute card. `data` is
    /// this APDU's data (the last part, for a chain).
    fn waiting_time(&self, header: &Header, data: &[u8]) -> u8 {
        let _ = (header, data);
        0
    }

    /// The card was reset or powered off: drop every volatile state.
    fn reset(&mut self) {
        self.deselect();
    }
}

/// An applet a card may be made without: `None` is not installed. It has
/// no AID, so no SELECT finds it, and nothing else reaches an applet that
/// was never selected.
impl<A: Applet> Applet for Option<A> {
    fn aid(&self) -> &[u8] {
        self.as_ref().map_or(&[], Applet::aid)
    }

    fn select(&mut self, ctx: &mut Context<'_>, reply: &mut Reply<'_>) -> Result<(), Status> {
        match self {
            Some(applet) => applet.select(ctx, reply),
            None => Err(Status::NotFound),
        }
    }

    fn deselect(&mut self) {
        if let Some(applet) = self {
            applet.deselect();
        }
    }

    fn process(
        &mut self,
        command: &Command<'_>,
        ctx: &mut Context<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), Status> {
        match self {
            Some(applet) => applet.process(command, ctx, reply),
            None => Err(Status::InstructionNotSupported),
        }
    }

    fn process_chained(
        &mut self,
        header: Header,
        data: &mut [u8],
        expected: Option<u32>,
        ctx: &mut Context<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), Status> {
        match self {
            Some(applet) => applet.process_chained(header, data, expected, ctx, reply),
            None => Err(Status::InstructionNotSupported),
        }
    }

    fn secrecy(&self, header: &Header, data: &[u8]) -> Secrecy {
        self.as_ref()
            .map_or(Secrecy::SECRET, |applet| applet.secrecy(header, data))
    }

    fn waiting_time(&self, header: &Header, data: &[u8]) -> u8 {
        self.as_ref()
            .map_or(0, |applet| applet.waiting_time(header, data))
    }

    fn reset(&mut self) {
        if let Some(applet) = self {
            applet.reset();
        }
    }
}

/// The applets installed on a card, in registration order.
///
/// Implemented for tuples `(A,)`, `(A, B)` and `(A, B, C)`, so a card holds
/// its applets by value with no allocation and no `dyn` storage.
pub trait Applets {
    /// How many applets there are.
    fn count(&self) -> usize;
    /// Applet `i`.
    fn get(&mut self, i: usize) -> Option<&mut dyn Applet>;
    /// Applet `i`, to ask without changing it.
    fn applet(&self, i: usize) -> Option<&dyn Applet>;
    /// Applet `i`'s AID.
    fn aid(&self, i: usize) -> Option<&[u8]> {
        self.applet(i).map(Applet::aid)
    }

    /// Finds the applet a SELECT by DF name means: an exact AID match, or
    /// else the only applet whose AID starts with `name` (PIV middleware
    /// selects with the 5-byte prefix). `None` for no match or an ambiguous
    /// prefix.
    fn find(&self, name: &[u8]) -> Option<usize> {
        if name.is_empty() {
            return None;
        }
        let ids = 0..self.count();
        if let Some(i) = ids.clone().find(|&i| self.aid(i) == Some(name)) {
            return Some(i);
        }
        let mut matches = ids.filter(|&i| self.aid(i).is_some_and(|aid| aid.starts_with(name)));
        let first = matches.next()?;
        matches.next().is_none().then_some(first)
    }
}

macro_rules! tuple_applets {
    ($($name:ident : $idx:tt),+) => {
        impl<$($name: Applet),+> Applets for ($($name,)+) {
            fn count(&self) -> usize {
                [$($idx),+].len()
            }

            fn get(&mut self, i: usize) -> Option<&mut dyn Applet> {
                match i {
                    $($idx => Some(&mut self.$idx),)+
                    _ => None,
                }
            }

            fn applet(&self, i: usize) -> Option<&dyn Applet> {
                match i {
                    $($idx => Some(&self.$idx),)+
                    _ => None,
                }
            }
        }
    };
}

tuple_applets!(A: 0);
tuple_applets!(A: 0, B: 1);
tuple_applets!(A: 0, B: 1, C: 2);
