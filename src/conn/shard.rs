//! One worker's connection shard: slab + indexes + timer wheel + per-server load.

use super::loads::{Loads, SlotSpec};
use super::record::*;
pub use super::record::{Conn, ConnKey, NewConn, Refused};
use super::state::{next_state, Dir, TcpState, Timeouts, STATES, UDP_STATE};
use super::wheel::*;
pub use super::wheel::{ms_to_tick, TICK_MS};
use crate::model::DestLoad;
use crate::model::{ConnEntry, FwdMode};
use crate::wire::tcp::{ACK, FIN, RST, SYN};

/// "No slab index".
pub const NONE: u32 = u32::MAX;

/// How a shard is sized and timed.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// Most connections + templates the shard holds; new ones beyond are refused.
    pub capacity: u32,
    pub timeouts: Timeouts,
    /// FULLNAT local ports `[lo, hi]`; this shard owns those with
    /// `(port - lo) % workers == worker`.
    pub lport_range: (u16, u16),
    pub worker: u16,
    pub workers: u16,
    /// The connection index's hash seeds. The default is fixed (tests); `Pipeline::new`, which
    /// every director and `xvs replay` use, draws random ones per process, so that nobody who
    /// reads this source can send keys that collide.
    pub hash_seeds: [u64; 4],
    /// Size the FULLNAT reply index at start (8 bytes a connection); without it, it is
    /// allocated when a FULLNAT real server first appears ([`ConnShard::enable_fullnat`]).
    pub fullnat: bool,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            capacity: 1 << 16,
            timeouts: Timeouts::default(),
            lport_range: (1024, 65535),
            worker: 0,
            workers: 1,
            hash_seeds: [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344, 0xa409_3822_299f_31d0, 0x082e_fa98_ec4e_6c89],
            fullnat: true,
        }
    }
}

/// Counters a shard keeps about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub created: u64,
    pub expired: u64,
    pub templates_created: u64,
    pub refused_full: u64,
    pub refused_no_lport: u64,
    /// Embryonic connections (a SYN seen, never established) evicted to make room for a new
    /// one when the table was full.
    pub evicted_embryonic: u64,
}

/// A worker's connection table.
pub struct ConnShard {
    pub(super) slab: Vec<Conn>,
    pub(super) links: Vec<Links>,
    /// FULLNAT local addresses connections use (index = `Conn::laddr_idx`).
    pub(super) laddrs: Vec<u32>,
    pub(super) free: u32,
    pub(super) used: u32,
    pub(super) by_in: super::flowtable::FlowTable,
    /// FULLNAT replies by their whole tuple `rip:rport -> laddr:lport` (see `lports`); None
    /// until a FULLNAT real server is configured.
    pub(super) by_out: Option<super::flowtable::FlowTable>,
    pub(super) hasher: super::index::KeyHash,
    pub(super) wheel: Vec<u32>,
    /// Every tick up to and including this one has been expired.
    pub(super) done_tick: u32,
    /// The slot of tick `done_tick + 1` has been moved to the PENDING list.
    pub(super) pending_active: bool,
    /// Per state, in ticks; indexed by `state & (TIMEOUT_SLOTS - 1)`, one AND where `% STATES`
    /// is a division by a constant (the slots past the last state hold 0: never reached).
    pub(super) timeouts: [u32; TIMEOUT_SLOTS],
    /// Indices (into `laddrs`) of the local addresses new FULLNAT connections use.
    pub(super) pool: Vec<u8>,
    /// Per pool of real servers: where its walk of local tuples stands (see `lports`).
    pub(super) pools: Vec<u64>,
    /// Unix time (ms) at this shard's clock 0: the walks follow a line of wall-clock time,
    /// which a restarted director shares.
    pub(super) wall_offset_ms: u64,
    /// A FULLNAT connection's TIME_WAIT at least (ticks), and the time (ms) the walks' line
    /// takes to go round the range once: both the real server's TIME_WAIT or more.
    pub(super) fullnat_time_wait: u32,
    pub(super) lap_ms: u64,
    pub(super) pool_seed: u64,
    /// Local ports of the range this worker owns, the lowest port of the range, this worker
    /// and how many there are (port `lo + worker + workers * k` is this worker's `k`-th).
    pub(super) ports_owned: u32,
    pub(super) lport_lo: u16,
    pub(super) worker: u16,
    pub(super) workers: u16,
    /// Per service, per real server slot: the load the schedulers read.
    pub(super) loads: Loads,
    /// New connections in creation order (a ring of slab indices, an eighth of the capacity:
    /// the oldest are overwritten, so under a flood a half-open connection or an unanswered
    /// UDP flow stays evictable for the last capacity/8 new ones, and is then left to its
    /// timeout): what a full table evicts before it refuses.
    /// An entry may have become established, or been freed and reused, since: eviction
    /// checks it and skips it.
    pub(super) embryonic: Vec<u32>,
    pub(super) emb_write: u64,
    pub(super) emb_read: u64,
    /// `emb_write` and `emb_read` modulo the ring's length, kept as they move: the ring is
    /// not a power of two, and a 64-bit `%` a new connection was a division (tens of cycles).
    pub(super) emb_wpos: u32,
    pub(super) emb_rpos: u32,
    /// SYN_RECV's timeout while the table is more than 7/8 full (a flood): ticks.
    pub(super) syn_recv_pressure: u32,
    /// 7/8 of the capacity: above it the table is under pressure.
    pub(super) pressure_at: u32,
    pub stats: ShardStats,
}

