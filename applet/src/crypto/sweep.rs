//! The P-256 back ends' cross-check: the same seeded run of keys,
//! signatures and key agreements in whichever back end this build has,
//! summed up in one digest. The host runs it with RustCrypto, the firmware
//! with the Cortex-M4 assembly (`--features crosscheck`), and
//! `simulator/tests/firmware.rs` compares the two: equal digests mean equal
//! public keys, byte-identical signatures (RFC 6979 makes them
//! deterministic) and equal shared secrets, and each side verifies every
//! signature with its own verifier, so each back end's signatures verify
//! under the other.

use rand_core::CryptoRng;
use sha2::{Digest, Sha256};

use super::p256_generate;
use super::p256_key::verify;
use crate::error::Result;

/// What a sweep found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sweep {
    /// SHA-256 over every key's public point, signature and shared secret,
    /// in order.
    pub digest: [u8; 32],
    /// Signatures this build's verifier refused (none, if all is well).
    pub unverified: u32,
}

/// `count` rounds, each drawing a key and a digest from `rng`: the key's
/// public point, its signature of the digest (checked by the verifier),
/// and its ECDH secret with the previous round's public point.
pub fn p256_sweep(rng: &mut dyn CryptoRng, count: u32) -> Result<Sweep> {
    let mut digest = Sha256::new();
    let mut unverified = 0u32;
    let mut previous: Option<[u8; 65]> = None;
    for _ in 0..count {
        let key = p256_generate(rng)?;
        let mut public = [0u8; 65];
        key.write_public(&mut public)?;
        let mut fitted = [0u8; 32];
        rng.fill_bytes(&mut fitted);
        let signature = key.sign(&fitted)?;
        if !verify(&public, &fitted, &signature) {
            unverified = unverified.saturating_add(1);
        }
        digest.update(public);
        digest.update(signature);
        if let Some(peer) = previous {
            let mut shared = [0u8; 32];
            key.agree(&peer, &mut shared)?;
            digest.update(shared);
        }
        previous = Some(public);
    }
    Ok(Sweep {
        digest: digest.finalize().into(),
        unverified,
    })
}
