//! RSA without a heap: fixed-size `crypto-bigint` integers (two sizes for
//! the four modulus lengths), Montgomery arithmetic and the Chinese
//! remainder theorem.
//!
//! A private key is kept as its five CRT parts (p, q, dP, dQ, qInv), each
//! half the modulus long, big-endian and zero-padded, back to back; the
//! public exponent is always 65537. The private operation:
//!
//! - exponentiates in constant time (`FixedMontyForm::pow_bounded_exp`
//!   walks every bit of the half size, whatever the exponent; reductions
//!   use the constant-time `rem`), so its timing depends on the key's
//!   length alone, not on the key or the input;
//! - works on a blinded input: each CRT half exponentiates `c · r^e` for
//!   a fresh random `r` (one modulus-sized draw, taken modulo each
//!   prime), and unblinds with `r⁻¹`, so that what the halves
//!   exponentiate is unknown to whoever chose `c` (chosen-input power and
//!   cache analysis of the CRT halves). The exponents are not blinded:
//!   `dP + k(p − 1)` would need wider integers than the halves' and a
//!   longer walk, and the exponentiation is constant time already;
//! - checks its result before answering (the Bellcore attack: one faulty
//!   CRT half gives away a prime): each half's e-th power must give the
//!   input back modulo its prime, and the recombined result must be each
//!   half modulo its prime, which together are `m^e = c mod n`, an error
//!   answered instead of a wrong result. All of it on half-sized
//!   integers: no modulus-sized Montgomery form is ever made, which is
//!   most of what RSA-4096 would otherwise need of a card's stack;
//! - keeps every copy of the primes (as odd moduli, as Montgomery
//!   parameters) in wiped containers, so none stays on the stack.
//!
//! Primes come from the card's RNG: a random start from `crypto-primes`,
//! a walk up screened by trial division by the first 1,024 odd primes,
//! then `crypto-primes`' Miller-Rabin base 2 and strong Lucas test (the
//! Baillie-PSW test, with no known counterexample).
//!
//! ## What key generation leaks
//!
//! The primality tests are not constant time, and the prime that is kept
//! goes through them too, not only the rejected candidates. On the prime
//! `p` it keeps, `crypto-primes` 0.7 runs:
//!
//! - Montgomery set-up with `new_params_vartime` (its reduction's steps
//!   depend on `p`), `trailing_zeros_vartime` of `p − 1` and Miller-Rabin's
//!   squaring loop, which stops early: the number `s` of trailing zeros of
//!   `p − 1` (two bits of `p` on average) shows in how long it runs;
//! - the strong Lucas test: Jacobi symbols of `p` computed in variable time
//!   (how many `D` are tried shows the quadratic character of small numbers
//!   modulo `p`), and a ladder over the bits of `(p + 1) / 2^s` that does
//!   extra multiplications for each one bit.
//!
//! Whom that helps: not a relying party or anyone at the reader. The card
//! answers GENERATE once, after all the candidates, so its time mixes every
//! rejected candidate's (thousands of tests for RSA-2048) with the kept
//! prime's; the host simulator and the QEMU firmware leak nothing more
//! than that total. On a real chip, someone holding the card who records
//! one power or electromagnetic trace of the generation can read the Lucas
//! ladder's one bits, that is `p + 1`, from the trace: simple power
//! analysis, one trace, the whole key. A card for hardware must therefore
//! generate RSA keys with a constant-time primality test (Miller-Rabin with
//! random bases on `FixedMontyParams::new` and a fixed number of squarings)
//! or in the chip's crypto engine; the ECC and 25519 keys have no such
//! step. The private operation below is a separate matter: it is constant
//! time and checked.

use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{CheckedAdd, NonZero, Odd, U1024, U2048, U4096, Uint};
use crypto_primes::hazmat::{
    AStarBase, LucasCheck, MillerRabin, SetBits, lucas_test, random_odd_integer,
};
use rand_core::CryptoRng;
use subtle::{ConditionallySelectable, ConstantTimeEq, ConstantTimeLess};
use zeroize::Zeroizing;

