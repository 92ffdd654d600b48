//! The worker loop (DPDK `l2fwd` / GLB processor shape): housekeeping on a timer, one
//! `try_recv` of control, then per port: rx burst -> process -> tx burst. Bursts live in
//! fixed arrays; nothing here allocates, locks or logs per packet.

use super::pipeline::Pipeline;
use super::port::{Desc, FramePool, Port, BURST};
use super::stats::{DropReason, PassReason, Verdict, WorkerStats};
use super::tables::Tables;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

/// Most ports a worker drives (interfaces of the director).
pub const MAX_PORTS: usize = 8;
/// Most connections expired per loop round: expiry is spread over rounds (a few per burst)
/// instead of pausing the loop, and 256 per 32-frame burst keeps up with any SYN flood.
pub const EXPIRE_BUDGET: usize = 256;

/// Messages from the control plane.
pub enum Control {
    /// Switch to a new tables snapshot at the next batch boundary.
    Tables(Arc<Tables>),
    /// Send a copy of the counters.
    Stats(Sender<WorkerReport>),
    /// Leave the loop.
    Shutdown,
}

/// A worker's answer to [`Control::Stats`].
#[derive(Clone, Debug)]
pub struct WorkerReport {
    pub worker: u16,
    pub stats: WorkerStats,
    pub conns: u32,
    pub shard: crate::conn::ShardStats,
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
    pub pool: FramePool,
    ctrl: Option<Receiver<Control>>,
    start: Instant,
    rx: [Desc; BURST],
    tx: [[Desc; BURST]; MAX_PORTS],
    tx_n: [usize; MAX_PORTS],
    /// Which port transmits for each interface index in `Verdict::Tx` (identity unless
    /// several interfaces share one port, as in `xvs replay`).
    iface_port: [u8; MAX_PORTS],
}

impl<P: Port> Worker<P> {
    pub fn new(
        id: u16,
        pipeline: Pipeline,
        ports: Vec<P>,
        pool_frames: u32,
        ctrl: Option<Receiver<Control>>,
    ) -> Worker<P> {
        let mut w = Worker {
            id,
            pipeline,
            ports,
            pool: FramePool::new(pool_frames.max(BURST as u32 * 2)),
            ctrl,
            start: Instant::now(),
            rx: [Desc::default(); BURST],
            tx: [[Desc::default(); BURST]; MAX_PORTS],
            tx_n: [0; MAX_PORTS],
            iface_port: core::array::from_fn(|i| i as u8),
        };
        w.ports.truncate(MAX_PORTS);
        let now = w.now_ms();
        w.pipeline.shard.start_clock(now);
        w
    }

    /// Sends every interface's frames through port `port` (one capture for all of them).
    pub fn share_port(&mut self, port: u8) {
        self.iface_port = [port; MAX_PORTS];
    }

    fn now_ms(&self) -> u64 {
        match self.ports.first().and_then(|p| p.clock_ms()) {
            Some(t) => t,
            None => self.start.elapsed().as_millis() as u64,
        }
    }

    /// Runs until shutdown or until every port is finished.
    pub fn run(&mut self) -> Poll {
        loop {
            match self.poll() {
                Poll::Busy(_) => {}
                Poll::Idle => std::hint::spin_loop(),
                p => return p,
            }
        }
    }

    /// One round of the loop.
    pub fn poll(&mut self) -> Poll {
        // Housekeeping on the timer wheel: free when nothing is due (one comparison).
        let now = self.now_ms();
        self.pipeline.housekeeping(now, EXPIRE_BUDGET);
        if let Some(rx) = &self.ctrl {
            match rx.try_recv() {
                Ok(Control::Tables(t)) => self.pipeline.set_tables(t),
                Ok(Control::Stats(reply)) => {
                    let _ = reply.send(self.report());
                }
                Ok(Control::Shutdown) | Err(TryRecvError::Disconnected) => return Poll::Shutdown,
                Err(TryRecvError::Empty) => {}
            }
        }
        let mut handled = 0;
        for pi in 0..self.ports.len() {
            handled += self.port_burst(pi);
        }
        if handled > 0 {
            Poll::Busy(handled)
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
        }
    }

    fn port_burst(&mut self, pi: usize) -> usize {
        let n = self.ports[pi].rx_burst(&mut self.pool, &mut self.rx);
        if n == 0 {
            return 0;
        }
        // The capture's clock moves with the frames just read.
        let now = self.now_ms();
        let mut verdicts = [Verdict::Pass(PassReason::NotIp); BURST];
        self.pipeline.process_burst(&mut self.pool, &mut self.rx[..n], pi as u8, now, &mut verdicts[..n]);
        let rx = self.rx;
        for (&d, &v) in rx[..n].iter().zip(verdicts[..n].iter()) {
            let out = match v {
                Verdict::Tx(i) => self.iface_port.get(i as usize).map_or(usize::MAX, |p| *p as usize),
                _ => usize::MAX,
            };
            match v {
                Verdict::Tx(_) if out < self.ports.len() => {
                    if self.tx_n[out] == BURST {
                        self.flush(out);
                    }
                    self.tx[out][self.tx_n[out]] = d;
                    self.tx_n[out] += 1;
                }
                Verdict::Tx(_) => {
                    self.pipeline.stats.drops[DropReason::TxFull as usize] += 1;
                    self.pipeline.stats.tx_frames = self.pipeline.stats.tx_frames.saturating_sub(1);
                    self.pool.free(d.idx);
                }
                Verdict::Drop(_) => self.pool.free(d.idx),
                Verdict::Pass(_) => self.ports[pi].pass_to_kernel(&mut self.pool, d),
            }
        }
        for o in 0..self.ports.len() {
            if self.tx_n[o] > 0 {
                self.flush(o);
            }
        }
        n
    }

    fn flush(&mut self, o: usize) {
        let n = self.tx_n[o];
        let sent = self.ports[o].tx_burst(&mut self.pool, &self.tx[o][..n]);
        for d in &self.tx[o][sent.min(n)..n] {
            self.pipeline.stats.drops[DropReason::TxFull as usize] += 1;
            self.pipeline.stats.tx_frames = self.pipeline.stats.tx_frames.saturating_sub(1);
            self.pool.free(d.idx);
        }
        self.tx_n[o] = 0;
    }
}
