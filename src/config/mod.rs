//! `config.json`: parsing and validation.
//!
//! Parsing is strict (unknown fields are errors, so a typo never silently falls back to a
//! default) and every error names the JSON path and the bad value, e.g.
//! `services[0].real_servers[1].weight: 70000 is out of range (0..=65535)`.

pub mod keepalived;

use crate::model::{
    is_prime, FwdMode, Persistence, Proto, RealServer, SchedFlags, SchedKind, VirtualService, MAX_PERSISTENCE_TIMEOUT,
    MH_DEFAULT_TABLE_SIZE,
};
use crate::model::{CheckKind, CheckSpec, ServiceHealth};
use crate::model::{TcpState, Timeouts, UDP_STATE};
use crate::wire::MacAddr;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;

/// A config problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct ConfigError {
    /// JSON path, e.g. `services[0].vip`.
    pub path: String,
    pub msg: String,
}

fn err(path: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError { path: path.into(), msg: msg.into() }
}

// ---------------------------------------------------------------- raw JSON shape

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    director: RawDirector,
    #[serde(default)]
    neighbours: Vec<RawNeighbour>,
    #[serde(default)]
    connected: Vec<RawConnected>,
    #[serde(default)]
    gateway: Option<RawGateway>,
    #[serde(default)]
    conn: RawConn,
    #[serde(default)]
    services: Vec<RawService>,
    #[serde(default)]
    control: RawControl,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    sync: Vec<RawSync>,
    #[serde(default)]
    bgp: Option<RawBgp>,
}

/// Announcing the VIPs through BIRD 2 (see `control::announce`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBgp {
    #[serde(default)]
    birdc: Option<String>,
    #[serde(default)]
    socket: Option<String>,
    #[serde(default)]
    protocol_prefix: Option<String>,
}

