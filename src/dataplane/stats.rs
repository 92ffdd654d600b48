//! Per-worker counters: plain integers owned by the worker (no atomics on the hot path),
//! published every [`PUBLISH_MS`] to the worker's [`StatsBoard`], a shared block of relaxed
//! atomics that the control plane (estimator, listings, `--workers`, metrics) reads without
//! sending the worker anything.

use super::io::RingStats;
use super::tables::MAX_DEST_IDS;
use crate::conn::ShardStats;
use crate::model::DestLoad;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a frame was dropped. Every malformed frame is counted under one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    EthTruncated,
    /// IPv4 header or total length beyond the frame.
    IpTruncated,
    /// Version != 4, IHL < 5 or total length < header length.
    IpBadHeader,
    IpBadChecksum,
    /// A later fragment whose first fragment was not seen (or too long ago): xvs does not
    /// reassemble, and without the first it cannot tell the connection.
    Fragment,
    /// TCP/UDP header truncated or inconsistent.
    L4Bad,
    /// TTL would reach 0 on a routed (NAT/FULLNAT) packet, or was 0.
    TtlExpired,
    /// A TCP segment other than a SYN for a connection the director does not know.
    NoConn,
    /// No available real server (all quiesced, overloaded or none configured).
    NoDest,
    /// The connection shard is full.
    TableFull,
    /// FULLNAT local ports exhausted.
    NoLocalPort,
    /// No next-hop MAC for the destination.
    NoNeighbour,
    /// TUN: too big for the MTU and DF clear (xvs does not fragment).
    TooBigNoDf,
    /// TUN: no room in the frame buffer for the outer header / ICMP answer.
    NoRoom,
    /// The connection's service or real server is gone from the tables.
    StaleConn,
    /// The transmit ring was full.
    TxFull,
    /// No free frame to load a frame handed over by another worker into.
    NoFrame,
    /// A frame handed over by another worker that would be handed on again (workers that
    /// disagree about its owner, for a moment during a table switch or about a fragment
    /// whose IP id two datagrams share): dropped, never bounced.
    HandoffLoop,
}

impl DropReason {
    pub const COUNT: usize = 18;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::EthTruncated,
        DropReason::IpTruncated,
        DropReason::IpBadHeader,
        DropReason::IpBadChecksum,
        DropReason::Fragment,
        DropReason::L4Bad,
        DropReason::TtlExpired,
        DropReason::NoConn,
        DropReason::NoDest,
        DropReason::TableFull,
        DropReason::NoLocalPort,
        DropReason::NoNeighbour,
        DropReason::TooBigNoDf,
        DropReason::NoRoom,
        DropReason::StaleConn,
        DropReason::TxFull,
        DropReason::NoFrame,
        DropReason::HandoffLoop,
    ];
    pub fn name(self) -> &'static str {
        match self {
            DropReason::EthTruncated => "eth_truncated",
            DropReason::IpTruncated => "ip_truncated",
            DropReason::IpBadHeader => "ip_bad_header",
            DropReason::IpBadChecksum => "ip_bad_checksum",
            DropReason::Fragment => "fragment",
            DropReason::L4Bad => "l4_bad",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NoConn => "no_conn",
            DropReason::NoDest => "no_dest",
            DropReason::TableFull => "table_full",
            DropReason::NoLocalPort => "no_local_port",
            DropReason::NoNeighbour => "no_neighbour",
            DropReason::TooBigNoDf => "too_big_no_df",
            DropReason::NoRoom => "no_room",
            DropReason::StaleConn => "stale_conn",
            DropReason::TxFull => "tx_full",
            DropReason::NoFrame => "no_frame",
            DropReason::HandoffLoop => "handoff_loop",
        }
    }
}

