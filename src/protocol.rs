//! The worker protocol: framed messages over one stream socket per worker.
//!
//! Every frame is `[len: u32 LE][kind: u8][body]`, where `len` counts the kind
//! byte and the body (so `len >= 1`). All integers are little-endian. The
//! layout is plain bytes so a worker can be written in any language; see
//! `docs/PROTOCOL.md` for the byte-by-byte description.
//!
//! | kind | name   | direction       | body                                   |
//! |------|--------|-----------------|----------------------------------------|
//! | 1    | HELLO  | worker -> pool  | `version: u32`, `pid: u32`, `features: u32` |
//! | 2    | TASK   | pool -> worker  | `id: u64`, payload bytes               |
//! | 3    | ACK    | worker -> pool  | `id: u64` (the worker starts the task) |
//! | 4    | RESULT | worker -> pool  | `id: u64`, `status: u8`, payload bytes |
//! | 5    | FATAL  | worker -> pool  | UTF-8 message; the worker then exits   |
//! | 6    | TASK_SHM   | pool -> worker | `id: u64`, `offset: u64`, `len: u64` |
//! | 7    | RESULT_SHM | worker -> pool | `id: u64`, `status: u8`, `offset: u64`, `len: u64` |
//!
//! `status` is 0 for success (payload = reply) and 1 for failure
//! (payload = error message). The `_SHM` kinds carry their payload in the
//! worker's shared area (`src/area.rs`) instead of the frame. This module
//! has no I/O: it only encodes and decodes, so both sides and the fuzzers
//! share it.

use thiserror::Error;

/// Protocol version sent in HELLO. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 2;
/// HELLO feature bit: the worker maps its shared area and accepts TASK_SHM.
pub const FEATURE_AREA: u32 = 1;
/// HELLO feature bit: the worker reads its control page (`src/control.rs`):
/// it skips tasks in the cancel list, reports its RSS when asked, and takes
/// [`SOFT_LIMIT_SIGNAL`] (which would otherwise kill it) as a notice.
pub const FEATURE_CONTROL: u32 = 2;
/// HELLO feature bit: the worker maps its task region read-only and never
/// writes it, so a payload there is still the pool's if the worker dies
/// before starting the task, and can be run elsewhere. Without it, such a
/// task ends FAILED (the pool cannot vouch for the payload).
pub const FEATURE_TASKS_READ_ONLY: u32 = 4;
/// The signal a worker with [`FEATURE_CONTROL`] gets when the soft time
/// limit of its task passes.
pub const SOFT_LIMIT_SIGNAL: i32 = libc::SIGUSR1;
/// Bytes before the body: the length field and the kind byte.
pub const HEADER_LEN: usize = 5;
/// Default maximum of the length field (kind + body), in bytes.
pub const DEFAULT_MAX_FRAME: usize = 256 << 20;
/// Hard ceiling for the maximum frame size: the length field is a u32.
pub const MAX_FRAME_CEILING: usize = u32::MAX as usize;

/// Bytes of a TASK frame before its payload.
pub const TASK_PREFIX: usize = HEADER_LEN + 8;
/// Bytes of a RESULT frame before its payload.
pub const RESULT_PREFIX: usize = HEADER_LEN + 8 + 1;

pub const KIND_HELLO: u8 = 1;
pub const KIND_TASK: u8 = 2;
pub const KIND_ACK: u8 = 3;
pub const KIND_RESULT: u8 = 4;
pub const KIND_FATAL: u8 = 5;
pub const KIND_TASK_SHM: u8 = 6;
pub const KIND_RESULT_SHM: u8 = 7;

pub const STATUS_OK: u8 = 0;
pub const STATUS_ERROR: u8 = 1;

