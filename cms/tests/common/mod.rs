//! What several CMS tests share.
#![allow(dead_code)]

use client::{ClientError, Result, Transport};

/// A reader that loses the card after `left` APDUs: a card pulled out, or a
/// host gone, in the middle of a flow.
pub struct Flaky<'a, T: Transport> {
    pub inner: &'a mut T,
    pub left: usize,
}

impl<T: Transport> Transport for Flaky<'_, T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        if self.left == 0 {
            return Err(ClientError::Transport("card removed".into()));
        }
        self.left -= 1;
        self.inner.transmit(apdu)
    }
}
