//! An open secure-messaging session: the keys the establishment derived,
//! the command counter and the two MAC chaining values, and the unwrapping
//! of protected commands and wrapping of their answers (SP 800-73-4 Part 2
//! §4.2–4.3).
//!
//! A protected command's data is `[87 L 01 cryptogram] [97 L Le] 8E 08
//! MAC`; its answer's is `[87 L 01 cryptogram] 99 02 SW1 SW2 8E 08 MAC`.
//! The MACs are AES-CMAC chained through every command (and, separately,
//! every answer) of the session, truncated to 8 bytes on the wire. Command
//! `n` of a session (counting from 1) is encrypted with the IV
//! `E(SK_ENC, n)`, its answer with `E(SK_ENC, 80 … n)`.

use core::ops::Range;

use apdu::tlv::{Tag, Tlv, Writer};
use apdu::{Header, Status};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::cipher::{self, Block};
use super::{MAC_LEN, MAX_KEY, Suite};
use crate::error::{Error, Result};

/// Room a response's plaintext leaves before it for the cryptogram's
/// header (`87 82 LL LL 01`): [`Channel::wrap`] reads the plaintext from
/// `buf[RESERVED..]`.
pub const RESERVED: usize = 5;
/// A wrapped answer's bytes after its cryptogram: `99 02 SW1 SW2 8E 08
/// MAC`.
pub const TRAILER: usize = 14;
/// Room a response's plaintext must leave after it: the padding (up to a
/// block) and the trailer.
pub const AFTER: usize = 16 + TRAILER;

const TAG_CRYPTOGRAM: u8 = 0x87;
const TAG_LE: u8 = 0x97;
const TAG_STATUS: u8 = 0x99;
const TAG_MAC: u8 = 0x8E;
/// The padding-content indicator of a cryptogram: ISO/IEC 7816-4 padding.
const PADDED: u8 = 0x01;

/// The session keys a channel keeps. SK_CFRM served the key confirmation
/// and is gone.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Keys {
    mac: [u8; MAX_KEY],
    enc: [u8; MAX_KEY],
    rmac: [u8; MAX_KEY],
}

/// An open session.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Channel {
    #[zeroize(skip)]
    suite: Suite,
    keys: Keys,
    /// Protected commands accepted so far; command `n` and its answer use
    /// `n` in their IVs.
    counter: u32,
    /// The command MAC chaining value: the last command's full CMAC.
    c_mcv: Block,
    /// The response MAC chaining value: the last answer's full CMAC.
    r_mcv: Block,
}

/// Never the keys: a session prints as its suite and count.
impl core::fmt::Debug for Channel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Channel")
            .field("suite", &self.suite)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// The parts of a protected command's data, as positions in it.
struct Parts {
    /// The whole `87` TLV (it is MACed as sent).
    cryptogram: Option<Range<usize>>,
    /// The cryptogram proper: the `87` value after its padding indicator.
    encrypted: Range<usize>,
    /// The whole `97` TLV.
    le: Option<Range<usize>>,
    /// The `8E` value.
    mac: Range<usize>,
}

/// Where a TLV lies, whole, and where its value lies.
type Spans = (Range<usize>, Range<usize>);

/// Reads one TLV at `at` in `data` if it has `tag`: where the TLV and its
/// value lie.
fn take(data: &[u8], at: usize, tag: u8) -> Result<Option<Spans>> {
    let bytes = data.get(at..).unwrap_or_default();
    if bytes.first() != Some(&tag) {
        return Ok(None);
    }
    let (tlv, rest) = Tlv::parse(bytes).map_err(|_| Error::SmIncorrect)?;
    let end = data.len() - rest.len();
    Ok(Some((at..end, end - tlv.value.len()..end)))
}

impl Parts {
    fn parse(data: &[u8]) -> Result<Parts> {
        let mut at = 0;
        let mut encrypted = 0..0;
        let cryptogram = match take(data, at, TAG_CRYPTOGRAM)? {
            Some((whole, value)) => {
                at = whole.end;
                // The padding-content indicator, then whole blocks.
                if data.get(value.start) != Some(&PADDED) {
                    return Err(Error::SmIncorrect);
                }
                encrypted = value.start + 1..value.end;
                if encrypted.is_empty() || encrypted.len() % 16 != 0 {
                    return Err(Error::SmIncorrect);
                }
                Some(whole)
            }
            None => None,
        };
        let le = match take(data, at, TAG_LE)? {
            Some((whole, value)) => {
                if !(1..=2).contains(&value.len()) {
                    return Err(Error::SmIncorrect);
                }
                at = whole.end;
                Some(whole)
            }
            None => None,
        };
        // Without a MAC there is nothing to check the rest by.
        let Some((whole, mac)) = take(data, at, TAG_MAC)? else {
            return Err(Error::SmMissing);
        };
        if mac.len() != MAC_LEN || whole.end != data.len() {
            return Err(Error::SmIncorrect);
        }
        Ok(Parts {
            cryptogram,
            encrypted,
            le,
            mac,
        })
    }
}

/// A counter as a big-endian block, `first` in its first byte.
fn counter_block(first: u8, n: u32) -> Block {
    let mut block = [0u8; 16];
    block[0] = first;
    block[12..].copy_from_slice(&n.to_be_bytes());
    block
}