/// Prefix of every environment variable the pool sets for a worker program.
pub const ENV_PREFIX: &str = "BILLIARD_";
/// The protocol version the pool speaks (decimal), so a worker can refuse
/// early; a worker still sends its own in HELLO.
pub const ENV_PROTOCOL: &str = "BILLIARD_PROTOCOL";
/// The worker's end of its task socket (SPAWN).
pub const ENV_TASK_FD: &str = "BILLIARD_TASK_FD";
/// The write end of the worker's results pipe (SPAWN).
pub const ENV_RESULT_FD: &str = "BILLIARD_RESULT_FD";
/// The worker's shared area, a memfd (SPAWN).
pub const ENV_AREA_FD: &str = "BILLIARD_AREA_FD";
/// The fork server's end of its control socket (FORKSERVER).
pub const ENV_FORKSERVER_FD: &str = "BILLIARD_FORKSERVER_FD";
/// The pool's maximum frame size in bytes (decimal).
pub const ENV_MAX_FRAME: &str = "BILLIARD_MAX_FRAME";
/// The pid of the host process that runs the pool (decimal).
pub const ENV_POOL_PID: &str = "BILLIARD_POOL_PID";
/// Every variable above: a worker removes them from its environment.
pub const ENV_ALL: [&str; 7] = [
    ENV_PROTOCOL,
    ENV_TASK_FD,
    ENV_RESULT_FD,
    ENV_AREA_FD,
    ENV_FORKSERVER_FD,
    ENV_MAX_FRAME,
    ENV_POOL_PID,
];

/// Fork server -> pool, once initialized: `version: u32`, `pid: u32`.
pub const KIND_SERVER_HELLO: u8 = 16;
/// Pool -> fork server: fork a worker; carries its three fds (task
/// socket, results pipe write end, area) as SCM_RIGHTS, no body.
pub const KIND_FORK: u8 = 17;
/// Fork server -> pool: `pid: u32` of the new worker, with its pidfd as
/// SCM_RIGHTS (none on kernels without `pidfd_open`).
pub const KIND_FORKED: u8 = 18;
/// Fork server -> pool: the fork failed: `errno: u32`.
pub const KIND_FORK_FAILED: u8 = 19;
/// Fork server -> pool: a worker was reaped: `pid: u32`, `status: i32`
/// (the raw `waitpid` status).
pub const KIND_EXITED: u8 = 20;

/// One decoded frame, borrowing its payload from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Hello {
        version: u32,
        pid: u32,
        features: u32,
    },
    Task {
        id: u64,
        payload: &'a [u8],
    },
    Ack {
        id: u64,
    },
    Result {
        id: u64,
        ok: bool,
        payload: &'a [u8],
    },
    Fatal {
        message: &'a [u8],
    },
    /// A task whose payload is `len` bytes at `offset` of the shared area.
    TaskShm {
        id: u64,
        offset: u64,
        len: u64,
    },
    /// A result whose payload is `len` bytes at `offset` of the shared area.
    ResultShm {
        id: u64,
        ok: bool,
        offset: u64,
        len: u64,
    },
}

/// Why a byte stream is not a valid frame sequence.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("frame of {len} bytes exceeds the maximum frame size of {max} bytes")]
    Oversized { len: usize, max: usize },
    #[error("frame with an empty length field")]
    Empty,
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("{kind} frame with a body of {len} bytes is malformed")]
    BadBody { kind: &'static str, len: usize },
    #[error("RESULT frame with unknown status {0}")]
    BadStatus(u8),
    #[error("stream ended inside a frame ({have} of {want} bytes)")]
    Truncated { have: usize, want: usize },
}

/// Name of a frame kind, for messages.
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_HELLO => "HELLO",
        KIND_TASK => "TASK",
        KIND_ACK => "ACK",
        KIND_RESULT => "RESULT",
        KIND_FATAL => "FATAL",
        KIND_TASK_SHM => "TASK_SHM",
        KIND_RESULT_SHM => "RESULT_SHM",
        _ => "unknown",
    }
}

/// Writes a header for a frame whose kind + body is `len` bytes.
fn header(kind: u8, body_len: usize) -> [u8; HEADER_LEN] {
    let len = (body_len + 1) as u32;
    let l = len.to_le_bytes();
    [l[0], l[1], l[2], l[3], kind]
}

/// Encodes a TASK frame into a fresh buffer (one allocation, one copy).
pub fn encode_task(id: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TASK_PREFIX + payload.len());
    out.extend_from_slice(&header(KIND_TASK, 8 + payload.len()));
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Encodes a TASK_SHM frame: task `id`'s payload is `len` bytes at
/// `offset` of the worker's shared area.
pub fn encode_task_shm(id: u64, offset: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 24);
    out.extend_from_slice(&header(KIND_TASK_SHM, 24));
    for v in [id, offset, len] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Encodes a RESULT_SHM frame: task `id`'s reply (or error message) is
