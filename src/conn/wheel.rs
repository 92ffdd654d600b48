//! Expiry: a hashed timer wheel with intrusive links. Refreshing a connection's timeout is
//! one store; the wheel re-files a connection lazily when its slot comes round, so expiry
//! costs O(1) amortised per packet.

use super::shard::{ConnShard, NONE};

/// Clock resolution of connection timers.
pub const TICK_MS: u64 = 10;

/// Slots in the timer wheel at most (10 ms each: 655 s per turn, so most connections are
/// filed once).
pub(super) const WHEEL_SLOTS: usize = 1 << 16;

/// Slots of the wheel of a shard of `capacity` connections: one for every 8 connections (a
/// power of two, 2 to [`WHEEL_SLOTS`]), so that its 4 bytes a slot stay half a byte a
/// connection at any size. A smaller wheel turns sooner and re-files a long-lived connection
/// once a turn (an unlink and a link when its slot comes round): at 65,536 connections, 8,192
/// slots turn in 82 s, eight connections a tick.
pub(super) fn wheel_slots(capacity: usize) -> usize {
    (capacity / 8).next_power_of_two().clamp(2, WHEEL_SLOTS)
}

/// Marks a `prev` link that names a wheel slot rather than a connection.
pub(super) const SLOT_LINK: u32 = 0x8000_0000;

/// Connections freed together by `expire` (their index misses overlap).
pub(super) const EXPIRE_BATCH: usize = 32;

/// Converts milliseconds to timer ticks (wrapping).
#[inline]
pub fn ms_to_tick(ms: u64) -> u32 {
    (ms / TICK_MS) as u32
}

/// `a` is later than `b` on the wrapping tick clock.
#[inline]
pub(super) fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

pub(super) fn secs_to_ticks(s: u32) -> u32 {
    ((s as u64 * 1000 / TICK_MS).clamp(1, i32::MAX as u64 / 2)) as u32
}

impl ConnShard {
    /// The wheel's slots (a power of two); after them, one extra list: the slot being
    /// expired, detached so that connections filed again into that same slot are not seen
    /// twice.
    #[inline]
    fn slots(&self) -> usize {
        self.wheel.len() - 1
    }

    pub(super) fn link(&mut self, i: u32, tick: u32) {
        let slot = (tick as usize) & (self.slots() - 1);
        let head = self.wheel[slot];
        if head != NONE {
            self.links[head as usize].prev = i;
        }
        let l = &mut self.links[i as usize];
        l.next = head;
        l.prev = SLOT_LINK | slot as u32;
        self.wheel[slot] = i;
    }

    pub(super) fn unlink(&mut self, i: u32) {
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
        let slots = self.slots();
        let pending = slots;
        if !self.pending_active && now.wrapping_sub(self.done_tick) as usize > slots {
            self.done_tick = now.wrapping_sub(slots as u32);
        }
        while after(now, self.done_tick) {
            let tick = self.done_tick.wrapping_add(1);
            if !self.pending_active {
                let slot = (tick as usize) & (slots - 1);
                let head = self.wheel[slot];
                self.wheel[slot] = NONE;
                self.wheel[pending] = head;
                if head != NONE {
                    self.links[head as usize].prev = SLOT_LINK | pending as u32;
                }
                self.pending_active = true;
            }
            loop {
                // Collect a batch of due connections, then free them in two passes: the first
                // only reads their index entries so that those cache misses overlap.
                let mut batch = [NONE; EXPIRE_BATCH];
                let mut hashes = [0u64; EXPIRE_BATCH];
                let mut nb = 0;
                while nb < EXPIRE_BATCH && seen < budget {
                    let i = self.wheel[pending];
                    if i == NONE {
                        break;
                    }
                    seen += 1;
                    self.unlink(i);
                    let c = self.slab[i as usize];
                    if after(c.expires, now) {
                        self.link(i, c.expires);
                    } else if c.is_template() && self.links[i as usize].followers() > 0 {
                        // Connections still follow it: keep it one more timeout.
                        let e = now.wrapping_add(secs_to_ticks(c.template_timeout_s()));
                        self.slab[i as usize].expires = e;
                        self.link(i, e);
                    } else {
                        batch[nb] = i;
                        nb += 1;
                    }
                }
                for (&i, h) in batch[..nb].iter().zip(hashes.iter_mut()) {
                    *h = self.touch_index(i);
                }
                for (&i, &h) in batch[..nb].iter().zip(hashes.iter()) {
                    self.free_conn_hashed(i, h);
                }
                freed += nb;
                if self.wheel[pending] == NONE {
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

    /// Whether connections due at `now` are still waiting for [`ConnShard::expire`] (its
    /// budget ran out before it caught up). Only a tick after the last one done counts: a
    /// clock that went back (a capture's timestamps) leaves nothing that `expire` would do,
    /// so it never keeps a worker from sleeping or a replay from finishing.
    pub fn expiry_behind(&self, now_ms: u64) -> bool {
        after(ms_to_tick(now_ms), self.done_tick)
    }

    /// Prefetches the index lines of connection `i`, both indexes for a FULLNAT one (what
    /// `unindex` then finds in cache): a batch's misses overlap, where reading them stalled
    /// on each. Returns the client-side key's hash, which the removal reuses.
    pub(super) fn touch_index(&self, i: u32) -> u64 {
        let Some(c) = self.slab.get(i as usize) else { return 0 };
        let h = self.hash(&c.in_key());
        self.by_in.prefetch(h);
        if c.flags & super::record::F_LPORT != 0 {
            self.prefetch_out(self.hash(&super::index::out_key(c, &self.laddrs)));
        }
        h
    }
}
