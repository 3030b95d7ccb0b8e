//! The reply buffer a handler writes into. A small reply is built in place
//! as a RESULT frame, so sending it is one write and no copy; one that grows
//! past [`AREA_MIN`] moves into the worker's shared area (when the pool has
//! collected the last one from there) and goes out as a RESULT_SHM frame.

use crate::area::{AreaHandle, ReplyRegion, AREA_MIN};
use crate::protocol::{self, HEADER_LEN, RESULT_PREFIX};

/// A handler's answer being built. Lives in a worker process; one per worker,
/// reused across tasks. Not shared between threads.
pub struct Reply {
    frame: Vec<u8>,
    error: Option<String>,
    /// The worker's reply region, when it has a shared area.
    area: Option<ReplyRegion>,
    /// The RESULT_SHM frame of a reply sent through the area.
    shm_frame: [u8; HEADER_LEN + 25],
    /// Length of the last reply sent, whichever way it went.
    last_len: usize,
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
            area: None,
            shm_frame: [0; HEADER_LEN + 25],
            last_len: 0,
        }
    }

    /// A reply that moves large answers into the worker's shared area.
    pub(crate) fn with_area(area: AreaHandle) -> Reply {
        Reply {
            area: Some(ReplyRegion::new(area)),
            ..Reply::new()
        }
    }

    /// Appends bytes to the answer.
    pub fn write(&mut self, data: &[u8]) {
        if let Some(area) = self.area.as_mut().filter(|a| a.active()) {
            if let Err(e) = area.write(data) {
                self.error = Some(format!(
                    "the reply could not be written to the shared area: {e}"
                ));
            }
            return;
        }
        // About to grow large: move to the area before copying, so the
        // bytes are copied once and the buffer does not grow for nothing.
        if self.frame.len() - RESULT_PREFIX + data.len() >= AREA_MIN {
            if let Some(area) = self.area.as_mut() {
                if area.begin(&self.frame[RESULT_PREFIX..]) {
                    self.frame.truncate(RESULT_PREFIX);
                    return self.write(data);
                }
            }
        }
        self.frame.extend_from_slice(data);
    }

    /// Marks the task as failed with `message`; the answer written so far is
    /// dropped. The last message wins.
    pub fn error(&mut self, message: impl Into<String>) {
        self.error = Some(message.into());
    }

    /// The answer written so far.
    pub fn data(&self) -> &[u8] {
        match self.area.as_ref().filter(|a| a.active()) {
            Some(area) => area.data(),
            None => &self.frame[RESULT_PREFIX..],
        }
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
        if let Some(area) = self.area.as_mut() {
            area.reset(self.last_len);
        }
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
        let len = self.data().len();
        self.last_len = len;
        if self.error.is_none() && len + (RESULT_PREFIX - 4) > max_frame {
            self.error = Some(format!(
                "reply of {len} bytes exceeds the maximum frame size of {max_frame} bytes"
            ));
        }
        if let Some(area) = self.area.as_mut().filter(|a| a.active()) {
            if self.error.is_none() {
                let (at, len) = area.hand_over();
                self.shm_frame = protocol::encode_result_shm(id, true, at, len);
                return &self.shm_frame;
            }
            // Failed: the message goes in a RESULT frame; the next reset()
            // decides about the region's memory.
            area.discard();
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
    use crate::area::Area;
    use crate::protocol::{decode, Frame};

    #[test]
    fn a_large_reply_moves_to_the_area_once_the_pool_collected_the_last() {
        let area = Area::new(crate::area::region_size(1 << 20)).unwrap();
        let mut r = Reply::with_area(area.handle());
        let big = vec![3u8; AREA_MIN + 10];
        r.write(&big[..100]);
        r.write(&big[100..]);
        r.write(b"tail");
        assert_eq!(r.data().len(), big.len() + 4);
        assert_eq!(&r.data()[big.len()..], b"tail");
        let frame = r.finish(9, Ok(()), 1 << 20).to_vec();
        let (f, _) = decode(&frame, 1 << 20).unwrap().unwrap();
        let Frame::ResultShm {
            id: 9,
            ok: true,
            offset,
            len,
        } = f
        else {
            panic!("{f:?}")
        };
        assert_eq!(len as usize, big.len() + 4);
        // Not yet collected: the next large reply goes through the channel.
        r.reset();
        r.write(&big);
        let frame = r.finish(10, Ok(()), 1 << 20).to_vec();
        let (f, _) = decode(&frame, 1 << 20).unwrap().unwrap();
        assert!(matches!(f, Frame::Result { id: 10, ok: true, payload } if payload == &big[..]));
        let got = area.take_reply(offset, len).unwrap();
        assert_eq!(&got[..big.len()], &big[..]);
        // Collected: the area is used again; a failure there is a plain RESULT.
        r.reset();
        r.write(&big);
        assert!(r.area.as_ref().unwrap().active());
        let frame = r.finish(11, Err("nope".into()), 1 << 20).to_vec();
        let (f, _) = decode(&frame, 1 << 20).unwrap().unwrap();
        assert_eq!(
            f,
            Frame::Result {
                id: 11,
                ok: false,
                payload: b"nope"
            }
        );
    }

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
