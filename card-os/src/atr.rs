//! The Answer To Reset.

use heapless::Vec;

/// An ATR is at most 33 bytes (ISO 7816-3 8.2).
pub type Atr = Vec<u8, 33>;

/// Interface bytes for T=1 with an information field of 254 bytes:
/// `T0 TD1=81 TD2=31 TA3=FE TB3=45`. The card announces T=1 only, and not in
/// the `3B 8x 80 01` form that readers and middleware take for contactless.
const T1_INTERFACE: [u8; 4] = [0x81, 0x31, 0xFE, 0x45];

/// Builds a valid T=1 ATR carrying up to 15 historical bytes, with the check
/// byte TCK (the XOR of every byte after TS) that T=1 requires.
pub fn t1(historical: &[u8]) -> Option<Atr> {
    if historical.len() > 15 {
        return None;
    }
    let mut atr = Atr::new();
    // TS = 3B (direct convention); T0: TD1 follows, K historical bytes.
    atr.push(0x3B).ok()?;
    atr.push(0x80 | historical.len() as u8).ok()?;
    atr.extend_from_slice(&T1_INTERFACE).ok()?;
    atr.extend_from_slice(historical).ok()?;
    let tck = atr.iter().skip(1).fold(0u8, |x, b| x ^ b);
    atr.push(tck).ok()?;
    Some(atr)
}
