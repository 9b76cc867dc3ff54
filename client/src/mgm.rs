//! Management-key ciphers: the host's half of the challenge-response.

use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

use crate::{ClientError, Result};

/// Management key algorithms, with the host-side cipher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MgmAlgorithm {
    /// Three-key 3DES (`03`).
    Tdes,
    /// AES-128 (`08`).
    Aes128,
    /// AES-192 (`0A`).
    Aes192,
    /// AES-256 (`0C`).
    Aes256,
}

impl MgmAlgorithm {
    /// The algorithm byte.
    pub fn byte(self) -> u8 {
        match self {
            MgmAlgorithm::Tdes => 0x03,
            MgmAlgorithm::Aes128 => 0x08,
            MgmAlgorithm::Aes192 => 0x0A,
            MgmAlgorithm::Aes256 => 0x0C,
        }
    }

    pub(crate) fn block(self) -> usize {
        if self == MgmAlgorithm::Tdes { 8 } else { 16 }
    }

    /// Encrypts (or decrypts) one block.
    pub fn cipher(self, key: &[u8], block: &mut [u8], encrypt: bool) -> Result<()> {
        fn run<C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt>(
            key: &[u8],
            block: &mut [u8],
            encrypt: bool,
        ) -> Result<()> {
            let c = C::new_from_slice(key)
                .map_err(|_| ClientError::Malformed("management key length"))?;
            let mut b =
                Array::try_from(&*block).map_err(|_| ClientError::Malformed("block length"))?;
            if encrypt {
                c.encrypt_block(&mut b);
            } else {
                c.decrypt_block(&mut b);
            }
            block.copy_from_slice(&b);
            Ok(())
        }
        match self {
            MgmAlgorithm::Tdes => run::<des::TdesEde3>(key, block, encrypt),
            MgmAlgorithm::Aes128 => run::<aes::Aes128>(key, block, encrypt),
            MgmAlgorithm::Aes192 => run::<aes::Aes192>(key, block, encrypt),
            MgmAlgorithm::Aes256 => run::<aes::Aes256>(key, block, encrypt),
        }
    }
}

/// The factory management key.
pub const DEFAULT_MGM: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];
