//! One worker's connection shard: slab + indexes + timer wheel + per-server load.

use super::loads::{Loads, SlotSpec};
use super::state::{next_state, Dir, TcpState, Timeouts, STATES, UDP_STATE};
use crate::model::DestLoad;
use crate::model::{ConnEntry, FwdMode};
use crate::wire::tcp::{FIN, RST, SYN};
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hasher};

/// "No slab index".
pub const NONE: u32 = u32::MAX;
/// Clock resolution of connection timers.
pub const TICK_MS: u64 = 10;
/// Slots in the timer wheel (10 ms each: 655 s per turn, so most connections are filed once).
const WHEEL_SLOTS: usize = 1 << 16;
/// Marks a `prev` link that names a wheel slot rather than a connection.
const SLOT_LINK: u32 = 0x8000_0000;
/// An extra list after the wheel slots: the slot being expired, detached so that
/// connections filed again into that same slot are not seen twice.
const PENDING: usize = WHEEL_SLOTS;
/// Connections freed together by `expire` (their index misses overlap).
const EXPIRE_BATCH: usize = 32;

const F_IN_USE: u8 = 1;
const F_TEMPLATE: u8 = 2;
const F_INACTIVE: u8 = 4;
/// Replies come back through the director (NAT, FULLNAT).
const F_REPLIES: u8 = 8;
const F_LPORT: u8 = 16;

/// A flow key as seen on the wire (addresses host order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

impl ConnKey {
    /// Persistence templates live in the same index under a protocol no packet carries.
    pub fn template(proto: u8, client_net: u32, vip: u32, vport: u16) -> ConnKey {
        ConnKey { saddr: client_net, daddr: vip, sport: 0, dport: vport, proto: proto | 0x80 }
    }
}

/// One connection (or persistence template): the 32 bytes every packet reads, aligned so
/// that a lookup costs one cache line. The wheel links and template bookkeeping live apart
/// in [`Links`] (16 bytes), which only housekeeping and state changes touch.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(32))]
pub struct Conn {
    /// Client address and port (the original source).
    pub caddr: u32,
    /// Virtual address and port (the original destination).
    pub vaddr: u32,
    /// Real server address and port.
    pub daddr: u32,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    /// FULLNAT local port.
    pub lport: u16,
    /// Tick at which the connection expires unless refreshed.
    pub expires: u32,
    /// Service slot in the tables snapshot (stable while the director runs).
    pub svc: u16,
    /// Real-server slot within the service (stable: a deleted server's slot is never reused
    /// for another server).
    pub dest: u16,
    pub proto: u8,
    /// [`TcpState`] as u8, or [`UDP_STATE`].
    pub state: u8,
    /// FULLNAT local address: index into the shard's local addresses.
    laddr_idx: u8,
    /// F_* bits, and the forwarding mode in bits 5..7.
    flags: u8,
}

/// The cold half of a connection.
#[derive(Clone, Copy, Debug, Default)]
struct Links {
    next: u32,
    prev: u32,
    /// Slab index of the template this connection follows (or NONE); for a template, the
    /// number of connections following it.
    template: u32,
    /// For a template: its timeout in ticks.
    timeout: u32,
}

const MODE_SHIFT: u8 = 5;

impl Conn {
    /// The key of the client's packets (templates: the masked client net, port 0).
    #[inline]
    pub fn in_key(&self) -> ConnKey {
        ConnKey { saddr: self.caddr, daddr: self.vaddr, sport: self.cport, dport: self.vport, proto: self.proto }
    }
    #[inline]
    pub fn mode(&self) -> FwdMode {
        match self.flags >> MODE_SHIFT {
            0 => FwdMode::Nat,
            1 => FwdMode::FullNat,
            2 => FwdMode::Tun,
            _ => FwdMode::Dr,
        }
    }
    pub fn is_template(&self) -> bool {
        self.flags & F_TEMPLATE != 0
    }
    /// Counted as inactive (every state but ESTABLISHED, and UDP).
    pub fn is_inactive(&self) -> bool {
        self.flags & F_INACTIVE != 0
    }
    pub fn tcp_state(&self) -> Option<TcpState> {
        TcpState::from_u8(self.state)
    }
}

