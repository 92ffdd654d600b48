//! Fragments without reassembly (Maglev's approach): a datagram's first fragment carries the
//! transport header and is decided as its flow; the decision (the connection, and which way
//! it goes) is kept for a short time under (source, destination, protocol, IP id) so that the
//! later fragments, which carry no ports, follow it to the same real server.
//!
//! A fixed table (no allocation after start, no rehash): a key hashes to a window of
//! [`WAYS`] slots; a new entry takes a free or expired slot of its window, else the one that
//! expires first (counted as evicted).

/// Slots per worker.
pub const CAPACITY: usize = 4096;
/// Slots a key may live in.
pub const WAYS: usize = 4;
/// How long a first fragment's decision is kept (fragments of one datagram arrive together).
pub const TIMEOUT_MS: u64 = 2000;

/// What identifies a datagram's fragments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragKey {
    pub saddr: u32,
    pub daddr: u32,
    pub proto: u8,
    pub id: u16,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    key: FragKey,
    /// The connection's slab index, and whether the datagram is a reply (real server to
    /// client).
    conn: u32,
    reply: bool,
    /// The worker the first fragment was handed to ([`HERE`]: this one decided it).
    worker: u16,
    /// 0: empty.
    expires_ms: u64,
}

/// [`Entry::worker`] of a decision this worker made.
const HERE: u16 = u16::MAX;

/// The outcome of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Hit {
        conn: u32,
        reply: bool,
    },
    /// The first fragment was handed to this worker, which owns its connection: the later
    /// ones follow it there.
    Handed(u16),
    /// The first fragment's decision was there but is too old.
    Expired,
    Miss,
}

/// One worker's fragment table.
pub struct FragTable {
    slots: Box<[Entry]>,
    seed: u64,
}

impl FragTable {
    pub fn new(seed: u64) -> FragTable {
        FragTable { slots: vec![Entry::default(); CAPACITY].into_boxed_slice(), seed }
    }

    #[inline]
    fn window(&self, k: &FragKey) -> usize {
        let x = ((k.saddr as u64) << 32 | k.daddr as u64) ^ ((k.id as u64) << 8 | k.proto as u64).rotate_left(29);
        ((x ^ self.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize & (CAPACITY - 1)
    }

    /// Keeps the decision for `k`; returns whether a live entry of another datagram was
    /// evicted for it.
    pub fn insert(&mut self, k: FragKey, conn: u32, reply: bool, now_ms: u64) -> bool {
        self.put(Entry { key: k, conn, reply, worker: HERE, expires_ms: now_ms + TIMEOUT_MS }, now_ms)
    }

    /// Keeps that `k`'s first fragment was handed to `worker`; as [`FragTable::insert`].
    pub fn insert_handed(&mut self, k: FragKey, worker: u16, now_ms: u64) -> bool {
        self.put(Entry { key: k, conn: 0, reply: false, worker, expires_ms: now_ms + TIMEOUT_MS }, now_ms)
    }

    fn put(&mut self, new: Entry, now_ms: u64) -> bool {
        let k = new.key;
        let w = self.window(&k);
        let mut victim = w;
        for i in 0..WAYS {
            let at = (w + i) & (CAPACITY - 1);
            let e = &self.slots[at];
            if e.expires_ms == 0 || e.expires_ms <= now_ms || e.key == k {
                victim = at;
                break;
            }
            if e.expires_ms < self.slots[victim].expires_ms {
                victim = at;
            }
        }
        let e = &mut self.slots[victim];
        let evicted = e.expires_ms > now_ms && e.key != k;
        *e = new;
        evicted
    }

    /// The decision for a later fragment of `k`.
    #[inline]
    pub fn lookup(&self, k: &FragKey, now_ms: u64) -> Found {
        let w = self.window(k);
        for i in 0..WAYS {
            let e = &self.slots[(w + i) & (CAPACITY - 1)];
            if e.expires_ms != 0 && e.key == *k {
                return if e.expires_ms <= now_ms {
                    Found::Expired
                } else if e.worker != HERE {
                    Found::Handed(e.worker)
                } else {
                    Found::Hit { conn: e.conn, reply: e.reply }
                };
            }
        }
        Found::Miss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(id: u16) -> FragKey {
        FragKey { saddr: 0xC612_0002, daddr: 0xC612_0064, proto: 17, id }
    }

    #[test]
    fn decisions_are_kept_for_a_while_and_windows_evict_the_oldest() {
        let mut t = FragTable::new(7);
        assert_eq!(t.lookup(&k(1), 0), Found::Miss);
        assert!(!t.insert(k(1), 42, false, 100));
        assert_eq!(t.lookup(&k(1), 100 + TIMEOUT_MS - 1), Found::Hit { conn: 42, reply: false });
        assert_eq!(t.lookup(&k(1), 100 + TIMEOUT_MS), Found::Expired);
        // Many datagrams at once: every insert succeeds, some evict, recent ones are found.
        let mut evicted = 0;
        for id in 0..20_000u16 {
            evicted += t.insert(k(id), id as u32, true, 200) as usize;
        }
        assert!(evicted > 0);
        assert_eq!(t.lookup(&k(19_999), 201), Found::Hit { conn: 19_999, reply: true });
    }
}
