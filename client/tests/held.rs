//! One command, one hold of the card: a chain and its GET RESPONSE parts go
//! inside one [`Transport::held`], so that over PC/SC no other
//! application's APDU can come between them.

use client::{Answer, PivClient, Result, Transport};

/// What reached the card: `Begin`, each APDU's CLA and INS, `End`.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Begin,
    Apdu(u8, u8),
    End,
}

/// A card that accepts every part, answers the last with `61 03` and
/// GET RESPONSE with three bytes, and records the holds around them.
#[derive(Default)]
struct Recorder {
    events: Vec<Event>,
    held: bool,
}

impl Transport for Recorder {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        assert!(self.held, "an APDU outside a hold: {apdu:02X?}");
        let (cla, ins) = (apdu[0], apdu[1]);
        self.events.push(Event::Apdu(cla, ins));
        Ok(match (cla & 0x10, ins) {
            (0x10, _) => vec![0x90, 0x00],
            (_, 0xC0) => vec![1, 2, 3, 0x90, 0x00],
            _ => vec![0x61, 0x03],
        })
    }

    fn held(
        &mut self,
        exchange: &mut dyn FnMut(&mut dyn Transport) -> Result<Answer>,
    ) -> Result<Answer> {
        self.events.push(Event::Begin);
        self.held = true;
        let answer = exchange(self);
        self.held = false;
        self.events.push(Event::End);
        answer
    }
}

#[test]
fn a_chained_command_and_its_answer_are_one_hold() {
    let mut client = PivClient::new(Recorder::default());
    let (data, sw) = client
        .exchange([0x00, 0xDB, 0x3F, 0xFF], &[0xAA; 600])
        .unwrap();
    assert_eq!((data, sw), (vec![1, 2, 3], 0x9000));
    let (data, sw) = client
        .exchange([0x00, 0xCB, 0x3F, 0xFF], &[0x5C, 0x01, 0x7E])
        .unwrap();
    assert_eq!((data, sw), (vec![1, 2, 3], 0x9000));
    use Event::*;
    assert_eq!(
        client.into_inner().events,
        [
            Begin,
            Apdu(0x10, 0xDB),
            Apdu(0x10, 0xDB),
            Apdu(0x00, 0xDB),
            Apdu(0x00, 0xC0),
            End,
            Begin,
            Apdu(0x00, 0xCB),
            Apdu(0x00, 0xC0),
            End,
        ]
    );
}