fn mode_code(m: FwdMode) -> u8 {
    match m {
        FwdMode::Nat => 0,
        FwdMode::FullNat => 1,
        FwdMode::Tun => 2,
        FwdMode::Dr => 3,
    }
}

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
    /// Fixed hash seeds make runs reproducible (replay); the daemon passes random ones.
    pub hash_seeds: [u64; 4],
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
        }
    }
}

/// Everything needed to create a connection.
#[derive(Clone, Copy, Debug)]
pub struct NewConn {
    /// The client's packet: client -> VIP.
    pub key: ConnKey,
    pub daddr: u32,
    pub dport: u16,
    pub mode: FwdMode,
    /// FULLNAT local address (ignored otherwise).
    pub laddr: u32,
    pub svc: u16,
    pub dest: u16,
    /// Template to follow, or NONE.
    pub template: u32,
}

/// Why a new connection was not created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    TableFull,
    NoLocalPort,
}

/// Counters a shard keeps about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub created: u64,
    pub expired: u64,
    pub templates_created: u64,
    pub refused_full: u64,
    pub refused_no_lport: u64,
}

/// A worker's connection table.
pub struct ConnShard {
    slab: Vec<Conn>,
    links: Vec<Links>,
    /// FULLNAT local addresses connections use (index = `Conn::laddr_idx`).
    laddrs: Vec<u32>,
    free: u32,
    used: u32,
    by_in: HashTable<u32>,
    /// FULLNAT: the connection that owns each local port (replies are found by port alone).
    by_lport: Vec<u32>,
    hasher: ahash::RandomState,
    wheel: Vec<u32>,
    /// Every tick up to and including this one has been expired.
    done_tick: u32,
    /// The slot of tick `done_tick + 1` has been moved to the PENDING list.
    pending_active: bool,
    timeouts: [u32; STATES],
    lports: Vec<u16>,
    /// Per service, per real server slot: the load the schedulers read.
    loads: Loads,
    pub stats: ShardStats,
}

/// Converts milliseconds to timer ticks (wrapping).
#[inline]
pub fn ms_to_tick(ms: u64) -> u32 {
    (ms / TICK_MS) as u32
}

/// `a` is later than `b` on the wrapping tick clock.
#[inline]
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn secs_to_ticks(s: u32) -> u32 {
    ((s as u64 * 1000 / TICK_MS).clamp(1, i32::MAX as u64 / 2)) as u32
}

impl ConnShard {
    pub fn new(cfg: &ShardConfig) -> ConnShard {
        let cap = cfg.capacity.clamp(1, SLOT_LINK - 1);
        let slab = vec![Conn::default(); cap as usize];
        let mut links = vec![Links::default(); cap as usize];
        for (i, l) in links.iter_mut().enumerate() {
            l.next = if i + 1 < cap as usize { i as u32 + 1 } else { NONE };
            l.prev = NONE;
            l.template = NONE;
        }
        let (lo, hi) = cfg.lport_range;
        let workers = cfg.workers.max(1) as u32;
        // Pushed in reverse so the lowest port is handed out first.
        let lports: Vec<u16> =
            (lo..=hi).rev().filter(|p| (*p as u32 - lo as u32) % workers == cfg.worker as u32).collect();
        let [a, b, c, d] = cfg.hash_seeds;
        let mut s = ConnShard {
            slab,
            links,
            laddrs: Vec::new(),
            free: 0,
            used: 0,
            // Twice the connections: hashbrown then always rehashes in place to clear the
            // tombstones that churn leaves (it grows, allocating, when more than half full).
            by_in: HashTable::with_capacity(2 * cap as usize),
            by_lport: vec![NONE; 1 << 16],
            hasher: ahash::RandomState::with_seeds(a, b, c, d),
            wheel: vec![NONE; WHEEL_SLOTS + 1],
            done_tick: 0,
            pending_active: false,
            timeouts: [0; STATES],
            lports,
            loads: Loads::default(),
            stats: ShardStats::default(),
        };
        s.set_timeouts(&cfg.timeouts);
        s
    }

