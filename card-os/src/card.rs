//! The card: power, APDU framing and chaining, GET RESPONSE, selection.

use apdu::{Chain, Class, Command, Header, SecureMessaging, Status, tlv::Writer};
use core::borrow::BorrowMut;
use core::marker::PhantomData;

use embedded_storage::nor_flash::NorFlash;
use heapless::Vec;
use rand_core::CryptoRng;

use zeroize::Zeroize;

use crate::applet::{Applets, Context, Interface, Secrecy};
use crate::atr::Atr;
use crate::error::Error;
use crate::link::{FRAME_CAPACITY, Frame};
use crate::store::{Store, StoreError};

/// The longest command a chain may assemble: a 3 KiB certificate in a PUT
/// DATA template, with room to spare.
pub const CHAIN_CAPACITY: usize = 3 * 1024 + 256;
/// The longest response an applet may produce: what the card's one
/// buffer holds beside a command's data gathered by chaining (a command
/// in one APDU leaves it all).
pub const RESPONSE_CAPACITY: usize = CHAIN_CAPACITY;
/// The most response data one APDU carries: short Le, as PIV tools use.
const CHUNK: usize = 256;
/// A response APDU (up to 256 data bytes and SW1 SW2) with the card's
/// verdict on what of the exchange was secret.
///
/// It reads as its bytes; [`ResponseApdu::secrecy`] is for whoever records
/// exchanges (traces, corpora), which must redact what it marks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseApdu {
    bytes: Vec<u8, { CHUNK + 2 }>,
    secrecy: Secrecy,
}

impl ResponseApdu {
    /// A response that came from a card elsewhere (a proxy's): `bytes`
    /// with the verdict that card gave; `None` if it cannot be one (no
    /// status word, or longer than 256 data bytes).
    pub fn relayed(bytes: &[u8], secrecy: Secrecy) -> Option<ResponseApdu> {
        if bytes.len() < 2 {
            return None;
        }
        Some(ResponseApdu {
            bytes: Vec::from_slice(bytes).ok()?,
            secrecy,
        })
    }

    /// The ATR, as the answer to a reader's get-ATR request.
    pub(crate) fn atr(atr: &[u8]) -> ResponseApdu {
        let mut bytes = Vec::new();
        let _ = bytes.extend_from_slice(atr);
        ResponseApdu {
            bytes,
            secrecy: Secrecy::PUBLIC,
        }
    }

    /// A bare status word for bytes no applet judged (a frame too long to
    /// take in, a transport benchmark's stand-in): everything about it is
    /// secret.
    pub fn status(status: Status) -> ResponseApdu {
        let mut bytes = Vec::new();
        let _ = bytes.extend_from_slice(&status.to_bytes());
        ResponseApdu {
            bytes,
            secrecy: Secrecy::SECRET,
        }
    }

    /// What of the command that was sent, and of this response, is secret.
    pub const fn secrecy(&self) -> Secrecy {
        self.secrecy
    }

    /// The response bytes: data, then SW1 SW2.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }
}

impl core::ops::Deref for ResponseApdu {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

const INS_SELECT: u8 = 0xA4;
const INS_GET_RESPONSE: u8 = 0xC0;
/// SELECT P1: by DF name (AID).
const SELECT_BY_NAME: u8 = 0x04;
/// SELECT P2: return the FCI, or return nothing.
const SELECT_RETURN_FCI: u8 = 0x00;
const SELECT_NO_RESPONSE: u8 = 0x0C;

/// CLA INS P1 P2.
const HEADER: usize = 4;

/// A command the link is handing over part by part ([`Card::gather`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Inbox {
    /// Where it starts in the buffer: after what it may still need (the
    /// chain it may continue, the response a GET RESPONSE would fetch).
    at: usize,
    /// Bytes gathered so far.
    len: usize,
    /// Bytes dropped because they did not fit: if any, only the command's
    /// header was kept (it is no secret, and tells a chain too long from a
    /// command too long), and the command is refused. A count, not an
    /// `Option` of a verdict: an enum's spare values would make an empty
    /// inbox non-zero and move the card's 3 KiB of volatile state from
    /// `.bss` into flash.
    dropped: usize,
}

