//! `s9card serve`: cards in vpcd readers, a control socket, traces, and a
//! clean shutdown on SIGINT or SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use card_os::Interface;
use card_os::{ResponseApdu, Secrecy};

use crate::control::{self, Answer, MAX_SCENARIO, ReaderStatus, Refusal, Request};
use crate::latency::{self, Latency, Profile};
use crate::scenario::{self, Event, Now, Script, Then};
use crate::trace::Record;
use crate::vpcd::{self, Frame, NullCard, Observer, Outcome, Respond};
use crate::{Error, Result};
use virtual_card::firmware::{self, Firmware, FirmwareCard};
use virtual_card::{Entropy, SimCard};

/// Where decoded or raw trace lines go.
#[derive(Clone, Debug)]
pub enum TraceTo {
    /// Decoded lines on standard output.
    Stdout,
    /// Raw (redacted) lines appended to a file, for `s9card trace decode`.
    File(PathBuf),
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct Config {
    /// One image per reader, in reader order.
    pub images: Vec<PathBuf>,
    /// The loopback address where vpcd finds the first reader's card;
    /// reader `n`'s is at port + `n`.
    pub vpcd: SocketAddr,
    /// Trace destination.
    pub trace: Option<TraceTo>,
    /// The control socket.
    pub control: PathBuf,
    /// Re-arm TCP_QUICKACK before each read (off only to measure it).
    pub quickack: bool,
    /// fdatasync every flash operation.
    pub durable: bool,
    /// Card randomness.
    pub entropy: Entropy,
    /// Answer every APDU with `90 00` at once, without the card: the
    /// transport's floor, for benchmarks.
    pub null_card: bool,
    /// Run the cards as firmware under QEMU: `images` are then firmware
    /// flash files.
    pub firmware: Option<FirmwareOptions>,
    /// How long the cards take to answer.
    pub latency: Option<Profile>,
    /// The seed of the latency draws (reader `n` draws from seed + `n`).
    pub latency_seed: u64,
    /// Removals and faults to stage.
    pub scenario: Vec<Event>,
    /// The interface the cards are reached through.
    pub interface: Interface,
}

/// How firmware cards run.
#[derive(Clone, Debug)]
pub struct FirmwareOptions {
    /// The firmware ELF.
    pub elf: PathBuf,
    /// Deterministic instruction counting (`-icount shift=0`).
    pub icount: bool,
    /// Faults on the cards' I/O lines: a rate per character and a seed
    /// (each reader's line draws its own schedule from seed + reader).
    pub line_noise: Option<(f64, u64)>,
}

/// A card in a reader: simulated in this process, or firmware under QEMU.
enum ReaderCard {
    Simulated(Box<SimCard>),
    Firmware(Box<FirmwareCard>),
}

impl ReaderCard {
    /// The card left the reader (ejected, or vpcd went away).
    fn removed(&mut self) {
        match self {
            ReaderCard::Simulated(card) => card.power_off(),
            ReaderCard::Firmware(card) => {
                let _ = card.respond(Frame::PowerOff);
            }
        }
    }
}

impl Respond for ReaderCard {
    fn respond(&mut self, frame: Frame<'_>) -> Outcome {
        match self {
            ReaderCard::Simulated(card) => card.respond(frame),
            ReaderCard::Firmware(card) => card.respond(frame),
        }
    }
}

/// A reader slot's shared state.
struct Slot {
    n: usize,
    inserted: AtomicBool,
    /// The card left (or the connection dropped) while a command was on
    /// its way: whatever waits for it stops, and the card never sees it.
    cut: AtomicBool,
    stream: Mutex<Option<TcpStream>>,
    /// No reconnecting before then (a scripted dropped connection).
    hold_until: Mutex<Option<Instant>>,
    /// A firmware card's QEMU process id (0 while it is not running).
    qemu: Option<Arc<AtomicU32>>,
    /// The process id of a firmware card's QEMU that exited unasked
    /// ([`FirmwareCard::died`]).
    died: Option<Arc<AtomicU32>>,
    /// The scripted removals and faults.
    script: Mutex<Script>,
}

impl Slot {
    /// Takes a firmware card's death notice: true if it is about the QEMU
    /// the card still runs. One the reader has already replaced (or halted
    /// after a frame found it dead) is no news about the connection now.
    fn died_now(&self) -> bool {
        let (Some(died), Some(running)) = (&self.died, &self.qemu) else {
            return false;
        };
        let pid = died.swap(0, Ordering::SeqCst);
        pid != 0 && pid == running.load(Ordering::SeqCst)
    }

