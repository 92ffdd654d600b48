//! The worker loop (DPDK `l2fwd` / GLB processor shape): housekeeping on a timer, one
//! `try_recv` of control, then per port: rx burst -> process -> tx burst. Bursts live in
//! fixed arrays; nothing here allocates, locks or logs per packet.

use super::handoff::Handoff;
use super::io::RingStats;
use super::io::{Desc, FrameStore, Frames, Port, BURST};
use super::pipeline::{Pipeline, TxLists};
use super::stats::{
    BoardExtra, DropReason, LoopRounds, PassReason, StatsBoard, Verdict, WorkerStats, MAX_RINGS, PUBLISH_MS,
};
use super::tables::Tables;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

/// Most ports a worker drives (interfaces of the director).
pub const MAX_PORTS: usize = 8;
/// Most connections expired per busy loop round: expiry is spread over rounds instead of
/// pausing the loop. 64 per round (two a frame of a 32-frame burst) keeps up with a SYN flood
/// and keeps a round of SYNs under about 50 us (`tools/churn_stall.rs`: with 256, 2.9% of the
/// rounds of a 1M-connection churn took longer, with 64, 0.4%). A round after an idle one,
/// or with the shard nearly full, expires [`EXPIRE_CATCH_UP`].
pub const EXPIRE_BUDGET: usize = 64;
/// Expiry budget when nothing waits (the last round was idle) or room is short. A burst that
/// arrives meanwhile waits for it: 512 expiries cost 16-21 us at 1M connections, 1024 cost
/// 33-41 us (`tools/churn_stall.rs`), too close to the 50 us a burst may wait. An idle worker
/// that has not caught up does not sleep (see [`Worker::poll`]), so catching up is not slower.
pub const EXPIRE_CATCH_UP: usize = 512;
/// Free slots below which the catch-up budget applies.
const EXPIRE_LOW_ROOM: u32 = 4096;
/// The longest an idle worker sleeps before looking at its timers, control channel and
/// handoff ring again.
pub const IDLE_SLEEP_MS: i32 = 1;

/// Messages from the control plane.
pub enum Control {
    /// Switch to a new tables snapshot at the next batch boundary.
    Tables(Arc<Tables>),
    /// Send a copy of the counters.
    Stats(Sender<WorkerReport>),
    /// Send a copy of (at most this many entries of) the connection table (`ipvsadm -c`),
    /// with the table's size. The worker walks its table a slice per loop round.
    Conns(usize, Sender<(Vec<crate::model::ConnEntry>, u32)>),
    /// Queue sync messages of connections due to be synced here (a sync master), or stop.
    SyncOut(Option<Arc<super::pipeline::SyncLink>>),
    /// Install these received sync messages (a sync backup; each worker keeps those it owns).
    SyncIn(Arc<super::pipeline::SyncLink>, Vec<crate::model::SyncConn>),
    /// Send every connection and template as sync messages (a hitless restart's handover).
    SyncDump(Sender<Vec<crate::model::SyncConn>>),
    /// Leave the loop.
    Shutdown,
}

/// A worker's answer to [`Control::Stats`].
#[derive(Clone, Debug, Default)]
pub struct WorkerReport {
    pub worker: u16,
    pub stats: WorkerStats,
    pub conns: u32,
    pub shard: crate::conn::ShardStats,
    /// Frame accounting: every frame of the store is free, lent to the kernel, or held by
    /// the worker; between rounds the worker holds none, so `lost()` must be 0.
    pub frames_total: u32,
    pub frames_free: u32,
    pub frames_in_kernel: u32,
    /// Active/inactive connections and templates of each real server, by id.
    pub loads: Vec<crate::sched::DestLoad>,
    /// Kernel ring counters of each port that has them (AF_XDP).
    pub rings: Vec<super::io::RingStats>,
    pub idle_yields: u64,
    /// How long the loop's rounds took ([`Worker::run`] measures them).
    pub loop_rounds: LoopRounds,
}

impl WorkerReport {
    /// Frames neither free nor lent to the kernel, counted between loop rounds.
    pub fn lost(&self) -> i64 {
        self.frames_total as i64 - self.frames_free as i64 - self.frames_in_kernel as i64
    }
}

/// Why [`Worker::poll`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Frames were handled.
    Busy(usize),
    Idle,
    Shutdown,
    /// Every port is finished (end of a capture).
    Finished,
}

