//! Ports: where frames come from and go to. The worker owns a [`FramePool`] (UMEM-like: fixed
//! frames with headroom) and moves [`Desc`]riptors between ports and the pipeline.
//!
//! Two ports live here: [`MemPort`] (tests, benchmarks) and [`PcapPort`] (`xvs replay`).

use crate::wire::frame::span;
use crate::wire::Frame;
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::Duration;

/// Size of one frame buffer.
pub const FRAME_SIZE: usize = 2048;
/// Room kept in front of a received frame (TUN prepends its outer header there).
pub const HEADROOM: usize = 256;
/// Frames per rx/tx burst.
pub const BURST: usize = 32;

/// A frame in the pool: which buffer, where the data starts in it, how long it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    pub idx: u32,
    pub head: u16,
    pub len: u16,
}

/// Fixed-size frame buffers allocated once.
pub struct FramePool {
    /// One fixed-size array a frame: a frame is found by one bounds check, where a byte range
    /// of one big buffer took two and an overflow test.
    mem: Box<[[u8; FRAME_SIZE]]>,
    free: Vec<u32>,
    count: u32,
}

impl FramePool {
    pub fn new(frames: u32) -> FramePool {
        FramePool {
            mem: vec![[0; FRAME_SIZE]; frames as usize].into_boxed_slice(),
            free: (0..frames).rev().collect(),
            count: frames,
        }
    }
    #[inline]
    pub fn alloc(&mut self) -> Option<u32> {
        self.free.pop()
    }
    #[inline]
    pub fn free(&mut self, idx: u32) {
        if idx < self.count && self.free.len() < self.count as usize {
            self.free.push(idx);
        }
    }
    /// Frames currently free (the rest are held by ports or the worker).
    pub fn available(&self) -> usize {
        self.free.len()
    }
    pub fn capacity(&self) -> u32 {
        self.count
    }
    /// Frame `idx`'s buffer; empty for an index past the pool (a bad descriptor reads as
    /// an empty frame, never out of the pool).
    #[inline]
    pub fn buf_mut(&mut self, idx: u32) -> &mut [u8] {
        match self.mem.get_mut(idx as usize) {
            Some(b) => b,
            None => &mut [],
        }
    }
    #[inline]
    pub fn frame(&mut self, d: &Desc) -> Frame<'_> {
        Frame::new(self.buf_mut(d.idx), d.head as usize, d.len as usize)
    }
    #[inline]
    pub fn bytes(&self, d: &Desc) -> &[u8] {
        match self.mem.get(d.idx as usize) {
            Some(b) => &b[span(FRAME_SIZE, d.head as usize, d.len as usize)],
            None => &[],
        }
    }
    /// Copies `data` into a fresh frame (at HEADROOM); None if no frame is free. Data longer
    /// than a frame is truncated (the pipeline then drops it as malformed).
    #[inline]
    pub fn load(&mut self, data: &[u8]) -> Option<Desc> {
        let idx = self.alloc()?;
        let n = data.len().min(FRAME_SIZE - HEADROOM);
        let buf = self.mem.get_mut(idx as usize)?;
        buf[HEADROOM..HEADROOM + n].copy_from_slice(&data[..n]);
        Some(Desc { idx, head: HEADROOM as u16, len: n as u16 })
    }
}

/// Memory that holds frames: the worker's [`FramePool`], or an AF_XDP UMEM.
pub trait FrameStore {
    /// The bytes of a frame.
    fn bytes(&self, d: &Desc) -> &[u8];
    /// A mutable view of a frame (with its headroom and tailroom).
    fn frame(&mut self, d: &Desc) -> Frame<'_>;
}

/// A store whose frames the worker allocates and frees: [`FramePool`] for in-memory and pcap
/// ports, the UMEM for AF_XDP ports.
pub trait Frames: FrameStore {
    /// Frames in the store.
    fn total(&self) -> u32;
    /// Frames on the free list.
    fn free_count(&self) -> u32;
    /// Gives a frame the worker no longer needs back to the store.
    fn free(&mut self, idx: u32);
    /// Copies `data` into a fresh frame; None if none is free (handed-over frames).
    fn load(&mut self, data: &[u8]) -> Option<Desc>;
}

impl Frames for FramePool {
    fn total(&self) -> u32 {
        self.count
    }
    fn free_count(&self) -> u32 {
        self.free.len() as u32
    }
    #[inline]
    fn free(&mut self, idx: u32) {
        FramePool::free(self, idx)
    }
    #[inline]
    fn load(&mut self, data: &[u8]) -> Option<Desc> {
        FramePool::load(self, data)
    }
}

impl FrameStore for FramePool {
    #[inline]
    fn bytes(&self, d: &Desc) -> &[u8] {
        FramePool::bytes(self, d)
    }
    #[inline]
    fn frame(&mut self, d: &Desc) -> Frame<'_> {
        FramePool::frame(self, d)
    }
}