    pub fn set_timeouts(&mut self, t: &Timeouts) {
        for (dst, s) in self.timeouts.iter_mut().zip(t.secs.iter()) {
            *dst = secs_to_ticks(*s);
        }
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
    /// Bytes of table memory: slab records, their links, the index (a power-of-two bucket
    /// count for twice the capacity at hashbrown's 7/8 load: a `u32` and a control byte per
    /// bucket), the FULLNAT port map and the wheel. With a capacity of 7/16 of a power of two
    /// (e.g. 917,504) this is 48 + 5 * 16/7 = 59.4 bytes per connection, plus 0.6 for the
    /// fixed arrays.
    pub fn memory_bytes(&self) -> usize {
        let per_index = |cap: usize| (cap * 8 / 7).next_power_of_two() * (4 + 1);
        self.slab.len() * std::mem::size_of::<Conn>()
            + self.links.len() * std::mem::size_of::<Links>()
            + per_index(self.by_in.capacity())
            + self.by_lport.len() * 4
            + self.wheel.len() * 4
    }

    /// Bucket count of the index (it must never grow: growth would allocate on the hot path).
    pub fn index_buckets(&self) -> usize {
        (self.by_in.capacity() * 8 / 7).next_power_of_two()
    }

    /// Free FULLNAT local ports.
    pub fn free_lports(&self) -> usize {
        self.lports.len()
    }

    #[inline]
    pub fn hash(&self, k: &ConnKey) -> u64 {
        hash_with(&self.hasher, k)
    }

    /// The connection a client->VIP packet belongs to.
    #[inline]
    pub fn lookup_in(&self, k: &ConnKey, hash: u64) -> Option<u32> {
        let slab = &self.slab;
        self.by_in.find(hash, |&i| slab[i as usize].in_key() == *k).copied()
    }

    /// First stage of a burst lookup: the slab index whose 7-bit hash tag matches in the
    /// client-side index, without touching the slab (verify with [`ConnShard::is_in`]).
    #[inline]
    pub fn probe_in(&self, hash: u64) -> u32 {
        self.by_in.find(hash, |_| true).copied().unwrap_or(NONE)
    }

    /// The FULLNAT connection that owns local port `lport` (NONE if none).
    #[inline]
    pub fn lport_owner(&self, lport: u16) -> u32 {
        self.by_lport[lport as usize]
    }

    /// Whether `addr` is a FULLNAT local address of this shard's connections.
    #[inline]
    pub fn is_local_addr(&self, addr: u32) -> bool {
        self.laddrs.contains(&addr)
    }

    /// Reads one word of slab entry `idx`: a safe stand-in for a prefetch, so that the
    /// record's cache miss overlaps with other work of the burst.
    #[inline]
    pub fn touch(&self, idx: u32) -> u32 {
        self.slab.get(idx as usize).map_or(0, |c| c.caddr)
    }

    /// Whether slab entry `idx` is a live connection whose client-side key is `k`.
    #[inline]
    pub fn is_in(&self, idx: u32, k: &ConnKey) -> bool {
        self.slab.get(idx as usize).is_some_and(|c| c.flags & F_IN_USE != 0 && c.in_key() == *k)
    }

    /// Whether slab entry `idx` is a live connection whose reply-side key is `k`.
    #[inline]
    pub fn is_out(&self, idx: u32, k: &ConnKey) -> bool {
        self.slab.get(idx as usize).is_some_and(|c| {
            c.flags & (F_IN_USE | F_REPLIES) == (F_IN_USE | F_REPLIES) && out_key(c, &self.laddrs) == *k
        })
    }

    /// Whether connection `idx` is past its timeout (housekeeping may not have run yet).
    /// A template that connections still follow is never expired (IPVS re-arms it).
    #[inline]
    pub fn is_expired(&self, idx: u32, now_ms: u64) -> bool {
        let c = &self.slab[idx as usize];
        let followed = c.is_template() && self.links[idx as usize].template > 0;
        !after(c.expires, ms_to_tick(now_ms)) && !followed
    }

    /// Removes connection `idx` now (it was found expired on lookup).
    pub fn remove(&mut self, idx: u32) {
        if self.slab.get(idx as usize).is_some_and(|c| c.flags & F_IN_USE != 0) {
            self.unlink(idx);
            self.free_conn(idx);
        }
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

    /// FULLNAT local address of a connection.
    #[inline]
    pub fn laddr(&self, c: &Conn) -> u32 {
        self.laddrs.get(c.laddr_idx as usize).copied().unwrap_or(0)
    }

    fn alloc(&mut self) -> Option<u32> {
        let i = self.free;
        if i == NONE {
            return None;
        }
        self.free = self.links[i as usize].next;
        self.used += 1;
        Some(i)
    }

    fn laddr_index(&mut self, laddr: u32) -> u8 {
        if let Some(i) = self.laddrs.iter().position(|a| *a == laddr) {
            return i as u8;
        }
        if self.laddrs.len() < 256 {
            self.laddrs.push(laddr);
            return (self.laddrs.len() - 1) as u8;
        }
        0
    }

    /// Creates a connection for the client's first packet. It starts inactive in state NONE
    /// (the caller then applies the packet with [`ConnShard::on_packet`]).
    pub fn create(&mut self, n: &NewConn, now_ms: u64) -> Result<u32, Refused> {
        let full = n.mode == FwdMode::FullNat;
        let lport = if full {
            match self.lports.pop() {
                Some(p) => p,
                None => {
                    self.stats.refused_no_lport += 1;
                    return Err(Refused::NoLocalPort);
                }
            }
        } else {
            0
        };
        let Some(i) = self.alloc() else {
            if full {
                self.lports.push(lport);
            }
            self.stats.refused_full += 1;
            return Err(Refused::TableFull);
        };
        let udp = n.key.proto == crate::wire::ipv4::PROTO_UDP;
        let state = if udp { UDP_STATE } else { TcpState::None as u8 };
        let mut flags = F_IN_USE | F_INACTIVE | (mode_code(n.mode) << MODE_SHIFT);
        if n.mode.replies_through_director() {
            flags |= F_REPLIES;
        }
        if full {
            flags |= F_LPORT;
        }
        let laddr_idx = if full { self.laddr_index(n.laddr) } else { 0 };
        let expires = ms_to_tick(now_ms).wrapping_add(self.timeouts[state as usize]);
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
        self.links[i as usize] = Links { next: NONE, prev: NONE, template: n.template, timeout: 0 };
        self.index(i);
        self.link(i, expires);
        if n.template != NONE {
            if let Some(t) = self.links.get_mut(n.template as usize) {
                t.template = t.template.saturating_add(1);
            }
        }
        self.loads.bind(n.svc, n.dest);
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
        self.links[i as usize] = Links { next: NONE, prev: NONE, template: 0, timeout: ticks };
        self.index(i);
        self.link(i, expires);
        self.stats.templates_created += 1;
        self.loads.persist(n.svc, n.dest, 1);
        Ok(i)
    }

    /// A template was used for a new connection: it lives another timeout from now.
    pub fn touch_template(&mut self, idx: u32, now_ms: u64) {
        let Some(l) = self.links.get(idx as usize) else { return };
        let e = ms_to_tick(now_ms).wrapping_add(l.timeout);
        self.slab[idx as usize].expires = e;
    }

    fn index(&mut self, i: u32) {
        let c = self.slab[i as usize];
        let h = self.hash(&c.in_key());
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.by_in.insert_unique(h, i, |&j| hash_with(hasher, &slab[j as usize].in_key()));
        if c.flags & F_LPORT != 0 {
            self.by_lport[c.lport as usize] = i;
        }
    }

    fn unindex(&mut self, i: u32) {
        let c = self.slab[i as usize];
        let h = self.hash(&c.in_key());
        if let Ok(e) = self.by_in.find_entry(h, |&j| j == i) {
            e.remove();
        }
        if c.flags & F_LPORT != 0 && self.by_lport[c.lport as usize] == i {
            self.by_lport[c.lport as usize] = NONE;
        }
    }

    /// Applies one packet of connection `idx`: TCP state transition (with active/inactive
    /// accounting) and timeout refresh. Returns the (possibly new) state.
    #[inline]
    pub fn on_packet(&mut self, idx: u32, dir: Dir, tcp_flags: Option<u8>, now_ms: u64) -> u8 {
        let now = ms_to_tick(now_ms);
        let Some(c) = self.slab.get_mut(idx as usize) else {
            return 0;
        };
        let old = c.state;
        // The common case: data and ACKs of an established connection (or UDP) change no
        // state; only the timeout moves.
        let quiet = match tcp_flags {
            None => true,
            Some(f) => old == TcpState::Established as u8 && f & (SYN | FIN | RST) == 0,
        };
        if quiet {
            c.expires = now.wrapping_add(self.timeouts[old as usize % STATES]);
            return old;
        }
        let new = match (tcp_flags, TcpState::from_u8(old)) {
            (Some(f), Some(s)) => next_state(s, dir, f) as u8,
            _ => old,
        };
        let expires = now.wrapping_add(self.timeouts[new as usize]);
        c.expires = expires;
        if new == old {
            // The wheel re-files it lazily when its slot comes round.
            return new;
        }
        c.state = new;
        let (svc, dest) = (c.svc, c.dest);
        let est = TcpState::Established as u8;
        let mut delta: i8 = 0;
        if new == est && c.flags & F_INACTIVE != 0 {
            c.flags &= !F_INACTIVE;
            delta = 1;
        } else if new != est && c.flags & F_INACTIVE == 0 {
            c.flags |= F_INACTIVE;
            delta = -1;
        }
        self.loads.shift(svc, dest, delta);
        // A state change may shorten the timeout: file it again at the right slot.
        self.unlink(idx);
        self.link(idx, expires);
        new
    }

    fn link(&mut self, i: u32, tick: u32) {
        let slot = (tick as usize) & (WHEEL_SLOTS - 1);
        let head = self.wheel[slot];
        if head != NONE {
            self.links[head as usize].prev = i;
        }
        let l = &mut self.links[i as usize];
        l.next = head;
        l.prev = SLOT_LINK | slot as u32;
        self.wheel[slot] = i;
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let l = &self.links[i as usize];
            (l.prev, l.next)
        };
        if prev == NONE {
            return;
        }
        if prev & SLOT_LINK != 0 {
            self.wheel[(prev & !SLOT_LINK) as usize] = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next != NONE {
            self.links[next as usize].prev = prev;
        }
        let l = &mut self.links[i as usize];
        l.next = NONE;
        l.prev = NONE;
    }

    /// Expires what is due at `now`, handling at most `budget` connections (the rest waits for
    /// the next call). Returns how many were freed.
    pub fn expire(&mut self, now_ms: u64, budget: usize) -> usize {
        let now = ms_to_tick(now_ms);
        let mut seen = 0usize;
        let mut freed = 0usize;
        // Never walk more than one turn of the wheel: every slot is visited by then.
        if !self.pending_active && now.wrapping_sub(self.done_tick) as usize > WHEEL_SLOTS {
            self.done_tick = now.wrapping_sub(WHEEL_SLOTS as u32);
        }
        while after(now, self.done_tick) {
            let tick = self.done_tick.wrapping_add(1);
            if !self.pending_active {
                let slot = (tick as usize) & (WHEEL_SLOTS - 1);
                let head = self.wheel[slot];
                self.wheel[slot] = NONE;
                self.wheel[PENDING] = head;
                if head != NONE {
                    self.links[head as usize].prev = SLOT_LINK | PENDING as u32;
                }
                self.pending_active = true;
            }
            loop {
                // Collect a batch of due connections, then free them in two passes: the first
                // only reads their index entries so that those cache misses overlap.
                let mut batch = [NONE; EXPIRE_BATCH];
                let mut nb = 0;
                while nb < EXPIRE_BATCH && seen < budget {
                    let i = self.wheel[PENDING];
                    if i == NONE {
                        break;
                    }
                    seen += 1;
                    self.unlink(i);
                    let c = self.slab[i as usize];
                    if after(c.expires, now) {
                        self.link(i, c.expires);
                    } else if c.is_template() && self.links[i as usize].template > 0 {
                        // Connections still follow it: keep it one more timeout.
                        let e = now.wrapping_add(self.links[i as usize].timeout);
                        self.slab[i as usize].expires = e;
                        self.link(i, e);
                    } else {
                        batch[nb] = i;
                        nb += 1;
                    }
                }
                let mut touched = 0u32;
                for &i in &batch[..nb] {
                    touched ^= self.touch_index(i);
                }
                std::hint::black_box(touched);
                for &i in &batch[..nb] {
                    self.free_conn(i);
                }
                freed += nb;
                if self.wheel[PENDING] == NONE {
                    break;
                }
                if seen >= budget {
                    return freed;
                }
            }
            self.pending_active = false;
            self.done_tick = tick;
        }
        freed
    }

    /// Reads the index entries of connection `i` (what `unindex` will then find in cache).
    fn touch_index(&self, i: u32) -> u32 {
        let c = &self.slab[i as usize];
        self.by_in.find(self.hash(&c.in_key()), |&j| j == i).copied().unwrap_or(0)
    }

    fn free_conn(&mut self, i: u32) {
        self.unindex(i);
        let c = self.slab[i as usize];
        if !c.is_template() {
            self.loads.unbind(c.svc, c.dest, c.is_inactive());
            let t = self.links[i as usize].template;
            if t != NONE {
                if let Some(tl) = self.links.get_mut(t as usize) {
                    tl.template = tl.template.saturating_sub(1);
                }
            }
            if c.flags & F_LPORT != 0 {
                self.lports.push(c.lport);
            }
        } else {
            self.loads.persist(c.svc, c.dest, -1);
        }
        self.slab[i as usize].flags = 0;
        let l = &mut self.links[i as usize];
        l.next = self.free;
        l.prev = NONE;
        l.template = NONE;
        self.free = i;
        self.used -= 1;
        self.stats.expired += 1;
    }
}

/// The key of a connection's replies (NAT: to the client; FULLNAT: to DIP:lport).
#[inline]
fn out_key(c: &Conn, laddrs: &[u32]) -> ConnKey {
    if c.mode() == FwdMode::FullNat {
        let laddr = laddrs.get(c.laddr_idx as usize).copied().unwrap_or(0);
        ConnKey { saddr: c.daddr, daddr: laddr, sport: c.dport, dport: c.lport, proto: c.proto }
    } else {
        ConnKey { saddr: c.daddr, daddr: c.caddr, sport: c.dport, dport: c.cport, proto: c.proto }
    }
}

#[inline]
fn hash_with(hasher: &ahash::RandomState, k: &ConnKey) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_u64(((k.saddr as u64) << 32) | k.daddr as u64);
    h.write_u64(((k.sport as u64) << 24) | ((k.dport as u64) << 8) | k.proto as u64);
    h.finish()
}
