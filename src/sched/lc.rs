//! Least-connection scheduling (IPVS `ip_vs_lc.c`).
//!
//! ```text
//! overhead(d) = active(d) * 256 + inactive(d)
//! pick        = the available server with the least overhead
//! ```
//!
//! Available = weight > 0 and not overloaded; the weight is otherwise ignored. Ties go to the
//! earliest server in list order (strict `<`).

use super::DestLoad;

/// Least-connection scheduler (stateless).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lc;

impl Lc {
    /// `ip_vs_lc_schedule`.
    #[inline]
    pub fn pick(&mut self, loads: &[DestLoad]) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in loads.iter().enumerate() {
            if !d.available() {
                continue;
            }
            let doh = d.overhead();
            match least {
                Some((_, loh)) if doh >= loh => {}
                _ => least = Some((i, doh)),
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(weight: u32, active: u32, inactive: u32) -> DestLoad {
        DestLoad { weight, active, inactive, overloaded: false, persist: 0 }
    }

    #[test]
    fn least_overhead_first_wins_ties() {
        let mut s = Lc;
        assert_eq!(s.pick(&[l(1, 0, 0), l(1, 0, 0)]), Some(0));
        assert_eq!(s.pick(&[l(1, 1, 0), l(1, 0, 255)]), Some(1));
        assert_eq!(s.pick(&[l(1, 1, 0), l(1, 0, 256)]), Some(0));
        // Weight is ignored beyond being > 0.
        assert_eq!(s.pick(&[l(100, 0, 2), l(1, 0, 1)]), Some(1));
    }

    #[test]
    fn unavailable_skipped() {
        let mut s = Lc;
        assert_eq!(s.pick(&[]), None);
        assert_eq!(s.pick(&[l(0, 0, 0), l(0, 0, 0)]), None);
        assert_eq!(s.pick(&[l(0, 0, 0), l(1, 5, 0)]), Some(1));
        let mut o = l(1, 0, 0);
        o.overloaded = true;
        assert_eq!(s.pick(&[o, l(1, 5, 0)]), Some(1));
        assert_eq!(s.pick(&[o]), None);
    }

    #[test]
    fn no_overflow() {
        let mut s = Lc;
        let big = l(u32::MAX, u32::MAX, u32::MAX);
        assert_eq!(s.pick(&[big, big, l(1, u32::MAX, u32::MAX - 1)]), Some(2));
    }
}
