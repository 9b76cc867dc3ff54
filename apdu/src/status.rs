//! Status words: the part of the ISO 7816-4 table a PIV card speaks.

/// A count of remaining tries as `63 CX` reports it: 0 to 15.
///
/// A card may keep more tries than one nibble can say; it then reports 15,
/// which tools read as "plenty".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tries(u8);

impl Tries {
    /// The most a status word can report.
    pub const MAX: Tries = Tries(15);

    /// `n` tries left, saturating at 15.
    pub const fn saturating(n: u8) -> Tries {
        if n > 15 { Tries::MAX } else { Tries(n) }
    }

    /// The count.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// The status words a PIV card answers with.
///
/// A closed enum, so a `match` in the card must say what every outcome means;
/// [`Status::from_sw`] gives `None` for words outside this table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// `90 00`: normal completion.
    Success,
    /// `61 xx`: more response data waits for GET RESPONSE; `xx` bytes, `00`
    /// meaning 256 or more.
    MoreData(u8),
    /// `62 82`: end of data reached before Ne bytes could be returned.
    EndOfData,
    /// `63 CX`: wrong PIN or PUK; X tries left.
    VerificationFailed(Tries),
    /// `65 81`: the flash failed; nothing was changed.
    MemoryFailure,
    /// `67 00`: wrong length (Lc or Le, or a malformed length field).
    WrongLength,
    /// `68 81`: logical channels are not supported.
    LogicalChannelNotSupported,
    /// `68 82`: secure messaging is not supported.
    SecureMessagingNotSupported,
    /// `68 83`: the last command of a chain was expected.
    LastCommandOfChainExpected,
    /// `68 84`: this command cannot be chained.
    ChainingNotSupported,
    /// `69 82`: security status not satisfied (PIN or management key).
    SecurityStatusNotSatisfied,
    /// `69 83`: authentication method blocked (PIN or PUK blocked).
    AuthenticationMethodBlocked,
    /// `69 84`: referenced data not usable.
    ReferenceDataNotUsable,
    /// `69 85`: conditions of use not satisfied.
    ConditionsOfUseNotSatisfied,
    /// `69 87`: expected secure messaging data objects missing (no MAC).
    SmDataObjectsMissing,
    /// `69 88`: secure messaging data objects incorrect (a MAC that does not
    /// verify, a malformed cryptogram); the card ends the session.
    SmDataObjectsIncorrect,
    /// `6A 80`: incorrect data field.
    IncorrectDataField,
    /// `6A 81`: function not supported.
    FunctionNotSupported,
    /// `6A 82`: file, data object or application not found.
    NotFound,
    /// `6A 84`: not enough memory.
    NotEnoughMemory,
    /// `6A 86`: incorrect P1 or P2.
    IncorrectP1P2,
    /// `6A 88`: referenced data (a key) not found.
    ReferenceNotFound,
    /// `6C xx`: wrong Le; `xx` is the exact number of bytes available.
    WrongLe(u8),
    /// `6D 00`: instruction not supported.
    InstructionNotSupported,
    /// `6E 00`: class not supported.
    ClassNotSupported,
    /// `6F 00`: no precise diagnosis. A correct card never sends it; the
    /// fuzzers treat it as a bug.
    NoPreciseDiagnosis,
}

impl Status {
    /// SW1 SW2 as one number.
    pub const fn sw(self) -> u16 {
        match self {
            Status::Success => 0x9000,
            Status::MoreData(n) => 0x6100 | n as u16,
            Status::EndOfData => 0x6282,
            Status::VerificationFailed(t) => 0x63C0 | t.get() as u16,
            Status::MemoryFailure => 0x6581,
            Status::WrongLength => 0x6700,
            Status::LogicalChannelNotSupported => 0x6881,
            Status::SecureMessagingNotSupported => 0x6882,
            Status::LastCommandOfChainExpected => 0x6883,
            Status::ChainingNotSupported => 0x6884,
            Status::SecurityStatusNotSatisfied => 0x6982,
            Status::AuthenticationMethodBlocked => 0x6983,
            Status::ReferenceDataNotUsable => 0x6984,
            Status::ConditionsOfUseNotSatisfied => 0x6985,
            Status::SmDataObjectsMissing => 0x6987,
            Status::SmDataObjectsIncorrect => 0x6988,
            Status::IncorrectDataField => 0x6A80,
            Status::FunctionNotSupported => 0x6A81,
            Status::NotFound => 0x6A82,
            Status::NotEnoughMemory => 0x6A84,
            Status::IncorrectP1P2 => 0x6A86,
            Status::ReferenceNotFound => 0x6A88,
            Status::WrongLe(n) => 0x6C00 | n as u16,
            Status::InstructionNotSupported => 0x6D00,
            Status::ClassNotSupported => 0x6E00,
            Status::NoPreciseDiagnosis => 0x6F00,
        }
    }

