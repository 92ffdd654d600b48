//! Warnings when a worker starts refusing or losing traffic: a full connection table, no
//! FULLNAT local port, an unresolved next hop, a full handoff ring, an empty fill ring, half-open
//! connections evicted (a full table under a SYN flood).
//!
//! The control loop hands every second's counters to [`Alarms::check`]. A counter that moves
//! after being still is reported once, with how much it moved; while it keeps moving it is
//! reported again at most every [`REPEAT`]; once it has been still for a whole check after a
//! report, its end is reported. A flood therefore costs a few log lines, not one a packet.

use crate::dataplane::{DropReason, WorkerReport};
use std::time::{Duration, Instant};

/// The shortest time between two warnings about one counter of one worker.
pub const REPEAT: Duration = Duration::from_secs(60);

/// What is watched, with the name the warning gives it.
const KINDS: [(&str, &str); 6] = [
    ("table_full", "new connections refused: the connection table is full (conn.max_per_worker)"),
    ("no_local_port", "new FULLNAT connections refused: every local address and port towards a real server is taken (director.local_addrs, director.local_ports; see the rate logged at start)"),
    ("no_neighbour", "frames dropped: a next hop has no MAC (unresolved neighbour)"),
    ("handoff_full", "frames dropped: another worker's handoff ring is full"),
    ("fill_ring_empty", "the kernel found the fill ring empty (frames may be lost)"),
    ("evicted_embryonic", "half-open connections evicted for new ones: the connection table is full (a SYN flood?)"),
];

fn values(r: &WorkerReport) -> [u64; KINDS.len()] {
    [
        r.stats.dropped(DropReason::TableFull),
        r.stats.dropped(DropReason::NoLocalPort),
        r.stats.dropped(DropReason::NoNeighbour),
        r.stats.handoff_full,
        r.rings.iter().map(|x| x.rx_fill_ring_empty).sum(),
        r.shard.evicted_embryonic,
    ]
}

#[derive(Clone, Copy, Debug, Default)]
struct Watch {
    last: u64,
    seen: bool,
    warned: Option<Instant>,
    /// Reported as happening and not reported as ended yet.
    active: bool,
}

/// One warning or recovery to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alarm {
    pub worker: u16,
    pub kind: &'static str,
    /// How much the counter moved since the last check (0: it stopped).
    pub delta: u64,
    pub text: String,
}

/// The watched counters of every worker.
#[derive(Debug, Default)]
pub struct Alarms {
    workers: Vec<[Watch; KINDS.len()]>,
}

impl Alarms {
    /// Compares `reports` with the last check; what to log.
    pub fn check(&mut self, reports: &[WorkerReport], now: Instant) -> Vec<Alarm> {
        let mut out = Vec::new();
        for r in reports {
            let w = r.worker as usize;
            if self.workers.len() <= w {
                self.workers.resize(w + 1, [Watch::default(); KINDS.len()]);
            }
            for (k, v) in values(r).into_iter().enumerate() {
                let s = &mut self.workers[w][k];
                let delta = if s.seen { v.saturating_sub(s.last) } else { v };
                s.last = v;
                s.seen = true;
                let (kind, what) = KINDS[k];
                if delta > 0 {
                    if s.warned.is_none_or(|t| now.duration_since(t) >= REPEAT) {
                        s.warned = Some(now);
                        s.active = true;
                        out.push(Alarm {
                            worker: r.worker,
                            kind,
                            delta,
                            text: format!("worker {}: {kind}: {what}: {delta} since the last check", r.worker),
                        });
                    }
                } else if s.active {
                    s.active = false;
                    out.push(Alarm {
                        worker: r.worker,
                        kind,
                        delta: 0,
                        text: format!("worker {}: {kind} stopped", r.worker),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(table_full: u64, fill_empty: u64) -> WorkerReport {
        let mut r = WorkerReport::default();
        r.stats.drops[DropReason::TableFull as usize] = table_full;
        r.rings = vec![crate::dataplane::RingStats { rx_fill_ring_empty: fill_empty, ..Default::default() }];
        r
    }

    #[test]
    fn a_flood_is_reported_when_it_starts_again_at_most_every_minute_and_when_it_ends() {
        let mut a = Alarms::default();
        let t0 = Instant::now();
        assert!(a.check(&[report(0, 0)], t0).is_empty(), "quiet");
        let start = a.check(&[report(500, 0)], t0 + Duration::from_secs(1));
        assert_eq!(start.len(), 1);
        assert_eq!((start[0].kind, start[0].delta), ("table_full", 500));
        assert!(start[0].text.contains("conn.max_per_worker"), "{}", start[0].text);
        // Still flooding: silent for a minute, then once more.
        for s in 2..60 {
            assert!(a.check(&[report(500 * s, 0)], t0 + Duration::from_secs(s)).is_empty(), "second {s}");
        }
        let again = a.check(&[report(500 * 61, 0)], t0 + Duration::from_secs(61));
        assert_eq!(again.len(), 1);
        // It stops: one line; a quiet table says nothing more.
        let stop = a.check(&[report(500 * 61, 0)], t0 + Duration::from_secs(62));
        assert_eq!(
            stop,
            vec![Alarm { worker: 0, kind: "table_full", delta: 0, text: "worker 0: table_full stopped".into() }]
        );
        assert!(a.check(&[report(500 * 61, 0)], t0 + Duration::from_secs(63)).is_empty());
        // Another kind, another worker.
        let mut r = report(0, 3);
        r.worker = 1;
        let fill = a.check(&[r], t0 + Duration::from_secs(64));
        assert_eq!((fill[0].worker, fill[0].kind), (1, "fill_ring_empty"));
    }
}
