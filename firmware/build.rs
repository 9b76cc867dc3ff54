//! Puts the board's memory map where cortex-m-rt's `link.x` looks for it
//! (`memory.x`): `memory/mps2.x`, or with the `board-stm32f429` feature
//! `memory/stm32f429.x`.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let map = if env::var_os("CARGO_FEATURE_BOARD_STM32F429").is_some() {
        "memory/stm32f429.x"
    } else {
        "memory/mps2.x"
    };
    fs::copy(map, out.join("memory.x")).expect("the board's memory map is in the crate");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory");
}
