//! FULLNAT local addresses and ports: which local port each connection holds, who owns a
//! port, and the pool of free ones.

use super::record::Conn;
use super::shard::ConnShard;

impl ConnShard {
    /// The FULLNAT connection that owns local port `lport` (NONE if none).
    #[inline]
    pub fn lport_owner(&self, lport: u16) -> u32 {
        self.by_lport[lport as usize]
    }

    /// Whether `addr` is a FULLNAT local address of this shard's connections.
    #[inline]
    pub fn is_local_addr(&self, addr: u32) -> bool {
        self.laddrs.contains(&addr)
    }

    /// Free FULLNAT local ports.
    pub fn free_lports(&self) -> usize {
        self.lports.len()
    }

    /// FULLNAT local address of a connection.
    #[inline]
    pub fn laddr(&self, c: &Conn) -> u32 {
        self.laddrs.get(c.laddr_idx as usize).copied().unwrap_or(0)
    }

    pub(super) fn laddr_index(&mut self, laddr: u32) -> u8 {
        if let Some(i) = self.laddrs.iter().position(|a| *a == laddr) {
            return i as u8;
        }
        if self.laddrs.len() < 256 {
            self.laddrs.push(laddr);
            return (self.laddrs.len() - 1) as u8;
        }
        0
    }
}
