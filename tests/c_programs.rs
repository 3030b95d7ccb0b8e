//! Builds the C test programs in tests/c/ and the examples against
//! include/billiard.h and the built shared library, and runs each in its own
//! process with a timeout. Needs the cdylib: `make test` builds it first.
//!
//! `BILLIARD_C_CHECK` runs the same programs under a checker (`make
//! test-c-checked` runs both):
//! - `asan`: built with AddressSanitizer and UndefinedBehaviorSanitizer
//!   (leaks included; any report fails the program);
//! - `valgrind`: run under memcheck; any error or a "definitely lost"
//!   block fails the program.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);

/// The checker the C programs run under (`BILLIARD_C_CHECK`).
#[derive(Clone, Copy, PartialEq)]
enum Checker {
    None,
    Sanitizers,
    Valgrind,
}

fn checker() -> Checker {
    match std::env::var("BILLIARD_C_CHECK").as_deref() {
        Err(_) | Ok("") => Checker::None,
        Ok("asan") => Checker::Sanitizers,
        Ok("valgrind") => Checker::Valgrind,
        Ok(other) => panic!("BILLIARD_C_CHECK={other}: use asan or valgrind"),
    }
}

/// A command that runs the C program `exe` under the checker.
fn program(exe: &Path) -> Command {
    let mut cmd = match checker() {
        Checker::Valgrind => {
            let mut cmd = Command::new("valgrind");
            cmd.args([
                "--quiet",
                // Threads take valgrind's one lock in turn: without it, a
                // host thread that spins on locks (start_methods' busy
                // host) can keep the pool's threads out for minutes.
                "--fair-sched=yes",
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite",
            ])
            .arg(exe)
            .env("BILLIARD_TEST_UNDER_VALGRIND", "1");
            cmd
        }
        _ => Command::new(exe),
    };
    cmd.current_dir(root())
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=98",
        )
        .env(
            "UBSAN_OPTIONS",
            "halt_on_error=1:print_stacktrace=1:exitcode=97",
        );
    cmd
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding libbilliard.so for this build profile.
fn lib_dir() -> PathBuf {
    // tests run from target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        dir.join("libbilliard.so").exists(),
        "{} has no libbilliard.so: build the library first (`make test` does)",
        dir.display()
    );
    dir
}

fn run(cmd: &mut Command, what: &str) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(status.success(), "{what} failed ({status}):\n{text}");
            return text;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} timed out after {TIMEOUT:?}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Compiles `source` with the strict flags and runs it; returns its output.
fn build_and_run(source: &str) -> String {
    let exe = build(source);
    let name = exe.file_name().unwrap().to_string_lossy().to_string();
    run(&mut program(&exe), &name)
}

/// Runs the C test `source` once per start method: FORK with the scripted
/// handler, SPAWN and FORKSERVER with the scripted worker program.
fn run_with_every_start_method(source: &str) {
    let exe = build(source);
    let worker = scripted_worker();
    for method in ["fork", "spawn", "forkserver"] {
        run(
            program(&exe)
                .env("BILLIARD_TEST_START", method)
                .env("BILLIARD_TEST_WORKER", worker),
            &format!("{source} ({method})"),
        );
    }
}

/// The C worker program of SPAWN and FORKSERVER runs, built once.
fn scripted_worker() -> &'static Path {
    static WORKER: OnceLock<PathBuf> = OnceLock::new();
    WORKER.get_or_init(|| build("tests/c/scripted_worker.c"))
}

/// Compiles `source` with the strict flags; returns the executable.
fn build(source: &str) -> PathBuf {
    let lib = lib_dir();
    let out_dir = lib.join(match checker() {
        Checker::Sanitizers => "c-tests-asan",
        _ => "c-tests",
    });
    std::fs::create_dir_all(&out_dir).unwrap();
    let name = Path::new(source)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let exe = out_dir.join(&name);
    run(
        Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .current_dir(root())
            .args([
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-O1",
                "-g",
            ])
            .args([
                "-D_POSIX_C_SOURCE=200809L",
                "-Iinclude",
                "-Itests/c",
                source,
                "-o",
            ])
            .arg(&exe)
            .args(match checker() {
                Checker::Sanitizers => &[
                    "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all",
                    "-fno-omit-frame-pointer",
                ][..],
                _ => &[],
            })
            .arg(format!("-L{}", lib.display()))
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .args(["-lbilliard", "-pthread"]),
        &format!("compiling {source}"),
    );
    exe
}