/// One worker: owns its ports, frame pool, pipeline (conn shard, schedulers, stats) and
/// control receiver.
pub struct Worker<P: Port> {
    pub id: u16,
    pub pipeline: Pipeline,
    pub ports: Vec<P>,
    pub pool: P::Frames,
    ctrl: Option<Receiver<Control>>,
    /// Rings to and from the other workers (NAT/FULLNAT ownership); None with one worker.
    handoff: Option<Arc<Handoff>>,
    start: Instant,
    rx: [Desc; BURST],
    tx: PortLists,
    /// The interface each port belongs to (identity unless set by [`Worker::map_ports`]).
    port_iface: [u8; MAX_PORTS],
    /// The wall clock at the start of this loop round.
    round_ms: u64,
    /// The last round handled no frame.
    was_idle: bool,
    /// Consecutive idle rounds (back-off, see [`Worker::run`]).
    idle_rounds: u32,
    /// Times the idle worker yielded its core.
    pub idle_yields: u64,
    /// Loop round durations (measured by [`Worker::run`]; a caller of `poll` alone has none).
    pub loop_rounds: LoopRounds,
    /// Where the counters are published for the control plane (see [`StatsBoard`]).
    board: Option<Arc<StatsBoard>>,
    last_publish: u64,
    /// `ipvsadm -c` listings: the first in progress (next slab slot, limit, entries so far,
    /// reply), others waiting their turn.
    listings: std::collections::VecDeque<Listing>,
}

/// Frames to transmit, a list a port, filled by the pipeline as it decides ([`TxLists`]) and
/// sent at the end of each burst.
struct PortLists {
    desc: [[Desc; BURST]; MAX_PORTS],
    n: [usize; MAX_PORTS],
    /// Which port transmits for each interface index in `Verdict::Tx` (identity unless
    /// several interfaces share one port, as in `xvs replay`), for every u8 so that a
    /// verdict's list is one load; `NO_PORT` past `MAX_PORTS`. A list whose port is missing
    /// is counted as `TxFull` when flushed ([`Worker::flush`]).
    port_of: [u8; 256],
}

/// `PortLists::port_of` of an interface that no port can transmit for.
const NO_PORT: u8 = u8::MAX;

impl TxLists for PortLists {
    /// False for an interface past `MAX_PORTS`, or a full list (never: each burst's lists are
    /// sent before the next). A refused frame goes to [`Worker::dispatch`], which flushes a
    /// full list before queuing it.
    #[inline]
    fn push(&mut self, iface: u8, d: Desc) -> bool {
        let p = self.port_of[iface as usize] as usize;
        let (Some(list), Some(n)) = (self.desc.get_mut(p), self.n.get_mut(p)) else { return false };
        match list.get_mut(*n) {
            Some(slot) => {
                *slot = d;
                *n += 1;
                true
            }
            None => false,
        }
    }
}

/// A connection listing being walked a slice per loop round.
struct Listing {
    next: u32,
    limit: usize,
    entries: Vec<crate::model::ConnEntry>,
    reply: Sender<(Vec<crate::model::ConnEntry>, u32)>,
}

/// Slab slots a listing walks per loop round (about 20 us): the loop never pauses for a
/// whole table.
const LIST_SLICE: u32 = 4096;

impl<P: Port> Worker<P> {
    pub fn new(
        id: u16,
        pipeline: Pipeline,
        ports: Vec<P>,
        pool: P::Frames,
        ctrl: Option<Receiver<Control>>,
    ) -> Worker<P> {
        let mut w = Worker {
            id,
            pipeline,
            ports,
            pool,
            ctrl,
            handoff: None,
            start: Instant::now(),
            rx: [Desc::default(); BURST],
            tx: PortLists {
                desc: [[Desc::default(); BURST]; MAX_PORTS],
                n: [0; MAX_PORTS],
                port_of: core::array::from_fn(|i| if i < MAX_PORTS { i as u8 } else { NO_PORT }),
            },
            port_iface: core::array::from_fn(|i| i as u8),
            round_ms: 0,
            was_idle: true,
            idle_rounds: 0,
            idle_yields: 0,
            loop_rounds: LoopRounds::default(),
            board: None,
            last_publish: 0,
            listings: std::collections::VecDeque::new(),
        };
        w.ports.truncate(MAX_PORTS);
        let now = w.now_ms();
        w.pipeline.shard.start_clock(now);
        // FULLNAT's walks follow wall-clock time (see `conn::lports`); a capture's clock is
        // its own timestamps already.
        if w.ports.first().and_then(|p| p.clock_ms()).is_none() {
            let unix_ms =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            w.pipeline.shard.set_wall_clock(unix_ms.saturating_sub(now));
        }
        w
    }

