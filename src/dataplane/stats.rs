//! Per-worker counters: plain integers owned by the worker (no atomics on the hot path);
//! the control plane asks for a copy over the control channel.

/// Why a frame was dropped. Every malformed frame is counted under one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    EthTruncated,
    /// IPv4 header or total length beyond the frame.
    IpTruncated,
    /// Version != 4, IHL < 5 or total length < header length.
    IpBadHeader,
    IpBadChecksum,
    /// A fragment addressed to a VIP (xvs does not reassemble).
    Fragment,
    /// TCP/UDP header truncated or inconsistent.
    L4Bad,
    /// TTL would reach 0 on a routed (NAT/FULLNAT) packet, or was 0.
    TtlExpired,
    /// A TCP segment other than a SYN for a connection the director does not know.
    NoConn,
    /// No available real server (all quiesced, overloaded or none configured).
    NoDest,
    /// The connection shard is full.
    TableFull,
    /// FULLNAT local ports exhausted.
    NoLocalPort,
    /// No next-hop MAC for the destination.
    NoNeighbour,
    /// TUN: too big for the MTU and DF clear (xvs does not fragment).
    TooBigNoDf,
    /// TUN: no room in the frame buffer for the outer header / ICMP answer.
    NoRoom,
    /// The connection's service or real server is gone from the tables.
    StaleConn,
    /// The transmit ring was full.
    TxFull,
    /// No free frame to load a frame handed over by another worker into.
    NoFrame,
}

impl DropReason {
    pub const COUNT: usize = 17;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::EthTruncated,
        DropReason::IpTruncated,
        DropReason::IpBadHeader,
        DropReason::IpBadChecksum,
        DropReason::Fragment,
        DropReason::L4Bad,
        DropReason::TtlExpired,
        DropReason::NoConn,
        DropReason::NoDest,
        DropReason::TableFull,
        DropReason::NoLocalPort,
        DropReason::NoNeighbour,
        DropReason::TooBigNoDf,
        DropReason::NoRoom,
        DropReason::StaleConn,
        DropReason::TxFull,
        DropReason::NoFrame,
    ];
    pub fn name(self) -> &'static str {
        match self {
            DropReason::EthTruncated => "eth_truncated",
            DropReason::IpTruncated => "ip_truncated",
            DropReason::IpBadHeader => "ip_bad_header",
            DropReason::IpBadChecksum => "ip_bad_checksum",
            DropReason::Fragment => "fragment",
            DropReason::L4Bad => "l4_bad",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NoConn => "no_conn",
            DropReason::NoDest => "no_dest",
            DropReason::TableFull => "table_full",
            DropReason::NoLocalPort => "no_local_port",
            DropReason::NoNeighbour => "no_neighbour",
            DropReason::TooBigNoDf => "too_big_no_df",
            DropReason::NoRoom => "no_room",
            DropReason::StaleConn => "stale_conn",
            DropReason::TxFull => "tx_full",
            DropReason::NoFrame => "no_frame",
        }
    }
}

/// Why a frame was handed to the kernel instead of forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PassReason {
    /// ARP, VLAN and other non-IP Ethernet types.
    NotIp,
    /// IPv6 (not load-balanced by xvs).
    Ipv6,
    /// ICMP (pings to the VIP or the director are answered by the kernel).
    Icmp,
    /// Neither a service's traffic nor a reply of a known connection (SSH to the director...).
    NotService,
    /// Another IP protocol.
    OtherProto,
}

impl PassReason {
    pub const COUNT: usize = 5;
    pub const ALL: [PassReason; PassReason::COUNT] =
        [PassReason::NotIp, PassReason::Ipv6, PassReason::Icmp, PassReason::NotService, PassReason::OtherProto];
    pub fn name(self) -> &'static str {
        match self {
            PassReason::NotIp => "not_ip",
            PassReason::Ipv6 => "ipv6",
            PassReason::Icmp => "icmp",
            PassReason::NotService => "not_service",
            PassReason::OtherProto => "other_proto",
        }
    }
}

/// What the pipeline decided for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) frame on this interface (index into `director.interfaces`).
    Tx(u8),
    Drop(DropReason),
    Pass(PassReason),
    /// Another worker owns this frame's connection (NAT/FULLNAT reply steering): hand it over
    /// (worker indexes fit a byte: at most 256 workers; a byte keeps the verdict two bytes).
    Handoff(u8),
}

/// Counters of one real server (IPVS's per-dest stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestCounters {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

/// A worker's datapath counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// ICMP "fragmentation needed" answers sent (TUN, DF set, too big).
    pub icmp_frag_needed: u64,
    /// Frames handed to the worker that owns their connection, and frames received that way.
    pub handoff_out: u64,
    pub handoff_in: u64,
    /// Frames that could not be handed over (the owner's ring was full).
    pub handoff_full: u64,
    /// Connections expired at their next packet because their real server was deleted
    /// (IPVS `expire_nodest_conn`).
    pub nodest_expired: u64,
    pub drops: [u64; DropReason::COUNT],
    pub passes: [u64; PassReason::COUNT],
    /// Per service slot, per real-server slot (see [`crate::dataplane::Tables`]).
    pub dests: Vec<Vec<DestCounters>>,
}

impl WorkerStats {
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }
    pub fn passed(&self, r: PassReason) -> u64 {
        self.passes[r as usize]
    }
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
    pub fn total_passes(&self) -> u64 {
        self.passes.iter().sum()
    }
}
