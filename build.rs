//! Link flags and the files that make a build tree usable like an install:
//!
//! - The shared library gets its soname and a version script that exports
//!   only `billiard_*` (`billiard.map`). The soname follows the ABI, which
//!   is derived from the package version here (and in src/ffi/version.rs,
//!   by the same rule, which a test checks): `libbilliard.so.0.MINOR` while
//!   0.x (every minor may break the ABI), `libbilliard.so.MAJOR` from 1.0.
//! - In `target/<profile>/`: the soname link (`libbilliard.so.0.1 ->
//!   libbilliard.so`), which programs linked there load, and
//!   `pkgconfig/billiard-uninstalled.pc`, for building against the source
//!   tree (`PKG_CONFIG_PATH=target/<profile>/pkgconfig`).
//! - The plugin runner (`billiard-worker`) exports the library's
//!   `billiard_*` functions, so the plugins it loads can call
//!   `billiard_reply_write` without linking libbilliard themselves.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    let minor = env::var("CARGO_PKG_VERSION_MINOR").unwrap();
    let soname = if major == "0" {
        format!("libbilliard.so.0.{minor}")
    } else {
        format!("libbilliard.so.{major}")
    };
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        root.join("billiard.map").display()
    );
    println!("cargo:rustc-env=BILLIARD_SONAME={soname}");
    println!("cargo:rustc-link-arg-bin=billiard-worker=-Wl,--export-dynamic-symbol=billiard_*");
    for input in ["build.rs", "billiard.map", "billiard.pc.in"] {
        println!("cargo:rerun-if-changed={input}");
    }

    // OUT_DIR is target/<profile>/build/billiard-<hash>/out.
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let Some(profile_dir) = out_dir.ancestors().nth(3) else {
        return;
    };
    let link = profile_dir.join(&soname);
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink("libbilliard.so", &link).expect("soname link in the target dir");
    write_uninstalled_pc(&root, profile_dir);
}

/// billiard.pc.in filled in for the source tree, with an rpath so that
/// programs built against it run from there.
fn write_uninstalled_pc(root: &Path, profile_dir: &Path) {
    let template = fs::read_to_string(root.join("billiard.pc.in")).expect("billiard.pc.in");
    let pc = template
        .replace("@PREFIX@", &root.display().to_string())
        .replace("@LIBDIR@", &profile_dir.display().to_string())
        .replace("@INCLUDEDIR@", "${prefix}/include")
        .replace("@VERSION@", &env::var("CARGO_PKG_VERSION").unwrap())
        .replace("@EXTRA_LIBS@", " -Wl,-rpath,${libdir}");
    let dir = profile_dir.join("pkgconfig");
    fs::create_dir_all(&dir).expect("pkgconfig dir");
    fs::write(dir.join("billiard-uninstalled.pc"), pc).expect("billiard-uninstalled.pc");
}