/// One sync daemon (`ipvsadm --start-daemon`'s options, by their ipvsadm names).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSync {
    state: String,
    mcast_interface: String,
    #[serde(default)]
    syncid: Option<u64>,
    #[serde(default)]
    sync_maxlen: Option<u64>,
    #[serde(default)]
    mcast_group: Option<String>,
    #[serde(default)]
    mcast_port: Option<u64>,
    #[serde(default)]
    mcast_ttl: Option<u64>,
    /// A master: unicast `address:port` peers it sends to instead of the group. A backup:
    /// the masters it takes datagrams from (the port is not checked).
    #[serde(default)]
    peers: Vec<String>,
    /// A backup forwards VIP traffic that reaches it.
    #[serde(default)]
    forward: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    /// `address:port` of the Prometheus endpoint; absent: no endpoint.
    #[serde(default)]
    listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawControl {
    #[serde(default)]
    socket: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDirector {
    interfaces: Vec<RawInterface>,
    #[serde(default)]
    dip: Option<String>,
    #[serde(default)]
    local_addrs: Option<Vec<String>>,
    #[serde(default)]
    local_ports: Option<[u32; 2]>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    workers: Option<u32>,
    #[serde(default)]
    cores: Option<Vec<usize>>,
    #[serde(default)]
    umem_frames: Option<u64>,
    #[serde(default)]
    icmp_relay: Option<bool>,
    /// A file xvs keeps its data-plane health in for keepalived's `track_file`: 0 while
    /// it forwards, 1 once it stops or a worker died.
    #[serde(default)]
    health_file: Option<String>,
    /// Hitless restarts: SIGUSR2 writes the connection table here and exits leaving the
    /// steering programs attached and holding; the next run takes the table from here.
    #[serde(default)]
    handover_file: Option<String>,
    /// The seed that decides which worker owns a client's connections (hex): the same on
    /// both directors of an HA pair, so that a backup with several workers installs synced
    /// NAT and FULLNAT connections where their frames will land. Default: random per run.
    #[serde(default)]
    owner_seed: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: String,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    ip: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighbour {
    ip: String,
    mac: String,
    interface: String,
    /// The 802.1Q VLAN it is reached on (frames to it are tagged); absent: untagged.
    #[serde(default)]
    vlan: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnected {
    /// `a.b.c.d/len`.
    subnet: String,
    interface: String,
    #[serde(default)]
    vlan: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    mac: String,
    interface: String,
    #[serde(default)]
    vlan: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConn {
    #[serde(default)]
    max_per_worker: Option<u64>,
    #[serde(default)]
    timeouts: RawTimeouts,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    tcp_established: Option<u64>,
    tcp_syn_sent: Option<u64>,
    tcp_syn_recv: Option<u64>,
    tcp_fin_wait: Option<u64>,
    tcp_time_wait: Option<u64>,
    tcp_close: Option<u64>,
    tcp_close_wait: Option<u64>,
    tcp_last_ack: Option<u64>,
    tcp_listen: Option<u64>,
    tcp_synack: Option<u64>,
    udp: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    proto: String,
    vip: String,
    port: u32,
    #[serde(default)]
    scheduler: Option<String>,
    #[serde(default)]
    sched_flags: Vec<String>,
    #[serde(default)]
    persistence_timeout: Option<u64>,
    #[serde(default)]
    persistence_netmask: Option<String>,
    #[serde(default)]
    mh_table_size: Option<u64>,
    #[serde(default)]
    real_servers: Vec<RawServer>,
    #[serde(default)]
    health_check: Option<RawCheck>,
    #[serde(default)]
    inhibit_on_failure: bool,
    #[serde(default)]
    toa: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    kind: String,
    #[serde(default)]
    port: Option<u32>,
    #[serde(default)]
    interval_ms: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    rise: Option<u64>,
    #[serde(default)]
    fall: Option<u64>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    status: Option<u64>,
    #[serde(default)]
    host: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    addr: String,
    #[serde(default)]
    port: Option<u32>,
    #[serde(default)]
    weight: Option<u64>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    u_threshold: Option<u64>,
    #[serde(default)]
    l_threshold: Option<u64>,
    #[serde(default)]
    health_check: Option<RawCheck>,
}

// ---------------------------------------------------------------- validated config

/// A director interface. `xvs run` reads a MAC or address left out of the config from the
/// interface itself; `xvs replay` needs them given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<MacAddr>,
    pub ip: Option<Ipv4Addr>,
}

/// A next hop: where frames for `ip` go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    /// Index into [`Config::interfaces`].
    pub interface: usize,
    /// 802.1Q VLAN id of frames to it (a VLAN device on that interface); 0: untagged.
    pub vlan: u16,
}

/// A subnet on the director's link (the kernel's connected route): its hosts are reached at
/// their own MAC, never through the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connected {
    pub net: Ipv4Addr,
    pub prefix: u8,
    /// Index into [`Config::interfaces`].
    pub interface: usize,
    /// 802.1Q VLAN id (a VLAN device on that interface); 0: untagged.
    pub vlan: u16,
}

impl Connected {
    /// Whether `addr` is in this subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
        u32::from(addr) & mask == u32::from(self.net) & mask
    }
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub interfaces: Vec<Interface>,
    /// Director address: FULLNAT source and TUN outer source (default: the first
    /// interface's address, see [`Config::dip`]).
    pub dip: Option<Ipv4Addr>,
    /// FULLNAT local addresses, used in turn (empty: the DIP alone). Each is an address of
    /// the host, so that the kernel answers the real servers' ARP for it.
    pub local_addrs: Vec<Ipv4Addr>,
    /// FULLNAT local port range, inclusive.
    pub local_ports: (u16, u16),
    /// MTU of the links towards the real servers (bounds TUN encapsulation).
    pub mtu: u16,
    pub workers: u16,
    /// Cores to pin workers to (empty: no pinning).
    pub cores: Vec<usize>,
    pub neighbours: Vec<Neighbour>,
    /// Subnets on the director's links: static ones, then those `xvs run` reads from the
    /// kernel (the addresses of its interfaces and of VLAN devices on them).
    pub connected: Vec<Connected>,
    /// The host's other IPv4 addresses, read from the kernel by `xvs run` (traffic to them
    /// is the kernel's, like the interfaces' own).
    pub host_addrs: Vec<Ipv4Addr>,
    /// Default next hop (MAC, interface index, VLAN id or 0).
    pub gateway: Option<(MacAddr, usize, u16)>,
    pub max_conns_per_worker: u32,
    /// AF_XDP UMEM frames per worker.
    pub umem_frames: u32,
    /// ICMP errors about connections are relayed to their server or client (IPVS's
    /// behaviour, the default); false leaves them to the kernel, which breaks path-MTU
    /// discovery through the director (for comparison and debugging).
    pub icmp_relay: bool,
    /// Where xvs writes its data-plane health for keepalived's `track_file` (`director.health_file`).
    pub health_file: Option<std::path::PathBuf>,
    /// Where a hitless restart hands the connection table over (`director.handover_file`).
    pub handover_file: Option<std::path::PathBuf>,
    /// Worker ownership seed (`director.owner_seed`, or the previous run's at a hitless
    /// restart); None: random.
    pub owner_seed: Option<u64>,
    /// The control socket `xvsadm` talks to.
    pub control_socket: std::path::PathBuf,
    pub timeouts: Timeouts,
    pub services: Vec<VirtualService>,
    /// Health checks per service (see [`crate::health`]).
    pub health: Vec<ServiceHealth>,
    /// Prometheus `/metrics` address (off when None).
    pub metrics: Option<std::net::SocketAddr>,
    /// Sync daemons started with the director (at most one master and one backup).
    pub sync: Vec<crate::model::DaemonSpec>,
    /// VIPs announced over BGP through BIRD (off when None).
    pub bgp: Option<Bgp>,
}