/// The position after `pos` in a ring of `len` entries.
#[inline]
fn ring_next(pos: u32, len: u64) -> u32 {
    if pos as u64 + 1 >= len {
        0
    } else {
        pos + 1
    }
}

/// The embryonic ring's length for `capacity` connections: one for every 8 (the ring
/// forgets the oldest beyond it), at least 2.
fn embryonic_slots(capacity: usize) -> usize {
    (capacity / 8).max(2)
}

/// [`ConnShard::timeouts`]' length: the states, rounded up to a power of two.
pub(super) const TIMEOUT_SLOTS: usize = STATES.next_power_of_two();

/// Stale ring entries an eviction skips at most before it gives up (refusing the new
/// connection): bounds its time.
const EVICT_TRIES: u32 = 64;
/// SYN_RECV's timeout under pressure: a SYN-ACK's first two retransmissions (1 s, 3 s) fit.
pub const SYN_RECV_PRESSURE_SECS: u32 = 4;

/// FULLNAT local addresses a shard files at most (their u8 index in a connection). Room is
/// made for those configured and one more (see `lports`), not for all up front: a small
/// table stays within 64 bytes a connection.
pub(super) const LADDRS: usize = 256;

impl ConnShard {
    pub fn new(cfg: &ShardConfig) -> ConnShard {
        let cap = cfg.capacity.clamp(1, MAX_CAPACITY);
        let slab = vec![Conn::default(); cap as usize];
        let links: Vec<Links> = (0..cap).map(|i| Links::free(if i + 1 < cap { i + 1 } else { NONE })).collect();
        let (lo, hi) = cfg.lport_range;
        let workers = cfg.workers.max(1) as u32;
        let width = (hi as u32 + 1).saturating_sub(lo as u32);
        let ports_owned = if (cfg.worker as u32) < width { (width - 1 - cfg.worker as u32) / workers + 1 } else { 0 };
        let [a, b, c, d] = cfg.hash_seeds;
        let pools: Vec<u64> = vec![0; super::lports::pools_for(cap as usize, cfg.fullnat)];
        // Which pool a real server uses: seeded per process, like the index.
        let pool_seed = (a ^ d.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut s = ConnShard {
            slab,
            links,
            // Room for one address with FULLNAT: `take_lport`'s fallback (a shard no
            // addresses were set on) files it on the packet path without allocating.
            laddrs: Vec::with_capacity(cfg.fullnat as usize),
            free: 0,
            used: 0,
            // Fixed: it never grows or rehashes (see `flowtable`).
            by_in: super::flowtable::FlowTable::with_capacity(cap as usize),
            by_out: cfg.fullnat.then(|| super::flowtable::FlowTable::with_capacity(cap as usize)),
            hasher: super::index::KeyHash::new([a, b, c, d]),
            wheel: vec![NONE; wheel_slots(cap as usize) + 1],
            done_tick: 0,
            pending_active: false,
            timeouts: [0; TIMEOUT_SLOTS],
            pool: Vec::with_capacity(cfg.fullnat as usize),
            pools,
            pool_seed,
            ports_owned,
            wall_offset_ms: 0,
            fullnat_time_wait: 0,
            lap_ms: 1,
            lport_lo: lo,
            worker: cfg.worker,
            workers: workers as u16,
            loads: Loads::default(),
            embryonic: vec![NONE; embryonic_slots(cap as usize)],
            emb_write: 0,
            emb_read: 0,
            emb_wpos: 0,
            emb_rpos: 0,
            syn_recv_pressure: secs_to_ticks(SYN_RECV_PRESSURE_SECS),
            pressure_at: (cap as u64 * 7 / 8) as u32,
            stats: ShardStats::default(),
        };
        s.set_timeouts(&cfg.timeouts);
        s
    }

    pub fn set_timeouts(&mut self, t: &Timeouts) {
        for (dst, s) in self.timeouts.iter_mut().zip(t.secs.iter()) {
            *dst = secs_to_ticks(*s);
        }
        let tw = t.secs[TcpState::TimeWait as usize].max(super::lports::SERVER_TIME_WAIT_SECS);
        self.fullnat_time_wait = secs_to_ticks(tw);
        // A lap a little longer than the TIME_WAIT: a tuple closed when the line passed it
        // is free again by the time the line comes round (so the walks stay on the line).
        self.lap_ms = (tw as u64 + super::lports::LAP_MARGIN_SECS) * 1000;
    }

    /// The Unix time (ms) at this shard's clock 0 (see `lports`: where FULLNAT's walks
    /// stand). `xvs run` sets it; a test's shard keeps 0.
    pub fn set_wall_clock(&mut self, unix_ms_at_zero: u64) {
        self.wall_offset_ms = unix_ms_at_zero;
    }

    /// Starts the wheel at `now` (call once before the first packet).
    pub fn start_clock(&mut self, now_ms: u64) {
        self.done_tick = ms_to_tick(now_ms);
    }

    /// Control plane, at a batch boundary: service `svc`'s live real servers (slots in list
    /// order) and every slot's settings. O(servers of the service): no connection is touched.
    pub fn set_service(&mut self, svc: u16, order: &[u16], slots: &[SlotSpec]) {
        self.loads.set_service(svc, order, slots);
    }

    /// The live real servers' loads of `svc` in list order (what its scheduler reads).
    #[inline]
    pub fn loads(&self, svc: u16) -> &[DestLoad] {
        self.loads.of(svc)
    }

    /// The load of one real server by slot (live or deleted).
    pub fn load(&self, svc: u16, slot: u16) -> Option<&DestLoad> {
        self.loads.get(svc, slot)
    }

    /// Every service's loads by slot, `[svc][slot]` (control plane; allocates).
    pub fn loads_by_slot(&self) -> Vec<Vec<DestLoad>> {
        self.loads.by_slot()
    }

    pub fn capacity(&self) -> u32 {
        self.slab.len() as u32
    }
    /// Connections and templates in use.
    pub fn len(&self) -> u32 {
        self.used
    }
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }
    /// Bytes of table memory: slab records (32), their links (12), the index (a 64-byte
    /// bucket per 8 connections: 8), the ring of embryonic connections (0.5): 52.5 bytes
    /// per connection at any capacity, 60.5 with FULLNAT's reply index (8 more), plus the
    /// wheel and pools that scale with it (up to 1 byte) and the local addresses' room
    /// (5 bytes each). Below 40 connections the index rounds up to whole lines (at most
    /// 64 bytes a connection with FULLNAT, at 21). `tests/mem.rs` checks it against what
    /// the allocator hands out, at every size from 16 to 1,100 and beyond.
    pub fn memory_bytes(&self) -> usize {
        self.slab.len() * std::mem::size_of::<Conn>()
            + self.links.len() * std::mem::size_of::<Links>()
            + self.by_in.memory_bytes()
            + self.by_out.as_ref().map_or(0, |t| t.memory_bytes())
            + self.wheel.len() * 4
            + self.pools.len() * 8
            + self.embryonic.len() * 4
            + self.laddrs.capacity() * 4
            + self.pool.capacity()
    }

