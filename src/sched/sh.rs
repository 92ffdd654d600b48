//! Source-hashing scheduling (IPVS `ip_vs_sh.c`).
//!
//! A table of 256 buckets, each naming a server. Rebuild walks the servers in list order (wrapping
//! around the list until every bucket is set); each server fills `weight` consecutive buckets (a
//! weight-0 server still fills one). With no server every bucket is empty. A pick hashes the
//! client:
//!
//! ```text
//! ihash  = hash_32(saddr + (sh-port ? sport : 0), 8)      (u32 wrapping add)
//! server = bucket[ihash]       if it is available (weight > 0, not overloaded), else
//!          None                without sh-fallback, or with sh-fallback the first available of
//!          bucket[(((offset + ihash) & 255) + ihash) & 255] for offset in 0..256
//! ```
//!
//! The fallback walk is the kernel's `ip_vs_sh_get_fallback` (`roffset = (offset + ihash) % 256`
//! fed back into the bucket hash as its offset), so it starts at `2 * ihash` and visits all 256
//! buckets. Weights 2,1 give 171 / 85 buckets (pattern A A B).

use super::{hash_32, DestLoad, DestSpec, Flow};
use crate::model::SchedFlags;

/// Number of buckets (`IP_VS_SH_TAB_SIZE`).
pub const SH_TAB_SIZE: usize = 256;
const SH_TAB_BITS: u32 = 8;
const SH_TAB_MASK: u32 = SH_TAB_SIZE as u32 - 1;
const EMPTY: u32 = u32::MAX;

/// Source-hashing state: the bucket table (server index per bucket, `u32::MAX` = none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sh {
    flags: SchedFlags,
    buckets: [u32; SH_TAB_SIZE],
}

#[inline(always)]
pub(crate) fn bucket_available(loads: &[DestLoad], idx: u32) -> bool {
    loads.get(idx as usize).is_some_and(DestLoad::available)
}

impl Sh {
    /// An empty table (every bucket empty until [`Sh::rebuild`]).
    pub fn new(flags: SchedFlags) -> Self {
        Sh { flags, buckets: [EMPTY; SH_TAB_SIZE] }
    }

    /// `ip_vs_sh_reassign`.
    pub fn rebuild(&mut self, dests: &[DestSpec]) {
        let n = dests.len();
        let mut p = 0usize;
        let mut count = 0u32;
        for b in self.buckets.iter_mut() {
            let Some(d) = dests.get(p) else {
                *b = EMPTY;
                continue;
            };
            *b = u32::try_from(p).unwrap_or(EMPTY);
            count += 1;
            if count >= d.weight {
                count = 0;
                p += 1;
                if p >= n {
                    p = 0;
                }
            }
        }
    }

    /// The bucket of `flow`'s source (before any fallback).
    #[inline(always)]
    fn hashkey(&self, flow: &Flow) -> u32 {
        let port = if self.flags.port { flow.sport as u32 } else { 0 };
        hash_32(flow.saddr.wrapping_add(port), SH_TAB_BITS) & SH_TAB_MASK
    }

    #[inline(always)]
    fn bucket(&self, h: u32) -> u32 {
        self.buckets[(h & SH_TAB_MASK) as usize]
    }

    /// `ip_vs_sh_schedule`: `ip_vs_sh_get` or, with sh-fallback, `ip_vs_sh_get_fallback`.
    #[inline]
    pub fn pick(&mut self, flow: &Flow, loads: &[DestLoad]) -> Option<usize> {
        let ihash = self.hashkey(flow);
        let first = self.bucket(ihash);
        if first == EMPTY {
            return None;
        }
        if bucket_available(loads, first) {
            return Some(first as usize);
        }
        if !self.flags.fallback {
            return None;
        }
        for offset in 0..SH_TAB_SIZE as u32 {
            let roffset = (offset + ihash) & SH_TAB_MASK;
            let idx = self.bucket(roffset + ihash);
            if bucket_available(loads, idx) {
                return Some(idx as usize);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    fn flow(saddr: u32, sport: u16) -> Flow {
        Flow { proto: 6, saddr, sport, daddr: 0xc0a8_0001, dport: 80 }
    }
    fn counts(s: &Sh, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &b in s.buckets.iter() {
            c[b as usize] += 1;
        }
        c
    }

    #[test]
    fn fill_follows_weights() {
        let mut s = Sh::new(SchedFlags::default());
        s.rebuild(&specs(&[2, 1]));
        assert_eq!(&s.buckets[..6], &[0, 0, 1, 0, 0, 1]);
        assert_eq!(counts(&s, 2), [171, 85]);
        s.rebuild(&specs(&[1, 0, 1]));
        assert_eq!(counts(&s, 3), [86, 85, 85]);
        s.rebuild(&specs(&[300, 1]));
        assert_eq!(counts(&s, 2), [256, 0]);
        s.rebuild(&[]);
        assert!(s.buckets.iter().all(|&b| b == EMPTY));
        assert_eq!(s.pick(&flow(1, 1), &[]), None);
    }

    #[test]
    fn hash_is_the_kernels() {
        let mut s = Sh::new(SchedFlags::default());
        // One bucket per server: bucket i -> server i.
        s.rebuild(&specs(&[1; 256]));
        let l = loads(&[1; 256]);
        for saddr in [0u32, 1, 0x0a00_0001, 0xffff_ffff, 0xc0a8_0a0b] {
            let want = (saddr.wrapping_mul(0x61C8_8647) >> 24) as usize;
            assert_eq!(s.pick(&flow(saddr, 1234), &l), Some(want));
        }
        let mut s = Sh::new(SchedFlags { port: true, fallback: false });
        s.rebuild(&specs(&[1; 256]));
        let want = (0x0a00_0001u32 + 1234).wrapping_mul(0x61C8_8647) >> 24;
        assert_eq!(s.pick(&flow(0x0a00_0001, 1234), &l), Some(want as usize));
    }

    #[test]
    fn fallback_walk_is_the_kernels() {
        let f = SchedFlags { fallback: true, port: false };
        let mut s = Sh::new(f);
        s.rebuild(&specs(&[1; 256]));
        let mut l = loads(&[1; 256]);
        let fl = flow(0x0a00_0001, 0);
        let ihash = (0x0a00_0001u32.wrapping_mul(0x61C8_8647) >> 24) as usize;
        l[ihash].overloaded = true;
        // offset 0: bucket (ihash + ihash) & 255.
        let second = (2 * ihash) & 255;
        let want = if second == ihash { (second + 1) & 255 } else { second };
        assert_eq!(s.pick(&fl, &l), Some(want));
        // Without fallback: None.
        let mut s2 = Sh::new(SchedFlags::default());
        s2.rebuild(&specs(&[1; 256]));
        assert_eq!(s2.pick(&fl, &l), None);
        // Nothing available: None after 256 tries.
        let none = loads(&[0; 256]);
        assert_eq!(s.pick(&fl, &none), None);
    }

    #[test]
    fn short_loads_are_unavailable() {
        let mut s = Sh::new(SchedFlags { fallback: true, port: false });
        s.rebuild(&specs(&[1, 1, 1, 1]));
        let l = loads(&[1]);
        for a in 0..100u32 {
            assert_eq!(s.pick(&flow(a, 0), &l), Some(0));
        }
        assert_eq!(s.pick(&flow(7, 0), &[]), None);
    }
}