use crate::algorithm::RSA_EXPONENT;
use crate::error::{Error, Result};

/// The longest block: an RSA-4096 modulus.
const MAX_BLOCK: usize = 512;

/// The CRT parts of an imported key, each at most half the modulus long.
pub struct Parts<'a> {
    /// The first prime.
    pub p: &'a [u8],
    /// The second prime.
    pub q: &'a [u8],
    /// d mod (p − 1).
    pub dp: &'a [u8],
    /// d mod (q − 1).
    pub dq: &'a [u8],
    /// q⁻¹ mod p.
    pub qinv: &'a [u8],
}

/// Calls `$f::<H, N>(size, …)` with the limb counts of the integers that
/// hold a `$bits`-bit key's halves and its whole; other lengths are
/// [`Error::Unsupported`].
///
/// Two sizes of integer serve the four moduli: 1024 and 2048 bits share
/// 1024-bit halves in 2048-bit wholes, 3072 and 4096 share 2048 and 4096.
/// Every generic function below, and `crypto-primes` and `crypto-bigint`
/// under them, is then compiled twice instead of four times, which saved
/// the firmware a fifth of its flash. RSA-1024 and RSA-3072 pay in speed
/// (their arithmetic runs on wider integers than they need); exponents
/// stay bounded by the key's own half size, so no more bits are walked.
// The `_sized` functions it calls are `#[inline(never)]`, so that a
// command's stack holds the integers of its own size, not the larger of
// the two the match could inline.
macro_rules! by_size {
    ($bits:expr, $f:ident ( $($arg:expr),* )) => {
        match $bits {
            bits @ (1024 | 2048) => $f::<{ U1024::LIMBS }, { U2048::LIMBS }>(Size(bits), $($arg),*),
            bits @ (3072 | 4096) => $f::<{ U2048::LIMBS }, { U4096::LIMBS }>(Size(bits), $($arg),*),
            _ => Err(Error::Unsupported),
        }
    };
}

/// A modulus length in bits (one of the four), and the lengths that follow.
#[derive(Clone, Copy, Debug)]
struct Size(usize);

impl Size {
    /// Bits of each prime.
    const fn half_bits(self) -> u32 {
        (self.0 / 2) as u32
    }

    /// Bytes of each CRT part.
    const fn part(self) -> usize {
        self.0 / 16
    }

    /// Bytes of the modulus (and of an input or output block).
    const fn block(self) -> usize {
        self.0 / 8
    }
}

/// A fresh key of `bits` (1024, 2048, 3072 or 4096): CRT parts into
/// `parts` (`5 · bits / 16` bytes); [`modulus`] gives the public key.
pub fn generate(bits: usize, rng: &mut dyn CryptoRng, parts: &mut [u8]) -> Result<()> {
    by_size!(bits, generate_sized(rng, parts))
}

/// The raw private operation `input^d mod n` on a modulus-sized block,
/// blinded with a fresh `r` from `rng`. Input of the wrong length, or not
/// below the modulus, is [`Error::BadData`]; a result that fails its check
/// is [`Error::Tampered`].
pub fn private(parts: &[u8], input: &[u8], out: &mut [u8], rng: &mut dyn CryptoRng) -> Result<()> {
    by_size!(parts.len() * 16 / 5, private_sized(parts, input, out, rng))
}

/// The modulus `p · q` of a key's CRT parts.
pub fn modulus(parts: &[u8], out: &mut [u8]) -> Result<()> {
    by_size!(parts.len() * 16 / 5, modulus_sized(parts, out))
}

