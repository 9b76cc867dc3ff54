//! s9card in process, as `../benches` boot it: the Series 9 profile on
//! 128 KiB of RAM flash in 4 KiB pages, which counts its operations.

use applet::{DeviceKey, Piv};
use card_os::testing::RamFlash;
use card_os::{Card, atr};
use client::{Result, Transport};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::{BenchCard, FlashOps};

type Flash = RamFlash<{ 128 * 1024 }, 4096>;

/// s9card, fresh from the factory.
pub struct S9Card(Card<Flash, ChaCha8Rng, (Piv,)>);

impl S9Card {
    /// A fresh card whose RNG starts from `seed`.
    pub fn new(seed: u64) -> Self {
        let atr = atr::t1(b"S9CARDV").expect("an ATR of 7 historical bytes");
        let mut card = Card::boot(
            Flash::new(),
            ChaCha8Rng::seed_from_u64(seed),
            (Piv::new(DeviceKey::new([7; 32]), true),),
            atr,
        )
        .expect("a fresh card boots");
        card.power_on();
        S9Card(card)
    }
}

impl Transport for S9Card {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        Transport::transmit(&mut self.0, apdu)
    }
}

impl BenchCard for S9Card {
    fn flash_ops(&self) -> FlashOps {
        let flash = self.0.store().flash();
        FlashOps {
            programs: flash.programs(),
            bytes: flash.programmed_bytes(),
            erases: flash.erase_ops(),
        }
    }
}
