//! Faults on a card's I/O line, on a seeded schedule: what the reader model
//! between the simulator and the firmware card injects
//! (`s9card serve --firmware --line-noise RATE --seed N`), and what the
//! T=1 tests put between a reader and a card.
//!
//! Each character is hit with probability `rate`, in one of three ways
//! chosen evenly: **damaged** (one bit flipped, which the receiving UART's
//! parity check reports), **dropped** (the character never arrives: the
//! receiver sees a block cut short, or on its first character no block at
//! all) or **delayed** (it arrives, late, within the character waiting
//! time). T=1 must recover every damaged and dropped block and execute
//! every command exactly once.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// What the line does to one character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    /// It arrives as sent.
    Clean,
    /// It arrives with bit `0..8` flipped and a parity error.
    Damaged(u8),
    /// It never arrives.
    Dropped,
    /// It arrives late.
    Delayed,
}

/// How much went wrong, for the fault figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Characters that crossed the line.
    pub characters: u64,
    /// Characters damaged.
    pub damaged: u64,
    /// Characters dropped.
    pub dropped: u64,
    /// Characters delayed.
    pub delayed: u64,
}

impl Faults {
    /// Characters damaged or dropped: what T=1 had to recover.
    pub fn corrupted(&self) -> u64 {
        self.damaged + self.dropped
    }
}

/// A seeded schedule of faults.
#[derive(Clone, Debug)]
pub struct LineNoise {
    rng: ChaCha8Rng,
    /// Probability per character, as a fraction of `u32::MAX`.
    threshold: u32,
    /// What it did so far.
    pub faults: Faults,
}

impl LineNoise {
    /// Faults at `rate` per character (0 to 1), from `seed`.
    pub fn new(rate: f64, seed: u64) -> LineNoise {
        LineNoise {
            rng: ChaCha8Rng::seed_from_u64(seed),
            threshold: (rate.clamp(0.0, 1.0) * f64::from(u32::MAX)) as u32,
            faults: Faults::default(),
        }
    }

    /// What happens to the next character.
    pub fn hit(&mut self) -> Hit {
        self.faults.characters += 1;
        if self.threshold == 0 || self.rng.next_u32() >= self.threshold {
            return Hit::Clean;
        }
        match self.rng.next_u32() % 3 {
            0 => {
                self.faults.damaged += 1;
                Hit::Damaged((self.rng.next_u32() % 8) as u8)
            }
            1 => {
                self.faults.dropped += 1;
                Hit::Dropped
            }
            _ => {
                self.faults.delayed += 1;
                Hit::Delayed
            }
        }
    }

    /// A block as a receiver whose UART checks parity gets it: `None` if
    /// its first character was lost (no block began), else its characters
    /// with a damaged one's block made to fail its LRC (the receiver knows
    /// from the parity error, even where two flips would cancel in the
    /// LRC) and dropped ones missing (the block is short of its LEN).
    /// Delays do not change what arrives.
    pub fn receive(&mut self, block: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(block.len());
        let mut damaged = false;
        for (n, &b) in block.iter().enumerate() {
            match self.hit() {
                Hit::Clean | Hit::Delayed => out.push(b),
                Hit::Damaged(_) | Hit::Dropped if n == 0 => {
                    // The rest of the block is consumed from the schedule
                    // all the same, so that one fault does not shift the
                    // ones after it.
                    for _ in 1..block.len() {
                        self.hit();
                    }
                    return None;
                }
                Hit::Damaged(bit) => {
                    out.push(b ^ (1 << bit));
                    damaged = true;
                }
                Hit::Dropped => {}
            }
        }
        if damaged
            && let Some((check, body)) = out.split_last_mut()
            && body.iter().fold(0u8, |x, b| x ^ b) == *check
        {
            *check ^= 0xFF;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_repeats_for_a_seed_and_hits_at_its_rate() {
        let hits = |seed| {
            let mut noise = LineNoise::new(0.01, seed);
            let hits: Vec<Hit> = (0..100_000).map(|_| noise.hit()).collect();
            (hits, noise.faults)
        };
        let (a, faults) = hits(3);
        assert_eq!(a, hits(3).0);
        assert_ne!(a, hits(4).0);
        let total = faults.damaged + faults.dropped + faults.delayed;
        assert!((800..1200).contains(&total), "{faults:?}");
        assert!(faults.damaged > 200 && faults.dropped > 200 && faults.delayed > 200);
        assert_eq!(
            LineNoise::new(0.0, 3).receive(&[1, 2, 3]),
            Some(vec![1, 2, 3])
        );
    }

    #[test]
    fn a_damaged_block_never_passes_its_lrc() {
        let block = [0x00, 0x40, 0x02, 0x90, 0x00, 0xD2];
        let mut noise = LineNoise::new(0.5, 9);
        for _ in 0..1000 {
            match noise.receive(&block) {
                None => {}
                Some(out) if out == block => {}
                Some(out) => {
                    let lrc = out[..out.len() - 1].iter().fold(0u8, |x, b| x ^ b);
                    assert!(
                        out.len() < block.len() || lrc != out[out.len() - 1],
                        "{out:02X?}"
                    );
                }
            }
        }
    }
}
