//! Shortest-expected-delay scheduling (IPVS `ip_vs_sed.c`).
//!
//! ```text
//! overhead(d) = active(d) + 1          (inactive connections are ignored)
//! pick        = the server with the least overhead(d) / weight(d)
//! ```
//!
//! Same walk as wlc: the first available server (weight > 0, not overloaded) becomes `least`;
//! every later server `d` that is not overloaded replaces it when
//! `overhead(least) * weight(d) > overhead(d) * weight(least)` (128-bit products, no division).
//! Ties keep the earlier server.

use super::wlc::least_weighted;
use super::DestLoad;

/// Shortest-expected-delay scheduler (stateless).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sed;

/// `ip_vs_sed_dest_overhead`: active + 1.
#[inline(always)]
pub(crate) fn sed_overhead(d: &DestLoad) -> u64 {
    d.active as u64 + 1
}

impl Sed {
    /// `ip_vs_sed_schedule`.
    #[inline]
    pub fn pick(&mut self, loads: &[DestLoad]) -> Option<usize> {
        least_weighted(loads, sed_overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(weight: u32, active: u32, inactive: u32) -> DestLoad {
        DestLoad { weight, active, inactive, overloaded: false, persist: 0 }
    }

    #[test]
    fn expected_delay() {
        let mut s = Sed;
        // (0+1)/1 vs (0+1)/2: the heavier idle server wins (unlike wlc, which ties at 0).
        assert_eq!(s.pick(&[l(1, 0, 0), l(2, 0, 0)]), Some(1));
        // Inactive ignored.
        assert_eq!(s.pick(&[l(1, 0, 1000), l(1, 1, 0)]), Some(0));
        // 2/1 vs 4/2: tie keeps the first.
        assert_eq!(s.pick(&[l(1, 1, 0), l(2, 3, 0)]), Some(0));
    }

    #[test]
    fn unavailable_skipped() {
        let mut s = Sed;
        assert_eq!(s.pick(&[]), None);
        assert_eq!(s.pick(&[l(0, 0, 0)]), None);
        assert_eq!(s.pick(&[l(0, 0, 0), l(1, 9, 0), l(0, 0, 0)]), Some(1));
        let mut o = l(5, 0, 0);
        o.overloaded = true;
        assert_eq!(s.pick(&[l(1, 9, 0), o]), Some(0));
    }

    #[test]
    fn accumulating_active() {
        let mut s = Sed;
        let mut loads = [l(1, 0, 0), l(3, 0, 0)];
        let mut seq = Vec::new();
        for _ in 0..8 {
            let i = s.pick(&loads).unwrap_or(usize::MAX);
            seq.push(i);
            loads[i].active += 1;
        }
        // B(1/3) A(1/1 vs 2/3) B.. : expected delays
        assert_eq!(seq, [1, 1, 0, 1, 1, 1, 0, 1]);
    }
}
