//! BER-TLV as ISO 7816-4 and PIV use it: tags of one to three bytes and the
//! definite length forms `xx`, `81 xx`, `82 xx xx` and `83 xx xx xx`.
//!
//! The reader is lenient where BER is (a length may use more bytes than it
//! needs) and strict everywhere else; the writer always uses the shortest
//! length form. Neither looks inside a value: PIV wraps TLV lists in tags such
//! as `53` that BER would call primitive, so the caller decides what to walk,
//! with a fresh [`Reader`] over a value.

use crate::Error;

/// A BER-TLV tag of one to three bytes, held as its big-endian value
/// (`0x5FC105` is the three bytes `5F C1 05`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(u32);

impl Tag {
    /// Validates the BER structure of a tag value: the first byte's low five
    /// bits are all ones exactly when more bytes follow, and each following
    /// byte has bit 8 set exactly when yet another follows.
    pub const fn new(value: u32) -> Option<Tag> {
        if value == 0 || value > 0x00FF_FFFF {
            return None;
        }
        let len = Tag(value).len();
        let first = Tag(value).byte(0);
        if first == 0xFF || (first & 0x1F == 0x1F) != (len > 1) {
            return None;
        }
        let mut i = 1;
        while i < len {
            let more = Tag(value).byte(i) & 0x80 != 0;
            if more != (i + 1 < len) {
                return None;
            }
            i += 1;
        }
        Some(Tag(value))
    }

    /// Byte `i` of the tag, counting from the first byte on the wire.
    const fn byte(self, i: usize) -> u8 {
        let shift = 8 * (self.len() - 1 - i);
        ((self.0 >> shift) & 0xFF) as u8
    }

    /// For `const` items only: a tag the compiler has checked. An invalid
    /// value stops compilation of the constant that names it.
    pub const fn constant(value: u32) -> Tag {
        let tag = Tag::new(value);
        assert!(tag.is_some(), "not a valid BER-TLV tag");
        match tag {
            Some(tag) => tag,
            None => Tag(value),
        }
    }

    /// The tag's value, e.g. `0x5FC105`.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// How many bytes the tag occupies.
    #[allow(clippy::len_without_is_empty)]
    pub const fn len(self) -> usize {
        if self.0 <= 0xFF {
            1
        } else if self.0 <= 0xFFFF {
            2
        } else {
            3
        }
    }

    /// Constructed tags (bit 6 of the first byte) hold TLVs by BER's rules.
    pub const fn is_constructed(self) -> bool {
        self.byte(0) & 0x20 != 0
    }

    fn write_to(self, out: &mut [u8]) -> Option<usize> {
        let bytes = self.0.to_be_bytes();
        let src = bytes.get(4 - self.len()..)?;
        out.get_mut(..src.len())?.copy_from_slice(src);
        Some(src.len())
    }
}

/// One tag-length-value, its value borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag.
    pub tag: Tag,
    /// The value bytes, exactly as long as the length field said.
    pub value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Reads one TLV from the front of `bytes`, returning it and what follows.
    pub fn parse(bytes: &'a [u8]) -> Result<(Tlv<'a>, &'a [u8]), Error> {
        let (tag, rest) = read_tag(bytes)?;
        let (len, rest) = read_length(rest)?;
        let (value, rest) = rest.split_at_checked(len).ok_or(Error::TlvTruncated)?;
        Ok((Tlv { tag, value }, rest))
    }

    /// The TLVs inside this value.
    pub fn children(&self) -> Reader<'a> {
        Reader::new(self.value)
    }
}

