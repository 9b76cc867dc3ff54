//! The asymmetric algorithms a key slot can hold, with Yubico's identifiers
//! (OpenSC and yubico-piv-tool use the same bytes), and the sizes each one
//! takes in a command, a response and a key record.

/// An asymmetric key algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `06`: RSA with a 1024-bit modulus.
    Rsa1024,
    /// `07`: RSA-2048, yubico-piv-tool's default.
    Rsa2048,
    /// `05`: RSA-3072.
    Rsa3072,
    /// `16`: RSA-4096.
    Rsa4096,
    /// `11`: ECDSA and ECDH on P-256.
    P256,
    /// `14`: ECDSA and ECDH on P-384.
    P384,
    /// `E0`: Ed25519 signatures (the card signs the message itself).
    Ed25519,
    /// `E1`: X25519 key agreement.
    X25519,
}

/// What a key can be asked to do in GENERAL AUTHENTICATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// `81` challenge → `82` response: a signature, or for RSA the raw
    /// private operation (which is also how PIV decrypts).
    Sign,
    /// `85` peer public key → `82` shared secret.
    Agree,
}

/// The public exponent of every RSA key this card makes or accepts, as
/// YubiKeys do: 65537.
pub const RSA_EXPONENT: u32 = 65_537;

impl Algorithm {
    /// Every algorithm, in the order SELECT lists them.
    pub const ALL: [Algorithm; 8] = [
        Algorithm::Rsa1024,
        Algorithm::Rsa2048,
        Algorithm::Rsa3072,
        Algorithm::Rsa4096,
        Algorithm::P256,
        Algorithm::P384,
        Algorithm::Ed25519,
        Algorithm::X25519,
    ];

    /// The algorithm an identifier byte names, if this card has it.
    pub const fn from_byte(b: u8) -> Option<Algorithm> {
        Some(match b {
            0x06 => Algorithm::Rsa1024,
            0x07 => Algorithm::Rsa2048,
            0x05 => Algorithm::Rsa3072,
            0x16 => Algorithm::Rsa4096,
            0x11 => Algorithm::P256,
            0x14 => Algorithm::P384,
            0xE0 => Algorithm::Ed25519,
            0xE1 => Algorithm::X25519,
            _ => return None,
        })
    }

    /// The identifier byte.
    pub const fn byte(self) -> u8 {
        match self {
            Algorithm::Rsa1024 => 0x06,
            Algorithm::Rsa2048 => 0x07,
            Algorithm::Rsa3072 => 0x05,
            Algorithm::Rsa4096 => 0x16,
            Algorithm::P256 => 0x11,
            Algorithm::P384 => 0x14,
            Algorithm::Ed25519 => 0xE0,
            Algorithm::X25519 => 0xE1,
        }
    }

    /// Whether this build of the card has the algorithm (the applet's
    /// cargo features `rsa`, `p384`, `ed25519`, `x25519`; P-256 always).
    pub const fn is_built(self) -> bool {
        match self {
            Algorithm::Rsa1024 | Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => {
                cfg!(feature = "rsa")
            }
            Algorithm::P256 => true,
            Algorithm::P384 => cfg!(feature = "p384"),
            Algorithm::Ed25519 => cfg!(feature = "ed25519"),
            Algorithm::X25519 => cfg!(feature = "x25519"),
        }
    }

    /// The algorithm an identifier byte names, if this build has it: what
    /// the card takes in GENERATE, IMPORT and GENERAL AUTHENTICATE.
    pub const fn built(b: u8) -> Option<Algorithm> {
        match Algorithm::from_byte(b) {
            Some(a) if a.is_built() => Some(a),
            _ => None,
        }
    }

    /// The modulus length in bits, for RSA.
    pub const fn rsa_bits(self) -> Option<usize> {
        match self {
            Algorithm::Rsa1024 => Some(1024),
            Algorithm::Rsa2048 => Some(2048),
            Algorithm::Rsa3072 => Some(3072),
            Algorithm::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    /// Whether the key can do `what`.
    pub const fn can(self, what: Use) -> bool {
        match self {
            Algorithm::P256 | Algorithm::P384 => true,
            Algorithm::Rsa1024
            | Algorithm::Rsa2048
            | Algorithm::Rsa3072
            | Algorithm::Rsa4096
            | Algorithm::Ed25519 => matches!(what, Use::Sign),
            Algorithm::X25519 => matches!(what, Use::Agree),
        }
    }

    /// Bytes of the public key as a key record keeps it: the RSA modulus
    /// (the exponent is always [`RSA_EXPONENT`]), an uncompressed EC point,
    /// or a 32-byte Edwards or Montgomery u-coordinate.
    pub const fn public_len(self) -> usize {
        match self.rsa_bits() {
            Some(bits) => bits / 8,
            None => match self {
                Algorithm::P256 => 65,
                Algorithm::P384 => 97,
                _ => 32,
            },
        }
    }

    /// Bytes of the private key as it is sealed: RSA as five CRT parts of
    /// half the modulus each (p, q, dP, dQ, qInv), an EC scalar, or a
    /// 25519 seed.
    pub const fn secret_len(self) -> usize {
        match self.rsa_bits() {
            Some(bits) => 5 * bits / 16,
            None => match self {
                Algorithm::P384 => 48,
                _ => 32,
            },
        }
    }
}

/// The longest public key ([`Algorithm::public_len`]) this build has: an
/// RSA-4096 modulus, a P-384 point or a P-256 point. The key buffers on
/// the card's stack are this long, so a build without RSA saves most of
/// them.
pub const MAX_PUBLIC: usize = if cfg!(feature = "rsa") {
    512
} else if cfg!(feature = "p384") {
    97
} else {
    65
};
/// The longest private key ([`Algorithm::secret_len`]) this build has:
/// RSA-4096 in CRT form, a P-384 scalar, or 32 bytes.
pub const MAX_SECRET: usize = if cfg!(feature = "rsa") {
    1_280
} else if cfg!(feature = "p384") {
    48
} else {
    32
};

// Every private key fits what the device key can seal.
const _: () = assert!(MAX_SECRET <= crate::secrets::MAX_SECRET);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_round_trip_and_sizes_fit_the_bounds() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_byte(alg.byte()), Some(alg));
            if alg.is_built() {
                assert!(alg.public_len() <= MAX_PUBLIC && alg.secret_len() <= MAX_SECRET);
            }
            assert!(alg.public_len() <= MAX_PUBLIC);
            assert!(alg.secret_len() <= MAX_SECRET);
            assert!(alg.can(Use::Sign) || alg.can(Use::Agree));
        }
        assert_eq!(Algorithm::Rsa4096.public_len(), MAX_PUBLIC);
        assert_eq!(Algorithm::Rsa4096.secret_len(), MAX_SECRET);
        // The management-key algorithms are not slot algorithms.
        for b in [0x00, 0x03, 0x08, 0x0A, 0x0C, 0xFF] {
            assert_eq!(Algorithm::from_byte(b), None);
        }
    }
}
