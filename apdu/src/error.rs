use core::fmt;

/// Everything that can be wrong with bytes handed to this crate.
///
/// One enum for the whole codec layer. The variants say *what* is malformed,
/// not which status word it earns: that mapping lives in the card OS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A command shorter than its 4-byte header (CLA INS P1 P2).
    HeaderTooShort,
    /// Lc announces more or fewer data bytes than the body carries, or the
    /// body length fits no ISO 7816-4 case.
    LcMismatch,
    /// The body starts with `00` (extended length) but stops before the
    /// extended length field is complete.
    ExtendedTruncated,
    /// An extended Lc of `00 00`: zero data bytes must be encoded by leaving
    /// Lc out, never by a zero Lc.
    ExtendedZeroLc,
    /// The class byte `FF` is reserved for PPS and never starts a command.
    InvalidClass,
    /// A response shorter than its 2-byte status word.
    ResponseTooShort,
    /// A command built with more data than a length field can announce, or an
    /// expected length outside 1..=65536.
    LengthOutOfRange,
    /// The caller's output buffer cannot hold what was to be written.
    BufferTooSmall,
    /// A TLV's tag, length or value runs past the end of the input.
    TlvTruncated,
    /// A tag longer than three bytes, or starting with the padding bytes `00`
    /// or `FF`.
    TlvInvalidTag,
    /// A length field that is indefinite (`80`), longer than `83 xx xx xx`,
    /// or otherwise not one of the four definite forms.
    TlvInvalidLength,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Error::HeaderTooShort => "command shorter than its 4-byte header",
            Error::LcMismatch => "Lc disagrees with the data length",
            Error::ExtendedTruncated => "extended length field is truncated",
            Error::ExtendedZeroLc => "extended Lc of zero",
            Error::InvalidClass => "class byte FF is invalid",
            Error::ResponseTooShort => "response shorter than a status word",
            Error::LengthOutOfRange => "length outside what the encoding can carry",
            Error::BufferTooSmall => "output buffer too small",
            Error::TlvTruncated => "TLV runs past the end of its input",
            Error::TlvInvalidTag => "invalid BER-TLV tag",
            Error::TlvInvalidLength => "invalid BER-TLV length",
        };
        f.write_str(text)
    }
}

impl core::error::Error for Error {}
