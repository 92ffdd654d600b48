//! The tables snapshot: what the control plane compiles from a [`Config`] and hands to every
//! worker as an `Arc`. Workers only read it.

use crate::config::Config;
use crate::conn::Timeouts;
use crate::sched::DestSpec;
use crate::service::{FwdMode, SchedFlags, SchedKind};
use crate::wire::MacAddr;
use hashbrown::HashMap;

/// A real server as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestEntry {
    pub addr: u32,
    /// 0 = the packet's destination port (port-0 services).
    pub port: u16,
    pub mode: FwdMode,
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    /// Next hop towards the real server, resolved at build time; None = unknown (counted).
    pub next_hop: Option<NextHop>,
}

/// Where a frame leaves: the MAC of the next hop and the interface (port) index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub mac: MacAddr,
    pub port: u8,
}

/// A virtual service as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    pub proto: u8,
    pub vip: u32,
    pub vport: u16,
    pub scheduler: SchedKind,
    pub flags: SchedFlags,
    pub mh_table_size: u32,
    /// (timeout seconds, client netmask) when persistent.
    pub persistence: Option<(u32, u32)>,
    pub dests: Vec<DestEntry>,
    /// Some real server is NAT or FULLNAT: replies come back through the director, so with
    /// several workers the connection's owner handles all its frames.
    pub replies_return: bool,
}

impl ServiceEntry {
    pub fn dest_specs(&self) -> Vec<DestSpec> {
        self.dests.iter().map(|d| DestSpec { addr: d.addr, port: d.port, weight: d.weight }).collect()
    }
}

/// An immutable snapshot of everything a worker looks up.
#[derive(Clone, Debug)]
pub struct Tables {
    pub services: Vec<ServiceEntry>,
    svc_by_key: ServiceIndex,
    vips: HashMap<u32, (), ahash::RandomState>,
    /// NAT real server (proto, addr, port) -> the services it serves: a reply from it is
    /// matched by rebuilding the client-side key for each (usually one).
    nat_dests: HashMap<u64, Vec<u16>, ahash::RandomState>,
    neigh: HashMap<u32, NextHop, ahash::RandomState>,
    gateway: Option<NextHop>,
    /// MAC of each interface (port index = position).
    pub iface_macs: Vec<MacAddr>,
    /// The director's own addresses: traffic to them goes to the kernel.
    pub local_ips: Vec<u32>,
    pub dip: u32,
    pub mtu: u16,
    pub lport_range: (u16, u16),
    pub workers: u16,
    pub max_conns_per_worker: u32,
    pub timeouts: Timeouts,
}

#[inline]
fn svc_key(proto: u8, vip: u32, port: u16) -> u64 {
    ((vip as u64) << 24) | ((port as u64) << 8) | proto as u64
}

impl Tables {
    /// Compiles a validated config.
    pub fn build(cfg: &Config) -> Tables {
        let seeded = || ahash::RandomState::with_seeds(1, 2, 3, 4);
        let mut neigh = HashMap::with_hasher(seeded());
        for n in &cfg.neighbours {
            neigh.insert(u32::from(n.ip), NextHop { mac: n.mac, port: n.interface as u8 });
        }
        let gateway = cfg.gateway.map(|(mac, i)| NextHop { mac, port: i as u8 });
        let mut t = Tables {
            services: Vec::with_capacity(cfg.services.len()),
            svc_by_key: ServiceIndex::default(),
            vips: HashMap::with_hasher(seeded()),
            nat_dests: HashMap::with_hasher(seeded()),
            neigh,
            gateway,
            // Both are known once `xvs run` completed the config from the system (`xvs replay`
            // requires them in the file).
            iface_macs: cfg.interfaces.iter().map(|i| i.mac.unwrap_or_default()).collect(),
            local_ips: cfg.interfaces.iter().filter_map(|i| i.ip).map(u32::from).collect(),
            dip: cfg.dip().map_or(0, u32::from),
            mtu: cfg.mtu,
            lport_range: cfg.local_ports,
            workers: cfg.workers,
            max_conns_per_worker: cfg.max_conns_per_worker,
            timeouts: cfg.timeouts,
        };
        for (i, s) in cfg.services.iter().enumerate() {
            let dests = s
                .servers
                .iter()
                .map(|r| DestEntry {
                    addr: u32::from(r.addr),
                    port: r.port,
                    mode: r.mode,
                    weight: r.weight,
                    u_threshold: r.u_threshold,
                    l_threshold: r.l_threshold,
                    next_hop: t.next_hop(u32::from(r.addr)),
                })
                .collect();
            let vip = u32::from(s.vip);
            t.vips.insert(vip, ());
            for r in s.servers.iter().filter(|r| r.mode == FwdMode::Nat) {
                let v = t.nat_dests.entry(svc_key(s.proto.number(), u32::from(r.addr), r.port)).or_default();
                if !v.contains(&(i as u16)) {
                    v.push(i as u16);
                }
            }
            t.services.push(ServiceEntry {
                proto: s.proto.number(),
                vip,
                vport: s.port,
                scheduler: s.scheduler,
                flags: s.flags,
                mh_table_size: s.mh_table_size,
                persistence: s.persistence.map(|p| (p.timeout_s, u32::from(p.netmask))),
                replies_return: s.servers.iter().any(|r| matches!(r.mode, FwdMode::Nat | FwdMode::FullNat)),
                dests,
            });
        }
        t.svc_by_key = ServiceIndex::build(&t.services);
        t
    }

