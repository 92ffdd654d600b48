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
//! - Room for 8/10 of a slot per entry at the shard's capacity (1.25 slots an entry, rounded
//!   down to whole buckets, any bucket count, not a power of two; at least one slot an entry
//!   and two buckets): 8 bytes a connection (ten slots a line; eight left 16 bytes of the
//!   line unused and cost 10), and one line more at most where a slot an entry needs it
//!   (9.1 at 21 entries). A key's two buckets always differ, so a table of
//!   two buckets holds any 20 keys. An insert whose two buckets are full moves an entry of
//!   one of them to its other bucket (two levels deep), and where that finds no room either
//!   the entry goes to a stash of [`STASH`] beside the buckets (cuckoo hashing with a stash,
//!   Kirsch, Mitzenmacher and Wieder): counted as spilled from its first bucket, it is looked
//!   at only by the out-of-line second lookup, and it moves into a bucket as soon as one of
//!   its two has room. A failure (both buckets, two levels of moves and the stash full) is a
//!   refused connection, counted, not a stall; `tests` fill tables of every size to
//!   capacity without one.

use super::shard::NONE;

/// Slots per bucket: ten signatures (20 bytes), ten indices (40) and four spill counts fill
/// the line.
pub const WAYS: usize = 10;
/// Slots per entry of capacity, as a fraction: 5/4.
const SLOTS_NUM: usize = 5;
const SLOTS_DEN: usize = 4;
/// Entries the stash holds (no bucket had room for them).
pub const STASH: usize = 4;

/// An entry in the stash: its whole hash (its buckets and signature follow from it) and its
/// slab index.
#[derive(Clone, Copy, Debug)]
struct Stashed {
    hash: u64,
    idx: u32,
}

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
    /// Entries, the stash's included.
    len: usize,
    stash: [Stashed; STASH],
    stashed: usize,
}

