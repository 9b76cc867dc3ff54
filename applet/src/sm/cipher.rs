//! The AES operations of secure messaging, for either suite's key length:
//! one block, CMAC over parts (SP 800-38B), and CBC with ISO/IEC 7816-4
//! padding (`80 00 …`, one to sixteen bytes) in place (SP 800-38A).
//!
//! CBC and CMAC are written here over one AES handle rather than taken
//! from RustCrypto's `cbc` and `cmac`: those are generic over the cipher,
//! so a card with both suites carried each twice, and their parallel-block
//! machinery with it: 5 KB of flash, on a card whose ceiling is 128 KiB.
//! The modes are a few lines each; SP 800-38A's and 800-38B's examples and
//! the OpenSSL-made session vectors check them.
//!
//! The key schedules live on the stack for one operation and are wiped as
//! they drop (`aes`'s `zeroize`); the session keeps the raw keys only, a
//! few dozen bytes of RAM instead of three expanded schedules.

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes256};
use zeroize::Zeroizing;

use super::Suite;
use crate::error::{Error, Result};

/// One AES block.
pub type Block = [u8; 16];

/// AES under a suite's key, a block at a time.
enum Aes {
    A128(Aes128),
    A256(Aes256),
}

impl Aes {
    fn new(suite: Suite, key: &[u8]) -> Result<Aes> {
        Ok(match suite {
            Suite::Cs2 => Aes::A128(Aes128::new_from_slice(key).map_err(|_| Error::BadData)?),
            Suite::Cs7 => Aes::A256(Aes256::new_from_slice(key).map_err(|_| Error::BadData)?),
        })
    }

    fn encrypt(&self, block: &mut Block) {
        let b: &mut aes::Block = block.into();
        match self {
            Aes::A128(c) => c.encrypt_block(b),
            Aes::A256(c) => c.encrypt_block(b),
        }
    }

    fn decrypt(&self, block: &mut Block) {
        let b: &mut aes::Block = block.into();
        match self {
            Aes::A128(c) => c.decrypt_block(b),
            Aes::A256(c) => c.decrypt_block(b),
        }
    }
}

fn xor(into: &mut Block, with: &Block) {
    for (a, b) in into.iter_mut().zip(with) {
        *a ^= b;
    }
}

/// Doubling in GF(2^128), CMAC's subkey step.
fn double(block: &Block) -> Block {
    let mut out = [0u8; 16];
    let mut carry = 0;
    for (o, &b) in out.iter_mut().zip(block).rev() {
        *o = (b << 1) | carry;
        carry = b >> 7;
    }
    // Branch-free: 0x87 if the top bit was set.
    out[15] ^= 0x87 & 0u8.wrapping_sub(carry);
    out
}

/// AES-CMAC of `parts` concatenated, under `key`.
pub fn cmac(suite: Suite, key: &[u8], parts: &[&[u8]]) -> Result<Block> {
    let aes = Aes::new(suite, key)?;
    let mut k1 = Zeroizing::new([0u8; 16]);
    aes.encrypt(&mut k1);
    *k1 = double(&k1);
    let k2 = Zeroizing::new(double(&k1));
    // The chaining value, and the block being filled; a full block is
    // enciphered only once more input follows, since the last one is
    // treated apart.
    let mut x = [0u8; 16];
    let mut last = Zeroizing::new([0u8; 16]);
    let mut n = 0;
    for &byte in parts.iter().flat_map(|p| p.iter()) {
        if n == 16 {
            xor(&mut x, &last);
            aes.encrypt(&mut x);
            n = 0;
        }
        if let Some(slot) = last.get_mut(n) {
            *slot = byte;
        }
        n += 1;
    }
    if n == 16 {
        xor(&mut last, &k1);
    } else {
        if let Some(tail) = last.get_mut(n..) {
            tail.fill(0);
        }
        if let Some(slot) = last.get_mut(n) {
            *slot = 0x80;
        }
        xor(&mut last, &k2);
    }
    xor(&mut x, &last);
    aes.encrypt(&mut x);
    Ok(x)
}

/// Pads `buf[..len]` and encrypts it in place with AES-CBC, the IV being
/// `counter` enciphered under the same key (one key schedule for both);
/// the ciphertext's length (the next multiple of 16 above `len`).
pub fn encrypt(
    suite: Suite,
    key: &[u8],
    counter: &Block,
    buf: &mut [u8],
    len: usize,
) -> Result<usize> {
    let padded = (len / 16 + 1) * 16;
    let buf = buf.get_mut(..padded).ok_or(Error::NoSpace)?;
    let (_, padding) = buf.split_at_mut(len);
    padding.fill(0);
    if let Some(first) = padding.first_mut() {
        *first = 0x80;
    }
    let aes = Aes::new(suite, key)?;
    let mut chain = *counter;
    aes.encrypt(&mut chain);
    let (blocks, _) = buf.as_chunks_mut::<16>();
    for block in blocks {
        xor(block, &chain);
        aes.encrypt(block);
        chain = *block;
    }
    Ok(padded)
}

