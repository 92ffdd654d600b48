//! Forwarding modes: in-place rewrites of a frame's headers.
//!
//! Every function takes the frame's bytes (Ethernet header first) and an [`L4`] describing
//! where the IPv4 and transport headers are; they keep every checksum right through RFC 1624
//! incremental updates and never allocate.

pub mod dr;
pub mod fullnat;
pub mod icmp;
pub mod nat;
pub mod toa;
pub mod tun;

use crate::wire::ethernet::HEADER_LEN as ETH_LEN;
use crate::wire::ipv4::{Ipv4Packet, PROTO_TCP, PROTO_UDP};
use crate::wire::tcp::TcpSegment;
use crate::wire::udp::UdpDatagram;
use crate::wire::{EthernetFrame, MacAddr};

/// Where the headers of a parsed IPv4 TCP/UDP frame are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4 {
    /// Offset of the transport header (14 + IHL*4).
    pub off: usize,
    /// IP protocol number (6 or 17).
    pub proto: u8,
}

/// Which end of the flow a rewrite changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Src,
    Dst,
}

/// Rewrites one end's address and port through the packet views, whose setters keep the IPv4
/// header checksum and the transport checksum (pseudo-header + port) right. `f` holds at least
/// the transport header (checked on parse).
#[inline]
pub fn set_endpoint(f: &mut [u8], l4: L4, end: End, addr: u32, port: u16) {
    let (ip, seg) = f[ETH_LEN..].split_at_mut(l4.off - ETH_LEN);
    let mut ip = Ipv4Packet::new_unchecked(ip);
    let old = match end {
        End::Src => ip.src_addr(),
        End::Dst => ip.dst_addr(),
    };
    match end {
        End::Src => ip.set_src_addr(addr),
        End::Dst => ip.set_dst_addr(addr),
    }
    match l4.proto {
        PROTO_TCP => {
            let mut t = TcpSegment::new_unchecked(seg);
            t.adjust_for_addr(old, addr);
            match end {
                End::Src => t.set_src_port(port),
                End::Dst => t.set_dst_port(port),
            }
        }
        PROTO_UDP => {
            let mut u = UdpDatagram::new_unchecked(seg);
            u.adjust_for_addr(old, addr);
            match end {
                End::Src => u.set_src_port(port),
                End::Dst => u.set_dst_port(port),
            }
        }
        _ => {}
    }
}

/// Routes a parsed frame one hop: the IPv4 TTL decremented (header checksum fixed) and the
/// Ethernet destination and source set. Works on the fixed first 34 bytes (Ethernet and an
/// option-less IPv4 header, which every parsed frame holds), so the compiler checks the length
/// once; a shorter buffer is left alone.
#[inline]
pub fn route(f: &mut [u8], dst: MacAddr, src: MacAddr) {
    let Some(h) = f.first_chunk_mut::<34>() else { return };
    Ipv4Packet::new_unchecked(&mut h[ETH_LEN..]).decrement_ttl();
    let mut eth = EthernetFrame::new_unchecked(&mut h[..]);
    eth.set_dst(dst);
    eth.set_src(src);
}

/// Decrements the IPv4 TTL, fixing the header checksum.
#[inline]
pub fn decrement_ttl(f: &mut [u8]) {
    Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]).decrement_ttl();
}

/// Sets the Ethernet destination and source.
#[inline]
pub fn set_macs(f: &mut [u8], dst: MacAddr, src: MacAddr) {
    let mut eth = EthernetFrame::new_unchecked(f);
    eth.set_dst(dst);
    eth.set_src(src);
}