/// Where BIRD is and how its per-VIP static protocols are named (`"bgp"` in config.json).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bgp {
    /// The `birdc` program (default `birdc`, found on PATH).
    pub birdc: std::path::PathBuf,
    /// BIRD's control socket (default `/run/bird/bird.ctl`).
    pub socket: std::path::PathBuf,
    /// The per-VIP protocols' prefix (default `vip_`: `vip_198_18_0_100`).
    pub protocol_prefix: String,
}

/// Where `xvs run` listens for `xvsadm` unless `control.socket` says otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/xvs/xvs.sock";

/// FULLNAT local ports unless configured: below Linux's default ephemeral range (32768-60999),
/// so the kernel never hands one of them to the director's own connections.
pub const DEFAULT_LOCAL_PORTS: (u16, u16) = (10000, 32767);
/// FULLNAT local addresses at most (a connection names its address by an 8-bit index).
pub const MAX_LOCAL_ADDRS: usize = 64;

/// Default bound on connections per worker.
pub const DEFAULT_MAX_CONNS: u32 = 1 << 20;

impl Config {
    /// The director address: `director.dip`, else the first interface's address.
    pub fn dip(&self) -> Option<Ipv4Addr> {
        self.dip.or_else(|| self.interfaces.first().and_then(|i| i.ip))
    }

    /// FULLNAT's local addresses: `director.local_addrs`, else the DIP alone.
    pub fn local_addrs(&self) -> Vec<Ipv4Addr> {
        if self.local_addrs.is_empty() {
            self.dip().into_iter().collect()
        } else {
            self.local_addrs.clone()
        }
    }

    /// Checks that every interface has its MAC and address (needed without a live system to
    /// read them from, as in `xvs replay`).
    pub fn require_addresses(&self) -> Result<(), ConfigError> {
        for (i, x) in self.interfaces.iter().enumerate() {
            if x.mac.is_none() {
                return Err(err(
                    format!("director.interfaces[{i}].mac"),
                    "required here (xvs run reads it from the interface)",
                ));
            }
            if x.ip.is_none() {
                return Err(err(
                    format!("director.interfaces[{i}].ip"),
                    "required here (xvs run reads it from the interface)",
                ));
            }
        }
        Ok(())
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| err(path.display().to_string(), e.to_string()))?;
        Config::parse(&text)
    }

    /// Parses and validates config JSON text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let p = e.path().to_string();
            err(if p == "." { "(top level)".to_string() } else { p }, e.inner().to_string())
        })?;
        validate(raw)
    }

    /// Replaces the services (e.g. with those of `ipvsadm -S -n` rules), validating them
    /// against the rest of the config.
    pub fn with_services(mut self, services: Vec<VirtualService>) -> Result<Config, ConfigError> {
        check_services(&services)?;
        self.services = services;
        Ok(self)
    }
}

fn ip(path: &str, s: &str) -> Result<Ipv4Addr, ConfigError> {
    s.parse().map_err(|_| err(path, format!("'{s}' is not an IPv4 address")))
}

fn mac(path: &str, s: &str) -> Result<MacAddr, ConfigError> {
    s.parse().map_err(|_| err(path, format!("'{s}' is not a MAC address (aa:bb:cc:dd:ee:ff)")))
}