    /// The service for a packet to `vip:port`: an exact match, else a port-0 (all ports)
    /// service on that address.
    #[inline]
    pub fn service(&self, proto: u8, vip: u32, port: u16) -> Option<u16> {
        if let Some(i) = self.svc_by_key.get(svc_key(proto, vip, port)) {
            return Some(i);
        }
        self.svc_by_key.get(svc_key(proto, vip, 0))
    }

    /// The services a NAT real server `addr:port` belongs to (port-0 servers match any port).
    #[inline]
    pub fn nat_services(&self, proto: u8, addr: u32, port: u16) -> &[u16] {
        if let Some(v) = self.nat_dests.get(&svc_key(proto, addr, port)) {
            return v;
        }
        self.nat_dests.get(&svc_key(proto, addr, 0)).map_or(&[], |v| v.as_slice())
    }

    /// Whether `addr` is the VIP of some service.
    #[inline]
    pub fn is_vip(&self, addr: u32) -> bool {
        self.vips.contains_key(&addr)
    }

    /// The default next hop.
    pub fn gateway(&self) -> Option<NextHop> {
        self.gateway
    }

    /// The next hop for `addr`: a neighbour entry, else the gateway.
    #[inline]
    pub fn next_hop(&self, addr: u32) -> Option<NextHop> {
        self.neigh.get(&addr).copied().or(self.gateway)
    }

    /// Source MAC for frames leaving through `port`.
    #[inline]
    pub fn port_mac(&self, port: u8) -> MacAddr {
        self.iface_macs.get(port as usize).copied().unwrap_or_default()
    }
}

/// Service lookup, asked for every packet: a flat open-addressing table of (key, index) at most
/// half full, probed linearly from a multiplicative hash. Services are few and change only with
/// the configuration, so the control plane builds it once per snapshot; the lookup is a
/// multiply, a shift and usually one compare, cheaper than a general hash map
/// (`tools/pipeline_insns.rs` counts the difference).
#[derive(Clone, Debug, Default)]
struct ServiceIndex {
    /// (key + 1, service index); key 0 marks an empty slot.
    slots: Vec<(u64, u16)>,
    shift: u32,
}

impl ServiceIndex {
    fn build(services: &[ServiceEntry]) -> ServiceIndex {
        let size = (services.len() * 2).next_power_of_two().max(8);
        let mut idx = ServiceIndex { slots: vec![(0, 0); size], shift: 64 - size.trailing_zeros() };
        for (i, s) in services.iter().enumerate() {
            let key = svc_key(s.proto, s.vip, s.vport) + 1;
            let mut at = idx.slot(key);
            while idx.slots[at].0 != 0 && idx.slots[at].0 != key {
                at = (at + 1) & (size - 1);
            }
            idx.slots[at] = (key, i as u16);
        }
        idx
    }

    #[inline]
    fn slot(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u16> {
        let key = key + 1;
        let mask = self.slots.len().wrapping_sub(1);
        let mut at = self.slot(key) & mask;
        // At most half full: an empty slot ends every probe.
        for _ in 0..self.slots.len() {
            match self.slots.get(at) {
                Some(&(k, i)) if k == key => return Some(i),
                Some(&(0, _)) | None => return None,
                Some(_) => at = (at + 1) & mask,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_index_finds_every_service_and_nothing_else() {
        let services: Vec<ServiceEntry> = (0..300u32)
            .map(|i| ServiceEntry {
                proto: if i % 3 == 0 { 17 } else { 6 },
                vip: 0xC612_0000 + i / 7,
                vport: (i % 7) as u16 * 1000,
                scheduler: SchedKind::Rr,
                flags: SchedFlags::default(),
                mh_table_size: 4093,
                persistence: None,
                replies_return: false,
                dests: Vec::new(),
            })
            .collect();
        let idx = ServiceIndex::build(&services);
        for (i, s) in services.iter().enumerate() {
            assert_eq!(idx.get(svc_key(s.proto, s.vip, s.vport)), Some(i as u16));
        }
        assert_eq!(idx.get(svc_key(6, 0xC612_0000, 1)), None);
        assert_eq!(idx.get(svc_key(1, 0xC612_0000, 1000)), None);
        assert_eq!(ServiceIndex::default().get(svc_key(6, 1, 2)), None);
    }
}