impl Channel {
    /// A session with fresh counters and chaining values.
    pub(super) fn new(suite: Suite, mac: &[u8], enc: &[u8], rmac: &[u8]) -> Result<Channel> {
        let mut keys = Keys {
            mac: [0; MAX_KEY],
            enc: [0; MAX_KEY],
            rmac: [0; MAX_KEY],
        };
        for (dst, src) in [
            (&mut keys.mac, mac),
            (&mut keys.enc, enc),
            (&mut keys.rmac, rmac),
        ] {
            dst.get_mut(..suite.key_len())
                .ok_or(Error::BadData)?
                .copy_from_slice(src.get(..suite.key_len()).ok_or(Error::BadData)?);
        }
        Ok(Channel {
            suite,
            keys,
            counter: 0,
            c_mcv: [0; 16],
            r_mcv: [0; 16],
        })
    }

    /// The session's cipher suite.
    pub const fn suite(&self) -> Suite {
        self.suite
    }

    /// Protected commands accepted so far.
    pub const fn counter(&self) -> u32 {
        self.counter
    }

    fn key<'k>(&self, key: &'k [u8; MAX_KEY]) -> &'k [u8] {
        key.get(..self.suite.key_len()).unwrap_or_default()
    }

    /// Checks a protected command's MAC and decrypts its data where it
    /// lies in `data`: where the plaintext is.
    ///
    /// [`Error::SmMissing`] and [`Error::SmIncorrect`] mean the command
    /// was not the session's; the caller ends the session on them. Nothing
    /// of `data` is changed then but the cryptogram, which is wiped if it
    /// does not decrypt to a padded plaintext.
    pub fn unwrap(&mut self, header: &Header, data: &mut [u8]) -> Result<Range<usize>> {
        let parts = Parts::parse(data)?;
        // The header as MACed: the class without its chaining bit (each
        // part of a chain carries it; the command is one), then ISO/IEC
        // 7816-4 padding to a block.
        let mut head = [0u8; 16];
        head[..5].copy_from_slice(&[header.cla & !0x10, header.ins, header.p1, header.p2, 0x80]);
        let part =
            |r: &Option<Range<usize>>| r.clone().and_then(|r| data.get(r)).unwrap_or_default();
        let mac = cipher::cmac(
            self.suite,
            self.key(&self.keys.mac),
            &[&self.c_mcv, &head, part(&parts.cryptogram), part(&parts.le)],
        )?;
        let sent = data.get(parts.mac.clone()).unwrap_or_default();
        let expected = mac.get(..MAC_LEN).unwrap_or_default();
        if !bool::from(expected.ct_eq(sent)) {
            return Err(Error::SmIncorrect);
        }
        self.c_mcv = mac;
        self.counter = self.counter.checked_add(1).ok_or(Error::SmIncorrect)?;
        if parts.cryptogram.is_none() {
            return Ok(0..0);
        }
        let start = parts.encrypted.start;
        let buf = data.get_mut(parts.encrypted).ok_or(Error::SmIncorrect)?;
        let enc = self.key(&self.keys.enc);
        match cipher::decrypt(self.suite, enc, &counter_block(0, self.counter), buf) {
            Ok(len) => Ok(start..start + len),
            Err(_) => {
                buf.zeroize();
                Err(Error::SmIncorrect)
            }
        }
    }

    /// Wraps an answer in place: `buf[RESERVED..RESERVED + len]` holds its
    /// plaintext data (none for `len` 0) and `status` its status word; on
    /// return `buf[..n]` holds the protected answer, `n` returned. `buf`
    /// must have [`AFTER`] bytes to spare after the plaintext.
    pub fn wrap(&mut self, buf: &mut [u8], len: usize, status: Status) -> Result<usize> {
        let mut at = 0;
        if len > 0 {
            let padded = (len / 16 + 1) * 16;
            let mut head = [0u8; RESERVED];
            let mut w = Writer::new(&mut head);
            w.header(Tag::constant(TAG_CRYPTOGRAM.into()), 1 + padded)?;
            w.raw(&[PADDED])?;
            let h = w.len();
            let plain = RESERVED..RESERVED + len;
            if buf.len() < (h + padded + TRAILER).max(plain.end) {
                return Err(Error::NoSpace);
            }
            buf.copy_within(plain, h);
            let (dst, rest) = buf.split_at_mut_checked(h).ok_or(Error::NoSpace)?;
            dst.copy_from_slice(w.written());
            let enc = self.key(&self.keys.enc);
            let counter = counter_block(0x80, self.counter);
            let data = rest.get_mut(..padded).ok_or(Error::NoSpace)?;
            at = h + cipher::encrypt(self.suite, enc, &counter, data, len)?;
        }
        let [sw1, sw2] = status.to_bytes();
        let mut trailer = [
            TAG_STATUS,
            0x02,
            sw1,
            sw2,
            TAG_MAC,
            MAC_LEN as u8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        let (status_tlv, mac_tlv) = trailer.split_at_mut(4);
        let mac = cipher::cmac(
            self.suite,
            self.key(&self.keys.rmac),
            &[
                &self.r_mcv,
                buf.get(..at).ok_or(Error::NoSpace)?,
                status_tlv,
            ],
        )?;
        self.r_mcv = mac;
        let (_, mac_value) = mac_tlv.split_at_mut(2);
        mac_value.copy_from_slice(mac.get(..MAC_LEN).unwrap_or_default());
        let end = at + TRAILER;
        buf.get_mut(at..end)
            .ok_or(Error::NoSpace)?
            .copy_from_slice(&trailer);
        Ok(end)
    }
}
