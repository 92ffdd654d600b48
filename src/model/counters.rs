//! Per-server counters and rates as listings and metrics show them.

use super::VirtualService;
use serde::{Deserialize, Serialize};

/// The traffic counters of one real server (IPVS's per-dest stats), as a worker counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestCounters {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl std::ops::AddAssign for DestCounters {
    fn add_assign(&mut self, o: DestCounters) {
        self.conns += o.conns;
        self.in_pkts += o.in_pkts;
        self.out_pkts += o.out_pkts;
        self.in_bytes += o.in_bytes;
        self.out_bytes += o.out_bytes;
    }
}

/// Counters of one real server, summed over the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCounters {
    pub active: u32,
    pub inactive: u32,
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Persistence templates pointing at the server (PersistConn).
    pub persist: u32,
}

impl ServerCounters {
    /// A server's traffic counters with its load (active, inactive, templates).
    pub fn new(c: DestCounters, active: u32, inactive: u32, persist: u32) -> ServerCounters {
        ServerCounters {
            active,
            inactive,
            conns: c.conns,
            in_pkts: c.in_pkts,
            out_pkts: c.out_pkts,
            in_bytes: c.in_bytes,
            out_bytes: c.out_bytes,
            persist,
        }
    }

    /// Connections, in/out packets, in/out bytes: the five counters listings and the
    /// estimator follow, in ipvsadm's column order.
    pub fn five(&self) -> [u64; 5] {
        [self.conns, self.in_pkts, self.out_pkts, self.in_bytes, self.out_bytes]
    }
}

/// Smoothed per-second rates (IPVS's estimator, see `control::accounting`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A service and its servers' counters (`counters[i]` and `rates[i]` are
/// `service.servers[i]`'s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: VirtualService,
    pub counters: Vec<ServerCounters>,
    /// The service's own counters (since its last `-Z`); `None`: the sum of its servers'.
    #[serde(default)]
    pub total: Option<ServerCounters>,
    #[serde(default)]
    pub rate: Rates,
    #[serde(default)]
    pub rates: Vec<Rates>,
}

impl Rates {
    /// cps, in/out pps, in/out bps, in ipvsadm's column order.
    pub fn five(&self) -> [u64; 5] {
        [self.cps, self.inpps, self.outpps, self.inbps, self.outbps]
    }
}

impl ServiceView {
    /// The sum of the servers' connection, packet and byte counters.
    pub fn servers_total(&self) -> ServerCounters {
        let mut t = ServerCounters::default();
        for c in &self.counters {
            t.conns += c.conns;
            t.in_pkts += c.in_pkts;
            t.out_pkts += c.out_pkts;
            t.in_bytes += c.in_bytes;
            t.out_bytes += c.out_bytes;
        }
        t
    }
}

impl Default for ServiceView {
    fn default() -> Self {
        ServiceView {
            service: VirtualService::new(
                crate::model::Proto::Tcp,
                std::net::Ipv4Addr::UNSPECIFIED,
                0,
                crate::model::SchedKind::Wlc,
            ),
            counters: Vec::new(),
            total: None,
            rate: Rates::default(),
            rates: Vec::new(),
        }
    }
}