/// `len` bytes at `offset` of the worker's shared area.
pub fn encode_result_shm(id: u64, ok: bool, offset: u64, len: u64) -> [u8; HEADER_LEN + 25] {
    let mut out = [0u8; HEADER_LEN + 25];
    out[..HEADER_LEN].copy_from_slice(&header(KIND_RESULT_SHM, 25));
    out[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&id.to_le_bytes());
    out[HEADER_LEN + 8] = if ok { STATUS_OK } else { STATUS_ERROR };
    out[HEADER_LEN + 9..HEADER_LEN + 17].copy_from_slice(&offset.to_le_bytes());
    out[HEADER_LEN + 17..].copy_from_slice(&len.to_le_bytes());
    out
}

/// Encodes a HELLO frame with the worker's `features` ([`FEATURE_AREA`]).
pub fn encode_hello(pid: u32, features: u32) -> [u8; HEADER_LEN + 12] {
    let mut out = [0u8; HEADER_LEN + 12];
    out[..HEADER_LEN].copy_from_slice(&header(KIND_HELLO, 12));
    out[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    out[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&pid.to_le_bytes());
    out[HEADER_LEN + 8..].copy_from_slice(&features.to_le_bytes());
    out
}

/// Encodes an ACK frame.
pub fn encode_ack(id: u64) -> [u8; HEADER_LEN + 8] {
    let mut out = [0u8; HEADER_LEN + 8];
    out[..HEADER_LEN].copy_from_slice(&header(KIND_ACK, 8));
    out[HEADER_LEN..].copy_from_slice(&id.to_le_bytes());
    out
}

/// Fills the first [`RESULT_PREFIX`] bytes of `frame` so that it is a RESULT
/// frame carrying `frame[RESULT_PREFIX..]` as payload. Lets the worker build
/// its reply in place and send it with one write.
pub fn finish_result(frame: &mut [u8], id: u64, ok: bool) {
    let body = frame.len() - HEADER_LEN;
    frame[..HEADER_LEN].copy_from_slice(&header(KIND_RESULT, body));
    frame[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&id.to_le_bytes());
    frame[HEADER_LEN + 8] = if ok { STATUS_OK } else { STATUS_ERROR };
}

/// Encodes a RESULT frame into a fresh buffer.
pub fn encode_result(id: u64, ok: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; RESULT_PREFIX];
    out.extend_from_slice(payload);
    finish_result(&mut out, id, ok);
    out
}

/// Encodes a FATAL frame.
pub fn encode_fatal(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + message.len());
    out.extend_from_slice(&header(KIND_FATAL, message.len()));
    out.extend_from_slice(message);
    out
}

/// Encodes a message of the fork server's control socket: one frame per
/// datagram (`SOCK_SEQPACKET`), in the same layout as the worker frames.
pub fn encode_control(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header(kind, body.len()));
    out.extend_from_slice(body);
    out
}

/// Decodes one control message (a whole datagram): its kind and body, or
/// `None` if the length field does not match the datagram.
pub fn decode_control(datagram: &[u8]) -> Option<(u8, &[u8])> {
    let len = u32::from_le_bytes(datagram.get(..4)?.try_into().ok()?) as usize;
    if len == 0 || len + 4 != datagram.len() {
        return None;
    }
    Some((datagram[4], &datagram[HEADER_LEN..]))
}

/// The `n`th little-endian u32 of a control message body.
pub fn control_word(body: &[u8], n: usize) -> Option<u32> {
    let bytes = body.get(n * 4..n * 4 + 4)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Reads the length field at the start of `buf`, if complete, and checks it
/// against `max`. Returns the total frame size (header included).
pub fn frame_size(buf: &[u8], max: usize) -> Result<Option<usize>, ProtocolError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 {
        return Err(ProtocolError::Empty);
    }
    if len > max {
        return Err(ProtocolError::Oversized { len, max });
    }
    Ok(Some(len + 4))
}

/// Makes room in a read buffer for the rest of the frame it starts with (so a
/// large frame is read with one allocation), or for at least 4 KiB more.
pub fn reserve_read_space(buf: &mut Vec<u8>, max: usize) {
    if let Ok(Some(total)) = frame_size(buf, max) {
        buf.reserve(total.saturating_sub(buf.len()));
    }
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(64 * 1024);
    }
}

