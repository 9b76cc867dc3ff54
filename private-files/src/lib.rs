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

/// This user's directory for lock files, `$TMPDIR/s9card-locks-UID`,
/// mode `0700`. In a directory every user writes, a name another user
/// chose first could be a symlink to a file of ours (or, for root, any
/// file); in this one only we create names. An existing one is used only if
/// it is a real directory of ours that no one else can write.
pub fn lock_dir() -> io::Result<std::path::PathBuf> {
    lock_dir_in(&std::env::temp_dir())
}

fn lock_dir_in(base: &Path) -> io::Result<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")?.uid();
    let dir = base.join(format!("s9card-locks-{uid}"));
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
        Ok(()) => return Ok(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let found = std::fs::symlink_metadata(&dir)?;
    if !found.file_type().is_dir() || found.uid() != uid || found.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory that only this user (uid {uid}) can write: remove it",
                dir.display()
            ),
        ));
    }
    Ok(dir)
}

/// Lock file `name` in [`lock_dir`], opened for locking: created `0600`
/// if new (`O_EXCL`, which never follows a symlink), else opened only if
/// it is a regular file. Nothing is ever chmodded.
pub fn lock_file(name: &str) -> io::Result<File> {
    lock_file_in(&std::env::temp_dir(), name)
}

fn lock_file_in(base: &Path, name: &str) -> io::Result<File> {
    let path = lock_dir_in(base)?.join(name);
    match create_new(&path) {
        Ok(file) => return Ok(file),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if !std::fs::symlink_metadata(&path)?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a regular file", path.display()),
        ));
    }
    OpenOptions::new().write(true).open(path)
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

    #[test]
    fn lock_files_never_follow_a_planted_name_nor_widen_a_mode() {
        use std::os::unix::fs::{MetadataExt, symlink};
        let uid = std::fs::metadata("/proc/self").unwrap().uid();
        let base = tempfile::tempdir().unwrap();
        let victim = base.path().join("victim");
        std::fs::write(&victim, b"secret").unwrap();
        std::fs::set_permissions(&victim, Permissions::from_mode(0o600)).unwrap();

        // A lock directory someone else made a symlink: refused.
        let planted = base.path().join(format!("s9card-locks-{uid}"));
        symlink(base.path().join("elsewhere"), &planted).unwrap();
        std::fs::create_dir(base.path().join("elsewhere")).unwrap();
        assert_eq!(
            lock_file_in(base.path(), "a.lock").unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        std::fs::remove_file(&planted).unwrap();

        // One that others can write: refused.
        std::fs::create_dir(&planted).unwrap();
        std::fs::set_permissions(&planted, Permissions::from_mode(0o777)).unwrap();
        assert_eq!(
            lock_file_in(base.path(), "a.lock").unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        std::fs::set_permissions(&planted, Permissions::from_mode(0o700)).unwrap();

        // A lock name that is a symlink to a file: refused, and the file
        // keeps its mode (0457aa2 made it 0666).
        symlink(&victim, planted.join("s9card-reader-0.lock")).unwrap();
        assert!(lock_file_in(base.path(), "s9card-reader-0.lock").is_err());
        assert_eq!(mode(&victim), 0o600);

        // A new lock file is the owner's alone, and the next open finds it.
        let lock = lock_file_in(base.path(), "s9card-e2e.lock").unwrap();
        assert_eq!(mode(&planted.join("s9card-e2e.lock")), FILE_MODE);
        lock.lock().unwrap();
        let again = lock_file_in(base.path(), "s9card-e2e.lock").unwrap();
        assert!(again.try_lock().is_err());
    }
}