fn range(path: &str, v: u64, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    if v < lo || v > hi {
        return Err(err(path, format!("{v} is out of range ({lo}..={hi})")));
    }
    Ok(v)
}

/// An 802.1Q VLAN id (1..=4094; 0 and 4095 are reserved); absent: untagged (0).
fn vlan_id(path: &str, v: Option<u64>) -> Result<u16, ConfigError> {
    v.map_or(Ok(0), |v| range(path, v, 1, 4094).map(|v| v as u16))
}

fn netmask(path: &str, s: &str) -> Result<Ipv4Addr, ConfigError> {
    let m = ip(path, s)?;
    let v = u32::from(m);
    if v.leading_ones() + v.trailing_zeros() != 32 {
        return Err(err(path, format!("'{s}' is not a contiguous netmask")));
    }
    Ok(m)
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let d = &raw.director;
    if d.interfaces.is_empty() {
        return Err(err("director.interfaces", "at least one interface is required"));
    }
    let mut interfaces = Vec::new();
    for (i, r) in d.interfaces.iter().enumerate() {
        let p = format!("director.interfaces[{i}]");
        if r.name.is_empty() || r.name.len() > 15 {
            return Err(err(format!("{p}.name"), format!("'{}' is not an interface name (1..=15 bytes)", r.name)));
        }
        if interfaces.iter().any(|x: &Interface| x.name == r.name) {
            return Err(err(format!("{p}.name"), format!("'{}' is listed twice", r.name)));
        }
        interfaces.push(Interface {
            name: r.name.clone(),
            mac: r.mac.as_deref().map(|m| mac(&format!("{p}.mac"), m)).transpose()?,
            ip: r.ip.as_deref().map(|a| ip(&format!("{p}.ip"), a)).transpose()?,
        });
    }
    let iface_index = |path: &str, name: &str| -> Result<usize, ConfigError> {
        interfaces
            .iter()
            .position(|x| x.name == name)
            .ok_or_else(|| err(path, format!("'{name}' is not one of director.interfaces")))
    };
    let dip = d.dip.as_deref().map(|s| ip("director.dip", s)).transpose()?;
    let mut local_addrs: Vec<Ipv4Addr> = Vec::new();
    for (i, a) in d.local_addrs.iter().flatten().enumerate() {
        let path = format!("director.local_addrs[{i}]");
        let a = ip(&path, a)?;
        if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
            return Err(err(path, format!("'{a}' cannot be a source address")));
        }
        if local_addrs.contains(&a) {
            return Err(err(path, format!("'{a}' is listed twice")));
        }
        local_addrs.push(a);
    }
    if local_addrs.len() > MAX_LOCAL_ADDRS {
        return Err(err("director.local_addrs", format!("{} addresses: at most {MAX_LOCAL_ADDRS}", local_addrs.len())));
    }
    let local_ports = match d.local_ports {
        Some([lo, hi]) => {
            range("director.local_ports[0]", lo as u64, 1, 65535)?;
            range("director.local_ports[1]", hi as u64, lo as u64, 65535)?;
            if lo < 1024 {
                return Err(err(
                    "director.local_ports",
                    format!("{lo}-{hi} includes privileged ports (below 1024), which the host's own services use"),
                ));
            }
            (lo as u16, hi as u16)
        }
        None => DEFAULT_LOCAL_PORTS,
    };
    let mtu = d.mtu.unwrap_or(1500);
    if mtu as u64 > crate::model::MAX_MTU as u64 {
        return Err(err(
            "director.mtu",
            format!(
                "{mtu} does not fit one AF_XDP frame: at most {} (2048-byte frames less 256 bytes of headroom and \
                 14 of Ethernet header; xvs does not use multi-buffer frames)",
                crate::model::MAX_MTU
            ),
        ));
    }
    let mtu = range("director.mtu", mtu as u64, 576, crate::model::MAX_MTU as u64)? as u16;
    let workers = range("director.workers", d.workers.unwrap_or(1) as u64, 1, 256)? as u16;
    let cores = d.cores.clone().unwrap_or_default();
    if !cores.is_empty() && cores.len() != workers as usize {
        return Err(err("director.cores", format!("{} cores listed for {workers} workers", cores.len())));
    }
    let ports = local_ports.1 as u32 - local_ports.0 as u32 + 1;
    if ports < workers as u32 {
        return Err(err("director.local_ports", format!("{ports} ports cannot be shared by {workers} workers")));
    }
    let mut neighbours = Vec::new();
    for (i, n) in raw.neighbours.iter().enumerate() {
        let p = format!("neighbours[{i}]");
        let nip = ip(&format!("{p}.ip"), &n.ip)?;
        if neighbours.iter().any(|x: &Neighbour| x.ip == nip) {
            return Err(err(format!("{p}.ip"), format!("'{nip}' is listed twice")));
        }
        neighbours.push(Neighbour {
            ip: nip,
            mac: mac(&format!("{p}.mac"), &n.mac)?,
            interface: iface_index(&format!("{p}.interface"), &n.interface)?,
            vlan: vlan_id(&format!("{p}.vlan"), n.vlan)?,
        });
    }
    let mut connected = Vec::new();
    for (i, c) in raw.connected.iter().enumerate() {
        let p = format!("connected[{i}]");
        let bad = || err(format!("{p}.subnet"), format!("'{}' is not a subnet (a.b.c.d/len)", c.subnet));
        let (net, len) = c.subnet.split_once('/').ok_or_else(bad)?;
        let net: Ipv4Addr = net.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(bad)?;
        connected.push(Connected {
            net,
            prefix,
            interface: iface_index(&format!("{p}.interface"), &c.interface)?,
            vlan: vlan_id(&format!("{p}.vlan"), c.vlan)?,
        });
    }
    let gateway = match &raw.gateway {
        Some(g) => Some((
            mac("gateway.mac", &g.mac)?,
            iface_index("gateway.interface", &g.interface)?,
            vlan_id("gateway.vlan", g.vlan)?,
        )),
        None => None,
    };
    let max = raw.conn.max_per_worker.unwrap_or(DEFAULT_MAX_CONNS as u64);
    let max_conns_per_worker = range("conn.max_per_worker", max, 16, crate::model::MAX_CONNS_PER_WORKER as u64)? as u32;
    let umem_frames = range("director.umem_frames", d.umem_frames.unwrap_or(8192), 256, 1 << 20)? as u32;
    let timeouts = timeouts(&raw.conn.timeouts)?;
    let mut services = Vec::new();
    let mut health = Vec::new();
    for (i, s) in raw.services.iter().enumerate() {
        let p = format!("services[{i}]");
        let svc = service(&p, s)?;
        let mut h = ServiceHealth {
            key: Some(crate::model::ServiceKey::of(&svc)),
            check: s.health_check.as_ref().map(|c| check(&format!("{p}.health_check"), c)).transpose()?,
            servers: Vec::new(),
            inhibit_on_failure: s.inhibit_on_failure,
        };
        for (j, r) in s.real_servers.iter().enumerate() {
            if let Some(c) = &r.health_check {
                let spec = check(&format!("{p}.real_servers[{j}].health_check"), c)?;
                h.servers.push((svc.servers[j].addr, svc.servers[j].port, spec));
            }
        }
        if h.check.is_some() || !h.servers.is_empty() || h.inhibit_on_failure {
            health.push(h);
        }
        services.push(svc);
    }
    // A port alone binds loopback: /metrics has no authentication, so reaching it from the
    // network takes an address written out.
    let metrics = match &raw.metrics.listen {
        None => None,
        Some(a) => Some(match a.trim_start_matches(':').parse::<u16>() {
            Ok(port) => std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Err(_) => a.parse::<std::net::SocketAddr>().map_err(|_| {
                err("metrics.listen", format!("'{a}' is not a port or an address:port (e.g. 9100, 127.0.0.1:9100)"))
            })?,
        }),
    };
    check_services(&services)?;
    let sync = sync_daemons(&raw.sync)?;
    let bgp = match &raw.bgp {
        None => None,
        Some(b) => {
            let prefix = b.protocol_prefix.clone().unwrap_or_else(|| "vip_".into());
            if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(err(
                    "bgp.protocol_prefix",
                    format!("'{prefix}' is not a BIRD protocol name prefix (letters, digits, _)"),
                ));
            }
            for (name, v) in [("birdc", &b.birdc), ("socket", &b.socket)] {
                if v.as_deref() == Some("") {
                    return Err(err(format!("bgp.{name}"), "an empty path"));
                }
            }
            Some(Bgp {
                birdc: b.birdc.clone().unwrap_or_else(|| "birdc".into()).into(),
                socket: b.socket.clone().unwrap_or_else(|| "/run/bird/bird.ctl".into()).into(),
                protocol_prefix: prefix,
            })
        }
    };
    Ok(Config {
        interfaces,
        dip,
        local_addrs,
        local_ports,
        mtu,
        workers,
        cores,
        neighbours,
        connected,
        host_addrs: Vec::new(),
        gateway,
        max_conns_per_worker,
        umem_frames,
        icmp_relay: d.icmp_relay.unwrap_or(true),
        health_file: match &d.health_file {
            Some(p) if p.is_empty() => return Err(err("director.health_file", "an empty path")),
            Some(p) => Some(p.into()),
            None => None,
        },
        handover_file: match &d.handover_file {
            Some(p) if p.is_empty() => return Err(err("director.handover_file", "an empty path")),
            Some(p) => Some(p.into()),
            None => None,
        },
        owner_seed: match &d.owner_seed {
            None => None,
            Some(h) => Some(u64::from_str_radix(h.trim_start_matches("0x"), 16).map_err(|_| {
                err("director.owner_seed", format!("'{h}' is not a hexadecimal 64-bit number (e.g. \"5eed1234abcd\")"))
            })?),
        },
        control_socket: match &raw.control.socket {
            Some(p) if p.is_empty() => return Err(err("control.socket", "an empty path")),
            Some(p) => p.into(),
            None => DEFAULT_CONTROL_SOCKET.into(),
        },
        timeouts,
        services,
        health,
        metrics,
        sync,
        bgp,
    })
}

