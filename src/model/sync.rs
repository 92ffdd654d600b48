//! One connection as IPVS's connection sync carries it (protocol version 1): what a master's
//! workers hand to the sync daemon, and what a backup's daemon hands to its workers. Values
//! are IPVS's own (flags `IP_VS_CONN_F_*`, TCP state numbers), addresses and ports host order.

/// A synced connection or persistence template.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyncConn {
    pub proto: u8,
    /// `IP_VS_CONN_F_*` ([`sync_flags`]); the forwarding method in the low three bits.
    pub flags: u32,
    /// IPVS's state number (TCP `IP_VS_TCP_S_*`; UDP 0).
    pub state: u16,
    pub caddr: u32,
    pub cport: u16,
    pub vaddr: u32,
    pub vport: u16,
    pub daddr: u32,
    pub dport: u16,
    pub fwmark: u32,
    /// The state's timeout in seconds (0: the receiver uses its own).
    pub timeout_s: u32,
    /// FULLNAT's local address and port (xvs's own option; 0 for the other methods).
    pub laddr: u32,
    pub lport: u16,
}

/// IPVS's connection flags (`include/uapi/linux/ip_vs.h`).
pub mod sync_flags {
    /// The forwarding method (bits 0-2).
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const LOCALNODE: u32 = 0x0001;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    pub const BYPASS: u32 = 0x0004;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const OUT_SEQ: u32 = 0x0200;
    pub const IN_SEQ: u32 = 0x0400;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
}

impl SyncConn {
    pub fn is_template(&self) -> bool {
        self.flags & sync_flags::TEMPLATE != 0
    }
    pub fn is_inactive(&self) -> bool {
        self.flags & sync_flags::INACTIVE != 0
    }
}

/// Which sync daemon: a master sends its connections, a backup installs a master's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncRole {
    Master,
    Backup,
}

impl DaemonSpec {
    /// A daemon of `role` on `mcast_interface`, syncid 0, IPVS's defaults for the rest.
    pub fn new(role: SyncRole, mcast_interface: &str) -> DaemonSpec {
        DaemonSpec {
            role,
            mcast_interface: mcast_interface.to_string(),
            syncid: 0,
            maxlen: None,
            group: None,
            port: None,
            ttl: None,
            peers: Vec::new(),
            forward: false,
        }
    }
}

impl SyncRole {
    pub fn name(self) -> &'static str {
        match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
        }
    }
}

/// A sync daemon as `ipvsadm --start-daemon` or config.json's `sync` starts it. Unset
/// values take IPVS's defaults when it starts (group 224.0.0.81, port 8848, TTL 1, datagrams
/// of the interface's MTU less 28).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DaemonSpec {
    pub role: SyncRole,
    pub mcast_interface: String,
    pub syncid: u8,
    pub maxlen: Option<u16>,
    pub group: Option<std::net::Ipv4Addr>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    /// A master: unicast peers it sends to instead of the group (xvs's addition, for
    /// networks without multicast). A backup: the only senders it takes datagrams from
    /// (IPVS takes any).
    #[serde(default)]
    pub peers: Vec<std::net::SocketAddrV4>,
    /// A backup forwards the VIPs' traffic that reaches it (IPVS's `backup_only` 0). By
    /// default a director running only a backup daemon leaves them to the kernel.
    #[serde(default)]
    pub forward: bool,
}
