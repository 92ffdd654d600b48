//! The longest stall on the packet path under churn: the worker loop on the in-memory port
//! with about 1M connections live, every frame a SYN of a new flow (so every frame inserts,
//! and expiry removes as many), and a reconfiguration (a new tables snapshot, one weight
//! changed) every 1000 bursts. Each loop round (one burst of up to 32 frames) is timed.
//!
//! `cargo run --release --example churn-stall -- SECONDS [--no-reconfig]` (default 10; the
//! issue's figure is over 600). It prints the rounds, the longest, how many took over 50 us, and the same for
//! a loop doing nothing but reading the clock for as long: what this VM's preemptions alone
//! cost, so that the worker's own stalls can be told from them. Each round is also timed in the
//! thread's own CPU time: a round long in wall clock but short in CPU time was the CPU taken
//! away (the VM, the scheduler), not the worker's work.

use etherparse::PacketBuilder;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs::config::Config;
use xvs::dataplane::{FramePool, MemPort, Pipeline, Poll, Worker};

const FLOWS: usize = 1_100_000;

fn config(weight: u32) -> Config {
    let json = format!(
        r#"{{"director": {{"interfaces": [{{"name": "c", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"}},
              {{"name": "r", "mac": "02:00:00:00:01:01", "ip": "198.19.0.1"}}]}},
            "neighbours": [{{"ip": "198.19.0.11", "mac": "02:00:00:00:01:11", "interface": "r"}},
                           {{"ip": "198.19.0.12", "mac": "02:00:00:00:01:12", "interface": "r"}}],
            "conn": {{"max_per_worker": 2000000, "timeouts": {{"tcp_syn_recv": 1}}}},
            "services": [{{"proto": "tcp", "vip": "198.18.0.100", "port": 82, "scheduler": "wrr",
              "real_servers": [{{"addr": "198.19.0.11", "mode": "dr", "weight": {weight}}},
                               {{"addr": "198.19.0.12", "mode": "dr"}}]}}]}}"#
    );
    Config::parse(&json).expect("config")
}

fn syn(i: usize) -> Vec<u8> {
    let a = 0xC612_0000u32 + (i as u32 % 131_072);
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4(a.to_be_bytes(), [198, 18, 0, 100], 64)
        .tcp(1024 + (i / 131_072) as u16, 82, 1, 64240)
        .syn();
    let mut out = Vec::new();
    b.write(&mut out, &[]).expect("frame");
    out
}

/// Timings of every round of a run.
#[derive(Default)]
struct Rounds {
    n: u64,
    /// Longest wall-clock round and the rounds over 50 us of wall clock.
    worst: Duration,
    over: u64,
    /// The same in the thread's own CPU time (`CLOCK_THREAD_CPUTIME_ID`): what the loop
    /// itself spent, without the time the VM or the scheduler took the CPU away.
    worst_cpu: Duration,
    over_cpu: u64,
}

/// Times each `round` for `secs`, in wall clock and in the thread's CPU time.
fn timed(secs: f64, mut round: impl FnMut()) -> Rounds {
    let mut r = Rounds::default();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let (t, c) = (Instant::now(), cpu_time::ThreadTime::now());
        round();
        let (d, dc) = (t.elapsed(), c.elapsed());
        r.n += 1;
        r.worst = r.worst.max(d);
        r.over += u64::from(d > Duration::from_micros(50));
        r.worst_cpu = r.worst_cpu.max(dc);
        r.over_cpu += u64::from(dc > Duration::from_micros(50));
    }
    r
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10.0);
    // `--no-reconfig`: churn alone, to tell the two apart.
    let reconfigure = !std::env::args().any(|a| a == "--no-reconfig");
    let tables = |w: u32, prev: Option<&xvs::dataplane::Tables>| {
        Arc::new(xvs::control::tables_for(&config(w), prev).expect("tables"))
    };
    // The snapshots are built beforehand, as the control plane builds them off the worker:
    // the worker's part of a reconfiguration is `set_tables`.
    let mut snapshots = vec![tables(1, None)];
    for w in 2..=5 {
        let next = tables(w, snapshots.last().map(|t| &**t));
        snapshots.push(next);
    }
    let p = Pipeline::new(snapshots[0].clone(), 0);
    // 1 us of virtual time a frame: with SYN_RECV's 1 s, about 1M connections stay live.
    let mut rx = MemPort::looping((0..FLOWS).map(syn).collect());
    rx.ns_per_frame = Some(1000);
    let mut w = Worker::new(0, p, vec![rx, MemPort::looping(Vec::new())], FramePool::new(4096), None);
    // Fill the table first (untimed).
    let mut done = 0;
    while done < FLOWS {
        if let Poll::Busy(n) = w.poll() {
            done += n;
        }
    }
    let mut bursts = 0u64;
    let r = timed(secs, || {
        bursts += 1;
        if reconfigure && bursts.is_multiple_of(1000) {
            w.pipeline.set_tables(snapshots[(bursts / 1000) as usize % snapshots.len()].clone());
        }
        w.poll();
    });
    println!(
        "worker: {} rounds in {secs} s ({} connections live, {} created), longest {:?}, {} over 50 us; \
         on its own CPU time: longest {:?}, {} over 50 us",
        r.n,
        w.pipeline.shard.len(),
        w.pipeline.shard.stats.created,
        r.worst,
        r.over,
        r.worst_cpu,
        r.over_cpu
    );
    let r = timed(secs, || {
        std::hint::black_box(Instant::now());
    });
    println!(
        "clock alone: {} rounds in {secs} s, longest {:?}, {} over 50 us (this machine's preemptions); \
         on its own CPU time: longest {:?}, {} over 50 us",
        r.n, r.worst, r.over, r.worst_cpu, r.over_cpu
    );
}