fn sync_daemons(raw: &[RawSync]) -> Result<Vec<crate::model::DaemonSpec>, ConfigError> {
    use crate::model::{DaemonSpec, SyncRole};
    let mut out: Vec<DaemonSpec> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let p = format!("sync[{i}]");
        let role = match r.state.as_str() {
            "master" => SyncRole::Master,
            "backup" => SyncRole::Backup,
            other => return Err(err(format!("{p}.state"), format!("'{other}' is neither \"master\" nor \"backup\""))),
        };
        if out.iter().any(|d| d.role == role) {
            return Err(err(
                format!("{p}.state"),
                format!("a second {} daemon (one of each runs at most)", role.name()),
            ));
        }
        let name = &r.mcast_interface;
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
            return Err(err(format!("{p}.mcast_interface"), format!("'{name}' is not an interface name")));
        }
        let group = match &r.mcast_group {
            None => None,
            Some(g) => match g.parse::<Ipv4Addr>() {
                Ok(a) if a.is_multicast() => Some(a),
                _ => return Err(err(format!("{p}.mcast_group"), format!("'{g}' is not an IPv4 multicast address"))),
            },
        };
        let mut peers = Vec::new();
        for (j, peer) in r.peers.iter().enumerate() {
            peers.push(
                peer.parse::<std::net::SocketAddrV4>()
                    .map_err(|_| err(format!("{p}.peers[{j}]"), format!("'{peer}' is not an IPv4 address:port")))?,
            );
        }
        if role == SyncRole::Master && r.forward {
            return Err(err(format!("{p}.forward"), "only for a backup"));
        }
        let opt = |name: &str, v: Option<u64>, lo: u64, hi: u64| {
            v.map(|v| range(&format!("{p}.{name}"), v, lo, hi)).transpose()
        };
        out.push(DaemonSpec {
            role,
            mcast_interface: name.clone(),
            syncid: opt("syncid", r.syncid, 0, 255)?.unwrap_or(0) as u8,
            maxlen: opt("sync_maxlen", r.sync_maxlen, 56, 65535 - 28)?.map(|v| v as u16),
            group,
            port: opt("mcast_port", r.mcast_port, 1, 65535)?.map(|v| v as u16),
            ttl: opt("mcast_ttl", r.mcast_ttl, 1, 255)?.map(|v| v as u8),
            peers,
            forward: r.forward,
        });
    }
    Ok(out)
}