/// Checks imported CRT parts for a `bits`-bit key and writes them in the
/// card's form into `parts`. A key that is not consistent (a modulus of
/// another length, an even prime, exponents or coefficient that do not
/// belong to the primes with e = 65537) is [`Error::BadData`].
pub fn import(bits: usize, key: &Parts<'_>, parts: &mut [u8]) -> Result<()> {
    by_size!(bits, import_sized(key, parts))
}

/// Reads a big-endian integer of at most `Uint<L>`'s width.
fn decode<const L: usize>(bytes: &[u8]) -> Result<Zeroizing<Uint<L>>> {
    let mut padded = Zeroizing::new(Uint::<L>::ZERO.to_be_bytes());
    let width = padded.as_ref().len();
    let start = width.checked_sub(bytes.len()).ok_or(Error::BadData)?;
    padded
        .as_mut()
        .get_mut(start..)
        .ok_or(Error::BadData)?
        .copy_from_slice(bytes);
    Ok(Zeroizing::new(Uint::from_be_slice(padded.as_ref())))
}

/// Writes `value` big-endian, exactly `out.len()` bytes wide; a value that
/// does not fit is [`Error::NoSpace`]. The bytes dropped are checked without
/// branching on them: they belong to secrets.
fn encode<const L: usize>(value: &Uint<L>, out: &mut [u8]) -> Result<()> {
    let bytes = Zeroizing::new(value.to_be_bytes());
    let src = bytes.as_ref();
    let skip = src.len().checked_sub(out.len()).ok_or(Error::NoSpace)?;
    let (dropped, kept) = src.split_at_checked(skip).ok_or(Error::NoSpace)?;
    if dropped.iter().fold(0u8, |acc, b| acc | b) != 0 {
        return Err(Error::NoSpace);
    }
    out.copy_from_slice(kept);
    Ok(())
}

/// A key's CRT parts as integers.
struct Crt<const H: usize> {
    p: Zeroizing<Uint<H>>,
    q: Zeroizing<Uint<H>>,
    dp: Zeroizing<Uint<H>>,
    dq: Zeroizing<Uint<H>>,
    qinv: Zeroizing<Uint<H>>,
}

impl<const H: usize> Crt<H> {
    fn read(size: Size, parts: &[u8]) -> Result<Crt<H>> {
        if parts.len() != 5 * size.part() {
            return Err(Error::Tampered);
        }
        let mut chunks = parts.chunks_exact(size.part());
        let mut next = || decode::<H>(chunks.next().unwrap_or_default());
        Ok(Crt {
            p: next()?,
            q: next()?,
            dp: next()?,
            dq: next()?,
            qinv: next()?,
        })
    }

    fn write(&self, size: Size, parts: &mut [u8]) -> Result<()> {
        if parts.len() != 5 * size.part() {
            return Err(Error::NoSpace);
        }
        let mut chunks = parts.chunks_exact_mut(size.part());
        for value in [&self.p, &self.q, &self.dp, &self.dq, &self.qinv] {
            encode(&**value, chunks.next().ok_or(Error::NoSpace)?)?;
        }
        Ok(())
    }

    /// The exponents and coefficient for primes `p` and `q`, if e is
    /// invertible modulo both p − 1 and q − 1 and q modulo p.
    fn complete(p: Uint<H>, q: Uint<H>) -> Option<Crt<H>> {
        let e = Uint::<H>::from_u32(RSA_EXPONENT);
        let p_odd = Odd::new(p).into_option()?;
        let dp = e
            .invert_mod(&NonZero::new(p.wrapping_sub(&Uint::ONE)).into_option()?)
            .into_option()?;
        let dq = e
            .invert_mod(&NonZero::new(q.wrapping_sub(&Uint::ONE)).into_option()?)
            .into_option()?;
        let qinv = q.invert_odd_mod(&p_odd).into_option()?;
        Some(Crt {
            p: Zeroizing::new(p),
            q: Zeroizing::new(q),
            dp: Zeroizing::new(dp),
            dq: Zeroizing::new(dq),
            qinv: Zeroizing::new(qinv),
        })
    }