#[test]
fn quickstart_example() {
    let out = build_and_run("examples/quickstart.c");
    assert!(
        out.contains("\"the quick brown fox\": ok: 4 words"),
        "{out}"
    );
    assert!(
        out.contains("\"every task gets exactly one result\": ok: 6 words"),
        "{out}"
    );
}

/// The C snippet in README.md compiles with the strict flags and runs.
#[test]
fn readme_snippet() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("```c\n").expect("a C snippet in README.md") + 5;
    let len = readme[start..].find("```").unwrap();
    let dir = lib_dir().join("c-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("readme_snippet.c");
    std::fs::write(&src, &readme[start..start + len]).unwrap();
    let out = build_and_run(src.to_str().unwrap());
    if checker() == Checker::Valgrind {
        // valgrind adds its warnings (no pidfd_open in valgrind 3.19).
        assert!(out.starts_with("ok: hello\n"), "{out}");
    } else {
        assert_eq!(out, "ok: hello\n");
    }
}

#[test]
fn poll_fd_example() {
    let out = build_and_run("examples/poll_fd.c");
    for word in ["desserts", "reward", "repaid", "diaper", "live", "nametag"] {
        assert!(out.contains(word), "{word} missing from:\n{out}");
    }
}

#[test]
fn c_worker_lost() {
    run_with_every_start_method("tests/c/worker_lost.c");
}

#[test]
fn c_limits() {
    run_with_every_start_method("tests/c/limits.c");
}

/// The macros, billiard_version() and billiard_abi_version() agree.
#[test]
fn c_version() {
    let out = build_and_run("tests/c/version.c");
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn c_bad_args() {
    build_and_run("tests/c/bad_args.c");
}

#[test]
fn c_threads() {
    run_with_every_start_method("tests/c/threads.c");
}

#[test]
fn c_free_in_flight() {
    run_with_every_start_method("tests/c/free_in_flight.c");
}

#[test]
fn c_host_signals() {
    run_with_every_start_method("tests/c/host_signals.c");
}

#[test]
fn c_worker_hygiene() {
    run_with_every_start_method("tests/c/worker_hygiene.c");
}

#[test]
fn c_start_methods() {
    let exe = build("tests/c/start_methods.c");
    let out = run(program(&exe).arg(scripted_worker()), "start_methods");
    assert!(out.contains("start_methods: ok"), "{out}");
}

/// The header alone compiles cleanly as C99 and as C++11 and C++17 with
/// strict flags.
#[test]
fn header_compiles_alone_as_c_and_cpp() {
    let dir = lib_dir().join("c-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("header_only.c");
    std::fs::write(
        &src,
        "#include \"billiard.h\"\nint main(void) { return BILLIARD_OK; }\n",
    )
    .unwrap();
    let strict = [
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-Iinclude",
        "-c",
        "-o",
        "/dev/null",
    ];
    run(
        Command::new("cc")
            .current_dir(root())
            .arg("-std=c99")
            .args(strict)
            .arg(&src),
        "header as C99",
    );
    for standard in ["c++11", "c++17"] {
        run(
            Command::new("c++")
                .current_dir(root())
                .args(["-x", "c++", &format!("-std={standard}")])
                .args(strict)
                .arg(&src),
            &format!("header as {standard}"),
        );
    }
}

#[test]
fn c_frameworks() {
    run_with_every_start_method("tests/c/frameworks.c");
}

#[test]
fn c_adopted_server() {
    let out = build_and_run("tests/c/adopted_server.c");
    assert!(out.contains("adopted server: ok"), "{out}");
}
