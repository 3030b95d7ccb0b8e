//! Version macros and runtime version checks, all derived from the package
//! version in Cargo.toml: nothing here is written by hand. The header's
//! `#define`s are rendered by [`header_macros`] when the header is
//! generated (`tests/header.rs`), so a version bump in Cargo.toml makes the
//! committed header stale until it is regenerated.

use std::ffi::{c_char, c_int};

/// Parses a decimal version component at compile time.
const fn parse(digits: &str) -> c_int {
    let bytes = digits.as_bytes();
    let mut value: c_int = 0;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as c_int;
        i += 1;
    }
    value
}

/// cbindgen:ignore
pub const BILLIARD_VERSION_MAJOR: c_int = parse(env!("CARGO_PKG_VERSION_MAJOR"));
/// cbindgen:ignore
pub const BILLIARD_VERSION_MINOR: c_int = parse(env!("CARGO_PKG_VERSION_MINOR"));
/// cbindgen:ignore
pub const BILLIARD_VERSION_PATCH: c_int = parse(env!("CARGO_PKG_VERSION_PATCH"));
/// cbindgen:ignore
pub const BILLIARD_VERSION_NUMBER: c_int =
    BILLIARD_VERSION_MAJOR * 10000 + BILLIARD_VERSION_MINOR * 100 + BILLIARD_VERSION_PATCH;
/// The ABI: the version number of the first release that has it. While 0.x
/// every minor may break the ABI (0.1.x is 100, 0.2.x 200); from 1.0 only a
/// major does (1.x is 10000).
///
/// cbindgen:ignore
pub const BILLIARD_ABI_VERSION: c_int = if BILLIARD_VERSION_MAJOR == 0 {
    BILLIARD_VERSION_MINOR * 100
} else {
    BILLIARD_VERSION_MAJOR * 10000
};
/// The shared library's soname (set by build.rs from the same rule).
///
/// cbindgen:ignore
pub const BILLIARD_SONAME: &str = env!("BILLIARD_SONAME");

/// The header's version block: the macros above as `#define`s, with the
/// start-up check a host should do.
pub fn header_macros() -> String {
    format!(
        r#"
/**
 * The version of this header (from Cargo.toml; generated, never edited).
 * BILLIARD_VERSION_NUMBER is MAJOR * 10000 + MINOR * 100 + PATCH, for #if.
 */
#define BILLIARD_VERSION_MAJOR {major}
#define BILLIARD_VERSION_MINOR {minor}
#define BILLIARD_VERSION_PATCH {patch}
#define BILLIARD_VERSION_NUMBER {number}
#define BILLIARD_VERSION_STRING "{version}"

/**
 * The ABI this header describes: the version number of the first release
 * with this ABI. While 0.x every minor may break the ABI; from 1.0 only a
 * major. BILLIARD_SONAME is the shared library's soname, for dlopen().
 *
 * Start-up check: a host built against this header checks, once, before
 * any other call, that the library it loaded has the same ABI:
 *
 *     if (billiard_abi_version() != BILLIARD_ABI_VERSION) {{
 *         fprintf(stderr, "libbilliard %s has ABI %d; built for %d\n",
 *                 billiard_version(), billiard_abi_version(),
 *                 BILLIARD_ABI_VERSION);
 *         exit(1);
 *     }}
 *
 * Within one ABI a newer library serves an older host (structs carry
 * struct_size); billiard_version() names the exact release.
 */
#define BILLIARD_ABI_VERSION {abi}
#define BILLIARD_SONAME "{soname}""#,
        major = BILLIARD_VERSION_MAJOR,
        minor = BILLIARD_VERSION_MINOR,
        patch = BILLIARD_VERSION_PATCH,
        number = BILLIARD_VERSION_NUMBER,
        version = env!("CARGO_PKG_VERSION"),
        abi = BILLIARD_ABI_VERSION,
        soname = BILLIARD_SONAME,
    )
}

/// The library's version as "MAJOR.MINOR.PATCH" (BILLIARD_VERSION_STRING of
/// the header it was built with); static, never NULL.
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
