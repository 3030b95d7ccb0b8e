//! SPAWN and FORKSERVER through the Rust API: a worker written in Python
//! from docs/PROTOCOL.md alone, and the billiard-worker plugin runner with a
//! handler in a C shared object.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use billiard::{Config, Error, Outcome, Pool, StartMethod, TaskOptions};

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ask(pool: &Pool, input: &[u8]) -> billiard::TaskResult {
    let id = pool.submit(input, &TaskOptions::default()).unwrap();
    pool.wait_task(id, WAIT).unwrap()
}

fn python_pool(workers: usize) -> Pool {
    let script = root().join("tests/python/worker.py");
    let config = Config::new()
        .workers(workers)
        .start_method(StartMethod::Spawn)
        .worker_argv(&["python3", script.to_str().unwrap()])
        .unwrap();
    Pool::new(config).unwrap()
}

/// The Python worker serves tasks: replies, failures, exit codes, and
/// payloads large enough that billiard's own workers would get them
/// through the shared area (this one declines it: they come in frames).
#[test]
fn a_python_worker_written_from_the_protocol_document_serves_tasks() {
    let pool = python_pool(2);
    let r = ask(&pool, b"upper:hello from python");
    assert_eq!(
        r.outcome,
        Outcome::Ok,
        "{}",
        String::from_utf8_lossy(&r.data)
    );
    assert_eq!(r.data, b"HELLO FROM PYTHON");

    let r = ask(&pool, b"fail:no such thing");
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.data, b"no such thing");

    let mut big = b"upper:".to_vec();
    big.extend(std::iter::repeat_n(b'x', 3 << 20));
    let r = ask(&pool, &big);
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(r.data.len(), 3 << 20);
    assert!(r.data.iter().all(|&b| b == b'X'));

    // Many at once, over both workers (ACK frames, prefetched tasks).
    let ids: Vec<u64> = (0..200)
        .map(|i| {
            pool.submit(
                format!("upper:task {i}").as_bytes(),
                &TaskOptions::default(),
            )
            .unwrap()
        })
        .collect();
    let mut pids = std::collections::HashSet::new();
    for (i, id) in ids.into_iter().enumerate() {
        let r = pool.wait_task(id, WAIT).unwrap();
        assert_eq!(r.data, format!("TASK {i}").as_bytes());
        pids.insert(r.pid);
    }
    assert_eq!(pids.len(), 2, "both workers served");

    let r = ask(&pool, b"exit:9");
    assert_eq!(r.outcome, Outcome::WorkerLost);
    assert_eq!(r.exit_code, Some(9));
    let r = ask(&pool, b"upper:replaced");
    assert_eq!(r.data, b"REPLACED");
    pool.close().unwrap();
    pool.join(WAIT).unwrap();
}

/// The plugin as a shared object (built once).
fn plugin() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let so = dir.join("libtestplugin.so");
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .current_dir(root())
            .args([
                "-std=c99", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
            ])
            .args(["-Iinclude", "tests/c/plugin.c", "-o"])
            .arg(&so)
            .status()
            .expect("a C compiler");
        assert!(status.success(), "building the test plugin");
        so
    })
}

