//! The scenario file: TOML, versioned, read into [`Event`]s with errors
//! that name a line, an event and a field, never the file's text.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Action, Event, Trigger};
use crate::trace::UnknownCommand;

/// The scenario format this s9card writes: version 2 names commands with
/// the applet's instruction table (`GENERAL AUTHENTICATE RSA 9A`, `SET
/// SERIAL`). A file without `version` is version 1, whose names were the
/// trace's before that table, and is read as it was meant.
pub const VERSION: u32 = 2;

/// One event as a scenario file writes it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    #[serde(default)]
    reader: usize,
    after_apdus: Option<u32>,
    after_ms: Option<u64>,
    during: Option<String>,
    nth: Option<u32>,
    action: String,
    reinsert_after_ms: Option<u64>,
    sw: Option<String>,
    #[serde(default)]
    endless: bool,
    reconnect_after_ms: Option<u64>,
    mute_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    version: Option<u32>,
    #[serde(default, rename = "event")]
    events: Vec<EventFile>,
}

/// Why a scenario is not one. Its messages name a line, an event and a
/// field, never the file's text: a server pointed at a file that is no
/// scenario must not hand it back in pieces.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// Not TOML, or not the scenario's fields.
    #[error("line {line}: {message}")]
    Syntax {
        /// The line, from 1 (0: unknown).
        line: usize,
        /// TOML's or serde's reason, what it quoted of the text left out.
        message: String,
    },
    /// A version this s9card does not read.
    #[error("version {0}: this s9card reads scenario versions 1 and {VERSION}")]
    Version(u32),
    /// An event that is not one.
    #[error("event {event}: {problem}")]
    Event {
        /// The event, from 1.
        event: usize,
        /// What is wrong.
        problem: EventProblem,
    },
    /// Bytes that are not UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// What is wrong with the scenario in this file.
    #[error("{}: {source}", path.display())]
    In {
        /// The file.
        path: PathBuf,
        /// What.
        source: Box<ScenarioError>,
    },
}

/// What is wrong with one event.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventProblem {
    /// No trigger, or two.
    #[error("one trigger: after_apdus (from 1), after_ms or during (a command name)")]
    Trigger,
    /// A command name the trace never gives.
    #[error(transparent)]
    Name(#[from] UnknownCommand),
    /// `nth = 0`.
    #[error("nth counts from 1")]
    NthFromOne,
    /// `nth` without `during`.
    #[error("nth goes with during")]
    NthWithoutDuring,
    /// An action that is none of ours.
    #[error("action: remove, answer, drop-reader or mute")]
    Action,
    /// A field for another action.
    #[error("{field} does not go with action {action:?}")]
    Unused {
        /// The field.
        field: &'static str,
        /// The event's action.
        action: &'static str,
    },
    /// `answer` without `sw`.
    #[error("answer needs sw")]
    NeedsSw,
    /// A status word that is not four hex digits.
    #[error("sw: four hex digits, such as 6F00")]
    BadSw,
    /// `endless` with a status word other than 61 XX.
    #[error("endless goes with a 61 XX status word")]
    EndlessSw,
    /// `endless` with an action other than `answer`.
    #[error("endless goes with action answer")]
    EndlessAction,
    /// `mute` without `mute_ms`.
    #[error("mute needs mute_ms")]
    NeedsMute,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn parse_sw(text: &str) -> Result<u16, EventProblem> {
    let hex: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes: [u8; 2] = hex::decode(hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(EventProblem::BadSw)?;
    Ok(u16::from_be_bytes(bytes))
}

/// A `during` name as the current vocabulary reads it: the names a
/// version 1 name stands for today.
fn current_names(name: &str, version: u32) -> Vec<String> {
    let name = name.trim();
    if version >= 2 {
        return vec![name.to_string()];
    }
    // Version 1 named SET SERIAL by its byte.
    if let Some(rest) = name.strip_prefix("INS E4") {
        return vec![format!("SET SERIAL{rest}")];
    }
    // Version 1 called every GENERAL AUTHENTICATE with a slot's key that
    // was no key agreement ECDSA: RSA and EdDSA operations too.
    if let Some(rest) = name.strip_prefix("GENERAL AUTHENTICATE ECDSA")
        && (rest.is_empty() || rest.starts_with(' '))
    {
        return ["RSA", "ECDSA", "EdDSA"]
            .iter()
            .map(|op| format!("GENERAL AUTHENTICATE {op}{rest}"))
            .collect();
    }
    vec![name.to_string()]
}

impl Event {
    fn from_file(e: EventFile, version: u32) -> Result<Event, EventProblem> {
        let trigger = match (e.after_apdus, e.after_ms, e.during) {
            (Some(count), None, None) if count > 0 => Trigger::AfterApdus(count),
            (None, Some(t), None) => Trigger::After(ms(t)),
            (None, None, Some(name)) if !name.trim().is_empty() => Trigger::During {
                names: {
                    let names = current_names(&name, version);
                    for name in &names {
                        crate::trace::check_name(name)?;
                    }
                    names
                },
                nth: match e.nth {
                    Some(0) => return Err(EventProblem::NthFromOne),
                    Some(n) => n,
                    None => 1,
                },
            },
            _ => return Err(EventProblem::Trigger),
        };
        if e.nth.is_some() && !matches!(trigger, Trigger::During { .. }) {
            return Err(EventProblem::NthWithoutDuring);
        }
        let action: &'static str = match e.action.as_str() {
            "remove" => "remove",
            "answer" => "answer",
            "drop-reader" => "drop-reader",
            "mute" => "mute",
            _ => return Err(EventProblem::Action),
        };
        let unused = |field: &'static str, set: bool| {
            if set {
                Err(EventProblem::Unused { field, action })
            } else {
                Ok(())
            }
        };
        let action = match action {
            "remove" => {
                unused("sw", e.sw.is_some())?;
                unused("mute_ms", e.mute_ms.is_some())?;
                unused("reconnect_after_ms", e.reconnect_after_ms.is_some())?;
                Action::Remove {
                    reinsert_after: e.reinsert_after_ms.map(ms),
                }
            }
            "answer" => {
                unused("mute_ms", e.mute_ms.is_some())?;
                unused("reinsert_after_ms", e.reinsert_after_ms.is_some())?;
                unused("reconnect_after_ms", e.reconnect_after_ms.is_some())?;
                let sw = parse_sw(e.sw.as_deref().ok_or(EventProblem::NeedsSw)?)?;
                if e.endless && sw >> 8 != 0x61 {
                    return Err(EventProblem::EndlessSw);
                }
                Action::Answer {
                    sw,
                    endless: e.endless,
                }
            }
            "drop-reader" => {
                unused("sw", e.sw.is_some())?;
                unused("mute_ms", e.mute_ms.is_some())?;
                unused("reinsert_after_ms", e.reinsert_after_ms.is_some())?;
                Action::DropReader {
                    reconnect_after: ms(e.reconnect_after_ms.unwrap_or(0)),
                }
            }
            _ => {
                unused("sw", e.sw.is_some())?;
                unused("reinsert_after_ms", e.reinsert_after_ms.is_some())?;
                unused("reconnect_after_ms", e.reconnect_after_ms.is_some())?;
                Action::Mute(ms(e.mute_ms.ok_or(EventProblem::NeedsMute)?))
            }
        };
        if e.endless && !matches!(action, Action::Answer { .. }) {
            return Err(EventProblem::EndlessAction);
        }
        Ok(Event {
            reader: e.reader,
            trigger,
            action,
        })
    }
}