impl FlowTable {
    /// A table for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> FlowTable {
        let n = Self::buckets_for(capacity);
        let stash = [Stashed { hash: 0, idx: NONE }; STASH];
        FlowTable { buckets: vec![EMPTY; n].into_boxed_slice(), len: 0, stash, stashed: 0 }
    }

    /// 1.25 slots an entry in whole buckets, rounded down (a small table's rounding up would
    /// cost more than 8 bytes an entry: 3 buckets for 17 entries), but at least a slot an
    /// entry, and two buckets (whose keys then all have both: any 20 fit).
    fn buckets_for(capacity: usize) -> usize {
        (capacity * SLOTS_NUM / SLOTS_DEN / WAYS).max(capacity.div_ceil(WAYS)).max(2)
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

    /// The two buckets of a hash (multiply-shift of each half: any bucket count; the second
    /// an offset of 1 to n - 1 from the first, so never the same) and its signature (from
    /// the halves' low bits, which choose no bucket; never 0).
    #[inline]
    fn place(&self, h: u64) -> (usize, usize, u16) {
        let (b1, sig) = self.first(h);
        (b1, self.second(h, b1), sig)
    }

    /// A hash's first bucket and its signature ([`FlowTable::place`] without the second
    /// bucket, which most inserts and removes never need).
    #[inline(always)]
    fn first(&self, h: u64) -> (usize, u16) {
        let n = self.buckets.len() as u64;
        let b1 = ((h as u32) as u64 * n) >> 32;
        let s = (h as u16) ^ ((h >> 32) as u16);
        (b1 as usize, if s == 0 { 1 } else { s })
    }

    /// The second bucket of hash `h`, whose first is `b1`.
    #[inline(always)]
    fn second(&self, h: u64, b1: usize) -> usize {
        let n = self.buckets.len() as u64;
        let b2 = b1 as u64 + 1 + (((h >> 32) * n.saturating_sub(1)) >> 32);
        (if b2 >= n { b2 - n } else { b2 }) as usize
    }

    /// The entry for hash `h` that `eq` accepts (it compares the slab record's key). The
    /// second bucket, as in [`FlowTable::probe`], only out of line.
    #[inline]
    pub fn find(&self, h: u64, eq: impl Fn(u32) -> bool) -> Option<u32> {
        let (b1, sig) = self.first(h);
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
        if let Some(i) = self.buckets.get(b2).and_then(|bk| Self::find_in(bk, sig, eq)) {
            return Some(i);
        }
        self.stash.iter().take(self.stashed).find(|s| s.hash == h && eq(s.idx)).map(|s| s.idx)
    }

    /// Asks the CPU to load the first bucket line of hash `h` (a burst's first stage: the misses
    /// of the whole burst overlap, and the probe that follows finds them in cache).
    #[inline]
    pub fn prefetch(&self, h: u64) {
        let (b1, _) = self.first(h);
        if let Some(a) = self.buckets.get(b1) {
            super::prefetch(a);
        }
    }

    /// The first entry whose signature matches, without looking at the slab (a burst's first
    /// stage: the caller verifies it); [`NONE`] if none. The second bucket's place is worked
    /// out only when the first has nothing and its class spilled (rare: out of line).
    #[inline]
    pub fn probe(&self, h: u64) -> u32 {
        let (b1, sig) = self.first(h);
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
        self.stash.iter().take(self.stashed).find(|s| s.hash == h).map_or(NONE, |s| s.idx)
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
        let (b1, sig) = self.first(h);
        // The first bucket while it has room: most lookups then read one line.
        if let Some(j) = self.free_slot(b1) {
            self.put(b1, j, sig, idx);
            self.len += 1;
            return Ok(());
        }
        let b2 = self.second(h, b1);
        if let Some(j) = self.free_slot(b2) {
            self.put_new(b2, j, sig, idx, b1);
            self.len += 1;
            return Ok(());
        }
        self.insert_moving(h, idx, (b1, b2, sig), hash_of)
    }

    /// [`FlowTable::insert`] where both buckets are full: moves, then the stash (rare: out
    /// of line).
    #[cold]
    #[inline(never)]
    fn insert_moving(
        &mut self,
        h: u64,
        idx: u32,
        (b1, b2, sig): (usize, usize, u16),
        hash_of: impl Fn(u32) -> u64,
    ) -> Result<(), Full> {
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
        // The stash: found by the second lookup, as an entry in its second bucket is.
        let Some(s) = self.stash.get_mut(self.stashed) else { return Err(Full) };
        *s = Stashed { hash: h, idx };
        self.stashed += 1;
        self.spilled(b1, sig);
        self.len += 1;
        Ok(())
    }

    /// Removes entry `idx` stored under hash `h`; whether it was there. Inlined into
    /// expiry's loop (out of line it cost 9 instructions of call a removal).
    #[inline(always)]
    pub fn remove(&mut self, h: u64, idx: u32) -> bool {
        let (b1, sig) = self.first(h);
        // The second bucket's place only if the first does not hold it.
        let mut b = b1;
        for _ in 0..2 {
            for j in 0..WAYS {
                if self.buckets[b].sig[j] == sig && self.buckets[b].idx[j] == idx {
                    self.buckets[b].sig[j] = 0;
                    self.len -= 1;
                    if b != b1 {
                        self.unspilled(b1, sig);
                    }
                    if self.stashed != 0 {
                        self.unstash_into(b);
                    }
                    return true;
                }
            }
            b = self.second(h, b1);
        }
        self.remove_stashed(h, idx)
    }

    /// [`FlowTable::remove`] of an entry in neither bucket: it is in the stash or nowhere.
    #[cold]
    #[inline(never)]
    fn remove_stashed(&mut self, h: u64, idx: u32) -> bool {
        let Some(k) = self.stash.iter().take(self.stashed).position(|s| s.hash == h && s.idx == idx) else {
            return false;
        };
        let (b1, sig) = self.first(h);
        self.unstash(k);
        self.len -= 1;
        self.unspilled(b1, sig);
        true
    }

    /// Takes stash entry `k` out (the last moves into its place).
    fn unstash(&mut self, k: usize) {
        self.stashed -= 1;
        self.stash[k] = self.stash[self.stashed];
    }

    /// Bucket `b` has a free slot again: a stash entry with `b` for a bucket moves there.
    #[cold]
    #[inline(never)]
    fn unstash_into(&mut self, b: usize) {
        for k in 0..self.stashed {
            let s = self.stash[k];
            let (b1, b2, sig) = self.place(s.hash);
            if b1 != b && b2 != b {
                continue;
            }
            let Some(j) = self.free_slot(b) else { return };
            self.put(b, j, sig, s.idx);
            if b == b1 {
                self.unspilled(b1, sig);
            }
            self.unstash(k);
            return;
        }
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
        for st in self.stash.iter().take(self.stashed) {
            let (b1, _, sig) = self.place(st.hash);
            if hash_of(st.idx) != st.hash {
                return false;
            }
            want[b1][class(sig)] += 1;
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

    /// `hash` under another seed.
    fn seeded(seed: u64) -> impl Fn(u32) -> u64 {
        move |i: u32| {
            let r = (i as u128 ^ seed as u128) * 0x9E37_79B9_7F4A_7C15u128;
            let x = (r as u64) ^ ((r >> 64) as u64);
            x ^ (x >> 29).wrapping_mul(0xBF58_476D_1CE4_E5B9)
        }
    }

    #[test]
    fn full_capacity_fits_at_every_size_in_eight_bytes_an_entry() {
        // Every size a shard can be configured with below 1,100 (16 up), under 40 seeds, and
        // large ones: filled to capacity, nothing is refused. The stash takes what two
        // levels of moves could not place (small tables, nearly full).
        let mut most_stashed = (0, 0);
        let sizes = (16..=1100).chain([4096, 100_000, 917_504, 1_048_576]);
        for cap in sizes {
            let seeds = if cap <= 1100 { 40 } else { 1 };
            for seed in 0..seeds {
                let h = seeded(seed * 0x1_0000_0001 + cap as u64);
                let mut t = FlowTable::with_capacity(cap);
                for i in 0..cap as u32 {
                    assert_eq!(t.insert(h(i), i, &h), Ok(()), "insert {i} of {cap}, seed {seed}");
                }
                assert_eq!(t.len(), cap);
                most_stashed = most_stashed.max((t.stashed, cap));
                for i in (0..cap as u32).step_by(1 + cap / 50) {
                    assert_eq!(t.find(h(i), |j| j == i), Some(i));
                    assert_ne!(t.probe(h(i)), NONE, "a signature's first match (verified by the caller)");
                }
                assert!(t.spills_are_exact(&h), "{cap}, seed {seed}");
                if cap <= 100 && seed < 10 {
                    // Churn at capacity: every entry replaced five times, oldest first.
                    for n in 0..5 * cap as u32 {
                        let (old, new) = (n, n + cap as u32);
                        assert!(t.remove(h(old), old), "remove {old} of {cap}, seed {seed}");
                        assert_eq!(t.insert(h(new), new, &h), Ok(()), "reinsert {new} of {cap}, seed {seed}");
                    }
                    assert_eq!(t.len(), cap);
                    assert!(t.spills_are_exact(&h), "{cap}, seed {seed}, after churn");
                    most_stashed = most_stashed.max((t.stashed, cap));
                }
            }
            // 1.25 slots an entry rounded down, so 8 bytes an entry; at the smallest sizes
            // a slot an entry rounded up (one line more at most).
            let per = FlowTable::bytes_for(cap) as f64 / cap as f64;
            assert!(per <= 8.0 + 64.0 / cap as f64, "{cap}: {per} bytes an entry");
            assert!(per <= 8.0 || cap < 1024, "{cap}: {per} bytes an entry");
        }
        eprintln!("at most {} stashed (at {} entries)", most_stashed.0, most_stashed.1);
    }

    #[test]
    fn a_keys_two_buckets_differ_so_two_buckets_hold_any_twenty() {
        // Every key's first bucket 0 (low half below 2^31): its second is then 1.
        let hash_of = |i: u32| ((i as u64) << 40) | (i as u64 + 1);
        let mut t = FlowTable::with_capacity(20);
        assert_eq!(t.buckets.len(), 2);
        for i in 0..2 * WAYS as u32 {
            t.insert(hash_of(i), i, hash_of).expect("room");
        }
        assert_eq!(t.stashed, 0, "no stash needed");
        for i in 0..1000u64 {
            let h = seeded(7)(i as u32);
            let (b1, b2, _) = t.place(h);
            assert_ne!(b1, b2);
        }
    }

    #[test]
    fn the_stash_takes_what_no_bucket_has_room_for_and_gives_it_back() {
        // Two buckets: every key has both. 20 fill them, 4 more go to the stash, a 25th is
        // refused.
        let hash_of = &seeded(11);
        let mut t = FlowTable::with_capacity(16);
        assert_eq!(t.buckets.len(), 2);
        let (ways, all) = (2 * WAYS as u32, 2 * WAYS as u32 + STASH as u32);
        for i in 0..all {
            t.insert(hash_of(i), i, hash_of).expect("room");
        }
        assert_eq!((t.stashed, t.len()), (STASH, all as usize));
        assert_eq!(t.insert(hash_of(all), all, hash_of), Err(Full));
        assert!(t.spills_are_exact(hash_of));
        for i in 0..all {
            assert_eq!(t.find(hash_of(i), |j| j == i), Some(i), "{i}");
            assert_ne!(t.probe(hash_of(i)), NONE, "{i}");
        }
        assert_eq!(t.find(hash_of(all), |j| j == all), None);
        // A removal from a bucket makes room: a stashed entry moves in.
        assert!(t.remove(hash_of(0), 0));
        assert_eq!(t.stashed, STASH - 1);
        assert!(t.spills_are_exact(hash_of));
        // A stashed entry removed from the stash.
        let k = t.stash[0].idx;
        assert!(t.remove(hash_of(k), k));
        assert!(!t.remove(hash_of(k), k));
        assert_eq!((t.stashed, t.len()), (STASH - 2, all as usize - 2));
        assert!(t.spills_are_exact(hash_of));
        for i in (1..all).filter(|&i| i != k) {
            assert_eq!(t.find(hash_of(i), |j| j == i), Some(i), "{i}");
        }
        // Emptied, every count is back to 0 and the stash is empty.
        for i in (1..all).filter(|&i| i != k) {
            assert!(t.remove(hash_of(i), i));
        }
        assert_eq!((t.stashed, t.len()), (0, 0));
        assert!(t.buckets.iter().all(|b| b.spill == [0; SPILL_CLASSES]));
        let _ = ways;
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
        fn agrees_with_a_map(
            cap in prop::sample::select(vec![16usize, 20, 21, 30, 39, 512]),
            ops in prop::collection::vec((any::<bool>(), 0u32..600), 1..3000),
        ) {
            // Small tables at capacity use the stash; 512 runs below it.
            let mut t = FlowTable::with_capacity(cap);
            let mut model: HashMap<u32, ()> = HashMap::new();
            for (add, k) in ops {
                if add && !model.contains_key(&k) && model.len() < cap {
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
