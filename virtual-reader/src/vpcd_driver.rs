//! Copies of vpcd's driver made fit for our readers: every copy dials its
//! card again after a card leaves, and the YubiKey-named entry's has one
//! slot, not two.
//!
//! ## Dialling again
//!
//! Our readers are in vpcd's connecting mode (`DEVICENAME 127.0.0.1:PORT`,
//! see [`crate::readers`]), so that nothing listens beyond loopback. vpcd
//! builds before vsmartcard's fix of June 2022 (76543ea, "Fix issue with
//! allowing reconnects"), Debian's among them, decide in `vicc_connect`
//! between accepting and dialling by testing the listening socket for
//! non-zero, and in connecting mode it is -1: the first presence poll of
//! an empty reader calls `select` on descriptor -1 and glibc's fortified
//! `FD_SET` aborts pcscd. [`connecting`] turns that test's `je` into a
//! `jmp`, so the copy always dials, which is what connecting mode means;
//! a listening entry never loads such a copy.
//!
//! Dialling has a bug of its own, in every vpcd to this day: `connectsock`
//! closes the socket whose `connect` failed and returns its number all the
//! same, so an empty reader's context keeps a closed descriptor as if it
//! were connected. The next poll's write fails and closes that number
//! again, by then often another reader's live connection, and two readers
//! end up reading one socket: pcscd hung within minutes of a test run.
//! [`connecting`] also makes a failed dial return -1: the loop over the
//! resolver's answers jumps, after the `close`, to the function's own
//! "return -1" (`127.0.0.1` resolves to one address, so there is nothing
//! else to try).
//!
//! ## One slot
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
//! The recognition of both is strict, so that each changes its one byte or
//! nothing. For the slot count:
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
    /// It does not export the function the patch changes (not vpcd's
    /// IFD handler).
    NoFunction,
    /// The function's code is not the one this patch knows.
    Unrecognised,
}

impl std::fmt::Display for Unpatchable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unpatchable::NotElf => "not an ELF shared object",
            Unpatchable::Architecture => "built for another machine than x86-64",
            Unpatchable::NoFunction => {
                "not vpcd's IFD handler (a function is missing from its symbols)"
            }
            Unpatchable::Unrecognised => "its code is not the one this patch knows",
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
    let (start, code) = function(driver, "IFDHGetCapabilities")?;
    let immediate = store_of_two_after_tag(code).ok_or(Unpatchable::Unrecognised)?;
    Ok(start + immediate)
}

/// The driver with `vicc_connect` made to dial whenever no card is
/// connected and a failed dial made to return -1, or why it cannot be:
/// both patches or neither.
pub fn connecting(driver: &[u8]) -> Result<Vec<u8>, Unpatchable> {
    let at = accept_or_dial_at(driver)?;
    let (loop_at, jump) = failed_dial_at(driver)?;
    let mut patched = driver.to_vec();
    let byte = patched.get_mut(at).ok_or(Unpatchable::Unrecognised)?;
    *byte = JMP_REL8;
    let code = patched
        .get_mut(loop_at..loop_at + NEXT_ANSWER.len())
        .ok_or(Unpatchable::Unrecognised)?;
    code.fill(NOP);
    code[0] = JMP_REL8;
    code[1] = jump;
    Ok(patched)
}

/// After the `close` of a socket whose `connect` failed: `mov 0x28(%rbp),
/// %rbp; test %rbp,%rbp; jne` (the next resolver answer, if any).
const NEXT_ANSWER: [u8; 9] = [0x48, 0x8B, 0x6D, 0x28, 0x48, 0x85, 0xED, 0x75, 0x00];
/// `mov %r12d,%edi; call` (close), just before it.
const CLOSE_SOCKET: [u8; 4] = [0x44, 0x89, 0xE7, 0xE8];
/// `mov $-1,%r12d`: the function's "return -1".
const RETURN_FAILURE: [u8; 6] = [0x41, 0xBC, 0xFF, 0xFF, 0xFF, 0xFF];
const NOP: u8 = 0x90;
/// How far after the loop the "return -1" may be.
const FAILURE_WINDOW: usize = 64;

