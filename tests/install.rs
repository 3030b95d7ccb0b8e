//! The library installs and links like a system library: `make install`
//! into a temporary prefix, then examples/quickstart.c is built with
//! pkg-config, shared and static, and both run. Also: the shared library
//! exports exactly the header's functions (nm -D), and its soname follows
//! the ABI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd`, fails the test with its output unless it succeeds; returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// The dynamic section's NEEDED entries and SONAME of an ELF file.
fn dynamic(path: &Path, tag: &str) -> Vec<String> {
    run(Command::new("objdump").arg("-p").arg(path))
        .lines()
        .filter_map(|l| l.trim().strip_prefix(tag).map(|v| v.trim().to_owned()))
        .collect()
}

/// The functions the header declares.
fn header_functions() -> BTreeSet<String> {
    let header = std::fs::read_to_string(root().join("include/billiard.h")).unwrap();
    let mut names = BTreeSet::new();
    for line in header
        .lines()
        .filter(|l| !l.starts_with(' ') && l.contains('('))
    {
        let before = &line[..line.find('(').unwrap()];
        if let Some(name) = before.split([' ', '*']).next_back() {
            if name.starts_with("billiard_") && !line.starts_with("typedef") {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

fn temp_prefix(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("billiard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Whether `tool` runs; when it does not, says the test is skipped (or
/// fails under `CI=true`, where every tool must be installed).
fn have(tool: &str, test: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{tool} is missing: CI must install it"
    );
    eprintln!("SKIPPED {test}: {tool} is not installed");
    false
}

#[test]
fn make_install_then_link_with_pkg_config_shared_and_static() {
    if !have("pkg-config", "the install test") {
        return;
    }
    let prefix = temp_prefix("install");
    let make = |target: &str| {
        run(Command::new("make")
            .current_dir(root())
            .arg(target)
            .arg(format!("PREFIX={}", prefix.display())))
    };
    make("install");
    let lib = prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");
    let soname = billiard::ffi::version::BILLIARD_SONAME;

    // The file, the soname link, the development link.
    let real = lib.join(format!("libbilliard.so.{version}"));
    assert!(real.is_file() && !real.is_symlink());
    assert_eq!(dynamic(&real, "SONAME"), [soname]);
    assert_eq!(
        std::fs::read_link(lib.join(soname)).unwrap(),
        Path::new(&format!("libbilliard.so.{version}"))
    );
    assert_eq!(
        std::fs::read_link(lib.join("libbilliard.so")).unwrap(),
        Path::new(soname)
    );
    for file in [
        "lib/libbilliard.a",
        "include/billiard.h",
        "bin/billiard-worker",
    ] {
        assert!(prefix.join(file).is_file(), "{file} not installed");
    }
    // The plugin runner runs from the prefix (usage: exit 2).
    let usage = Command::new(prefix.join("bin/billiard-worker"))
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));

    let pkg_config = |args: &[&str]| {
        run(Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
            .env("PKG_CONFIG_LIBDIR", lib.join("pkgconfig"))
            .args(args)
            .arg("billiard"))
    };
    assert_eq!(pkg_config(&["--modversion"]).trim(), version);
    let cflags = words(&pkg_config(&["--cflags"]));
    let shared = words(&pkg_config(&["--libs"]));
    // The static line: the archive by name, then the private libraries.
    let static_line: Vec<String> = words(&pkg_config(&["--static", "--libs"]))
        .into_iter()
        .map(|w| {
            if w == "-lbilliard" {
                "-l:libbilliard.a".into()
            } else {
                w
            }
        })
        .collect();

    let out_dir = prefix.join("build");
    std::fs::create_dir_all(&out_dir).unwrap();
    for (name, libs) in [("shared", &shared), ("static", &static_line)] {
        let exe = out_dir.join(format!("quickstart-{name}"));
        run(Command::new("cc")
            .current_dir(root())
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .args(&cflags)
            .arg("examples/quickstart.c")
            .arg("-o")
            .arg(&exe)
            .args(libs));
        let needed = dynamic(&exe, "NEEDED");
        assert_eq!(
            needed.iter().any(|n| n == soname),
            name == "shared",
            "{name} quickstart needs {needed:?}"
        );
        // The shared one finds the library by its soname in the prefix.
        let out = run(Command::new(&exe)
            .env("LD_LIBRARY_PATH", &lib)
            .env_remove("LD_PRELOAD"));
        assert!(
            out.contains("\"the quick brown fox\": ok: 4 words"),
            "{out}"
        );
    }

    make("uninstall");
    let left: Vec<_> = walk(&prefix)
        .into_iter()
        .filter(|p| !p.starts_with(&out_dir) && p.is_file())
        .collect();
    assert!(left.is_empty(), "left after uninstall: {left:?}");
    let _ = std::fs::remove_dir_all(&prefix);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// billiard.pc's Libs.private is what rustc says a program linking the
/// static library needs.
#[test]
fn pc_private_libs_match_rustc_native_static_libs() {
    let template = std::fs::read_to_string(root().join("billiard.pc.in")).unwrap();
    let private = template
        .lines()
        .find_map(|l| l.strip_prefix("Libs.private:"))
        .expect("Libs.private in billiard.pc.in");
    // A target dir of its own: the extra rustc flag would rebuild (and
    // replace, under running tests) the library in the main one.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .env("CARGO_TARGET_DIR", root().join("target/native-static-libs"))
        .args(["rustc", "--lib", "--crate-type", "staticlib", "--"])
        .args(["--print", "native-static-libs"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let said = stderr
        .lines()
        .find_map(|l| l.split("native-static-libs:").nth(1))
        .unwrap_or_else(|| panic!("no native-static-libs line in:\n{stderr}"));
    assert_eq!(words(private), words(said));
}

/// The shared library exports the header's functions and nothing else.
#[test]
fn shared_library_exports_only_the_header_functions() {
    let exe = std::env::current_exe().unwrap();
    let so = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libbilliard.so");
    let listing = run(Command::new("nm")
        .args(["-D", "--defined-only", "--format=posix"])
        .arg(&so));
    let exported: BTreeSet<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let declared = header_functions();
    assert!(declared.len() > 50, "header parse found {declared:?}");
    assert_eq!(exported, declared);
    assert_eq!(
        dynamic(&so, "SONAME"),
        [billiard::ffi::version::BILLIARD_SONAME]
    );
}

/// A test step whose toolchain is missing is skipped with a message naming
/// it, and fails in CI (`tests/scripts/optional`, used by `make test`).
#[test]
fn optional_steps_are_skipped_with_a_message_and_fail_in_ci() {
    let script = root().join("tests/scripts/optional");
    let step = |ci: &str, probe: &str| {
        Command::new(&script)
            .env("CI", ci)
            .args(["the Klingon binding", probe, "echo", "ran"])
            .output()
            .unwrap()
    };
    let ran = step("", "true");
    assert!(ran.status.success());
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "ran\n");

    let skipped = step("", "false");
    assert!(skipped.status.success());
    assert!(skipped.stdout.is_empty());
    let said = String::from_utf8_lossy(&skipped.stderr);
    assert!(said.contains("SKIPPED the Klingon binding"), "{said}");

    let failed = step("true", "false");
    assert!(!failed.status.success());
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(said.contains("FAILED the Klingon binding"), "{said}");
}
