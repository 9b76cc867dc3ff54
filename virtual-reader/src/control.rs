//! The control socket's protocol, `s9card-control/1`: one JSON line per
//! request and one per answer, each naming the protocol, so that a client
//! and a server of different versions say so instead of misreading each
//! other. The socket is a Unix socket in a private directory; a scenario
//! comes as its text, read by the client with the client's rights: the
//! server, which may run as another user, never opens a file a client
//! names.
//!
//! The protocol before this one was plain text (`eject 0`); a server
//! answers such a line with [`Refusal::Protocol`], which names this one.

use serde::{Deserialize, Serialize};

/// The protocol's name and version.
pub const PROTOCOL: &str = "s9card-control/1";

/// The longest scenario the control socket takes.
pub const MAX_SCENARIO: usize = 64 * 1024;

/// The longest request line: a scenario of [`MAX_SCENARIO`] bytes, each of
/// which JSON may escape in six, and the envelope.
pub const MAX_REQUEST_LINE: usize = 6 * MAX_SCENARIO + 256;

/// What a client asks of a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Take the card out of this reader.
    Eject {
        /// The reader, from 0.
        reader: usize,
    },
    /// Put it back.
    Insert {
        /// The reader, from 0.
        reader: usize,
    },
    /// Stage this scenario (its text, TOML) on every reader, from now.
    Scenario {
        /// The scenario file's text.
        text: String,
    },
    /// Each reader's state (a struct variant, so that serde refuses
    /// fields it does not have).
    Status {},
}

/// A server's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Answer {
    /// Done.
    Done,
    /// The scenario is staged.
    Staged {
        /// Its events.
        events: usize,
    },
    /// The readers.
    Status {
        /// One per reader, in order.
        readers: Vec<ReaderStatus>,
    },
    /// Not done, and why.
    Refused {
        /// Why.
        refusal: Refusal,
    },
}

/// What `s9card` prints for an answer: `ok`, `ok: 2 events`, or one
/// reader's state after another.
impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Done => f.write_str("ok"),
            Answer::Staged { events } => write!(f, "ok: {events} events"),
            Answer::Status { readers } => {
                for (n, r) in readers.iter().enumerate() {
                    if n > 0 {
                        f.write_str("; ")?;
                    }
                    write!(
                        f,
                        "reader {}: {} {}",
                        r.reader,
                        if r.inserted { "inserted" } else { "ejected" },
                        if r.connected { "connected" } else { "waiting" }
                    )?;
                    if let Some(pid) = r.qemu {
                        write!(f, " qemu {pid}")?;
                    }
                }
                Ok(())
            }
            Answer::Refused { refusal } => write!(f, "error: {refusal}"),
        }
    }
}

/// One reader's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderStatus {
    /// The reader, from 0.
    pub reader: usize,
    /// A card is in it.
    pub inserted: bool,
    /// pcscd's vpcd driver is connected to it.
    pub connected: bool,
    /// The QEMU process of a firmware card.
    pub qemu: Option<u32>,
}

/// Why a server refused a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "refusal", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Refusal {
    /// The request is not this protocol (the text protocol of earlier
    /// versions, or another version of this one).
    #[error("the request is not {expected} (a client of another s9card version?)")]
    Protocol {
        /// The protocol the server speaks.
        expected: String,
    },
    /// No such reader.
    #[error("no reader {reader} of {readers}")]
    NoReader {
        /// The reader asked for.
        reader: usize,
        /// The readers served.
        readers: usize,
    },
    /// A scenario longer than the server takes.
    #[error("a scenario is 0 to {max} bytes")]
    TooLong {
        /// The most it takes.
        max: usize,
    },
    /// A scenario that is not one: the parser's reason (a line and a
    /// field, never the text).
    #[error("scenario: {reason}")]
    Scenario {
        /// Why.
        reason: String,
    },
    /// A scenario event for a reader the server does not have.
    #[error("an event for reader {reader} of {readers}")]
    EventReader {
        /// The event's reader.
        reader: usize,
        /// The readers served.
        readers: usize,
    },
}

/// A request line as it goes on the socket.
#[derive(Debug, Serialize)]
struct RequestLine {
    protocol: String,
    #[serde(flatten)]
    request: Request,
}

/// An answer line as it goes on the socket.
#[derive(Debug, Serialize, Deserialize)]
struct AnswerLine {
    protocol: String,
    #[serde(flatten)]
    answer: Answer,
}

/// A request as one line (no newline).
pub fn encode_request(request: &Request) -> String {
    line(&RequestLine {
        protocol: PROTOCOL.into(),
        request: request.clone(),
    })
}

/// An answer as one line (no newline).
pub fn encode_answer(answer: &Answer) -> String {
    line(&AnswerLine {
        protocol: PROTOCOL.into(),
        answer: answer.clone(),
    })
}

fn line(value: &impl Serialize) -> String {
    // A struct of strings, numbers and enums always serialises.
    serde_json::to_string(value).unwrap_or_default()
}

/// Reads a request line: a request of this protocol, or the refusal to
/// answer with. The envelope is taken off first, so that the request's own
/// fields are checked strictly (serde's `flatten` would let unknown ones
/// through).
pub fn decode_request(line: &str) -> Result<Request, Refusal> {
    let refused = || Refusal::Protocol {
        expected: PROTOCOL.into(),
    };
    let mut fields = match serde_json::from_str(line) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => return Err(refused()),
    };
    if fields.remove("protocol") != Some(serde_json::Value::String(PROTOCOL.into())) {
        return Err(refused());
    }
    serde_json::from_value(serde_json::Value::Object(fields)).map_err(|_| refused())
}

/// Reads an answer line.
pub fn decode_answer(line: &str) -> Result<Answer, serde_json::Error> {
    serde_json::from_str::<AnswerLine>(line).map(|l| l.answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_read_back_as_written() {
        for request in [
            Request::Eject { reader: 3 },
            Request::Insert { reader: 0 },
            Request::Scenario {
                text: "[[event]]\nafter_apdus = 1\naction = \"remove\"\n".into(),
            },
            Request::Status {},
        ] {
            let line = encode_request(&request);
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(decode_request(&line), Ok(request));
        }
        let answer = Answer::Status {
            readers: vec![ReaderStatus {
                reader: 0,
                inserted: true,
                connected: false,
                qemu: Some(42),
            }],
        };
        assert_eq!(decode_answer(&encode_answer(&answer)).unwrap(), answer);
        assert_eq!(
            encode_request(&Request::Eject { reader: 1 }),
            r#"{"protocol":"s9card-control/1","request":"eject","reader":1}"#
        );
    }

    #[test]
    fn the_text_protocol_and_other_versions_are_refused_by_name() {
        let protocol = Refusal::Protocol {
            expected: PROTOCOL.into(),
        };
        for line in [
            "eject 0",
            "scenario 5000000",
            r#"{"protocol":"s9card-control/2","request":"eject","reader":0}"#,
            r#"{"protocol":"s9card-control/1","request":"eject"}"#,
            r#"{"protocol":"s9card-control/1","request":"format"}"#,
            r#"{"protocol":"s9card-control/1","request":"status","extra":1}"#,
        ] {
            assert_eq!(decode_request(line), Err(protocol.clone()), "{line}");
        }
        assert!(protocol.to_string().contains(PROTOCOL));
    }
}
