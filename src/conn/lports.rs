//! FULLNAT local addresses and ports.
//!
//! A FULLNAT connection to real server `rip:rport` leaves the director from one of its local
//! addresses and a local port: `laddr:lport -> rip:rport`. That tuple, not the port alone,
//! must be unique (it is what the real server's socket and its TIME_WAIT are keyed by), so
//! one local port serves as many connections as there are real servers, and each local
//! address adds a whole range (the sustainable rate is `addresses x ports x servers /
//! (lifetime + TIME_WAIT)`).
//!
//! - Replies are found by their whole tuple in the reply index (`by_out`, a second
//!   [`super::flowtable::FlowTable`] over FULLNAT connections only).
//! - A new connection takes the next free tuple of its real server's *pool*: a cursor that
//!   walks the (address, port) pairs this worker owns in order, round the range, checking the
//!   reply index for a tuple still held. A freed tuple is therefore offered again only once
//!   every other tuple of its pool has been offered since (oldest first), and never before
//!   its connection's entry expired, which for a closed connection is its TIME_WAIT: IPVS's 2
//!   minutes, and for FULLNAT never less than Linux's 60 s on the real server
//!   ([`SERVER_TIME_WAIT_SECS`]).
//! - The walks never fall behind a *line* of wall-clock time that goes round the range once
//!   per TIME_WAIT and [`LAP_MARGIN_SECS`] (a walk slower than the line jumps to it). So a director restarted, or
//!   started again after a crash, resumes where the previous one stood, without any state
//!   kept: the tuples ahead of it were last used one TIME_WAIT ago or more, while the real
//!   servers' TIME_WAIT of the previous instance's last connections lies behind it. That
//!   holds while a real server's new connections came no faster than the line (its tuples
//!   per TIME_WAIT, which is also the most that can be sustained); a walk driven ahead of
//!   the line by a burst leaves, after a restart, that stretch to be reused early.
//! - Pools are cursors in a fixed array, chosen by a seeded hash of the real server (`POOLS`
//!   of them: real servers that share one only interleave their walks).
//! - A walk gives up after [`LPORT_TRIES`] held tuples (a bounded time on the packet path):
//!   the connection is refused as `no_local_port`, counted.

use super::index::out_key;
use super::record::*;
use super::shard::{ConnShard, NONE};

/// Pools of local tuples at most (a power of two).
pub(super) const POOLS: usize = 4096;

/// Pools of a shard of `capacity` connections: one for every 16 (a power of two, 1 to
/// [`POOLS`]; one without FULLNAT, which never takes a local tuple), so that their 8 bytes
/// stay half a byte a connection at any size. Fewer pools only make more real servers share
/// one walk.
pub(super) fn pools_for(capacity: usize, fullnat: bool) -> usize {
    if fullnat {
        (capacity / 16).next_power_of_two().clamp(1, POOLS)
    } else {
        1
    }
}
/// Held tuples a new connection's walk skips at most before it is refused.
pub const LPORT_TRIES: u32 = 128;
/// Linux's TIME_WAIT (`TCP_TIMEWAIT_LEN`): a FULLNAT connection's entry stays in TIME_WAIT
/// at least this long whatever `tcp_time_wait` says, so that its tuple is not offered again
/// while the real server may still hold it.
pub const SERVER_TIME_WAIT_SECS: u32 = 60;
/// The walks' line goes round the range once per TIME_WAIT and this much more.
pub const LAP_MARGIN_SECS: u64 = 30;

impl ConnShard {
    /// Whether `addr` is one of the FULLNAT local addresses.
    #[inline]
    pub fn is_local_addr(&self, addr: u32) -> bool {
        addr != 0 && self.laddrs.contains(&addr)
    }

    /// FULLNAT local address of a connection.
    #[inline]
    pub fn laddr(&self, c: &Conn) -> u32 {
        self.laddrs.get(c.laddr_idx as usize).copied().unwrap_or(0)
    }

    /// FULLNAT connections (each holds one local tuple).
    pub fn lports_in_use(&self) -> usize {
        self.by_out.as_ref().map_or(0, |t| t.len())
    }

    /// Local tuples this worker can hand out towards one real server: its local addresses
    /// times the ports of the range it owns.
    pub fn lports_per_server(&self) -> u32 {
        self.pool.len().max(1) as u32 * self.ports_owned
    }

