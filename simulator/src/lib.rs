//! The host side of s9card: simulated cards in card images, served to
//! PC/SC through vsmartcard's vpcd, with decoded traces.
pub mod card;
/// The host PIV client (its own crate, `s9card-piv-client`).
pub use piv_client as client;
pub mod cms;
pub mod firmware;
pub mod fixture;
pub mod image;
pub mod latency;
pub mod private;
pub mod readers;
pub mod scenario;
pub mod server;
pub mod trace;
pub mod up;
pub mod vpcd;
pub mod vpcd_driver;

use std::path::PathBuf;

/// The user's s9card data directory (default image, control socket).
pub fn data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "s9card")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("s9card"))
}
