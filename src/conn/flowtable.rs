//! The flow index: hashes of connection keys to slab positions, built for this one job (DPDK's
//! `rte_hash`, VPP's bihash) instead of a general hash map.
//!
//! - Fixed size, chosen from the shard's capacity at start: it never grows, never rehashes and
//!   never allocates after `with_capacity`, so no packet ever waits for it (hashbrown clears
//!   its tombstones by rehashing the whole table in place, a stall of milliseconds at 1M
//!   entries).
//! - Buckets of one cache line: ten 16-bit signatures and ten `u32` slab indices. A key
//!   lives in one of two buckets (from the two halves of its 64-bit hash); a lookup reads the
//!   signatures of at most two lines and compares the key (in the slab record) only where a
//!   signature matches.
//! - A burst prefetches every key's first bucket first ([`FlowTable::prefetch`]; most entries
//!   live there, and prefetching both was slower), so the misses of 32 lookups overlap; hashbrown's control bytes and buckets live in separate
//!   arrays and its API offers no prefetch, which is why this table exists
//!   (`benches/flowtable.rs` has both side by side).
//! - No tombstones: a removed entry's signature is zeroed and its slot is free at once.
//! - Each bucket counts the entries that have it as their first bucket but live in their
//!   second (`spill`), by the low two bits of their signature. A lookup that finds nothing
//!   in the first bucket stops there when its class's count is 0, which it nearly always is:
//!   a new flow's lookup (every SYN, every FULLNAT local tuple tried) reads one line, not
//!   two.
//! - Room for 8/10 of a slot per entry at the shard's capacity (1.25 slots an entry, any
//!   bucket count, not a power of two): 8 bytes a connection (ten slots a line; eight left
//!   16 bytes of the line unused and cost 10). An insert whose two buckets are
//!   full moves an entry of one of them to its other bucket (two levels deep); at that load
//!   this practically never fails, and a failure is a refused connection, counted, not a
//!   stall.

use super::shard::NONE;

/// Slots per bucket: ten signatures (20 bytes), ten indices (40) and four spill counts fill
/// the line.
pub const WAYS: usize = 10;
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
    /// Entries whose first bucket is this one and that live in their second, by the low
    /// two bits of their signature (255: at least that many, and stays so: never wrong,
    /// only slower).
    spill: [u8; SPILL_CLASSES],
}

const SPILL_CLASSES: usize = 4;
const EMPTY: Bucket = Bucket { sig: [0; WAYS], idx: [NONE; WAYS], spill: [0; SPILL_CLASSES] };

/// The spill count of signature `sig`.
#[inline(always)]
fn class(sig: u16) -> usize {
    sig as usize % SPILL_CLASSES
}
const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

/// Two mask bits for each slot of `sigs` equal to `sig` (bits `2j`, `2j + 1` for slot `j`).
/// SSE2: one compare and movemask over the first eight signatures and one over the last
/// eight (overlapping in slots 2..8, whose bits then agree).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sig_mask(sigs: &[u16; WAYS], sig: u16) -> u32 {
    use safe_arch::*;
    let (Some(lo), Some(hi)) = (sigs.first_chunk::<8>(), sigs.last_chunk::<8>()) else { return 0 };
    let want = set_splat_i16_m128i(sig as i16);
    let lo = move_mask_i8_m128i(cmp_eq_mask_i16_m128i(m128i::from(*lo), want)) as u32;
    let hi = move_mask_i8_m128i(cmp_eq_mask_i16_m128i(m128i::from(*hi), want)) as u32;
    lo | hi << (2 * (WAYS - 8))
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn sig_mask(sigs: &[u16; WAYS], sig: u16) -> u32 {
    sigs.iter().enumerate().fold(0, |m, (j, &s)| if s == sig { m | 3 << (2 * j) } else { m })
}

/// The first slot a nonzero [`sig_mask`] names (`min` keeps the index provably in bounds
/// in two instructions, where `% WAYS` costs a division by a constant).
#[inline(always)]
fn slot_of(m: u32) -> usize {
    ((m.trailing_zeros() / 2) as usize).min(WAYS - 1)
}

