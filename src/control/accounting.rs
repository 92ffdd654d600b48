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
//! whatever its position, and are dropped with the service or server. A service's counters
//! are its own, as in IPVS: at each sample it adds what each of its servers counted since the
//! last one, so a server that is deleted (or fails its health check) does not take its share
//! of the service's counters with it. A sample taken late is scaled to 2 s.

use crate::ipvsadm::ServiceKey;
use crate::model::{Rates, ServerCounters, ServiceView};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// How often the estimator samples (IPVS: 2 s).
pub const SAMPLE: Duration = Duration::from_secs(2);

/// The five counters an estimator follows: conns, in/out packets, in/out bytes.
type Five = [u64; 5];

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
        self.sample_after(now, SAMPLE);
    }

    /// One sample `elapsed` after the last (nominally 2 s; a late one is scaled to 2 s).
    pub fn sample_after(&mut self, now: Five, elapsed: Duration) {
        let ms = (elapsed.as_millis() as i64).max(1);
        for (i, avg) in self.avg.iter_mut().enumerate() {
            // Counters only grow; a server that went and came back restarts from 0.
            let delta = now[i].saturating_sub(self.last[i]) as i64;
            let per_2s = delta.saturating_mul(SAMPLE.as_millis() as i64) / ms;
            let rate = if i < 3 { per_2s.saturating_mul(1 << 9) } else { per_2s.saturating_mul(1 << 4) };
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

fn sub(a: Five, b: Five) -> Five {
    let mut out = [0; 5];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x.saturating_sub(y);
    }
    out
}

fn add(a: Five, b: Five) -> Five {
    let mut out = [0; 5];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x.saturating_add(y);
    }
    out
}

fn set(c: &mut ServerCounters, v: Five) {
    (c.conns, c.in_pkts, c.out_pkts, c.in_bytes, c.out_bytes) = (v[0], v[1], v[2], v[3], v[4]);
}

/// A real server: its workers' sums at the last sample, its zero point, its estimator.
#[derive(Clone, Copy, Debug, Default)]
struct DestAccount {
    last: Five,
    zero: Five,
    est: Estimator,
}

/// A service: its own running totals (up to the last sample), zero point and estimator.
#[derive(Clone, Copy, Debug, Default)]
struct ServiceAccount {
    total: Five,
    zero: Five,
    est: Estimator,
}

type DestKey = (ServiceKey, Ipv4Addr, u16);

/// Zero points, service totals and estimators of every service and real server.
#[derive(Debug, Default)]
pub struct Accounting {
    services: HashMap<ServiceKey, ServiceAccount>,
    dests: HashMap<DestKey, DestAccount>,
}

impl Accounting {
    /// A service's totals now: those of the last sample plus what its present servers counted
    /// since (a server not seen before counts from 0: its workers' counters start with it).
    fn service_now(&self, v: &ServiceView) -> Five {
        let k = ServiceKey::of(&v.service);
        let mut t = self.services.get(&k).map(|a| a.total).unwrap_or_default();
        for (r, c) in v.service.servers.iter().zip(&v.counters) {
            let last = self.dests.get(&(k, r.addr, r.port)).map(|a| a.last).unwrap_or_default();
            t = add(t, sub(c.five(), last));
        }
        t
    }