/// A command chain being assembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PendingChain {
    /// INS P1 P2 of the chain's parts; a part with others breaks the chain.
    key: [u8; 3],
    len: usize,
}

/// Where a complete command's data is.
enum Data<'a> {
    /// In the APDU just received.
    Apdu(&'a [u8]),
    /// In the chaining buffer, this long.
    Chained(usize),
}

/// Everything a reset forgets: forgetting this struct (wiped, then made
/// anew) is the whole of what a power cycle or warm reset does to the OS
/// (applets drop their own). A card keeps it inline, or borrows it
/// ([`Card::with_volatile`]) where it must sit in a static of its own: it is
/// most of a card's RAM, and moving it in a constructor's frame would need
/// as much stack again.
///
/// One buffer serves a command's chained data and the response: the data
/// gathered from its start, the response written after it (an applet reads
/// the one while it writes the other), and kept there for GET RESPONSE once
/// the data is wiped. A command a link hands over in parts (T=1's chains)
/// is gathered here too, after whatever it may still need, and its data
/// moved into place when it runs. A card's RAM holds one such buffer, not
/// two or three: no command takes 3 KiB in and gives 3 KiB back. It may
/// hold secrets (a chained IMPORT's scalar, a PIN, an ECDH output), so
/// each part is wiped as soon as the command or answer it served is done
/// with, not merely overwritten by the next one.
pub struct Volatile {
    selected: Option<usize>,
    chain: Option<PendingChain>,
    inbox: Option<Inbox>,
    /// The longest command whole: [`FRAME_CAPACITY`] bytes.
    buf: [u8; FRAME_CAPACITY],
    /// The pending response: `buf[start + sent..start + len]` unsent.
    start: usize,
    sent: usize,
    len: usize,
    /// The applet's verdict on the pending response, for its GET RESPONSE
    /// parts.
    response_secret: bool,
}

impl Default for Volatile {
    fn default() -> Self {
        Self::new()
    }
}

impl Volatile {
    /// Nothing selected, nothing pending, the buffer zeroed.
    pub const fn new() -> Self {
        Volatile {
            selected: None,
            chain: None,
            inbox: None,
            buf: [0; FRAME_CAPACITY],
            start: 0,
            sent: 0,
            len: 0,
            response_secret: false,
        }
    }

    fn pending(&self) -> usize {
        self.len - self.sent
    }

    /// Abandons a chain being assembled, wiping what it had.
    fn drop_chain(&mut self) {
        if let Some(chain) = self.chain.take()
            && let Some(held) = self.buf.get_mut(..chain.len)
        {
            held.zeroize();
        }
    }

    /// Abandons a command being gathered, wiping what it had.
    fn drop_inbox(&mut self) {
        if let Some(inbox) = self.inbox.take() {
            self.zeroize(inbox.at..inbox.at + inbox.len);
        }
    }

    fn zeroize(&mut self, range: core::ops::Range<usize>) {
        if let Some(bytes) = self.buf.get_mut(range) {
            bytes.zeroize();
        }
    }

    /// Where a command handed over in parts starts: after the chain it may
    /// continue or the response it may fetch (never both: GET RESPONSE
    /// ends a chain, any other command a response).
    fn kept(&self) -> usize {
        match self.chain {
            Some(chain) => chain.len,
            None if self.pending() > 0 => self.start + self.len,
            None => 0,
        }
    }

