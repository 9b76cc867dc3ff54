//! A PKCS#11 module that fronts another one (OpenSC's, by default) and logs
//! in to each token when a session opens, with the passcode read from a
//! file only its owner can read: what a kiosk, or a test harness driving
//! a browser, does where no person is there to type it. NSS (Chromium,
//! Firefox) asks its application for a token's passcode through a dialog;
//! a headless browser has none, and would wait for ever. With this module
//! in its database instead of OpenSC's, the session NSS opens is already
//! logged in, so NSS never asks, and every signature still goes to the
//! card with the passcode verified on it.
//!
//! Everything but `C_OpenSession` is the fronted module's own function.
//! The passcode is read at each login and wiped after it; a refused
//! passcode is never sent again by this process (a wrong file must not
//! block the card, one try per session NSS opens).
//!
//! Configuration, by environment (inherited by the browser's processes):
//! `S9CARD_KIOSK_PASSCODE_FILE` (required: mode 0600 or stricter, else no
//! login) and `S9CARD_KIOSK_MODULE` (default `opensc-pkcs11.so`).

mod ffi;
mod passcode;

pub use passcode::{PasscodeError, read_passcode};