    fn modulus<const N: usize>(&self) -> Uint<N> {
        let (lo, hi) = self.p.widening_mul(&*self.q);
        lo.concat_resize(&hi)
    }
}

#[inline(never)]
fn generate_sized<const H: usize, const N: usize>(
    size: Size,
    rng: &mut dyn CryptoRng,
    parts: &mut [u8],
) -> Result<()> {
    let half = size.half_bits();
    loop {
        let p = Zeroizing::new(prime::<H>(rng, half)?);
        let q = Zeroizing::new(prime::<H>(rng, half)?);
        // FIPS 186-5 B.3.3: |p − q| > 2^(half − 100), so that n cannot be
        // factored from its square root.
        let diff = Zeroizing::new(Uint::conditional_select(
            &p.wrapping_sub(&q),
            &q.wrapping_sub(&p),
            p.ct_lt(&*q),
        ));
        if diff.bit_width() <= half - 100 {
            continue;
        }
        let Some(crt) = Crt::complete(*p, *q) else {
            continue;
        };
        // The modulus has exactly the key's bits: both primes have their
        // two top bits set.
        return crt.write(size, parts);
    }
}

/// How many of the smallest odd primes a candidate is tried against
/// before the primality test: a 1024-bit candidate with no factor among
/// them is a prime about one time in 44, against one in 355 for an odd
/// number (Mertens: an eighth of odd numbers have no factor up to 8,167).
const TRIAL_PRIMES: usize = 1024;

/// The first [`TRIAL_PRIMES`] odd primes (3, 5, 7 … 8,167), found by trial
/// division each time a key is made: a few hundred thousand instructions
/// against the billion a key takes, where crypto-primes' sieve keeps a
/// 24 KiB table of reciprocals in flash.
fn small_primes() -> [u16; TRIAL_PRIMES] {
    let mut primes = [0u16; TRIAL_PRIMES];
    let mut found = 0;
    let mut n: u16 = 1;
    while found < TRIAL_PRIMES {
        n = n.saturating_add(2);
        let known = primes.get(..found).unwrap_or_default();
        let prime = known
            .iter()
            .take_while(|&&p| u32::from(p) * u32::from(p) <= u32::from(n))
            .all(|&p| !n.is_multiple_of(p));
        if prime && let Some(slot) = primes.get_mut(found) {
            *slot = n;
            found += 1;
        }
    }
    primes
}

/// A random `bits`-bit prime the key can use, with its two top bits set
/// (so that p · q has exactly twice the bits).
///
/// What `crypto_primes::sieve_and_find` does with its sieve, with the
/// crate's own random start and primality test: from a random odd start,
/// every odd number up, with no factor among the small primes (their
/// residues kept as the walk goes), until one passes; a fresh start if the
/// walk reaches `2^bits`. The first prime up from a start is the same
/// whichever small primes screen the walk, so seeded cards make the keys
/// they always made.
fn prime<const H: usize>(rng: &mut dyn CryptoRng, bits: u32) -> Result<Uint<H>> {
    let width = core::num::NonZeroU32::new(bits).ok_or(Error::Unsupported)?;
    let primes = small_primes();
    loop {
        let start = random_odd_integer::<Uint<H>, _>(rng, width, SetBits::TwoMsb)
            .map_err(|_| Error::Unsupported)?;
        if let Some(found) = walk(start.get(), bits, &primes)? {
            return Ok(found);
        }
    }
}

