//! Schedulers with IPVS semantics, one file each.
//!
//! The control plane builds, the data plane looks up: [`Scheduler::rebuild`] runs on a config
//! change with the real servers in list order, [`Scheduler::pick`] runs per new connection with
//! the worker's live per-server load. Integer arithmetic only; no allocation in `pick`.
//!
//! Common rules (IPVS): a server is *available* when its weight is > 0 and it is not
//! overloaded; ties go to the earliest server in list order.

pub mod dh;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod wlc;
pub mod wrr;

pub use crate::model::DestLoad;
use crate::model::{SchedFlags, SchedKind};

/// The identity and weight of one real server, as the control plane configured it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestSpec {
    /// IPv4 address, host byte order.
    pub addr: u32,
    pub port: u16,
    pub weight: u32,
}

/// The fields of a packet's flow that schedulers hash (host byte order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub proto: u8,
    pub saddr: u32,
    pub sport: u16,
    pub daddr: u32,
    pub dport: u16,
}

/// IPVS `hash_32(v, bits)`: multiplicative hash with the golden-ratio constant.
#[inline]
pub fn hash_32(v: u32, bits: u32) -> u32 {
    v.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// Greatest common divisor of the weights that are > 0 (0 when none is).
pub(crate) fn weights_gcd(dests: &[DestSpec]) -> u32 {
    dests.iter().filter(|d| d.weight > 0).fold(0u32, |g, d| {
        let (mut a, mut b) = (d.weight, g);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    })
}

/// Helpers for the schedulers' unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use super::{DestLoad, DestSpec};

    /// Servers 10.0.0.1, 10.0.0.2, ... port 80 with these weights.
    pub fn specs(w: &[u32]) -> Vec<DestSpec> {
        w.iter().enumerate().map(|(i, &weight)| DestSpec { addr: 0x0a00_0001 + i as u32, port: 80, weight }).collect()
    }
    /// Idle servers with these weights.
    pub fn loads(w: &[u32]) -> Vec<DestLoad> {
        w.iter().map(|&weight| DestLoad { weight, ..DestLoad::default() }).collect()
    }
}

/// One scheduler instance; each worker owns its own (no sharing, no locks).
#[derive(Clone, Debug)]
pub enum Scheduler {
    Rr(rr::Rr),
    Wrr(wrr::Wrr),
    Lc(lc::Lc),
    Wlc(wlc::Wlc),
    Sed(sed::Sed),
    Nq(nq::Nq),
    Sh(sh::Sh),
    Dh(dh::Dh),
    Mh(mh::Mh),
}

impl Scheduler {
    /// A scheduler of `kind` for `dests` (list order).
    pub fn new(kind: SchedKind, flags: SchedFlags, mh_table_size: u32, dests: &[DestSpec]) -> Self {
        let mut s = match kind {
            SchedKind::Rr => Scheduler::Rr(rr::Rr::default()),
            SchedKind::Wrr => Scheduler::Wrr(wrr::Wrr::default()),
            SchedKind::Lc => Scheduler::Lc(lc::Lc),
            SchedKind::Wlc => Scheduler::Wlc(wlc::Wlc),
            SchedKind::Sed => Scheduler::Sed(sed::Sed),
            SchedKind::Nq => Scheduler::Nq(nq::Nq),
            SchedKind::Sh => Scheduler::Sh(sh::Sh::new(flags)),
            SchedKind::Dh => Scheduler::Dh(dh::Dh::default()),
            SchedKind::Mh => Scheduler::Mh(mh::Mh::new(flags, mh_table_size)),
        };
        s.rebuild(dests);
        s
    }

    pub fn kind(&self) -> SchedKind {
        match self {
            Scheduler::Rr(_) => SchedKind::Rr,
            Scheduler::Wrr(_) => SchedKind::Wrr,
            Scheduler::Lc(_) => SchedKind::Lc,
            Scheduler::Wlc(_) => SchedKind::Wlc,
            Scheduler::Sed(_) => SchedKind::Sed,
            Scheduler::Nq(_) => SchedKind::Nq,
            Scheduler::Sh(_) => SchedKind::Sh,
            Scheduler::Dh(_) => SchedKind::Dh,
            Scheduler::Mh(_) => SchedKind::Mh,
        }
    }

