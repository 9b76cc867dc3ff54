//! The protocol's vocabulary: every command this card answers, by its
//! instruction byte and its name. PIV (SP 800-73-4), Yubico's extensions
//! and the vendor commands this card adds (see README), in one table: the
//! applet dispatches on it, the host client builds its commands from it,
//! and the simulator's traces, latency profiles and scenarios name
//! commands by it, so that no two of them can disagree.

/// Writes the [`Instruction`] enum and its byte and name lookups from one
/// list, so that a command's byte and name are stated once.
macro_rules! instructions {
    ($($(#[doc = $doc:literal])* $variant:ident = $byte:literal, $name:literal;)*) => {
        /// A command of the card, by what it does.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Instruction {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Instruction {
            /// Every instruction, in the table's order.
            pub const ALL: &'static [Instruction] = &[$(Instruction::$variant,)*];

            /// Its INS byte.
            pub const fn byte(self) -> u8 {
                match self {
                    $(Instruction::$variant => $byte,)*
                }
            }

            /// Its name, as traces print it and profiles and scenarios
            /// match it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Instruction::$variant => $name,)*
                }
            }

            /// The instruction an INS byte names, if the card has it.
            pub const fn from_byte(byte: u8) -> Option<Instruction> {
                match byte {
                    $($byte => Some(Instruction::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

instructions! {
    /// SELECT (ISO 7816-4; the card OS answers it).
    Select = 0xA4, "SELECT";
    /// GET RESPONSE (ISO 7816-4; the card OS answers it).
    GetResponse = 0xC0, "GET RESPONSE";
    /// VERIFY.
    Verify = 0x20, "VERIFY";
    /// CHANGE REFERENCE DATA.
    ChangeReference = 0x24, "CHANGE REFERENCE DATA";
    /// RESET RETRY COUNTER.
    ResetRetry = 0x2C, "RESET RETRY COUNTER";
    /// GENERATE ASYMMETRIC KEY PAIR.
    Generate = 0x47, "GENERATE";
    /// GENERAL AUTHENTICATE.
    GeneralAuthenticate = 0x87, "GENERAL AUTHENTICATE";
    /// GET DATA.
    GetData = 0xCB, "GET DATA";
    /// PUT DATA.
    PutData = 0xDB, "PUT DATA";
    /// MOVE KEY (Yubico; destination `FF` deletes).
    MoveKey = 0xF6, "MOVE KEY";
    /// GET METADATA (Yubico).
    GetMetadata = 0xF7, "GET METADATA";
    /// GET SERIAL (Yubico).
    GetSerial = 0xF8, "GET SERIAL";
    /// ATTEST (Yubico).
    Attest = 0xF9, "ATTEST";
    /// SET PIN RETRIES (Yubico).
    SetPinRetries = 0xFA, "SET PIN RETRIES";
    /// RESET (Yubico).
    Reset = 0xFB, "RESET";
    /// GET VERSION (Yubico).
    GetVersion = 0xFD, "GET VERSION";
    /// IMPORT ASYMMETRIC KEY (Yubico).
    ImportKey = 0xFE, "IMPORT KEY";
    /// SET MANAGEMENT KEY (Yubico).
    SetManagementKey = 0xFF, "SET MANAGEMENT KEY";
    /// STAGE KEY (vendor): GENERATE into a slot's renewal staging area.
    StageKey = 0xE0, "STAGE KEY";
    /// COMMIT RENEWAL (vendor).
    CommitRenewal = 0xE1, "COMMIT RENEWAL";
    /// ABORT RENEWAL (vendor).
    AbortRenewal = 0xE2, "ABORT RENEWAL";
    /// CARD INFO (vendor).
    CardInfo = 0xE3, "CARD INFO";
    /// SET SERIAL (vendor).
    SetSerial = 0xE4, "SET SERIAL";
}

// The bytes the applet's dispatch matches on, from the table.
pub(crate) const INS_VERIFY: u8 = Instruction::Verify.byte();
pub(crate) const INS_CHANGE_REFERENCE: u8 = Instruction::ChangeReference.byte();
pub(crate) const INS_RESET_RETRY: u8 = Instruction::ResetRetry.byte();
pub(crate) const INS_GENERATE: u8 = Instruction::Generate.byte();
pub(crate) const INS_GENERAL_AUTHENTICATE: u8 = Instruction::GeneralAuthenticate.byte();
pub(crate) const INS_GET_DATA: u8 = Instruction::GetData.byte();
pub(crate) const INS_PUT_DATA: u8 = Instruction::PutData.byte();
pub(crate) const INS_MOVE_KEY: u8 = Instruction::MoveKey.byte();
pub(crate) const INS_GET_METADATA: u8 = Instruction::GetMetadata.byte();
pub(crate) const INS_GET_SERIAL: u8 = Instruction::GetSerial.byte();
pub(crate) const INS_ATTEST: u8 = Instruction::Attest.byte();
pub(crate) const INS_SET_PIN_RETRIES: u8 = Instruction::SetPinRetries.byte();
pub(crate) const INS_RESET: u8 = Instruction::Reset.byte();
pub(crate) const INS_GET_VERSION: u8 = Instruction::GetVersion.byte();
pub(crate) const INS_IMPORT_KEY: u8 = Instruction::ImportKey.byte();
pub(crate) const INS_SET_MANAGEMENT_KEY: u8 = Instruction::SetManagementKey.byte();
pub(crate) const INS_STAGE_KEY: u8 = Instruction::StageKey.byte();
pub(crate) const INS_COMMIT_RENEWAL: u8 = Instruction::CommitRenewal.byte();
pub(crate) const INS_ABORT_RENEWAL: u8 = Instruction::AbortRenewal.byte();
pub(crate) const INS_CARD_INFO: u8 = Instruction::CardInfo.byte();
pub(crate) const INS_SET_SERIAL: u8 = Instruction::SetSerial.byte();
/// The management key's reference, in GENERAL AUTHENTICATE's P2.
pub const KEY_REF_ADMIN: u8 = 0x9B;
/// The pairing code's reference, in VERIFY's and CHANGE REFERENCE DATA's
/// P2 (SP 800-73-4's virtual contact interface).
pub const PAIRING_CODE_REF: u8 = 0x98;

#[cfg(test)]
mod tests {
    use super::Instruction;

    #[test]
    fn every_byte_and_name_names_one_instruction() {
        for (i, a) in Instruction::ALL.iter().enumerate() {
            assert_eq!(Instruction::from_byte(a.byte()), Some(*a));
            for b in Instruction::ALL.iter().skip(i + 1) {
                assert_ne!(a.byte(), b.byte(), "{a:?} and {b:?}");
                assert_ne!(a.name(), b.name(), "{a:?} and {b:?}");
            }
        }
        assert_eq!(Instruction::from_byte(0x00), None);
    }

    #[test]
    fn the_vendor_commands_keep_their_bytes() {
        assert_eq!(Instruction::SetSerial.byte(), 0xE4);
        assert_eq!(Instruction::SetSerial.name(), "SET SERIAL");
        assert_eq!(Instruction::StageKey.byte(), 0xE0);
    }
}