    /// What [`ConnShard::memory_bytes`] will be for a shard of `capacity` connections, with
    /// FULLNAT's reply index or without, before building it (to refuse a size that does not
    /// fit).
    pub fn memory_for(capacity: u32, fullnat: bool) -> usize {
        let cap = capacity.clamp(1, MAX_CAPACITY) as usize;
        let index = super::flowtable::FlowTable::bytes_for(cap);
        cap * (std::mem::size_of::<Conn>() + std::mem::size_of::<Links>())
            + index
            + if fullnat { index } else { 0 }
            + (wheel_slots(cap) + 1) * 4
            + super::lports::pools_for(cap, fullnat) * 8
            + embryonic_slots(cap) * 4
            + if fullnat { 4 + 1 } else { 0 }
    }

    /// Bytes of the index (fixed: it never grows, which would allocate on the packet path).
    pub fn index_bytes(&self) -> usize {
        self.by_in.memory_bytes()
    }

    /// Whether connection `idx` is past its timeout (housekeeping may not have run yet).
    /// A template that connections still follow is never expired (IPVS re-arms it).
    #[inline]
    pub fn is_expired(&self, idx: u32, now_ms: u64) -> bool {
        self.slab.get(idx as usize).is_some_and(|c| !self.lives(idx, c, now_ms))
    }