/// From the odd `start`, up by twos while the number keeps `bits` bits:
/// the first the key can use, or none before the top.
fn walk<const H: usize>(
    start: Uint<H>,
    bits: u32,
    primes: &[u16; TRIAL_PRIMES],
) -> Result<Option<Uint<H>>> {
    let two = Uint::<H>::from_u8(2);
    let mut residues = [0u16; TRIAL_PRIMES];
    let mut candidate = start;
    for (residue, &p) in residues.iter_mut().zip(primes) {
        let divisor = NonZero::new(crypto_bigint::Limb::from_u32(u32::from(p)))
            .into_option()
            .ok_or(Error::Unsupported)?;
        *residue = candidate.rem_limb(divisor).0 as u16;
    }
    while candidate.bit_width_vartime() <= bits {
        if residues.iter().all(|&r| r != 0) && usable(&candidate) {
            return Ok(Some(candidate));
        }
        // A half as wide as its integer (RSA-2048's in 1024 bits) would
        // wrap to a small number past the top.
        let Some(next) = candidate.checked_add(&two).into_option() else {
            return Ok(None);
        };
        candidate = next;
        for (residue, &p) in residues.iter_mut().zip(primes) {
            *residue = ((u32::from(*residue) + 2) % u32::from(p)) as u16;
        }
    }
    Ok(None)
}

/// A prime candidate the key can use: e must be invertible modulo p − 1,
/// and as e is prime that is p mod e ≠ 1; then the Baillie-PSW test.
///
/// That test is `crypto_primes::is_prime` for an odd candidate, written
/// out (the candidates are odd and far above 3): Miller-
/// Rabin to base 2, then the strong Lucas test with A* bases, each in a
/// frame of its own. Inlined together they took one frame of 11 KiB for
/// RSA-2048's primes; apart, the larger is the stack's figure.
fn usable<const H: usize>(candidate: &Uint<H>) -> bool {
    let e = crypto_bigint::NonZero::<crypto_bigint::Limb>::new(crypto_bigint::Limb::from_u32(
        RSA_EXPONENT,
    ));
    let Some(odd) = Odd::new(*candidate).into_option() else {
        return false;
    };
    e.into_option()
        .is_some_and(|e| candidate.rem_limb(e) != crypto_bigint::Limb::ONE)
        && miller_rabin_base_two(&odd)
        && strong_lucas(odd)
}

#[inline(never)]
fn miller_rabin_base_two<const H: usize>(candidate: &Odd<Uint<H>>) -> bool {
    !MillerRabin::new(*candidate).test_base_two().is_composite()
}

#[inline(never)]
fn strong_lucas<const H: usize>(candidate: Odd<Uint<H>>) -> bool {
    !lucas_test(candidate, AStarBase, LucasCheck::Bpsw21).is_composite()
}

#[inline(never)]
fn modulus_sized<const H: usize, const N: usize>(
    size: Size,
    parts: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let crt = Crt::<H>::read(size, parts)?;
    encode(&crt.modulus::<N>(), out)
}

#[inline(never)]
fn import_sized<const H: usize, const N: usize>(
    size: Size,
    key: &Parts<'_>,
    parts: &mut [u8],
) -> Result<()> {
    let p = decode::<H>(key.p)?;
    let q = decode::<H>(key.q)?;
    // The integers may be wider than the key's halves: the halves are held
    // to their length here, and the modulus to its.
    let half = size.half_bits();
    if p.bit_width() > half || q.bit_width() > half {
        return Err(Error::BadData);
    }
    let n: Uint<N> = {
        let (lo, hi) = p.widening_mul(&*q);
        lo.concat_resize(&hi)
    };
    if n.bit_width() as usize != size.0 || *p == *q {
        return Err(Error::BadData);
    }
    let derived = Crt::complete(*p, *q).ok_or(Error::BadData)?;
    let given = [
        decode::<H>(key.dp)?,
        decode::<H>(key.dq)?,
        decode::<H>(key.qinv)?,
    ];
    let wanted = [&derived.dp, &derived.dq, &derived.qinv];
    let same = given
        .iter()
        .zip(wanted)
        .fold(subtle::Choice::from(1), |acc, (g, w)| acc & g.ct_eq(w));
    if !bool::from(same) {
        return Err(Error::BadData);
    }
    derived.write(size, parts)
}

