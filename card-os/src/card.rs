//! The card: power, APDU framing and chaining, GET RESPONSE, selection.

use apdu::{Chain, Class, Command, Header, SecureMessaging, Status, tlv::Writer};
use core::borrow::BorrowMut;
use core::marker::PhantomData;

use embedded_storage::nor_flash::NorFlash;
use heapless::Vec;
use rand_core::CryptoRng;

use zeroize::Zeroize;

use crate::applet::{Applets, Context, Secrecy};
use crate::atr::Atr;
use crate::error::Error;
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
/// the data is wiped. A card's RAM holds one such buffer, not two: no
/// command takes 3 KiB in and gives 3 KiB back. Both may hold secrets (a
/// chained IMPORT's scalar, an ECDH output), so each is wiped as soon as
/// the command or answer it served is done with, not merely overwritten by
/// the next one.
pub struct Volatile {
    selected: Option<usize>,
    chain: Option<PendingChain>,
    buf: [u8; CHAIN_CAPACITY],
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
            buf: [0; CHAIN_CAPACITY],
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
            buf,
            start,
            sent,
            len,
            response_secret,
        } = self;
        *selected = None;
        *chain = None;
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
        v.buf
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b != 0 && i >= chain && !pending.contains(&i))
            .count()
    }

    /// Sends a command APDU and returns the response APDU.
    pub fn transmit(&mut self, apdu: &[u8]) -> Result<ResponseApdu, Mute> {
        if !self.powered {
            return Err(Mute::NoPower);
        }
        let mut out = ResponseApdu {
            bytes: Vec::new(),
            // Until the card has judged the command, everything is secret.
            secrecy: Secrecy::SECRET,
        };
        let status = match self.handle(apdu, &mut out) {
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
        let class = header.class().map_err(|_| Error::ClassNotSupported)?;
        check_class(&class)?;
        if matches!(header.ins & 0xF0, 0x60 | 0x90) {
            return Err(Error::InvalidInstruction);
        }
        let chained = class.chain() == Chain::NotTheLast;
        if header.ins == INS_GET_RESPONSE && !chained {
            self.volatile.borrow_mut().drop_chain();
            out.secrecy = Secrecy {
                command: false,
                response: self.volatile.borrow().response_secret,
            };
            return self.get_response(&command, out);
        }
        // Any other command ends what GET RESPONSE could still have fetched.
        self.volatile.borrow_mut().drop_response();
        let key = [header.ins, header.p1, header.p2];
        let held = match self.volatile.borrow().chain {
            Some(chain) if chain.key == key => chain.len,
            _ => {
                self.volatile.borrow_mut().drop_chain();
                0
            }
        };
        if !chained && held == 0 {
            // The common case: a whole command in one APDU, used in place.
            out.secrecy = self.judge(&header, command.data());
            return self.dispatch(header, Data::Apdu(command.data()), command.expected(), out);
        }
        let total = held + command.data().len();
        if total > CHAIN_CAPACITY {
            self.volatile.borrow_mut().drop_chain();
            return Err(Error::ChainTooLong);
        }
        if let Some(dst) = self.volatile.borrow_mut().buf.get_mut(held..total) {
            dst.copy_from_slice(command.data());
        }
        let so_far = self.volatile.borrow().buf.get(..total).unwrap_or_default();
        out.secrecy = self.judge(&header, so_far);
        if chained {
            self.volatile.borrow_mut().chain = Some(PendingChain { key, len: total });
            return Ok(Status::Success);
        }
        self.volatile.borrow_mut().chain = Some(PendingChain { key, len: total });
        let status = self.dispatch(header, Data::Chained(total), command.expected(), out);
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
        let data = match data {
            Data::Apdu(bytes) => bytes,
            Data::Chained(_) => &*gathered,
        };
        let mut reply = Writer::new(free);
        let mut ctx = Context {
            store: self.store.borrow_mut(),
            rng: &mut self.rng,
        };
        let result = if is_select(&header) {
            if header.p2 != SELECT_RETURN_FCI && header.p2 != SELECT_NO_RESPONSE {
                return Err(Error::SelectParameters);
            }
            let target = self.applets.find(data).ok_or(Error::ApplicationNotFound)?;
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
            match Command::new(header, data, expected) {
                Ok(command) => applet.process(&command, &mut ctx, &mut reply),
                Err(_) => Err(Status::WrongLength),
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

    /// GET RESPONSE: the next part of the pending response.
    fn get_response(
        &mut self,
        command: &Command<'_>,
        out: &mut ResponseApdu,
    ) -> Result<Status, Error> {
        if command.p1() != 0 || command.p2() != 0 {
            return Err(Error::GetResponseParameters);
        }
        if !command.data().is_empty() {
            return Err(Error::GetResponseData);
        }
        let left = self.volatile.borrow().pending();
        if left == 0 {
            return Err(Error::NothingPending);
        }
        // An explicit Le larger than what is left gets the exact figure back
        // (ISO 7816-4 `6C xx`); Le `00` means "up to 256", which always fits.
        if let Some(ne) = command.expected()
            && (ne as usize) < CHUNK
            && ne as usize > left
        {
            return Err(Error::WrongLe(left as u8));
        }
        Ok(self.send_chunk(command.expected(), out))
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

/// Only the first interindustry classes, on the basic channel, without
/// secure messaging, reach applets.
fn check_class(class: &Class) -> Result<(), Error> {
    use apdu::ClassRange;
    match class.range() {
        ClassRange::Interindustry(apdu::Interindustry::First) => {}
        _ => return Err(Error::ClassNotSupported),
    }
    if class.secure_messaging() != SecureMessaging::None {
        return Err(Error::SecureMessaging);
    }
    if class.channel() != Some(0) {
        return Err(Error::LogicalChannel);
    }
    Ok(())
}
