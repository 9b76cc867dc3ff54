//! The Answer To Reset.

use heapless::Vec;

/// An ATR is at most 33 bytes (ISO 7816-3 8.2).
pub type Atr = Vec<u8, 33>;

/// Interface bytes for T=1 with an information field of 254 bytes:
/// `T0 TD1=81 TD2=31 TA3=FE TB3=45`. The card announces T=1 only, and not in
/// the `3B 8x 80 01` form that readers and middleware take for contactless.
const T1_INTERFACE: [u8; 4] = [0x81, 0x31, 0xFE, 0x45];

/// The interface bytes USB tokens (YubiKeys among them) present: the
/// global `TA1=13 TB1=00 TC1=00` (Fi 372, Di 4, no extra guard time), then
/// T=1 as above with `TB3=15`. Tools tell a USB token from a contactless
/// card by T0's high nibble, which these make `F`.
const T1_USB_INTERFACE: [u8; 7] = [0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15];

/// Builds a valid T=1 ATR carrying up to 15 historical bytes, with the check
/// byte TCK (the XOR of every byte after TS) that T=1 requires.
pub fn t1(historical: &[u8]) -> Option<Atr> {
    build(0x80, &T1_INTERFACE, historical)
}

/// The same in the form of a USB token's ATR ([`T1_USB_INTERFACE`]).
pub fn t1_usb(historical: &[u8]) -> Option<Atr> {
    build(0xF0, &T1_USB_INTERFACE, historical)
}

/// The ATR a PC/SC reader makes for an ISO/IEC 14443-4 (contactless)
/// card from its historical bytes (PC/SC Part 3, §3.1.3.2.3): `3B 8K 80
/// 01`, the historical bytes, TCK. Middleware tells a contactless card by
/// it (OpenSC's PIV driver then keeps to what the contactless interface
/// allows, and opens the virtual contact interface).
pub fn contactless(historical: &[u8]) -> Option<Atr> {
    build(0x80, &[0x80, 0x01], historical)
}

/// `3B T0 interface historical TCK`, T0 being `presence | K`.
fn build(presence: u8, interface: &[u8], historical: &[u8]) -> Option<Atr> {
    if historical.len() > 15 {
        return None;
    }
    let mut atr = Atr::new();
    // TS = 3B (direct convention); T0: which interface bytes follow, and K.
    atr.push(0x3B).ok()?;
    atr.push(presence | historical.len() as u8).ok()?;
    atr.extend_from_slice(interface).ok()?;
    atr.extend_from_slice(historical).ok()?;
    let tck = atr.iter().skip(1).fold(0u8, |x, b| x ^ b);
    atr.push(tck).ok()?;
    Some(atr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usb_form_is_a_yubikey_5_atr_for_its_historical_bytes() {
        let historical = b"\x80\x73\xC0\x21\xC0\x57YubiKey";
        let atr = t1_usb(historical).unwrap();
        assert_eq!(
            atr.as_slice(),
            b"\x3B\xFD\x13\x00\x00\x81\x31\xFE\x15\x80\x73\xC0\x21\xC0\x57YubiKey\x40"
        );
        assert_eq!(t1(historical).unwrap()[1], 0x8D);
        assert!(t1_usb(&[0; 16]).is_none());
    }

    /// A YubiKey 5 NFC's ATR in a contactless reader, as pcscd reports it.
    #[test]
    fn contactless_form_is_what_a_reader_makes_of_an_ats() {
        let historical = b"\x80\x73\xC0\x21\xC0\x57YubiKey";
        let atr = contactless(historical).unwrap();
        assert_eq!(
            atr.as_slice(),
            b"\x3B\x8D\x80\x01\x80\x73\xC0\x21\xC0\x57YubiKey\xF9"
        );
        assert!(contactless(&[0; 16]).is_none());
    }
}
