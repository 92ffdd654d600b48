//! Per-server load (active, inactive, persistence templates, overload) as the schedulers read
//! it, kept by the shard as connections come, change state and go.
//!
//! Connections name their real server by stable slot; schedulers walk the live servers in
//! list order. So each service keeps its loads in list order (the live servers first, what
//! [`Loads::of`] returns) followed by tombstoned servers that still have connections, and a
//! slot -> position map. A new snapshot re-lays a service in O(its servers), never touching
//! a connection.

use crate::model::DestLoad;

/// Position meaning "no load kept for this slot".
const NO_POS: u16 = u16::MAX;

/// One real server's settings as the control plane gives them, by slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotSpec {
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
}

#[derive(Clone, Debug, Default)]
struct ServiceLoads {
    /// Live servers in list order, then tombstones still referenced.
    loads: Vec<DestLoad>,
    /// (u_threshold, l_threshold) of each position.
    limits: Vec<(u32, u32)>,
    /// Slot -> position in `loads` (NO_POS when none).
    pos: Vec<u16>,
    live: usize,
}

/// The loads of every service of a shard.
#[derive(Clone, Debug, Default)]
pub struct Loads {
    services: Vec<ServiceLoads>,
}

impl Loads {
    /// Lays out service `svc` for a new snapshot: `order` lists its live servers' slots in
    /// list order, `slots[slot]` their settings. Counts follow their slot; a tombstoned
    /// server keeps its counts while connections still name it (they end at their next
    /// packet or timer), so a server deleted and added again finds them.
    pub fn set_service(&mut self, svc: u16, order: &[u16], slots: &[SlotSpec]) {
        let svc = svc as usize;
        if self.services.len() <= svc {
            self.services.resize_with(svc + 1, ServiceLoads::default);
        }
        let old = std::mem::take(&mut self.services[svc]);
        let old_load = |slot: u16| match old.pos.get(slot as usize) {
            Some(&p) if p != NO_POS => old.loads.get(p as usize).copied(),
            _ => None,
        };
        let mut s = ServiceLoads {
            loads: Vec::with_capacity(order.len()),
            limits: Vec::with_capacity(order.len()),
            pos: vec![NO_POS; slots.len().max(old.pos.len())],
            live: order.len(),
        };
        for &slot in order {
            let spec = slots.get(slot as usize).copied().unwrap_or_default();
            let mut l = old_load(slot).unwrap_or_default();
            l.weight = spec.weight;
            // New thresholds decide at once (IPVS `__ip_vs_update_dest` clears the flag): no
            // limit, or below it, is not overloaded.
            let total = l.active as u64 + l.inactive as u64;
            if spec.u_threshold == 0 || total < spec.u_threshold as u64 {
                l.overloaded = false;
            }
            if let Some(p) = s.pos.get_mut(slot as usize) {
                *p = s.loads.len() as u16;
            }
            s.loads.push(l);
            s.limits.push((spec.u_threshold, spec.l_threshold));
        }
        for slot in 0..old.pos.len() as u16 {
            if s.pos[slot as usize] != NO_POS {
                continue;
            }
            if let Some(mut l) = old_load(slot).filter(|l| l.active + l.inactive + l.persist > 0) {
                l.weight = 0;
                s.pos[slot as usize] = s.loads.len() as u16;
                s.loads.push(l);
                s.limits.push((0, 0));
            }
        }
        self.services[svc] = s;
    }

    /// The live servers' loads of `svc`, in list order (what its scheduler reads).
    #[inline]
    pub fn of(&self, svc: u16) -> &[DestLoad] {
        self.services.get(svc as usize).map_or(&[], |s| s.loads.get(..s.live).unwrap_or(&[]))
    }

    /// The load of one server by slot, live or tombstoned.
    #[inline]
    pub fn get(&self, svc: u16, slot: u16) -> Option<&DestLoad> {
        let s = self.services.get(svc as usize)?;
        let p = *s.pos.get(slot as usize)?;
        s.loads.get(p as usize)
    }

    /// The load and thresholds of one server by slot.
    #[inline]
    pub fn get_mut(&mut self, svc: u16, slot: u16) -> Option<(&mut DestLoad, (u32, u32))> {
        let s = self.services.get_mut(svc as usize)?;
        let p = *s.pos.get(slot as usize)? as usize;
        let lim = s.limits.get(p).copied().unwrap_or((0, 0));
        s.loads.get_mut(p).map(|l| (l, lim))
    }

