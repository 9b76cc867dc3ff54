//! Instruction bytes: PIV (SP 800-73-4), Yubico's extensions, and the
//! vendor commands this card adds (see README).

/// VERIFY.
pub const INS_VERIFY: u8 = 0x20;
/// CHANGE REFERENCE DATA.
pub const INS_CHANGE_REFERENCE: u8 = 0x24;
/// RESET RETRY COUNTER.
pub const INS_RESET_RETRY: u8 = 0x2C;
/// GENERATE ASYMMETRIC KEY PAIR.
pub const INS_GENERATE: u8 = 0x47;
/// GENERAL AUTHENTICATE.
pub const INS_GENERAL_AUTHENTICATE: u8 = 0x87;
/// GET DATA.
pub const INS_GET_DATA: u8 = 0xCB;
/// PUT DATA.
pub const INS_PUT_DATA: u8 = 0xDB;
/// MOVE KEY (Yubico; destination `FF` deletes).
pub const INS_MOVE_KEY: u8 = 0xF6;
/// GET METADATA (Yubico).
pub const INS_GET_METADATA: u8 = 0xF7;
/// GET SERIAL (Yubico).
pub const INS_GET_SERIAL: u8 = 0xF8;
/// ATTEST (Yubico).
pub const INS_ATTEST: u8 = 0xF9;
/// SET PIN RETRIES (Yubico).
pub const INS_SET_PIN_RETRIES: u8 = 0xFA;
/// RESET (Yubico).
pub const INS_RESET: u8 = 0xFB;
/// GET VERSION (Yubico).
pub const INS_GET_VERSION: u8 = 0xFD;
/// IMPORT ASYMMETRIC KEY (Yubico).
pub const INS_IMPORT_KEY: u8 = 0xFE;
/// SET MANAGEMENT KEY (Yubico).
pub const INS_SET_MANAGEMENT_KEY: u8 = 0xFF;
/// STAGE KEY (vendor): GENERATE into a slot's renewal staging area.
pub const INS_STAGE_KEY: u8 = 0xE0;
/// COMMIT RENEWAL (vendor).
pub const INS_COMMIT_RENEWAL: u8 = 0xE1;
/// ABORT RENEWAL (vendor).
pub const INS_ABORT_RENEWAL: u8 = 0xE2;
/// CARD INFO (vendor).
pub const INS_CARD_INFO: u8 = 0xE3;
/// SET SERIAL (vendor).
pub const INS_SET_SERIAL: u8 = 0xE4;
/// The management key's reference, in GENERAL AUTHENTICATE's P2.
pub const KEY_REF_ADMIN: u8 = 0x9B;