fn check(p: &str, c: &RawCheck) -> Result<CheckSpec, ConfigError> {
    let kind = match c.kind.as_str() {
        "tcp" => {
            for (name, given) in
                [("path", c.path.is_some()), ("status", c.status.is_some()), ("host", c.host.is_some())]
            {
                if given {
                    return Err(err(format!("{p}.{name}"), "only for kind \"http\""));
                }
            }
            CheckKind::Tcp
        }
        "http" => {
            let path = c.path.clone().unwrap_or_else(|| "/".into());
            if !path.starts_with('/') || path.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                return Err(err(format!("{p}.path"), format!("'{path}' is not an absolute path without spaces")));
            }
            if let Some(h) = &c.host {
                if h.is_empty() || h.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                    return Err(err(format!("{p}.host"), format!("'{h}' is not a host name")));
                }
            }
            let status = range(&format!("{p}.status"), c.status.unwrap_or(200), 100, 599)? as u16;
            CheckKind::Http { path, status, host: c.host.clone() }
        }
        other => return Err(err(format!("{p}.kind"), format!("'{other}' is not a check (tcp, http)"))),
    };
    let port = c.port.map(|v| range(&format!("{p}.port"), v as u64, 1, 65535)).transpose()?.map(|v| v as u16);
    let interval = range(&format!("{p}.interval_ms"), c.interval_ms.unwrap_or(5000), 10, 3_600_000)?;
    // A timeout may exceed the interval: a new check starts every interval while earlier ones
    // wait (at most 8 of a server at once, see control::health).
    let timeout = range(&format!("{p}.timeout_ms"), c.timeout_ms.unwrap_or(interval.min(3000)), 1, 8 * interval)?;
    Ok(CheckSpec {
        kind,
        port,
        interval: std::time::Duration::from_millis(interval),
        timeout: std::time::Duration::from_millis(timeout),
        rise: range(&format!("{p}.rise"), c.rise.unwrap_or(2), 1, 100)? as u32,
        fall: range(&format!("{p}.fall"), c.fall.unwrap_or(3), 1, 100)? as u32,
    })
}

