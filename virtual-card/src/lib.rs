//! s9card's cards on the host. A card lives in a card image ([`image`]): a
//! header with the card's identity and device key, then its flash. The
//! simulator boots it in process ([`boot`]: the PIV applet on the card OS,
//! on the image's flash), or converts it to a firmware flash file and its
//! key store and boots the Cortex-M4 firmware under QEMU ([`firmware`]).
//! Both are the same card to a reader.

pub mod firmware;
pub mod image;
pub mod line_noise;
pub mod t1_reader;

use std::path::Path;

pub use applet::Profile;
use applet::{Management, Piv};
use card_os::Card;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use zeroize::Zeroize;

use crate::image::{FileFlash, Header, ImageError};

/// The card the simulator runs: PIV, and on a YubiKey-compatible card the
/// Management application.
pub type SimCard = Card<FileFlash, ChaCha20Rng, (Piv, Option<Management>)>;

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
    let profile = Profile::of(&header).map_err(|e| ImageError::NotAnImage(e.to_string()))?;
    let card = Card::boot(
        flash,
        entropy.rng()?,
        applet::applets(&header, profile),
        applet::atr(profile, header.is_virtual),
    )
    .map_err(|e| ImageError::NotAnImage(format!("flash store cannot be mounted: {e:?}")))?;
    Ok((header, card))
}

/// Puts a booted card behind `interface`, with the ATR a PC/SC reader
/// reports for it there (`3B 8x 80 01 …` for the contactless interface).
pub fn set_interface(card: &mut SimCard, header: &Header, interface: card_os::Interface) {
    let profile = Profile::of(header).unwrap_or_default();
    card.set_interface(
        interface,
        applet::atr_on(profile, header.is_virtual, interface),
    );
}

/// What a new card is made as.
#[derive(Clone, Copy, Debug)]
pub struct Make {
    /// Its serial.
    pub serial: u32,
    /// Marked as a simulated card.
    pub is_virtual: bool,
    /// The card it presents itself as.
    pub profile: Profile,
}

impl Make {
    /// A virtual card of `profile`, as the kit and the CMS make them.
    pub fn virtual_card(serial: u32, profile: Profile) -> Make {
        Make {
            serial,
            is_virtual: true,
            profile,
        }
    }
}

/// Creates an image and brings the card to its factory state in it.
pub fn init(path: &Path, make: Make, entropy: Entropy) -> Result<(), ImageError> {
    let Make {
        serial,
        is_virtual,
        profile,
    } = make;
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
        applet: profile.flags(),
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
