//! Maglev-hashing scheduling (IPVS `ip_vs_mh.c`).
//!
//! A lookup table of M slots (M prime, 4093 by default, callers validate), each naming a server.
//! Every server gets a permutation of the slots from two keyed hashes of its address and port
//! (SipHash-1-3, the kernel's `hsiphash` on 64-bit, over the u32 `addr + port`):
//!
//! ```text
//! offset(d) = hsiphash(addr + port, key1) % M
//! skip(d)   = hsiphash(addr + port, key2) % (M - 1) + 1
//! perm(d)_j = (offset(d) + j * skip(d)) % M
//! turns(d)  = ((weight(d) / gcd) >> rshift), or 1 if that is 0 and weight(d) > 0
//!             (gcd of the weights > 0; rshift keeps max_weight / gcd within 6 bits)
//! ```
//!
//! where weight(d) is the server's *last* weight, its latest non-zero one (IPVS's
//! `last_weight`): a quiesced server keeps its slots, and a pick that lands on one finds it
//! unavailable (the caller gives the last weights to [`Mh::rebuild`]).
//!
//! The table fills in rounds over the servers in list order: each server with weight > 0 takes
//! `turns(d)` turns, each turn claiming the next still-empty slot of its permutation, until all
//! M slots are set (servers with weight 0 get no slot; no server with weight > 0 = empty table).
//! Removing one of N servers moves about 1/N of the keys. A pick:
//!
//! ```text
//! ihash  = hsiphash(saddr + (mh-port ? sport : 0), key1) % M
//! server = table[ihash]   if available (weight > 0, not overloaded), else None, or with
//!          mh-fallback the first available of
//!          table[hsiphash(saddr + sport' + ((offset + ihash) % M), key1) % M], offset in 0..M
//! ```
//!
//! Keys and hash inputs are the kernel's, so the same servers in the same order with the same
//! weights give the same table as IPVS.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

use super::{DestLoad, DestSpec, Flow};
use crate::model::SchedFlags;

/// `generate_hash_secret`: hash1 (offset and lookup) and hash2 (skip).
const HASH1: (u64, u64) = (2_654_435_761, 2_654_435_761);
const HASH2: (u64, u64) = (2_654_446_892, 2_654_446_892);
/// `IP_VS_MH_TAB_BITS` with the default `CONFIG_IP_VS_MH_TAB_INDEX` (12): weight/gcd is shifted
/// down to this many bits.
const MH_TAB_BITS: u32 = 6;
/// Empty slot marker; it also caps the server count at 65535.
const EMPTY: u16 = u16::MAX;

/// Maglev state: the flags, the configured table size and the lookup table (server index per
/// slot; empty when no server has weight > 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mh {
    flags: SchedFlags,
    size: u32,
    table: Vec<u16>,
}

/// `ip_vs_mh_hashkey`: `hsiphash(&v, 4, key)` with `v = offset + port + addr` (u32, wrapping).
#[inline(always)]
fn hashkey(v: u32, key: (u64, u64)) -> u32 {
    let mut h = SipHasher13::new_with_keys(key.0, key.1);
    h.write(&v.to_le_bytes());
    h.finish() as u32
}

/// `struct ip_vs_mh_dest_setup`.
struct Setup {
    skip: usize,
    perm: usize,
    turns: u32,
}

impl Mh {
    /// An empty table of `table_size` slots (a prime; filled by [`Mh::rebuild`]).
    pub fn new(flags: SchedFlags, table_size: u32) -> Self {
        Mh { flags, size: table_size, table: Vec::new() }
    }

    /// The lookup table size M.
    pub fn table_size(&self) -> u32 {
        self.size
    }

