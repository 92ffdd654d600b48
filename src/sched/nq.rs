//! Never-queue scheduling (IPVS `ip_vs_nq.c`).
//!
//! ```text
//! the first available server with active(d) == 0, if any;
//! else the server with the least (active(d) + 1) / weight(d)   (as sed)
//! ```
//!
//! Available = weight > 0 and not overloaded. Inactive connections are ignored. The sed stage
//! compares `overhead(least) * weight(d) > overhead(d) * weight(least)` (128-bit products); ties
//! keep the earlier server.

use super::sed::sed_overhead;
use super::wlc::wide_mul;
use super::DestLoad;

/// Never-queue scheduler (stateless).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nq;

impl Nq {
    /// `ip_vs_nq_schedule`.
    #[inline]
    pub fn pick(&mut self, loads: &[DestLoad]) -> Option<usize> {
        // (index, overhead, weight) of the current least loaded server.
        let mut least: Option<(usize, u64, u64)> = None;
        for (i, d) in loads.iter().enumerate() {
            if !d.available() {
                continue;
            }
            if d.active == 0 {
                return Some(i);
            }
            let doh = sed_overhead(d);
            let dw = d.weight as u64;
            match least {
                Some((_, loh, lw)) if wide_mul(loh, dw) <= wide_mul(doh, lw) => {}
                _ => least = Some((i, doh, dw)),
            }
        }
        least.map(|(i, _, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(weight: u32, active: u32, inactive: u32) -> DestLoad {
        DestLoad { weight, active, inactive, overloaded: false, persist: 0 }
    }

    #[test]
    fn idle_first() {
        let mut s = Nq;
        assert_eq!(s.pick(&[l(5, 1, 0), l(1, 0, 50), l(9, 0, 0)]), Some(1));
        assert_eq!(s.pick(&[l(1, 0, 0), l(2, 0, 0)]), Some(0));
    }

    #[test]
    fn then_sed() {
        let mut s = Nq;
        assert_eq!(s.pick(&[l(1, 1, 0), l(3, 2, 0)]), Some(1));
        assert_eq!(s.pick(&[l(1, 1, 0), l(2, 3, 0)]), Some(0));
    }

    #[test]
    fn unavailable_skipped() {
        let mut s = Nq;
        assert_eq!(s.pick(&[]), None);
        assert_eq!(s.pick(&[l(0, 0, 0), l(0, 0, 0)]), None);
        let mut o = l(5, 0, 0);
        o.overloaded = true;
        assert_eq!(s.pick(&[o, l(0, 0, 0), l(1, 4, 0)]), Some(2));
    }
}