/// Where `connectsock`'s loop goes on to the next answer after a failed
/// `connect`, and the `jmp rel8` displacement from there to its "return
/// -1". The pattern must be found exactly once in the file, right after a
/// `close` of the socket, with exactly one "return -1" shortly after.
pub fn failed_dial_at(driver: &[u8]) -> Result<(usize, u8), Unpatchable> {
    let next = &NEXT_ANSWER[..NEXT_ANSWER.len() - 1];
    let found: Vec<usize> = (CLOSE_SOCKET.len() + 4..driver.len().saturating_sub(next.len()))
        .filter(|&i| {
            driver.get(i..i + next.len()) == Some(next)
                && driver.get(i - 8..i - 4) == Some(&CLOSE_SOCKET[..])
        })
        .collect();
    let [at] = found[..] else {
        return Err(Unpatchable::Unrecognised);
    };
    let after = at + NEXT_ANSWER.len();
    let window = driver
        .get(after..(after + FAILURE_WINDOW).min(driver.len()))
        .ok_or(Unpatchable::Unrecognised)?;
    let returns: Vec<usize> = (0..window.len().saturating_sub(RETURN_FAILURE.len()))
        .filter(|&i| window.get(i..i + RETURN_FAILURE.len()) == Some(&RETURN_FAILURE[..]))
        .collect();
    let [offset] = returns[..] else {
        return Err(Unpatchable::Unrecognised);
    };
    // From the end of the two-byte jmp at `at` to the "return -1".
    let jump = u8::try_from(after + offset - (at + 2)).map_err(|_| Unpatchable::Unrecognised)?;
    if jump > 0x7F {
        return Err(Unpatchable::Unrecognised);
    }
    Ok((at, jump))
}

/// The file offset of the `je` in `vicc_connect` that picks dialling only
/// when the listening socket is 0.
pub fn accept_or_dial_at(driver: &[u8]) -> Result<usize, Unpatchable> {
    let (start, code) = function(driver, "vicc_connect")?;
    let je = listening_socket_test(code).ok_or(Unpatchable::Unrecognised)?;
    Ok(start + je)
}

/// `je rel8`, and what it becomes.
const JE_REL8: u8 = 0x74;
const JMP_REL8: u8 = 0xEB;

/// In `vicc_connect`'s code: the offset of the `je` in the single
/// `mov (%rdi),%edi; test %edi,%edi; je …; call …` (load `server_sock`, the
/// context's first field, test it for zero, else call `waitforclient`).
fn listening_socket_test(code: &[u8]) -> Option<usize> {
    const LOAD_AND_TEST: [u8; 4] = [0x8B, 0x3F, 0x85, 0xFF];
    let found: Vec<usize> = (0..code.len().saturating_sub(6))
        .filter(|&i| {
            code.get(i..i + 4) == Some(&LOAD_AND_TEST[..])
                && code.get(i + 4) == Some(&JE_REL8)
                && code.get(i + 6) == Some(&0xE8)
        })
        .map(|i| i + 4)
        .collect();
    match found[..] {
        [je] => Some(je),
        _ => None,
    }
}