fn timeouts(t: &RawTimeouts) -> Result<Timeouts, ConfigError> {
    let mut out = Timeouts::default();
    let fields = [
        ("tcp_established", t.tcp_established, TcpState::Established as u8),
        ("tcp_syn_sent", t.tcp_syn_sent, TcpState::SynSent as u8),
        ("tcp_syn_recv", t.tcp_syn_recv, TcpState::SynRecv as u8),
        ("tcp_fin_wait", t.tcp_fin_wait, TcpState::FinWait as u8),
        ("tcp_time_wait", t.tcp_time_wait, TcpState::TimeWait as u8),
        ("tcp_close", t.tcp_close, TcpState::Close as u8),
        ("tcp_close_wait", t.tcp_close_wait, TcpState::CloseWait as u8),
        ("tcp_last_ack", t.tcp_last_ack, TcpState::LastAck as u8),
        ("tcp_listen", t.tcp_listen, TcpState::Listen as u8),
        ("tcp_synack", t.tcp_synack, TcpState::SynAck as u8),
        ("udp", t.udp, UDP_STATE),
    ];
    for (name, v, idx) in fields {
        if let Some(v) = v {
            out.secs[idx as usize] =
                range(&format!("conn.timeouts.{name}"), v, 1, MAX_PERSISTENCE_TIMEOUT as u64)? as u32;
        }
    }
    Ok(out)
}

