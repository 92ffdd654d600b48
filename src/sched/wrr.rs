//! Weighted round-robin scheduling (IPVS `ip_vs_wrr.c`).
//!
//! State: `cl` (the last picked server, or the list head), `cw` (current weight), `mw` (maximum
//! weight) and `di` (decreasing interval):
//!
//! ```text
//! di = gcd(weights > 0)            (1 when no weight is > 0)
//! mw = max(weights) - (di - 1)
//! init: cl = head, cw = mw
//! ```
//!
//! A pick continues after `cl` to the end of the list and takes the first server that is not
//! overloaded with `weight >= cw` (and weight > 0). At the end of the list `cw -= di`; when
//! `cw <= 0` it wraps to `mw`. Like the kernel, the walk stops with `None` once every server was
//! checked for weight >= 1 (`last_pass` / `restarted` / `stop`), so it never loops forever.
//! Weights 5,3 give A A A B A B A B; weights 4,3,2 give A A B A B C A B C.
//!
//! A rebuild (a server added, deleted or its weight changed: `ip_vs_wrr_dest_changed`, which the
//! kernel runs after each such change) sets `cl` to the head and recomputes `di` and `mw`:
//!
//! ```text
//! cw > mw or cw == 0:  cw = mw
//! else if di > 1:      cw = (cw / di) * di + 1
//! ```
//!
//! A service is built as the kernel builds one: `init_svc` on the empty service, then
//! `dest_changed` after each server added (`Scheduler::hook_steps`), so weights 3,2,1 start
//! with one pass over all (cw stays 1): A B C A A B A B C.
//!
//! `mw`/`di` come from the rebuild weights; the weight compared with `cw` is the live one from
//! [`DestLoad`] (0 = quiesced, never picked).

use super::{DestLoad, DestSpec};

/// Weighted round-robin state (`struct ip_vs_wrr_mark`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wrr {
    /// Last picked server; `None` = the list head.
    cl: Option<usize>,
    /// Current weight.
    cw: i64,
    /// Maximum weight minus (di - 1).
    mw: i64,
    /// Decreasing interval: gcd of the weights > 0.
    di: i64,
    /// Whether the first rebuild (the kernel's `init_svc`) has happened.
    init: bool,
}

impl Wrr {
    /// The first call is the kernel's `init_svc` (`cw = mw`); later calls are
    /// `dest_changed` (see the module doc).
    pub fn rebuild(&mut self, dests: &[DestSpec]) {
        let g = super::weights_gcd(dests);
        let maxw = dests.iter().map(|d| d.weight).max().unwrap_or(0);
        self.changed(maxw, g);
    }

    /// [`Wrr::rebuild`] for a list whose largest weight is `maxw` and whose weights above 0
    /// have the gcd `g` (0: none).
    pub fn changed(&mut self, maxw: u32, g: u32) {
        let di = if g == 0 { 1 } else { g as i64 };
        let maxw = maxw as i64;
        self.cl = None;
        self.di = di;
        self.mw = maxw - (di - 1);
        if !self.init {
            self.init = true;
            self.cw = self.mw;
        } else if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if di > 1 {
            self.cw = (self.cw / di) * di + 1;
        }
    }