    /// Whether the command in the inbox, with `part` after what it has,
    /// continues the chain being assembled: it sits right after it, and its
    /// INS P1 P2 are the chain's.
    fn continues_chain(&self, inbox: &Inbox, part: &[u8]) -> bool {
        let Some(gathered) = self.buf.get(inbox.at..inbox.at + inbox.len) else {
            return false;
        };
        let mut header = [0u8; 4];
        for (slot, b) in header.iter_mut().zip(gathered.iter().chain(part)) {
            *slot = *b;
        }
        let [_, ins, p1, p2] = header;
        matches!(self.chain, Some(chain) if gathered.len() + part.len() >= 4
            && inbox.at == chain.len
            && chain.key == [ins, p1, p2])
    }

    /// Forgets the pending response, wiping it.
    fn drop_response(&mut self) {
        if let Some(used) = self.buf.get_mut(self.start..self.start + self.len) {
            used.zeroize();
        }
        self.start = 0;
        self.sent = 0;
        self.len = 0;
        self.response_secret = false;
    }

    /// Wipes everything, for a reset. Field by field, in place: assigning
    /// a fresh `Volatile` would build its 6.6 KiB on the stack first, which
    /// a card's RAM cannot spare.
    fn wipe(&mut self) {
        let Volatile {
            selected,
            chain,
            inbox,
            buf,
            start,
            sent,
            len,
            response_secret,
        } = self;
        *selected = None;
        *chain = None;
        *inbox = None;
        buf.zeroize();
        *start = 0;
        *sent = 0;
        *len = 0;
        *response_secret = false;
    }
}

/// Why the card gives no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mute {
    /// The card is not powered.
    NoPower,
}

/// A card: its flash store, its random number generator, its applets and
/// the volatile state of the current session. The store and the volatile
/// state are the card's own (the host's cards) or borrowed (`S`, `V`: on a
/// chip, `&'static mut` ones in statics of their own, so that neither is
/// moved through a constructor's frame: they are most of a card's RAM).
pub struct Card<
    F: NorFlash,
    R: CryptoRng,
    A: Applets,
    const KEYS: usize = 128,
    V: BorrowMut<Volatile> = Volatile,
    S: BorrowMut<Store<F, KEYS>> = Store<F, KEYS>,
> {
    store: S,
    rng: R,
    applets: A,
    atr: Atr,
    interface: Interface,
    volatile: V,
    powered: bool,
    /// The store's flash type, which `S` names only through its bound.
    flash: PhantomData<F>,
}

impl<F: NorFlash, R: CryptoRng, A: Applets, const KEYS: usize> Card<F, R, A, KEYS> {
    /// Boots a card: mounts its store (recovering from any torn write) and
    /// leaves it unpowered until [`Card::power_on`].
    pub fn boot(flash: F, rng: R, applets: A, atr: Atr) -> Result<Self, StoreError> {
        Ok(Card::with_store(Store::mount(flash)?, rng, applets, atr))
    }

    /// A card on a store mounted already: a board whose randomness comes
    /// from the store (see [`crate::entropy`]) needs it before the card.
    pub fn with_store(store: Store<F, KEYS>, rng: R, applets: A, atr: Atr) -> Self {
        Card::with_parts(store, rng, applets, atr, Volatile::new())
    }

    /// Takes the card apart (to reboot its flash after a cut, for instance).
    pub fn into_parts(self) -> (F, R, A) {
        (self.store.into_flash(), self.rng, self.applets)
    }
}

