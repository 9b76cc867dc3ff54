//! ECDSA and ECDH on the NIST curves with RustCrypto's arithmetic, written
//! once for P-384 and (off the Cortex-M4) P-256.

use core::ops::Add;

use ecdsa::EcdsaCurve;
use p256::elliptic_curve::array::ArraySize;
use p256::elliptic_curve::array::typenum::Unsigned;
use p256::elliptic_curve::point::AffineCoordinates;
use p256::elliptic_curve::sec1::ModulusSize;
use p256::elliptic_curve::{
    self, AffinePoint, CurveArithmetic, FieldBytesSize, PublicKey, SecretKey,
};
use sha2::digest::{Digest, block_api::BlockSizeUser};

use crate::error::{Error, Result};

/// A digest as PIV tools send it, fitted to the field as ECDSA prescribes
/// into `fitted` (the field's length): a shorter one is left-padded with
/// zeros, a longer one keeps its leftmost bytes. Empty or longer than any
/// hash (64 bytes) is [`Error::BadData`].
pub fn fit(digest: &[u8], fitted: &mut [u8]) -> Result<()> {
    if digest.is_empty() || digest.len() > 64 {
        return Err(Error::BadData);
    }
    let field = fitted.len();
    let n = digest.len().min(field);
    fitted.fill(0);
    fitted
        .get_mut(field - n..)
        .ok_or(Error::BadData)?
        .copy_from_slice(digest.get(..n).ok_or(Error::BadData)?);
    Ok(())
}

/// ECDSA over a fitted digest ([`fit`]). `D` is the hash RFC 6979 derives
/// the nonce with (the curve's own), so no RNG failure can leak the key.
///
/// Computed twice, and returned only if both agree (the card's fault check,
/// see [`super`]): a signature that comes out two ways is
/// [`Error::Tampered`] (`65 81`).
pub fn sign<C, D>(
    secret: &SecretKey<C>,
    fitted: &elliptic_curve::FieldBytes<C>,
) -> Result<ecdsa::Signature<C>>
where
    C: EcdsaCurve + CurveArithmetic,
    D: Digest + BlockSizeUser,
    FieldBytesSize<C>: ModulusSize,
    ecdsa::der::MaxSize<C>: ArraySize,
    <FieldBytesSize<C> as Add>::Output: Add<ecdsa::der::MaxOverhead> + ArraySize,
{
    let first = sign_once::<C, D>(secret, fitted)?;
    let second = sign_once::<C, D>(secret, fitted)?;
    if !crate::secrets::same(&first.to_bytes(), &second.to_bytes()) {
        return Err(Error::Tampered);
    }
    Ok(first)
}

/// One computation of the signature, from the scalar's bytes as they are
/// now (RFC 6979 derives the nonce from the same scalar inside). Not
/// inlined, so that the two computations share no value the compiler could
/// keep from one for the other.
#[inline(never)]
fn sign_once<C, D>(
    secret: &SecretKey<C>,
    fitted: &elliptic_curve::FieldBytes<C>,
) -> Result<ecdsa::Signature<C>>
where
    C: EcdsaCurve + CurveArithmetic,
    D: Digest + BlockSizeUser,
{
    #[cfg_attr(not(test), allow(unused_mut))]
    let mut bytes = zeroize::Zeroizing::new(secret.to_bytes());
    #[cfg(test)]
    fault::strike(&mut bytes);
    let scalar = SecretKey::<C>::from_bytes(&bytes).map_err(|_| Error::Tampered)?;
    let (signature, _) =
        ecdsa::hazmat::sign_prehashed_rfc6979::<C, D>(&scalar.to_nonzero_scalar(), fitted, &[]);
    Ok(signature)
}