    fn hang_up(&self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Ok(guard) = self.stream.lock()
            && let Some(s) = guard.as_ref()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn eject(&self) {
        self.inserted.store(false, Ordering::SeqCst);
        self.hang_up();
        tracing::info!(reader = self.n, "card ejected");
    }

    fn insert(&self) {
        self.inserted.store(true, Ordering::SeqCst);
        tracing::info!(reader = self.n, "card inserted");
    }

    fn cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// Carries out a scripted removal or dropped connection.
    fn carry_out(self: &Arc<Self>, now: Now) {
        match now {
            Now::Remove { reinsert_after } => {
                tracing::info!(reader = self.n, "scenario: card removed");
                self.eject();
                if let Some(after) = reinsert_after {
                    let slot = Arc::clone(self);
                    thread::spawn(move || {
                        thread::sleep(after);
                        tracing::info!(reader = slot.n, "scenario: card re-inserted");
                        slot.insert();
                    });
                }
            }
            Now::DropReader { reconnect_after } => {
                tracing::info!(
                    reader = self.n,
                    ?reconnect_after,
                    "scenario: vpcd connection dropped"
                );
                if let Ok(mut hold) = self.hold_until.lock() {
                    *hold = Some(Instant::now() + reconnect_after);
                }
                self.hang_up();
            }
        }
    }
}

/// The trace sink, and whether it takes raw lines.
type Tracer = Arc<Mutex<Option<(Box<dyn Write + Send>, bool)>>>;

/// Serves until SIGINT or SIGTERM.
pub fn serve(config: Config) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    run(config, &stop)
}

/// Serves until `stop` is set (the test fixture's way; the command's is a
/// signal).
pub fn run(config: Config, stop: &Arc<AtomicBool>) -> Result<()> {
    let stop = Arc::clone(stop);

    let tracer: Tracer = Arc::new(Mutex::new(match &config.trace {
        None => None,
        Some(TraceTo::Stdout) => Some((Box::new(std::io::stdout()), false)),
        Some(TraceTo::File(p)) => {
            let file = private_files::append(p).map_err(Error::file(p))?;
            Some((Box::new(file), true))
        }
    }));

    // Boot every card first, so a bad image stops everything before a
    // reader sees anything.
    let mut cards = Vec::new();
    // A firmware card's flash is QEMU's file: the server holds its lock.
    let mut held = Vec::new();
    for path in &config.images {
        let card = match &config.firmware {
            None => {
                let (header, mut card) = virtual_card::boot(path, config.entropy, config.durable)
                    .map_err(Error::image(path))?;
                virtual_card::set_interface(&mut card, &header, config.interface);
                tracing::info!(image = %path.display(), serial = header.serial, virtual_card = header.is_virtual, interface = ?config.interface, "card booted");
                ReaderCard::Simulated(Box::new(card))
            }
            Some(_) if config.interface != Interface::Contact => {
                return Err(Error::FirmwareContactless);
            }
            Some(options) => {
                let flash = std::fs::File::open(path).map_err(Error::file(path))?;
                virtual_card::image::lock(&flash).map_err(Error::image(path))?;
                held.push(flash);
                let header = firmware::flash_header(path).map_err(Error::image(path))?;
                let mut fw = Firmware::new(options.elf.clone(), path.clone());
                fw.icount = options.icount;
                fw.line_noise = options
                    .line_noise
                    .map(|(rate, seed)| (rate, seed.wrapping_add(cards.len() as u64)));
                let mut card = FirmwareCard::new(fw);
                card.boot().map_err(Error::file(path))?;
                tracing::info!(flash = %path.display(), serial = header.serial, virtual_card = header.is_virtual, "firmware card booted");
                ReaderCard::Firmware(Box::new(card))
            }
        };
        cards.push(card);
    }

    let loaded = Instant::now();
    let slots: Vec<Arc<Slot>> = cards
        .iter()
        .enumerate()
        .map(|(n, card)| {
            Arc::new(Slot {
                n,
                inserted: AtomicBool::new(true),
                cut: AtomicBool::new(false),
                stream: Mutex::new(None),
                hold_until: Mutex::new(None),
                qemu: match card {
                    ReaderCard::Firmware(fw) => Some(fw.pid()),
                    ReaderCard::Simulated(_) => None,
                },
                died: match card {
                    ReaderCard::Firmware(fw) => Some(fw.died()),
                    ReaderCard::Simulated(_) => None,
                },
                script: Mutex::new(Script::new(&config.scenario, n, loaded)),
            })
        })
        .collect();
    if let Some(e) = config.scenario.iter().find(|e| e.reader >= slots.len()) {
        return Err(Error::NoSuchReader {
            reader: e.reader,
            readers: slots.len(),
        });
    }

    let control = control_listener(&config.control).map_err(Error::file(&config.control))?;
    let mut threads = Vec::new();
    for (n, card) in cards.into_iter().enumerate() {
        let addr = SocketAddr::new(config.vpcd.ip(), config.vpcd.port() + n as u16);
        let slot = Arc::clone(&slots[n]);
        let stop = Arc::clone(&stop);
        let tracer = Arc::clone(&tracer);
        let mode = Mode {
            quickack: config.quickack,
            null_card: config.null_card,
        };
        let latency = config
            .latency
            .clone()
            .map(|p| Latency::new(p, config.latency_seed.wrapping_add(n as u64)));
        threads.push(thread::spawn(move || {
            run_reader(addr, card, &slot, latency, &stop, &tracer, mode)
        }));
    }
    {
        let slots = slots.clone();
        let stop = Arc::clone(&stop);
        thread::spawn(move || control_loop(control, &slots, &stop));
    }
    tracing::info!(readers = slots.len(), control = %config.control.display(), latency = config.latency.as_ref().map(|p| p.name.as_str()).unwrap_or("none"), "serving");

    while !stop.load(Ordering::Relaxed) {
        // Time triggers fire from here, to within this loop's period.
        let now = Instant::now();
        for slot in &slots {
            let fired = slot.script.lock().ok().and_then(|mut s| s.tick(now));
            if let Some(action) = fired {
                slot.carry_out(action);
            }
            // A firmware card whose QEMU died: pcscd sees it gone now, and
            // the next power-up starts a new QEMU, as after a power cut.
            if slot.died_now() {
                tracing::info!(reader = slot.n, "firmware card died: connection dropped");
                slot.hang_up();
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    tracing::info!("shutting down");
    for slot in &slots {
        slot.hang_up();
    }
    for t in threads {
        let _ = t.join();
    }
    let _ = std::fs::remove_file(&config.control);
    drop(held);
    Ok(())
}

fn control_listener(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        private_files::dir_all(dir)?;
    }
    // A socket left by a server that was killed: remove it if no one answers.
    if UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the control protocol ([`control`]) until `stop`: one request
/// line per connection, one answer line.
fn control_loop(listener: UnixListener, slots: &[Arc<Slot>], stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                let mut reader = BufReader::new(&stream);
                if reader
                    .by_ref()
                    .take(control::MAX_REQUEST_LINE as u64)
                    .read_line(&mut line)
                    .is_err()
                {
                    continue;
                }
                let answer = match control::decode_request(line.trim()) {
                    Ok(request) => control_request(request, slots),
                    Err(refusal) => Answer::Refused { refusal },
                };
                let mut stream = &stream;
                let _ = writeln!(stream, "{}", control::encode_answer(&answer));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn control_request(request: Request, slots: &[Arc<Slot>]) -> Answer {
    let refused = |refusal| Answer::Refused { refusal };
    let slot = |reader: usize| {
        slots.get(reader).ok_or(Refusal::NoReader {
            reader,
            readers: slots.len(),
        })
    };
    match request {
        Request::Eject { reader } => match slot(reader) {
            Ok(s) => {
                s.eject();
                Answer::Done
            }
            Err(e) => refused(e),
        },
        Request::Insert { reader } => match slot(reader) {
            Ok(s) => {
                s.insert();
                Answer::Done
            }
            Err(e) => refused(e),
        },
        Request::Scenario { text } => {
            if text.len() > MAX_SCENARIO {
                return refused(Refusal::TooLong { max: MAX_SCENARIO });
            }
            let events = match scenario::parse(&text) {
                Ok(events) => events,
                Err(e) => {
                    return refused(Refusal::Scenario {
                        reason: e.to_string(),
                    });
                }
            };
            if let Some(e) = events.iter().find(|e| e.reader >= slots.len()) {
                return refused(Refusal::EventReader {
                    reader: e.reader,
                    readers: slots.len(),
                });
            }
            let now = Instant::now();
            for s in slots {
                if let Ok(mut script) = s.script.lock() {
                    *script = Script::new(&events, s.n, now);
                }
            }
            tracing::info!(events = events.len(), "scenario loaded");
            Answer::Staged {
                events: events.len(),
            }
        }
        Request::Status {} => Answer::Status {
            readers: slots
                .iter()
                .enumerate()
                .map(|(reader, s)| ReaderStatus {
                    reader,
                    inserted: s.inserted.load(Ordering::SeqCst),
                    connected: s.stream.lock().map(|g| g.is_some()).unwrap_or(false),
                    qemu: s.qemu.as_ref().map(|pid| pid.load(Ordering::SeqCst)),
                })
                .collect(),
        },
    }
}

/// Sends a control request to a running server: its answer, or its
/// refusal as [`Error::Refused`].
pub fn control_send(path: &Path, request: &Request) -> Result<Answer> {
    if let Request::Scenario { text } = request
        && text.len() > MAX_SCENARIO
    {
        return Err(Refusal::TooLong { max: MAX_SCENARIO }.into());
    }
    let mut stream = UnixStream::connect(path).map_err(|source| Error::NoServer {
        path: path.to_path_buf(),
        source,
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    writeln!(stream, "{}", control::encode_request(request))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .take(control::MAX_REQUEST_LINE as u64)
        .read_line(&mut line)?;
    match control::decode_answer(line.trim()).map_err(Error::BadAnswer)? {
        Answer::Refused { refusal } => Err(refusal.into()),
        answer => Ok(answer),
    }
}

/// How a connection is served.
#[derive(Clone, Copy, Debug)]
struct Mode {
    quickack: bool,
    null_card: bool,
}

fn run_reader(
    addr: SocketAddr,
    mut card: ReaderCard,
    slot: &Arc<Slot>,
    mut latency: Option<Latency>,
    stop: &AtomicBool,
    tracer: &Tracer,
    mode: Mode,
) {
    let n = slot.n;
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    // Open only while the card is in the reader: vpcd finds the card by
    // connecting, so a closed port is an empty reader.
    let mut listener: Option<TcpListener> = None;
    while !stop.load(Ordering::Relaxed) {
        let held = slot
            .hold_until
            .lock()
            .ok()
            .and_then(|h| *h)
            .is_some_and(|t| Instant::now() < t);
        if !slot.inserted.load(Ordering::SeqCst) || held {
            listener = None;
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        let open = match listener.take() {
            Some(l) => l,
            None => match open_reader_port(addr) {
                Ok(l) => {
                    backoff = Duration::from_millis(100);
                    warned = false;
                    l
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(reader = n, %addr, error = %e, "cannot open the card's port for vpcd; retrying");
                        warned = true;
                    }
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        let stream = match open.accept() {
            // Bound to loopback (`open_reader_port`): every peer is local.
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                listener = Some(open);
                thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => {
                tracing::warn!(reader = n, error = %e, "accepting vpcd's connection");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // One connection at a time: the port closes while the card is
        // served, so nothing else queues behind vpcd's connection.
        drop(open);
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        if let (Ok(mut guard), Ok(clone)) = (slot.stream.lock(), stream.try_clone()) {
            *guard = Some(clone);
        }
        slot.cut.store(false, Ordering::SeqCst);
        tracing::info!(reader = n, %addr, "vpcd connected: card present");
        let mut conduct = Conduct {
            card: &mut card,
            slot,
            latency: latency.as_mut(),
        };
        let result = serve_connection(slot, stream, &mut conduct, tracer, mode);
        card.removed();
        if let Ok(mut guard) = slot.stream.lock() {
            *guard = None;
        }
        match result {
            Ok(()) => tracing::info!(reader = n, "vpcd closed the connection"),
            Err(e) => tracing::info!(reader = n, error = %e, "connection ended"),
        }
        if !stop.load(Ordering::Relaxed) {
            // Closed for longer than pcscd's 400 ms presence poll, so that
            // it registers the card as gone before vpcd reconnects.
            thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The card's end of a reader: a loopback port that vpcd connects to
/// (`DEVICENAME 127.0.0.1:PORT` in pcscd's reader configuration), polled
/// without blocking so that an ejection or a stop is seen at once.
fn open_reader_port(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} is beyond loopback"),
        ));
    }
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Presence polls (get ATR, every 400 ms) without a power-on after which a
/// connection is deemed unseen. pcscd can miss a card that comes back within
/// moments of leaving (a simulator restarted right after a crash): it keeps
/// polling presence and never powers the card. Leaving and coming back makes
/// it look again.
const UNSEEN_AFTER_POLLS: u32 = 6;

fn serve_connection(
    slot: &Arc<Slot>,
    stream: TcpStream,
    card: &mut Conduct<'_>,
    tracer: &Tracer,
    mode: Mode,
) -> std::io::Result<()> {
    let mut link = vpcd::tcp_link(stream)?;
    let mut watch = Watch {
        slot,
        answered_apdu: false,
        tracer,
        quickack: mode
            .quickack
            .then(|| link.stream().try_clone())
            .transpose()?,
        polls_before_power: Some(0),
        started: Instant::now(),
    };
    let mut buf = vec![0u8; vpcd::FRAME_CAPACITY];
    let result = if mode.null_card {
        vpcd::serve(&mut link, &mut NullCard(card.card), &mut buf, &mut watch)
    } else {
        vpcd::serve(&mut link, card, &mut buf, &mut watch)
    };
    match result {
        Ok(())
            if watch
                .polls_before_power
                .is_some_and(|p| p >= UNSEEN_AFTER_POLLS) =>
        {
            Err(std::io::Error::other(
                "pcscd polls but never powers the card: re-inserting",
            ))
        }
        Ok(()) => Ok(()),
        Err(e) => Err(vpcd::io_error(e)),
    }
}

/// What the server does around the card's frame loop: quick-ACK, the
/// unseen-card check, timing and the trace.
struct Watch<'t> {
    slot: &'t Arc<Slot>,
    /// The frame being answered was an APDU (count triggers count those).
    answered_apdu: bool,
    tracer: &'t Tracer,
    quickack: Option<TcpStream>,
    polls_before_power: Option<u32>,
    started: Instant,
}

impl Observer for Watch<'_> {
    fn waiting(&mut self) {
        if let Some(stream) = &self.quickack {
            // Linux clears quick-ACK mode by itself; re-arm it before every
            // read so vpcd's two-part writes are acknowledged at once.
            let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
        }
    }

    fn received(&mut self, frame: &Frame<'_>) -> bool {
        self.started = Instant::now();
        match (frame, self.polls_before_power.as_mut()) {
            (Frame::GetAtr, Some(polls)) => {
                *polls += 1;
                if *polls >= UNSEEN_AFTER_POLLS {
                    return false;
                }
            }
            (Frame::PowerOn | Frame::Apdu(_), _) => self.polls_before_power = None,
            (Frame::UnknownControl(b), _) => {
                tracing::warn!(control = b, "unknown vpcd control byte ignored")
            }
            (Frame::Empty, _) => tracing::warn!("empty vpcd frame ignored"),
            (Frame::Oversized(len), _) => {
                tracing::warn!(len, "APDU longer than the card takes: 6700")
            }
            _ => {}
        }
        if !matches!(frame, Frame::Apdu(_)) {
            tracing::debug!(?frame, "vpcd control");
        }
        true
    }

    fn answered(&mut self, command: &[u8], answer: &ResponseApdu) {
        self.answered_apdu = true;
        trace(
            self.tracer,
            self.slot.n,
            command,
            answer.as_slice(),
            answer.secrecy(),
            self.started.elapsed(),
        );
    }

    fn sent(&mut self) {
        if std::mem::take(&mut self.answered_apdu) {
            let fired = self
                .slot
                .script
                .lock()
                .ok()
                .and_then(|mut s| s.on_answered(Instant::now()));
            if let Some(action) = fired {
                self.slot.carry_out(action);
            }
        }
    }
}

/// The card as the reader presents it: scripted faults first, then the
/// latency profile's wait, then the card. Both happen before the card
/// sees the command, so a removal during them leaves the card exactly as
/// its store had it.
struct Conduct<'c> {
    card: &'c mut ReaderCard,
    slot: &'c Arc<Slot>,
    latency: Option<&'c mut Latency>,
}

impl Respond for Conduct<'_> {
    fn respond(&mut self, frame: Frame<'_>) -> Outcome {
        if let Frame::Apdu(apdu) = frame {
            let decision = match self.slot.script.lock() {
                Ok(mut script) if script.active() => Some(script.on_command(apdu, Instant::now())),
                _ => None,
            };
            if let Some(decision) = decision {
                if let Some(until) = decision.stall_until {
                    let wait = until.saturating_duration_since(Instant::now());
                    if !latency::wait(wait, || self.slot.cut()) {
                        return Outcome::Gone;
                    }
                }
                match decision.then {
                    Then::Process => {}
                    Then::Answer(sw) => {
                        // The card never judged this command: nothing of it
                        // reaches the trace.
                        return ResponseApdu::relayed(&sw.to_be_bytes(), Secrecy::SECRET)
                            .map_or(Outcome::Gone, Outcome::Answer);
                    }
                    Then::Remove { reinsert_after } => {
                        self.slot.carry_out(Now::Remove { reinsert_after });
                        return Outcome::Gone;
                    }
                    Then::DropReader { reconnect_after } => {
                        self.slot.carry_out(Now::DropReader { reconnect_after });
                        return Outcome::Gone;
                    }
                }
            }
            if let Some(latency) = self.latency.as_deref_mut() {
                let delay = latency.draw(apdu);
                if !latency::wait(delay, || self.slot.cut()) {
                    return Outcome::Gone;
                }
            }
        }
        self.card.respond(frame)
    }
}

fn trace(
    tracer: &Tracer,
    reader: usize,
    apdu: &[u8],
    answer: &[u8],
    secrecy: Secrecy,
    took: Duration,
) {
    let Ok(mut guard) = tracer.lock() else { return };
    let Some((out, raw)) = guard.as_mut() else {
        return;
    };
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let record = Record::new(at, took.as_micros() as u64, apdu, answer, secrecy);
    let line = if *raw {
        record.raw()
    } else {
        format!("[{reader}] {}", record.decoded())
    };
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Resolves `HOST:PORT` to the loopback address the cards listen on: a
/// card reachable from the network could be driven by anyone there.
pub fn loopback(addr: &str) -> Result<SocketAddr> {
    let problem = |problem| Error::Address {
        addr: addr.into(),
        problem,
    };
    let resolved = addr
        .to_socket_addrs()
        .map_err(|_| problem("not HOST:PORT, or HOST does not resolve"))?
        .next()
        .ok_or_else(|| problem("no address"))?;
    if resolved.ip().is_loopback() {
        Ok(resolved)
    } else {
        Err(problem(
            "the cards listen for vpcd on loopback only (127.0.0.1 or ::1)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firmware_slot(running: u32) -> (Slot, Arc<AtomicU32>) {
        let died = Arc::new(AtomicU32::new(0));
        let slot = Slot {
            n: 0,
            inserted: AtomicBool::new(true),
            cut: AtomicBool::new(false),
            stream: Mutex::new(None),
            hold_until: Mutex::new(None),
            qemu: Some(Arc::new(AtomicU32::new(running))),
            died: Some(Arc::clone(&died)),
            script: Mutex::new(Script::new(&[], 0, Instant::now())),
        };
        (slot, died)
    }

    #[test]
    fn a_death_notice_cuts_only_the_qemu_it_names() {
        // The card's QEMU died under an idle reader: hang up, once.
        let (slot, died) = firmware_slot(4242);
        died.store(4242, Ordering::SeqCst);
        assert!(slot.died_now());
        assert!(!slot.died_now());
        // The reader found it dead itself and booted another since: the
        // late notice about the old one must not cut the new connection.
        let (slot, died) = firmware_slot(5151);
        died.store(4242, Ordering::SeqCst);
        assert!(!slot.died_now());
        assert_eq!(died.load(Ordering::SeqCst), 0, "the notice is taken");
        // ... or halted it and runs none yet.
        let (slot, died) = firmware_slot(0);
        died.store(4242, Ordering::SeqCst);
        assert!(!slot.died_now());
    }
}