impl<F, R, A, const KEYS: usize, V, S> Card<F, R, A, KEYS, V, S>
where
    F: NorFlash,
    R: CryptoRng,
    A: Applets,
    V: BorrowMut<Volatile>,
    S: BorrowMut<Store<F, KEYS>>,
{
    /// A card on a store mounted already, with the volatile state
    /// `volatile`: each its own or borrowed (see [`Card`]).
    pub fn with_parts(store: S, rng: R, applets: A, atr: Atr, volatile: V) -> Self {
        Card {
            store,
            rng,
            applets,
            atr,
            interface: Interface::Contact,
            volatile,
            powered: false,
            flash: PhantomData,
        }
    }

    /// Powers the card and returns its ATR.
    pub fn power_on(&mut self) -> &[u8] {
        self.forget();
        self.powered = true;
        &self.atr
    }

    /// Removes power: the session's state is gone.
    pub fn power_off(&mut self) {
        self.forget();
        self.powered = false;
    }

    /// A warm reset: the session's state is gone; returns the ATR.
    pub fn warm_reset(&mut self) -> &[u8] {
        self.power_on()
    }

    /// The ATR.
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    /// Puts the card behind another interface, with the ATR a reader
    /// reports for it there (see [`crate::atr::contactless`]). A card is on
    /// the contact interface until told otherwise.
    pub fn set_interface(&mut self, interface: Interface, atr: Atr) {
        self.interface = interface;
        self.atr = atr;
    }

    /// The interface the card is reached through.
    pub fn interface(&self) -> Interface {
        self.interface
    }

    fn forget(&mut self) {
        self.volatile.borrow_mut().wipe();
        for i in 0..self.applets.count() {
            if let Some(applet) = self.applets.get(i) {
                applet.reset();
            }
        }
    }

    /// The store, for inspection.
    pub fn store(&self) -> &Store<F, KEYS> {
        self.store.borrow()
    }

    /// The store, to change behind the applets' back: tests that play an
    /// attacker who rewrites records on flash use it.
    #[cfg(feature = "testing")]
    pub fn store_mut(&mut self) -> &mut Store<F, KEYS> {
        self.store.borrow_mut()
    }

    /// The applets, for inspection.
    pub fn applets(&self) -> &A {
        &self.applets
    }

    /// How many bytes of the card's buffer are not zero outside what is
    /// still pending (a chain being assembled, a response GET RESPONSE can
    /// still fetch): what a command left behind. Tests use it to show that
    /// no secret outlives the command it served.
    #[cfg(feature = "testing")]
    pub fn residue(&self) -> usize {
        let v: &Volatile = self.volatile.borrow();
        let chain = v.chain.map_or(0, |c| c.len);
        let pending = if v.pending() > 0 {
            v.start..v.start + v.len
        } else {
            0..0
        };
        let inbox = v.inbox.map_or(0..0, |i| i.at..i.at + i.len);
        v.buf
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b != 0 && i >= chain && !pending.contains(&i) && !inbox.contains(&i))
            .count()
    }

    /// Sends a command APDU and returns the response APDU.
    pub fn transmit(&mut self, apdu: &[u8]) -> Result<ResponseApdu, Mute> {
        self.transmit_frame(&Frame::Apdu(apdu))
    }

    /// Runs the command `frame` carries ([`Frame::Apdu`]) or names
    /// ([`Frame::Gathered`]); any other frame is no command (`67 00`).
    pub(crate) fn transmit_frame(&mut self, frame: &Frame<'_>) -> Result<ResponseApdu, Mute> {
        if !self.powered {
            return Err(Mute::NoPower);
        }
        let mut out = ResponseApdu {
            bytes: Vec::new(),
            // Until the card has judged the command, everything is secret.
            secrecy: Secrecy::SECRET,
        };
        let handled = match frame {
            Frame::Apdu(apdu) => {
                // A command whole ends any the link was handing over in
                // parts.
                self.volatile.borrow_mut().drop_inbox();
                self.handle(apdu, &mut out)
            }
            Frame::Gathered => self.handle_gathered(&mut out),
            _ => Err(Error::Malformed(apdu::Error::HeaderTooShort)),
        };
        let status = match handled {
            Ok(status) => status,
            Err(e) => {
                out.bytes.clear();
                e.status()
            }
        };
        // `out` holds at most CHUNK data bytes, so the status always fits.
        let _ = out.bytes.extend_from_slice(&status.to_bytes());
        Ok(out)
    }

    /// Takes the next part of a command a link hands over in parts (a T=1
    /// chain, or a whole command held while the reader grants it time),
    /// `first` for its first part; [`Card::transmit_gathered`] runs it. The
    /// parts go into the card's one buffer, after what the command may
    /// still need (the chain it may continue, the response it may fetch).
    /// A part that would overrun the buffer ends the gathering, and the
    /// command is refused as [`Card::transmit`] would refuse it whole: as a
    /// chain too long (`6A 84`, the chain dropped) if it continues one, as
    /// too long (`67 00`) if not. Always true: the card takes every part,
    /// if only to refuse the command.
    pub fn gather(&mut self, part: &[u8], first: bool) -> bool {
        let v: &mut Volatile = self.volatile.borrow_mut();
        if first {
            v.drop_inbox();
            v.inbox = Some(Inbox {
                at: v.kept(),
                len: 0,
                dropped: 0,
            });
        }
        let Some(mut inbox) = v.inbox else {
            return false;
        };
        if inbox.dropped > 0 {
            inbox.dropped = inbox.dropped.saturating_add(part.len());
            v.inbox = Some(inbox);
            return true;
        }
        let mut end = inbox.at + inbox.len + part.len();
        if end > v.buf.len() && inbox.at > 0 && !v.continues_chain(&inbox, part) {
            // No room after what it might have needed, and it continues no
            // chain: a command that long is no GET RESPONSE either, so it
            // ends the chain or response before it, and starts at the
            // buffer's start.
            v.drop_chain();
            v.drop_response();
            v.buf.copy_within(inbox.at..inbox.at + inbox.len, 0);
            v.zeroize(inbox.len.max(inbox.at)..inbox.at + inbox.len);
            inbox.at = 0;
            end = inbox.len + part.len();
        }
        match v.buf.get_mut(inbox.at + inbox.len..end) {
            Some(room) => {
                room.copy_from_slice(part);
                inbox.len += part.len();
            }
            None => {
                // Too long: its header stays, the rest is wiped and what
                // is still to come dropped.
                let missing = HEADER.saturating_sub(inbox.len).min(part.len());
                let from = inbox.at + inbox.len;
                let copied = match (v.buf.get_mut(from..from + missing), part.get(..missing)) {
                    (Some(room), Some(head)) => {
                        room.copy_from_slice(head);
                        missing
                    }
                    _ => 0,
                };
                inbox.len += copied;
                let kept = inbox.len.min(HEADER);
                v.zeroize(inbox.at + kept..inbox.at + inbox.len);
                inbox.dropped = (inbox.len - kept + part.len() - copied).max(1);
                inbox.len = kept;
            }
        }
        v.inbox = Some(inbox);
        true
    }

    /// Wipes what [`Card::gather`] took of a command that will not run.
    pub fn abandon(&mut self) {
        self.volatile.borrow_mut().drop_inbox();
    }

    /// The command [`Card::gather`] has taken in so far (none if it was
    /// too long).
    pub fn gathered(&self) -> Option<&[u8]> {
        let v: &Volatile = self.volatile.borrow();
        let inbox = v.inbox.filter(|i| i.dropped == 0)?;
        v.buf.get(inbox.at..inbox.at + inbox.len)
    }

    /// Runs the command [`Card::gather`] took in, as [`Card::transmit`]
    /// runs one handed over whole.
    pub fn transmit_gathered(&mut self) -> Result<ResponseApdu, Mute> {
        self.transmit_frame(&Frame::Gathered)
    }

    /// The verdict on a command, given the data received so far: SELECT by
    /// name carries an AID in and the application's public FCI out; any
    /// other command is for the selected applet to judge, and with none
    /// selected nobody can, so it is secret.
    fn judge(&self, header: &Header, data: &[u8]) -> Secrecy {
        if is_select(header) {
            return Secrecy::PUBLIC;
        }
        self.volatile
            .borrow()
            .selected
            .and_then(|i| self.applets.applet(i))
            .map_or(Secrecy::SECRET, |applet| applet.secrecy(header, data))
    }

    /// How many block waiting times the selected applet may take to
    /// answer `apdu` (see [`crate::applet::Applet::waiting_time`]); 0 for
    /// what the OS answers itself and for bytes that are no command.
    pub fn waiting_time(&self, apdu: &[u8]) -> u8 {
        let Ok(command) = Command::parse(apdu) else {
            return 0;
        };
        let header = command.header();
        if is_select(&header) || header.ins == INS_GET_RESPONSE {
            return 0;
        }
        self.volatile
            .borrow()
            .selected
            .and_then(|i| self.applets.applet(i))
            .map_or(0, |applet| applet.waiting_time(&header, command.data()))
    }

    /// Runs one APDU; on success `out` holds the response data to send.
    fn handle(&mut self, bytes: &[u8], out: &mut ResponseApdu) -> Result<Status, Error> {
        let command = Command::parse(bytes).map_err(Error::Malformed)?;
        let header = command.header();
        let chained = admit(&header)?;
        if header.ins == INS_GET_RESPONSE && !chained {
            return self.get_response(&header, !command.data().is_empty(), command.expected(), out);
        }
        // Any other command ends what GET RESPONSE could still have fetched.
        let held = self.held(&header);
        if !chained && held == 0 {
            // The common case: a whole command in one APDU, used in place.
            out.secrecy = self.judge(&header, command.data());
            return self.dispatch(header, Data::Apdu(command.data()), command.expected(), out);
        }
        let total = held + command.data().len();
        if let Some(dst) = self.volatile.borrow_mut().buf.get_mut(held..total) {
            dst.copy_from_slice(command.data());
        }
        self.assemble(header, chained, total, command.expected(), out)
    }

    /// Runs the command gathered in the inbox: its data is moved to where
    /// a chain's data goes (after the chain's earlier parts, if it is one)
    /// and the rest of the inbox wiped before anything runs.
    fn handle_gathered(&mut self, out: &mut ResponseApdu) -> Result<Status, Error> {
        let v: &mut Volatile = self.volatile.borrow_mut();
        let inbox = v
            .inbox
            .take()
            .ok_or(Error::Malformed(apdu::Error::HeaderTooShort))?;
        let region = inbox.at..inbox.at + inbox.len;
        if inbox.dropped > 0 {
            let chain = v.continues_chain(&inbox, &[]);
            v.zeroize(region);
            if chain {
                v.drop_chain();
                return Err(Error::ChainTooLong);
            }
            return Err(Error::CommandTooLong);
        }
        let parsed = Command::parse(v.buf.get(region.clone()).unwrap_or_default())
            .map_err(Error::Malformed)
            .and_then(|c| {
                let at = region.start + c.data_offset();
                Ok((
                    c.header(),
                    admit(&c.header())?,
                    c.expected(),
                    at..at + c.data().len(),
                ))
            });
        let (header, chained, expected, data) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => {
                v.zeroize(region);
                return Err(e);
            }
        };
        if header.ins == INS_GET_RESPONSE && !chained {
            v.zeroize(region);
            return self.get_response(&header, !data.is_empty(), expected, out);
        }
        let held = match self.held(&header) {
            // Gathered right after the chain it continues, as it must be.
            held if held == inbox.at => held,
            _ => {
                self.volatile.borrow_mut().drop_chain();
                0
            }
        };
        let v: &mut Volatile = self.volatile.borrow_mut();
        let total = held + data.len();
        v.buf.copy_within(data, held);
        v.zeroize(total..region.end);
        self.assemble(header, chained, total, expected, out)
    }

    /// For a command other than GET RESPONSE: ends the pending response
    /// and any chain the command does not continue, and returns how many
    /// bytes of data the chain it continues holds.
    fn held(&mut self, header: &Header) -> usize {
        let v: &mut Volatile = self.volatile.borrow_mut();
        v.drop_response();
        match v.chain {
            Some(chain) if chain.key == [header.ins, header.p1, header.p2] => chain.len,
            _ => {
                v.drop_chain();
                0
            }
        }
    }

    /// A command's data at the buffer's start, `total` bytes with a chain's
    /// earlier parts: judged, then kept for the chain's next part, or run.
    fn assemble(
        &mut self,
        header: Header,
        chained: bool,
        total: usize,
        expected: Option<u32>,
        out: &mut ResponseApdu,
    ) -> Result<Status, Error> {
        let v: &mut Volatile = self.volatile.borrow_mut();
        let key = [header.ins, header.p1, header.p2];
        v.chain = Some(PendingChain { key, len: total });
        if total > CHAIN_CAPACITY {
            v.drop_chain();
            return Err(Error::ChainTooLong);
        }
        let so_far = self.volatile.borrow().buf.get(..total).unwrap_or_default();
        out.secrecy = self.judge(&header, so_far);
        if chained {
            return Ok(Status::Success);
        }
        let status = self.dispatch(header, Data::Chained(total), expected, out);
        self.volatile.borrow_mut().drop_chain();
        status
    }

    /// Runs a complete command.
    fn dispatch(
        &mut self,
        header: Header,
        data: Data<'_>,
        expected: Option<u32>,
        out: &mut ResponseApdu,
    ) -> Result<Status, Error> {
        let volatile: &mut Volatile = self.volatile.borrow_mut();
        // The response goes after the chained data, which the applet reads
        // as it writes.
        let start = match data {
            Data::Apdu(_) => 0,
            Data::Chained(len) => len.min(CHAIN_CAPACITY),
        };
        let (gathered, free) = volatile.buf.split_at_mut(start);
        let mut reply = Writer::new(free);
        let mut ctx = Context {
            store: self.store.borrow_mut(),
            rng: &mut self.rng,
            interface: self.interface,
        };
        let result = if is_select(&header) {
            if header.p2 != SELECT_RETURN_FCI && header.p2 != SELECT_NO_RESPONSE {
                return Err(Error::SelectParameters);
            }
            let name = match data {
                Data::Apdu(bytes) => bytes,
                Data::Chained(_) => &*gathered,
            };
            let target = self.applets.find(name).ok_or(Error::ApplicationNotFound)?;
            if let Some(previous) = volatile.selected.filter(|&p| p != target)
                && let Some(applet) = self.applets.get(previous)
            {
                applet.deselect();
            }
            volatile.selected = Some(target);
            let applet = self.applets.get(target).ok_or(Error::ApplicationNotFound)?;
            let result = applet.select(&mut ctx, &mut reply);
            if result.is_err() {
                volatile.selected = None;
            }
            result
        } else {
            let selected = volatile.selected.ok_or(Error::NoApplicationSelected)?;
            let applet = self
                .applets
                .get(selected)
                .ok_or(Error::NoApplicationSelected)?;
            match data {
                Data::Apdu(bytes) => match Command::new(header, bytes, expected) {
                    Ok(command) => applet.process(&command, &mut ctx, &mut reply),
                    Err(_) => Err(Status::WrongLength),
                },
                // A chain's data lies in the card's own buffer, which the
                // applet may use in place.
                Data::Chained(_) => {
                    applet.process_chained(header, gathered, expected, &mut ctx, &mut reply)
                }
            }
        };
        // Applets answer errors with the status word alone, and a SELECT
        // with P2 `0C` answers nothing.
        let silent = result.is_err() || (is_select(&header) && header.p2 == SELECT_NO_RESPONSE);
        let produced = if silent { 0 } else { reply.len() };
        // Whatever was written and will not be sent (a failure's leftovers,
        // TLVs taken back, an unsent FCI) is wiped now.
        let written = reply.high_water();
        if let Some(stale) = volatile.buf.get_mut(start + produced..start + written) {
            stale.zeroize();
        }
        match result {
            Ok(()) => {
                volatile.start = start;
                volatile.len = produced;
                volatile.sent = 0;
                volatile.response_secret = out.secrecy.response;
                Ok(self.send_chunk(expected, out))
            }
            Err(status) => Ok(status),
        }
    }

    /// GET RESPONSE: the next part of the pending response. It ends any
    /// chain being assembled.
    fn get_response(
        &mut self,
        header: &Header,
        has_data: bool,
        expected: Option<u32>,
        out: &mut ResponseApdu,
    ) -> Result<Status, Error> {
        self.volatile.borrow_mut().drop_chain();
        out.secrecy = Secrecy {
            command: false,
            response: self.volatile.borrow().response_secret,
        };
        if header.p1 != 0 || header.p2 != 0 {
            return Err(Error::GetResponseParameters);
        }
        if has_data {
            return Err(Error::GetResponseData);
        }
        let left = self.volatile.borrow().pending();
        if left == 0 {
            return Err(Error::NothingPending);
        }
        // An explicit Le larger than what is left gets the exact figure back
        // (ISO 7816-4 `6C xx`); Le `00` means "up to 256", which always fits.
        if let Some(ne) = expected
            && (ne as usize) < CHUNK
            && ne as usize > left
        {
            return Err(Error::WrongLe(left as u8));
        }
        Ok(self.send_chunk(expected, out))
    }

    /// Moves up to min(Ne, 256) pending bytes into `out`; `61 xx` if more wait.
    fn send_chunk(&mut self, expected: Option<u32>, out: &mut ResponseApdu) -> Status {
        let v: &mut Volatile = self.volatile.borrow_mut();
        let limit = expected.map_or(CHUNK, |ne| (ne as usize).min(CHUNK));
        let n = v.pending().min(limit);
        let chunk = v
            .buf
            .get(v.start + v.sent..v.start + v.sent + n)
            .unwrap_or_default();
        let _ = out.bytes.extend_from_slice(chunk);
        v.sent += n;
        match v.pending() {
            0 => {
                v.drop_response();
                Status::Success
            }
            // 256 or more waiting is announced as `61 00`.
            left => Status::MoreData(left.min(CHUNK) as u8),
        }
    }
}