/// Buffers above this keep their capacity only while they hold data.
pub(crate) const KEEP_CAPACITY: usize = 1 << 20;

/// Whether memory holding `held` bytes is worth giving back when what comes
/// next needs only `next`: it grew past [`KEEP_CAPACITY`] for something more
/// than 8 times larger. A run of large payloads keeps its memory instead of
/// faulting it in again each time. (Socket buffers and the shared area's
/// regions follow the same rule.)
pub(crate) fn worth_giving_back(held: usize, next: usize) -> bool {
    held > KEEP_CAPACITY && next < held / 8
}

/// Gives back the memory of a read or reply buffer that grew for a large
/// frame once it is empty (or holds only `keep` bytes, e.g. a header) and
/// the frame just handled (`last` bytes) was small: a worker that served
/// one 64 MiB task should not hold 64 MiB forever, but one serving a run of
/// large tasks keeps its buffer instead of faulting in fresh memory each time.
pub fn release_large_buffer(buf: &mut Vec<u8>, keep: usize, last: usize) {
    if buf.len() <= keep && worth_giving_back(buf.capacity(), last) {
        buf.shrink_to(64 * 1024);
    }
}

/// Decodes the first frame in `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame (read more),
/// `Ok(Some((frame, consumed)))` for a complete frame, and an error for bytes
/// that can never become a valid frame. A length above `max` is rejected as
/// soon as the length field is complete, before its body arrives.
pub fn decode(buf: &[u8], max: usize) -> Result<Option<(Frame<'_>, usize)>, ProtocolError> {
    let Some(total) = frame_size(buf, max)? else {
        return Ok(None);
    };
    if buf.len() < total {
        return Ok(None);
    }
    let kind = buf[4];
    let body = &buf[HEADER_LEN..total];
    let bad = |kind| ProtocolError::BadBody {
        kind,
        len: body.len(),
    };
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    let status = |byte: u8| match byte {
        STATUS_OK => Ok(true),
        STATUS_ERROR => Ok(false),
        other => Err(ProtocolError::BadStatus(other)),
    };
    let frame = match kind {
        KIND_HELLO => {
            // Version 1 workers sent 8 bytes; the pool tells them apart by version.
            if body.len() != 12 && body.len() != 8 {
                return Err(bad("HELLO"));
            }
            Frame::Hello {
                version: u32_at(0),
                pid: u32_at(4),
                features: if body.len() == 12 { u32_at(8) } else { 0 },
            }
        }
        KIND_TASK => {
            if body.len() < 8 {
                return Err(bad("TASK"));
            }
            Frame::Task {
                id: u64_at(0),
                payload: &body[8..],
            }
        }
        KIND_ACK => {
            if body.len() != 8 {
                return Err(bad("ACK"));
            }
            Frame::Ack { id: u64_at(0) }
        }
        KIND_RESULT => {
            if body.len() < 9 {
                return Err(bad("RESULT"));
            }
            Frame::Result {
                id: u64_at(0),
                ok: status(body[8])?,
                payload: &body[9..],
            }
        }
        KIND_FATAL => Frame::Fatal { message: body },
        KIND_TASK_SHM => {
            if body.len() != 24 {
                return Err(bad("TASK_SHM"));
            }
            Frame::TaskShm {
                id: u64_at(0),
                offset: u64_at(8),
                len: u64_at(16),
            }
        }
        KIND_RESULT_SHM => {
            if body.len() != 25 {
                return Err(bad("RESULT_SHM"));
            }
            Frame::ResultShm {
                id: u64_at(0),
                ok: status(body[8])?,
                offset: u64_at(9),
                len: u64_at(17),
            }
        }
        other => return Err(ProtocolError::UnknownKind(other)),
    };
    Ok(Some((frame, total)))
}

