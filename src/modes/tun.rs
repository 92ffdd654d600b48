//! TUN (IPVS "Tunnel"): an outer IPv4 header (protocol 4, src = DIP, dst = RIP) in front of
//! the untouched inner packet, as a Linux `ipip` tunnel expects it (RFC 2003). The real server
//! decapsulates and replies directly.
//!
//! A packet that would exceed the MTU once encapsulated is answered, when it has DF set, with
//! ICMP "fragmentation needed" (RFC 1191) carrying MTU - 20, so the client's path-MTU
//! discovery shrinks its segments; without DF it is dropped and counted (xvs does not
//! fragment).

use crate::wire::ethernet::{ETHERTYPE_IPV4, HEADER_LEN as ETH_LEN};
use crate::wire::icmp::{CODE_FRAG_NEEDED, TYPE_DEST_UNREACH};
use crate::wire::ipv4::{Ipv4Packet, FLAG_DF, PROTO_IPIP};
use crate::wire::Frame;
use crate::wire::{EthernetFrame, MacAddr};

/// Outer header length.
pub const OVERHEAD: usize = 20;

/// Why a frame could not be encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunError {
    /// Too big for the MTU; `df` says whether the sender forbade fragmentation.
    TooBig { df: bool },
    /// The frame buffer has no room for the outer header.
    NoRoom,
}

/// Encapsulates the IPv4 packet of `frame` towards `rip`. The inner packet is not touched
/// (Ethernet padding after it is dropped).
#[allow(clippy::too_many_arguments)]
pub fn encap(
    frame: &mut Frame<'_>,
    dip: u32,
    rip: u32,
    ident: u16,
    mtu: u16,
    dst_mac: MacAddr,
    src_mac: MacAddr,
) -> Result<(), TunError> {
    // The inner TTL is decremented first, as IPVS does before its MTU check (a
    // "fragmentation needed" then quotes the decremented header, as the kernel's does).
    // On the fixed first 34 bytes (Ethernet and an option-less IPv4 header, which every
    // parsed frame holds): one length check for all the reads and writes below.
    let Some(h) = frame.data_mut().first_chunk_mut::<{ ETH_LEN + 20 }>() else { return Err(TunError::NoRoom) };
    let mut inner = Ipv4Packet::new_unchecked(&mut h[ETH_LEN..]);
    inner.decrement_ttl();
    let inner_total = inner.total_len() as usize;
    // The outer header takes the inner TOS (DSCP and ECN: RFC 6040's normal mode copies the
    // ECN field as it is), the inner TTL (already decremented) and the inner DF (IPVS's
    // ip_vs_tunnel_xmit).
    let tos = inner.tos();
    let ttl = inner.ttl();
    let df = inner.flags_frag() & FLAG_DF;
    if inner_total + OVERHEAD > mtu as usize {
        return Err(TunError::TooBig { df: df != 0 });
    }
    if !frame.set_len(ETH_LEN + inner_total) || !frame.prepend(OVERHEAD) {
        return Err(TunError::NoRoom);
    }
    let Some(f) = frame.data_mut().first_chunk_mut::<{ ETH_LEN + OVERHEAD }>() else { return Err(TunError::NoRoom) };
    let mut eth = EthernetFrame::new_unchecked(&mut f[..ETH_LEN]);
    eth.set_dst(dst_mac);
    eth.set_src(src_mac);
    eth.set_ethertype(ETHERTYPE_IPV4);
    let mut outer = Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]);
    outer.write_header(tos, (inner_total + OVERHEAD) as u16, ident, df, ttl, PROTO_IPIP, dip, rip);
    Ok(())
}

/// Turns `frame` (a too-big IPv4 packet) into the ICMP "fragmentation needed" answer to its
/// sender, sent from the address it was sent to, back to the MAC it came from.
/// Returns false (frame unchanged) if the buffer cannot hold the answer.
pub fn frag_needed(frame: &mut Frame<'_>, next_hop_mtu: u16, ident: u16) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(frame.data().get(ETH_LEN..).unwrap_or(&[])) else { return false };
    let vip = ip.dst_addr();
    super::icmp::error_reply(frame, TYPE_DEST_UNREACH, CODE_FRAG_NEEDED, next_hop_mtu as u32, vip, ident)
}