    /// One estimator sample from the workers' raw sums, `elapsed` after the last (take none
    /// when a worker did not answer: its counters would be missing from the sums). Services
    /// no longer present are forgotten. Servers are kept: a server keeps its slot and its
    /// workers' counters while the director runs, so one that leaves (deleted, or held out
    /// by a failed check) and comes back resumes from its old sums and zero point instead of
    /// adding its whole history to its service again.
    pub fn sample(&mut self, raw: &[ServiceView], elapsed: Duration) {
        let mut services = HashMap::new();
        let mut dests = self.dests.clone();
        for v in raw {
            let k = ServiceKey::of(&v.service);
            let now = self.service_now(v);
            let mut a = self.services.get(&k).copied().unwrap_or_default();
            a.total = now;
            a.est.sample_after(now, elapsed);
            services.insert(k, a);
            for (r, c) in v.service.servers.iter().zip(&v.counters) {
                let dk = (k, r.addr, r.port);
                let mut a = self.dests.get(&dk).copied().unwrap_or_default();
                a.last = c.five();
                a.est.sample_after(a.last, elapsed);
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
            let now = self.service_now(v);
            let a = self.services.entry(k).or_default();
            a.zero = now;
            a.est = Estimator::new(now);
            for (r, c) in v.service.servers.iter().zip(&v.counters) {
                let now = c.five();
                let a = self.dests.entry((k, r.addr, r.port)).or_default();
                a.zero = now;
                a.est = Estimator::new(now);
            }
        }
    }

    /// The views as listings show them: the service's own counters, counters since the last
    /// `-Z` (unless `cumulative`, as Prometheus wants them), and rates.
    pub fn view(&self, raw: Vec<ServiceView>, cumulative: bool) -> Vec<ServiceView> {
        raw.into_iter()
            .map(|mut v| {
                let k = ServiceKey::of(&v.service);
                let mut total = ServerCounters::default();
                let now = self.service_now(&v);
                let a = self.services.get(&k).copied().unwrap_or_default();
                set(&mut total, if cumulative { now } else { sub(now, a.zero) });
                v.rate = a.est.read();
                v.total = Some(total);
                v.rates = vec![Rates::default(); v.counters.len()];
                for (i, r) in v.service.servers.iter().enumerate() {
                    let a = self.dests.get(&(k, r.addr, r.port)).copied().unwrap_or_default();
                    if !cumulative {
                        let shown = sub(v.counters[i].five(), a.zero);
                        set(&mut v.counters[i], shown);
                    }
                    v.rates[i] = a.est.read();
                }
                v
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FwdMode, Proto, RealServer, SchedKind, VirtualService};

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

    const TWO: Duration = SAMPLE;

    #[test]
    fn zero_resets_counters_and_rates_of_what_it_names() {
        let mut a = Accounting::default();
        a.sample(&[view(0)], TWO);
        a.sample(&[view(400)], TWO);
        let v = a.view(vec![view(400)], false);
        assert_eq!(v[0].counters[0].conns, 400);
        assert_eq!(v[0].total.unwrap().conns, 400);
        assert_eq!(v[0].rate.cps, 50);
        assert_eq!(v[0].rates[0].cps, 50);
        let other = ServiceKey { proto: Proto::Udp, addr: Ipv4Addr::new(198, 18, 0, 100), port: 80 };
        a.zero(&[view(400)], Some(&other));
        assert_eq!(a.view(vec![view(400)], false)[0].counters[0].conns, 400, "another service's -Z");
        a.zero(&[view(400)], None);
        let v = a.view(vec![view(410)], false);
        assert_eq!((v[0].counters[0].conns, v[0].counters[0].in_pkts), (10, 100));
        assert_eq!(v[0].total.unwrap().conns, 10);
        assert_eq!((v[0].rate.cps, v[0].rates[0].cps), (0, 0));
        // Metrics are cumulative: -Z does not move them.
        let m = a.view(vec![view(410)], true);
        assert_eq!((m[0].counters[0].conns, m[0].total.unwrap().conns), (410, 410));
    }

    #[test]
    fn a_service_keeps_the_counts_of_a_server_that_left() {
        let mut a = Accounting::default();
        let mut two = view(100);
        two.service.servers.push(RealServer { addr: Ipv4Addr::new(198, 19, 0, 12), ..two.service.servers[0].clone() });
        two.counters.push(ServerCounters { conns: 50, ..ServerCounters::default() });
        a.sample(std::slice::from_ref(&two), TWO);
        assert_eq!(a.view(vec![two.clone()], false)[0].total.unwrap().conns, 150);
        // The second server is deleted: the service still counts its 50.
        a.sample(&[view(120)], TWO);
        assert_eq!(a.view(vec![view(130)], false)[0].total.unwrap().conns, 180);
    }

    #[test]
    fn a_late_sample_is_scaled_to_two_seconds() {
        let mut e = Estimator::new([0; 5]);
        let mut f = Estimator::new([0; 5]);
        e.sample_after([200, 0, 0, 0, 0], SAMPLE);
        f.sample_after([400, 0, 0, 0, 0], SAMPLE * 2);
        assert_eq!(e.read(), f.read(), "100 conns/s either way");
    }

    #[test]
    fn a_server_that_leaves_and_returns_resumes_its_sums() {
        let mut a = Accounting::default();
        a.sample(&[view(100)], TWO);
        a.zero(&[view(100)], None);
        a.sample(&[], TWO);
        // Back with its counters (its slot kept them): neither it nor its service counts its
        // history twice, and its zero point holds.
        a.sample(&[view(104)], TWO);
        let v = a.view(vec![view(105)], false);
        assert_eq!(v[0].counters[0].conns, 5);
        assert_eq!(v[0].total.map(|t| t.conns), Some(5), "the service's own count since -Z");
    }
}
