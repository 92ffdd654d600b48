//! A connection as the control plane lists it (`ipvsadm -L -c`), and how many a worker holds.

/// Most connections and templates one worker's table holds (`conn.max_per_worker`'s bound):
/// 2^23 - 1, so that a slab index fits the 23 bits the table's cold links keep it in (the
/// 9 bits beside it hold the connection's sync bookkeeping, saving 4 bytes a connection).
pub const MAX_CONNS_PER_WORKER: u32 = (1 << 23) - 1;

/// One connection or persistence template as `ipvsadm -c` lists it (control path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnEntry {
    pub proto: u8,
    /// [`TcpState`] as u8, or [`UDP_STATE`].
    pub state: u8,
    pub template: bool,
    pub expires_s: u32,
    pub client: (std::net::Ipv4Addr, u16),
    pub virt: (std::net::Ipv4Addr, u16),
    pub dest: (std::net::Ipv4Addr, u16),
}