/// Why a frame was handed to the kernel instead of forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PassReason {
    /// ARP, IPv4 under two 802.1Q tags (QinQ) and other non-IP Ethernet types (one tag is taken
    /// out and the frame decided: see `Pipeline::process_burst`).
    NotIp,
    /// IPv6 (not load-balanced by xvs).
    Ipv6,
    /// ICMP (pings to the VIP or the director are answered by the kernel).
    Icmp,
    /// Neither a service's traffic nor a reply of a known connection (SSH to the director...).
    NotService,
    /// Another IP protocol.
    OtherProto,
}

impl PassReason {
    pub const COUNT: usize = 5;
    pub const ALL: [PassReason; PassReason::COUNT] =
        [PassReason::NotIp, PassReason::Ipv6, PassReason::Icmp, PassReason::NotService, PassReason::OtherProto];
    pub fn name(self) -> &'static str {
        match self {
            PassReason::NotIp => "not_ip",
            PassReason::Ipv6 => "ipv6",
            PassReason::Icmp => "icmp",
            PassReason::NotService => "not_service",
            PassReason::OtherProto => "other_proto",
        }
    }
}

/// What the pipeline decided for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) frame on this interface (index into `director.interfaces`).
    Tx(u8),
    Drop(DropReason),
    Pass(PassReason),
    /// Another worker owns this frame's connection (NAT/FULLNAT reply steering): hand it over
    /// (worker indexes fit a byte: at most 256 workers; a byte keeps the verdict two bytes).
    Handoff(u8),
}

pub use crate::model::DestCounters;

/// A worker's datapath counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// ICMP "fragmentation needed" answers sent (TUN, DF set, too big).
    pub icmp_frag_needed: u64,
    /// Frames handed to the worker that owns their connection, and frames received that way.
    pub handoff_out: u64,
    pub handoff_in: u64,
    /// Frames that could not be handed over (the owner's ring was full).
    pub handoff_full: u64,
    /// Connections expired at their next packet because their real server was deleted
    /// (IPVS `expire_nodest_conn`).
    pub nodest_expired: u64,
    /// Connections a client's new SYN replaced (TIME_WAIT or CLOSE, or a quiesced server).
    pub conn_reused: u64,
    /// ICMP "time exceeded" answers sent (TTL would have reached 0), and ICMP errors not sent
    /// because of the rate limit.
    pub icmp_time_exceeded: u64,
    pub icmp_ratelimited: u64,
    /// First fragments whose decision was kept, later fragments that followed it, later
    /// fragments whose decision had expired or was never seen (dropped, as `fragment`), and
    /// decisions evicted by others.
    pub frag_tracked: u64,
    pub frag_followed: u64,
    pub frag_expired: u64,
    pub frag_unknown: u64,
    pub frag_evicted: u64,
    /// ICMP errors relayed to a connection's real server or client.
    pub icmp_relayed: u64,
    /// TOA options inserted, and opening segments of a TOA service sent without one (their
    /// options full, or the MTU reached).
    pub toa_added: u64,
    pub toa_no_room: u64,
    pub drops: [u64; DropReason::COUNT],
    pub passes: [u64; PassReason::COUNT],
    /// Per real server, by id ([`crate::dataplane::DestEntry::id`]).
    pub dests: Vec<DestCounters>,
}

impl WorkerStats {
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }
    pub fn passed(&self, r: PassReason) -> u64 {
        self.passes[r as usize]
    }
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
    pub fn total_passes(&self) -> u64 {
        self.passes.iter().sum()
    }
}

/// How often a worker copies its counters to its board.
pub const PUBLISH_MS: u64 = 20;

/// Counters of one real server on a board: conns, in/out packets, in/out bytes, active,
/// inactive, persistence templates. One cache line each, so servers never share one.
#[repr(align(64))]
#[derive(Debug, Default)]
struct DestCell([AtomicU64; 8]);

/// Upper bounds (ns, inclusive) of the loop round histogram's buckets; one more bucket holds
/// the longer rounds. Decimal steps an operator reads at a glance, 10 ms (the soak's bound)
/// among them.
pub const LOOP_BOUNDS_NS: [u64; 11] =
    [1_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000, 10_000_000, 50_000_000, 100_000_000, 1_000_000_000];
