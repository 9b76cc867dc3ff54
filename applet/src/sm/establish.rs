//! The key establishment protocol, the card's steps (SP 800-73-4 Part 2
//! §4.1): one-pass ECC CDH with the card's static key `04`, the
//! single-step KDF of SP 800-56A (§5.8.1) over the shared secret and the
//! parties' identities, and unilateral key confirmation by the card
//! (`KC_1_V`).

use sha2::{Digest, Sha256, Sha384};
use zeroize::Zeroizing;

use super::cipher::{self, Block};
use super::{CRYPTOGRAM_LEN, Channel, MAX_KEY, Suite};
use crate::error::{Error, Result};

/// GENERAL AUTHENTICATE's P2 for key establishment: the SM key.
pub const ESTABLISH_P2: u8 = 0x04;
/// The card's control byte: no persistent binding (the only mode this card
/// offers, and the one a client that asks for none expects).
pub const CB_ICC: u8 = 0x00;
/// The longest OtherInfo (CS7's).
pub const MAX_OTHER_INFO: usize = 69;
/// Four keys of the longest length.
const MAX_KEYING: usize = 4 * MAX_KEY;

/// A client's request: `CB_H || ID_sH || Q_eH` (the `81` of the dynamic
/// authentication template).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Establishment<'a> {
    /// CB_H: the client's control byte.
    pub control: u8,
    /// ID_sH: the client's 8-byte identifier.
    pub host_id: &'a [u8; 8],
    /// Q_eH: the client's ephemeral public key, an uncompressed point.
    pub ephemeral: &'a [u8],
}

impl<'a> Establishment<'a> {
    /// Parses the request for `suite`. A control byte asking for
    /// persistent binding (its high nibble) is refused: this card has
    /// none, and a client that needs it must not go on as if bound.
    pub fn parse(suite: Suite, value: &'a [u8]) -> Result<Establishment<'a>> {
        let (&control, rest) = value.split_first().ok_or(Error::BadData)?;
        let (host_id, ephemeral) = rest.split_first_chunk::<8>().ok_or(Error::BadData)?;
        if control & 0xF0 != 0 || ephemeral.len() != suite.point_len() {
            return Err(Error::BadData);
        }
        if ephemeral.first() != Some(&0x04) {
            return Err(Error::BadData);
        }
        Ok(Establishment {
            control,
            host_id,
            ephemeral,
        })
    }

    /// Q_eH without its `04`: `X || Y`, each as long as the field.
    fn point(&self) -> &'a [u8] {
        self.ephemeral.get(1..).unwrap_or_default()
    }
}

/// The KDF's OtherInfo: `04 AlgID`, then each of ID_sH, CB_H, T16(Q_eH),
/// ID_sICC, N_ICC and CB_ICC after its length byte.
pub fn other_info<'o>(
    suite: Suite,
    request: &Establishment<'_>,
    card_id: &[u8; 8],
    nonce: &[u8],
    out: &'o mut [u8; MAX_OTHER_INFO],
) -> Result<&'o [u8]> {
    let algorithm_id = match suite {
        Suite::Cs2 => 0x09,
        Suite::Cs7 => 0x0D,
    };
    let t16 = request.point().get(..16).ok_or(Error::BadData)?;
    let fields: [&[u8]; 7] = [
        &[algorithm_id; 4],
        request.host_id,
        &[request.control],
        t16,
        card_id,
        nonce,
        &[super::CB_ICC],
    ];
    let mut at = 0;
    for field in fields {
        let len = u8::try_from(field.len()).map_err(|_| Error::BadData)?;
        let dst = out
            .get_mut(at..at + 1 + field.len())
            .ok_or(Error::BadData)?;
        let (head, value) = dst.split_at_mut(1);
        head.copy_from_slice(&[len]);
        value.copy_from_slice(field);
        at += 1 + field.len();
    }
    Ok(out.get(..at).unwrap_or_default())
}

/// The suite's hash (SHA-256 for CS2, SHA-384 for CS7) of `parts`
/// concatenated, into the start of `out`: its length. One place for
/// both, out of line, so that the card carries each hash's finishing code
/// once.
#[inline(never)]
pub fn hash(suite: Suite, parts: &[&[u8]], out: &mut [u8]) -> Result<usize> {
    fn run<D: Digest>(parts: &[&[u8]], out: &mut [u8]) -> Result<usize> {
        let mut d = D::new();
        for part in parts {
            d.update(part);
        }
        let digest = d.finalize();
        let n = digest.len();
        out.get_mut(..n)
            .ok_or(Error::BadData)?
            .copy_from_slice(&digest);
        Ok(n)
    }
    match suite {
        Suite::Cs2 => run::<Sha256>(parts, out),
        Suite::Cs7 => run::<Sha384>(parts, out),
    }
}

/// The single-step KDF: `H(counter || Z || OtherInfo)` for counters 1,
/// 2, … until `out` is full (SHA-256 for CS2, SHA-384 for CS7).
pub fn kdf(suite: Suite, z: &[u8], other: &[u8], out: &mut [u8]) -> Result<()> {
    let mut block = Zeroizing::new([0u8; 48]);
    let hash_len = match suite {
        Suite::Cs2 => 32,
        Suite::Cs7 => 48,
    };
    for (counter, chunk) in (1u32..).zip(out.chunks_mut(hash_len)) {
        let n = hash(suite, &[&counter.to_be_bytes(), z, other], &mut *block)?;
        chunk.copy_from_slice(block.get(..chunk.len().min(n)).ok_or(Error::BadData)?);
    }
    Ok(())
}

/// The card's half of a key establishment, given the ECDH secret `z` of
/// its key `04` and the client's ephemeral key, its own identifier
/// ID_sICC (the first 8 bytes of its CVC's SHA-256) and a fresh nonce:
/// the session, and the key confirmation cryptogram AuthCryptogram_ICC
/// to send. SK_CFRM is used here and wiped.
pub fn establish(
    suite: Suite,
    request: &Establishment<'_>,
    z: &[u8],
    card_id: &[u8; 8],
    nonce: &[u8],
) -> Result<(Channel, Block)> {
    if nonce.len() != suite.nonce_len() {
        return Err(Error::BadData);
    }
    let mut info = [0u8; MAX_OTHER_INFO];
    let info = other_info(suite, request, card_id, nonce, &mut info)?;
    let n = suite.key_len();
    let mut keying = Zeroizing::new([0u8; MAX_KEYING]);
    let keying = keying.get_mut(..4 * n).ok_or(Error::BadData)?;
    kdf(suite, z, info, keying)?;
    let (cfrm, rest) = keying.split_at(n);
    let (mac, rest) = rest.split_at(n);
    let (enc, rmac) = rest.split_at(n);
    let cryptogram = cipher::cmac(
        suite,
        cfrm,
        &[b"KC_1_V", card_id, request.host_id, request.point()],
    )?;
    let channel = Channel::new(suite, mac, enc, rmac)?;
    const _: () = assert!(CRYPTOGRAM_LEN == 16);
    Ok((channel, cryptogram))
}