/// Checks what is left in a buffer when its stream ended: nothing, or an
/// error saying how much of the last frame was missing.
pub fn check_eof(rest: &[u8], max: usize) -> Result<(), ProtocolError> {
    if rest.is_empty() {
        return Ok(());
    }
    let want = frame_size(rest, max)?.unwrap_or(4);
    Err(ProtocolError::Truncated {
        have: rest.len(),
        want,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_buffer_grown_for_one_large_frame_is_given_back_once_empty() {
        let mut buf: Vec<u8> = Vec::with_capacity(8 << 20);
        buf.extend_from_slice(&[1; 100]);
        release_large_buffer(&mut buf, 0, 100);
        assert!(buf.capacity() >= 8 << 20, "still holding data: kept");
        buf.clear();
        release_large_buffer(&mut buf, 0, 4 << 20);
        assert!(buf.capacity() >= 8 << 20, "the last frame was large: kept");
        release_large_buffer(&mut buf, 0, 100);
        assert!(
            buf.capacity() < 1 << 20,
            "empty after a small frame: released"
        );
        let mut small: Vec<u8> = Vec::with_capacity(4096);
        release_large_buffer(&mut small, 0, 0);
        assert_eq!(small.capacity(), 4096, "small buffers are left alone");
    }

    use super::*;

    const MAX: usize = 1 << 20;

    fn one(buf: &[u8]) -> Frame<'_> {
        let (f, used) = decode(buf, MAX).unwrap().unwrap();
        assert_eq!(used, buf.len());
        f
    }

    #[test]
    fn hello_round_trip() {
        let b = encode_hello(4242, FEATURE_AREA);
        assert_eq!(
            one(&b),
            Frame::Hello {
                version: PROTOCOL_VERSION,
                pid: 4242,
                features: FEATURE_AREA
            }
        );
        // Byte layout is part of the contract.
        assert_eq!(&b[..5], &[13, 0, 0, 0, KIND_HELLO]);
        // A version 1 HELLO (no features) still decodes, so the pool can
        // name the version it refuses.
        assert_eq!(
            one(&[9, 0, 0, 0, KIND_HELLO, 1, 0, 0, 0, 7, 0, 0, 0]),
            Frame::Hello {
                version: 1,
                pid: 7,
                features: 0
            }
        );
    }

    #[test]
    fn task_round_trip_and_layout() {
        let b = encode_task(7, b"abc");
        assert_eq!(
            b,
            [&[12u8, 0, 0, 0, 2][..], &7u64.to_le_bytes(), b"abc"].concat()
        );
        assert_eq!(
            one(&b),
            Frame::Task {
                id: 7,
                payload: b"abc"
            }
        );
        assert_eq!(
            one(&encode_task(u64::MAX, b"")),
            Frame::Task {
                id: u64::MAX,
                payload: b""
            }
        );
    }

    #[test]
    fn shared_area_frames_round_trip_and_layout() {
        let t = encode_task_shm(7, 8192, 1 << 20);
        assert_eq!(
            t,
            [
                &[25u8, 0, 0, 0, KIND_TASK_SHM][..],
                &7u64.to_le_bytes(),
                &8192u64.to_le_bytes(),
                &(1u64 << 20).to_le_bytes()
            ]
            .concat()
        );
        assert_eq!(
            one(&t),
            Frame::TaskShm {
                id: 7,
                offset: 8192,
                len: 1 << 20
            }
        );
        let r = encode_result_shm(7, true, 4096, 5);
        assert_eq!(
            r.to_vec(),
            [
                &[26u8, 0, 0, 0, KIND_RESULT_SHM][..],
                &7u64.to_le_bytes(),
                &[STATUS_OK],
                &4096u64.to_le_bytes(),
                &5u64.to_le_bytes()
            ]
            .concat()
        );
        assert_eq!(
            one(&r),
            Frame::ResultShm {
                id: 7,
                ok: true,
                offset: 4096,
                len: 5
            }
        );
        let mut short = t.clone();
        short[0] = 24;
        short.pop();
        assert_eq!(
            decode(&short, MAX),
            Err(ProtocolError::BadBody {
                kind: "TASK_SHM",
                len: 23
            })
        );
    }

    #[test]
    fn ack_round_trip() {
        assert_eq!(one(&encode_ack(99)), Frame::Ack { id: 99 });
    }

    #[test]
    fn result_round_trip_ok_and_error() {
        assert_eq!(
            one(&encode_result(5, true, b"reply")),
            Frame::Result {
                id: 5,
                ok: true,
                payload: b"reply"
            }
        );
        assert_eq!(
            one(&encode_result(6, false, b"boom")),
            Frame::Result {
                id: 6,
                ok: false,
                payload: b"boom"
            }
        );
    }

    #[test]
    fn result_layout() {
        let b = encode_result(2, false, b"no");
        assert_eq!(
            b,
            [
                &[12u8, 0, 0, 0, KIND_RESULT][..],
                &2u64.to_le_bytes(),
                &[STATUS_ERROR],
                b"no"
            ]
            .concat()
        );
    }

    #[test]
    fn result_built_in_place() {
        let mut buf = vec![0xAA; RESULT_PREFIX];
        buf.extend_from_slice(b"xyz");
        finish_result(&mut buf, 3, true);
        assert_eq!(buf, encode_result(3, true, b"xyz"));
    }

    #[test]
    fn fatal_round_trip() {
        assert_eq!(
            one(&encode_fatal(b"init failed")),
            Frame::Fatal {
                message: b"init failed"
            }
        );
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let mut buf = encode_ack(1).to_vec();
        buf.extend_from_slice(&encode_result(1, true, b"r"));
        let (f1, n1) = decode(&buf, MAX).unwrap().unwrap();
        assert_eq!(f1, Frame::Ack { id: 1 });
        let (f2, n2) = decode(&buf[n1..], MAX).unwrap().unwrap();
        assert!(matches!(
            f2,
            Frame::Result {
                id: 1,
                ok: true,
                ..
            }
        ));
        assert_eq!(n1 + n2, buf.len());
    }

    #[test]
    fn truncated_input_asks_for_more_at_every_cut() {
        let b = encode_result(9, true, b"payload");
        for cut in 0..b.len() {
            assert_eq!(decode(&b[..cut], MAX).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn truncated_at_eof_is_reported() {
        let b = encode_task(1, b"hello");
        assert_eq!(check_eof(&[], MAX), Ok(()));
        assert_eq!(
            check_eof(&b[..2], MAX),
            Err(ProtocolError::Truncated { have: 2, want: 4 })
        );
        assert_eq!(
            check_eof(&b[..7], MAX),
            Err(ProtocolError::Truncated {
                have: 7,
                want: b.len()
            })
        );
    }

    #[test]
    fn oversized_rejected_from_length_field_alone() {
        let b = encode_task(1, &[0u8; 100]);
        assert_eq!(
            decode(&b[..4], 50),
            Err(ProtocolError::Oversized { len: 109, max: 50 })
        );
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], MAX),
            Err(ProtocolError::Oversized {
                len: u32::MAX as usize,
                max: MAX
            })
        );
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(decode(&[0, 0, 0, 0, 1], MAX), Err(ProtocolError::Empty));
        assert_eq!(
            decode(&[1, 0, 0, 0, 0xEE], MAX),
            Err(ProtocolError::UnknownKind(0xEE))
        );
        // Known kinds with bodies of the wrong size.
        assert_eq!(
            decode(&[4, 0, 0, 0, KIND_ACK, 1, 2, 3], MAX),
            Err(ProtocolError::BadBody {
                kind: "ACK",
                len: 3
            })
        );
        assert_eq!(
            decode(&[2, 0, 0, 0, KIND_HELLO, 1], MAX),
            Err(ProtocolError::BadBody {
                kind: "HELLO",
                len: 1
            })
        );
        assert_eq!(
            decode(&[3, 0, 0, 0, KIND_TASK, 1, 2], MAX),
            Err(ProtocolError::BadBody {
                kind: "TASK",
                len: 2
            })
        );
        assert_eq!(
            decode(&[5, 0, 0, 0, KIND_RESULT, 1, 2, 3, 4], MAX),
            Err(ProtocolError::BadBody {
                kind: "RESULT",
                len: 4
            })
        );
        let mut bad_status = encode_result(1, true, b"");
        bad_status[RESULT_PREFIX - 1] = 7;
        assert_eq!(decode(&bad_status, MAX), Err(ProtocolError::BadStatus(7)));
    }

    #[test]
    fn pseudo_random_bytes_never_panic() {
        // A small deterministic fuzz: any input decodes, asks for more, or errors.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut buf = [0u8; 24];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            // Keep lengths small half the time so bodies get parsed.
            if x & 1 == 0 {
                buf[1] = 0;
                buf[2] = 0;
                buf[3] = 0;
                buf[0] %= 24;
                buf[4] %= 9;
            }
            let _ = decode(&buf, 64);
            let _ = check_eof(&buf, 64);
        }
    }
}
