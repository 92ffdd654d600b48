//! The flow index: client-side keys to slab positions ([`super::flowtable`], keys compared
//! against the slab record they point to), and reply keys.

use super::record::*;
use super::shard::ConnShard;
use crate::model::FwdMode;

impl ConnShard {
    #[inline]
    pub fn hash(&self, k: &ConnKey) -> u64 {
        hash_with(&self.hasher, k)
    }

    /// The connection a client->VIP packet belongs to.
    #[inline]
    pub fn lookup_in(&self, k: &ConnKey, hash: u64) -> Option<u32> {
        let slab = &self.slab;
        self.by_in.find(hash, |i| slab.get(i as usize).is_some_and(|c| c.in_key() == *k))
    }

    /// First stage of a burst lookup: the slab index whose 16-bit signature matches in the
    /// client-side index, without touching the slab (verify with [`ConnShard::is_in`]).
    #[inline]
    pub fn probe_in(&self, hash: u64) -> u32 {
        self.by_in.probe(hash)
    }

    /// Prefetches the index lines that a probe of `hash` reads (a burst's first stage).
    #[inline]
    pub fn prefetch_in(&self, hash: u64) {
        self.by_in.prefetch(hash);
    }

    /// Prefetches slab entry `idx`'s record (a burst's second stage, after the probe).
    #[inline]
    pub fn prefetch_conn(&self, idx: u32) {
        if let Some(c) = self.slab.get(idx as usize) {
            super::prefetch(c);
        }
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

    /// Indexes slab entry `i`; false if the index has no room for it.
    pub(super) fn index(&mut self, i: u32) -> bool {
        let h = self.hash(&self.slab[i as usize].in_key());
        self.index_hashed(i, h)
    }

    /// [`ConnShard::index`] with the hash of `i`'s client-side key, which the caller has.
    pub(super) fn index_hashed(&mut self, i: u32, h: u64) -> bool {
        let c = self.slab[i as usize];
        debug_assert_eq!(h, self.hash(&c.in_key()));
        let (slab, hasher) = (&self.slab, &self.hasher);
        let rehash = |j: u32| slab.get(j as usize).map_or(0, |c| hash_with(hasher, &c.in_key()));
        if self.by_in.insert(h, i, rehash).is_err() {
            return false;
        }
        if c.flags & F_LPORT != 0 && !self.index_out(i) {
            self.by_in.remove(h, i);
            return false;
        }
        true
    }

    pub(super) fn unindex(&mut self, i: u32) {
        let h = self.hash(&self.slab[i as usize].in_key());
        self.unindex_hashed(i, h);
    }

    /// [`ConnShard::unindex`] with the hash of `i`'s client-side key, which the caller has.
    pub(super) fn unindex_hashed(&mut self, i: u32, h: u64) {
        let c = self.slab[i as usize];
        debug_assert_eq!(h, self.hash(&c.in_key()));
        self.by_in.remove(h, i);
        if c.flags & F_LPORT != 0 {
            self.unindex_out(i);
        }
    }
}

/// The key of a connection's replies (NAT: to the client; FULLNAT: to DIP:lport).
#[inline]
pub(super) fn out_key(c: &Conn, laddrs: &[u32]) -> ConnKey {
    if c.mode() == FwdMode::FullNat {
        let laddr = laddrs.get(c.laddr_idx as usize).copied().unwrap_or(0);
        ConnKey { saddr: c.daddr, daddr: laddr, sport: c.dport, dport: c.lport, proto: c.proto }
    } else {
        ConnKey { saddr: c.daddr, daddr: c.caddr, sport: c.dport, dport: c.cport, proto: c.proto }
    }
}

#[inline]
pub(super) fn hash_with(seeds: &KeyHash, k: &ConnKey) -> u64 {
    seeds.hash(k)
}

/// The connection key's hash: two folded multiplies (the 128-bit product's halves xored, as
/// ahash's fallback does) keyed by per-process random seeds. Half the instructions of a
/// general `Hasher` for the same 13-byte key; every bit (the flow index takes buckets and signatures from both halves) is mixed.
#[derive(Clone, Copy, Debug)]
pub struct KeyHash([u64; 3]);

impl KeyHash {
    pub fn new(seeds: [u64; 4]) -> KeyHash {
        // An all-zero seed word would let a zero key word through unmixed.
        KeyHash([seeds[0], seeds[1] | 1, seeds[2] ^ seeds[3]])
    }

    /// Always inlined: out of line (called from more places, the compiler chose to) it cost
    /// a call on every new connection.
    #[inline(always)]
    pub fn hash(&self, k: &ConnKey) -> u64 {
        let fold = |a: u64, b: u64| {
            let r = (a as u128) * (b as u128);
            (r as u64) ^ ((r >> 64) as u64)
        };
        // The words in the order of the key's fields, as `ConnKey`'s comparison takes them:
        // the compiler loads them whole, with fewer shifts (1-10 instructions a packet).
        let addrs = (k.saddr as u64 | (k.daddr as u64) << 32) ^ self.0[0];
        let rest = (k.sport as u64 | (k.dport as u64) << 16 | (k.proto as u64) << 32) ^ self.0[1];
        fold(fold(addrs, rest) ^ self.0[2], 0x9E37_79B9_7F4A_7C15)
    }
}
