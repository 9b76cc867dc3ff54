//! ECDSA and ECDH on the NIST curves with RustCrypto's arithmetic, written
//! once for P-384 and (off the Cortex-M4) P-256.

use core::ops::Add;

use ecdsa::EcdsaCurve;
use p256::elliptic_curve::array::ArraySize;
use p256::elliptic_curve::array::typenum::Unsigned;
use p256::elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
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
/// The signature is verified with `public`, the point the key's sealed
/// record holds, before it is returned: a fault during signing (a glitched
/// nonce or scalar) would otherwise hand out a signature from which, with
/// one good signature of the same digest, the key follows. A signature
/// that does not verify is [`Error::Tampered`] (`65 81`).
pub fn sign<C, D>(
    secret: &SecretKey<C>,
    public: &[u8],
    fitted: &elliptic_curve::FieldBytes<C>,
) -> Result<ecdsa::Signature<C>>
where
    C: EcdsaCurve + CurveArithmetic,
    D: Digest + BlockSizeUser,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
    ecdsa::der::MaxSize<C>: ArraySize,
    <FieldBytesSize<C> as Add>::Output: Add<ecdsa::der::MaxOverhead> + ArraySize,
{
    let (signature, _) =
        ecdsa::hazmat::sign_prehashed_rfc6979::<C, D>(&secret.to_nonzero_scalar(), fitted, &[]);
    verify::<C>(public, fitted, &signature)?;
    Ok(signature)
}

/// A signature's DER form (`SEQUENCE { r, s }`, as PIV returns it) into
/// `out`.
pub fn to_der<'o, C>(signature: &ecdsa::Signature<C>, out: &'o mut [u8]) -> Result<&'o [u8]>
where
    C: EcdsaCurve,
    ecdsa::der::MaxSize<C>: ArraySize,
    <FieldBytesSize<C> as Add>::Output: Add<ecdsa::der::MaxOverhead> + ArraySize,
{
    let der = signature.to_der();
    let der = der.as_bytes();
    let dst = out.get_mut(..der.len()).ok_or(Error::NoSpace)?;
    dst.copy_from_slice(der);
    Ok(dst)
}

/// Checks a signature just made against the record's public point. Not
/// inlined: the verification's points are gone before the caller's frame
/// grows, so signing's stack peak is the larger of the two, not their sum.
#[inline(never)]
pub fn verify<C>(public: &[u8], fitted: &[u8], signature: &ecdsa::Signature<C>) -> Result<()>
where
    C: EcdsaCurve + CurveArithmetic,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let point = PublicKey::<C>::from_sec1_bytes(public).map_err(|_| Error::Tampered)?;
    ecdsa::hazmat::verify_prehashed::<C>(&point.to_projective(), fitted, signature)
        .map_err(|_| Error::Tampered)
}

/// ECDH with a peer's uncompressed point: the shared x-coordinate, into
/// `out` (the field's length).
pub fn agree<C>(secret: &SecretKey<C>, peer: &[u8], out: &mut [u8]) -> Result<()>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    if peer.len() != 1 + 2 * C::FieldBytesSize::USIZE {
        return Err(Error::BadData);
    }
    let peer = PublicKey::<C>::from_sec1_bytes(peer).map_err(|_| Error::BadData)?;
    let shared = elliptic_curve::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    let raw = shared.raw_secret_bytes();
    out.get_mut(..raw.len())
        .ok_or(Error::NoSpace)?
        .copy_from_slice(raw);
    Ok(())
}

/// The uncompressed public point of `secret`, into `out`.
pub fn public<C>(secret: &SecretKey<C>, out: &mut [u8]) -> Result<()>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let point = secret.public_key().to_sec1_point(false);
    let bytes = point.as_bytes();
    out.get_mut(..bytes.len())
        .ok_or(Error::NoSpace)?
        .copy_from_slice(bytes);
    Ok(())
}