    /// The local addresses new FULLNAT connections use, in turn (control plane). Addresses
    /// keep their index for the connections already using them. Room is made here for
    /// those not filed yet, or, when none is set, for the fallback that `take_lport` files
    /// on the packet path, where it never allocates.
    pub fn set_local_addrs(&mut self, addrs: &[u32]) {
        let new = addrs.iter().filter(|&&a| a != 0 && !self.laddrs.contains(&a)).count();
        let fallback = addrs.iter().all(|&a| a == 0);
        self.laddr_room(new + usize::from(fallback));
        let mut pool = Vec::with_capacity(addrs.len().max(1));
        for &a in addrs.iter().filter(|a| **a != 0) {
            if let Some(i) = self.laddr_index(a) {
                if !pool.contains(&i) {
                    pool.push(i);
                }
            }
        }
        self.pool = pool;
    }

    /// Room for `more` local addresses than are filed (up to [`super::shard::LADDRS`] in
    /// all; control plane: allocates).
    fn laddr_room(&mut self, more: usize) {
        let want = (self.laddrs.len() + more).min(super::shard::LADDRS);
        self.laddrs.reserve_exact(want.saturating_sub(self.laddrs.len()));
    }

    /// The index of local address `laddr`, filed if it is new and there is room (never
    /// allocating: the room was made by the control plane).
    fn laddr_index(&mut self, laddr: u32) -> Option<u8> {
        if let Some(i) = self.laddrs.iter().position(|a| *a == laddr) {
            return Some(i as u8);
        }
        if self.laddrs.len() < self.laddrs.capacity().min(super::shard::LADDRS) {
            self.laddrs.push(laddr);
            return Some((self.laddrs.len() - 1) as u8);
        }
        None
    }

    /// Whether the local tuple of `k` (a reply's key: `rip:rport -> laddr:lport`) is held by
    /// a FULLNAT connection.
    #[inline]
    pub fn lookup_out(&self, k: &ConnKey, hash: u64) -> Option<u32> {
        let t = self.by_out.as_ref()?;
        t.find(hash, |i| self.is_out(i, k))
    }

    /// First stage of a burst's reply lookup (see [`ConnShard::probe_in`]).
    #[inline]
    pub fn probe_out(&self, hash: u64) -> u32 {
        self.by_out.as_ref().map_or(NONE, |t| t.probe(hash))
    }

    /// Prefetches the reply index line a probe of `hash` reads.
    #[inline]
    pub fn prefetch_out(&self, hash: u64) {
        if let Some(t) = &self.by_out {
            t.prefetch(hash);
        }
    }

    /// A free local tuple towards `daddr:dport` (`proto`): (local address index, port).
    /// `fallback` is the local address when none was set ([`ConnShard::set_local_addrs`]).
    pub(super) fn take_lport(
        &mut self,
        daddr: u32,
        dport: u16,
        proto: u8,
        fallback: u32,
        now_ms: u64,
    ) -> Option<(u8, u16)> {
        if self.pool.is_empty() {
            if fallback == 0 {
                return None;
            }
            let i = self.laddr_index(fallback)?;
            self.pool.push(i);
        }
        let addrs = self.pool.len() as u32;
        let span = addrs * self.ports_owned;
        if span == 0 {
            return None;
        }
        let slot = self.pool_of(daddr, dport, proto);
        // Never behind the line: a walk slower than the line jumps to it.
        let line = ((now_ms + self.wall_offset_ms) as u128 * span as u128 / self.lap_ms.max(1) as u128) as u64;
        let mut q = self.pools[slot].max(line);
        let mut found = None;
        for _ in 0..LPORT_TRIES.min(span) {
            let (li, port, k) = self.tuple_at(q, span, addrs, daddr, dport, proto);
            q += 1;
            if self.lookup_out(&k, self.hash(&k)).is_none() {
                found = Some((li, port));
                break;
            }
        }
        self.pools[slot] = q;
        // The tuple this pool offers next: its reply index line is read by the next new
        // connection to the same real server, likely within this burst; asked for now, the
        // miss overlaps with this connection's work instead of stalling that one.
        let (_, _, next) = self.tuple_at(q, span, addrs, daddr, dport, proto);
        self.prefetch_out(self.hash(&next));
        found
    }

