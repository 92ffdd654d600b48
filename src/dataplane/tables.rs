//! The tables snapshot: what the control plane compiles from the model (services and real
//! servers) and the next hops it resolved, and hands to every worker as an `Arc`. Workers
//! only read it.
//!
//! **Stable slots.** A service keeps its slot (index in [`Tables::services`]) and a real
//! server its slot within the service (index in [`ServiceEntry::dests`]) for as long as the
//! director runs: a snapshot is built against the previous one, a deleted service or server
//! leaves a tombstone (`live == false`) that is never compacted, and the same key added
//! again gets its old slot back (IPVS restores a deleted server from its trash the same way).
//! Connections, loads and counters name slots, so switching a worker to a new snapshot never
//! walks its connection table. The list order schedulers walk is [`ServiceEntry::order`].

use crate::model::{FwdMode, SchedFlags, SchedKind, Timeouts, VirtualService};
use crate::sched::DestSpec;
use crate::wire::MacAddr;
use hashbrown::HashMap;

/// Most slots: services, and real servers per service (ids are u16; `u16::MAX` means none).
pub const MAX_SLOTS: usize = u16::MAX as usize;
/// Most real-server ids over all services since start: the size of the per-server counter
/// arrays every worker publishes (64 bytes each).
pub const MAX_DEST_IDS: usize = 16384;

/// A real server as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestEntry {
    pub addr: u32,
    /// 0 = the packet's destination port (port-0 services).
    pub port: u16,
    pub mode: FwdMode,
    pub weight: u32,
    /// The latest non-zero weight (IPVS's `last_weight`, what mh builds its table from: a
    /// quiesced server keeps its slots); the weight given when the server was added.
    pub last_weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    /// Next hop towards the real server, resolved at build time; None = unknown (counted).
    pub next_hop: Option<NextHop>,
    /// False once the server was deleted (its slot is kept, see the module doc).
    pub live: bool,
    /// The server's id over all services (stable like its slot): where its counters are
    /// kept, in flat arrays.
    pub id: u32,
    /// The slot has been NAT at some time: its connections may still be NAT connections,
    /// whose replies must come to the director (deleted or changed servers included).
    pub was_nat: bool,
}

/// Where a frame leaves: the MAC of the next hop, the interface (port) index and VLAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub mac: MacAddr,
    pub port: u8,
    /// The 802.1Q VLAN id frames to it are tagged with (the kernel reaches it through a VLAN
    /// device on the port); 0: untagged.
    pub vlan: u16,
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
    /// Real servers by slot, tombstones included.
    pub dests: Vec<DestEntry>,
    /// The live servers' slots in list order (what the scheduler walks).
    pub order: Vec<u16>,
    /// Some real server is NAT or FULLNAT: replies come back through the director, so with
    /// several workers the connection's owner handles all its frames.
    pub replies_return: bool,
    /// FULLNAT connections carry the client's address in the TOA option ([`crate::modes::toa`]).
    pub toa: bool,
    /// False once the service was deleted.
    pub live: bool,
}

impl ServiceEntry {
    /// The live servers in list order, as the scheduler is built from them (mh from their
    /// last weights, as the kernel's).
    pub fn dest_specs(&self) -> Vec<DestSpec> {
        let mh = self.scheduler == SchedKind::Mh;
        self.order
            .iter()
            .filter_map(|&i| self.dests.get(i as usize))
            .map(|d| DestSpec { addr: d.addr, port: d.port, weight: if mh { d.last_weight } else { d.weight } })
            .collect()
    }

    /// The slot of real server `addr:port`, live or not.
    pub fn dest_slot(&self, addr: u32, port: u16) -> Option<u16> {
        self.dests.iter().position(|d| d.addr == addr && d.port == port).map(|i| i as u16)
    }

    /// Whether a scheduler built for `other` serves this service unchanged: same algorithm,
    /// flags and live servers (by slot, in order, with their weights).
    pub fn same_schedule(&self, other: &ServiceEntry) -> bool {
        self.scheduler == other.scheduler
            && self.flags == other.flags
            && self.mh_table_size == other.mh_table_size
            && self.order == other.order
            && self.dest_specs() == other.dest_specs()
    }
}

