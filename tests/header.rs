//! include/billiard.h is generated from the sources and committed; this test
//! regenerates it and fails on any difference. `BILLIARD_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn header_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(billiard::ffi::version::header_macros());
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = root.join("include/billiard.h");
    if std::env::var_os("BILLIARD_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/billiard.h is stale: run `BILLIARD_BLESS=1 cargo test --test header` and commit it"
    );
}

/// The version constants (and so the header's macros, rendered from them)
/// follow Cargo.toml; the ABI and soname follow the one rule for both.
#[test]
fn version_macros_match_cargo_toml() {
    use billiard::ffi::*;
    let major: i32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
    let minor: i32 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
    let patch: i32 = env!("CARGO_PKG_VERSION_PATCH").parse().unwrap();
    assert_eq!(BILLIARD_VERSION_MAJOR, major);
    assert_eq!(BILLIARD_VERSION_MINOR, minor);
    assert_eq!(BILLIARD_VERSION_PATCH, patch);
    assert_eq!(BILLIARD_VERSION_NUMBER, major * 10000 + minor * 100 + patch);
    let (abi, soname) = if major == 0 {
        (minor * 100, format!("libbilliard.so.0.{minor}"))
    } else {
        (major * 10000, format!("libbilliard.so.{major}"))
    };
    assert_eq!(BILLIARD_ABI_VERSION, abi);
    assert_eq!(version::BILLIARD_SONAME, soname);
    let runtime = unsafe { std::ffi::CStr::from_ptr(billiard_version()) };
    assert_eq!(runtime.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    assert_eq!(billiard_abi_version(), BILLIARD_ABI_VERSION);
    let macros = version::header_macros();
    for define in [
        format!(
            "#define BILLIARD_VERSION_STRING \"{}\"",
            env!("CARGO_PKG_VERSION")
        ),
        format!("#define BILLIARD_ABI_VERSION {abi}\n"),
        format!("#define BILLIARD_SONAME \"{soname}\""),
    ] {
        assert!(macros.contains(&define), "{define} not in:\n{macros}");
    }
}

/// The bindings are written for one ABI and carry the package version;
/// both must follow Cargo.toml (a binding's load-time ABI check would
/// otherwise refuse the library, or accept one it was not written for).
#[test]
fn bindings_follow_the_abi_and_version() {
    use billiard::ffi::{version::BILLIARD_SONAME, BILLIARD_ABI_VERSION};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let abi = BILLIARD_ABI_VERSION;
    let version = env!("CARGO_PKG_VERSION");
    for (file, needles) in [
        (
            "bindings/python/libbilliard/_lib.py",
            vec![
                format!("ABI_VERSION = {abi}\n"),
                format!("SONAME = \"{BILLIARD_SONAME}\"\n"),
            ],
        ),
        (
            "bindings/ruby/lib/billiard.rb",
            vec![
                format!("ABI_VERSION = {abi}\n"),
                format!("SONAME = \"{BILLIARD_SONAME}\"\n"),
            ],
        ),
        (
            "bindings/go/billiard.go",
            vec![format!("const ABIVersion = {abi}\n")],
        ),
        (
            "bindings/python/pyproject.toml",
            vec![format!("version = \"{version}\"\n")],
        ),
        (
            "bindings/ruby/billiard.gemspec",
            vec![format!("spec.version = \"{version}\"\n")],
        ),
    ] {
        let text = read(file);
        for needle in needles {
            assert!(text.contains(&needle), "{file} lacks {needle:?}");
        }
    }
}
