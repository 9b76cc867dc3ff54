//! Card secrets derived from one master secret, so the CMS stores none per
//! card and nobody ever sees a PUK.
//!
//! - PUK: the first 8 bytes of HMAC-SHA256(master, `"s9card/puk/v1"` ‖
//!   serial as 4 bytes big-endian), read as a big-endian integer, modulo
//!   10⁸, written as 8 digits.
//! - Management key: HMAC-SHA256(master, `"s9card/management-key/v1"` ‖
//!   serial), the 32 bytes used as an AES-256 key.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};

use crate::{CmsError, Result};
use sha2::Sha256;

/// The master secret. Wiped on drop (volatile writes, which the optimiser
/// cannot drop as it may a loop of stores to memory about to be freed).
#[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct MasterSecret([u8; 32]);

impl MasterSecret {
    /// A master secret from its bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        MasterSecret(bytes)
    }

    /// Reads the master secret file, creating it (mode 0600, 32 random
    /// bytes) if there is none.
    pub fn load_or_create(path: &Path) -> Result<MasterSecret> {
        match std::fs::read(path) {
            Ok(bytes) => {
                // The file's bytes are the secret: wiped once copied.
                let bytes = zeroize::Zeroizing::new(bytes);
                let bytes: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| CmsError::NotAMasterSecret(path.to_path_buf()))?;
                Ok(MasterSecret(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(CmsError::Random)?;
                private_files::write_new(path, &bytes).map_err(CmsError::file(path))?;
                Ok(MasterSecret(bytes))
            }
            Err(e) => Err(CmsError::file(path)(e)),
        }
    }

    fn mac(&self, label: &[u8], serial: u32) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label);
        mac.update(&serial.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The card's PUK: 8 digits.
    pub fn puk(&self, serial: u32) -> String {
        let mac = self.mac(b"s9card/puk/v1", serial);
        let mut first = [0u8; 8];
        first.copy_from_slice(&mac[..8]);
        format!("{:08}", u64::from_be_bytes(first) % 100_000_000)
    }

    /// The digest a self-service security code is stored as.
    pub fn code_digest(&self, serial: u32, code: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"s9card/code/v1");
        mac.update(&serial.to_be_bytes());
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The card's AES-256 management key.
    pub fn management_key(&self, serial: u32) -> [u8; 32] {
        self.mac(b"s9card/management-key/v1", serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_per_card() {
        let m = MasterSecret::new([7; 32]);
        let (a, b) = (m.puk(912_345_678), m.puk(912_345_679));
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(a, b);
        assert_eq!(a, m.puk(912_345_678));
        assert_ne!(m.management_key(912_345_678), m.management_key(912_345_679));
        assert_ne!(MasterSecret::new([8; 32]).puk(912_345_678), a);
    }

    #[test]
    fn the_file_is_created_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = MasterSecret::load_or_create(&path).unwrap().puk(1);
        assert_eq!(MasterSecret::load_or_create(&path).unwrap().puk(1), first);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
