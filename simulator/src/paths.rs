//! Where the command keeps its files when the command line does not say.

use std::path::PathBuf;

/// The user's s9card data directory: the default card, the control
/// socket, the CMS database, `s9card up`'s state.
pub fn data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "s9card")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("s9card"))
}

/// The running server's control socket.
pub fn control(p: Option<PathBuf>) -> PathBuf {
    p.unwrap_or_else(|| data_dir().join("s9card.sock"))
}