    /// Publishes this worker's counters to `board` every [`PUBLISH_MS`].
    pub fn set_board(&mut self, board: Arc<StatsBoard>) {
        self.board = Some(board);
    }

    /// Copies the counters to the board (control plane reads them from there).
    fn publish(&mut self) {
        let Some(b) = &self.board else { return };
        let shard = &self.pipeline.shard;
        // The ports that have kernel ring counters (AF_XDP), in port order.
        let mut rings = [RingStats::default(); MAX_RINGS];
        let mut n_rings = 0;
        for s in self.ports.iter().filter_map(|p| p.ring_stats()).take(MAX_RINGS) {
            rings[n_rings] = s;
            n_rings += 1;
        }
        let x = BoardExtra {
            conns: shard.len(),
            frames_total: self.pool.total(),
            frames_free: self.pool.free_count(),
            frames_in_kernel: self.ports.iter().map(|p| p.held()).sum(),
            idle_yields: self.idle_yields,
            rings: Vec::new(),
            published_ms: self.round_ms,
            loop_rounds: self.loop_rounds,
        };
        b.publish(&self.pipeline.stats, &shard.stats, &x, &rings[..n_rings], self.loads_by_id());
    }

    /// Every real server's load by id (what boards and reports carry).
    fn loads_by_id(&self) -> impl Iterator<Item = crate::sched::DestLoad> + '_ {
        let (t, shard) = (self.pipeline.tables(), &self.pipeline.shard);
        (0..t.dest_ids).map(move |id| t.slot_of_id(id).and_then(|(s, d)| shard.load(s, d)).copied().unwrap_or_default())
    }

    /// Connects this worker to the others' handoff rings.
    pub fn set_handoff(&mut self, h: Arc<Handoff>) {
        self.handoff = Some(h);
    }

    /// Says which interface each port is (several queues of one interface are several ports):
    /// frames received on a port are the interface's, and an interface transmits through its
    /// first port.
    pub fn map_ports(&mut self, ifaces: &[u8]) {
        for (pi, &i) in ifaces.iter().enumerate().take(MAX_PORTS) {
            self.port_iface[pi] = i;
        }
        for i in 0..MAX_PORTS {
            if let Some(pi) = ifaces.iter().position(|&x| x as usize == i) {
                self.tx.port_of[i] = pi as u8;
            }
        }
    }

    /// Sends every interface's frames through port `port` (one capture for all of them).
    pub fn share_port(&mut self, port: u8) {
        self.tx.port_of[..MAX_PORTS].fill(port);
    }

    fn now_ms(&self) -> u64 {
        match self.ports.first().and_then(|p| p.clock_ms()) {
            Some(t) => t,
            None => self.start.elapsed().as_millis() as u64,
        }
    }

    /// Runs until shutdown or until every port is finished. An idle worker spins for a
    /// while, then yields its core between polls (on a machine where the kernel's packet
    /// processing shares the worker's core, a worker that never yields starves the very
    /// kernel work that feeds it), and after about a millisecond of nothing, sleeps in
    /// `poll(2)` on its sockets until frames arrive, waking at least every [`IDLE_SLEEP_MS`]
    /// for the timer wheel, the control channel and frames other workers hand over. So an
    /// idle director costs next to no CPU, and the first frame wakes it within microseconds
    /// (the rx ring holds what arrives meanwhile).
    ///
    /// Each round's duration goes to [`Worker::loop_rounds`]: one clock read a round, the end
    /// of one round being the start of the next (a yield or a sleep restarts the clock, so
    /// they are not counted; a preempted worker's lost time is).
    pub fn run(&mut self) -> Poll {
        const SPIN_ROUNDS: u32 = 128;
        const YIELD_ROUNDS: u32 = 1024;
        let mut round_start = Instant::now();
        loop {
            let p = self.poll();
            let end = Instant::now();
            self.loop_rounds.record(end.saturating_duration_since(round_start).as_nanos() as u64);
            round_start = end;
            match p {
                Poll::Busy(_) => self.idle_rounds = 0,
                Poll::Idle => {
                    self.idle_rounds = self.idle_rounds.saturating_add(1);
                    if self.idle_rounds < SPIN_ROUNDS {
                        std::hint::spin_loop();
                    } else {
                        self.idle_yields += 1;
                        if self.idle_rounds < SPIN_ROUNDS + YIELD_ROUNDS || !self.sleep_until_frames() {
                            std::thread::yield_now();
                        }
                        round_start = Instant::now();
                    }
                }
                p => return p,
            }
        }
    }

    /// Sleeps until a port has frames (or [`IDLE_SLEEP_MS`]); false if no port can wake it.
    fn sleep_until_frames(&self) -> bool {
        let mut fds = [0i32; MAX_PORTS];
        let mut n = 0;
        for fd in self.ports.iter().filter_map(|p| p.wait_fd()) {
            if n < fds.len() {
                fds[n] = fd;
                n += 1;
            }
        }
        if n == 0 {
            return false;
        }
        super::io::xsk::wait_readable(&fds[..n], IDLE_SLEEP_MS);
        true
    }

    /// One round of the loop. Never inlined: one call per burst costs nothing, and the
    /// callgrind harness (`tools/pipeline_insns.rs`) measures exactly this function.
    #[inline(never)]
    pub fn poll(&mut self) -> Poll {
        // Housekeeping on the timer wheel: free when nothing is due (one comparison).
        let now = self.now_ms();
        self.round_ms = now;
        let shard = &self.pipeline.shard;
        let budget = if self.was_idle || shard.capacity() - shard.len() < EXPIRE_LOW_ROOM {
            EXPIRE_CATCH_UP
        } else {
            EXPIRE_BUDGET
        };
        self.pipeline.housekeeping(now, budget);
        if now.wrapping_sub(self.last_publish) >= PUBLISH_MS {
            self.last_publish = now;
            self.publish();
        }
        if let Some(l) = self.listings.front_mut() {
            let shard = &self.pipeline.shard;
            l.next = shard.entries_slice(l.next, LIST_SLICE, now, l.limit, &mut l.entries);
            if l.next >= shard.capacity() {
                if let Some(l) = self.listings.pop_front() {
                    let _ = l.reply.send((l.entries, shard.len()));
                }
            }
        }
        if let Some(rx) = &self.ctrl {
            match rx.try_recv() {
                Ok(Control::Tables(t)) => {
                    self.pipeline.set_tables(t);
                    self.publish();
                }
                Ok(Control::Stats(reply)) => {
                    let _ = reply.send(self.report());
                }
                Ok(Control::Conns(limit, reply)) => {
                    self.listings.push_back(Listing { next: 0, limit, entries: Vec::new(), reply });
                }
                Ok(Control::SyncOut(link)) => self.pipeline.set_sync_out(link),
                Ok(Control::SyncIn(link, msgs)) => {
                    for m in &msgs {
                        self.pipeline.install_synced(m, &link, now);
                    }
                }
                Ok(Control::SyncDump(reply)) => {
                    let _ = reply.send(self.pipeline.shard.sync_all(now));
                }
                Ok(Control::Shutdown) | Err(TryRecvError::Disconnected) => return Poll::Shutdown,
                Err(TryRecvError::Empty) => {}
            }
        }
        let mut handled = 0;
        for pi in 0..self.ports.len() {
            let n = self.ports[pi].rx_burst(&mut self.pool, &mut self.rx);
            if n > 0 {
                handled += n;
                self.handle_burst(n, self.port_iface[pi] as usize, false);
            }
        }
        handled += self.handoff_burst();
        self.was_idle = handled == 0;
        if handled == 0 {
            for p in self.ports.iter_mut() {
                p.idle();
            }
        }
        if handled > 0 {
            Poll::Busy(handled)
        } else if !self.listings.is_empty() || self.pipeline.shard.expiry_behind(now) {
            // A connection listing is being sliced out, or expiry has not caught up: no
            // sleeping until it is done (each round does a bounded part of it).
            Poll::Busy(0)
        } else if self.ports.iter().all(|p| p.finished()) {
            Poll::Finished
        } else {
            Poll::Idle
        }
    }

    /// A copy of the counters (control path).
    pub fn report(&self) -> WorkerReport {
        WorkerReport {
            worker: self.id,
            stats: self.pipeline.stats.clone(),
            conns: self.pipeline.shard.len(),
            shard: self.pipeline.shard.stats,
            frames_total: self.pool.total(),
            frames_free: self.pool.free_count(),
            frames_in_kernel: self.ports.iter().map(|p| p.held()).sum(),
            rings: self.ports.iter().filter_map(|p| p.ring_stats()).collect(),
            loads: self.loads_by_id().collect(),
            idle_yields: self.idle_yields,
            loop_rounds: self.loop_rounds,
        }
    }

    /// Frames other workers handed to this one: loaded into this worker's frames and
    /// processed in bursts of one arrival port each.
    fn handoff_burst(&mut self) -> usize {
        // Borrowed, not cloned: an `Arc` clone per round would bounce its counter's cache
        // line between all workers.
        let Some(h) = &self.handoff else { return 0 };
        let mut ports = [0u8; BURST];
        let (mut total, mut n) = (0, 0);
        while total < BURST {
            let Some(b) = h.recv(self.id) else { break };
            total += 1;
            match self.pool.load(b.bytes()) {
                Some(d) => {
                    self.rx[n] = d;
                    ports[n] = b.port;
                    n += 1;
                }
                None => self.pipeline.stats.drops[DropReason::NoFrame as usize] += 1,
            }
            h.recycle(self.id, b);
        }
        self.pipeline.stats.handoff_in += total as u64;
        // One burst per run of frames from the same interface.
        let mut start = 0;
        while start < n {
            let port = ports[start];
            let end = start + ports[start..n].iter().take_while(|p| **p == port).count();
            self.rx.copy_within(start..end, 0);
            self.handle_burst(end - start, port as usize, true);
            start = end;
        }
        total
    }

    /// Processes `self.rx[..n]`, received on interface `pi`, and sends each frame where its
    /// verdict says.
    /// (`handed`: the frames came from other workers; none is handed on again.)
    fn handle_burst(&mut self, n: usize, pi: usize, handed: bool) {
        // A capture's clock moves with the frames just read; the wall clock was read once
        // for this round.
        let now = self.ports.first().and_then(|p| p.clock_ms()).unwrap_or(self.round_ms);
        let mut verdicts = [Verdict::Pass(PassReason::NotIp); BURST];
        // The frames to transmit are on their ports' lists already; the rest (few) by position.
        let mut rest = self.pipeline.process_burst_to(
            &mut self.pool,
            &mut self.rx[..n],
            pi as u8,
            now,
            &mut verdicts[..n],
            &mut self.tx,
        );
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if let (Some(&d), Some(&v)) = (self.rx.get(i), verdicts.get(i)) {
                self.dispatch(d, v, pi, handed);
            }
        }
        // Every list, not only those of today's ports: a frame for an interface without a
        // port (or whose port was taken away: `ports` is public) is on a list too, and its
        // flush counts and frees it.
        for o in 0..MAX_PORTS {
            if self.tx.n[o] > 0 {
                self.flush(o);
            }
        }
    }

    /// Acts on a frame's verdict that the pipeline did not put on a port's list.
    fn dispatch(&mut self, d: Desc, v: Verdict, pi: usize, handed: bool) {
        let out = match v {
            Verdict::Tx(i) => self.tx.port_of[i as usize] as usize,
            _ => usize::MAX,
        };
        match v {
            Verdict::Tx(_) if out < MAX_PORTS => {
                if self.tx.n[out] == BURST {
                    self.flush(out);
                }
                self.tx.desc[out][self.tx.n[out]] = d;
                self.tx.n[out] += 1;
            }
            Verdict::Tx(_) => {
                self.pipeline.stats.drops[DropReason::TxFull as usize] += 1;
                self.pipeline.stats.tx_frames = self.pipeline.stats.tx_frames.saturating_sub(1);
                self.pool.free(d.idx);
            }
            Verdict::Drop(_) => self.pool.free(d.idx),
            Verdict::Pass(_) => match self.ports.get_mut(self.tx.port_of.get(pi).map_or(usize::MAX, |p| *p as usize)) {
                Some(p) => p.pass_to_kernel(&mut self.pool, d),
                None => self.pool.free(d.idx),
            },
            Verdict::Handoff(_) if handed => {
                self.pipeline.stats.handoff_out = self.pipeline.stats.handoff_out.saturating_sub(1);
                self.pipeline.stats.drops[DropReason::HandoffLoop as usize] += 1;
                self.pool.free(d.idx);
            }
            Verdict::Handoff(w) => {
                let sent = match &self.handoff {
                    Some(h) => h.send(w as u16, pi as u8, self.pool.bytes(&d)),
                    None => false,
                };
                if !sent {
                    self.pipeline.stats.handoff_full += 1;
                }
                self.pool.free(d.idx);
            }
        }
    }

    fn flush(&mut self, o: usize) {
        let n = self.tx.n[o];
        let sent = match self.ports.get_mut(o) {
            Some(port) => port.tx_burst(&mut self.pool, &self.tx.desc[o][..n]),
            None => 0,
        };
        for d in &self.tx.desc[o][sent.min(n)..n] {
            self.pipeline.stats.drops[DropReason::TxFull as usize] += 1;
            self.pipeline.stats.tx_frames = self.pipeline.stats.tx_frames.saturating_sub(1);
            self.pool.free(d.idx);
        }
        self.tx.n[o] = 0;
    }
}