/// Buckets of [`LoopRounds`].
pub const LOOP_BUCKETS: usize = LOOP_BOUNDS_NS.len() + 1;

/// How long a worker's loop rounds take (wall clock from the start of one round to the start
/// of the next, sleeps excluded): a histogram, their sum and the longest. A long round delays
/// every frame waiting in the rings; preemption of the worker's thread shows here too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopRounds {
    pub buckets: [u64; LOOP_BUCKETS],
    pub sum_ns: u64,
    pub max_ns: u64,
}

impl LoopRounds {
    /// Counts a round of `ns` nanoseconds (a few compares: almost every round lands in the
    /// first buckets).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let b = LOOP_BOUNDS_NS.iter().position(|&le| ns <= le).unwrap_or(LOOP_BOUNDS_NS.len());
        if let Some(c) = self.buckets.get_mut(b) {
            *c += 1;
        }
        self.sum_ns = self.sum_ns.wrapping_add(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Rounds counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Rounds longer than `ns`, to a bucket (exact when `ns` is one of [`LOOP_BOUNDS_NS`]).
    pub fn over(&self, ns: u64) -> u64 {
        let first = LOOP_BOUNDS_NS.iter().position(|&le| le > ns).unwrap_or(LOOP_BOUNDS_NS.len());
        self.buckets.iter().skip(first).sum()
    }
}

/// What a board holds beyond the counters of [`WorkerStats`] and [`ShardStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoardExtra {
    pub conns: u32,
    pub frames_total: u32,
    pub frames_free: u32,
    pub frames_in_kernel: u32,
    pub idle_yields: u64,
    pub rings: Vec<RingStats>,
    /// When the worker last published (its loop clock, ms).
    pub published_ms: u64,
    pub loop_rounds: LoopRounds,
}

/// The scalar counters of a worker, in the one order boards store them.
fn scalars<'a>(
    s: &'a WorkerStats,
    sh: &ShardStats,
    x: &BoardExtra,
    rings: &'a [RingStats],
) -> impl Iterator<Item = u64> + 'a {
    [
        s.rx_frames,
        s.rx_bytes,
        s.tx_frames,
        s.tx_bytes,
        s.icmp_frag_needed,
        s.handoff_out,
        s.handoff_in,
        s.handoff_full,
        s.nodest_expired,
        s.conn_reused,
        s.icmp_time_exceeded,
        s.icmp_ratelimited,
        s.frag_tracked,
        s.frag_followed,
        s.frag_expired,
        s.frag_unknown,
        s.frag_evicted,
        s.icmp_relayed,
        s.toa_added,
        s.toa_no_room,
        sh.created,
        sh.expired,
        sh.templates_created,
        sh.refused_full,
        sh.refused_no_lport,
        sh.evicted_embryonic,
        x.conns as u64,
        x.frames_total as u64,
        x.frames_free as u64,
        x.frames_in_kernel as u64,
        x.idle_yields,
        x.published_ms,
        rings.len().min(MAX_RINGS) as u64,
    ]
    .into_iter()
    .chain(x.loop_rounds.buckets)
    .chain([x.loop_rounds.sum_ns, x.loop_rounds.max_ns])
    .chain(s.drops.iter().copied())
    .chain(s.passes.iter().copied())
    .chain(rings.iter().take(MAX_RINGS).flat_map(|r| {
        [
            r.rx_dropped,
            r.rx_invalid_descs,
            r.rx_ring_full,
            r.rx_fill_ring_empty,
            r.tx_invalid_descs,
            r.tx_ring_empty,
            r.wakeups,
            r.pass_dropped,
        ]
    }))
}