/// What a snapshot is built from: the services (model) and what the control plane knows of
/// the network. Never the config file itself: the data plane does not know it exists.
#[derive(Clone, Debug, Default)]
pub struct TablesSpec {
    pub services: Vec<VirtualService>,
    /// Next hops by address (real servers, clients on connected subnets).
    pub neighbours: Vec<(u32, NextHop)>,
    /// Subnets on the director's links: (network, mask, port, VLAN id).
    pub connected: Vec<(u32, u32, u8, u16)>,
    pub gateway: Option<NextHop>,
    /// MAC of each interface (port index = position).
    pub iface_macs: Vec<MacAddr>,
    /// The director's own addresses.
    pub local_ips: Vec<u32>,
    /// Each interface's address (0: none), by port index: the source of ICMP errors about
    /// packets that were not addressed to the director.
    pub iface_ips: Vec<u32>,
    pub dip: u32,
    /// FULLNAT local addresses, used in turn.
    pub local_addrs: Vec<u32>,
    pub mtu: u16,
    pub lport_range: (u16, u16),
    pub workers: u16,
    pub max_conns_per_worker: u32,
    pub timeouts: Timeouts,
    /// ICMP errors about connections are left to the kernel, not relayed (`director.icmp_relay`
    /// false).
    pub icmp_to_kernel: bool,
    /// The ownership seed of the first snapshot (later ones keep their predecessor's): given,
    /// so that directors of an HA pair, or the runs before and after a hitless restart,
    /// place a client's connections on the same worker; None draws one at random.
    pub owner_seed: Option<u64>,
}

/// Why a snapshot could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TablesError {
    #[error("{0}: more than {MAX_SLOTS} services since start (deleted ones keep their slot); restart xvs")]
    TooManyServices(String),
    #[error("{0}: more than {MAX_SLOTS} real servers since start (deleted ones keep their slot); restart xvs")]
    TooManyServers(String),
    #[error("{0}: more than {MAX_DEST_IDS} real servers in all services since start (deleted ones keep their id); restart xvs")]
    TooManyDestIds(String),
}

/// An immutable snapshot of everything a worker looks up.
#[derive(Clone, Debug)]
pub struct Tables {
    /// Services by slot, tombstones included.
    pub services: Vec<ServiceEntry>,
    svc_by_key: ServiceIndex,
    /// A 256-bit filter of the live services' VIPs (a set bit for each; no false negatives):
    /// a packet to another address (a reply, the kernel's own traffic) is known to be no
    /// service's without a lookup, and with one worker a client packet looks its connection
    /// up first and its service only if that is not found. Built with `svc_by_key` from the
    /// live services; `services` must not change after `build` (nothing changes a snapshot).
    vip_filter: [u64; 4],
    vips: HashMap<u32, (), ahash::RandomState>,
    /// NAT real server (proto, addr, port) -> the services it serves: a reply from it is
    /// matched by rebuilding the client-side key for each (usually one).
    nat_dests: HashMap<u64, Vec<u16>, ahash::RandomState>,
    neigh: HashMap<u32, NextHop, ahash::RandomState>,
    /// (network, mask, port, VLAN id) of each subnet on the director's links, longest first.
    connected: Vec<(u32, u32, u8, u16)>,
    gateway: Option<NextHop>,
    /// MAC of each interface by port index, in an array a `u8` port cannot index past (no
    /// bounds check per packet); ports without an interface have the zero MAC.
    port_macs: Box<[MacAddr; 256]>,
    /// The director's own addresses: traffic to them goes to the kernel.
    pub local_ips: Vec<u32>,
    /// Each interface's address (0: none), by port index.
    pub iface_ips: Vec<u32>,
    pub dip: u32,
    /// FULLNAT local addresses, used in turn.
    pub local_addrs: Vec<u32>,
    /// Some real server (live or deleted) is FULLNAT: the shards need their reply index.
    pub has_fullnat: bool,
    pub mtu: u16,
    pub lport_range: (u16, u16),
    pub workers: u16,
    /// Seed of the client-endpoint hash that decides which worker owns a NAT or FULLNAT
    /// connection ([`crate::dataplane::pipeline::client_owner`]): random per process and kept
    /// across snapshots, so that a flood cannot be aimed at one worker.
    pub owner_seed: u64,
    pub max_conns_per_worker: u32,
    pub timeouts: Timeouts,
    /// ICMP errors about connections are left to the kernel, not relayed (`director.icmp_relay`
    /// false).
    pub icmp_to_kernel: bool,
    /// Real-server ids handed out so far (every [`DestEntry::id`] is below it).
    pub dest_ids: u32,
    /// (service slot, server slot) of each id.
    id_slots: Vec<(u16, u16)>,
}

/// The word and bit of [`Tables::maybe_vip`]'s filter for `addr`: the top 8 bits of a
/// multiplicative hash (a `u32` shifted by 24 cannot index past four words).
#[inline]
fn vip_filter_bit(addr: u32) -> (usize, u64) {
    let h = (addr.wrapping_mul(0x9E37_79B1) >> 24) as usize;
    (h >> 6, 1 << (h & 63))
}

#[inline]
fn svc_key(proto: u8, vip: u32, port: u16) -> u64 {
    ((vip as u64) << 24) | ((port as u64) << 8) | proto as u64
}

