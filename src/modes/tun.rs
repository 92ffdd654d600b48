//! TUN (IPVS "Tunnel"): an outer IPv4 header (protocol 4, src = DIP, dst = RIP) in front of
//! the untouched inner packet, as a Linux `ipip` tunnel expects it (RFC 2003). The real server
//! decapsulates and replies directly.
//!
//! A packet that would exceed the MTU once encapsulated is answered, when it has DF set, with
//! ICMP "fragmentation needed" (RFC 1191) carrying MTU - 20, so the client's path-MTU
//! discovery shrinks its segments; without DF it is dropped and counted (xvs does not
//! fragment).

use crate::wire::ethernet::{ETHERTYPE_IPV4, HEADER_LEN as ETH_LEN};
use crate::wire::icmp::IcmpMessage;
use crate::wire::ipv4::{Ipv4Packet, FLAG_DF, PROTO_ICMP, PROTO_IPIP};
use crate::wire::Frame;
use crate::wire::{EthernetFrame, MacAddr};

/// Outer header length.
pub const OVERHEAD: usize = 20;
/// TTL of the outer header and of ICMP errors the director sends.
pub const TTL: u8 = 64;
/// RFC 1812: an ICMP error carries as much of the original as fits in 576 bytes.
const ICMP_MAX_QUOTE: usize = 576 - 20 - 8;

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
    let inner = Ipv4Packet::new_unchecked(&frame.data()[ETH_LEN..]);
    let inner_total = inner.total_len() as usize;
    let tos = inner.tos();
    let df = inner.flags_frag() & FLAG_DF;
    if inner_total + OVERHEAD > mtu as usize {
        return Err(TunError::TooBig { df: df != 0 });
    }
    if !frame.set_len(ETH_LEN + inner_total) || !frame.prepend(OVERHEAD) {
        return Err(TunError::NoRoom);
    }
    let f = frame.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut f[..ETH_LEN]);
    eth.set_dst(dst_mac);
    eth.set_src(src_mac);
    eth.set_ethertype(ETHERTYPE_IPV4);
    let mut outer = Ipv4Packet::new_unchecked(&mut f[ETH_LEN..ETH_LEN + OVERHEAD]);
    outer.write_header(tos, (inner_total + OVERHEAD) as u16, ident, df, TTL, PROTO_IPIP, dip, rip);
    Ok(())
}

/// Turns `frame` (a too-big IPv4 packet) into the ICMP "fragmentation needed" answer to its
/// sender, sent from the address it was sent to, back to the MAC it came from.
/// Returns false (frame unchanged) if the buffer cannot hold the answer.
pub fn frag_needed(frame: &mut Frame<'_>, next_hop_mtu: u16, ident: u16) -> bool {
    let d = frame.data();
    if d.len() < ETH_LEN + 20 {
        return false;
    }
    let orig = Ipv4Packet::new_unchecked(&d[ETH_LEN..]);
    let quoted = (orig.total_len() as usize).min(ICMP_MAX_QUOTE).min(d.len() - ETH_LEN);
    let (client, vip) = (orig.src_addr(), orig.dst_addr());
    let eth = EthernetFrame::new_unchecked(d);
    let (client_mac, our_mac) = (eth.src(), eth.dst());
    let icmp_at = ETH_LEN + 20;
    let quote_at = icmp_at + 8;
    if !frame.set_len(quote_at + quoted) {
        return false;
    }
    let f = frame.data_mut();
    f.copy_within(ETH_LEN..ETH_LEN + quoted, quote_at);
    let mut eth = EthernetFrame::new_unchecked(&mut f[..ETH_LEN]);
    eth.set_dst(client_mac);
    eth.set_src(our_mac);
    eth.set_ethertype(ETHERTYPE_IPV4);
    let total = (20 + 8 + quoted) as u16;
    Ipv4Packet::new_unchecked(&mut f[ETH_LEN..icmp_at]).write_header(0, total, ident, 0, TTL, PROTO_ICMP, vip, client);
    match IcmpMessage::new_checked(&mut f[icmp_at..]) {
        Ok(mut icmp) => {
            icmp.write_frag_needed(next_hop_mtu);
            true
        }
        Err(_) => false,
    }
}