    /// Whether record `c` (slab entry `idx`) is within its timeout at `now_ms`, or a template
    /// that connections still follow.
    #[inline(always)]
    fn lives(&self, idx: u32, c: &Conn, now_ms: u64) -> bool {
        after(c.expires, ms_to_tick(now_ms))
            || (c.is_template() && self.links.get(idx as usize).is_some_and(|l| l.followers() > 0))
    }

    /// Slab entry `idx` when it is a live connection whose client-side key is `k` and that
    /// is not past its timeout: [`ConnShard::is_in`] and not [`ConnShard::is_expired`], with
    /// one bounds check and one read of the record.
    #[inline]
    pub fn live_in(&self, idx: u32, k: &ConnKey, now_ms: u64) -> Option<&Conn> {
        let c = self.slab.get(idx as usize)?;
        (c.flags & F_IN_USE != 0 && c.in_key() == *k && self.lives(idx, c, now_ms)).then_some(c)
    }

    /// Takes persistence template `idx` out of use (its real server is gone: IPVS's
    /// `ip_vs_check_template`): freed now when no connection follows it, else only taken out
    /// of the index, so that a new template for the same clients can be found, and freed by
    /// its timer once its followers are gone.
    pub fn retire_template(&mut self, idx: u32) {
        if !self.slab.get(idx as usize).is_some_and(|c| c.flags & F_IN_USE != 0 && c.is_template()) {
            return;
        }
        if self.links[idx as usize].followers() == 0 {
            self.remove(idx);
        } else {
            self.unindex(idx);
        }
    }

    /// Removes connection `idx` now (it was found expired on lookup).
    pub fn remove(&mut self, idx: u32) {
        if self.slab.get(idx as usize).is_some_and(|c| c.flags & F_IN_USE != 0) {
            self.unlink(idx);
            self.free_conn(idx);
        }
    }

    /// Whether slab slot `idx` holds a connection or template now.
    #[inline]
    pub fn in_use(&self, idx: u32) -> bool {
        self.slab.get(idx as usize).is_some_and(|c| c.flags & F_IN_USE != 0)
    }

    /// Whether connection `idx` follows a persistence template.
    #[inline]
    pub fn follows_template(&self, idx: u32) -> bool {
        self.links.get(idx as usize).is_some_and(|l| l.template() != NONE)
    }

    #[inline]
    pub fn conn(&self, idx: u32) -> &Conn {
        &self.slab[idx as usize]
    }

