//! piv-authenticator behind a [`Transport`]: what a Nitrokey's APDU
//! dispatch does in front of it. Command chains (CLA bit `10`) are joined
//! into one command, and answers longer than 256 bytes go out as `61xx`
//! and GET RESPONSE, so the host client drives it as it drives s9card.

use std::sync::Arc;

use client::{ClientError, Result, Transport};
use heapless::Vec as HVec;
use iso7816::command::CommandView;
use piv_authenticator::{Authenticator, Options};

use crate::flash::Counts;
use crate::{BenchCard, FlashOps};

/// The largest command and answer piv-authenticator handles.
const MAX: usize = 3072;

/// piv-authenticator on a trussed client.
pub struct PeerCard<C> {
    piv: Authenticator<C>,
    counts: Arc<Counts>,
    chain: Vec<u8>,
    pending: Vec<u8>,
}

impl<C: piv_authenticator::Client> PeerCard<C> {
    /// A fresh card on `client`, whose flash counts into `counts`.
    pub fn new(client: C, counts: Arc<Counts>) -> Self {
        PeerCard {
            piv: Authenticator::new(client, Options::default()),
            counts,
            chain: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// One whole command through piv-authenticator.
    fn respond(&mut self, command: &[u8]) -> Vec<u8> {
        let Ok(view) = CommandView::try_from(command) else {
            return vec![0x67, 0x00];
        };
        let mut reply: HVec<u8, MAX> = HVec::new();
        let status = match self.piv.respond(view, &mut reply) {
            Ok(()) => [0x90, 0x00],
            Err(status) => u16::from(status).to_be_bytes(),
        };
        self.pending = reply.to_vec();
        self.next_part(status)
    }

    /// Up to 256 bytes of the pending answer, with `61xx` if more remain.
    fn next_part(&mut self, done: [u8; 2]) -> Vec<u8> {
        let take = self.pending.len().min(256);
        let mut out: Vec<u8> = self.pending.drain(..take).collect();
        match self.pending.len() {
            0 => out.extend(done),
            more => out.extend([0x61, more.min(256) as u8]),
        }
        out
    }
}

impl<C: piv_authenticator::Client> Transport for PeerCard<C> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        let [cla, ins, p1, p2, ..] = *apdu else {
            return Err(ClientError::Transport("short APDU".into()));
        };
        if ins == 0xC0 {
            return Ok(self.next_part([0x90, 0x00]));
        }
        self.pending.clear();
        let data = apdu
            .get(5..5 + usize::from(*apdu.get(4).unwrap_or(&0)))
            .unwrap_or(&[]);
        if cla & 0x10 != 0 {
            self.chain.extend_from_slice(data);
            return Ok(vec![0x90, 0x00]);
        }
        if self.chain.is_empty() {
            return Ok(self.respond(apdu));
        }
        // The last link: the whole command, extended length when long.
        self.chain.extend_from_slice(data);
        let data = std::mem::take(&mut self.chain);
        let mut whole = vec![cla, ins, p1, p2];
        if data.len() > 255 {
            whole.push(0x00);
            whole.extend((data.len() as u16).to_be_bytes());
            whole.extend(&data);
            whole.extend([0x00, 0x00]);
        } else {
            whole.push(data.len() as u8);
            whole.extend(&data);
            whole.push(0x00);
        }
        Ok(self.respond(&whole))
    }
}

impl<C: piv_authenticator::Client> BenchCard for PeerCard<C> {
    fn flash_ops(&self) -> FlashOps {
        self.counts.get()
    }
}
