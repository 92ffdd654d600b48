//! The service model shared by config.json, ipvsadm rules and the data plane.
//!
//! These are plain, validated values: the control plane builds them (from config.json or from
//! `ipvsadm -S -n` rules) and the data plane compiles them into a [`crate::dataplane::Tables`]
//! snapshot. Addresses are IPv4: IPv6 frames are recognised and passed to the kernel.

use std::fmt;
use std::net::Ipv4Addr;

/// Transport protocol of a virtual service (IP protocol number as discriminant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Proto {
    Tcp = 6,
    Udp = 17,
}

impl Proto {
    pub fn number(self) -> u8 {
        self as u8
    }
    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// How a packet reaches the real server (per real server, as in IPVS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FwdMode {
    /// DNAT: dst VIP:vport -> RIP:rport; replies come back through the director.
    Nat,
    /// src -> DIP:lport and dst -> RIP:rport; replies come back to DIP:lport.
    FullNat,
    /// IP-in-IP (protocol 4) to the real server, which replies directly.
    Tun,
    /// Direct routing: only MAC addresses change.
    Dr,
}

impl FwdMode {
    pub fn name(self) -> &'static str {
        match self {
            FwdMode::Nat => "nat",
            FwdMode::FullNat => "fullnat",
            FwdMode::Tun => "tun",
            FwdMode::Dr => "dr",
        }
    }
    pub fn parse(s: &str) -> Option<FwdMode> {
        match s {
            "nat" | "masq" => Some(FwdMode::Nat),
            "fullnat" => Some(FwdMode::FullNat),
            "tun" | "ipip" => Some(FwdMode::Tun),
            "dr" | "route" => Some(FwdMode::Dr),
            _ => None,
        }
    }
    /// Whether replies from the real server come back through the director.
    pub fn replies_through_director(self) -> bool {
        matches!(self, FwdMode::Nat | FwdMode::FullNat)
    }
}

/// Scheduler names, as ipvsadm spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SchedKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh,
    Dh,
    Mh,
}

impl SchedKind {
    pub const ALL: [SchedKind; 9] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Sh,
        SchedKind::Dh,
        SchedKind::Mh,
    ];
    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Sh => "sh",
            SchedKind::Dh => "dh",
            SchedKind::Mh => "mh",
        }
    }
    pub fn parse(s: &str) -> Option<SchedKind> {
        SchedKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for SchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Scheduler flags (`ipvsadm -b`): only sh and mh use them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SchedFlags {
    /// sh-fallback / mh-fallback: try other buckets when the hashed server is unavailable.
    pub fallback: bool,
    /// sh-port / mh-port: hash the source port too.
    pub port: bool,
}

/// Maglev table size used by IPVS unless configured.
pub const MH_DEFAULT_TABLE_SIZE: u32 = 4093;
/// ipvsadm's persistence timeout when `-p` has no value.
pub const DEFAULT_PERSISTENCE_TIMEOUT: u32 = 360;
/// ipvsadm's upper bound for `-p` (31 days).
pub const MAX_PERSISTENCE_TIMEOUT: u32 = 2_678_400;

/// Client persistence (`-p timeout -M netmask`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Persistence {
    /// Seconds a template outlives the last connection that used it.
    pub timeout_s: u32,
    /// Client addresses are masked with this before the template lookup.
    pub netmask: Ipv4Addr,
}

/// One real server of a virtual service.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RealServer {
    pub addr: Ipv4Addr,
    pub port: u16,
    /// 0..=65535; 0 = quiesced (no new connections, existing ones continue).
    pub weight: u32,
    pub mode: FwdMode,
    /// Overloaded when active+inactive >= u_threshold (0 = no limit).
    pub u_threshold: u32,
    /// Overload clears below this (0: below 3/4 of u_threshold).
    pub l_threshold: u32,
}

/// A virtual service: (proto, VIP, port) with its scheduler and real servers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VirtualService {
    pub proto: Proto,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub scheduler: SchedKind,
    pub flags: SchedFlags,
    pub persistence: Option<Persistence>,
    /// Maglev lookup table size (a prime); only for `mh`.
    pub mh_table_size: u32,
    /// Real servers in scheduling order (see README: list order).
    pub servers: Vec<RealServer>,
    /// FULLNAT: the client's address and port go to the real server in the TOA TCP option
    /// (kind 254) of the SYN and the handshake's ACK.
    pub toa: bool,
}

impl VirtualService {
    pub fn new(proto: Proto, vip: Ipv4Addr, port: u16, scheduler: SchedKind) -> Self {
        VirtualService {
            proto,
            vip,
            port,
            scheduler,
            flags: SchedFlags::default(),
            persistence: None,
            mh_table_size: MH_DEFAULT_TABLE_SIZE,
            servers: Vec::new(),
            toa: false,
        }
    }
}

/// Whether `n` is prime (Maglev table sizes must be).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while (d as u64) * (d as u64) <= n as u64 {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// A virtual service as ipvsadm names it: `-t|-u addr:port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    pub proto: Proto,
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl ServiceKey {
    /// The key of an existing service.
    pub fn of(svc: &VirtualService) -> ServiceKey {
        ServiceKey { proto: svc.proto, addr: svc.vip, port: svc.port }
    }

    /// Whether `svc` is the service this key names.
    pub fn matches(&self, svc: &VirtualService) -> bool {
        svc.proto == self.proto && svc.vip == self.addr && svc.port == self.port
    }
}

/// ipvsadm's rule form: `-t 10.0.0.1:80` / `-u 10.0.0.1:53`.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = match self.proto {
            Proto::Tcp => "-t",
            Proto::Udp => "-u",
        };
        write!(f, "{} {}:{}", flag, self.addr, self.port)
    }
}