    /// `ip_vs_mh_reassign`: permutation and population (allocates).
    pub fn rebuild(&mut self, dests: &[DestSpec]) {
        self.table.clear();
        let m = self.size as usize;
        // Servers that can be named in a u16 slot.
        let dests = dests.get(..EMPTY as usize).unwrap_or(dests);
        let g = super::weights_gcd(dests);
        if m == 0 || g == 0 {
            return;
        }
        // ip_vs_mh_shift_weight
        let mw = dests.iter().map(|d| d.weight).max().unwrap_or(0) / g;
        let fls = u32::BITS - mw.leading_zeros();
        let rshift = fls.saturating_sub(MH_TAB_BITS);
        // ip_vs_mh_permutate
        let m32 = self.size;
        let mut setup: Vec<Setup> = dests
            .iter()
            .map(|d| {
                let v = d.addr.wrapping_add(d.port as u32);
                // ip_vs_mh_permutate: offset from hash1, skip from hash2.
                let offset = (hashkey(v, HASH1) % m32) as usize;
                let skip = if m32 > 1 { (hashkey(v, HASH2) % (m32 - 1)) as usize + 1 } else { 1 };
                let t = (d.weight / g) >> rshift;
                let turns = if t == 0 { u32::from(d.weight != 0) } else { t };
                Setup { skip, perm: offset, turns }
            })
            .collect();
        // ip_vs_mh_populate
        self.table.resize(m, EMPTY);
        let mut n = 0usize;
        'fill: while n < m {
            let mut progress = false;
            for (i, ds) in setup.iter_mut().enumerate() {
                let mut t = 0;
                while t < ds.turns {
                    // Next empty slot of this server's permutation. M prime => skip is coprime
                    // with M and the permutation visits every slot; the bound only guards
                    // against a non-prime M (a server that finds no slot takes no more turns).
                    let mut tries = 0usize;
                    while self.table.get(ds.perm).is_some_and(|&s| s != EMPTY) {
                        tries += 1;
                        if tries >= m {
                            ds.turns = 0;
                            break;
                        }
                        ds.perm += ds.skip;
                        if ds.perm >= m {
                            ds.perm -= m;
                        }
                    }
                    let Some(slot) = self.table.get_mut(ds.perm) else {
                        ds.turns = 0;
                        break;
                    };
                    if *slot != EMPTY {
                        break;
                    }
                    *slot = i as u16;
                    progress = true;
                    n += 1;
                    if n == m {
                        break 'fill;
                    }
                    t += 1;
                }
            }
            if !progress {
                break;
            }
        }
    }

    #[inline(always)]
    fn available(&self, loads: &[DestLoad], slot: u32) -> Option<usize> {
        let idx = *self.table.get(slot as usize)?;
        let d = loads.get(idx as usize)?;
        if d.available() {
            Some(idx as usize)
        } else {
            None
        }
    }

    /// `ip_vs_mh_schedule`: `ip_vs_mh_get` or, with mh-fallback, `ip_vs_mh_get_fallback`.
    #[inline]
    pub fn pick(&mut self, flow: &Flow, loads: &[DestLoad]) -> Option<usize> {
        let m = u32::try_from(self.table.len()).ok()?;
        if m == 0 {
            return None;
        }
        let port = if self.flags.port { flow.sport as u32 } else { 0 };
        let base = flow.saddr.wrapping_add(port);
        let ihash = hashkey(base, HASH1) % m;
        let first = *self.table.get(ihash as usize)?;
        if first == EMPTY {
            return None;
        }
        if let Some(i) = self.available(loads, ihash) {
            return Some(i);
        }
        if !self.flags.fallback {
            return None;
        }
        for offset in 0..m {
            let roffset = ((offset as u64 + ihash as u64) % m as u64) as u32;
            let h = hashkey(base.wrapping_add(roffset), HASH1) % m;
            if let Some(i) = self.available(loads, h) {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    fn counts(s: &Mh, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &b in &s.table {
            c[b as usize] += 1;
        }
        c
    }
    fn flow(saddr: u32) -> Flow {
        Flow { proto: 6, saddr, sport: 4000, daddr: 1, dport: 80 }
    }

    /// Reference SipHash-1-3 of 4 bytes, written from the kernel's `__hsiphash_aligned`
    /// (64-bit: HSIPROUND = SIPROUND, one compression and three finalization rounds).
    fn kernel_hsiphash_u32(v: u32, k0: u64, k1: u64) -> u32 {
        let (mut v0, mut v1, mut v2, mut v3) = (
            0x736f_6d65_7073_6575u64 ^ k0,
            0x646f_7261_6e64_6f6du64 ^ k1,
            0x6c79_6765_6e65_7261u64 ^ k0,
            0x7465_6462_7974_6573u64 ^ k1,
        );
        let round = |v0: &mut u64, v1: &mut u64, v2: &mut u64, v3: &mut u64| {
            *v0 = v0.wrapping_add(*v1);
            *v1 = v1.rotate_left(13);
            *v1 ^= *v0;
            *v0 = v0.rotate_left(32);
            *v2 = v2.wrapping_add(*v3);
            *v3 = v3.rotate_left(16);
            *v3 ^= *v2;
            *v0 = v0.wrapping_add(*v3);
            *v3 = v3.rotate_left(21);
            *v3 ^= *v0;
            *v2 = v2.wrapping_add(*v1);
            *v1 = v1.rotate_left(17);
            *v1 ^= *v2;
            *v2 = v2.rotate_left(32);
        };
        let b = (4u64 << 56) | v as u64;
        v3 ^= b;
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        v0 ^= b;
        v2 ^= 0xff;
        for _ in 0..3 {
            round(&mut v0, &mut v1, &mut v2, &mut v3);
        }
        ((v0 ^ v1) ^ (v2 ^ v3)) as u32
    }

    #[test]
    fn hash_matches_kernel_hsiphash() {
        for v in [0u32, 1, 80, 0x0a00_0051, 0xffff_ffff, 0xdead_beef] {
            for k in [HASH1, HASH2] {
                assert_eq!(hashkey(v, k), kernel_hsiphash_u32(v, k.0, k.1));
            }
        }
    }

    #[test]
    fn table_is_full_and_weighted() {
        let mut s = Mh::new(SchedFlags::default(), 4093);
        s.rebuild(&specs(&[1, 1, 1, 1]));
        assert_eq!(s.table.len(), 4093);
        let c = counts(&s, 4);
        assert_eq!(c.iter().sum::<usize>(), 4093);
        assert!(c.iter().all(|&x| x == 1023 || x == 1024), "{c:?}");
        s.rebuild(&specs(&[1, 2, 3, 0]));
        let c = counts(&s, 4);
        assert_eq!(c[3], 0);
        // 4093 = 682 rounds of 6 turns + 1.
        assert_eq!(c, [683, 1364, 2046, 0]);
        // gcd: 10,20 is 1,2.
        s.rebuild(&specs(&[10, 20]));
        assert_eq!(counts(&s, 2), [1365, 2728]);
    }

    #[test]
    fn rshift_caps_turns() {
        let mut s = Mh::new(SchedFlags::default(), 251);
        // max/gcd = 65535 -> 16 bits, shift 10: turns 63 and 1 (1 >> 10 = 0 -> 1).
        s.rebuild(&specs(&[65535, 1]));
        let c = counts(&s, 2);
        assert_eq!(c.iter().sum::<usize>(), 251);
        assert!(c[1] >= 3 && c[1] <= 4, "{c:?}");
    }

    #[test]
    fn empty_cases() {
        let mut s = Mh::new(SchedFlags::default(), 251);
        s.rebuild(&[]);
        assert_eq!(s.pick(&flow(1), &[]), None);
        s.rebuild(&specs(&[0, 0]));
        assert!(s.table.is_empty());
        assert_eq!(s.pick(&flow(1), &loads(&[1, 1])), None);
    }

    #[test]
    fn odd_sizes_do_not_panic() {
        for m in [0u32, 1, 2, 4, 6, 100, 251] {
            let mut s = Mh::new(SchedFlags { fallback: true, port: true }, m);
            s.rebuild(&specs(&[1, 2, 3]));
            let l = loads(&[1, 2, 3]);
            for a in 0..50 {
                let got = s.pick(&flow(a), &l);
                if m == 0 {
                    assert_eq!(got, None);
                } else if m == 1 || m == 251 {
                    assert!(got.is_some_and(|i| i < 3));
                } else {
                    // Not prime: the table may keep empty slots, but nothing panics.
                    assert!(got.is_none_or(|i| i < 3));
                }
            }
            assert_eq!(s.pick(&flow(1), &[]), None);
        }
    }

    #[test]
    fn lookup_and_fallback() {
        let mut s = Mh::new(SchedFlags::default(), 251);
        s.rebuild(&specs(&[1, 1, 1]));
        let mut l = loads(&[1, 1, 1]);
        let f = flow(0xc0a8_0001);
        let ihash = kernel_hsiphash_u32(0xc0a8_0001, HASH1.0, HASH1.1) % 251;
        let want = s.table[ihash as usize] as usize;
        assert_eq!(s.pick(&f, &l), Some(want));
        l[want].overloaded = true;
        assert_eq!(s.pick(&f, &l), None);
        let mut fb = Mh::new(SchedFlags { fallback: true, port: false }, 251);
        fb.rebuild(&specs(&[1, 1, 1]));
        let got = fb.pick(&f, &l);
        assert!(got.is_some_and(|i| i != want), "{got:?}");
        assert_eq!(fb.pick(&f, &loads(&[0, 0, 0])), None);
    }
}
