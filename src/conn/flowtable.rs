//! The flow index: hashes of connection keys to slab positions, built for this one job (DPDK's
//! `rte_hash`, VPP's bihash) instead of a general hash map.
//!
//! - Fixed size, chosen from the shard's capacity at start: it never grows, never rehashes and
//!   never allocates after `with_capacity`, so no packet ever waits for it (hashbrown clears
//!   its tombstones by rehashing the whole table in place, a stall of milliseconds at 1M
//!   entries).
//! - Buckets of one cache line: eight 16-bit signatures and eight `u32` slab indices. A key
//!   lives in one of two buckets (from the two halves of its 64-bit hash); a lookup reads the
//!   signatures of at most two lines and compares the key (in the slab record) only where a
//!   signature matches.
//! - A burst prefetches every key's first bucket first ([`FlowTable::prefetch`]; most entries
//!   live there, and prefetching both was slower), so the misses of 32 lookups overlap; hashbrown's control bytes and buckets live in separate
//!   arrays and its API offers no prefetch, which is why this table exists
//!   (`benches/flowtable.rs` has both side by side).
//! - No tombstones: a removed entry's signature is zeroed and its slot is free at once.
//! - Room for 8/10 of a slot per entry at the shard's capacity (1.25 slots an entry, any
//!   bucket count, not a power of two): 10 bytes a connection. An insert whose two buckets are
//!   full moves an entry of one of them to its other bucket (two levels deep); at that load
//!   this practically never fails, and a failure is a refused connection, counted, not a
//!   stall.

use super::shard::NONE;

/// Slots per bucket.
pub const WAYS: usize = 8;
/// Below this capacity the table has four slots an entry (see `buckets_for`).
const SMALL: usize = 1024;
/// Slots per entry of capacity, as a fraction: 5/4.
const SLOTS_NUM: usize = 5;
const SLOTS_DEN: usize = 4;

/// One cache line: signatures (0 = free) and slab indices.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    sig: [u16; WAYS],
    idx: [u32; WAYS],
}

const EMPTY: Bucket = Bucket { sig: [0; WAYS], idx: [NONE; WAYS] };

/// Two mask bits for each slot of `sigs` equal to `sig` (SSE2: compare, movemask).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sig_mask(sigs: &[u16; WAYS], sig: u16) -> u32 {
    use safe_arch::*;
    let eq = cmp_eq_mask_i16_m128i(m128i::from(*sigs), set_splat_i16_m128i(sig as i16));
    move_mask_i8_m128i(eq) as u32
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn sig_mask(sigs: &[u16; WAYS], sig: u16) -> u32 {
    sigs.iter().enumerate().fold(0, |m, (j, &s)| if s == sig { m | 3 << (2 * j) } else { m })
}

/// Why an insert failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// The index.
pub struct FlowTable {
    buckets: Box<[Bucket]>,
    len: usize,
}