/// Kernel ring counters of one socket (`XDP_STATISTICS`) plus the port's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty: u64,
    pub tx_invalid_descs: u64,
    pub tx_ring_empty: u64,
    /// `sendto`/`poll` kicks made because the kernel asked (`needs_wakeup`).
    pub wakeups: u64,
    /// Frames the kernel should have had but reached the socket (freed; the XDP program
    /// passes such frames before they get here).
    pub pass_dropped: u64,
}

/// A source and sink of frames.
pub trait Port {
    /// Where this port's frames live (shared by all ports of one worker).
    type Frames: Frames;
    /// Receives up to `out.len()` frames into pool buffers.
    fn rx_burst(&mut self, pool: &mut Self::Frames, out: &mut [Desc]) -> usize;
    /// Transmits frames; returns how many it took. The port gives taken frames back to the
    /// pool once sent; the caller frees the rest.
    fn tx_burst(&mut self, pool: &mut Self::Frames, frames: &[Desc]) -> usize;
    /// A frame the kernel should have (the XDP program passes most such frames before they
    /// reach the socket). Default: give the buffer back.
    fn pass_to_kernel(&mut self, pool: &mut Self::Frames, d: Desc) {
        pool.free(d.idx);
    }
    /// Called when a loop round found nothing to do: a port that batches its transmit kicks
    /// sends what it holds back.
    fn idle(&mut self) {}
    /// A file descriptor that polls readable when frames arrive (an AF_XDP socket), so that
    /// an idle worker can sleep until then; None: the port cannot wake anyone.
    fn wait_fd(&self) -> Option<i32> {
        None
    }
    /// Frames this port has lent to the kernel (fill and tx rings) and not got back.
    fn held(&self) -> u32 {
        0
    }
    /// The kernel's ring counters, for ports that have kernel rings.
    fn ring_stats(&self) -> Option<RingStats> {
        None
    }
    /// A virtual clock (capture timestamps) instead of the wall clock.
    fn clock_ms(&self) -> Option<u64> {
        None
    }
    /// No more frames will ever arrive (end of a capture).
    fn finished(&self) -> bool {
        false
    }
}

/// An in-memory port: frames queued by a test or benchmark, transmitted frames captured (or
/// only counted, for benchmarks).
#[derive(Default)]
pub struct MemPort {
    rx: VecDeque<Vec<u8>>,
    /// Benchmarks: cycle through these frames forever instead of draining `rx`.
    ring: Vec<Vec<u8>>,
    ring_at: usize,
    /// Captured transmitted frames (when `capture` is on).
    pub tx: Vec<Vec<u8>>,
    /// Frames passed to the kernel (when `capture` is on).
    pub passed: Vec<Vec<u8>>,
    pub capture: bool,
    pub tx_count: u64,
    pub pass_count: u64,
    /// Most frames one tx_burst takes (simulates a full ring).
    pub tx_room: usize,
    /// A virtual clock advancing this many nanoseconds per received frame (benchmarks of
    /// steady-state churn); None = the wall clock.
    pub ns_per_frame: Option<u64>,
    pub rx_count: u64,
}

impl MemPort {
    /// A port that captures what it transmits.
    pub fn capturing() -> MemPort {
        MemPort { capture: true, tx_room: usize::MAX, ..MemPort::default() }
    }
    /// A port that replays `frames` in a loop and only counts what it transmits.
    pub fn looping(frames: Vec<Vec<u8>>) -> MemPort {
        MemPort { ring: frames, tx_room: usize::MAX, ..MemPort::default() }
    }
    pub fn push_rx(&mut self, frame: Vec<u8>) {
        self.rx.push_back(frame);
    }
}

impl Port for MemPort {
    type Frames = FramePool;
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let d = if !self.ring.is_empty() {
                let d = pool.load(&self.ring[self.ring_at]);
                if d.is_some() {
                    self.ring_at += 1;
                    if self.ring_at == self.ring.len() {
                        self.ring_at = 0;
                    }
                }
                d
            } else {
                match self.rx.front() {
                    Some(f) => {
                        let d = pool.load(f);
                        if d.is_some() {
                            self.rx.pop_front();
                        }
                        d
                    }
                    None => None,
                }
            };
            match d {
                Some(d) => {
                    out[n] = d;
                    n += 1;
                }
                None => break,
            }
        }
        self.rx_count += n as u64;
        n
    }

    fn clock_ms(&self) -> Option<u64> {
        self.ns_per_frame.map(|ns| self.rx_count * ns / 1_000_000)
    }

    fn tx_burst(&mut self, pool: &mut FramePool, frames: &[Desc]) -> usize {
        let n = frames.len().min(self.tx_room);
        for d in &frames[..n] {
            if self.capture {
                self.tx.push(pool.bytes(d).to_vec());
            }
            pool.free(d.idx);
        }
        self.tx_count += n as u64;
        n
    }

    fn pass_to_kernel(&mut self, pool: &mut FramePool, d: Desc) {
        if self.capture {
            self.passed.push(pool.bytes(&d).to_vec());
        }
        self.pass_count += 1;
        pool.free(d.idx);
    }

    fn finished(&self) -> bool {
        self.ring.is_empty() && self.rx.is_empty()
    }
}

