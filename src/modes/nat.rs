//! NAT (IPVS "Masq"): the client's packet client->VIP:vport becomes client->RIP:rport; the
//! real server's reply RIP:rport->client becomes VIP:vport->client. The director routes
//! both ways, so TTL is decremented.

use super::{rewrite_routed, L4};
use crate::wire::MacAddr;

/// Client -> real server.
#[inline]
pub fn rewrite_in(f: &mut [u8], l4: L4, rip: u32, rport: u16, dst_mac: MacAddr, src_mac: MacAddr) {
    rewrite_routed(f, l4, None, Some((rip, rport)), dst_mac, src_mac);
}

/// Real server -> client.
#[inline]
pub fn rewrite_out(f: &mut [u8], l4: L4, vip: u32, vport: u16, dst_mac: MacAddr, src_mac: MacAddr) {
    rewrite_routed(f, l4, Some((vip, vport)), None, dst_mac, src_mac);
}
