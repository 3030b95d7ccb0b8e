//! include/billiard.h is generated from the sources and committed; this test
//! regenerates it and fails on any difference. `BILLIARD_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn header_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    // What cbindgen cannot see is rendered from the sources: the version
    // macros and the error codes (from the error table).
    config.after_includes = Some(format!(
        "{}{}",
        billiard::ffi::version::header_macros(),
        billiard::ffi::header_defines()
    ));
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

/// The error codes come from one table (src/ffi/error.rs): the header's
/// defines, and the bindings' copies, agree with it.
#[test]
fn error_codes_come_from_one_table_and_the_bindings_agree() {
    use std::collections::BTreeMap;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let table: BTreeMap<String, i32> = billiard::ffi::error_codes()
        .map(|(code, name)| (name.to_string(), code))
        .collect();
    assert_eq!(table.len(), 11);
    let header = std::fs::read_to_string(root.join("include/billiard.h")).unwrap();
    for (name, code) in &table {
        assert!(
            header.contains(&format!("#define {name} {code}\n")),
            "{name} in the header"
        );
        // Each name and text, through the C functions.
        let c_name = unsafe { std::ffi::CStr::from_ptr(billiard::ffi::billiard_errname(*code)) };
        assert_eq!(c_name.to_str().unwrap(), name);
        let text = unsafe { std::ffi::CStr::from_ptr(billiard::ffi::billiard_strerror(*code)) };
        assert!(!text.to_bytes().is_empty() && text.to_str().unwrap() != "unknown error");
    }
    let unknown = unsafe { std::ffi::CStr::from_ptr(billiard::ffi::billiard_errname(-99)) };
    assert_eq!(unknown.to_str().unwrap(), "BILLIARD_E?");
    // Python: "EINVAL, ETIMEDOUT, ... = -1, -2, ..." lines in _lib.py.
    let python = std::fs::read_to_string(root.join("bindings/python/libbilliard/_lib.py")).unwrap();
    let mut seen = 0;
    for line in python.lines() {
        let Some((names, values)) = line.split_once(" = ") else {
            continue;
        };
        if !names.trim_start().starts_with('E') || !names.contains(',') {
            continue;
        }
        for (name, value) in names.split(',').zip(values.split(',')) {
            let full = format!("BILLIARD_{}", name.trim());
            let value: i32 = value.trim().parse().unwrap();
            assert_eq!(table.get(&full), Some(&value), "Python's {full}");
            seen += 1;
        }
    }
    assert_eq!(seen, table.len() - 1, "Python names every error code");
    // Ruby: "  ENAME = -N" constants in billiard.rb.
    let ruby = std::fs::read_to_string(root.join("bindings/ruby/lib/billiard.rb")).unwrap();
    let mut seen = 0;
    for line in ruby.lines() {
        let line = line.trim();
        let Some((name, value)) = line.split_once(" = ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<i32>() else {
            continue;
        };
        if !name.starts_with('E') || name.contains(' ') {
            continue;
        }
        let full = format!("BILLIARD_{name}");
        assert_eq!(table.get(&full), Some(&value), "Ruby's {full}");
        seen += 1;
    }
    assert!(seen >= 5, "Ruby's error codes found ({seen})");
    // Go uses the header's constants through cgo (C.BILLIARD_*): nothing to
    // copy, but every name it uses must exist.
    let go = std::fs::read_to_string(root.join("bindings/go/billiard.go")).unwrap();
    for (at, _) in go.match_indices("C.BILLIARD_E") {
        let name: String = go[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        assert!(table.contains_key(&name), "Go's {name}");
    }
}
