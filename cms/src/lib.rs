//! Credential management: the card-side half of what registration
//! authorities and sponsors do (personalisation, unlock, renewal), with a
//! test CA, derived card secrets and a local database. It talks to cards
//! only through [`client::PivClient`], so it works with a physical
//! reader as well as with the virtual one.

pub mod bulk;
pub mod ca;
pub mod content;
pub mod db;
pub mod derive;
pub mod error;
pub mod flows;
pub mod key_history;
pub mod keys;
pub mod oid;
pub mod sm;
pub mod time;

pub use error::{CmsError, Result, Step};