    /// Carries what a scheduler keeps across list changes from `old` (built for the list
    /// `old_ids`, server ids in list order) to this one (for `new_ids`): rr's position (IPVS's
    /// rr keeps its list pointer through adds and deletes). wrr starts over as the kernel's
    /// `dest_changed` does; the others keep nothing.
    pub fn carry_from(&mut self, old: &Scheduler, old_ids: &[u16], new_ids: &[u16]) {
        if let (Scheduler::Rr(new), Scheduler::Rr(old)) = (self, old) {
            *new = old.clone();
            new.follow(old_ids, new_ids);
        }
    }

    /// Runs the hooks a kernel service runs from list `from` to list `to` (both in list
    /// order): `del_dest` for each server gone, `add_dest` for each new one in the order they
    /// were added (the kernel inserts at the head, so the reverse of list order), `upd_dest`
    /// for each changed weight. Only wrr keeps state they change (`dest_changed` after each,
    /// which needs only the largest weight and the gcd: adds are O(1) each); the others are
    /// rebuilt for `to`.
    pub fn follow_hooks(&mut self, from: &[DestSpec], to: &[DestSpec]) {
        let Scheduler::Wrr(w) = self else {
            self.rebuild(to);
            return;
        };
        let key = |d: &DestSpec| (d.addr, d.port);
        let kept: std::collections::HashSet<(u32, u16)> = to.iter().map(key).collect();
        let mut cur: Vec<DestSpec> = from.to_vec();
        for d in from {
            if !kept.contains(&key(d)) {
                cur.retain(|c| key(c) != key(d));
                w.rebuild(&cur);
            }
        }
        let mut listed: std::collections::HashMap<(u32, u16), usize> =
            cur.iter().enumerate().map(|(i, d)| (key(d), i)).collect();
        let (mut maxw, mut g) = (cur.iter().map(|d| d.weight).max().unwrap_or(0), weights_gcd(&cur));
        for d in to.iter().rev() {
            if let std::collections::hash_map::Entry::Vacant(e) = listed.entry(key(d)) {
                e.insert(cur.len());
                cur.push(*d);
                maxw = maxw.max(d.weight);
                if d.weight > 0 {
                    g = weights_gcd(&[DestSpec { weight: g, ..*d }, *d]);
                }
                w.changed(maxw, g);
            }
        }
        for d in to {
            if let Some(&i) = listed.get(&key(d)) {
                if cur[i].weight != d.weight {
                    cur[i].weight = d.weight;
                    w.rebuild(&cur);
                }
            }
        }
    }

    /// Control plane: the server list or a weight changed.
    pub fn rebuild(&mut self, dests: &[DestSpec]) {
        match self {
            Scheduler::Rr(s) => s.rebuild(dests),
            Scheduler::Wrr(s) => s.rebuild(dests),
            Scheduler::Lc(_) | Scheduler::Wlc(_) | Scheduler::Sed(_) | Scheduler::Nq(_) => {}
            Scheduler::Sh(s) => s.rebuild(dests),
            Scheduler::Dh(s) => s.rebuild(dests),
            Scheduler::Mh(s) => s.rebuild(dests),
        }
    }

    /// Data plane: the index (list order) of the server for a new connection, or `None` when
    /// no server is available. `loads` has one entry per server, in the order given to
    /// `rebuild`.
    #[inline]
    pub fn pick(&mut self, flow: &Flow, loads: &[DestLoad]) -> Option<usize> {
        match self {
            Scheduler::Rr(s) => s.pick(loads),
            Scheduler::Wrr(s) => s.pick(loads),
            Scheduler::Lc(s) => s.pick(loads),
            Scheduler::Wlc(s) => s.pick(loads),
            Scheduler::Sed(s) => s.pick(loads),
            Scheduler::Nq(s) => s.pick(loads),
            Scheduler::Sh(s) => s.pick(flow, loads),
            Scheduler::Dh(s) => s.pick(flow, loads),
            Scheduler::Mh(s) => s.pick(flow, loads),
        }
    }
}