#[inline(never)]
fn private_sized<const H: usize, const N: usize>(
    size: Size,
    parts: &[u8],
    input: &[u8],
    out: &mut [u8],
    rng: &mut dyn CryptoRng,
) -> Result<()> {
    if input.len() != size.block() || out.len() != size.block() {
        return Err(Error::BadData);
    }
    let crt = Crt::<H>::read(size, parts)?;
    let c = decode::<N>(input)?;
    // The input is public (a digest's padding or a ciphertext).
    if c.cmp_vartime(&crt.modulus::<N>()) != core::cmp::Ordering::Less {
        return Err(Error::BadData);
    }
    // One modulus-sized r blinds both halves (its residues are those of
    // r mod n).
    let r = {
        let mut draw = Zeroizing::new([0u8; MAX_BLOCK]);
        let draw = draw.get_mut(..size.block()).ok_or(Error::NoSpace)?;
        rng.fill_bytes(draw);
        decode::<N>(draw)?
    };
    let bits = size.half_bits();
    let m1 = half(&crt.p, &crt.dp, &c, &r, bits)?;
    let m2 = half(&crt.q, &crt.dq, &c, &r, bits)?;
    let m = garner::<H, N>(&crt, &m1, &m2)?;
    encode(&*m, out)
}

/// One CRT half: `c^d mod prime` (d's residue `exponent`), computed on the
/// blinded `c · r^e` and unblinded with `r⁻¹`, then checked: its e-th
/// power must give c back modulo the prime (the Bellcore attack: a faulty
/// half gives away a prime). Everything here is half-sized, so the
/// modulus-sized Montgomery parameters (and the stack a form of them
/// takes, 2.5 KiB apiece for RSA-4096) are never needed. Not inlined: the
/// second half reuses the first's stack.
#[inline(never)]
fn half<const H: usize, const N: usize>(
    prime: &Uint<H>,
    exponent: &Uint<H>,
    c: &Uint<N>,
    r: &Uint<N>,
    bits: u32,
) -> Result<Zeroizing<Uint<H>>> {
    let odd = Zeroizing::new(Odd::new(*prime).into_option().ok_or(Error::Tampered)?);
    let modulus = Zeroizing::new(odd.to_nz().into_option().ok_or(Error::Tampered)?);
    let params = Zeroizing::new(FixedMontyParams::new(*odd));
    let c = Zeroizing::new(c.rem(&modulus));
    let r = Zeroizing::new(FixedMontyForm::new(&r.rem(&modulus), &params));
    // r has no inverse only if it is 0 mod the prime: by a fault.
    let r_inverse = Zeroizing::new(r.invert().into_option().ok_or(Error::Tampered)?);
    // (c · r^e)^d = c^d · r, as e · d = 1 mod (prime − 1). dP < prime <
    // 2^bits: walking `bits` bits of the exponent is walking all of it, a
    // bound that depends on the key's length alone.
    let blinded = Zeroizing::new(FixedMontyForm::new(&c, &params) * public_power(&r));
    let m = Zeroizing::new(blinded.pow_bounded_exp(exponent, bits) * *r_inverse);
    if !bool::from(public_power(&m).retrieve().ct_eq(&*c)) {
        return Err(Error::Tampered);
    }
    Ok(Zeroizing::new(m.retrieve()))
}

