//! Destination-hashing scheduling (IPVS `ip_vs_dh.c`).
//!
//! A table of 256 buckets; rebuild gives each server one bucket in list order, wrapping around
//! the list until every bucket is set (weights are ignored; no server = every bucket empty).
//!
//! ```text
//! server = bucket[hash_32(daddr, 8)]   if it is available (weight > 0, not overloaded)
//!          None                        otherwise (dh has no fallback)
//! ```

use super::sh::bucket_available;
use super::{hash_32, DestLoad, DestSpec, Flow};

const DH_TAB_SIZE: usize = 256;
const DH_TAB_BITS: u32 = 8;
const DH_TAB_MASK: u32 = DH_TAB_SIZE as u32 - 1;
const EMPTY: u32 = u32::MAX;

/// Destination-hashing state: the bucket table (server index per bucket, `u32::MAX` = none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dh {
    buckets: [u32; DH_TAB_SIZE],
}

impl Default for Dh {
    fn default() -> Self {
        Dh { buckets: [EMPTY; DH_TAB_SIZE] }
    }
}

impl Dh {
    /// `ip_vs_dh_reassign`.
    pub fn rebuild(&mut self, dests: &[DestSpec]) {
        let n = dests.len();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b = if n == 0 { EMPTY } else { u32::try_from(i % n).unwrap_or(EMPTY) };
        }
    }

    /// `ip_vs_dh_schedule`.
    #[inline]
    pub fn pick(&mut self, flow: &Flow, loads: &[DestLoad]) -> Option<usize> {
        let h = hash_32(flow.daddr, DH_TAB_BITS) & DH_TAB_MASK;
        let idx = self.buckets[h as usize];
        if bucket_available(loads, idx) {
            Some(idx as usize)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    fn dst(daddr: u32) -> Flow {
        Flow { proto: 17, saddr: 0x0101_0101, sport: 999, daddr, dport: 53 }
    }

    #[test]
    fn one_bucket_per_server() {
        let mut s = Dh::default();
        let specs = [DestSpec::default(), DestSpec::default(), DestSpec::default()];
        s.rebuild(&specs);
        assert_eq!(&s.buckets[..7], &[0, 1, 2, 0, 1, 2, 0]);
        let c0 = s.buckets.iter().filter(|&&b| b == 0).count();
        assert_eq!(c0, 86);
        s.rebuild(&[]);
        assert_eq!(s.pick(&dst(1), &[]), None);
    }

    #[test]
    fn hash_and_availability() {
        let mut s = Dh::default();
        s.rebuild(&[DestSpec::default(); 256]);
        let mut l = loads(&[1; 256]);
        let d = 0xc0a8_0101u32;
        let h = (d.wrapping_mul(0x61C8_8647) >> 24) as usize;
        assert_eq!(s.pick(&dst(d), &l), Some(h));
        l[h].overloaded = true;
        assert_eq!(s.pick(&dst(d), &l), None);
        l[h].overloaded = false;
        l[h].weight = 0;
        assert_eq!(s.pick(&dst(d), &l), None);
        assert_eq!(s.pick(&dst(d), &l[..h]), None);
    }
}