/// Errors opening or writing captures.
#[derive(Debug, thiserror::Error)]
pub enum PcapPortError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a pcap file (pcapng is not supported; convert with `editcap -F pcap`): {msg}")]
    Format { path: String, msg: String },
    #[error("{path}: link type {linktype:?} is not Ethernet")]
    LinkType { path: String, linktype: DataLink },
    #[error("writing the output capture: {0}")]
    Write(String),
}

/// Reads frames from a pcap file and writes transmitted frames to another, stamped with the
/// capture time of the frame being processed. Its clock is the capture's.
pub struct PcapPort {
    reader: PcapReader<BufReader<File>>,
    writer: PcapWriter<BufWriter<File>>,
    next: Option<(Duration, Vec<u8>)>,
    now: Duration,
    done: bool,
    /// Frames in the capture that could not be read (truncated record at the end).
    pub read_errors: u64,
    pub write_error: Option<String>,
    pub rx_count: u64,
    pub tx_count: u64,
}

impl PcapPort {
    pub fn open(input: &Path, output: &Path) -> Result<PcapPort, PcapPortError> {
        let io = |p: &Path, e: std::io::Error| PcapPortError::Io { path: p.display().to_string(), source: e };
        let f = File::open(input).map_err(|e| io(input, e))?;
        let reader = PcapReader::new(BufReader::new(f))
            .map_err(|e| PcapPortError::Format { path: input.display().to_string(), msg: e.to_string() })?;
        let linktype = reader.header().datalink;
        if linktype != DataLink::ETHERNET {
            return Err(PcapPortError::LinkType { path: input.display().to_string(), linktype });
        }
        let out = File::create(output).map_err(|e| io(output, e))?;
        let writer = PcapWriter::new(BufWriter::new(out)).map_err(|e| PcapPortError::Write(e.to_string()))?;
        let mut p = PcapPort {
            reader,
            writer,
            next: None,
            now: Duration::ZERO,
            done: false,
            read_errors: 0,
            write_error: None,
            rx_count: 0,
            tx_count: 0,
        };
        p.advance();
        if let Some((ts, _)) = &p.next {
            p.now = *ts;
        }
        Ok(p)
    }

    fn advance(&mut self) {
        self.next = match self.reader.next_packet() {
            Some(Ok(pkt)) => Some((pkt.timestamp, pkt.data.into_owned())),
            Some(Err(_)) => {
                self.read_errors += 1;
                None
            }
            None => None,
        };
        if self.next.is_none() {
            self.done = true;
        }
    }

    /// Flushes the output capture.
    pub fn finish(self) -> Result<(), PcapPortError> {
        if let Some(e) = self.write_error {
            return Err(PcapPortError::Write(e));
        }
        let mut w = self.writer.into_writer();
        std::io::Write::flush(&mut w).map_err(|e| PcapPortError::Write(e.to_string()))
    }
}

impl Port for PcapPort {
    type Frames = FramePool;
    /// A burst holds frames stamped within 1 ms of its first, so the clock is exact to 1 ms.
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize {
        let mut n = 0;
        let mut first = None;
        while n < out.len() {
            let Some((ts, data)) = &self.next else { break };
            let ts = *ts;
            match first {
                None => {
                    first = Some(ts);
                    self.now = ts.max(self.now);
                }
                Some(f) if ts.saturating_sub(f) >= Duration::from_millis(1) => break,
                Some(_) => {}
            }
            let Some(d) = pool.load(data) else { break };
            out[n] = d;
            n += 1;
            self.rx_count += 1;
            self.advance();
        }
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, frames: &[Desc]) -> usize {
        for d in frames {
            let data = pool.bytes(d);
            if let Err(e) = self.writer.write_packet(&PcapPacket::new(self.now, data.len() as u32, data)) {
                self.write_error.get_or_insert(e.to_string());
            }
            pool.free(d.idx);
        }
        self.tx_count += frames.len() as u64;
        frames.len()
    }

    fn clock_ms(&self) -> Option<u64> {
        Some(self.now.as_millis() as u64)
    }

    fn finished(&self) -> bool {
        self.done && self.next.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_past_the_pool_reads_as_an_empty_frame() {
        let mut pool = FramePool::new(4);
        let d = pool.load(&[1, 2, 3]).expect("a free frame");
        assert_eq!(pool.bytes(&d), &[1, 2, 3]);
        let bad = Desc { idx: 4, head: HEADROOM as u16, len: 3 };
        assert!(pool.bytes(&bad).is_empty());
        assert_eq!(pool.frame(&bad).len(), 0);
        // A head or length past the frame is clamped into it.
        let long = Desc { idx: d.idx, head: FRAME_SIZE as u16 - 2, len: 100 };
        assert_eq!(pool.bytes(&long).len(), 2);
    }
}