/// Reads a tag from the front of `bytes`.
pub fn read_tag(bytes: &[u8]) -> Result<(Tag, &[u8]), Error> {
    let (&first, mut rest) = bytes.split_first().ok_or(Error::TlvTruncated)?;
    if first == 0x00 || first == 0xFF {
        return Err(Error::TlvInvalidTag);
    }
    let mut value = u32::from(first);
    if first & 0x1F == 0x1F {
        for n in 1.. {
            if n > 2 {
                return Err(Error::TlvInvalidTag);
            }
            let (&b, after) = rest.split_first().ok_or(Error::TlvTruncated)?;
            rest = after;
            value = (value << 8) | u32::from(b);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    Ok((Tag(value), rest))
}

/// Reads a definite length field from the front of `bytes`.
pub fn read_length(bytes: &[u8]) -> Result<(usize, &[u8]), Error> {
    let (&first, rest) = bytes.split_first().ok_or(Error::TlvTruncated)?;
    let width = match first {
        0x00..=0x7F => return Ok((usize::from(first), rest)),
        0x81 => 1,
        0x82 => 2,
        0x83 => 3,
        _ => return Err(Error::TlvInvalidLength),
    };
    let (field, rest) = rest.split_at_checked(width).ok_or(Error::TlvTruncated)?;
    let len = field
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    Ok((len, rest))
}

/// The bytes a length field takes for a value of `len` bytes.
pub const fn length_len(len: usize) -> usize {
    match len {
        0..=0x7F => 1,
        0x80..=0xFF => 2,
        0x100..=0xFFFF => 3,
        _ => 4,
    }
}

/// The bytes a whole TLV takes.
pub const fn encoded_len(tag: Tag, value_len: usize) -> usize {
    tag.len() + length_len(value_len) + value_len
}

/// Iterates over a sequence of TLVs; after the first error it yields nothing
/// more, so a `for` loop over malformed input ends.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over a TLV list.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// The value of the first TLV with `tag`, checking every TLV before it.
    pub fn find(self, tag: Tag) -> Result<Option<&'a [u8]>, Error> {
        for tlv in self {
            let tlv = tlv?;
            if tlv.tag == tag {
                return Ok(Some(tlv.value));
            }
        }
        Ok(None)
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Tlv<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match Tlv::parse(self.rest) {
            Ok((tlv, rest)) => {
                self.rest = rest;
                Some(Ok(tlv))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Writes TLVs into a caller's buffer.
///
/// Nested TLVs are written in place: the writer leaves room for the longest
/// length field, writes the contents, then closes the gap, so no second
/// buffer is needed on a card with a few KiB of RAM.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
    /// How far anything has been written, failed attempts included: what a
    /// caller must wipe if the buffer held a secret.
    high: usize,
}

/// What a [`Writer::in_place`] fill produced: `len` bytes of output, and
/// how far into the buffer it wrote (scratch included), for wiping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filled {
    /// Bytes of output, from the start of the rest.
    pub len: usize,
    /// How far anything was written, at least `len`.
    pub touched: usize,
}

/// Room reserved for a nested TLV's length field before its size is known.
const MAX_LENGTH_LEN: usize = 4;

impl<'b> Writer<'b> {
    /// A writer filling `buf` from the start.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Writer {
            buf,
            len: 0,
            high: 0,
        }
    }

    /// How far into the buffer anything was ever written, including TLVs a
    /// failure took back: everything past [`Writer::len`] up to here is
    /// stale, and is what to wipe when the buffer held a secret.
    pub const fn high_water(&self) -> usize {
        self.high
    }

    fn advance_to(&mut self, len: usize) {
        self.len = len;
        self.high = self.high.max(len);
    }

    /// Bytes written so far.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What has been written.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// What has been written, to fill in a field whose value depends on
    /// what was written after it (a MAC over a certificate that follows
    /// it, say): positions are [`Writer::len`]'s.
    pub fn written_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(..self.len).unwrap_or_default()
    }

    /// Hands the unwritten rest of the buffer to `fill`, which writes in
    /// place (a response built, then transformed where it lies) and says
    /// how many bytes it produced and how far it wrote. If it fails, the
    /// whole rest counts as written over, for the caller to wipe.
    pub fn in_place<E, F>(&mut self, fill: F) -> Result<(), E>
    where
        F: FnOnce(&mut [u8]) -> Result<Filled, E>,
    {
        let start = self.len;
        let rest = self.buf.get_mut(start..).unwrap_or_default();
        let room = rest.len();
        match fill(rest) {
            Ok(filled) => {
                self.high = self.high.max(start + filled.touched.min(room));
                self.advance_to(start + filled.len.min(room));
                Ok(())
            }
            Err(e) => {
                self.high = self.buf.len();
                Err(e)
            }
        }
    }

    /// Appends bytes as they are (an already encoded TLV, for instance).
    pub fn raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self
            .len
            .checked_add(bytes.len())
            .ok_or(Error::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.len..end)
            .ok_or(Error::BufferTooSmall)?;
        dst.copy_from_slice(bytes);
        self.advance_to(end);
        Ok(())
    }

    /// Appends `n` zero bytes and hands them out to be filled in place (a
    /// value read straight from flash, say).
    pub fn reserve(&mut self, n: usize) -> Result<&mut [u8], Error> {
        let start = self.len;
        let end = start.checked_add(n).ok_or(Error::BufferTooSmall)?;
        if end > self.buf.len() {
            return Err(Error::BufferTooSmall);
        }
        self.advance_to(end);
        let dst = self.buf.get_mut(start..end).ok_or(Error::BufferTooSmall)?;
        dst.fill(0);
        Ok(dst)
    }

    /// Appends one TLV.
    pub fn tlv(&mut self, tag: Tag, value: &[u8]) -> Result<(), Error> {
        self.atomically(|w| {
            w.header(tag, value.len())?;
            w.raw(value)
        })
    }

    /// Appends a tag and a length field for a value the caller writes next.
    pub fn header(&mut self, tag: Tag, value_len: usize) -> Result<(), Error> {
        self.atomically(|w| {
            let start = w.len;
            let rest = w.buf.get_mut(start..).ok_or(Error::BufferTooSmall)?;
            let n = tag.write_to(rest).ok_or(Error::BufferTooSmall)?;
            w.advance_to(start + n);
            w.length(value_len)
        })
    }

    /// Runs `f`; if it fails, forgets whatever it wrote, so a full buffer
    /// never leaves half a TLV behind.
    fn atomically<F>(&mut self, f: F) -> Result<(), Error>
    where
        F: FnOnce(&mut Self) -> Result<(), Error>,
    {
        let start = self.len;
        let result = f(self);
        if result.is_err() {
            self.len = start;
        }
        result
    }

    /// Appends a TLV whose value `contents` writes with the same writer.
    pub fn nested<F>(&mut self, tag: Tag, contents: F) -> Result<(), Error>
    where
        F: FnOnce(&mut Self) -> Result<(), Error>,
    {
        let start = self.len;
        let rest = self.buf.get_mut(start..).ok_or(Error::BufferTooSmall)?;
        let tag_len = tag.write_to(rest).ok_or(Error::BufferTooSmall)?;
        self.high = self.high.max(start + tag_len);
        let value_at = start + tag_len + MAX_LENGTH_LEN;
        if value_at > self.buf.len() {
            return Err(Error::BufferTooSmall);
        }
        self.advance_to(value_at);
        let result = contents(self);
        if let Err(e) = result {
            self.len = start;
            return Err(e);
        }
        let value_len = self.len - value_at;
        self.len = start + tag_len;
        if let Err(e) = self.length(value_len) {
            self.len = start;
            return Err(e);
        }
        let new_at = self.len;
        self.buf.copy_within(value_at..value_at + value_len, new_at);
        self.len = new_at + value_len;
        Ok(())
    }

    fn length(&mut self, len: usize) -> Result<(), Error> {
        let mut field = [0u8; MAX_LENGTH_LEN];
        let width = length_len(len);
        let be = (len as u32).to_be_bytes();
        match width {
            1 => field[0] = be[3],
            _ => {
                if len > 0x00FF_FFFF {
                    return Err(Error::TlvInvalidLength);
                }
                field[0] = 0x80 | (width as u8 - 1);
                let src = be.get(4 - (width - 1)..).unwrap_or_default();
                let dst = field.get_mut(1..width).unwrap_or_default();
                dst.copy_from_slice(src);
            }
        }
        self.raw(field.get(..width).unwrap_or_default())
    }
}