/// Parses a scenario file's text, of version 1 or 2.
pub fn parse(text: &str) -> Result<Vec<Event>, ScenarioError> {
    let file: ScenarioFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .and_then(|span| text.get(..span.start))
            .map_or(0, |before| before.matches('\n').count() + 1);
        ScenarioError::Syntax {
            line,
            message: without_values(e.message()),
        }
    })?;
    let version = match file.version {
        None | Some(1) => 1,
        Some(VERSION) => VERSION,
        Some(other) => return Err(ScenarioError::Version(other)),
    };
    file.events
        .into_iter()
        .enumerate()
        .map(|(n, e)| {
            Event::from_file(e, version).map_err(|problem| ScenarioError::Event {
                event: n + 1,
                problem,
            })
        })
        .collect()
}

/// Parses a scenario's bytes, which must be UTF-8 text.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<Event>, ScenarioError> {
    parse(std::str::from_utf8(bytes).map_err(|_| ScenarioError::NotText)?)
}

/// The names a scenario's fields have: the only words of the file an error
/// may repeat.
const FIELDS: [&str; 13] = [
    "version",
    "event",
    "reader",
    "after_apdus",
    "after_ms",
    "during",
    "nth",
    "action",
    "reinsert_after_ms",
    "sw",
    "endless",
    "reconnect_after_ms",
    "mute_ms",
];

/// A TOML or serde message with what it quotes of the text left out:
/// serde says `invalid type: string "…"` and `unknown field `…``, and what
/// it quotes is the file's. Our own field names stay.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted: Option<(char, String)> = None;
    for c in message.chars() {
        match quoted.as_mut() {
            Some((open, text)) if c == *open => {
                let kept = *open == '`' && FIELDS.contains(&text.as_str());
                out.push_str(if kept { text.as_str() } else { "…" });
                out.push(c);
                quoted = None;
            }
            Some((_, text)) => text.push(c),
            None if c == '"' || c == '`' => {
                out.push(c);
                quoted = Some((c, String::new()));
            }
            None => out.push(c),
        }
    }
    if quoted.is_some() {
        out.push('…');
    }
    // One line: TOML's own rendering adds the text beneath.
    out.lines().next().unwrap_or_default().to_string()
}

