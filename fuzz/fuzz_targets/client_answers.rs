//! The host PIV client against a card that answers anything: every
//! command the CMS flows send, each answered with the fuzz input's next
//! answer. No panic, and no loop that the card's answers drive without
//! end: when the input runs out the card says its answers again from the
//! start, for ever, so a client that follows `61 xx` (or anything else)
//! without a bound hangs and libFuzzer reports a timeout.
#![no_main]

use client::{AdminAlgorithm, Algorithm, ClientError, PivClient, Slot, Transport};
use libfuzzer_sys::fuzz_target;

/// Answers cut from the input: a length byte, then that many bytes.
struct Hostile {
    answers: Vec<Vec<u8>>,
    next: usize,
    sent: usize,
}

impl Hostile {
    fn new(mut data: &[u8]) -> Hostile {
        let mut answers = Vec::new();
        while let [len, rest @ ..] = data {
            let len = usize::from(*len).min(rest.len());
            answers.push(rest[..len].to_vec());
            data = &rest[len..];
        }
        Hostile {
            answers,
            next: 0,
            sent: 0,
        }
    }
}

impl Transport for Hostile {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ClientError> {
        assert!(apdu.len() >= 4, "the client sent less than a header");
        self.sent += 1;
        if self.answers.is_empty() {
            return Err(ClientError::Transport("no card".into()));
        }
        let answer = self.answers[self.next % self.answers.len()].clone();
        self.next += 1;
        Ok(answer)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut card = PivClient::new(Hostile::new(data));
    let _ = card.select();
    let _ = card.card_info();
    let _ = card.tries(0x80);
    let _ = card.is_default(0x9B);
    let _ = card.authenticate(AdminAlgorithm::Aes256, &[7; 32]);
    let _ = card.authenticate(AdminAlgorithm::Tdes, &[7; 24]);
    let _ = card.get_object(0x5FC105);
    let _ = card.key_metadata(Slot::Authentication);
    let _ = card.public_key(Slot::Signature);
    for algorithm in [
        Algorithm::P256,
        Algorithm::P384,
        Algorithm::Rsa2048,
        Algorithm::Ed25519,
    ] {
        let _ = card.generate_key(Slot::Authentication, algorithm, true);
    }
    let _ = card.sign(Slot::Authentication, &[1; 32]);
    let _ = card.verify_pin(b"123456");
    let _ = card.unblock(b"12345678", b"654321");
    // Every command is a few exchanges; a bounded client sends a bounded
    // number whatever the answers.
    let sent = card.into_inner().sent;
    assert!(sent < 50_000, "{sent} commands for a handful of operations");
});
