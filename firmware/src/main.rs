//! The s9card as Cortex-M4 firmware: QEMU's mps2-an386 (the default
//! build, which the simulator serves and CI tests end to end) or an
//! STM32F429 (`--no-default-features --features board-stm32f429`, built
//! and size-checked in CI).
//!
//! Only the boards live here (`board/`: each implements card-os's `Board`),
//! with the stack painter, the panic handler and `main`. The card (its
//! contact interface, the OS, the PIV applet) is the same `card-os` and
//! `piv` code the host simulator runs, started by `card::run`.
//!
//! The card speaks as a contact card does: its ATR after every reset, then
//! ISO 7816-3 T=1 on the I/O line (`card_os::contact`). The debug port
//! gets one line at boot and one per command the card runs, before its
//! response goes out: the command's number since boot, its instruction
//! byte (public), the card's secrecy verdict on the exchange, the store's
//! commits since boot, the time it took (instructions, on QEMU under
//! `-icount shift=0`) and the stack's high-water mark. The simulator's
//! reader traces by the verdict and counts commands by the number; the
//! firmware benchmark reads the figures.
#![no_std]
#![no_main]

mod board;
mod card;
// Painting the stack writes below the stack pointer through raw pointers.
#[allow(unsafe_code)]
mod stack;

use core::fmt::Write as _;

use cortex_m_rt::entry;

#[cfg(all(feature = "board-mps2", feature = "board-stm32f429"))]
compile_error!("choose one board: board-mps2 (the default) or board-stm32f429");

/// The board this build runs on.
#[cfg(feature = "board-mps2")]
type ThisBoard = board::mps2::Mps2;
#[cfg(feature = "board-stm32f429")]
type ThisBoard = board::stm32f429::Stm32f429;

#[entry]
fn main() -> ! {
    // Interrupts stay masked for good: the pending bits of the UARTs and
    // the timers wake `wfi`, and no handler is needed.
    cortex_m::interrupt::disable();
    stack::paint();
    // The banner goes out before the board starts its clock: waiting on
    // the debug port's transmitter takes as long as the host makes it,
    // which would make the boot figure vary from run to run.
    let mut debug = ThisBoard::debug();
    let _ = writeln!(debug, "s9card firmware {}", env!("CARGO_PKG_VERSION"));
    let board = ThisBoard::take();

    #[cfg(feature = "baseline")]
    baseline(&board, &mut debug);
    #[cfg(feature = "crosscheck")]
    crosscheck(&board, &mut debug);

    card::run(board, debug);
    // The session cannot end (no observer stops it, the line cannot
    // fail); should it, the card waits for a power cycle.
    loop {
        board::sleep();
    }
}

/// The cross-check's seed and length; `simulator/tests/firmware.rs` reads
/// both from the report and runs the same sweep on the host.
#[cfg(feature = "crosscheck")]
const CROSSCHECK: (u64, u32) = (2026, 10_000);

/// Runs the P-256 cross-check sweep on this build's back end (the
/// assembly) and reports it: seed, rounds, digest, signatures its own
/// verifier refused, instructions.
#[cfg(feature = "crosscheck")]
fn crosscheck(board: &ThisBoard, debug: &mut impl core::fmt::Write) {
    use card_os::board::Board;
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng;
    let (seed, count) = CROSSCHECK;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let started = board.now_ns();
    let sweep = applet::crypto::p256_sweep(&mut rng, count);
    let took = board.now_ns().wrapping_sub(started);
    match sweep {
        Ok(sweep) => {
            let _ = write!(debug, "crosscheck p256 seed={seed} n={count} digest=");
            for b in sweep.digest {
                let _ = write!(debug, "{b:02x}");
            }
            let _ = writeln!(debug, " unverified={} ns={took}", sweep.unverified);
        }
        Err(_) => {
            let _ = writeln!(debug, "crosscheck p256 failed");
        }
    }
}

/// Signs once with bare p256 (no card around it) and reports the
/// instructions it took: the baseline of the firmware's figures.
#[cfg(feature = "baseline")]
fn baseline(board: &ThisBoard, debug: &mut impl core::fmt::Write) {
    use card_os::board::Board;
    use p256::ecdsa::{Signature, SigningKey, signature::hazmat::PrehashSigner};
    let key = match SigningKey::from_slice(&[0x11; 32]) {
        Ok(k) => k,
        Err(_) => return,
    };
    let started = board.now_ns();
    let signed: Result<Signature, _> = key.sign_prehash(&[0x22; 32]);
    let took = board.now_ns().wrapping_sub(started);
    let _ = writeln!(debug, "baseline p256-sign ns={took} ok={}", signed.is_ok());
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // The debug port says where (never what: a message could carry data);
    // the reader watches it and gives up on the card at once instead of
    // waiting out its block waiting time.
    let mut debug = ThisBoard::debug();
    match info.location() {
        Some(at) => {
            let _ = writeln!(debug, "panic at {}:{}", at.file(), at.line());
        }
        None => {
            let _ = writeln!(debug, "panic");
        }
    }
    loop {
        board::sleep();
    }
}
