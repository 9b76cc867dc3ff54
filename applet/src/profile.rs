//! Which card the applets present themselves as: a factory property, like
//! the serial, because tools decide from it what they may ask. The card OS
//! keeps it as opaque applet flags in the factory record
//! ([`card_os::image::AppletFlags`]); this module says what they mean.

use card_os::image::{AppletFlags, Header};

/// Bit 1 of the factory record's flags: a YubiKey-compatible card.
const YUBIKEY: u16 = 1 << 1;
/// Bit 2: with YubiKey's PIN complexity policy (only with bit 1).
const PIN_COMPLEXITY: u16 = 1 << 2;

/// The card the applets present themselves as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// The Series 9 staff card: its passcode rules and nothing else.
    #[default]
    Series9,
    /// A card that tools take for a YubiKey 5.7 (the Management
    /// application, YubiKey answers where the rules differ), optionally
    /// with its PIN complexity policy.
    YubiKey {
        /// New PINs and PUKs are checked against the complexity policy.
        pin_complexity: bool,
    },
}

/// Factory flags that name no card: PIN complexity without the YubiKey
/// profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContradictoryFlags;

impl core::fmt::Display for ContradictoryFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("contradictory profile flags")
    }
}

impl Profile {
    /// The profile a factory record names.
    pub fn of(header: &Header) -> Result<Profile, ContradictoryFlags> {
        Profile::from_flags(header.applet)
    }

    /// The profile the applet flags name. Bits other than the profile's
    /// are not this applet's and are ignored.
    pub const fn from_flags(flags: AppletFlags) -> Result<Profile, ContradictoryFlags> {
        let bits = flags.bits();
        match (bits & YUBIKEY != 0, bits & PIN_COMPLEXITY != 0) {
            (false, false) => Ok(Profile::Series9),
            (false, true) => Err(ContradictoryFlags),
            (true, pin_complexity) => Ok(Profile::YubiKey { pin_complexity }),
        }
    }

    /// Whether the card speaks PIV secure messaging: the Series 9 card
    /// does, once its issuer has given it key `04` and its CVC; a YubiKey
    /// has none, and its profile answers as one.
    pub const fn has_secure_messaging(self) -> bool {
        matches!(self, Profile::Series9)
    }

    /// The applet flags a card of this profile is made with.
    pub const fn flags(self) -> AppletFlags {
        // Bits 1 and 2 are never the OS's: the mask keeps them.
        AppletFlags::masked(match self {
            Profile::Series9 => 0,
            Profile::YubiKey {
                pin_complexity: false,
            } => YUBIKEY,
            Profile::YubiKey {
                pin_complexity: true,
            } => YUBIKEY | PIN_COMPLEXITY,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_round_trip_and_contradictions_are_refused() {
        for profile in [
            Profile::Series9,
            Profile::YubiKey {
                pin_complexity: false,
            },
            Profile::YubiKey {
                pin_complexity: true,
            },
        ] {
            assert_eq!(Profile::from_flags(profile.flags()), Ok(profile));
        }
        // The bits are on flash in every card made: they never move.
        assert_eq!(Profile::Series9.flags().bits(), 0);
        let complex = Profile::YubiKey {
            pin_complexity: true,
        };
        assert_eq!(complex.flags().bits(), 0b110);
        // PIN complexity alone names no card.
        let alone = AppletFlags::new(PIN_COMPLEXITY).unwrap();
        assert_eq!(Profile::from_flags(alone), Err(ContradictoryFlags));
        // Bits of other applets do not change the profile.
        let other = AppletFlags::new(YUBIKEY | 1 << 9).unwrap();
        assert_eq!(
            Profile::from_flags(other),
            Ok(Profile::YubiKey {
                pin_complexity: false
            })
        );
    }
}
