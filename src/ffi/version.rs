//! Version macros and runtime version checks. The macros are literal values
//! (cbindgen emits them as `#define`s); a test checks they match Cargo.toml.

use std::ffi::{c_char, c_int};

/// Major version of the header.
pub const BILLIARD_VERSION_MAJOR: c_int = 0;
/// Minor version of the header.
pub const BILLIARD_VERSION_MINOR: c_int = 1;
/// Patch version of the header.
pub const BILLIARD_VERSION_PATCH: c_int = 0;
/// MAJOR * 10000 + MINOR * 100 + PATCH, for `#if` comparisons.
pub const BILLIARD_VERSION_NUMBER: c_int = 100;
/// The ABI this header describes; compare with billiard_abi_version() at
/// start-up to detect a mismatched library. Raised on every ABI break.
pub const BILLIARD_ABI_VERSION: c_int = 1;

/// The library's version as "MAJOR.MINOR.PATCH"; static, never NULL.
#[no_mangle]
pub extern "C" fn billiard_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI version of the library actually loaded. A host checks
/// `billiard_abi_version() == BILLIARD_ABI_VERSION` once at start-up.
#[no_mangle]
pub extern "C" fn billiard_abi_version() -> c_int {
    BILLIARD_ABI_VERSION
}