fn plugin_config(method: StartMethod, workers: usize, extra: &[&str]) -> Config {
    let mut argv = vec![
        env!("CARGO_BIN_EXE_billiard-worker"),
        "--plugin",
        plugin().to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    Config::new()
        .workers(workers)
        .start_method(method)
        .worker_argv(&argv)
        .unwrap()
}

/// "worker-pid init-pid" from the plugin's "who".
fn who(pool: &Pool) -> (u32, u32) {
    let r = ask(pool, b"who");
    assert_eq!(
        r.outcome,
        Outcome::Ok,
        "{}",
        String::from_utf8_lossy(&r.data)
    );
    let text = String::from_utf8(r.data).unwrap();
    let mut parts = text.split(' ').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

/// billiard-worker runs a handler from a shared object under SPAWN (the
/// initializer runs in each worker) and FORKSERVER (once, in the server).
#[test]
fn the_plugin_runner_serves_a_handler_from_a_shared_object() {
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let config = plugin_config(
            method,
            2,
            &["--symbol", "plugin_handle", "--init", "plugin_init"],
        )
        .prefetch(1)
        .unwrap();
        let pool = Pool::new(config).unwrap();
        let r = ask(&pool, b"stressed");
        assert_eq!(r.data, b"desserts");
        let mut inits = std::collections::HashSet::new();
        for _ in 0..20 {
            let (worker, init) = who(&pool);
            match method {
                StartMethod::Spawn => assert_eq!(worker, init, "each worker ran its initializer"),
                _ => assert_ne!(worker, init, "the server ran the initializer"),
            }
            inits.insert(init);
        }
        if method == StartMethod::ForkServer {
            assert_eq!(inits.len(), 1, "one initializer run for every worker");
        }
        drop(pool);
    }
}

/// A fork server's worker's exit code comes from the server's report, with
/// or without pidfds (kernels before 5.3: the test hook); the replacement
/// serves; and once the pool is dropped the server is gone too.
#[test]
fn fork_server_workers_exit_codes_are_reported_with_or_without_pidfds() {
    for pidfds in [true, false] {
        let mut config = plugin_config(
            StartMethod::ForkServer,
            2,
            &["--symbol", "plugin_handle", "--init", "plugin_init"],
        );
        if !pidfds {
            config = config.without_pidfd();
        }
        let pool = Pool::new(config).unwrap();
        let (_, server) = who(&pool);
        assert!(server > 0);
        for _ in 0..3 {
            let r = ask(&pool, b"die");
            assert_eq!(r.outcome, Outcome::WorkerLost, "pidfds {pidfds}");
            assert_eq!(r.exit_code, Some(5), "pidfds {pidfds}: {}", r.text());
            assert_eq!(ask(&pool, b"abc").data, b"cba");
        }
        drop(pool);
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(server as libc::pid_t, 0) } == 0;
        assert!(!alive, "the fork server {server} outlived its pool");
    }
}

/// A missing plugin, symbol or a failing initializer: the pool does not
/// start, and says why in the runner's own words.
#[test]
fn the_plugin_runner_explains_why_it_cannot_start() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--symbol", "no_such_handler"],
            "has no symbol no_such_handler",
        ),
        (
            &["--symbol", "plugin_handle", "--init", "plugin_fail_init"],
            "initializer plugin_fail_init returned 7",
        ),
        (&["--symbol"], "--symbol needs a value"),
    ];
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        for (extra, why) in cases {
            let err = Pool::new(plugin_config(method, 1, extra)).unwrap_err();
            assert!(
                matches!(&err, Error::Spawn(m) if m.contains(why)),
                "{method:?} {extra:?}: {err}"
            );
        }
        let missing = Config::new()
            .workers(1)
            .start_method(method)
            .worker_argv(&[
                env!("CARGO_BIN_EXE_billiard-worker"),
                "--plugin",
                "/nonexistent/plugin.so",
                "--symbol",
                "x",
            ])
            .unwrap();
        let err = Pool::new(missing).unwrap_err();
        assert!(
            matches!(&err, Error::Spawn(m) if m.contains("cannot load plugin /nonexistent/plugin.so")),
            "{err}"
        );
    }
}

/// Run by hand, outside a pool, the runner and the worker main refuse at
/// once with a clear message instead of waiting for tasks.
#[test]
fn outside_a_pool_the_worker_main_refuses_at_once() {
    let out = Command::new(env!("CARGO_BIN_EXE_billiard-worker"))
        .args([
            "--plugin",
            plugin().to_str().unwrap(),
            "--symbol",
            "plugin_handle",
        ])
        .env_remove("BILLIARD_PROTOCOL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("not started by a billiard pool"), "{text}");

    let err = billiard::worker::main(
        std::sync::Arc::new(|_: &[u8], _: &mut billiard::Reply| Ok(())),
        billiard::WorkerHooks::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(m) if m.contains("BILLIARD_PROTOCOL")));
}