/// Reads a scenario file.
pub fn load(path: &Path) -> Result<Vec<Event>, ScenarioError> {
    let text = std::fs::read(path).map_err(|source| ScenarioError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_bytes(&text).map_err(|e| ScenarioError::In {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::scenario::{Script, Then};

    fn one(text: &str) -> Script {
        Script::new(&parse(text).unwrap(), 0, Instant::now())
    }

    #[test]
    fn bad_events_say_which_and_why() {
        use EventProblem as P;
        let cases = [
            ("[[event]]\naction = \"remove\"\n", P::Trigger),
            (
                "[[event]]\nafter_ms = 1\nafter_apdus = 1\naction = \"remove\"\n",
                P::Trigger,
            ),
            ("[[event]]\nafter_ms = 1\naction = \"explode\"\n", P::Action),
            ("[[event]]\nafter_ms = 1\naction = \"answer\"\n", P::NeedsSw),
            (
                "[[event]]\nafter_ms = 1\naction = \"answer\"\nsw = \"6F\"\n",
                P::BadSw,
            ),
            (
                "[[event]]\nafter_ms = 1\naction = \"answer\"\nsw = \"6F00\"\nendless = true\n",
                P::EndlessSw,
            ),
            (
                "[[event]]\nafter_ms = 1\naction = \"remove\"\nmute_ms = 5\n",
                P::Unused {
                    field: "mute_ms",
                    action: "remove",
                },
            ),
            (
                "[[event]]\nafter_ms = 1\nnth = 2\naction = \"remove\"\n",
                P::NthWithoutDuring,
            ),
            (
                "[[event]]\nduring = \"GENERATE\"\nnth = 0\naction = \"remove\"\n",
                P::NthFromOne,
            ),
            (
                "[[event]]\nduring = \"SIGN\"\naction = \"remove\"\n",
                P::Name(UnknownCommand("SIGN".into())),
            ),
        ];
        for (text, why) in cases {
            match parse(text) {
                Err(ScenarioError::Event { event: 1, problem }) => {
                    assert_eq!(problem, why, "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        match parse("[[event]]\nafter_ms = 1\naction = \"remove\"\nwhen = 3\n") {
            Err(ScenarioError::Syntax { line: 4, message }) => assert!(
                message.starts_with("unknown field `…`, expected one of `reader`"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn version_1_names_mean_what_they_meant() {
        let during = |text: &str| match parse(text).unwrap().remove(0).trigger {
            Trigger::During { names, .. } => names,
            other => panic!("{other:?}"),
        };
        // SET SERIAL was `INS E4`.
        assert_eq!(
            during("[[event]]\nduring = \"INS E4\"\naction = \"remove\"\n"),
            ["SET SERIAL"]
        );
        // `GENERAL AUTHENTICATE ECDSA` also meant RSA and EdDSA operations.
        let v1 = "[[event]]\nduring = \"GENERAL AUTHENTICATE ECDSA 9A\"\naction = \"remove\"\n";
        let old = [
            "GENERAL AUTHENTICATE RSA 9A",
            "GENERAL AUTHENTICATE ECDSA 9A",
            "GENERAL AUTHENTICATE EdDSA 9A",
        ];
        assert_eq!(during(v1), old);
        assert_eq!(during(&format!("version = 1\n{v1}")), old);
        // In version 2 it is ECDSA alone.
        assert_eq!(
            during(&format!("version = 2\n{v1}")),
            ["GENERAL AUTHENTICATE ECDSA 9A"]
        );
        // An RSA signature on 9A fires a version 1 event, not a version 2 one.
        let rsa_sign = [0x00, 0x87, 0x07, 0x9A, 0x04, 0x7C, 0x02, 0x82, 0x00];
        let now = Instant::now();
        let mut v1_script = one(v1);
        assert_eq!(
            v1_script.on_command(&rsa_sign, now).then,
            Then::Remove {
                reinsert_after: None
            }
        );
        let mut v2_script = one(&format!("version = 2\n{v1}"));
        assert_eq!(v2_script.on_command(&rsa_sign, now).then, Then::Process);
        assert!(matches!(
            parse("version = 3\n"),
            Err(ScenarioError::Version(3))
        ));
        assert!(matches!(
            parse_bytes(&[0xFF, 0xFE]),
            Err(ScenarioError::NotText)
        ));
    }

    /// What a file holds never comes back in an error: a server pointed at
    /// a file that is no scenario would otherwise hand it out line by line.
    #[test]
    fn errors_name_lines_and_fields_never_the_text() {
        let secret = "root:$6$Zx9kQ2pL$Vb5T4gHw";
        for text in [
            format!("{secret}\n"),
            format!("[[event]]\nreader = \"{secret}\"\nafter_ms = 1\naction = \"remove\"\n"),
            format!("[[event]]\nafter_ms = 1\naction = \"{secret}\"\n"),
            format!("[[event]]\nafter_ms = 1\naction = \"answer\"\nsw = \"{secret}\"\n"),
            format!("[[event]]\nafter_ms = 1\naction = \"remove\"\n\"{secret}\" = 1\n"),
        ] {
            let e = parse(&text).unwrap_err().to_string();
            for piece in ["root", "Zx9kQ2pL", "Vb5T4gHw"] {
                assert!(!e.contains(piece), "{text:?} gave {e:?}");
            }
            assert!(!e.contains('\n'), "{e:?}");
        }
        let e = parse(&format!("[[event]]\nreader = \"{secret}\"\n")).unwrap_err();
        assert!(matches!(e, ScenarioError::Syntax { line: 2, .. }), "{e}");
    }
}