/// The inverse of [`scalars`]: the same order.
fn set_scalars(s: &mut WorkerStats, sh: &mut ShardStats, x: &mut BoardExtra, v: &mut impl Iterator<Item = u64>) {
    let mut next = || v.next().unwrap_or(0);
    for f in [
        &mut s.rx_frames,
        &mut s.rx_bytes,
        &mut s.tx_frames,
        &mut s.tx_bytes,
        &mut s.icmp_frag_needed,
        &mut s.handoff_out,
        &mut s.handoff_in,
        &mut s.handoff_full,
        &mut s.nodest_expired,
        &mut s.conn_reused,
        &mut s.icmp_time_exceeded,
        &mut s.icmp_ratelimited,
        &mut s.frag_tracked,
        &mut s.frag_followed,
        &mut s.frag_expired,
        &mut s.frag_unknown,
        &mut s.frag_evicted,
        &mut s.icmp_relayed,
        &mut s.toa_added,
        &mut s.toa_no_room,
        &mut sh.created,
        &mut sh.expired,
        &mut sh.templates_created,
        &mut sh.refused_full,
        &mut sh.refused_no_lport,
        &mut sh.evicted_embryonic,
    ] {
        *f = next();
    }
    x.conns = next() as u32;
    x.frames_total = next() as u32;
    x.frames_free = next() as u32;
    x.frames_in_kernel = next() as u32;
    x.idle_yields = next();
    x.published_ms = next();
    let rings = (next() as usize).min(MAX_RINGS);
    for b in x.loop_rounds.buckets.iter_mut() {
        *b = next();
    }
    x.loop_rounds.sum_ns = next();
    x.loop_rounds.max_ns = next();
    for d in s.drops.iter_mut().chain(s.passes.iter_mut()) {
        *d = next();
    }
    x.rings = (0..rings)
        .map(|_| RingStats {
            rx_dropped: next(),
            rx_invalid_descs: next(),
            rx_ring_full: next(),
            rx_fill_ring_empty: next(),
            tx_invalid_descs: next(),
            tx_ring_empty: next(),
            wakeups: next(),
            pass_dropped: next(),
        })
        .collect();
}

/// Most ports whose ring counters a board holds.
pub const MAX_RINGS: usize = 8;
const SCALARS: usize = 33 + LOOP_BUCKETS + 2 + DropReason::COUNT + PassReason::COUNT + MAX_RINGS * 8;

/// One worker's published counters: written by the worker alone (relaxed stores, no
/// read-modify-write), read by anyone. A reader may see one counter of a publish and the
/// next of the one before; each counter only grows, so sums and rates stay right.
#[derive(Debug)]
pub struct StatsBoard {
    words: Box<[AtomicU64]>,
    dests: Box<[DestCell]>,
    /// Server ids published (`dests[..n]` are meaningful).
    n_dests: AtomicU64,
    /// Publishes so far: a reader that needs counters newer than some moment waits for it
    /// to move.
    publishes: AtomicU64,
}

impl Default for StatsBoard {
    fn default() -> Self {
        StatsBoard {
            words: (0..SCALARS).map(|_| AtomicU64::new(0)).collect(),
            dests: (0..MAX_DEST_IDS).map(|_| DestCell::default()).collect(),
            n_dests: AtomicU64::new(0),
            publishes: AtomicU64::new(0),
        }
    }
}

impl StatsBoard {
    /// The worker's side: copies its counters (`x.rings` is ignored: `rings` are the ports'
    /// ring counters; `loads` yields the load of server id 0, 1, ...). Allocates nothing.
    pub fn publish(
        &self,
        s: &WorkerStats,
        sh: &ShardStats,
        x: &BoardExtra,
        rings: &[RingStats],
        loads: impl Iterator<Item = DestLoad>,
    ) {
        for (w, v) in self.words.iter().zip(scalars(s, sh, x, rings)) {
            w.store(v, Ordering::Relaxed);
        }
        let mut n = 0;
        for (cell, (c, l)) in
            self.dests.iter().zip(s.dests.iter().zip(loads.chain(std::iter::repeat(DestLoad::default()))))
        {
            let v = [
                c.conns,
                c.in_pkts,
                c.out_pkts,
                c.in_bytes,
                c.out_bytes,
                l.active as u64,
                l.inactive as u64,
                l.persist as u64,
            ];
            for (a, v) in cell.0.iter().zip(v) {
                a.store(v, Ordering::Relaxed);
            }
            n += 1;
        }
        self.n_dests.store(n, Ordering::Release);
        self.publishes.store(self.publishes.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    /// How many times the worker has published.
    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Acquire)
    }