    /// `ip_vs_wrr_schedule`.
    pub fn pick(&mut self, loads: &[DestLoad]) -> Option<usize> {
        if self.mw <= 0 || self.di <= 0 {
            return None;
        }
        let n = loads.len();
        let last = self.cl;
        let mut stop: Option<usize> = None;
        let mut pos = self.cl;
        let mut last_pass = false;
        let mut restarted = false;
        // Set once a walk over the whole list (from the head) found no server with weight > 0
        // that is not overloaded: from then on no walk can find one either, so walks only need
        // to look for `stop` (keeps the all-overloaded case cheap with large weights).
        let mut none_available = false;
        loop {
            let start = match pos {
                None => 0,
                Some(i) => i.saturating_add(1),
            };
            if none_available {
                if let Some(s) = stop {
                    if s >= start && s < n {
                        self.cl = Some(s);
                        return None;
                    }
                }
            } else {
                let mut any = false;
                let rest = loads.get(start..).unwrap_or(&[]);
                for (i, d) in (start..).zip(rest) {
                    if d.available() {
                        any = true;
                        if d.weight as i64 >= self.cw {
                            self.cl = Some(i);
                            return Some(i);
                        }
                    }
                    if stop == Some(i) {
                        self.cl = Some(i);
                        return None;
                    }
                }
                if start == 0 && !any {
                    none_available = true;
                }
            }
            // Reached the end of the list: the kernel's `dest` is now the head.
            pos = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                restarted = false;
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    fn specs(w: &[u32]) -> Vec<DestSpec> {
        w.iter().map(|&weight| DestSpec { weight, ..DestSpec::default() }).collect()
    }
    fn fresh(w: &[u32]) -> Wrr {
        let mut s = Wrr::default();
        s.rebuild(&specs(w));
        s
    }
    fn seq(s: &mut Wrr, l: &[DestLoad], n: usize) -> String {
        (0..n)
            .map(|_| match s.pick(l) {
                Some(i) => (b'A' + i as u8) as char,
                None => '-',
            })
            .collect()
    }

    #[test]
    fn kernel_sequences() {
        assert_eq!(seq(&mut fresh(&[5, 3]), &loads(&[5, 3]), 16), "AAABABABAAABABAB");
        assert_eq!(seq(&mut fresh(&[4, 3, 2]), &loads(&[4, 3, 2]), 18), "AABABCABCAABABCABC");
        assert_eq!(seq(&mut fresh(&[1, 1, 1]), &loads(&[1, 1, 1]), 6), "ABCABC");
        // gcd: 4,2 behaves like 2,1.
        assert_eq!(seq(&mut fresh(&[4, 2]), &loads(&[4, 2]), 6), "AABAAB");
    }

    #[test]
    fn empty_and_zero() {
        assert_eq!(fresh(&[]).pick(&[]), None);
        assert_eq!(fresh(&[0, 0]).pick(&loads(&[0, 0])), None);
        let mut s = fresh(&[0, 2, 1]);
        assert_eq!(seq(&mut s, &loads(&[0, 2, 1]), 6), "BBCBBC");
    }

    #[test]
    fn overload_and_quiesce_terminate() {
        let mut s = fresh(&[5, 3]);
        let mut l = loads(&[5, 3]);
        l[0].overloaded = true;
        assert_eq!(seq(&mut s, &l, 4), "BBBB");
        l[1].overloaded = true;
        assert_eq!(seq(&mut s, &l, 3), "---");
        // Huge weights, all overloaded: still terminates.
        let mut s = fresh(&[65535, 65521]);
        let mut l = loads(&[65535, 65521]);
        l[0].overloaded = true;
        l[1].overloaded = true;
        assert_eq!(seq(&mut s, &l, 3), "---");
        l[1].overloaded = false;
        assert_eq!(s.pick(&l), Some(1));
        // Live weight 0 (quiesced before the rebuild).
        let mut s = fresh(&[5, 3]);
        assert_eq!(seq(&mut s, &loads(&[0, 3]), 4), "BBBB");
    }

    #[test]
    fn rebuild_weight_change() {
        let mut s = fresh(&[5, 3]);
        let l = loads(&[5, 3]);
        assert_eq!(seq(&mut s, &l, 3), "AAA"); // cw = 3
                                               // mw = 2 < cw: cw = mw, cl back to the head.
        s.rebuild(&specs(&[2, 1]));
        assert_eq!(seq(&mut s, &loads(&[2, 1]), 7), "AABAABA");
        // di = 2 > 1: cw = (3 / 2) * 2 + 1 = 3.
        let mut s = fresh(&[4, 2]);
        assert_eq!(seq(&mut s, &loads(&[4, 2]), 1), "A"); // mw = 4 - 1 = 3, cw = 3
        s.rebuild(&specs(&[6, 4]));
        assert_eq!(s.cw, 3);
        // mw >= cw: cw kept, cl back to the head.
        let mut s = fresh(&[5, 3]);
        assert_eq!(seq(&mut s, &l, 4), "AAAB"); // cw = 3, cl = B
        s.rebuild(&specs(&[5, 3, 4]));
        assert_eq!(seq(&mut s, &loads(&[5, 3, 4]), 12), "ABCABCABCAAC");
    }

    #[test]
    fn loads_length_mismatch() {
        let mut s = fresh(&[1, 1, 1, 1]);
        let l = loads(&[1, 1, 1, 1]);
        assert_eq!(seq(&mut s, &l, 4), "ABCD");
        assert_eq!(seq(&mut s, &l[..2], 3), "ABA");
        assert_eq!(s.pick(&[]), None);
        let mut s = fresh(&[1, 1]);
        assert_eq!(seq(&mut s, &loads(&[1, 1, 1]), 3), "ABC");
    }
}
