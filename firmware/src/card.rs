//! The card on the board the build selects: boot (card-os's, from the
//! board's parts), the PIV applet on it, and the contact session, with a
//! report of each command on the board's debug port. Nothing here knows
//! which board it is; the type is named once, because a static cannot be
//! generic.

use core::fmt::Write;
use core::mem::MaybeUninit;

use applet::{Management, Piv};
use card_os::board::{self, Board, BootError};
use card_os::contact::{self, Session};
use card_os::link::{Frame, Outcome, Respond};
use card_os::store::Store;
use card_os::{Card, ResponseApdu, Secrecy, Volatile};
use chacha20::ChaCha20Rng;
use rand_core::SeedableRng;
use static_cell::{ConstStaticCell, StaticCell};

use crate::{ThisBoard, stack};

/// The card's store on board `B`.
pub type FirmwareStore<B> = Store<<B as Board>::Flash, 128>;

/// The card, as the firmware runs it on board `B`: its volatile state (the
/// chaining and response buffer) and its store borrowed from statics of
/// their own.
pub type FirmwareCard<B> = Card<
    <B as Board>::Flash,
    ChaCha20Rng,
    (Piv, Option<Management>),
    128,
    &'static mut Volatile,
    &'static mut FirmwareStore<B>,
>;

/// Why the card cannot start, beyond what card-os's boot says.
enum Failure {
    Boot(BootError),
    /// Factory flags that name no card.
    Profile,
}

impl Failure {
    fn reason(&self) -> &'static str {
        match self {
            Failure::Boot(e) => e.reason(),
            Failure::Profile => "contradictory profile flags in the factory record",
        }
    }
}

/// Where the card lives: statics the firmware hands to [`boot`].
struct Places<B: Board + 'static> {
    volatile: &'static mut Volatile,
    store: &'static mut MaybeUninit<FirmwareStore<B>>,
    card: &'static mut MaybeUninit<FirmwareCard<B>>,
}

/// Boots the card into its statics. Never inlined, so that none of this
/// (the mount's working space) stays in the caller's frame for the card's
/// whole life; the store is mounted into its static, and the card, which
/// borrows it, is small.
#[inline(never)]
fn boot<B: Board>(
    board: &mut B,
    places: Places<B>,
) -> Result<&'static mut FirmwareCard<B>, Failure> {
    let parts = board::boot(board, places.store).map_err(Failure::Boot)?;
    let profile = applet::Profile::of(&parts.header).map_err(|_| Failure::Profile)?;
    let rng = ChaCha20Rng::from_seed(parts.seed.0);
    let applets = applet::applets(&parts.header, profile);
    let atr = applet::atr(profile, parts.header.is_virtual);
    Ok(places.card.write(Card::with_parts(
        parts.store,
        rng,
        applets,
        atr,
        places.volatile,
    )))
}

/// A card that could not start: it still answers reset (a bare T=1 ATR, so
/// the reader sees a card), and `6F 00` to every command.
struct Broken;

impl Respond for Broken {
    fn respond(&mut self, frame: Frame<'_>) -> Outcome {
        let failed = || ResponseApdu::status(apdu::Status::NoPreciseDiagnosis);
        match frame {
            Frame::GetAtr => match card_os::atr::t1(&[]) {
                Some(atr) => Outcome::Answer(
                    ResponseApdu::relayed(&atr, Secrecy::PUBLIC).unwrap_or_else(failed),
                ),
                None => Outcome::Silent,
            },
            Frame::Apdu(_) | Frame::Oversized(_) => Outcome::Answer(failed()),
            _ => Outcome::Silent,
        }
    }
}

/// The card, reporting each command it runs on the debug port (see the
/// crate's documentation) before the response leaves.
struct Reporting<'c, B: Board, D: Write> {
    card: &'c mut FirmwareCard<B>,
    board: &'c B,
    debug: D,
    /// Commands run since boot.
    commands: u32,
}

impl<B: Board, D: Write> Respond for Reporting<'_, B, D> {
    // Inlined into the contact session: the outcome is built once, where
    // it is kept, not copied up a frame.
    #[inline(always)]
    fn respond(&mut self, frame: Frame<'_>) -> Outcome {
        let ins = match frame {
            Frame::Apdu(apdu) => apdu.get(1).copied(),
            Frame::Gathered => self.card.gathered().and_then(|c| c.get(1).copied()),
            _ => return self.card.respond(frame),
        };
        let started = self.board.now_ns();
        let outcome = self.card.respond(frame);
        let took = self.board.now_ns().wrapping_sub(started);
        if let Outcome::Answer(answer) = &outcome {
            self.commands = self.commands.wrapping_add(1);
            let secrecy = answer.secrecy();
            let _ = writeln!(
                self.debug,
                "apdu n={} ins={:02X} secret={}{} commits={} ns={} stack={}",
                self.commands,
                ins.unwrap_or(0),
                if secrecy.command { 'c' } else { '-' },
                if secrecy.response { 'r' } else { '-' },
                self.card.store().commits(),
                took,
                stack::peak(),
            );
        }
        outcome
    }

    fn waiting_time(&self, frame: &Frame<'_>) -> u8 {
        Respond::waiting_time(self.card, frame)
    }

    fn gather(&mut self, part: &[u8], first: bool) -> bool {
        self.card.gather(part, first)
    }

    fn abandon(&mut self) {
        self.card.abandon();
    }
}

/// Runs the card on `board` for as long as it is powered: opens the
/// contacts, boots, reports the boot on `debug`, then serves the reader.
/// The card, its store, its volatile state and the contact session live in
/// statics, not in a frame, so the stack's figure is the commands' alone.
pub fn run(mut board: ThisBoard, mut debug: impl Write) {
    let mut contacts = board.contacts();
    static SESSION: StaticCell<Session> = StaticCell::new();
    static VOLATILE: ConstStaticCell<Volatile> = ConstStaticCell::new(Volatile::new());
    static STORE: StaticCell<FirmwareStore<ThisBoard>> = StaticCell::new();
    static CARD: StaticCell<FirmwareCard<ThisBoard>> = StaticCell::new();
    let (Some(session), Some(volatile), Some(store), Some(card)) = (
        session(&SESSION),
        VOLATILE.try_take(),
        STORE.try_uninit(),
        CARD.try_uninit(),
    ) else {
        return;
    };
    let places = Places {
        volatile,
        store,
        card,
    };
    match boot(&mut board, places) {
        Ok(card) => {
            let _ = writeln!(debug, "boot ns={} stack={}", board.now_ns(), stack::peak());
            let mut card = Reporting {
                card,
                board: &board,
                debug,
                commands: 0,
            };
            serve(&mut contacts, &mut card, session);
        }
        Err(e) => {
            let _ = writeln!(debug, "boot failed: {}", e.reason());
            serve(&mut contacts, &mut Broken, session);
        }
    }
}

/// The contact session, made in `cell` (in .bss: its reset state is not
/// all zeros, and as a constant it would put 4 KiB of initial values in
/// flash), from a frame of its own that is gone before the card boots.
#[inline(never)]
fn session(cell: &'static StaticCell<Session>) -> Option<&'static mut Session> {
    cell.try_init(Session::new())
}

/// The contact session, in a frame of its own.
#[inline(never)]
fn serve<L: contact::IoLine>(contacts: &mut L, card: &mut impl Respond, session: &mut Session) {
    let _ = contact::serve(contacts, card, session, &mut ());
}