    /// The control plane's side: a copy as a report (allocates).
    pub fn read(&self) -> (WorkerStats, ShardStats, BoardExtra, Vec<DestLoad>) {
        let n = (self.n_dests.load(Ordering::Acquire) as usize).min(self.dests.len());
        let (mut s, mut sh, mut x) = (WorkerStats::default(), ShardStats::default(), BoardExtra::default());
        set_scalars(&mut s, &mut sh, &mut x, &mut self.words.iter().map(|w| w.load(Ordering::Relaxed)));
        let mut loads = Vec::with_capacity(n);
        for cell in &self.dests[..n] {
            let v: Vec<u64> = cell.0.iter().map(|a| a.load(Ordering::Relaxed)).collect();
            s.dests.push(DestCounters { conns: v[0], in_pkts: v[1], out_pkts: v[2], in_bytes: v[3], out_bytes: v[4] });
            loads.push(DestLoad {
                active: v[5] as u32,
                inactive: v[6] as u32,
                persist: v[7] as u32,
                ..DestLoad::default()
            });
        }
        (s, sh, x, loads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_rounds_land_in_the_bucket_of_their_bound() {
        let mut r = LoopRounds::default();
        for ns in [0, 1_000, 1_001, 10_000_000, 10_000_001, 2_000_000_000] {
            r.record(ns);
        }
        let mut want = [0u64; LOOP_BUCKETS];
        want[0] = 2; // <= 1 us, bound included
        want[1] = 1;
        want[7] = 1; // <= 10 ms
        want[8] = 1;
        want[LOOP_BUCKETS - 1] = 1; // beyond the last bound
        assert_eq!(r.buckets, want);
        assert_eq!((r.count(), r.max_ns), (6, 2_000_000_000));
        assert_eq!(r.sum_ns, 2_020_002_002);
        assert_eq!((r.over(1_000_000), r.over(10_000_000), r.over(1_000)), (3, 2, 4));
    }

    #[test]
    fn a_board_gives_back_what_was_published() {
        let mut s =
            WorkerStats { rx_frames: 1, rx_bytes: 2, tx_frames: 3, nodest_expired: 9, ..WorkerStats::default() };
        s.drops[DropReason::NoConn as usize] = 7;
        s.passes[PassReason::Icmp as usize] = 8;
        s.dests = vec![DestCounters { conns: 4, in_pkts: 5, out_pkts: 6, in_bytes: 7, out_bytes: 8 }; 3];
        let sh = ShardStats {
            created: 11,
            expired: 12,
            templates_created: 13,
            refused_full: 14,
            refused_no_lport: 15,
            evicted_embryonic: 16,
        };
        let x = BoardExtra {
            conns: 21,
            frames_total: 22,
            frames_free: 23,
            frames_in_kernel: 24,
            idle_yields: 25,
            rings: vec![RingStats { rx_dropped: 31, pass_dropped: 38, ..RingStats::default() }; 2],
            published_ms: 26,
            loop_rounds: LoopRounds {
                buckets: [41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52],
                sum_ns: 53,
                max_ns: 54,
            },
        };
        let b = StatsBoard::default();
        let loads = [DestLoad { active: 1, inactive: 2, persist: 3, ..DestLoad::default() }];
        b.publish(&s, &sh, &x, &x.rings, loads.into_iter());
        let (s2, sh2, x2, l2) = b.read();
        assert_eq!((s2, sh2, x2), (s, sh, x));
        assert_eq!(l2.len(), 3);
        assert_eq!((l2[0].active, l2[0].inactive, l2[0].persist), (1, 2, 3));
        assert_eq!(l2[2], DestLoad::default());
        assert_eq!(std::mem::size_of::<DestCell>(), 64);
    }
}
