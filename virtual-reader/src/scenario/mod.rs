//! Scripted removal and faults: what a scenario file asks of a reader, and
//! the state that decides, command by command, when it happens.
//!
//! An event is one trigger and one action. Triggers: after the reader has
//! answered N APDUs, T ms after the scenario was loaded, or when the N-th
//! command of a name arrives (`during = "GENERAL AUTHENTICATE"`, names as
//! the trace gives them, matched by their first words). Actions: remove the
//! card (and put it back after T ms), answer one command with a chosen
//! status word (a `61 XX` can be made endless: every GET RESPONSE gets it
//! again), drop the vpcd connection and come back after T ms, or go mute
//! for T ms. Each event fires once.
//!
//! Every fault is a power cut for the card: the command a removal or a
//! dropped connection interrupts is never processed, and the card comes
//! back with what its store had committed. An answered fault never reaches
//! the card either. This module only decides; the server carries it out.
//!
//! The file format (`file`) is read into [`Event`]s; [`Script`] runs them.

mod file;

use std::time::{Duration, Instant};

use crate::latency::{Classified, names_begin};

pub use file::{EventProblem, ScenarioError, VERSION, load, parse, parse_bytes};

/// When an event fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Once the reader has answered this many APDUs.
    AfterApdus(u32),
    /// This long after the scenario was loaded.
    After(Duration),
    /// When the `nth` command whose name begins with one of `names`
    /// arrives.
    During {
        /// The command's leading words: one name, or (for a version 1
        /// name that covered several) each name it stands for today.
        names: Vec<String>,
        /// Which one, from 1.
        nth: u32,
    },
}

/// What an event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Take the card out; put it back after the delay, if one is given.
    Remove {
        /// When to re-insert it.
        reinsert_after: Option<Duration>,
    },
    /// Answer the command with this status word instead of the card.
    Answer {
        /// SW1 SW2.
        sw: u16,
        /// For a `61 XX`: answer every GET RESPONSE that follows with it
        /// too, so the response never completes.
        endless: bool,
    },
    /// Close the vpcd connection and reconnect after the delay.
    DropReader {
        /// When to reconnect.
        reconnect_after: Duration,
    },
    /// Answer nothing for this long.
    Mute(Duration),
}

/// A trigger with its action, for one reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The reader, from 0.
    pub reader: usize,
    /// When.
    pub trigger: Trigger,
    /// What.
    pub action: Action,
}

/// What to do with a command that arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Give it to the card.
    Process,
    /// Answer it with this status word; the card never sees it.
    Answer(u16),
    /// The card leaves now, before seeing it.
    Remove {
        /// When it comes back.
        reinsert_after: Option<Duration>,
    },
    /// The connection drops now, before the card sees it.
    DropReader {
        /// When to reconnect.
        reconnect_after: Duration,
    },
}

/// A command's fate: wait until `stall_until` (if set), then `then`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Answer nothing until then.
    pub stall_until: Option<Instant>,
    /// What happens after.
    pub then: Then,
}

/// Something to carry out at once, outside any command (a count or time
/// trigger's removal or dropped connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Now {
    /// Take the card out.
    Remove {
        /// When it comes back.
        reinsert_after: Option<Duration>,
    },
    /// Drop the connection.
    DropReader {
        /// When to reconnect.
        reconnect_after: Duration,
    },
}

#[derive(Clone, Debug)]
struct Armed {
    event: Event,
    /// Commands of its name seen so far (`During`).
    seen: u32,
    fired: bool,
}

/// One reader's scenario, as it runs.
#[derive(Debug, Default)]
pub struct Script {
    events: Vec<Armed>,
    loaded: Option<Instant>,
    answered: u32,
    /// An action a count or time trigger fired, for the next command.
    pending: Option<Action>,
    /// Until when the reader is mute.
    mute_until: Option<Instant>,
    /// The endless `61 XX` being repeated to GET RESPONSE.
    endless: Option<u16>,
}