/// SELECT by DF name: the one command the OS answers for the applets.
fn is_select(header: &Header) -> bool {
    header.ins == INS_SELECT && header.p1 == SELECT_BY_NAME
}

/// The checks every command passes before the card looks further: a class
/// it takes and an INS that is one. True for a chain's part that is not
/// its last.
fn admit(header: &Header) -> Result<bool, Error> {
    let class = header.class().map_err(|_| Error::ClassNotSupported)?;
    check_class(&class)?;
    if matches!(header.ins & 0xF0, 0x60 | 0x90) {
        return Err(Error::InvalidInstruction);
    }
    // SELECT and GET RESPONSE are the OS's, always in the clear: there is
    // no applet session for them to be protected in.
    let protected = class.secure_messaging() != SecureMessaging::None;
    if protected && (header.ins == INS_GET_RESPONSE || is_select(header)) {
        return Err(Error::SecureMessaging);
    }
    Ok(class.chain() == Chain::NotTheLast)
}

/// Only the first interindustry classes, on the basic channel, reach
/// applets: in the clear, or under secure messaging with the header
/// authenticated (`0C`, PIV's), which the applet unwraps itself. Other
/// secure messaging formats no applet here speaks.
fn check_class(class: &Class) -> Result<(), Error> {
    use apdu::ClassRange;
    match class.range() {
        ClassRange::Interindustry(apdu::Interindustry::First) => {}
        _ => return Err(Error::ClassNotSupported),
    }
    if !matches!(
        class.secure_messaging(),
        SecureMessaging::None | SecureMessaging::Authenticated
    ) {
        return Err(Error::SecureMessaging);
    }
    if class.channel() != Some(0) {
        return Err(Error::LogicalChannel);
    }
    Ok(())
}
