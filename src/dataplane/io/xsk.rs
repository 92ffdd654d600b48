//! The AF_XDP port (xsk-rs 0.11): one socket per (interface, queue), a UMEM per worker shared
//! by that worker's sockets, zero-copy requested first with copy mode as the fallback.
//!
//! This is the one module of xvs with `unsafe` code: xsk-rs marks ring access and UMEM frame
//! access unsafe because the compiler cannot know who owns a frame at a given moment. Here the
//! ownership rule is simple and kept by construction: a frame index is in exactly one place at
//! a time: the worker's free list, a fill ring, an rx descriptor being processed, a tx ring, or
//! a completion ring. Each [`XskPort`] counts the frames it lent the kernel, so that a test can
//! prove none is ever lost (`free + lent to the kernel + held by the worker == total`).
#![allow(unsafe_code)]

use super::port::{Desc, FrameStore, Frames, Port, RingStats, BURST, FRAME_SIZE};
use crate::wire::frame::span;
use crate::wire::Frame;
use std::ffi::CString;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

/// Bytes the kernel reserves in front of every received frame (XDP_PACKET_HEADROOM).
pub const XDP_HEADROOM: usize = 256;
/// Room for a frame's data: from where the kernel writes it to the end of the UMEM frame.
pub const DATA_ROOM: usize = FRAME_SIZE - XDP_HEADROOM;
// The config's bound on director.mtu is what a frame's data room holds.
const _: () = assert!(crate::model::MAX_MTU as usize + crate::wire::ethernet::HEADER_LEN == DATA_ROOM);

/// Frames the kernel sends per tx kick in copy mode (its TX_BATCH_SIZE).
const KICK_BATCH: u32 = 32;

/// Ring and UMEM sizes.
#[derive(Clone, Copy, Debug)]
pub struct XskSizes {
    /// UMEM frames per worker.
    pub frames: u32,
    pub rx_ring: u32,
    pub tx_ring: u32,
    pub fill_ring: u32,
    pub comp_ring: u32,
}

impl Default for XskSizes {
    fn default() -> XskSizes {
        XskSizes { frames: 8192, rx_ring: 2048, tx_ring: 2048, fill_ring: 4096, comp_ring: 4096 }
    }
}

/// Errors setting up AF_XDP.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("bad ring or UMEM size {what} = {value}: {msg}")]
    Size { what: &'static str, value: u32, msg: String },
    #[error("creating the UMEM ({frames} frames): {msg}")]
    Umem { frames: u32, msg: String },
    #[error("binding an AF_XDP socket to {iface} queue {queue}: {msg}")]
    Bind { iface: String, queue: u32, msg: String },
}

/// How a socket ended up bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindInfo {
    pub zero_copy: bool,
    /// Why zero-copy was not used (the kernel's answer), when it was not.
    pub zero_copy_refused: Option<String>,
}

/// A worker's UMEM: its frames, and which of them are free.
pub struct UmemFrames {
    umem: Umem,
    /// Every frame's descriptor as xsk-rs created it (its data segment's address).
    descs: Vec<FrameDesc>,
    /// Start of every frame's data segment, `DATA_ROOM` bytes long.
    ptrs: Vec<*mut u8>,
    free: Vec<u32>,
}

// SAFETY: the raw pointers point into the UMEM mapping that `umem` keeps alive; the
// `UmemFrames` moves to its worker thread once and is used only there.
unsafe impl Send for UmemFrames {}