impl Script {
    /// A script of `events` (those for other readers are ignored), its
    /// clock and counts starting at `now`.
    pub fn new(events: &[Event], reader: usize, now: Instant) -> Script {
        Script {
            events: events
                .iter()
                .filter(|e| e.reader == reader)
                .map(|e| Armed {
                    event: e.clone(),
                    seen: 0,
                    fired: false,
                })
                .collect(),
            loaded: Some(now),
            ..Script::default()
        }
    }

    /// Whether any event is still to fire.
    pub fn active(&self) -> bool {
        self.events.iter().any(|a| !a.fired) || self.pending.is_some() || self.endless.is_some()
    }

    /// The soonest time trigger still to fire.
    pub fn next_deadline(&self) -> Option<Instant> {
        let loaded = self.loaded?;
        self.events
            .iter()
            .filter(|a| !a.fired)
            .filter_map(|a| match a.event.trigger {
                Trigger::After(t) => Some(loaded + t),
                _ => None,
            })
            .min()
    }

    /// Fires the time triggers due at `now`; returns what must happen at
    /// once (a removal or a dropped connection).
    pub fn tick(&mut self, now: Instant) -> Option<Now> {
        let loaded = self.loaded?;
        self.fire_where(
            now,
            |t| matches!(t, Trigger::After(after) if now >= loaded + *after),
        )
    }

    /// A command arrived: what becomes of it.
    pub fn on_command(&mut self, apdu: &[u8], now: Instant) -> Decision {
        let stall = |s: &Script| s.mute_until.filter(|&t| t > now);
        if let Some(sw) = self.endless {
            if apdu.get(1) == Some(&0xC0) {
                return Decision {
                    stall_until: stall(self),
                    then: Then::Answer(sw),
                };
            }
            self.endless = None;
        }
        let classified = Classified::of(apdu);
        let mut action = self.pending.take();
        if let Some(c) = classified.as_ref().filter(|c| !c.chained_part) {
            for armed in self.events.iter_mut().filter(|a| !a.fired) {
                if let Trigger::During { names, nth } = &armed.event.trigger
                    && names.iter().any(|name| names_begin(&c.name, name))
                {
                    armed.seen += 1;
                    if armed.seen == *nth && action.is_none() {
                        armed.fired = true;
                        action = Some(armed.event.action);
                    }
                }
            }
        }
        let then = match action {
            None => Then::Process,
            Some(Action::Remove { reinsert_after }) => Then::Remove { reinsert_after },
            Some(Action::DropReader { reconnect_after }) => Then::DropReader { reconnect_after },
            Some(Action::Answer { sw, endless }) => {
                if endless {
                    self.endless = Some(sw);
                }
                Then::Answer(sw)
            }
            Some(Action::Mute(t)) => {
                self.mute_until = Some(now + t);
                Then::Process
            }
        };
        Decision {
            stall_until: stall(self),
            then,
        }
    }

    /// An answer went out: count triggers may fire.
    pub fn on_answered(&mut self, now: Instant) -> Option<Now> {
        self.answered += 1;
        let answered = self.answered;
        self.fire_where(now, |t| *t == Trigger::AfterApdus(answered))
    }

