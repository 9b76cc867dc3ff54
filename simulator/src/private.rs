//! Files that hold secrets, created readable by their owner only.
//!
//! Card images (their header carries the device key that seals the card's
//! secrets), traces (a defect elsewhere must not become readable by every
//! user of the machine), the CMS database, its master secret, the test CA's
//! key and the self-unlock outbox (security codes) all come through here:
//! files mode `0600`, directories `0700`, whatever the umask.

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Owner read and write.
pub const FILE_MODE: u32 = 0o600;
/// Owner only.
pub const DIR_MODE: u32 = 0o700;

/// Creates `path`, which must not exist, mode `0600`.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Opens `path` for appending, creating it mode `0600`; an existing file
/// is narrowed to `0600` too.
pub fn append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Writes `bytes` to a new file `path`, mode `0600`.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = create_new(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes `bytes` to `path`, replacing what was there; the file is `0600`.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes sure `path` exists, mode `0600`, without touching its contents
/// (for files another library opens, such as the SQLite database).
pub fn touch(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))
}

/// Creates `dir` and its missing parents; the ones it creates are `0700`.
pub fn dir_all(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// A fresh path in the system's temporary directory, `prefix` and 16
/// random hex digits: for files and directories this process creates with
/// the modes above.
pub fn temp_path(prefix: &str) -> io::Result<std::path::PathBuf> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("no OS randomness: {e}")))?;
    let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(std::env::temp_dir().join(format!("{prefix}{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn owner_only_whatever_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        dir_all(&sub).unwrap();
        assert_eq!(mode(&sub), DIR_MODE);
        let f = sub.join("new");
        write_new(&f, b"x").unwrap();
        assert_eq!(mode(&f), FILE_MODE);
        let loose = sub.join("loose");
        std::fs::write(&loose, b"").unwrap();
        std::fs::set_permissions(&loose, Permissions::from_mode(0o644)).unwrap();
        append(&loose).unwrap();
        assert_eq!(mode(&loose), FILE_MODE);
        let db = sub.join("db");
        touch(&db).unwrap();
        assert_eq!(mode(&db), FILE_MODE);
    }
}
