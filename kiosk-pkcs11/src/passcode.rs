//! The passcode file: owner-only, one line.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use zeroize::Zeroizing;

/// Why the passcode file was not used.
#[derive(Debug, PartialEq, Eq)]
pub enum PasscodeError {
    /// It could not be opened or read.
    Unreadable,
    /// Its group or others may read or write it.
    Exposed,
    /// It is empty or longer than a PIV passcode (8 bytes).
    BadLength,
}

/// The longest passcode PIV has.
const MAX_PASSCODE: usize = 8;

/// Reads the passcode from `path`: the file must be its owner's alone,
/// and hold the passcode, optionally followed by a newline.
pub fn read_passcode(path: &Path) -> Result<Zeroizing<Vec<u8>>, PasscodeError> {
    let mut file = std::fs::File::open(path).map_err(|_| PasscodeError::Unreadable)?;
    let mode = file
        .metadata()
        .map_err(|_| PasscodeError::Unreadable)?
        .mode();
    if mode & 0o077 != 0 {
        return Err(PasscodeError::Exposed);
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_PASSCODE + 2));
    // A file larger than a passcode line is not read whole.
    file.by_ref()
        .take(MAX_PASSCODE as u64 + 3)
        .read_to_end(&mut bytes)
        .map_err(|_| PasscodeError::Unreadable)?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() || bytes.len() > MAX_PASSCODE {
        return Err(PasscodeError::BadLength);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn an_owner_only_file_gives_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "p", b"482915\n", 0o600);
        assert_eq!(read_passcode(&path).unwrap().as_slice(), b"482915");
        let path = file(dir.path(), "q", b"48291577", 0o400);
        assert_eq!(read_passcode(&path).unwrap().as_slice(), b"48291577");
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o606, 0o620] {
            let path = file(dir.path(), "p", b"482915\n", mode);
            assert_eq!(
                read_passcode(&path),
                Err(PasscodeError::Exposed),
                "{mode:o}"
            );
        }
    }

    #[test]
    fn empty_long_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = file(dir.path(), "e", b"\n", 0o600);
        assert_eq!(read_passcode(&empty), Err(PasscodeError::BadLength));
        let long = file(dir.path(), "l", b"1234567890123\n", 0o600);
        assert_eq!(read_passcode(&long), Err(PasscodeError::BadLength));
        let missing = dir.path().join("none");
        assert_eq!(read_passcode(&missing), Err(PasscodeError::Unreadable));
    }
}
