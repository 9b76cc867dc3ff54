//! A simulated s9card: the PIV applet on the card OS, on an image's flash.

use std::path::Path;

use card_os::Card;
use piv::{DeviceKey, Piv};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use zeroize::Zeroize;

use crate::image::{self, FileFlash, Header, ImageError};

/// The card the simulator runs.
pub type SimCard = Card<FileFlash, ChaCha20Rng, (Piv,)>;

/// Where a card's randomness comes from: the OS, or a fixed seed for
/// reproducible test runs.
#[derive(Clone, Copy, Debug)]
pub enum Entropy {
    /// `getrandom`, seeding a ChaCha20 generator.
    Os,
    /// A fixed seed (tests only).
    Seed(u64),
}

impl Entropy {
    fn rng(self) -> Result<ChaCha20Rng, ImageError> {
        match self {
            Entropy::Os => {
                let mut seed = [0u8; 32];
                // Without OS randomness a card must not start at all.
                getrandom::fill(&mut seed).map_err(|e| {
                    ImageError::Io(std::io::Error::other(format!("no OS randomness: {e}")))
                })?;
                Ok(ChaCha20Rng::from_seed(seed))
            }
            Entropy::Seed(n) => Ok(ChaCha20Rng::seed_from_u64(n)),
        }
    }
}

/// Boots the card in an image (mounting its store, which recovers from any
/// cut). The card is not yet powered.
pub fn boot(path: &Path, entropy: Entropy, durable: bool) -> Result<(Header, SimCard), ImageError> {
    let (header, flash) = image::open(path, durable)?;
    let applet = Piv::new(DeviceKey::new(header.device_key), header.is_virtual)
        .with_factory_serial(header.serial);
    let card = Card::boot(
        flash,
        entropy.rng()?,
        (applet,),
        piv::atr(header.is_virtual),
    )
    .map_err(|e| ImageError::NotAnImage(format!("flash store cannot be mounted: {e:?}")))?;
    Ok((header, card))
}

/// Creates an image and brings the card to its factory state in it.
pub fn init(
    path: &Path,
    serial: u32,
    is_virtual: bool,
    entropy: Entropy,
) -> Result<(), ImageError> {
    // One draw for both secrets, so a seeded test image's key and seed are
    // as fixed as they were when there was only the key.
    let mut secrets = [0u8; 64];
    entropy.rng_fill(&mut secrets)?;
    let mut device_key = [0u8; 32];
    let mut seed = [0u8; 32];
    device_key.copy_from_slice(&secrets[..32]);
    seed.copy_from_slice(&secrets[32..]);
    secrets.zeroize();
    // The seed is for the firmware, which has no TRNG (card_os::entropy);
    // the simulator draws from the OS.
    let header = Header {
        is_virtual,
        serial,
        pages: image::DEFAULT_PAGES,
        device_key,
        seed: Some(seed),
    };
    seed.zeroize();
    image::create(path, &header)?;
    let (_, mut card) = boot(path, entropy, true)?;
    card.power_on();
    // SELECT makes a blank card write its factory state.
    let rsp = card
        .transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08])
        .map_err(|_| ImageError::NotAnImage("card did not answer".into()))?;
    if rsp.ends_with(&[0x90, 0x00]) {
        Ok(())
    } else {
        Err(ImageError::NotAnImage(format!(
            "factory initialisation failed: {rsp:02X?}"
        )))
    }
}

impl Entropy {
    fn rng_fill(self, out: &mut [u8]) -> Result<(), ImageError> {
        use rand_chacha::rand_core::Rng;
        let mut rng = match self {
            Entropy::Seed(n) => ChaCha20Rng::seed_from_u64(n ^ 0xDE71CE),
            Entropy::Os => self.rng()?,
        };
        rng.fill_bytes(out);
        Ok(())
    }
}
