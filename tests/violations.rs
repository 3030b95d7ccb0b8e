//! A worker that sends a malformed, oversized or unexpected frame is killed,
//! its task fails with a clear message, and the host and pool carry on.
//! The handler here writes raw bytes onto its own results pipe to play a
//! buggy or hostile worker.

mod common;

use billiard::protocol;
use billiard::{Config, Outcome, Pool, TaskOptions};
use common::{exists, LONG};

/// The worker's results pipe: with inherited fds closed it is the only pipe
/// above 2 open for writing.
fn channel_fd() -> i32 {
    (3..1024)
        .find(|&fd| {
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            unsafe {
                libc::fstat(fd, &mut st) == 0
                    && (st.st_mode & libc::S_IFMT) == libc::S_IFIFO
                    && libc::fcntl(fd, libc::F_GETFL) & libc::O_ACCMODE == libc::O_WRONLY
            }
        })
        .expect("a results pipe")
}

/// Handler: input "bytes" writes the rest of the input raw to the channel,
/// "exit-after" does so and exits 0, anything else is echoed.
fn pool() -> Pool {
    Pool::new(Config::new().workers(1).handler(|input, reply| {
        if let Some(raw) = input.strip_prefix(b"bytes:") {
            unsafe { libc::write(channel_fd(), raw.as_ptr().cast(), raw.len()) };
            std::thread::sleep(std::time::Duration::from_secs(30));
        } else if let Some(raw) = input.strip_prefix(b"exit-after:") {
            unsafe {
                libc::write(channel_fd(), raw.as_ptr().cast(), raw.len());
                libc::_exit(0);
            }
        }
        reply.write(input);
        Ok(())
    }))
    .unwrap()
}

/// Sends a task that makes the worker emit `raw`; returns the result text
/// after checking the worker was killed and the pool still serves.
fn misbehave(prefix: &str, raw: &[u8], expect_signal: bool) -> String {
    let pool = pool();
    let victim = pool.worker_pids()[0];
    let mut input = prefix.as_bytes().to_vec();
    input.extend_from_slice(raw);
    let id = pool.submit(&input, &TaskOptions::default()).unwrap();
    let r = pool.wait_task(id, LONG).unwrap();
    assert_eq!(r.outcome, Outcome::WorkerLost, "{}", r.text());
    assert_eq!(r.pid, victim);
    if expect_signal {
        assert_eq!(r.signal, Some(libc::SIGKILL), "{}", r.text());
    }
    assert!(!exists(victim));
    let id = pool
        .submit(b"still serving", &TaskOptions::default())
        .unwrap();
    let ok = pool.wait_task(id, LONG).unwrap();
    assert_eq!(
        (ok.outcome, ok.data.as_slice()),
        (Outcome::Ok, &b"still serving"[..])
    );
    assert_ne!(ok.pid, victim);
    r.text()
}

#[test]
fn garbage_frame_kills_the_worker() {
    let text = misbehave("bytes:", &[1, 0, 0, 0, 0xEE], true);
    assert!(text.contains("unknown frame kind 238"), "{text}");
    assert!(text.contains("the pool stopped it"), "{text}");
}

#[test]
fn oversized_frame_kills_the_worker_before_its_body_arrives() {
    let text = misbehave("bytes:", &[0xF0, 0xFF, 0xFF, 0x7F], true);
    assert!(text.contains("exceeds the maximum frame size"), "{text}");
}

#[test]
fn result_for_a_task_it_was_not_given_kills_the_worker() {
    let text = misbehave(
        "bytes:",
        &protocol::encode_result(999_999, true, b"forged"),
        true,
    );
    assert!(
        text.contains("result for task 999999, which it was not running"),
        "{text}"
    );
}

#[test]
fn second_hello_kills_the_worker() {
    let pid = 0; // content does not matter: a second HELLO is wrong in itself
    let text = misbehave("bytes:", &protocol::encode_hello(pid, 0), true);
    assert!(text.contains("second HELLO"), "{text}");
}

#[test]
fn task_frame_from_a_worker_kills_it() {
    let text = misbehave("bytes:", &protocol::encode_task(1, b"x"), true);
    assert!(text.contains("TASK frame"), "{text}");
}

#[test]
fn truncated_frame_then_exit_is_reported() {
    let text = misbehave("exit-after:", &[20, 0, 0, 0, 4, 1, 2], false);
    assert!(text.contains("stream ended inside a frame"), "{text}");
}

#[test]
fn result_shm_outside_the_reply_region_kills_the_worker() {
    let text = misbehave(
        "bytes:",
        &protocol::encode_result_shm(999_999, true, 0, 16),
        true,
    );
    assert!(
        text.contains("its RESULT_SHM names 16 bytes at offset 0"),
        "{text}"
    );
}

#[test]
fn a_hello_of_protocol_version_1_is_refused_with_the_version_named() {
    // The initializer runs before the worker's own HELLO: it sends the
    // 8-byte HELLO a version 1 worker would.
    let err = Pool::new(
        Config::new()
            .workers(1)
            .initializer(|| {
                let mut hello = vec![9, 0, 0, 0, protocol::KIND_HELLO];
                hello.extend_from_slice(&1u32.to_le_bytes());
                hello.extend_from_slice(&(std::process::id()).to_le_bytes());
                unsafe { libc::write(channel_fd(), hello.as_ptr().cast(), hello.len()) };
                Ok(())
            })
            .handler(|_, _| Ok(())),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("it speaks protocol version 1, the pool speaks 2"),
        "{text}"
    );
}
