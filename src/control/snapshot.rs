//! From the config (and the next hops resolved for it) to the data plane's [`TablesSpec`]:
//! the one place where the config's shapes meet the data plane's.

use crate::config::Config;
use crate::dataplane::tables::{NextHop, Tables, TablesError, TablesSpec};

/// What a snapshot of `cfg` is built from (static and resolved neighbours already merged
/// into `cfg.neighbours`).
pub fn tables_spec(cfg: &Config) -> TablesSpec {
    TablesSpec {
        services: cfg.services.clone(),
        neighbours: cfg
            .neighbours
            .iter()
            .map(|n| (u32::from(n.ip), NextHop { mac: n.mac, port: n.interface as u8, vlan: n.vlan }))
            .collect(),
        connected: cfg
            .connected
            .iter()
            .map(|c| {
                let mask = u32::MAX.checked_shl(32 - c.prefix as u32).unwrap_or(0);
                (u32::from(c.net), mask, c.interface as u8, c.vlan)
            })
            .collect(),
        gateway: cfg.gateway.map(|(mac, i, vlan)| NextHop { mac, port: i as u8, vlan }),
        // Both are known once `xvs run` completed the config from the system (`xvs replay`
        // requires them in the file).
        iface_macs: cfg.interfaces.iter().map(|i| i.mac.unwrap_or_default()).collect(),
        local_ips: cfg
            .interfaces
            .iter()
            .filter_map(|i| i.ip)
            .chain(cfg.host_addrs.iter().copied())
            .map(u32::from)
            .collect(),
        iface_ips: cfg.interfaces.iter().map(|i| i.ip.map_or(0, u32::from)).collect(),
        dip: cfg.dip().map_or(0, u32::from),
        local_addrs: cfg.local_addrs().into_iter().map(u32::from).collect(),
        mtu: cfg.mtu,
        icmp_to_kernel: !cfg.icmp_relay,
        lport_range: cfg.local_ports,
        workers: cfg.workers,
        max_conns_per_worker: cfg.max_conns_per_worker,
        timeouts: cfg.timeouts,
        owner_seed: cfg.owner_seed,
    }
}

/// A snapshot of `cfg`, keeping the slots of `prev` (see [`Tables`]).
pub fn tables_for(cfg: &Config, prev: Option<&Tables>) -> Result<Tables, TablesError> {
    Tables::build(&tables_spec(cfg), prev)
}