    /// Every service's loads by slot (`[svc][slot]`, default where none is kept): the
    /// control plane's view, allocated.
    pub fn by_slot(&self) -> Vec<Vec<DestLoad>> {
        self.services
            .iter()
            .map(|s| {
                s.pos
                    .iter()
                    .map(|&p| if p == NO_POS { None } else { s.loads.get(p as usize).copied() })
                    .map(Option::unwrap_or_default)
                    .collect()
            })
            .collect()
    }

    /// A connection came to server `slot`: it starts inactive; the upper threshold may
    /// mark the server overloaded.
    pub fn bind(&mut self, svc: u16, slot: u16) {
        if let Some((l, (u, _))) = self.get_mut(svc, slot) {
            l.inactive += 1;
            if u != 0 && l.active + l.inactive >= u {
                l.overloaded = true;
            }
        }
    }

    /// A connection of server `slot` ended; the server stops being overloaded below the
    /// lower threshold (or 3/4 of the upper one when no lower is set), as IPVS does.
    pub fn unbind(&mut self, svc: u16, slot: u16, inactive: bool) {
        if let Some((l, (u, lt))) = self.get_mut(svc, slot) {
            if inactive {
                l.inactive = l.inactive.saturating_sub(1);
            } else {
                l.active = l.active.saturating_sub(1);
            }
            let total = l.active as u64 + l.inactive as u64;
            if l.overloaded && (u == 0 || (lt != 0 && total < lt as u64) || (lt == 0 && total * 4 < u as u64 * 3)) {
                l.overloaded = false;
            }
        }
    }

    /// A connection became active (`delta` 1) or inactive (-1).
    #[inline]
    pub fn shift(&mut self, svc: u16, slot: u16, delta: i8) {
        if let Some((l, _)) = self.get_mut(svc, slot) {
            if delta > 0 {
                l.active += 1;
                l.inactive = l.inactive.saturating_sub(1);
            } else if delta < 0 {
                l.active = l.active.saturating_sub(1);
                l.inactive += 1;
            }
        }
    }

    /// A persistence template for server `slot` was created (1) or freed (-1).
    pub fn persist(&mut self, svc: u16, slot: u16, delta: i8) {
        if let Some((l, _)) = self.get_mut(svc, slot) {
            l.persist = if delta > 0 { l.persist + 1 } else { l.persist.saturating_sub(1) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(w: u32) -> SlotSpec {
        SlotSpec { weight: w, ..SlotSpec::default() }
    }

    #[test]
    fn counts_follow_slots_through_reorders_deletes_and_revivals() {
        let mut l = Loads::default();
        l.set_service(0, &[0, 1, 2], &[spec(1), spec(2), spec(3)]);
        l.bind(0, 0);
        l.bind(0, 2);
        l.bind(0, 2);
        assert_eq!(l.of(0).iter().map(|d| d.inactive).collect::<Vec<_>>(), [1, 0, 2]);
        // Reordered: the list follows the order, counts follow the slots.
        l.set_service(0, &[2, 0, 1], &[spec(1), spec(2), spec(3)]);
        assert_eq!(l.of(0).iter().map(|d| (d.weight, d.inactive)).collect::<Vec<_>>(), [(3, 2), (1, 1), (2, 0)]);
        // Slot 2 deleted: out of the list, its counts kept for its connections.
        l.set_service(0, &[0, 1], &[spec(1), spec(2)]);
        assert_eq!(l.of(0).len(), 2);
        assert_eq!(l.get(0, 2).map(|d| d.inactive), Some(2));
        l.unbind(0, 2, true);
        // Added again: it finds its remaining count.
        l.set_service(0, &[0, 1, 2], &[spec(1), spec(2), spec(5)]);
        assert_eq!(l.of(0)[2].inactive, 1);
        assert_eq!(l.of(0)[2].weight, 5);
        // A deleted slot with nothing left is dropped; a new service slot starts empty.
        l.unbind(0, 2, true);
        l.set_service(0, &[0], &[spec(1)]);
        assert_eq!(l.get(0, 2), None);
        l.set_service(3, &[0], &[spec(1)]);
        assert_eq!(l.of(3).len(), 1);
        assert!(l.of(2).is_empty());
        assert_eq!(l.by_slot()[0][0].inactive, 1);
    }

    #[test]
    fn thresholds_mark_and_clear_overload() {
        let mut l = Loads::default();
        l.set_service(0, &[0], &[SlotSpec { weight: 1, u_threshold: 2, l_threshold: 0 }]);
        l.bind(0, 0);
        assert!(!l.of(0)[0].overloaded);
        l.bind(0, 0);
        assert!(l.of(0)[0].overloaded);
        l.unbind(0, 0, true);
        // 1 * 4 < 2 * 3: below 3/4 of the upper threshold.
        assert!(!l.of(0)[0].overloaded);
    }
}