fn service(p: &str, s: &RawService) -> Result<VirtualService, ConfigError> {
    let proto = match s.proto.as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => return Err(err(format!("{p}.proto"), format!("'{other}' is not a protocol (tcp, udp)"))),
    };
    let vip = ip(&format!("{p}.vip"), &s.vip)?;
    let port = range(&format!("{p}.port"), s.port as u64, 0, 65535)? as u16;
    let scheduler = match &s.scheduler {
        None => SchedKind::Wlc,
        Some(n) => SchedKind::parse(n).ok_or_else(|| {
            err(format!("{p}.scheduler"), format!("'{n}' is not a scheduler (rr, wrr, lc, wlc, sed, nq, sh, dh, mh)"))
        })?,
    };
    let mut flags = SchedFlags::default();
    for (i, f) in s.sched_flags.iter().enumerate() {
        let fp = format!("{p}.sched_flags[{i}]");
        let (prefix, what) = f.split_once('-').unwrap_or(("", f.as_str()));
        let ok_prefix = matches!((prefix, scheduler), ("sh", SchedKind::Sh) | ("mh", SchedKind::Mh));
        match (ok_prefix, what) {
            (true, "fallback") => flags.fallback = true,
            (true, "port") => flags.port = true,
            _ => {
                return Err(err(
                    fp,
                    format!(
                        "'{f}' is not a flag of scheduler {scheduler} (sh-fallback, sh-port, mh-fallback, mh-port)"
                    ),
                ))
            }
        }
    }
    let persistence = match (s.persistence_timeout, &s.persistence_netmask) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(err(format!("{p}.persistence_netmask"), "needs persistence_timeout"));
        }
        (Some(t), m) => {
            let timeout_s = range(&format!("{p}.persistence_timeout"), t, 1, MAX_PERSISTENCE_TIMEOUT as u64)? as u32;
            let netmask = match m {
                Some(m) => netmask(&format!("{p}.persistence_netmask"), m)?,
                None => Ipv4Addr::BROADCAST,
            };
            Some(Persistence { timeout_s, netmask })
        }
    };
    if port == 0 && persistence.is_none() {
        return Err(err(format!("{p}.port"), "0 (all ports) needs persistence_timeout"));
    }
    let mh_table_size = match s.mh_table_size {
        None => MH_DEFAULT_TABLE_SIZE,
        Some(n) => {
            let n = range(&format!("{p}.mh_table_size"), n, 251, 131_071)? as u32;
            if !is_prime(n as u32) {
                return Err(err(format!("{p}.mh_table_size"), format!("{n} is not a prime")));
            }
            n
        }
    };
    let mut servers: Vec<RealServer> = Vec::new();
    for (i, r) in s.real_servers.iter().enumerate() {
        let rp = format!("{p}.real_servers[{i}]");
        let addr = ip(&format!("{rp}.addr"), &r.addr)?;
        let mode = match &r.mode {
            None => FwdMode::Dr,
            Some(m) => FwdMode::parse(m).ok_or_else(|| {
                err(format!("{rp}.mode"), format!("'{m}' is not a forwarding mode (nat, fullnat, tun, dr)"))
            })?,
        };
        let mut rport = match r.port {
            Some(v) => range(&format!("{rp}.port"), v as u64, 0, 65535)? as u16,
            None => port,
        };
        if matches!(mode, FwdMode::Dr | FwdMode::Tun) {
            if r.port.is_some() && rport != port {
                return Err(err(
                    format!("{rp}.port"),
                    format!("{rport}: {} servers receive the service port {port} unchanged", mode.name()),
                ));
            }
            rport = port;
        }
        let weight = range(&format!("{rp}.weight"), r.weight.unwrap_or(1), 0, 65535)? as u32;
        let u_threshold = range(&format!("{rp}.u_threshold"), r.u_threshold.unwrap_or(0), 0, i32::MAX as u64)? as u32;
        let l_threshold = range(&format!("{rp}.l_threshold"), r.l_threshold.unwrap_or(0), 0, i32::MAX as u64)? as u32;
        if u_threshold != 0 && l_threshold > u_threshold {
            return Err(err(format!("{rp}.l_threshold"), format!("{l_threshold} is above u_threshold {u_threshold}")));
        }
        if servers.iter().any(|x| x.addr == addr && x.port == rport) {
            return Err(err(format!("{rp}.addr"), format!("{addr}:{rport} is listed twice")));
        }
        servers.push(RealServer { addr, port: rport, weight, mode, u_threshold, l_threshold });
    }
    if servers.len() > u16::MAX as usize {
        return Err(err(format!("{p}.real_servers"), "too many real servers"));
    }
    let mut vs = VirtualService::new(proto, vip, port, scheduler);
    vs.flags = flags;
    vs.persistence = persistence;
    vs.mh_table_size = mh_table_size;
    vs.servers = servers;
    if s.toa && proto != Proto::Tcp {
        return Err(err(format!("{p}.toa"), format!("TOA is a TCP option; this is a {} service", proto.name())));
    }
    vs.toa = s.toa;
    Ok(vs)
}

/// Checks across services: no duplicate (proto, vip, port).
fn check_services(services: &[VirtualService]) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, s) in services.iter().enumerate() {
        if !seen.insert((s.proto, s.vip, s.port)) {
            return Err(err(
                format!("services[{i}]"),
                format!("{} {}:{} is listed twice", s.proto.name(), s.vip, s.port),
            ));
        }
        if s.servers.len() > u16::MAX as usize {
            return Err(err(format!("services[{i}].real_servers"), "too many real servers"));
        }
    }
    if services.len() > u16::MAX as usize {
        return Err(err("services", "too many services"));
    }
    Ok(())
}
