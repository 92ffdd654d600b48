//! Round-robin scheduling (IPVS `ip_vs_rr.c`).
//!
//! The scheduler remembers the last server it picked. A pick walks the list forward from the
//! server after it (wrapping around to the head, at most one full turn) and returns the first
//! *available* server (weight > 0 and not overloaded). From a fresh state the walk starts at the
//! head, so the first pick is the first available server: weights 1,1,1 give A B C A B C.
//! Weights only matter as 0 (quiesced) vs > 0.

use super::{DestLoad, DestSpec};

/// Round-robin state: the index of the last picked server (`None` = the list head).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rr {
    last: Option<usize>,
}

impl Rr {
    /// The server list changed: keep the position if it still names a server, else go back to
    /// the head.
    pub fn rebuild(&mut self, dests: &[DestSpec]) {
        if let Some(i) = self.last {
            if i >= dests.len() {
                self.last = None;
            }
        }
    }

    /// The list changed from `old` to `new` (server ids in list order): the position follows
    /// the server last picked, as IPVS's list pointer does; if that server was deleted, it
    /// moves to the server before it (`ip_vs_rr_del_dest`), or back to the head.
    pub fn follow(&mut self, old: &[u16], new: &[u16]) {
        let Some(i) = self.last else { return };
        self.last = old
            .get(..=i.min(old.len().saturating_sub(1)))
            .unwrap_or(&[])
            .iter()
            .rev()
            .find_map(|id| new.iter().position(|n| n == id));
    }

    /// The next available server after the last one picked, or `None` when none is available.
    #[inline]
    pub fn pick(&mut self, loads: &[DestLoad]) -> Option<usize> {
        let n = loads.len();
        let start = match self.last {
            Some(i) if i < n => i + 1,
            _ => 0,
        };
        // Walk start..n, then 0..start: every server exactly once, the last picked one last.
        let (tail, head) = (loads.get(start..).unwrap_or(&[]), loads.get(..start).unwrap_or(&[]));
        let found = tail
            .iter()
            .position(DestLoad::available)
            .map(|k| start + k)
            .or_else(|| head.iter().position(DestLoad::available));
        if found.is_some() {
            self.last = found;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(weight: u32) -> DestLoad {
        DestLoad { weight, ..DestLoad::default() }
    }

    fn seq(rr: &mut Rr, loads: &[DestLoad], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| rr.pick(loads)).collect()
    }

    #[test]
    fn cycles_in_order() {
        let mut rr = Rr::default();
        let loads = [l(1), l(1), l(1)];
        let got = seq(&mut rr, &loads, 7);
        let want = [0, 1, 2, 0, 1, 2, 0].map(Some);
        assert_eq!(got, want);
    }

    #[test]
    fn skips_unavailable() {
        let mut rr = Rr::default();
        let mut loads = [l(0), l(1), l(5), l(1)];
        loads[2].overloaded = true;
        assert_eq!(seq(&mut rr, &loads, 4), [1, 3, 1, 3].map(Some));
        loads[2].overloaded = false;
        assert_eq!(seq(&mut rr, &loads, 3), [1, 2, 3].map(Some));
    }

    #[test]
    fn none_available() {
        let mut rr = Rr::default();
        assert_eq!(rr.pick(&[]), None);
        assert_eq!(rr.pick(&[l(0), l(0)]), None);
        // The position is kept when nothing was found.
        let loads = [l(1), l(1), l(1)];
        assert_eq!(rr.pick(&loads), Some(0));
        assert_eq!(rr.pick(&[l(0), l(0), l(0)]), None);
        assert_eq!(rr.pick(&loads), Some(1));
    }

    #[test]
    fn rebuild_keeps_position_when_it_fits() {
        let mut rr = Rr::default();
        let loads = [l(1), l(1), l(1)];
        assert_eq!(seq(&mut rr, &loads, 2), [0, 1].map(Some));
        rr.rebuild(&[DestSpec::default(); 3]);
        assert_eq!(rr.pick(&loads), Some(2));
        rr.rebuild(&[DestSpec::default(); 2]);
        assert_eq!(rr.pick(&loads[..2]), Some(0));
    }

    #[test]
    fn loads_shorter_than_position() {
        let mut rr = Rr::default();
        let loads = [l(1), l(1), l(1), l(1)];
        assert_eq!(seq(&mut rr, &loads, 4), [0, 1, 2, 3].map(Some));
        assert_eq!(rr.pick(&loads[..2]), Some(0));
        assert_eq!(rr.pick(&loads[..2]), Some(1));
    }

    #[test]
    fn the_position_follows_the_server_through_list_changes() {
        let l = |n: usize| vec![DestLoad { weight: 1, ..DestLoad::default() }; n];
        let mut rr = Rr::default();
        // A B C: picks A, B.
        assert_eq!(seq(&mut rr, &l(3), 2), [Some(0), Some(1)]);
        // D added at the head: D A B C; the next after B is C.
        rr.follow(&[1, 2, 3], &[4, 1, 2, 3]);
        assert_eq!(rr.pick(&l(4)), Some(3));
        // C (the last picked) deleted: the position moves to B, so the next is D (wrapping).
        rr.follow(&[4, 1, 2, 3], &[4, 1, 2]);
        assert_eq!(rr.pick(&l(3)), Some(0));
        // Everything before and at the position gone: back to the head.
        rr.follow(&[4, 1, 2], &[7]);
        assert_eq!(rr.pick(&l(1)), Some(0));
    }
}