/// An exported function's file offset and code.
fn function<'d>(driver: &'d [u8], name: &str) -> Result<(usize, &'d [u8]), Unpatchable> {
    let file = object::File::parse(driver).map_err(|_| Unpatchable::NotElf)?;
    if file.architecture() != Architecture::X86_64 {
        return Err(Unpatchable::Architecture);
    }
    let function = file
        .dynamic_symbols()
        .find(|s| s.name() == Ok(name))
        .ok_or(Unpatchable::NoFunction)?;
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
    Ok((start, code))
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
        assert_eq!(single_slot(&own), Err(Unpatchable::NoFunction));
        assert_eq!(connecting(&own), Err(Unpatchable::NoFunction));
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

    /// Debian's `vicc_connect` (its bytes, as `objdump -d` shows them):
    /// load the listening socket, test it for zero, accept or dial.
    const DEBIAN_CONNECT: [u8; 11] = [
        0x8b, 0x3f, // mov (%rdi),%edi
        0x85, 0xff, // test %edi,%edi
        0x74, 0x1a, // je (dial)
        0xe8, 0xb5, 0xec, 0xff, 0xff, // call waitforclient
    ];

    #[test]
    fn finds_the_test_that_picks_accepting_or_dialling() {
        assert_eq!(listening_socket_test(&DEBIAN_CONNECT), Some(4));
        // A build with the fix tests the host name: nothing to change.
        let mut fixed = DEBIAN_CONNECT;
        fixed[..4].copy_from_slice(&[0x48, 0x83, 0x7f, 0x08]);
        assert_eq!(listening_socket_test(&fixed), None);
        let twice = [&DEBIAN_CONNECT[..], &DEBIAN_CONNECT[..]].concat();
        assert_eq!(listening_socket_test(&twice), None);
    }

    /// Debian's `connectsock` loop end: close the socket, go on to the
    /// next answer, and the "return -1" after it.
    const DEBIAN_DIAL: [u8; 29] = [
        0x44, 0x89, 0xe7, // mov %r12d,%edi
        0xe8, 0x0f, 0xf2, 0xff, 0xff, // call close
        0x48, 0x8b, 0x6d, 0x28, // mov 0x28(%rbp),%rbp
        0x48, 0x85, 0xed, // test %rbp,%rbp
        0x75, 0xc6, // jne (loop)
        0x48, 0x8b, 0x6c, 0x24, 0x08, // mov 0x8(%rsp),%rbp
        0x41, 0xbc, 0xff, 0xff, 0xff, 0xff, // mov $-1,%r12d
        0xc3,
    ];

    #[test]
    fn finds_the_failed_dial_and_its_return() {
        assert_eq!(failed_dial_at(&DEBIAN_DIAL), Ok((8, 12)));
        // Without the close before it, or without a "return -1", nothing.
        let mut other = DEBIAN_DIAL;
        other[0] = 0x90;
        assert_eq!(failed_dial_at(&other), Err(Unpatchable::Unrecognised));
        let mut other = DEBIAN_DIAL;
        other[23] = 0xbd;
        assert_eq!(failed_dial_at(&other), Err(Unpatchable::Unrecognised));
    }

    /// The installed driver (the one pcscd crashed and hung with in
    /// connecting mode): `je` to `jmp` inside `vicc_connect`, and the
    /// failed dial's loop end turned into a jump to "return -1".
    #[test]
    fn makes_the_installed_vpcd_dial_again() {
        let driver = std::fs::read(crate::readers::stock_driver()).unwrap();
        let patched = connecting(&driver).unwrap();
        let at = accept_or_dial_at(&driver).unwrap();
        let (loop_at, jump) = failed_dial_at(&driver).unwrap();
        let changed: Vec<usize> = (0..driver.len())
            .filter(|&i| driver[i] != patched[i])
            .collect();
        assert!(changed.contains(&at));
        assert_eq!((driver[at], patched[at]), (JE_REL8, JMP_REL8));
        assert!(
            changed
                .iter()
                .all(|&i| i == at || (loop_at..loop_at + 9).contains(&i))
        );
        assert_eq!(&patched[loop_at..loop_at + 2], &[JMP_REL8, jump]);
        // The jump lands on `mov $-1,%r12d`.
        let target = loop_at + 2 + usize::from(jump);
        assert_eq!(&patched[target..target + 6], &RETURN_FAILURE);
        // With the slot count, three places changed.
        let both = single_slot(&patched).unwrap();
        let slot = slot_count_at(&driver).unwrap();
        assert_ne!(both[slot], driver[slot]);
    }
}