/// Garner's recombination, `m = m2 + q · (qInv · (m1 − m2) mod p)`, and
/// its check: m must be m1 modulo p and m2 modulo q (a fault in qInv or in
/// the product gives a result that is right modulo one prime only, which
/// gives that prime away as a faulty half would).
#[inline(never)]
fn garner<const H: usize, const N: usize>(
    crt: &Crt<H>,
    m1: &Uint<H>,
    m2: &Uint<H>,
) -> Result<Zeroizing<Uint<N>>> {
    let p = Zeroizing::new(Odd::new(*crt.p).into_option().ok_or(Error::Tampered)?);
    let p_nz = Zeroizing::new(p.to_nz().into_option().ok_or(Error::Tampered)?);
    let q_nz = Zeroizing::new(NonZero::new(*crt.q).into_option().ok_or(Error::Tampered)?);
    let params = Zeroizing::new(FixedMontyParams::new(*p));
    let m2_mod_p = Zeroizing::new(m2.rem(&p_nz));
    let diff = Zeroizing::new(m1.sub_mod(&m2_mod_p, &p_nz));
    let h = Zeroizing::new(
        (FixedMontyForm::new(&diff, &params) * FixedMontyForm::new(&crt.qinv, &params)).retrieve(),
    );
    let m = Zeroizing::new({
        let (lo, hi) = crt.q.widening_mul(&*h);
        let qh: Uint<N> = lo.concat_resize(&hi);
        qh.wrapping_add(&m2.resize::<N>())
    });
    let agrees = m.rem(&p_nz).ct_eq(m1) & m.rem(&q_nz).ct_eq(m2);
    if !bool::from(agrees) {
        return Err(Error::Tampered);
    }
    Ok(m)
}