/// One bit of each slot's pair in a [`sig_mask`].
const SLOT_BITS: u32 = 0x5_5555;
const _: () = assert!(SLOT_BITS.count_ones() as usize == WAYS && SLOT_BITS < 1 << (2 * WAYS));

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
            // A few buckets fill unevenly: with eight slots a bucket, 10 entries in 2 buckets
            // failed when 9 chose the same one (the fuzzer found it). Four slots an entry make
            // that impossible, at 26 KB at most.
            return (capacity * 4).div_ceil(WAYS).max(2);
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

    /// The entry for hash `h` that `eq` accepts (it compares the slab record's key). The
    /// second bucket, as in [`FlowTable::probe`], only out of line.
    #[inline]
    pub fn find(&self, h: u64, eq: impl Fn(u32) -> bool) -> Option<u32> {
        let (b1, _, sig) = self.place(h);
        let bk = self.buckets.get(b1)?;
        if let Some(i) = Self::find_in(bk, sig, &eq) {
            return Some(i);
        }
        // Nothing of the first bucket's with this signature class lives in its second: the
        // key is not there.
        if bk.spill[class(sig)] == 0 {
            return None;
        }
        self.find_second(h, &eq)
    }

    #[inline(always)]
    fn find_in(bk: &Bucket, sig: u16, eq: &impl Fn(u32) -> bool) -> Option<u32> {
        let mut m = sig_mask(&bk.sig, sig) & SLOT_BITS;
        while m != 0 {
            let i = bk.idx[slot_of(m)];
            if eq(i) {
                return Some(i);
            }
            m &= m - 1;
        }
        None
    }

    #[cold]
    #[inline(never)]
    fn find_second(&self, h: u64, eq: &impl Fn(u32) -> bool) -> Option<u32> {
        let (_, b2, sig) = self.place(h);
        Self::find_in(self.buckets.get(b2)?, sig, eq)
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
    /// stage: the caller verifies it); [`NONE`] if none. The second bucket's place is worked
    /// out only when the first has nothing and its class spilled (rare: out of line).
    #[inline]
    pub fn probe(&self, h: u64) -> u32 {
        let (b1, _, sig) = self.place(h);
        let Some(bk) = self.buckets.get(b1) else { return NONE };
        let m = sig_mask(&bk.sig, sig);
        if m != 0 {
            return bk.idx[slot_of(m)];
        }
        if bk.spill[class(sig)] == 0 {
            return NONE;
        }
        self.probe_second(h)
    }

    #[cold]
    #[inline(never)]
    fn probe_second(&self, h: u64) -> u32 {
        let (_, b2, sig) = self.place(h);
        let Some(bk) = self.buckets.get(b2) else { return NONE };
        let m = sig_mask(&bk.sig, sig);
        if m != 0 {
            return bk.idx[slot_of(m)];
        }
        NONE
    }

    /// A free slot of bucket `b`.
    #[inline]
    fn free_slot(&self, b: usize) -> Option<usize> {
        self.buckets[b].sig.iter().position(|&s| s == 0)
    }

    /// The other bucket of the entry in slot (`b`, `j`), whose hash `hash_of` recomputes,
    /// and the entry's first bucket.
    fn other(&self, b: usize, j: usize, hash_of: &impl Fn(u32) -> u64) -> (usize, usize) {
        let (b1, b2, _) = self.place(hash_of(self.buckets[b].idx[j]));
        if b1 == b {
            (b2, b1)
        } else {
            (b1, b1)
        }
    }

    fn put(&mut self, b: usize, j: usize, sig: u16, idx: u32) {
        self.buckets[b].sig[j] = sig;
        self.buckets[b].idx[j] = idx;
    }

    /// Puts a new entry whose buckets are `b1`, `b2` into slot (`b`, `j`), `b` one of them.
    fn put_new(&mut self, b: usize, j: usize, sig: u16, idx: u32, b1: usize) {
        self.put(b, j, sig, idx);
        if b != b1 {
            self.spilled(b1, sig);
        }
    }

    /// An entry of first bucket `b` and signature `sig` now lives in its second.
    fn spilled(&mut self, b: usize, sig: u16) {
        let n = &mut self.buckets[b].spill[class(sig)];
        *n = n.saturating_add(1);
    }

    /// An entry of first bucket `b` and signature `sig` no longer lives in its second.
    fn unspilled(&mut self, b: usize, sig: u16) {
        let n = &mut self.buckets[b].spill[class(sig)];
        if *n != u8::MAX {
            *n -= 1;
        }
    }

    /// Moves the entry in (`from`, `j`), whose first bucket is `first`, to free slot (`to`,
    /// `k`), its other bucket.
    fn relocate(&mut self, from: usize, j: usize, to: usize, k: usize, first: usize) {
        let (sig, idx) = (self.buckets[from].sig[j], self.buckets[from].idx[j]);
        self.put(to, k, sig, idx);
        self.buckets[from].sig[j] = 0;
        if from == first {
            self.spilled(first, sig);
        } else if to == first {
            self.unspilled(first, sig);
        }
    }

    /// Adds `idx` under hash `h` (not present already). When both its buckets are full, an
    /// entry of one of them moves to its other bucket, or an entry of that bucket to its
    /// own other one; `hash_of` gives an entry's hash from its slab index.
    pub fn insert(&mut self, h: u64, idx: u32, hash_of: impl Fn(u32) -> u64) -> Result<(), Full> {
        let (b1, b2, sig) = self.place(h);
        // The first bucket while it has room: most lookups then read one line.
        for b in [b1, b2] {
            if let Some(j) = self.free_slot(b) {
                self.put_new(b, j, sig, idx, b1);
                self.len += 1;
                return Ok(());
            }
        }
        // One move: an entry of either bucket to its other bucket.
        for b in [b1, b2] {
            for j in 0..WAYS {
                let (alt, first) = self.other(b, j, &hash_of);
                if alt == b {
                    continue;
                }
                if let Some(k) = self.free_slot(alt) {
                    self.relocate(b, j, alt, k, first);
                    self.put_new(b, j, sig, idx, b1);
                    self.len += 1;
                    return Ok(());
                }
            }
        }
        // Two moves: make room in an entry's other bucket first.
        for b in [b1, b2] {
            for j in 0..WAYS {
                let (alt, first) = self.other(b, j, &hash_of);
                if alt == b {
                    continue;
                }
                for k in 0..WAYS {
                    let (alt2, first2) = self.other(alt, k, &hash_of);
                    if alt2 == alt {
                        continue;
                    }
                    if let Some(m) = self.free_slot(alt2) {
                        self.relocate(alt, k, alt2, m, first2);
                        self.relocate(b, j, alt, k, first);
                        self.put_new(b, j, sig, idx, b1);
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
                    if b != b1 {
                        self.unspilled(b1, sig);
                    }
                    return true;
                }
            }
        }
        false
    }

    /// Whether every bucket's `spill` counts are the entries that have it as their first
    /// bucket and live in their second, by class (recounted from `hash_of`).
    #[cfg(test)]
    fn spills_are_exact(&self, hash_of: impl Fn(u32) -> u64) -> bool {
        let mut want = vec![[0u32; SPILL_CLASSES]; self.buckets.len()];
        for (b, bk) in self.buckets.iter().enumerate() {
            for j in 0..WAYS {
                if bk.sig[j] != 0 {
                    let (b1, _, _) = self.place(hash_of(bk.idx[j]));
                    if b1 != b {
                        want[b1][class(bk.sig[j])] += 1;
                    }
                }
            }
        }
        let ok = |w: u32, n: u8| n as u32 == w || (n == u8::MAX && w >= n as u32);
        want.iter().zip(self.buckets.iter()).all(|(w, bk)| w.iter().zip(bk.spill).all(|(&w, n)| ok(w, n)))
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
    fn full_capacity_fits_at_any_size_and_costs_eight_bytes_an_entry() {
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
            assert!(per <= 8.1 || cap < SMALL, "{cap}: {per} bytes an entry");
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
        assert!(t.spills_are_exact(hash));
        // How often a miss reads one line at full capacity (most tables run below it).
        let spilled: u32 = t.buckets.iter().flat_map(|b| b.spill).map(u32::from).sum();
        let alone = t.buckets.iter().flat_map(|b| b.spill).filter(|&n| n == 0).count();
        let classes = t.buckets.len() * SPILL_CLASSES;
        eprintln!(
            "{spilled} of {cap} entries in their second bucket; a miss reads one line {alone} times in {classes}"
        );
        assert!(alone * 10 > classes * 8, "a miss reads two lines too often: {alone} of {classes}");
    }

    #[test]
    fn a_miss_reads_the_second_bucket_only_while_its_class_spilled() {
        // Two buckets; every key's first bucket is 0 and its second 1 (low half below 2^31,
        // high half above), signatures 1..=2 * WAYS.
        let hash_of = |i: u32| (0x8000_0000u64 << 32) | (i as u64 + 1);
        let mut t = FlowTable::with_capacity(4);
        assert_eq!(t.buckets.len(), 2);
        let (ways, both) = (WAYS as u32, 2 * WAYS as u32);
        for i in 0..both {
            t.insert(hash_of(i), i, hash_of).expect("room");
        }
        // WAYS live in bucket 1, spilled from bucket 0: their classes count them.
        assert!(t.spills_are_exact(hash_of));
        assert_eq!(t.buckets[0].spill.iter().map(|&n| n as u32).sum::<u32>(), ways);
        for i in 0..both {
            assert_eq!(t.find(hash_of(i), |j| j == i), Some(i));
        }
        for i in ways..both {
            assert!(t.remove(hash_of(i), i));
        }
        assert_eq!(t.buckets[0].spill, [0; SPILL_CLASSES]);
        assert!(t.spills_are_exact(hash_of));
        // A saturated count stays saturated: never wrong, only a second line read.
        t.buckets[0].spill[class(hash_of(20) as u16)] = u8::MAX;
        t.insert(hash_of(20), 20, hash_of).expect("room");
        assert!(t.remove(hash_of(20), 20));
        assert_eq!(t.buckets[0].spill[class(hash_of(20) as u16)], u8::MAX);
        assert_eq!(t.find(hash_of(3), |j| j == 3), Some(3));
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
                prop_assert!(t.spills_are_exact(hash));
            }
            for k in model.keys() {
                prop_assert_eq!(t.find(hash(*k), |j| j == *k), Some(*k));
            }
        }
    }
}