    /// Live connections and templates (for listing; not for the hot path).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.slab.iter().enumerate().filter(|(_, c)| c.flags & F_IN_USE != 0).map(|(i, c)| (i as u32, c))
    }

    /// Seconds until connection `idx` expires (0 if due), as `ipvsadm -c` shows it.
    pub fn expires_in_s(&self, idx: u32, now_ms: u64) -> u32 {
        let left = self.slab[idx as usize].expires.wrapping_sub(ms_to_tick(now_ms)) as i32;
        (left.max(0) as u64 * TICK_MS / 1000) as u32
    }

    /// Up to `limit` live connections and templates, for listing (allocates: control path
    /// only).
    pub fn entries(&self, now_ms: u64, limit: usize) -> Vec<ConnEntry> {
        let mut out = Vec::new();
        self.entries_slice(0, self.capacity(), now_ms, limit, &mut out);
        out
    }

    /// One slice of a listing: the entries in slab slots `from..from + slots`, appended to
    /// `out` while it holds fewer than `limit`. Returns where the next slice starts (the
    /// capacity when the walk is done), so that a worker lists a big table a slice per loop
    /// round instead of pausing for the whole walk.
    pub fn entries_slice(&self, from: u32, slots: u32, now_ms: u64, limit: usize, out: &mut Vec<ConnEntry>) -> u32 {
        let end = from.saturating_add(slots).min(self.capacity());
        for i in from..end {
            if out.len() >= limit {
                return self.capacity();
            }
            let Some(c) = self.slab.get(i as usize).filter(|c| c.flags & F_IN_USE != 0) else { continue };
            out.push(ConnEntry {
                proto: c.proto,
                state: c.state,
                template: c.is_template(),
                expires_s: self.expires_in_s(i, now_ms),
                client: (c.caddr.into(), c.cport),
                virt: (c.vaddr.into(), c.vport),
                dest: (c.daddr.into(), c.dport),
            });
        }
        end
    }

    pub(super) fn alloc(&mut self) -> Option<u32> {
        let i = self.free;
        if i == NONE {
            return None;
        }
        self.free = self.links[i as usize].next;
        self.used += 1;
        Some(i)
    }

    /// Files connection `i` (just created: by a SYN, a first datagram) as a candidate for
    /// eviction.
    #[inline]
    fn note_embryonic(&mut self, i: u32) {
        let cap = self.embryonic.len() as u64;
        if let Some(e) = self.embryonic.get_mut(self.emb_wpos as usize) {
            *e = i;
        }
        self.emb_write += 1;
        self.emb_wpos = ring_next(self.emb_wpos, cap);
        if self.emb_write - self.emb_read > cap {
            // The oldest entry was just overwritten: reading resumes at the next oldest.
            self.emb_read = self.emb_write - cap;
            self.emb_rpos = self.emb_wpos;
        }
    }

    /// Whether slab entry `i` is a connection a full table may take back: a TCP one that never
    /// got established (state NONE, SYN_RECV or SYN_SENT), or one marked [`F_BY_HASH`] (made
    /// by a mid-connection segment; a UDP flow never answered); never a template.
    fn is_embryonic(&self, i: u32) -> bool {
        self.slab.get(i as usize).is_some_and(|c| {
            c.flags & (F_IN_USE | F_TEMPLATE) == F_IN_USE
                && (c.flags & F_BY_HASH != 0
                    || (c.proto == crate::wire::ipv4::PROTO_TCP
                        && matches!(
                            TcpState::from_u8(c.state),
                            Some(TcpState::None | TcpState::SynRecv | TcpState::SynSent)
                        )))
        })
    }

    /// A UDP flow was answered (a reply through the director, or for DR and TUN a second
    /// datagram): no longer evictable.
    #[inline]
    pub fn mark_answered(&mut self, idx: u32) {
        if let Some(c) = self.slab.get_mut(idx as usize) {
            if c.proto == crate::wire::ipv4::PROTO_UDP {
                c.flags &= !F_BY_HASH;
            }
        }
    }

    /// The table is full: frees the oldest embryonic connection (IPVS's `drop_entry` idea,
    /// oldest first instead of at random) and allocates its slot; None when none is found
    /// within [`EVICT_TRIES`] ring entries.
    fn evict_embryonic(&mut self) -> Option<u32> {
        let cap = self.embryonic.len() as u64;
        for _ in 0..EVICT_TRIES {
            if self.emb_read >= self.emb_write {
                return None;
            }
            let i = self.embryonic.get(self.emb_rpos as usize).copied().unwrap_or(NONE);
            self.emb_read += 1;
            self.emb_rpos = ring_next(self.emb_rpos, cap);
            if self.is_embryonic(i) {
                self.unlink(i);
                self.release_conn(i, self.hash(&self.slab[i as usize].in_key()));
                self.stats.evicted_embryonic += 1;
                return self.alloc();
            }
        }
        None
    }

    /// Whether the table is more than 7/8 full (SYN_RECV then times out sooner).
    #[inline]
    pub fn under_pressure(&self) -> bool {
        self.used > self.pressure_at
    }

    /// Gives back a slot just allocated whose entry the index had no room for (counted as
    /// the table being full).
    fn unalloc(&mut self, i: u32) {
        self.release_slot(i);
        self.stats.refused_full += 1;
    }

    /// Puts slab slot `i` back on the free list.
    fn release_slot(&mut self, i: u32) {
        self.slab[i as usize].flags = 0;
        self.links[i as usize] = Links::free(self.free);
        self.free = i;
        self.used -= 1;
    }

    /// Creates a connection for the client's first packet. It starts inactive in state NONE
    /// (the caller then applies the packet with [`ConnShard::on_packet`]).
    pub fn create(&mut self, n: &NewConn, now_ms: u64) -> Result<u32, Refused> {
        self.create_with(n, None, 0, self.hash(&n.key), now_ms)
    }

    /// [`ConnShard::create`] by a client's TCP segment with `tcp_flags`, already applied: the
    /// connection is made in the state that segment leads to from NONE, with that state's
    /// timeout and load, as [`ConnShard::on_packet`] would leave it (IPVS creates it in NONE
    /// and applies the segment at once). Applying the segment again through `on_packet`
    /// changes nothing (`tests/conn.rs` checks both against `create` and `on_packet`), so
    /// the pipeline does not. Saves the state change that re-filed every new connection on
    /// the wheel, and the second application.
    /// `hash` is `n.key`'s ([`ConnShard::hash`]), which the caller has from its lookup.
    pub fn create_by(&mut self, n: &NewConn, hash: u64, tcp_flags: u8, now_ms: u64) -> Result<u32, Refused> {
        self.create_with(n, None, tcp_flags, hash, now_ms)
    }

    /// [`ConnShard::create`], with FULLNAT's local tuple given (a synced connection keeps
    /// the master's) instead of taken from the pools.
    /// (`tcp_flags`: see [`ConnShard::create_by`]; 0 applies none. `hash`: `n.key`'s.)
    pub(super) fn create_with(
        &mut self,
        n: &NewConn,
        tuple: Option<(u32, u16)>,
        tcp_flags: u8,
        hash: u64,
        now_ms: u64,
    ) -> Result<u32, Refused> {
        let full = n.mode == FwdMode::FullNat;
        let Some(i) = self.alloc().or_else(|| self.evict_embryonic()) else {
            self.stats.refused_full += 1;
            return Err(Refused::TableFull);
        };
        // After the slot: an eviction may have freed a tuple of this real server.
        let (laddr_idx, lport) = if full {
            let taken = match tuple {
                Some((laddr, lport)) => self.take_exact_lport(laddr, lport, n.daddr, n.dport, n.key.proto, n.laddr),
                None => self.take_lport(n.daddr, n.dport, n.key.proto, n.laddr, now_ms),
            };
            match taken {
                Some(t) => t,
                None => {
                    self.release_slot(i);
                    self.stats.refused_no_lport += 1;
                    return Err(Refused::NoLocalPort);
                }
            }
        } else {
            (0, 0)
        };
        let udp = n.key.proto == crate::wire::ipv4::PROTO_UDP;
        let state = match udp {
            true => UDP_STATE,
            false => next_state(TcpState::None, Dir::of_client(n.mode), tcp_flags) as u8,
        };
        let active = state == TcpState::Established as u8;
        let mut flags = F_IN_USE | (mode_code(n.mode) << MODE_SHIFT);
        if !active {
            flags |= F_INACTIVE;
        }
        // As `transition` marks a connection whose first segment was not a SYN.
        if udp || (state != TcpState::None as u8 && state != TcpState::SynRecv as u8) {
            flags |= F_BY_HASH;
        }
        if n.mode.replies_through_director() {
            flags |= F_REPLIES;
        }
        if full {
            flags |= F_LPORT;
        }
        let expires = ms_to_tick(now_ms).wrapping_add(self.state_timeout(state, full));
        self.slab[i as usize] = Conn {
            caddr: n.key.saddr,
            vaddr: n.key.daddr,
            daddr: n.daddr,
            cport: n.key.sport,
            vport: n.key.dport,
            dport: n.dport,
            lport,
            expires,
            svc: n.svc,
            dest: n.dest,
            proto: n.key.proto,
            state,
            laddr_idx,
            flags,
        };
        self.links[i as usize] = Links::following(n.template);
        if !self.index_hashed(i, hash) {
            self.unalloc(i);
            return Err(Refused::TableFull);
        }
        self.link(i, expires);
        self.note_embryonic(i);
        if n.template != NONE {
            if let Some(t) = self.links.get_mut(n.template as usize) {
                t.add_followers(1);
            }
        }
        self.loads.bind(n.svc, n.dest);
        if active {
            self.loads.shift(n.svc, n.dest, 1);
        }
        self.stats.created += 1;
        Ok(i)
    }

    /// Creates a persistence template (client net -> real server) living `timeout_s` after
    /// its last use.
    pub fn create_template(&mut self, key: ConnKey, n: &NewConn, timeout_s: u32, now_ms: u64) -> Result<u32, Refused> {
        let Some(i) = self.alloc() else {
            self.stats.refused_full += 1;
            return Err(Refused::TableFull);
        };
        let ticks = secs_to_ticks(timeout_s);
        let expires = ms_to_tick(now_ms).wrapping_add(ticks);
        self.slab[i as usize] = Conn {
            caddr: key.saddr,
            vaddr: key.daddr,
            daddr: n.daddr,
            cport: 0,
            vport: key.dport,
            dport: n.dport,
            lport: 0,
            expires,
            svc: n.svc,
            dest: n.dest,
            proto: key.proto,
            state: 0,
            laddr_idx: 0,
            flags: F_IN_USE | F_TEMPLATE | (mode_code(n.mode) << MODE_SHIFT),
        };
        self.slab[i as usize].set_template_timeout_s(timeout_s);
        self.links[i as usize] = Links::new_template();
        if !self.index(i) {
            self.unalloc(i);
            return Err(Refused::TableFull);
        }
        self.link(i, expires);
        self.stats.templates_created += 1;
        self.loads.persist(n.svc, n.dest, 1);
        Ok(i)
    }

    /// A template was used for a new connection: it lives another timeout from now.
    pub fn touch_template(&mut self, idx: u32, now_ms: u64) {
        let Some(c) = self.slab.get_mut(idx as usize) else { return };
        c.expires = ms_to_tick(now_ms).wrapping_add(secs_to_ticks(c.template_timeout_s()));
    }

    /// Applies one packet of connection `idx`: TCP state transition (with active/inactive
    /// accounting) and timeout refresh. Returns the (possibly new) state.
    #[inline(always)]
    pub fn on_packet(&mut self, idx: u32, dir: Dir, tcp_flags: Option<u8>, now_ms: u64) -> u8 {
        let now = ms_to_tick(now_ms);
        let Some(c) = self.slab.get_mut(idx as usize) else {
            return 0;
        };
        let old = c.state;
        // The common case, inline: data and ACKs of an established connection (or UDP)
        // change no state; only the timeout moves.
        let quiet = match tcp_flags {
            None => true,
            Some(f) => old == TcpState::Established as u8 && f & (SYN | FIN | RST) == 0,
        };
        if quiet {
            c.expires = now.wrapping_add(self.timeouts[old as usize & (TIMEOUT_SLOTS - 1)]);
            return old;
        }
        self.transition(idx, dir, tcp_flags, now)
    }

    /// The rest of [`ConnShard::on_packet`]: a segment that may change the TCP state.
    #[inline(never)]
    fn transition(&mut self, idx: u32, dir: Dir, tcp_flags: Option<u8>, now: u32) -> u8 {
        let Some(c) = self.slab.get(idx as usize) else {
            return 0;
        };
        let (old, lport) = (c.state, c.flags & F_LPORT != 0);
        let new = match (tcp_flags, TcpState::from_u8(old)) {
            // A SYN in SYN_RECV stays there, in every direction: the segment a connection was
            // made by ([`ConnShard::create_by`]) applied again, or a retransmission.
            (Some(f), _) if old == TcpState::SynRecv as u8 && f & (SYN | FIN | RST | ACK) == SYN => old,
            (Some(f), Some(s)) => next_state(s, dir, f) as u8,
            _ => old,
        };
        let expires = now.wrapping_add(self.state_timeout(new, lport));
        let Some(c) = self.slab.get_mut(idx as usize) else {
            return 0;
        };
        c.expires = expires;
        if new == old {
            // The wheel re-files it lazily when its slot comes round.
            return new;
        }
        if old == TcpState::None as u8 && new != TcpState::SynRecv as u8 {
            // Its first segment was not a SYN (sh/mh scheduled it by the hash).
            c.flags |= F_BY_HASH;
        }
        c.state = new;
        let (svc, dest) = (c.svc, c.dest);
        let delta = c.set_active(new == TcpState::Established as u8);
        self.loads.shift(svc, dest, delta);
        // A state change may shorten the timeout: file it again at the right slot.
        self.unlink(idx);
        self.link(idx, expires);
        new
    }

    /// The timeout of a connection entering `state` (`lport`: it holds a FULLNAT local tuple).
    #[inline]
    fn state_timeout(&self, state: u8, lport: bool) -> u32 {
        let mut timeout = self.timeouts[state as usize & (TIMEOUT_SLOTS - 1)];
        if state == TcpState::TimeWait as u8 && lport {
            // Its local tuple is free when the entry goes: not before the real server's own
            // TIME_WAIT has passed.
            timeout = timeout.max(self.fullnat_time_wait);
        }
        if state == TcpState::SynRecv as u8 && self.used > self.pressure_at {
            // A flood fills the table: its half-open connections go sooner (IPVS's
            // `secure_tcp` idea), so that room comes back before the table is full.
            timeout = timeout.min(self.syn_recv_pressure);
        }
        timeout
    }

    #[inline(never)]
    pub(super) fn free_conn(&mut self, i: u32) {
        let h = self.hash(&self.slab[i as usize].in_key());
        self.free_conn_hashed(i, h);
    }

    /// [`ConnShard::free_conn`] with the hash of `i`'s client-side key (expiry has it from
    /// the prefetch of its index line).
    pub(super) fn free_conn_hashed(&mut self, i: u32, h: u64) {
        self.release_conn(i, h);
        self.stats.expired += 1;
    }

    /// Unindexes slab entry `i` (`h`: its client-side key's hash), uncounts its load, gives
    /// back its local port and its slot (already unlinked from the wheel).
    fn release_conn(&mut self, i: u32, h: u64) {
        self.unindex_hashed(i, h);
        let c = self.slab[i as usize];
        if !c.is_template() {
            self.loads.unbind(c.svc, c.dest, c.is_inactive());
            let t = self.links[i as usize].template();
            if t != NONE {
                if let Some(tl) = self.links.get_mut(t as usize) {
                    tl.add_followers(-1);
                }
            }
        } else {
            self.loads.persist(c.svc, c.dest, -1);
        }
        self.release_slot(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embryonic ring's positions, kept as they move, stay its counters modulo its
    /// length (what `%` gave before) through a flood that overwrites and evicts.
    #[test]
    fn the_embryonic_rings_positions_are_its_counters_modulo_its_length() {
        for cap in [128u32, 200, 1000] {
            let mut s = ConnShard::new(&ShardConfig { capacity: cap, fullnat: false, ..ShardConfig::default() });
            let len = s.embryonic.len() as u64;
            let (mut created, mut refused) = (0, 0);
            for k in 0..20_000u32 {
                let n = NewConn {
                    key: ConnKey {
                        saddr: 0xc612_0000 | k,
                        daddr: 0xc613_0001,
                        sport: 1024 + (k % 60000) as u16,
                        dport: 80,
                        proto: 6,
                    },
                    daddr: 0xc613_000b,
                    dport: 80,
                    mode: FwdMode::Dr,
                    laddr: 0,
                    svc: 0,
                    dest: 0,
                    template: NONE,
                };
                // SYNs, and every seventh a mid-connection ACK (DR: ESTABLISHED, evictable
                // as made by the hash).
                let flags = if k % 7 == 0 { ACK } else { SYN };
                match s.create_by(&n, s.hash(&n.key), flags, 1000) {
                    Ok(_) => created += 1,
                    Err(_) => refused += 1,
                }
                assert_eq!(s.emb_wpos as u64, s.emb_write % len, "write, {cap} at {k}");
                assert_eq!(s.emb_rpos as u64, s.emb_read % len, "read, {cap} at {k}");
                assert!(s.emb_write - s.emb_read <= len);
            }
            assert!(created > 10_000 && s.stats.evicted_embryonic > 5_000, "{cap}: {created} {refused} {:?}", s.stats);
        }
    }
}