/// `base^e` for the public exponent, by square-and-multiply over its 17
/// bits. The steps follow the public exponent alone, whatever the base
/// (a secret here: the blinding factor, a half's result), and each step is
/// constant time; it holds two forms where a general `pow` keeps a table
/// of sixteen.
fn public_power<const N: usize>(base: &FixedMontyForm<N>) -> FixedMontyForm<N> {
    let top = u32::BITS - 1 - RSA_EXPONENT.leading_zeros();
    let mut acc = *base;
    for bit in (0..top).rev() {
        acc = acc.square();
        if (RSA_EXPONENT >> bit) & 1 == 1 {
            acc *= base;
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;

    use super::*;

    #[test]
    fn the_public_power_is_pow() {
        let n = Odd::new(U1024::from_be_hex(concat!(
            "C5A2F0E1D3B4968778695A4B3C2D1E0F00112233445566778899AABBCCDDEEFF",
            "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
            "FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210",
            "8899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF0011223344556677",
        )))
        .unwrap();
        let params = FixedMontyParams::new_vartime(n);
        for seed in [2u32, 3, 0xDEAD_BEEF] {
            let base = FixedMontyForm::new(&U1024::from_u32(seed), &params);
            let e = U1024::from_u32(RSA_EXPONENT);
            assert_eq!(
                public_power(&base).retrieve(),
                base.pow_vartime(&e).retrieve()
            );
        }
    }

    /// The walk screened by trial division finds, from the same draws,
    /// the prime crypto-primes' sieve finds: seeded cards keep their keys.
    #[test]
    fn the_prime_search_finds_what_the_sieve_finds() {
        use crypto_primes::Flavor;
        use crypto_primes::hazmat::SmallFactorsSieveFactory;
        assert_eq!(small_primes()[..5], [3, 5, 7, 11, 13]);
        assert_eq!(small_primes()[TRIAL_PRIMES - 1], 8_167);
        for seed in 0..8 {
            let ours =
                prime::<{ U1024::LIMBS }>(&mut ChaCha20Rng::seed_from_u64(seed), 512).unwrap();
            let factory =
                SmallFactorsSieveFactory::<U1024>::new(Flavor::Any, 512, SetBits::TwoMsb).unwrap();
            let theirs = crypto_primes::sieve_and_find(
                &mut ChaCha20Rng::seed_from_u64(seed),
                factory,
                |_, candidate| usable(candidate),
            )
            .unwrap()
            .unwrap();
            assert_eq!(ours, theirs, "seed {seed}");
            assert_eq!(ours.bit_width_vartime(), 512);
        }
    }

    /// A walk that reaches the top of its integer stops there: it never
    /// wraps round to a small number (a half as wide as its integer).
    #[test]
    fn the_walk_stops_at_the_top_of_the_integer() {
        let primes = small_primes();
        // 2^1024 − 1 is a multiple of 3; no odd number follows it.
        assert_eq!(walk(U1024::MAX, 1024, &primes), Ok(None));
        // 2^1024 − 3: tried, then the walk stops.
        let below = U1024::MAX.wrapping_sub(&U1024::from_u8(2));
        assert!(
            walk(below, 1024, &primes)
                .unwrap()
                .is_none_or(|p| p == below)
        );
        // Past `bits` bits, nothing is tried.
        assert_eq!(walk(U1024::from_u32(1 << 20 | 1), 20, &primes), Ok(None));
    }

    /// The RSA-1024 key of the known-answer file, as CRT parts.
    fn parts() -> ([u8; 320], [u8; 128]) {
        let text = include_str!("../../tests/data/algorithms/rsa.txt");
        let field = |name: &str| -> std::vec::Vec<u8> {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap();
            hex::decode(&line[name.len() + 1..]).unwrap()
        };
        let mut parts = [0u8; 320];
        for (i, name) in ["p", "q", "dp", "dq", "qinv"].iter().enumerate() {
            parts[i * 64..(i + 1) * 64].copy_from_slice(&field(name));
        }
        let mut n = [0u8; 128];
        n.copy_from_slice(&field("n"));
        (parts, n)
    }

    extern crate std;
    use std::format;

    #[test]
    fn a_fault_in_either_crt_half_answers_an_error_not_a_signature() {
        let (good, n) = parts();
        let mut block = [0x33u8; 128];
        block[0] = 0;
        let mut out = [0u8; 128];
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        private(&good, &block, &mut out, &mut rng).unwrap();
        let mut product = [0u8; 128];
        modulus(&good, &mut product).unwrap();
        assert_eq!(product, n);
        // A flipped bit in dP or dQ is what a glitch in one half's
        // exponentiation gives: the result would reveal q or p.
        for offset in [2 * 64 + 40, 3 * 64 + 7, 4 * 64 + 63] {
            let mut faulty = good;
            faulty[offset] ^= 0x10;
            let mut leaked = [0u8; 128];
            assert_eq!(
                private(&faulty, &block, &mut leaked, &mut rng),
                Err(Error::Tampered),
                "byte {offset}"
            );
            assert_eq!(leaked, [0u8; 128], "nothing written on a fault");
        }
    }

    /// The private operation is blinded with the card's RNG: each use
    /// draws a modulus-sized `r`, and however it falls the answer is the
    /// same, `c^d`.
    #[test]
    fn blinding_draws_from_the_rng_and_changes_no_answer() {
        let (good, _) = parts();
        let mut block = [0x5Au8; 128];
        block[0] = 0;
        let mut first = [0u8; 128];
        let mut counted = Counted(ChaCha20Rng::seed_from_u64(2), 0);
        private(&good, &block, &mut first, &mut counted).unwrap();
        assert_eq!(counted.1, 128, "one modulus-sized draw");
        for seed in 3..8 {
            let mut again = [0u8; 128];
            private(
                &good,
                &block,
                &mut again,
                &mut ChaCha20Rng::seed_from_u64(seed),
            )
            .unwrap();
            assert_eq!(again, first);
        }
    }

    /// An RNG that counts the bytes drawn from it.
    struct Counted(ChaCha20Rng, usize);

    impl rand_core::TryRng for Counted {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> core::result::Result<u32, Self::Error> {
            self.1 += 4;
            Ok(rand_core::Rng::next_u32(&mut self.0))
        }
        fn try_next_u64(&mut self) -> core::result::Result<u64, Self::Error> {
            self.1 += 8;
            Ok(rand_core::Rng::next_u64(&mut self.0))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Self::Error> {
            self.1 += dst.len();
            rand_core::Rng::fill_bytes(&mut self.0, dst);
            Ok(())
        }
    }

    impl rand_core::TryCryptoRng for Counted {}
}
