//! Control-plane accounting of the workers' counters: IPVS's rate estimator and `ipvsadm -Z`.
//!
//! The workers only ever add to their counters. The control plane samples the sums every
//! [`SAMPLE`] (2 s, as IPVS's estimation timer) and keeps, per service and per real server:
//! - a zero point: `-Z` records the current sums, and listings show the sums minus it;
//! - an estimator (`ip_vs_est.c`): per sample, for connections and packets
//!   `rate = Δcount << 9` (per second, scaled by 2^10, over 2 s) and for bytes
//!   `rate = Δbytes << 4` (scaled by 2^5); then `avg += (rate - avg) >> 2`, an exponentially
//!   weighted average with weight 1/4. Reading rounds: `cps = (avg + 0x1FF) >> 10`,
//!   `bps = (avg + 0xF) >> 5`.
//!
//! Entries are keyed by service key and server (address, port), so they follow a server
//! whatever its position, and are dropped with the service or server.

use crate::control::{Rates, ServerCounters, ServiceView};
use crate::rules::ServiceKey;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// How often the estimator samples (IPVS: 2 s).
pub const SAMPLE: Duration = Duration::from_secs(2);

/// The five counters an estimator follows: conns, in/out packets, in/out bytes.
type Five = [u64; 5];

fn five(c: &ServerCounters) -> Five {
    [c.conns, c.in_pkts, c.out_pkts, c.in_bytes, c.out_bytes]
}

/// One IPVS estimator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Five,
    avg: [i64; 5],
}

impl Estimator {
    /// Starts from the current counters (the first sample then sees only new traffic).
    pub fn new(now: Five) -> Estimator {
        Estimator { last: now, avg: [0; 5] }
    }

    /// One 2-second sample.
    pub fn sample(&mut self, now: Five) {
        for (i, avg) in self.avg.iter_mut().enumerate() {
            // Counters only grow; a server that went and came back restarts from 0.
            let delta = now[i].saturating_sub(self.last[i]) as i64;
            let rate = if i < 3 { delta << 9 } else { delta << 4 };
            *avg += (rate - *avg) >> 2;
        }
        self.last = now;
    }