impl FlowTable {
    /// A table for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> FlowTable {
        let n = Self::buckets_for(capacity);
        FlowTable { buckets: vec![EMPTY; n].into_boxed_slice(), len: 0 }
    }

    fn buckets_for(capacity: usize) -> usize {
        if capacity < SMALL {
            // A few buckets fill unevenly: 10 entries in 2 buckets fail when 9 choose the
            // same one (the fuzzer found it). Four slots an entry make that impossible, at
            // 32 KB at most.
            return (capacity / 2).max(2);
        }
        (capacity * SLOTS_NUM / SLOTS_DEN).div_ceil(WAYS)
    }

    /// Bytes a table for `capacity` entries holds.
    pub fn bytes_for(capacity: usize) -> usize {
        Self::buckets_for(capacity) * std::mem::size_of::<Bucket>()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes it holds (one line a bucket).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets)
    }

    /// The two buckets of a hash (multiply-shift of each half: any bucket count) and its
    /// signature (from the halves' low bits, which choose no bucket; never 0).
    #[inline]
    fn place(&self, h: u64) -> (usize, usize, u16) {
        let n = self.buckets.len() as u64;
        let b1 = (((h as u32) as u64 * n) >> 32) as usize;
        let b2 = (((h >> 32) * n) >> 32) as usize;
        let s = (h as u16) ^ ((h >> 32) as u16);
        (b1, b2, if s == 0 { 1 } else { s })
    }

    /// Slots of bucket `b` whose signature is `sig`: two mask bits (`2 j`, `2 j + 1`) for
    /// slot `j`. One SSE2 compare of the eight signatures at once (as hashbrown matches its
    /// control bytes).
    #[inline]
    fn matches(&self, b: usize, sig: u16) -> u32 {
        let Some(bucket) = self.buckets.get(b) else { return 0 };
        sig_mask(&bucket.sig, sig)
    }

    /// The slab index in slot `2 j` of mask bit position `bit` of bucket `b`.
    #[inline]
    fn idx_at(&self, b: usize, bit: u32) -> u32 {
        self.buckets.get(b).map_or(NONE, |bk| bk.idx[(bit / 2) as usize % WAYS])
    }

    /// The entry for hash `h` that `eq` accepts (it compares the slab record's key).
    #[inline]
    pub fn find(&self, h: u64, eq: impl Fn(u32) -> bool) -> Option<u32> {
        let (b1, b2, sig) = self.place(h);
        for b in [b1, b2] {
            let mut m = self.matches(b, sig) & 0x5555;
            while m != 0 {
                let i = self.idx_at(b, m.trailing_zeros());
                if eq(i) {
                    return Some(i);
                }
                m &= m - 1;
            }
        }
        None
    }

    /// Asks the CPU to load the first bucket line of hash `h` (a burst's first stage: the misses
    /// of the whole burst overlap, and the probe that follows finds them in cache).
    #[inline]
    pub fn prefetch(&self, h: u64) {
        let (b1, _, _) = self.place(h);
        if let Some(a) = self.buckets.get(b1) {
            super::prefetch(a);
        }
    }

    /// The first entry whose signature matches, without looking at the slab (a burst's first
    /// stage: the caller verifies it); [`NONE`] if none.
    #[inline]
    pub fn probe(&self, h: u64) -> u32 {
        let (b1, b2, sig) = self.place(h);
        let m = self.matches(b1, sig);
        if m != 0 {
            return self.idx_at(b1, m.trailing_zeros());
        }
        let m = self.matches(b2, sig);
        if m != 0 {
            return self.idx_at(b2, m.trailing_zeros());
        }
        NONE
    }

    /// A free slot of bucket `b`.
    #[inline]
    fn free_slot(&self, b: usize) -> Option<usize> {
        self.buckets[b].sig.iter().position(|&s| s == 0)
    }

    /// The other bucket of the entry in slot (`b`, `j`), whose hash `hash_of` recomputes.
    fn other(&self, b: usize, j: usize, hash_of: &impl Fn(u32) -> u64) -> usize {
        let (b1, b2, _) = self.place(hash_of(self.buckets[b].idx[j]));
        if b1 == b {
            b2
        } else {
            b1
        }
    }

    fn put(&mut self, b: usize, j: usize, sig: u16, idx: u32) {
        self.buckets[b].sig[j] = sig;
        self.buckets[b].idx[j] = idx;
    }

    /// Moves the entry in (`from`, `j`) to free slot (`to`, `k`).
    fn relocate(&mut self, from: usize, j: usize, to: usize, k: usize) {
        let (sig, idx) = (self.buckets[from].sig[j], self.buckets[from].idx[j]);
        self.put(to, k, sig, idx);
        self.buckets[from].sig[j] = 0;
    }

    /// Adds `idx` under hash `h` (not present already). When both its buckets are full, an
    /// entry of one of them moves to its other bucket, or an entry of that bucket to its
    /// own other one; `hash_of` gives an entry's hash from its slab index.
    pub fn insert(&mut self, h: u64, idx: u32, hash_of: impl Fn(u32) -> u64) -> Result<(), Full> {
        let (b1, b2, sig) = self.place(h);
        // The first bucket while it has room: most lookups then read one line.
        for b in [b1, b2] {
            if let Some(j) = self.free_slot(b) {
                self.put(b, j, sig, idx);
                self.len += 1;
                return Ok(());
            }
        }
        // One move: an entry of either bucket to its other bucket.
        for b in [b1, b2] {
            for j in 0..WAYS {
                let alt = self.other(b, j, &hash_of);
                if let Some(k) = self.free_slot(alt) {
                    self.relocate(b, j, alt, k);
                    self.put(b, j, sig, idx);
                    self.len += 1;
                    return Ok(());
                }
            }
        }
        // Two moves: make room in an entry's other bucket first.
        for b in [b1, b2] {
            for j in 0..WAYS {
                let alt = self.other(b, j, &hash_of);
                for k in 0..WAYS {
                    let alt2 = self.other(alt, k, &hash_of);
                    if alt2 == alt {
                        continue;
                    }
                    if let Some(m) = self.free_slot(alt2) {
                        self.relocate(alt, k, alt2, m);
                        self.relocate(b, j, alt, k);
                        self.put(b, j, sig, idx);
                        self.len += 1;
                        return Ok(());
                    }
                }
            }
        }
        Err(Full)
    }

    /// Removes entry `idx` stored under hash `h`; whether it was there.
    pub fn remove(&mut self, h: u64, idx: u32) -> bool {
        let (b1, b2, sig) = self.place(h);
        for b in [b1, b2] {
            for j in 0..WAYS {
                if self.buckets[b].sig[j] == sig && self.buckets[b].idx[j] == idx {
                    self.buckets[b].sig[j] = 0;
                    self.len -= 1;
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Hashes of "keys" (the slab indices stand for them): a fixed mixing, as the shard's.
    fn hash(i: u32) -> u64 {
        let r = (i as u128 ^ 0x1234_5678_9abc) * 0x9E37_79B9_7F4A_7C15u128;
        (r as u64) ^ ((r >> 64) as u64)
    }

    #[test]
    fn full_capacity_fits_at_any_size_and_costs_ten_bytes_an_entry() {
        for cap in [16usize, 1000, 4096, 100_000, 917_504, 1_048_576] {
            let mut t = FlowTable::with_capacity(cap);
            for i in 0..cap as u32 {
                assert_eq!(t.insert(hash(i), i, hash), Ok(()), "insert {i} of {cap}");
            }
            assert_eq!(t.len(), cap);
            for i in (0..cap as u32).step_by(97) {
                assert_eq!(t.find(hash(i), |j| j == i), Some(i));
            }
            let per = t.memory_bytes() as f64 / cap as f64;
            assert!(per <= 10.5 || cap < SMALL, "{cap}: {per} bytes an entry");
        }
    }

    #[test]
    fn churn_at_full_capacity_never_fails() {
        // A million inserts and removes at capacity: freed slots are reused at once.
        let cap = 50_000u32;
        let mut t = FlowTable::with_capacity(cap as usize);
        for i in 0..cap {
            t.insert(hash(i), i, hash).expect("fill");
        }
        for n in 0..1_000_000u32 {
            let old = n % cap + (n / cap) * cap;
            let new = old + cap;
            assert!(t.remove(hash(old), old));
            t.insert(hash(new), new, hash).expect("reinsert");
        }
        assert_eq!(t.len(), cap as usize);
    }

    proptest! {
        /// Against a model (a map): inserts, removes and lookups in any order agree, at up to
        /// the capacity.
        #[test]
        fn agrees_with_a_map(ops in prop::collection::vec((any::<bool>(), 0u32..600), 1..3000)) {
            let mut t = FlowTable::with_capacity(512);
            let mut model: HashMap<u32, ()> = HashMap::new();
            for (add, k) in ops {
                if add && !model.contains_key(&k) && model.len() < 512 {
                    prop_assert_eq!(t.insert(hash(k), k, hash), Ok(()));
                    model.insert(k, ());
                } else if !add {
                    prop_assert_eq!(t.remove(hash(k), k), model.remove(&k).is_some());
                }
                prop_assert_eq!(t.find(hash(k), |j| j == k).is_some(), model.contains_key(&k));
                prop_assert_eq!(t.len(), model.len());
            }
            for k in model.keys() {
                prop_assert_eq!(t.find(hash(*k), |j| j == *k), Some(*k));
            }
        }
    }
}
