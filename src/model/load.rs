//! What a scheduler sees of one real server: its weight and the worker's live load.

/// What a scheduler sees of one real server at pick time (kept by the worker's conn shard).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestLoad {
    pub weight: u32,
    /// Connections in TCP ESTABLISHED.
    pub active: u32,
    /// Every other connection (new TCP connections, UDP).
    pub inactive: u32,
    /// Set by the connection thresholds (`u_threshold` / `l_threshold`).
    pub overloaded: bool,
    /// Persistence templates pointing at this server (ipvsadm's PersistConn).
    pub persist: u32,
}

impl DestLoad {
    /// IPVS `ip_vs_dest_conn_overhead`: active * 256 + inactive.
    #[inline]
    pub fn overhead(&self) -> u64 {
        ((self.active as u64) << 8) + self.inactive as u64
    }
    /// Weight > 0 and not overloaded.
    #[inline]
    pub fn available(&self) -> bool {
        self.weight > 0 && !self.overloaded
    }
}
