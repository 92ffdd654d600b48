//! Weighted least-connection scheduling (IPVS `ip_vs_wlc.c`).
//!
//! ```text
//! overhead(d) = active(d) * 256 + inactive(d)
//! pick        = the server with the least overhead(d) / weight(d)
//! ```
//!
//! As in the kernel, the division is done by cross-multiplication: the first available server
//! (weight > 0, not overloaded) becomes `least`; every later server `d` that is not overloaded
//! replaces it when `overhead(least) * weight(d) > overhead(d) * weight(least)`. A weight-0 server
//! can never win that test; ties keep the earlier server. The products are computed in 128 bits
//! so no `u32` input can overflow (the kernel uses `s64`, which is enough for its weights).

use super::DestLoad;

/// Weighted least-connection scheduler (stateless).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wlc;

/// `a * b` without overflow (one 64x64->128 multiply).
#[inline(always)]
pub(crate) fn wide_mul(a: u64, b: u64) -> u128 {
    a as u128 * b as u128
}

/// Shared by wlc and sed: the kernel's two-stage walk with overhead `oh`. The first available
/// server becomes `least`; a later server that is not overloaded replaces it only when strictly
/// better (`loh * w(d) > doh * w(least)`; a weight-0 server can never pass that test).
#[inline(always)]
pub(crate) fn least_weighted(loads: &[DestLoad], oh: impl Fn(&DestLoad) -> u64) -> Option<usize> {
    let first = loads.iter().position(DestLoad::available)?;
    let d = loads.get(first)?;
    let (mut least, mut loh, mut lw) = (first, oh(d), d.weight as u64);
    for (i, d) in loads.iter().enumerate().skip(first + 1) {
        if d.overloaded {
            continue;
        }
        let doh = oh(d);
        let dw = d.weight as u64;
        if wide_mul(loh, dw) > wide_mul(doh, lw) {
            least = i;
            loh = doh;
            lw = dw;
        }
    }
    Some(least)
}

impl Wlc {
    /// `ip_vs_wlc_schedule`.
    #[inline]
    pub fn pick(&mut self, loads: &[DestLoad]) -> Option<usize> {
        least_weighted(loads, DestLoad::overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(weight: u32, active: u32, inactive: u32) -> DestLoad {
        DestLoad { weight, active, inactive, overloaded: false, persist: 0 }
    }

    #[test]
    fn weighted_least() {
        let mut s = Wlc;
        assert_eq!(s.pick(&[l(1, 0, 0), l(2, 0, 0)]), Some(0));
        // 256/1 vs 300/2
        assert_eq!(s.pick(&[l(1, 1, 0), l(2, 0, 300)]), Some(1));
        // 256/1 vs 512/2: tie keeps the first
        assert_eq!(s.pick(&[l(1, 1, 0), l(2, 2, 0)]), Some(0));
        assert_eq!(s.pick(&[l(1, 1, 0), l(2, 2, 0), l(3, 2, 0)]), Some(2));
    }

    #[test]
    fn accumulating_share_follows_weights() {
        let mut s = Wlc;
        let mut loads = [l(3, 0, 0), l(1, 0, 0)];
        let mut count = [0u32; 2];
        for _ in 0..400 {
            let i = s.pick(&loads).unwrap_or(usize::MAX);
            count[i] += 1;
            loads[i].inactive += 1;
        }
        assert_eq!(count, [300, 100]);
    }

    #[test]
    fn unavailable_skipped() {
        let mut s = Wlc;
        assert_eq!(s.pick(&[]), None);
        assert_eq!(s.pick(&[l(0, 0, 0), l(0, 0, 0)]), None);
        assert_eq!(s.pick(&[l(0, 0, 0), l(1, 9, 0), l(0, 0, 0)]), Some(1));
        let mut o = l(5, 0, 0);
        o.overloaded = true;
        assert_eq!(s.pick(&[l(1, 9, 0), o]), Some(0));
        assert_eq!(s.pick(&[o, l(1, 9, 0)]), Some(1));
    }

    #[test]
    fn no_overflow() {
        let mut s = Wlc;
        let a = l(u32::MAX, u32::MAX, u32::MAX);
        let b = l(u32::MAX - 1, u32::MAX, u32::MAX);
        assert_eq!(s.pick(&[b, a]), Some(1));
    }
}