impl UmemFrames {
    /// Creates a UMEM of `sizes.frames` frames of [`FRAME_SIZE`] bytes, all free.
    pub fn new(sizes: &XskSizes) -> Result<UmemFrames, XskError> {
        let qs = |what, v: u32| QueueSize::new(v).map_err(|e| XskError::Size { what, value: v, msg: e.to_string() });
        let config = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE as u32).map_err(|e| XskError::Size {
                what: "frame_size",
                value: FRAME_SIZE as u32,
                msg: e.to_string(),
            })?)
            .fill_queue_size(qs("fill_ring", sizes.fill_ring)?)
            .comp_queue_size(qs("comp_ring", sizes.comp_ring)?)
            .frame_headroom(0)
            .build()
            .map_err(|e| XskError::Umem { frames: sizes.frames, msg: e.to_string() })?;
        let count = NonZeroU32::new(sizes.frames).ok_or(XskError::Size {
            what: "frames",
            value: 0,
            msg: "must be positive".into(),
        })?;
        let (umem, mut descs) =
            Umem::new(config, count, false).map_err(|e| XskError::Umem { frames: sizes.frames, msg: e.to_string() })?;
        let mut ptrs = Vec::with_capacity(descs.len());
        for d in descs.iter_mut() {
            // SAFETY: `d` is one of this UMEM's descriptors and no frame has been handed to
            // the kernel yet, so nothing else accesses its memory.
            let mut data = unsafe { umem.data_mut(d) };
            let mut cur = data.cursor();
            let room = cur.buf_len();
            if room < DATA_ROOM {
                return Err(XskError::Umem {
                    frames: sizes.frames,
                    msg: format!("frame data room {room} < {DATA_ROOM}"),
                });
            }
            cur.set_pos(0);
            ptrs.push(data.contents_mut().as_mut_ptr());
        }
        let free = (0..descs.len() as u32).rev().collect();
        Ok(UmemFrames { umem, descs, ptrs, free })
    }

    #[inline]
    fn slice(&self, idx: u32) -> &[u8] {
        match self.ptrs.get(idx as usize) {
            // SAFETY: the pointer starts a DATA_ROOM-byte data segment inside the live UMEM
            // mapping; frame `idx` is owned by the worker (not in a kernel ring) whenever a
            // `Desc` for it exists, and `&self` prevents a concurrent mutable view.
            Some(&p) => unsafe { std::slice::from_raw_parts(p, DATA_ROOM) },
            None => &[],
        }
    }

    #[inline]
    fn slice_mut(&mut self, idx: u32) -> &mut [u8] {
        match self.ptrs.get(idx as usize) {
            // SAFETY: as in `slice`; `&mut self` makes this the only view of the frame.
            Some(&p) => unsafe { std::slice::from_raw_parts_mut(p, DATA_ROOM) },
            None => &mut [],
        }
    }

    /// The descriptor to give the kernel for frame `idx` holding `len` bytes at its start.
    #[inline]
    fn tx_desc(&mut self, idx: u32, len: usize) -> Option<FrameDesc> {
        let d = self.descs.get_mut(idx as usize)?;
        // SAFETY: frame `idx` is owned by the worker (it is about to be produced to a tx
        // ring), so no other view of it exists; the cursor only records the length.
        let mut data = unsafe { self.umem.data_mut(d) };
        data.cursor().set_pos(len);
        Some(*d)
    }

    #[inline]
    fn alloc(&mut self) -> Option<u32> {
        self.free.pop()
    }
}

impl FrameStore for UmemFrames {
    #[inline]
    fn bytes(&self, d: &Desc) -> &[u8] {
        let s = self.slice(d.idx);
        &s[span(s.len(), d.head as usize, d.len as usize)]
    }
    #[inline]
    fn frame(&mut self, d: &Desc) -> Frame<'_> {
        Frame::new(self.slice_mut(d.idx), d.head as usize, d.len as usize)
    }
}

impl Frames for UmemFrames {
    fn total(&self) -> u32 {
        self.descs.len() as u32
    }
    fn free_count(&self) -> u32 {
        self.free.len() as u32
    }
    #[inline]
    fn free(&mut self, idx: u32) {
        if (idx as usize) < self.descs.len() && self.free.len() < self.descs.len() {
            self.free.push(idx);
        }
    }
    #[inline]
    fn load(&mut self, data: &[u8]) -> Option<Desc> {
        let idx = self.alloc()?;
        let n = data.len().min(DATA_ROOM);
        self.slice_mut(idx)[..n].copy_from_slice(&data[..n]);
        Some(Desc { idx, head: 0, len: n as u16 })
    }
}

