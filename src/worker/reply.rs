//! The reply buffer a handler writes into. It is built in place as a RESULT
//! frame, so sending it is one write and no copy.

use crate::protocol::{self, RESULT_PREFIX};

/// A handler's answer being built. Lives in a worker process; one per worker,
/// reused across tasks. Not shared between threads.
pub struct Reply {
    frame: Vec<u8>,
    error: Option<String>,
}

impl Default for Reply {
    fn default() -> Self {
        Reply::new()
    }
}

impl Reply {
    /// An empty reply.
    pub fn new() -> Reply {
        Reply {
            frame: vec![0; RESULT_PREFIX],
            error: None,
        }
    }

    /// Appends bytes to the answer.
    pub fn write(&mut self, data: &[u8]) {
        self.frame.extend_from_slice(data);
    }

    /// Marks the task as failed with `message`; the answer written so far is
    /// dropped. The last message wins.
    pub fn error(&mut self, message: impl Into<String>) {
        self.error = Some(message.into());
    }

    /// The answer written so far.
    pub fn data(&self) -> &[u8] {
        &self.frame[RESULT_PREFIX..]
    }

    /// Whether [`Reply::error`] was called for this task.
    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }

    /// Empties the reply for the next task, keeping its capacity.
    pub(crate) fn reset(&mut self) {
        let last = self.frame.len();
        self.frame.truncate(RESULT_PREFIX);
        protocol::release_large_buffer(&mut self.frame, RESULT_PREFIX, last);
        self.error = None;
    }

    /// Turns the reply into the RESULT frame for task `id`, given what the
    /// handler returned. A reply that would exceed `max_frame` becomes an
    /// error, so the worker never sends a frame the pool must reject.
    pub(crate) fn finish(
        &mut self,
        id: u64,
        returned: Result<(), String>,
        max_frame: usize,
    ) -> &[u8] {
        if let Err(message) = returned {
            // An explicit error() message is more specific than a bare return.
            if self.error.is_none() {
                self.error = Some(message);
            }
        }
        let body_len = self.frame.len() - 4;
        if self.error.is_none() && body_len > max_frame {
            self.error = Some(format!(
                "reply of {} bytes exceeds the maximum frame size of {} bytes",
                self.frame.len() - RESULT_PREFIX,
                max_frame
            ));
        }
        let ok = match self.error.take() {
            None => true,
            Some(message) => {
                self.frame.truncate(RESULT_PREFIX);
                let room = max_frame.saturating_sub(RESULT_PREFIX - 4);
                let bytes = message.as_bytes();
                self.frame
                    .extend_from_slice(&bytes[..bytes.len().min(room)]);
                false
            }
        };
        protocol::finish_result(&mut self.frame, id, ok);
        &self.frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode, Frame};

    #[test]
    fn ok_reply_is_a_result_frame() {
        let mut r = Reply::new();
        r.write(b"ab");
        r.write(b"c");
        let frame = r.finish(4, Ok(()), 1 << 20).to_vec();
        let (f, _) = decode(&frame, 1 << 20).unwrap().unwrap();
        assert_eq!(
            f,
            Frame::Result {
                id: 4,
                ok: true,
                payload: b"abc"
            }
        );
    }

    #[test]
    fn error_replaces_data_and_explicit_message_wins() {
        let mut r = Reply::new();
        r.write(b"partial");
        r.error("bad input");
        let frame = r
            .finish(1, Err("handler returned 1".into()), 1 << 20)
            .to_vec();
        let (f, _) = decode(&frame, 1 << 20).unwrap().unwrap();
        assert_eq!(
            f,
            Frame::Result {
                id: 1,
                ok: false,
                payload: b"bad input"
            }
        );
        r.reset();
        assert!(r.data().is_empty() && !r.is_error());
    }

    #[test]
    fn oversized_reply_becomes_an_error() {
        let mut r = Reply::new();
        r.write(&[0u8; 100]);
        let frame = r.finish(2, Ok(()), 64).to_vec();
        let (f, _) = decode(&frame, 64).unwrap().unwrap();
        match f {
            Frame::Result {
                ok: false, payload, ..
            } => {
                assert!(std::str::from_utf8(payload)
                    .unwrap()
                    .starts_with("reply of 100 bytes"))
            }
            other => panic!("{other:?}"),
        }
    }
}