/// Checks a signature against a public point (the cross-check's verifier,
/// [`super::p256_sweep`]).
#[cfg(not(all(feature = "cortex-m4-p256", target_arch = "arm")))]
pub fn verify<C>(public: &[u8], fitted: &[u8], signature: &ecdsa::Signature<C>) -> Result<()>
where
    C: EcdsaCurve + CurveArithmetic,
    AffinePoint<C>: elliptic_curve::sec1::FromSec1Point<C> + elliptic_curve::sec1::ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let point = PublicKey::<C>::from_sec1_bytes(public).map_err(|_| Error::Tampered)?;
    ecdsa::hazmat::verify_prehashed::<C>(&point.to_projective(), fitted, signature)
        .map_err(|_| Error::Tampered)
}

/// ECDH with a peer's uncompressed point (`04 x y`): the shared
/// x-coordinate, into `out` (the field's length). The point is taken from
/// its coordinates and checked to be on the curve: PIV sends no other
/// form, and a decoder for every SEC1 form would bring point decompression
/// into the card for nothing.
pub fn agree<C>(secret: &SecretKey<C>, peer: &[u8], out: &mut [u8]) -> Result<()>
where
    C: CurveArithmetic,
    AffinePoint<C>: AffineCoordinates<FieldRepr = elliptic_curve::FieldBytes<C>>,
{
    let field = C::FieldBytesSize::USIZE;
    let (Some(&0x04), Some(x), Some(y)) =
        (peer.first(), peer.get(1..1 + field), peer.get(1 + field..))
    else {
        return Err(Error::BadData);
    };
    if y.len() != field {
        return Err(Error::BadData);
    }
    let x = elliptic_curve::FieldBytes::<C>::try_from(x).map_err(|_| Error::BadData)?;
    let y = elliptic_curve::FieldBytes::<C>::try_from(y).map_err(|_| Error::BadData)?;
    let point = Option::<AffinePoint<C>>::from(AffinePoint::<C>::from_coordinates(&x, &y))
        .ok_or(Error::BadData)?;
    let peer = PublicKey::<C>::from_affine(point).map_err(|_| Error::BadData)?;
    let shared = elliptic_curve::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    let raw = shared.raw_secret_bytes();
    out.get_mut(..raw.len())
        .ok_or(Error::NoSpace)?
        .copy_from_slice(raw);
    Ok(())
}

/// The uncompressed public point of `secret` (`04 x y`), into `out`: the
/// one form PIV uses, written from the coordinates (SEC1's encoder brings
/// every form, and its errors' formatting, into the card).
pub fn public<C>(secret: &SecretKey<C>, out: &mut [u8]) -> Result<()>
where
    C: CurveArithmetic,
    AffinePoint<C>: AffineCoordinates<FieldRepr = elliptic_curve::FieldBytes<C>>,
{
    let field = C::FieldBytesSize::USIZE;
    let point = secret.public_key();
    let point = point.as_affine();
    let out = out.get_mut(..1 + 2 * field).ok_or(Error::NoSpace)?;
    let (tag, coordinates) = out.split_at_mut(1);
    let (x, y) = coordinates.split_at_mut(field);
    tag.copy_from_slice(&[0x04]);
    x.copy_from_slice(&point.x());
    y.copy_from_slice(&point.y());
    Ok(())
}

/// A fault for the tests to strike one computation of a signature with,
/// as a glitch would: one bit of its scalar flipped.
#[cfg(test)]
pub mod fault {
    extern crate std;

    use core::cell::Cell;

    std::thread_local! {
        /// Computations to let pass before the one struck.
        static ARMED: Cell<Option<u32>> = const { Cell::new(None) };
    }

    /// Strikes the computation after the next `skip`.
    pub fn arm_at(skip: u32) {
        ARMED.with(|a| a.set(Some(skip)));
    }

    pub(super) fn strike(bytes: &mut [u8]) {
        let now = ARMED.with(|a| match a.get() {
            Some(0) => {
                a.set(None);
                true
            }
            Some(n) => {
                a.set(Some(n - 1));
                false
            }
            None => false,
        });
        if now && let Some(b) = bytes.last_mut() {
            *b ^= 0x02;
        }
    }
}
