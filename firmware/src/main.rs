//! The s9card as Cortex-M4 firmware on QEMU's mps2-an386.
//!
//! Only the board lives here: the UART to the reader, the flash, a timer,
//! the panic handler and `main`. The card (the frame loop, the OS, the PIV
//! applet) is the same `card-os` and `piv` code the host simulator runs.
//!
//! The link speaks card-os's annotated vpcd framing: each frame the card
//! sends starts with a meta byte carrying the card's secrecy verdict, which
//! `s9card serve --firmware` uses for its traces and strips before vpcd.
//! At boot the card announces itself with one frame: its ATR, or `6F 00`
//! and the reason it cannot start. The debug UART (QEMU's second serial
//! port) gets one line per exchange: its instruction byte, the virtual
//! time it took (instructions, under `-icount shift=0`) and the stack's
//! high-water mark, the figures the firmware benchmark reads.
#![no_std]
#![no_main]

mod board;
// Painting the stack writes below the stack pointer through raw pointers.
#[allow(unsafe_code)]
mod stack;

use core::fmt::Write as _;
use core::mem::MaybeUninit;

use applet::{Management, Piv};
use board::flash::{self, Flash};
use board::timer;
use board::uart::{self, Uart};
use card_os::entropy::{self, RatchetError};
use card_os::image::HeaderError;
use card_os::link::{self, Frame, Framing, Meta, Observer, Outcome, Respond};
use card_os::store::Store;
use card_os::{Card, ResponseApdu, Secrecy};
use cortex_m_rt::entry;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

/// The card, as the firmware runs it.
type FirmwareCard = Card<Flash, ChaCha20Rng, (Piv, Option<Management>)>;

/// Why the card cannot start.
#[derive(Clone, Copy, Debug)]
enum BootError {
    /// No factory record: a blank or foreign flash file.
    Record(HeaderError),
    /// A factory record from before the randomness seed (version 1).
    NoSeed,
    /// Factory flags that name no card.
    Profile(applet::profile::ContradictoryFlags),
    /// The store cannot be mounted.
    Store,
    /// The randomness ratchet failed or was tampered with.
    Ratchet(RatchetError),
}

impl BootError {
    fn reason(self) -> &'static str {
        match self {
            BootError::Record(HeaderError::Magic) => "no factory record (blank flash)",
            BootError::Record(HeaderError::KeyStore) => "no key store (the device key is missing)",
            BootError::Record(_) => "damaged factory record",
            BootError::NoSeed => "factory record without a randomness seed",
            BootError::Profile(_) => "contradictory profile flags in the factory record",
            BootError::Store => "the store cannot be mounted",
            BootError::Ratchet(RatchetError::Tampered) => "the randomness ratchet was altered",
            BootError::Ratchet(RatchetError::Store(_)) => "the randomness ratchet cannot advance",
        }
    }
}

/// Mounts the store, advances the randomness ratchet and makes the card in
/// `slot`. Never inlined, and writing into the static itself, so that none
/// of this (the store's index, the card's 6.6 KiB of buffers) stays in
/// `main`'s frame for the card's whole life.
#[inline(never)]
fn boot(
    slot: &'static mut MaybeUninit<FirmwareCard>,
) -> Result<&'static mut FirmwareCard, BootError> {
    let header = flash::factory_record().map_err(BootError::Record)?;
    let profile = applet::Profile::of(&header).map_err(BootError::Profile)?;
    let seed = header.ratchet_seed().ok_or(BootError::NoSeed)?;
    let mut store = Store::mount(Flash::store(&header)).map_err(|_| BootError::Store)?;
    let boot_seed =
        entropy::ratchet(&mut store, &seed, &header.device_key).map_err(BootError::Ratchet)?;
    let rng = ChaCha20Rng::from_seed(boot_seed.0);
    Ok(slot.write(Card::with_store(
        store,
        rng,
        applet::applets(&header, profile),
        applet::atr(profile, header.is_virtual),
    )))
}

/// A card that could not start: it still answers the reader (an ATR, so
/// the reader sees a card), and `6F 00` to every command.
struct Broken;

impl Respond for Broken {
    fn respond(&mut self, frame: Frame<'_>) -> Outcome {
        match frame {
            Frame::Apdu(_) | Frame::Oversized(_) => {
                Outcome::Answer(ResponseApdu::status(apdu::Status::NoPreciseDiagnosis))
            }
            _ => Outcome::Silent,
        }
    }
}

/// The debug port's report of each exchange: the instruction byte (public),
/// the instructions the card took, and the stack's high-water mark.
struct Report {
    debug: Uart,
    started: u32,
    took: u32,
    ins: Option<u8>,
}