/// One AF_XDP socket: an (interface, queue) of a worker.
pub struct XskPort {
    pub iface: String,
    pub queue: u32,
    pub info: BindInfo,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    scratch: [FrameDesc; BURST],
    comp: [FrameDesc; BURST * 2],
    /// Frames this port keeps in its fill ring (each port of a worker gets its share).
    fill_target: u32,
    in_fill: u32,
    in_tx: u32,
    /// Frames put on the tx ring since the last kick.
    unkicked: u32,
    stats: RingStats,
}

// SAFETY: the queues hold libxdp ring pointers used only by the thread that owns the port;
// the port moves to its worker thread once, before any ring is used.
unsafe impl Send for XskPort {}

impl XskPort {
    /// Binds a socket to `iface` queue `queue` on `frames`' UMEM: zero-copy first, copy mode
    /// when the driver refuses (reported in [`BindInfo`]). libxdp's own XDP program is
    /// inhibited: xvs attaches its steering program itself. A bind that finds the queue still
    /// busy (a previous socket being torn down) is retried for up to a second.
    pub fn open(
        frames: &mut UmemFrames,
        iface: &str,
        queue: u32,
        sizes: &XskSizes,
        fill_target: u32,
    ) -> Result<XskPort, XskError> {
        let bind_err = |msg: String| XskError::Bind { iface: iface.to_string(), queue, msg };
        let name = CString::new(iface).map_err(|_| bind_err("interface name contains NUL".into()))?;
        let qs = |what, v: u32| QueueSize::new(v).map_err(|e| XskError::Size { what, value: v, msg: e.to_string() });
        let config = |bind: BindFlags| -> Result<SocketConfig, XskError> {
            Ok(SocketConfig::builder()
                .rx_queue_size(qs("rx_ring", sizes.rx_ring)?)
                .tx_queue_size(qs("tx_ring", sizes.tx_ring)?)
                .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                .bind_flags(bind | BindFlags::XDP_USE_NEED_WAKEUP)
                .build())
        };
        let iface_c = Interface::new(name);
        let mut zero_copy_refused = None;
        let mut opened = None;
        for (bind, zero_copy) in [(BindFlags::XDP_ZEROCOPY, true), (BindFlags::XDP_COPY, false)] {
            let cfg = config(bind)?;
            let deadline = Instant::now() + Duration::from_secs(1);
            loop {
                // SAFETY: the UMEM is not yet bound to this (interface, queue) by this
                // process, and XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD is set as xsk-rs requires
                // for shared UMEMs.
                match unsafe { xsk_rs::Socket::new(cfg, &frames.umem, &iface_c, queue) } {
                    Ok(q) => {
                        opened = Some(q);
                        break;
                    }
                    Err(e) => {
                        let os = std::error::Error::source(&e)
                            .and_then(|s| s.downcast_ref::<io::Error>())
                            .and_then(|s| s.raw_os_error());
                        let busy = os == Some(libc::EBUSY);
                        let e = match std::error::Error::source(&e) {
                            Some(s) => format!("{e}: {s}"),
                            None => e.to_string(),
                        };
                        if busy && Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        if zero_copy {
                            zero_copy_refused = Some(e);
                        } else {
                            return Err(bind_err(e));
                        }
                        break;
                    }
                }
            }
            if opened.is_some() {
                break;
            }
        }
        let Some((tx, rx, rings)) = opened else {
            return Err(bind_err("no bind mode worked".into()));
        };
        let Some((fq, cq)) = rings else {
            return Err(bind_err("this (interface, queue) is already bound by this UMEM".into()));
        };
        // A socket sharing a UMEM inherits the UMEM's mode whatever flags it asked for, so
        // ask the kernel which mode this one got.
        let zero_copy = match xdp_zero_copy(rx.fd().as_raw_fd()) {
            Ok(z) => z,
            Err(e) => return Err(bind_err(format!("reading XDP_OPTIONS: {e}"))),
        };
        if !zero_copy && zero_copy_refused.is_none() {
            zero_copy_refused = Some("the shared UMEM is in copy mode".into());
        }
        let mut p = XskPort {
            iface: iface.to_string(),
            queue,
            info: BindInfo { zero_copy, zero_copy_refused },
            tx,
            rx,
            fq,
            cq,
            scratch: [FrameDesc::default(); BURST],
            comp: [FrameDesc::default(); BURST * 2],
            fill_target: fill_target.min(sizes.fill_ring).max(BURST as u32),
            in_fill: 0,
            in_tx: 0,
            unkicked: 0,
            stats: RingStats::default(),
        };
        p.refill(frames);
        Ok(p)
    }