    /// The walk's tuple at position `q` towards `daddr:dport`: (local address index, port,
    /// the reply key that would hold it).
    #[inline]
    fn tuple_at(&self, q: u64, span: u32, addrs: u32, daddr: u32, dport: u16, proto: u8) -> (u8, u16, ConnKey) {
        let pos = (q % span as u64) as u32;
        let li = self.pool.get((pos % addrs) as usize).copied().unwrap_or(0);
        let port = (self.lport_lo as u32 + self.worker as u32 + self.workers as u32 * (pos / addrs)) as u16;
        let laddr = self.laddrs.get(li as usize).copied().unwrap_or(0);
        (li, port, ConnKey { saddr: daddr, daddr: laddr, sport: dport, dport: port, proto })
    }

    /// Local tuple `laddr:lport` towards `daddr:dport`, if it is this worker's and free (a
    /// synced FULLNAT connection keeps the master's tuple: the real server knows it).
    /// `fallback` is the local address when none was set, as for [`ConnShard::take_lport`].
    pub(super) fn take_exact_lport(
        &mut self,
        laddr: u32,
        lport: u16,
        daddr: u32,
        dport: u16,
        proto: u8,
        fallback: u32,
    ) -> Option<(u8, u16)> {
        if laddr == 0 || !self.owns_lport(lport) {
            return None;
        }
        if self.pool.is_empty() && laddr == fallback {
            let i = self.laddr_index(fallback)?;
            self.pool.push(i);
        }
        // Only a configured local address: one from the network must not become local.
        let li = self.laddrs.iter().position(|a| *a == laddr)? as u8;
        if !self.pool.contains(&li) {
            return None;
        }
        let k = ConnKey { saddr: daddr, daddr: laddr, sport: dport, dport: lport, proto };
        if self.lookup_out(&k, self.hash(&k)).is_some() {
            return None;
        }
        Some((li, lport))
    }

    /// Whether local port `lport` is in the range and this worker's share of it.
    pub fn owns_lport(&self, lport: u16) -> bool {
        let workers = self.workers.max(1) as u32;
        let Some(off) = (lport as u32).checked_sub(self.lport_lo as u32) else { return false };
        off % workers == self.worker as u32 && off / workers < self.ports_owned
    }

    /// The pool of real server `daddr:dport`.
    #[inline]
    fn pool_of(&self, daddr: u32, dport: u16, proto: u8) -> usize {
        let x = ((daddr as u64) << 24 | (dport as u64) << 8 | proto as u64) ^ self.pool_seed;
        (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize & (self.pools.len() - 1)
    }

    /// Indexes FULLNAT connection `i` by its reply tuple; false if there is no room.
    pub(super) fn index_out(&mut self, i: u32) -> bool {
        let Some(c) = self.slab.get(i as usize).copied() else { return false };
        let k = out_key(&c, &self.laddrs);
        let h = self.hash(&k);
        let (slab, laddrs, hasher) = (&self.slab, &self.laddrs, &self.hasher);
        let rehash = |j: u32| slab.get(j as usize).map_or(0, |c| hasher.hash(&out_key(c, laddrs)));
        match self.by_out.as_mut() {
            Some(t) => t.insert(h, i, rehash).is_ok(),
            None => false,
        }
    }

    pub(super) fn unindex_out(&mut self, i: u32) {
        let Some(c) = self.slab.get(i as usize).copied() else { return };
        let h = self.hash(&out_key(&c, &self.laddrs));
        if let Some(t) = self.by_out.as_mut() {
            t.remove(h, i);
        }
    }

    /// Sizes the reply index for the whole capacity, if it is not yet (FULLNAT appeared in
    /// the configuration: a one-time allocation of 8 bytes a connection, at a reload).
    pub fn enable_fullnat(&mut self) {
        if self.by_out.is_none() {
            self.by_out = Some(super::flowtable::FlowTable::with_capacity(self.slab.len()));
        }
        // Room for the fallback local address and its place in the pool, if none is set.
        if self.pool.is_empty() {
            self.laddr_room(1);
            self.pool.reserve_exact(1);
        }
    }
}