    /// The smoothed per-second rates.
    pub fn read(&self) -> Rates {
        let r = |i: usize, round: i64, shift: u32| ((self.avg[i] + round).max(0) >> shift) as u64;
        Rates {
            cps: r(0, 0x1FF, 10),
            inpps: r(1, 0x1FF, 10),
            outpps: r(2, 0x1FF, 10),
            inbps: r(3, 0xF, 5),
            outbps: r(4, 0xF, 5),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Account {
    zero: Five,
    est: Estimator,
}

impl Account {
    fn new(now: Five) -> Account {
        Account { zero: [0; 5], est: Estimator::new(now) }
    }
    fn zero(&mut self, now: Five) {
        self.zero = now;
        self.est = Estimator::new(now);
    }
    fn shown(&self, c: &mut ServerCounters) {
        let now = five(c);
        let v: Vec<u64> = now.iter().zip(self.zero).map(|(n, z)| n.saturating_sub(z)).collect();
        (c.conns, c.in_pkts, c.out_pkts, c.in_bytes, c.out_bytes) = (v[0], v[1], v[2], v[3], v[4]);
    }
}

type DestKey = (ServiceKey, Ipv4Addr, u16);

/// Zero points and estimators of every service and real server.
#[derive(Debug, Default)]
pub struct Accounting {
    services: HashMap<ServiceKey, Account>,
    dests: HashMap<DestKey, Account>,
}

impl Accounting {
    /// One estimator sample from the workers' raw sums. Services and servers seen for the
    /// first time start their estimators here; those no longer present are forgotten.
    pub fn sample(&mut self, raw: &[ServiceView]) {
        let mut services = HashMap::new();
        let mut dests = HashMap::new();
        for v in raw {
            let k = ServiceKey::of(&v.service);
            let now = five(&v.servers_total());
            let mut a = self.services.get(&k).copied().unwrap_or_else(|| Account::new(now));
            a.est.sample(now);
            services.insert(k, a);
            for (r, c) in v.service.servers.iter().zip(&v.counters) {
                let dk = (k, r.addr, r.port);
                let now = five(c);
                let mut a = self.dests.get(&dk).copied().unwrap_or_else(|| Account::new(now));
                a.est.sample(now);
                dests.insert(dk, a);
            }
        }
        self.services = services;
        self.dests = dests;
    }

    /// `-Z`: zeroes the counters and rates of one service (and its servers) or of all.
    pub fn zero(&mut self, raw: &[ServiceView], only: Option<&ServiceKey>) {
        for v in raw {
            let k = ServiceKey::of(&v.service);
            if only.is_some_and(|o| *o != k) {
                continue;
            }
            let now = five(&v.servers_total());
            self.services.entry(k).or_insert_with(|| Account::new(now)).zero(now);
            for (r, c) in v.service.servers.iter().zip(&v.counters) {
                let now = five(c);
                self.dests.entry((k, r.addr, r.port)).or_insert_with(|| Account::new(now)).zero(now);
            }
        }
    }

    /// The views as listings show them: counters since the last `-Z`, with rates.
    pub fn view(&self, raw: Vec<ServiceView>) -> Vec<ServiceView> {
        raw.into_iter()
            .map(|mut v| {
                let k = ServiceKey::of(&v.service);
                let mut t = v.servers_total();
                if let Some(a) = self.services.get(&k) {
                    a.shown(&mut t);
                    v.rate = a.est.read();
                }
                v.total = Some(t);
                v.rates = vec![Rates::default(); v.counters.len()];
                for (i, r) in v.service.servers.iter().enumerate() {
                    if let Some(a) = self.dests.get(&(k, r.addr, r.port)) {
                        a.shown(&mut v.counters[i]);
                        v.rates[i] = a.est.read();
                    }
                }
                v
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{FwdMode, Proto, RealServer, SchedKind, VirtualService};

    #[test]
    fn a_steady_rate_converges_as_ipvs_does() {
        // 100 conns/s, 1000 packets/s, 1 MB/s in, for 2 s per sample.
        let mut e = Estimator::new([0; 5]);
        let mut now = [0u64; 5];
        let mut seen = Vec::new();
        for _ in 0..60 {
            now = [now[0] + 200, now[1] + 2000, now[2], now[3] + 2_000_000, now[4]];
            e.sample(now);
            seen.push(e.read().cps);
        }
        // avg after n samples = rate * (1 - (3/4)^n): 25%, 44%, 58%, ... of 100.
        assert_eq!(&seen[..4], &[25, 44, 58, 68]);
        let r = e.read();
        assert_eq!((r.cps, r.inpps, r.outpps), (100, 1000, 0));
        assert!((999_000..=1_000_000).contains(&r.inbps), "{r:?}");
        // Traffic stops: the rate decays by 3/4 per sample.
        e.sample(now);
        assert_eq!(e.read().cps, 75);
    }

    fn view(conns: u64) -> ServiceView {
        let mut s = VirtualService::new(Proto::Tcp, Ipv4Addr::new(198, 18, 0, 100), 80, SchedKind::Rr);
        s.servers.push(RealServer {
            addr: Ipv4Addr::new(198, 19, 0, 11),
            port: 80,
            weight: 1,
            mode: FwdMode::Nat,
            u_threshold: 0,
            l_threshold: 0,
        });
        let c = ServerCounters { conns, in_pkts: conns * 10, ..ServerCounters::default() };
        ServiceView { service: s, counters: vec![c], ..ServiceView::default() }
    }

    #[test]
    fn zero_resets_counters_and_rates_of_what_it_names() {
        let mut a = Accounting::default();
        a.sample(&[view(0)]);
        a.sample(&[view(400)]);
        let v = a.view(vec![view(400)]);
        assert_eq!(v[0].counters[0].conns, 400);
        assert_eq!(v[0].total.unwrap().conns, 400);
        assert_eq!(v[0].rate.cps, 50);
        assert_eq!(v[0].rates[0].cps, 50);
        let other = ServiceKey { proto: Proto::Udp, addr: Ipv4Addr::new(198, 18, 0, 100), port: 80 };
        a.zero(&[view(400)], Some(&other));
        assert_eq!(a.view(vec![view(400)])[0].counters[0].conns, 400, "another service's -Z");
        a.zero(&[view(400)], None);
        let v = a.view(vec![view(410)]);
        assert_eq!((v[0].counters[0].conns, v[0].counters[0].in_pkts), (10, 100));
        assert_eq!((v[0].rate.cps, v[0].rates[0].cps), (0, 0));
    }

    #[test]
    fn a_removed_server_is_forgotten() {
        let mut a = Accounting::default();
        a.sample(&[view(100)]);
        a.zero(&[view(100)], None);
        a.sample(&[]);
        // Re-added: its workers' counters start again from 0, and so does its zero point.
        a.sample(&[view(0)]);
        assert_eq!(a.view(vec![view(5)])[0].counters[0].conns, 5);
    }
}
