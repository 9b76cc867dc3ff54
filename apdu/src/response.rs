//! Response APDUs: data followed by SW1 SW2.

use crate::{Error, Status};

/// A response APDU borrowed from a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    data: &'a [u8],
    /// Kept raw: a host must carry any word a card sends, known or not.
    sw: u16,
}

impl<'a> Response<'a> {
    /// A response carrying `data` and ending in `status`.
    pub const fn new(data: &'a [u8], status: Status) -> Self {
        Response {
            data,
            sw: status.sw(),
        }
    }

    /// A response ending in any status word, known or not.
    pub const fn with_sw(data: &'a [u8], sw: u16) -> Self {
        Response { data, sw }
    }

    /// Splits a received response into data and status word.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let split = bytes.len().checked_sub(2).ok_or(Error::ResponseTooShort)?;
        let (data, sw) = bytes.split_at(split);
        let sw: [u8; 2] = sw.try_into().map_err(|_| Error::ResponseTooShort)?;
        Ok(Response {
            data,
            sw: u16::from_be_bytes(sw),
        })
    }

    /// The response data field.
    pub const fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The status word, if it is one of the table a PIV card uses.
    pub const fn status(&self) -> Option<Status> {
        Status::from_sw(self.sw)
    }

    /// SW1 SW2 as one number.
    pub const fn sw(&self) -> u16 {
        self.sw
    }

    /// The number of bytes [`Response::write_to`] produces.
    pub const fn encoded_len(&self) -> usize {
        self.data.len() + 2
    }

    /// Encodes `data ‖ SW1 SW2` into `out`, returning the length written.
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, Error> {
        let len = self.encoded_len();
        let out = out.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let (data, sw) = out.split_at_mut(self.data.len());
        data.copy_from_slice(self.data);
        sw.copy_from_slice(&self.sw().to_be_bytes());
        Ok(len)
    }
}