    /// The socket's file descriptor (for the XSKMAP entry of its queue).
    pub fn fd(&self) -> i32 {
        self.rx.fd().as_raw_fd()
    }

    fn kernel_stats(&self) -> io::Result<RingStats> {
        let k = self.rx.fd().xdp_statistics()?;
        Ok(RingStats {
            rx_dropped: k.rx_dropped(),
            rx_invalid_descs: k.rx_invalid_descs(),
            rx_ring_full: k.rx_ring_full(),
            rx_fill_ring_empty: k.rx_fill_ring_empty_descs(),
            tx_invalid_descs: k.tx_invalid_descs(),
            tx_ring_empty: k.tx_ring_empty_descs(),
            ..self.stats
        })
    }

    /// Wakes the kernel to send (up to [`KICK_BATCH`] of) what the tx ring holds, if it asks
    /// to be woken.
    #[inline]
    fn kick(&mut self) {
        self.unkicked = self.unkicked.saturating_sub(KICK_BATCH);
        if self.tx.needs_wakeup() {
            self.stats.wakeups += 1;
            let _ = self.tx.wakeup();
        }
    }

    /// Completed transmissions back to the free list.
    #[inline]
    fn reap(&mut self, frames: &mut UmemFrames) {
        if self.in_tx == 0 {
            return;
        }
        // SAFETY: the completion ring only returns frames of this UMEM that this port put
        // on its tx ring; they become the worker's again.
        let n = unsafe { self.cq.consume(&mut self.comp) };
        for d in &self.comp[..n] {
            frames.free((d.addr() / FRAME_SIZE) as u32);
        }
        self.in_tx -= n as u32;
    }

    /// Tops the fill ring up to this port's share from the free list: the whole deficit,
    /// BURST descriptors at a time, so that a ring drained while the free list was short
    /// (frames lent to a slow tx) is whole again at the next round. Topping up by one burst
    /// a round never caught up: rx takes up to a burst a round too, so the deficit stayed
    /// and the kernel found the ring empty (`fill_empty`).
    #[inline]
    fn refill(&mut self, frames: &mut UmemFrames) {
        let mut left = self.fill_target.saturating_sub(self.in_fill) as usize;
        if left < BURST / 2 {
            return;
        }
        let mut filled = false;
        while left > 0 {
            let want = left.min(BURST);
            let room = self.fq.nb_free(want as u32) as usize;
            let mut n = 0;
            while n < want.min(room) {
                let Some(idx) = frames.alloc() else { break };
                self.scratch[n] = frames.descs[idx as usize];
                n += 1;
            }
            // SAFETY: these frames came off the free list, so nothing else uses them; `n` is
            // within the room the ring reported, so the all-or-nothing produce takes them all.
            let done = unsafe { self.fq.produce(&self.scratch[..n]) };
            for d in &self.scratch[done..n] {
                frames.free((d.addr() / FRAME_SIZE) as u32);
            }
            self.in_fill += done as u32;
            filled |= done > 0;
            if done < want {
                // The ring is full or the free list is empty: the rest waits for a round.
                break;
            }
            left -= done;
        }
        if filled && self.fq.needs_wakeup() {
            self.stats.wakeups += 1;
            let _ = self.fq.wakeup(self.rx.fd_mut(), 0);
        }
    }
}

/// Sleeps until one of `fds` (AF_XDP sockets) has frames to receive, or `timeout_ms` passed:
/// `poll(2)`, called only by an idle worker (never on the packet path).
pub fn wait_readable(fds: &[i32], timeout_ms: i32) {
    let mut p = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 8];
    let n = fds.len().min(p.len());
    for (slot, &fd) in p.iter_mut().zip(&fds[..n]) {
        *slot = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    }
    // SAFETY: `p` is a live array of `n` initialised pollfd structs for the whole call; poll
    // only writes their `revents`.
    let _ = unsafe { libc::poll(p.as_mut_ptr(), n as libc::nfds_t, timeout_ms) };
}

