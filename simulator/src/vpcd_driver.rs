//! A copy of vpcd's driver whose reader entry has one slot, not two.
//!
//! vpcd tells pcscd that every reader entry has two slots, and pcscd makes a
//! reader of each. For the YubiKey-named entry the second reader is always
//! empty, and that costs: ykman opens every reader whose name says
//! "Yubico YubiKey", counts each as a device (so it asks which one), and
//! retries an empty USB-named reader for 3 s (6 × 0.5 s) at every command.
//! A real YubiKey is one reader.
//!
//! The count is vpcd's `const unsigned char vicc_max_slots = 2`, but it is
//! not read at run time: the compiler folded it into `IFDHGetCapabilities`,
//! which answers `TAG_IFD_SLOTS_NUMBER` (`0x0FAE`) with an immediate store,
//! `movb $2, (reg)`. [`single_slot`] finds that store and makes it store 1;
//! pcscd asks for the count once, when it adds the entry, and makes one
//! reader. The rest of the driver is untouched (it still listens on the
//! second slot's port, which nothing uses).
//!
//! The recognition is strict, so that it changes this one byte or nothing:
//! an x86-64 ELF, the exported function, exactly one `cmp` against
//! `0x0FAE` in it, and exactly one `movb $2` to memory in the 64 bytes
//! after that. Any other build (another architecture, another compiler's
//! code) is reported as [`Unpatchable`], and the caller installs the driver
//! as it is: the second, empty reader is then listed, and tools are told to
//! name the card.

use object::{Architecture, Object, ObjectSection, ObjectSymbol};

/// The pcscd tag for the number of slots (`ifdhandler.h`).
const TAG_IFD_SLOTS_NUMBER: u32 = 0x0FAE;
/// How far after the comparison the store may be.
const WINDOW: usize = 64;

/// Why the driver was left as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unpatchable {
    /// Not an ELF file the `object` crate reads.
    NotElf,
    /// An ELF for another machine than x86-64.
    Architecture,
    /// It does not export `IFDHGetCapabilities` (not an IFD handler).
    NoCapabilities,
    /// The function's code is not the one this patch knows.
    Unrecognised,
}

impl std::fmt::Display for Unpatchable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unpatchable::NotElf => "not an ELF shared object",
            Unpatchable::Architecture => "built for another machine than x86-64",
            Unpatchable::NoCapabilities => "no IFDHGetCapabilities in its symbols",
            Unpatchable::Unrecognised => "its slot count is not where this vpcd build keeps it",
        })
    }
}

/// The driver with its slot count made 1, or why it cannot be.
pub fn single_slot(driver: &[u8]) -> Result<Vec<u8>, Unpatchable> {
    let at = slot_count_at(driver)?;
    let mut patched = driver.to_vec();
    let byte = patched.get_mut(at).ok_or(Unpatchable::Unrecognised)?;
    *byte = 1;
    Ok(patched)
}

/// The file offset of the immediate `2` that `IFDHGetCapabilities` stores
/// as the slot count.
pub fn slot_count_at(driver: &[u8]) -> Result<usize, Unpatchable> {
    let file = object::File::parse(driver).map_err(|_| Unpatchable::NotElf)?;
    if file.architecture() != Architecture::X86_64 {
        return Err(Unpatchable::Architecture);
    }
    let function = file
        .dynamic_symbols()
        .find(|s| s.name() == Ok("IFDHGetCapabilities"))
        .ok_or(Unpatchable::NoCapabilities)?;
    let section = function
        .section_index()
        .and_then(|i| file.section_by_index(i).ok())
        .ok_or(Unpatchable::Unrecognised)?;
    let (section_offset, _) = section.file_range().ok_or(Unpatchable::Unrecognised)?;
    let start = function
        .address()
        .checked_sub(section.address())
        .and_then(|d| d.checked_add(section_offset))
        .and_then(|o| usize::try_from(o).ok())
        .ok_or(Unpatchable::Unrecognised)?;
    let size = usize::try_from(function.size()).map_err(|_| Unpatchable::Unrecognised)?;
    let code = start
        .checked_add(size)
        .and_then(|end| driver.get(start..end))
        .ok_or(Unpatchable::Unrecognised)?;
    let immediate = store_of_two_after_tag(code).ok_or(Unpatchable::Unrecognised)?;
    Ok(start + immediate)
}