    /// SW1 and SW2 as they go on the wire.
    pub const fn to_bytes(self) -> [u8; 2] {
        self.sw().to_be_bytes()
    }

    /// The status for a word in this table, `None` for any other.
    pub const fn from_sw(sw: u16) -> Option<Status> {
        let [sw1, sw2] = sw.to_be_bytes();
        Some(match (sw1, sw2) {
            (0x90, 0x00) => Status::Success,
            (0x61, n) => Status::MoreData(n),
            (0x62, 0x82) => Status::EndOfData,
            (0x63, 0xC0..=0xCF) => Status::VerificationFailed(Tries(sw2 & 0x0F)),
            (0x65, 0x81) => Status::MemoryFailure,
            (0x67, 0x00) => Status::WrongLength,
            (0x68, 0x81) => Status::LogicalChannelNotSupported,
            (0x68, 0x82) => Status::SecureMessagingNotSupported,
            (0x68, 0x83) => Status::LastCommandOfChainExpected,
            (0x68, 0x84) => Status::ChainingNotSupported,
            (0x69, 0x82) => Status::SecurityStatusNotSatisfied,
            (0x69, 0x83) => Status::AuthenticationMethodBlocked,
            (0x69, 0x84) => Status::ReferenceDataNotUsable,
            (0x69, 0x85) => Status::ConditionsOfUseNotSatisfied,
            (0x69, 0x87) => Status::SmDataObjectsMissing,
            (0x69, 0x88) => Status::SmDataObjectsIncorrect,
            (0x6A, 0x80) => Status::IncorrectDataField,
            (0x6A, 0x81) => Status::FunctionNotSupported,
            (0x6A, 0x82) => Status::NotFound,
            (0x6A, 0x84) => Status::NotEnoughMemory,
            (0x6A, 0x86) => Status::IncorrectP1P2,
            (0x6A, 0x88) => Status::ReferenceNotFound,
            (0x6C, n) => Status::WrongLe(n),
            (0x6D, 0x00) => Status::InstructionNotSupported,
            (0x6E, 0x00) => Status::ClassNotSupported,
            (0x6F, 0x00) => Status::NoPreciseDiagnosis,
            _ => return None,
        })
    }

    /// `true` for `90 00` and `61 xx`, the words after which the command's
    /// effect took place.
    pub const fn is_success(self) -> bool {
        matches!(self, Status::Success | Status::MoreData(_))
    }

    /// A short English meaning, for traces and error messages.
    pub const fn meaning(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::MoreData(_) => "more data available",
            Status::EndOfData => "end of data before Ne bytes",
            Status::VerificationFailed(_) => "verification failed",
            Status::MemoryFailure => "memory failure",
            Status::WrongLength => "wrong length",
            Status::LogicalChannelNotSupported => "logical channel not supported",
            Status::SecureMessagingNotSupported => "secure messaging not supported",
            Status::LastCommandOfChainExpected => "last command of chain expected",
            Status::ChainingNotSupported => "command chaining not supported",
            Status::SecurityStatusNotSatisfied => "security status not satisfied",
            Status::AuthenticationMethodBlocked => "authentication method blocked",
            Status::ReferenceDataNotUsable => "reference data not usable",
            Status::ConditionsOfUseNotSatisfied => "conditions of use not satisfied",
            Status::SmDataObjectsMissing => "secure messaging data objects missing",
            Status::SmDataObjectsIncorrect => "secure messaging data objects incorrect",
            Status::IncorrectDataField => "incorrect data field",
            Status::FunctionNotSupported => "function not supported",
            Status::NotFound => "not found",
            Status::NotEnoughMemory => "not enough memory",
            Status::IncorrectP1P2 => "incorrect P1/P2",
            Status::ReferenceNotFound => "referenced data not found",
            Status::WrongLe(_) => "wrong Le",
            Status::InstructionNotSupported => "instruction not supported",
            Status::ClassNotSupported => "class not supported",
            Status::NoPreciseDiagnosis => "no precise diagnosis",
        }
    }
}

impl From<Status> for u16 {
    fn from(s: Status) -> u16 {
        s.sw()
    }
}