/// Whether an AF_XDP socket runs in zero-copy mode (`getsockopt(SOL_XDP, XDP_OPTIONS)`).
fn xdp_zero_copy(fd: i32) -> io::Result<bool> {
    const SOL_XDP: libc::c_int = 283;
    const XDP_OPTIONS: libc::c_int = 8;
    const XDP_OPTIONS_ZEROCOPY: u32 = 1;
    let mut flags: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `flags` and `len` are valid for writes of the sizes given, and the kernel
    // writes at most `len` bytes (struct xdp_options is one u32).
    let r = unsafe { libc::getsockopt(fd, SOL_XDP, XDP_OPTIONS, (&mut flags as *mut u32).cast(), &mut len) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & XDP_OPTIONS_ZEROCOPY != 0)
}

impl Port for XskPort {
    type Frames = UmemFrames;

    #[inline]
    fn rx_burst(&mut self, frames: &mut UmemFrames, out: &mut [Desc]) -> usize {
        self.reap(frames);
        self.refill(frames);
        let max = out.len().min(BURST);
        // SAFETY: the rx ring returns frames of this UMEM that this port put on its fill
        // ring; from here on the worker owns them.
        let n = unsafe { self.rx.consume(&mut self.scratch[..max]) };
        for (o, d) in out.iter_mut().zip(&self.scratch[..n]) {
            let idx = d.addr() / FRAME_SIZE;
            let head = (d.addr() % FRAME_SIZE).saturating_sub(XDP_HEADROOM);
            *o = Desc { idx: idx as u32, head: head as u16, len: d.lengths().data() as u16 };
        }
        self.in_fill -= n as u32;
        n
    }

    #[inline]
    fn tx_burst(&mut self, frames: &mut UmemFrames, out: &[Desc]) -> usize {
        self.reap(frames);
        let want = out.len().min(BURST);
        let room = self.tx.nb_free(want as u32) as usize;
        let n = want.min(room);
        let mut k = 0;
        for d in &out[..n] {
            // The kernel sends from the frame's data segment start: a frame that grew into
            // its headroom or was moved (TUN) is moved back to it first.
            if d.head != 0 {
                let s = frames.slice_mut(d.idx);
                let h = (d.head as usize).min(s.len());
                let l = (d.len as usize).min(s.len() - h);
                s.copy_within(h..h + l, 0);
            }
            match frames.tx_desc(d.idx, d.len as usize) {
                Some(fd) => {
                    self.scratch[k] = fd;
                    k += 1;
                }
                None => frames.free(d.idx),
            }
        }
        // SAFETY: these frames are the worker's (processed rx frames or loaded copies); `k`
        // is within the room the ring reported, so the all-or-nothing produce takes them all.
        let done = unsafe { self.tx.produce(&self.scratch[..k]) };
        for d in &self.scratch[done..k] {
            frames.free((d.addr() / FRAME_SIZE) as u32);
        }
        self.in_tx += done as u32;
        self.unkicked += done as u32;
        // In copy mode the kernel sends only inside the kick (`sendto`), at most 32 frames a
        // time: kick once for every burst's worth waiting, and for the rest when the loop goes
        // idle (`idle`), so a trickle of frames does not cost a system call each.
        while self.unkicked >= KICK_BATCH {
            self.kick();
        }
        // Frames beyond the ring's room stay the caller's (it counts and frees them).
        n
    }

    fn held(&self) -> u32 {
        self.in_fill + self.in_tx
    }

    fn ring_stats(&self) -> Option<RingStats> {
        Some(self.kernel_stats().unwrap_or(self.stats))
    }

    fn idle(&mut self) {
        while self.unkicked > 0 {
            self.kick();
        }
    }

    fn wait_fd(&self) -> Option<i32> {
        Some(self.fd())
    }

    fn pass_to_kernel(&mut self, frames: &mut UmemFrames, d: Desc) {
        self.stats.pass_dropped += 1;
        frames.free(d.idx);
    }
}