    /// Fires every armed count or time event whose trigger `due` accepts:
    /// removals and drops are returned to happen at once (the first wins),
    /// a mute starts now, an answer waits for the next command.
    fn fire_where(&mut self, now: Instant, due: impl Fn(&Trigger) -> bool) -> Option<Now> {
        let mut immediate = None;
        for armed in self.events.iter_mut().filter(|a| !a.fired) {
            if due(&armed.event.trigger) {
                armed.fired = true;
                let action = armed.event.action;
                let fired = match action {
                    Action::Remove { reinsert_after } => Some(Now::Remove { reinsert_after }),
                    Action::DropReader { reconnect_after } => {
                        Some(Now::DropReader { reconnect_after })
                    }
                    Action::Mute(t) => {
                        self.mute_until = Some(now + t);
                        None
                    }
                    Action::Answer { .. } => {
                        self.pending = Some(action);
                        None
                    }
                };
                immediate = immediate.or(fired);
            }
        }
        immediate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGN: [u8; 12] = [
        0x00, 0x87, 0x11, 0x9A, 0x06, 0x7C, 0x04, 0x82, 0x00, 0x81, 0x00, 0x00,
    ];
    const GET_RESPONSE: [u8; 5] = [0x00, 0xC0, 0x00, 0x00, 0x00];
    const VERIFY_STATUS: [u8; 4] = [0x00, 0x20, 0x00, 0x80];

    fn one(text: &str) -> Script {
        Script::new(&parse(text).unwrap(), 0, Instant::now())
    }

    #[test]
    fn the_third_general_authenticate_is_cut_and_the_others_pass() {
        let mut s = one(
            "[[event]]\nduring = \"GENERAL AUTHENTICATE\"\nnth = 3\naction = \"remove\"\nreinsert_after_ms = 1500\n",
        );
        let now = Instant::now();
        assert_eq!(s.on_command(&SIGN, now).then, Then::Process);
        assert_eq!(s.on_command(&VERIFY_STATUS, now).then, Then::Process);
        assert_eq!(s.on_command(&SIGN, now).then, Then::Process);
        assert_eq!(
            s.on_command(&SIGN, now).then,
            Then::Remove {
                reinsert_after: Some(Duration::from_millis(1500))
            }
        );
        // Once only.
        assert_eq!(s.on_command(&SIGN, now).then, Then::Process);
        assert!(!s.active());
    }

    #[test]
    fn an_endless_61xx_answers_every_get_response() {
        let mut s = one(
            "[[event]]\nduring = \"GENERAL AUTHENTICATE\"\naction = \"answer\"\nsw = \"6110\"\nendless = true\n",
        );
        let now = Instant::now();
        assert_eq!(s.on_command(&SIGN, now).then, Then::Answer(0x6110));
        for _ in 0..5 {
            assert_eq!(s.on_command(&GET_RESPONSE, now).then, Then::Answer(0x6110));
        }
        // Any other command ends it.
        assert_eq!(s.on_command(&VERIFY_STATUS, now).then, Then::Process);
        assert_eq!(s.on_command(&GET_RESPONSE, now).then, Then::Process);
    }

    #[test]
    fn count_and_time_triggers() {
        let start = Instant::now();
        let events = parse(
            "[[event]]\nafter_apdus = 2\naction = \"remove\"\n\
             [[event]]\nafter_ms = 100\naction = \"answer\"\nsw = \"6F00\"\n\
             [[event]]\nafter_ms = 200\naction = \"mute\"\nmute_ms = 50\n\
             [[event]]\nreader = 1\nafter_apdus = 1\naction = \"drop-reader\"\nreconnect_after_ms = 300\n",
        )
        .unwrap();
        let mut s = Script::new(&events, 0, start);
        assert_eq!(s.on_answered(start), None);
        assert_eq!(
            s.on_answered(start),
            Some(Now::Remove {
                reinsert_after: None
            })
        );
        assert_eq!(s.next_deadline(), Some(start + Duration::from_millis(100)));
        assert_eq!(s.tick(start + Duration::from_millis(150)), None);
        // The answer waits for the next command.
        assert_eq!(
            s.on_command(&VERIFY_STATUS, start).then,
            Then::Answer(0x6F00)
        );
        let later = start + Duration::from_millis(200);
        assert_eq!(s.tick(later), None);
        let d = s.on_command(&VERIFY_STATUS, later);
        assert_eq!(d.stall_until, Some(later + Duration::from_millis(50)));
        assert_eq!(d.then, Then::Process);
        assert!(!s.active());

        let mut other = Script::new(&events, 1, start);
        assert_eq!(
            other.on_answered(start),
            Some(Now::DropReader {
                reconnect_after: Duration::from_millis(300)
            })
        );
    }
}