impl Tables {
    /// Compiles a snapshot. Slots of services and real servers that `prev` knew are kept;
    /// new ones get the next free slot; those `spec` lacks become tombstones.
    pub fn build(spec: &TablesSpec, prev: Option<&Tables>) -> Result<Tables, TablesError> {
        let seeded = || ahash::RandomState::with_seeds(1, 2, 3, 4);
        let mut neigh = HashMap::with_hasher(seeded());
        for (ip, hop) in &spec.neighbours {
            neigh.entry(*ip).or_insert(*hop);
        }
        let mut t = Tables {
            services: Vec::new(),
            svc_by_key: ServiceIndex::default(),
            vip_filter: [0; 4],
            vips: HashMap::with_hasher(seeded()),
            nat_dests: HashMap::with_hasher(seeded()),
            neigh,
            connected: {
                let mut c: Vec<(u32, u32, u8, u16)> =
                    spec.connected.iter().map(|&(net, mask, p, v)| (net & mask, mask, p, v)).collect();
                c.sort_by_key(|&(net, mask, ..)| (std::cmp::Reverse(mask), net));
                c.dedup_by_key(|&mut (net, mask, ..)| (net, mask));
                c
            },
            gateway: spec.gateway,
            port_macs: {
                let mut m = Box::new([MacAddr::default(); 256]);
                for (slot, mac) in m.iter_mut().zip(&spec.iface_macs) {
                    *slot = *mac;
                }
                m
            },
            local_ips: spec.local_ips.clone(),
            iface_ips: spec.iface_ips.clone(),
            dip: spec.dip,
            // The DIP alone unless others are named.
            local_addrs: if spec.local_addrs.is_empty() && spec.dip != 0 {
                vec![spec.dip]
            } else {
                spec.local_addrs.clone()
            },
            has_fullnat: false,
            mtu: spec.mtu,
            icmp_to_kernel: spec.icmp_to_kernel,
            lport_range: spec.lport_range,
            workers: spec.workers,
            max_conns_per_worker: spec.max_conns_per_worker,
            timeouts: spec.timeouts,
            dest_ids: prev.map_or(0, |p| p.dest_ids),
            owner_seed: prev.map_or_else(
                || spec.owner_seed.unwrap_or_else(|| ahash::RandomState::new().hash_one(0x6f77_6e65_7273u64)) | 1,
                |p| p.owner_seed,
            ),
            id_slots: prev.map_or_else(Vec::new, |p| p.id_slots.clone()),
        };
        // Start from the previous slots, every one a tombstone until the spec names it.
        t.services = prev.map_or_else(Vec::new, |p| p.services.clone());
        let mut slot_of: HashMap<u64, usize> = HashMap::new();
        for (i, s) in t.services.iter_mut().enumerate() {
            s.live = false;
            s.order.clear();
            s.dests.iter_mut().for_each(|d| d.live = false);
            slot_of.insert(svc_key(s.proto, s.vip, s.vport), i);
        }
        for s in &spec.services {
            let (proto, vip) = (s.proto.number(), u32::from(s.vip));
            let key = svc_key(proto, vip, s.port);
            let si = match slot_of.get(&key) {
                Some(&i) => i,
                None => {
                    if t.services.len() >= MAX_SLOTS {
                        return Err(TablesError::TooManyServices(format!("{}:{}", s.vip, s.port)));
                    }
                    t.services.push(ServiceEntry {
                        proto,
                        vip,
                        vport: s.port,
                        scheduler: s.scheduler,
                        flags: s.flags,
                        mh_table_size: s.mh_table_size,
                        persistence: None,
                        dests: Vec::new(),
                        order: Vec::new(),
                        replies_return: false,
                        toa: false,
                        live: false,
                    });
                    slot_of.insert(key, t.services.len() - 1);
                    t.services.len() - 1
                }
            };
            let mut order = Vec::with_capacity(s.servers.len());
            let mut dests = std::mem::take(&mut t.services[si].dests);
            let dest_slot: HashMap<(u32, u16), usize> =
                dests.iter().enumerate().map(|(i, d)| ((d.addr, d.port), i)).collect();
            for r in &s.servers {
                let addr = u32::from(r.addr);
                let entry = DestEntry {
                    addr,
                    port: r.port,
                    mode: r.mode,
                    weight: r.weight,
                    last_weight: r.weight,
                    u_threshold: r.u_threshold,
                    l_threshold: r.l_threshold,
                    // Its own next hop or none: an unresolved server's frames are dropped
                    // (`no_neighbour`), never sent to the gateway in the hope it knows.
                    next_hop: t.neigh.get(&addr).copied(),
                    live: true,
                    id: 0,
                    was_nat: r.mode == FwdMode::Nat,
                };
                let di = match dest_slot.get(&(addr, r.port)) {
                    Some(&i) => i,
                    None => {
                        if dests.len() >= MAX_SLOTS {
                            return Err(TablesError::TooManyServers(format!("{}:{}", s.vip, s.port)));
                        }
                        if t.dest_ids as usize >= MAX_DEST_IDS {
                            return Err(TablesError::TooManyDestIds(format!("{}:{}", r.addr, r.port)));
                        }
                        dests.push(DestEntry { id: t.dest_ids, ..entry.clone() });
                        t.id_slots.push((si as u16, dests.len() as u16 - 1));
                        t.dest_ids += 1;
                        dests.len() - 1
                    }
                };
                let was_nat = entry.was_nat || dests[di].was_nat;
                // IPVS keeps the latest non-zero weight; an add (a new or a revived server)
                // takes the weight given.
                let was_live = prev
                    .and_then(|p| p.services.get(si))
                    .is_some_and(|ps| ps.live && ps.dests.get(di).is_some_and(|d| d.live));
                let last_weight = if was_live && r.weight == 0 { dests[di].last_weight } else { r.weight };
                dests[di] = DestEntry { id: dests[di].id, was_nat, last_weight, ..entry };
                order.push(di as u16);
            }
            t.vips.insert(vip, ());
            t.services[si] = ServiceEntry {
                proto,
                vip,
                vport: s.port,
                scheduler: s.scheduler,
                flags: s.flags,
                mh_table_size: s.mh_table_size,
                persistence: s.persistence.map(|p| (p.timeout_s, u32::from(p.netmask))),
                replies_return: s.servers.iter().any(|r| matches!(r.mode, FwdMode::Nat | FwdMode::FullNat)),
                toa: s.toa,
                dests,
                order,
                live: true,
            };
        }
        // Replies from every server that is or was NAT (its connections live until their next
        // packet or timer, whatever its service or mode became).
        for (si, s) in t.services.iter().enumerate() {
            for d in s.dests.iter().filter(|d| d.was_nat) {
                let v = t.nat_dests.entry(svc_key(s.proto, d.addr, d.port)).or_default();
                if !v.contains(&(si as u16)) {
                    v.push(si as u16);
                }
            }
        }
        t.has_fullnat = t.services.iter().any(|s| s.dests.iter().any(|d| d.mode == FwdMode::FullNat));
        t.svc_by_key = ServiceIndex::build(&t.services);
        for s in t.services.iter().filter(|s| s.live) {
            let (w, bit) = vip_filter_bit(s.vip);
            t.vip_filter[w] |= bit;
        }
        Ok(t)
    }

