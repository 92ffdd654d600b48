//! FULLNAT: client:cport->VIP:vport becomes DIP:lport->RIP:rport, and the reply
//! RIP:rport->DIP:lport becomes VIP:vport->client:cport. The real server needs no route back
//! through the director; the local port names the worker that owns the connection.

use super::{rewrite_routed, L4};
use crate::wire::MacAddr;

/// Client -> real server.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn rewrite_in(
    f: &mut [u8],
    l4: L4,
    dip: u32,
    lport: u16,
    rip: u32,
    rport: u16,
    dst_mac: MacAddr,
    src_mac: MacAddr,
) {
    rewrite_routed(f, l4, Some((dip, lport)), Some((rip, rport)), dst_mac, src_mac);
}

/// Real server -> client.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn rewrite_out(
    f: &mut [u8],
    l4: L4,
    vip: u32,
    vport: u16,
    client: u32,
    cport: u16,
    dst_mac: MacAddr,
    src_mac: MacAddr,
) {
    rewrite_routed(f, l4, Some((vip, vport)), Some((client, cport)), dst_mac, src_mac);
}