/// Decrypts `buf` (whole blocks) in place with AES-CBC, the IV being
/// `counter` enciphered, and takes the padding off: the plaintext's
/// length. Wrong padding is
/// [`Error::BadData`]; the MAC over the cryptogram was checked first, so
/// this tells nothing to anyone who could not already compute the MAC.
pub fn decrypt(suite: Suite, key: &[u8], counter: &Block, buf: &mut [u8]) -> Result<usize> {
    let (blocks, rest) = buf.as_chunks_mut::<16>();
    if blocks.is_empty() || !rest.is_empty() {
        return Err(Error::BadData);
    }
    let aes = Aes::new(suite, key)?;
    let mut chain = *counter;
    aes.encrypt(&mut chain);
    for block in blocks {
        let sent = *block;
        aes.decrypt(block);
        xor(block, &chain);
        chain = sent;
    }
    // `80` then only zeros, within the last block.
    let tail = buf.len().saturating_sub(16);
    let zeros = buf.iter().rev().take_while(|&&b| b == 0).count();
    let mark = buf.len().checked_sub(zeros + 1).ok_or(Error::BadData)?;
    if mark < tail || buf.get(mark) != Some(&0x80) {
        return Err(Error::BadData);
    }
    Ok(mark)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const M: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                     30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

    /// SP 800-38B Appendix D.1 (AES-128) and D.3 (AES-256), given in
    /// parts of every size so the block boundary falls everywhere.
    #[test]
    fn cmac_matches_sp_800_38b() {
        let k128 = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let k256 = hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        let m = hex(M);
        let cases = [
            (Suite::Cs2, &k128, 0, "bb1d6929e95937287fa37d129b756746"),
            (Suite::Cs2, &k128, 16, "070a16b46b4d4144f79bdd9dd04a287c"),
            (Suite::Cs2, &k128, 40, "dfa66747de9ae63030ca32611497c827"),
            (Suite::Cs2, &k128, 64, "51f0bebf7e3b9d92fc49741779363cfe"),
            (Suite::Cs7, &k256, 0, "028962f61b7bf89efc6b551f4667d983"),
            (Suite::Cs7, &k256, 16, "28a7023f452e8f82bd4bf28d8c37c35c"),
            (Suite::Cs7, &k256, 40, "aaf3d8f1de5640c232f5b169b9c911e6"),
            (Suite::Cs7, &k256, 64, "e1992190549f6ed5696a2c056c315410"),
        ];
        for (suite, key, len, expected) in cases {
            let msg = &m[..len];
            assert_eq!(
                cmac(suite, key, &[msg]).unwrap().to_vec(),
                hex(expected),
                "{len}"
            );
            for cut in 0..=len {
                let (a, b) = msg.split_at(cut);
                assert_eq!(
                    cmac(suite, key, &[a, &[], b]).unwrap().to_vec(),
                    hex(expected)
                );
            }
        }
    }

    /// The counter block whose encipherment under `key` is `iv`.
    fn counter_for(suite: Suite, key: &[u8], iv: &Block) -> Block {
        let mut b = *iv;
        Aes::new(suite, key).unwrap().decrypt(&mut b);
        b
    }

    /// SP 800-38A F.2.1 and F.2.5 (CBC-AES128 and CBC-AES256), then the
    /// padding this module adds: a whole block of it after whole blocks.
    #[test]
    fn cbc_matches_sp_800_38a() {
        let iv: Block = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let cases = [
            (
                Suite::Cs2,
                hex("2b7e151628aed2a6abf7158809cf4f3c"),
                "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
                 73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7",
            ),
            (
                Suite::Cs7,
                hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"),
                "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
                 39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
            ),
        ];
        for (suite, key, expected) in cases {
            let counter = counter_for(suite, &key, &iv);
            let mut buf = hex(M);
            buf.resize(80, 0xEE);
            let n = encrypt(suite, &key, &counter, &mut buf, 64).unwrap();
            assert_eq!(n, 80);
            assert_eq!(buf[..64].to_vec(), hex(expected));
            assert_eq!(decrypt(suite, &key, &counter, &mut buf).unwrap(), 64);
            assert_eq!(buf[..64].to_vec(), hex(M));
        }
    }

    #[test]
    fn padding_is_one_to_sixteen_bytes_and_checked() {
        let key = [7u8; 16];
        let iv = [9u8; 16];
        for len in 0..40 {
            let mut buf = vec![0xA5; 64];
            let n = encrypt(Suite::Cs2, &key, &iv, &mut buf, len).unwrap();
            assert_eq!(n, (len / 16 + 1) * 16);
            assert_eq!(decrypt(Suite::Cs2, &key, &iv, &mut buf[..n]).unwrap(), len);
        }
        // A block of zeros, or padding that starts before the last block,
        // is refused.
        let mut plain = [0u8; 32];
        plain[15] = 0x80;
        let mut buf = plain;
        let (blocks, _) = buf.as_chunks_mut::<16>();
        let aes = Aes::new(Suite::Cs2, &key).unwrap();
        let mut chain = iv;
        aes.encrypt(&mut chain);
        for b in blocks {
            xor(b, &chain);
            aes.encrypt(b);
            chain = *b;
        }
        assert_eq!(
            decrypt(Suite::Cs2, &key, &iv, &mut buf),
            Err(Error::BadData)
        );
        assert_eq!(
            decrypt(Suite::Cs2, &key, &iv, &mut [0u8; 15]),
            Err(Error::BadData)
        );
        assert_eq!(decrypt(Suite::Cs2, &key, &iv, &mut []), Err(Error::BadData));
    }
}