impl Observer for Report {
    fn received(&mut self, frame: &Frame<'_>) -> bool {
        self.started = timer::now();
        self.ins = match frame {
            Frame::Apdu(apdu) => apdu.get(1).copied(),
            _ => None,
        };
        true
    }

    fn answered(&mut self, _command: &[u8], _answer: &ResponseApdu) {
        self.took = timer::since(self.started);
    }

    fn sent(&mut self) {
        if let Some(ins) = self.ins.take() {
            let _ = writeln!(
                self.debug,
                "apdu ins={ins:02X} ns={} stack={}",
                u64::from(self.took) * u64::from(timer::NS_PER_TICK),
                stack::peak(),
            );
        }
    }
}

#[entry]
fn main() -> ! {
    // Interrupts stay masked for good: the UART's pending bit wakes `wfi`
    // and no handler is needed.
    cortex_m::interrupt::disable();
    stack::paint();
    // The banner goes out before the clock starts: waiting on the debug
    // port's transmitter takes as long as the host makes it, which would
    // make the boot figure vary from run to run.
    let mut debug = Uart::transmitter(uart::UART1);
    let _ = writeln!(debug, "s9card firmware {}", env!("CARGO_PKG_VERSION"));
    let mut link = Uart::link();
    // After the receiver is on (see timer::start).
    timer::start();

    #[cfg(feature = "baseline")]
    baseline(&mut debug);

    // The card and its frame buffer live in statics, not in main's frame,
    // so the stack's figure is the commands' alone.
    let (Some(buf), Some(slot)) = (
        cortex_m::singleton!(: [u8; link::FRAME_CAPACITY] = [0; link::FRAME_CAPACITY]),
        cortex_m::singleton!(: MaybeUninit<FirmwareCard> = MaybeUninit::uninit()),
    ) else {
        halt()
    };
    let mut report = Report {
        debug: Uart::transmitter(uart::UART1),
        started: 0,
        took: 0,
        ins: None,
    };
    match boot(slot) {
        Ok(card) => {
            let _ = link::write_frame(&mut link, Some(Meta::BOOT_ANNOUNCEMENT), card.atr());
            let _ = writeln!(
                debug,
                "boot ns={} stack={}",
                u64::from(timer::now()) * u64::from(timer::NS_PER_TICK),
                stack::peak()
            );
            serve(&mut link, card, buf, &mut report);
        }
        Err(e) => {
            let _ = writeln!(debug, "boot failed: {}", e.reason());
            let mut frame: heapless::Vec<u8, 64> = heapless::Vec::new();
            let _ = frame.extend_from_slice(&apdu::Status::NoPreciseDiagnosis.to_bytes());
            let _ = frame.extend_from_slice(e.reason().as_bytes());
            let _ = link::write_frame(&mut link, Some(Meta::BOOT_ANNOUNCEMENT), &frame);
            serve(&mut link, &mut Broken, buf, &mut report);
        }
    }
    // The link cannot end (a UART has no end of stream); should it, the
    // card waits for a power cycle.
    halt()
}

/// The frame loop, in a frame of its own.
#[inline(never)]
fn serve(link: &mut Uart, card: &mut impl Respond, buf: &mut [u8], report: &mut Report) {
    let _ = link::serve(link, card, Framing::Annotated, buf, report);
}

/// Waits for a power cycle.
fn halt() -> ! {
    loop {
        board::sleep();
    }
}

/// Signs once with bare p256 (no card around it) and reports the
/// instructions it took: the baseline of the firmware's figures.
#[cfg(feature = "baseline")]
fn baseline(debug: &mut Uart) {
    use p256::ecdsa::{Signature, SigningKey, signature::hazmat::PrehashSigner};
    let key = match SigningKey::from_slice(&[0x11; 32]) {
        Ok(k) => k,
        Err(_) => return,
    };
    let started = timer::now();
    let signed: Result<Signature, _> = key.sign_prehash(&[0x22; 32]);
    let took = timer::since(started);
    let _ = writeln!(
        debug,
        "baseline p256-sign ns={} ok={}",
        u64::from(took) * u64::from(timer::NS_PER_TICK),
        signed.is_ok()
    );
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // The reader gets an answer, so a panic fails a test at once instead of
    // timing it out; the debug port says where (never what: a message
    // could carry data).
    let mut link = Uart::transmitter(uart::UART0);
    let _ = link::write_frame(
        &mut link,
        Some(Meta::answer(Secrecy::SECRET)),
        &[0x6F, 0x00],
    );
    let mut debug = Uart::transmitter(uart::UART1);
    if let Some(at) = info.location() {
        let _ = writeln!(debug, "panic at {}:{}", at.file(), at.line());
    }
    loop {
        board::sleep();
    }
}
