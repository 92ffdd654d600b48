//! Handing frames to the worker that owns their connection.
//!
//! A NAT/FULLNAT reply (or a client frame whose flow another worker owns) may arrive on any
//! queue. The receiving worker copies it into a buffer taken from the owner's spare ring and
//! pushes it onto the owner's inbound ring; the owner processes it and returns the buffer.
//! Both rings are lock-free bounded queues (`crossbeam_queue::ArrayQueue`) and every buffer is
//! allocated up front, so a handoff costs one copy and never allocates, locks or blocks: when
//! the owner's ring is full the frame is dropped and counted (`handoff_full`).

use super::io::{FRAME_SIZE, HEADROOM};
use crossbeam_queue::ArrayQueue;

/// Largest frame a handoff carries (a received frame never exceeds the frame size).
pub const HANDOFF_MAX: usize = FRAME_SIZE - HEADROOM;

/// One handed-over frame.
pub struct HandoffBuf {
    pub len: u16,
    /// The interface (port index) it arrived on.
    pub port: u8,
    pub data: [u8; HANDOFF_MAX],
}

impl HandoffBuf {
    pub fn bytes(&self) -> &[u8] {
        &self.data[..(self.len as usize).min(HANDOFF_MAX)]
    }
}

/// The rings of all workers.
pub struct Handoff {
    inbound: Vec<ArrayQueue<Box<HandoffBuf>>>,
    spare: Vec<ArrayQueue<Box<HandoffBuf>>>,
}

impl Handoff {
    /// Rings for `workers` workers, `depth` buffers each.
    pub fn new(workers: u16, depth: usize) -> Handoff {
        let depth = depth.max(1);
        let ring = || ArrayQueue::new(depth);
        let spare: Vec<ArrayQueue<Box<HandoffBuf>>> = (0..workers).map(|_| ring()).collect();
        for s in &spare {
            for _ in 0..depth {
                let _ = s.push(Box::new(HandoffBuf { len: 0, port: 0, data: [0; HANDOFF_MAX] }));
            }
        }
        Handoff { inbound: (0..workers).map(|_| ring()).collect(), spare }
    }

    /// Copies a frame to worker `to`; false if its ring is full (or `to` does not exist).
    #[inline]
    pub fn send(&self, to: u16, port: u8, frame: &[u8]) -> bool {
        let (Some(spare), Some(inbound)) = (self.spare.get(to as usize), self.inbound.get(to as usize)) else {
            return false;
        };
        let Some(mut b) = spare.pop() else { return false };
        let n = frame.len().min(HANDOFF_MAX);
        b.data[..n].copy_from_slice(&frame[..n]);
        b.len = n as u16;
        b.port = port;
        match inbound.push(b) {
            Ok(()) => true,
            Err(b) => {
                let _ = spare.push(b);
                false
            }
        }
    }

    /// The next frame handed to worker `me`.
    #[inline]
    pub fn recv(&self, me: u16) -> Option<Box<HandoffBuf>> {
        self.inbound.get(me as usize)?.pop()
    }

    /// Returns a buffer after its frame was loaded.
    #[inline]
    pub fn recycle(&self, me: u16, b: Box<HandoffBuf>) {
        if let Some(s) = self.spare.get(me as usize) {
            let _ = s.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_reach_their_owner_and_buffers_circulate() {
        let h = Handoff::new(2, 2);
        assert!(h.send(1, 3, &[1, 2, 3]));
        assert!(h.send(1, 0, &[4]));
        assert!(!h.send(1, 0, &[5]), "only two spare buffers");
        assert!(!h.send(7, 0, &[5]), "no such worker");
        assert!(h.recv(0).is_none());
        let b = h.recv(1).expect("first frame");
        assert_eq!((b.bytes(), b.port), (&[1u8, 2, 3][..], 3));
        h.recycle(1, b);
        assert!(h.send(1, 0, &[6]));
        assert_eq!(h.recv(1).map(|b| b.bytes().to_vec()), Some(vec![4]));
        assert_eq!(h.recv(1).map(|b| b.bytes().to_vec()), Some(vec![6]));
        assert!(h.recv(1).is_none());
    }
}