    /// The id of real server `slot` of service `svc` (where its counters are kept).
    #[inline]
    pub fn dest_id(&self, svc: u16, slot: u16) -> Option<u32> {
        self.services.get(svc as usize)?.dests.get(slot as usize).map(|d| d.id)
    }

    /// The (service slot, server slot) of real-server id `id`.
    #[inline]
    pub fn slot_of_id(&self, id: u32) -> Option<(u16, u16)> {
        self.id_slots.get(id as usize).copied()
    }

    /// The slot of the live service (proto, vip, port), exact match only.
    pub fn service_slot(&self, proto: u8, vip: u32, port: u16) -> Option<u16> {
        self.svc_by_key.get(svc_key(proto, vip, port))
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

    /// False when `addr` is no live service's VIP; true when it may be one (a 256-bit filter:
    /// a few instructions, where a service lookup is two).
    #[inline]
    pub fn maybe_vip(&self, addr: u32) -> bool {
        let (w, bit) = vip_filter_bit(addr);
        self.vip_filter[w] & bit != 0
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

    /// A neighbour entry for `addr` (static, or resolved by the control plane).
    #[inline]
    pub fn neighbour(&self, addr: u32) -> Option<NextHop> {
        self.neigh.get(&addr).copied()
    }

    /// The (port, VLAN id) of the connected subnet `addr` is on, the longest prefix winning:
    /// such a host is reached at its own MAC, never through the gateway.
    #[inline]
    pub fn on_link(&self, addr: u32) -> Option<(u8, u16)> {
        self.connected.iter().find(|&&(net, mask, ..)| addr & mask == net).map(|&(_, _, p, v)| (p, v))
    }

    /// The director's address on interface `port` (the DIP when it has none).
    #[inline]
    pub fn iface_ip(&self, port: u8) -> u32 {
        self.iface_ips.get(port as usize).copied().filter(|&a| a != 0).unwrap_or(self.dip)
    }

    /// Source MAC for frames leaving through `port`.
    #[inline]
    pub fn port_mac(&self, port: u8) -> MacAddr {
        self.port_macs[port as usize]
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
        for (i, s) in services.iter().enumerate().filter(|(_, s)| s.live) {
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
                toa: false,
                dests: Vec::new(),
                order: Vec::new(),
                live: true,
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