/// In one function's code: the offset of the `2` in the single `movb $2`
/// to memory that follows the single comparison against the tag.
fn store_of_two_after_tag(code: &[u8]) -> Option<usize> {
    let tag = TAG_IFD_SLOTS_NUMBER.to_le_bytes();
    // `cmp $imm32, %r32/%r64`: opcode 81, ModRM 11 111 reg (F8–FF),
    // optionally after a REX prefix.
    let compares: Vec<usize> = (2..code.len().saturating_sub(3))
        .filter(|&i| {
            code.get(i..i + 4) == Some(&tag[..])
                && code.get(i - 2) == Some(&0x81)
                && code.get(i - 1).is_some_and(|m| m & 0xF8 == 0xF8)
        })
        .map(|i| i + 4)
        .collect();
    let [after] = compares[..] else {
        return None;
    };
    let window = code.get(after..(after + WINDOW).min(code.len()))?;
    // `movb $imm8, disp8(%reg)`: opcode C6, ModRM 01 000 rm (no SIB:
    // rm ≠ 100), the displacement, then the immediate.
    let stores: Vec<usize> = (0..window.len().saturating_sub(3))
        .filter(|&i| {
            window.get(i) == Some(&0xC6)
                && window
                    .get(i + 1)
                    .is_some_and(|m| m & 0xF8 == 0x40 && m & 0x07 != 0x04)
                && window.get(i + 3) == Some(&0x02)
        })
        .map(|i| after + i + 3)
        .collect();
    match stores[..] {
        [immediate] => Some(immediate),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The code of Debian's vpcd 0.8 around the answer (its bytes, as
    /// `objdump -d` shows them): compare the tag, load the log text and
    /// line for the error path, store 2 slots, return success.
    const DEBIAN_VPCD: [u8; 28] = [
        0x48, 0x81, 0xfe, 0xae, 0x0f, 0x00, 0x00, // cmp $0xfae,%rsi
        0x0f, 0x85, 0xdb, 0x00, 0x00, 0x00, // jne …
        0x48, 0x83, 0x3a, 0x00, // cmpq $0x0,(%rdx)
        0xb9, 0x01, 0x01, 0x00, 0x00, // mov $0x101,%ecx
        0xc6, 0x45, 0x00, 0x02, // movb $0x2,0x0(%rbp)
        0x31, 0xc0, // xor %eax,%eax
    ];

    #[test]
    fn finds_the_slot_count_after_the_tag() {
        assert_eq!(store_of_two_after_tag(&DEBIAN_VPCD), Some(25));
    }

    #[test]
    fn refuses_code_it_does_not_know() {
        // No comparison against the tag.
        let mut other = DEBIAN_VPCD;
        other[3] = 0xad;
        assert_eq!(store_of_two_after_tag(&other), None);
        // A store of another value.
        let mut other = DEBIAN_VPCD;
        other[25] = 0x03;
        assert_eq!(store_of_two_after_tag(&other), None);
        // Two candidate stores: which one is the count is not known.
        let twice = [&DEBIAN_VPCD[..], &[0xc6, 0x43, 0x08, 0x02]].concat();
        assert_eq!(store_of_two_after_tag(&twice), None);
        // Two comparisons against the tag.
        let twice = [&DEBIAN_VPCD[..], &DEBIAN_VPCD[..]].concat();
        assert_eq!(store_of_two_after_tag(&twice), None);
    }

    #[test]
    fn leaves_files_that_are_not_an_ifd_handler() {
        assert_eq!(single_slot(b"not a driver"), Err(Unpatchable::NotElf));
        // This test binary is an ELF without the handler's functions.
        let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(single_slot(&own), Err(Unpatchable::NoCapabilities));
    }

    /// The driver CI installs (vsmartcard-vpcd): one byte changes, from 2
    /// to 1, inside `IFDHGetCapabilities`.
    #[test]
    fn makes_the_installed_vpcd_single_slot() {
        let path = crate::readers::stock_driver();
        let driver = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{} ({e}): apt-get install vsmartcard-vpcd", path.display())
        });
        let patched = single_slot(&driver).unwrap();
        let changed: Vec<usize> = (0..driver.len())
            .filter(|&i| driver[i] != patched[i])
            .collect();
        let at = slot_count_at(&driver).unwrap();
        assert_eq!(changed, [at]);
        assert_eq!((driver[at], patched[at]), (2, 1));
        assert_eq!(driver[at - 3], 0xc6);
    }
}
