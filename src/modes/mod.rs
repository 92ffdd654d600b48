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

use crate::wire::checksum::fold;
use crate::wire::ethernet::HEADER_LEN as ETH_LEN;
use crate::wire::ipv4::{Ipv4Packet, PROTO_TCP, PROTO_UDP};
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

/// Rewrites one end's address and port, keeping the IPv4 header checksum and the transport
/// checksum (pseudo-header + port) right: one RFC 1624 update a checksum, the address and port
/// changes summed first (the same result as updating for each in turn, as the packet views'
/// setters do; a property test holds it to them). A UDP checksum of 0 (none) stays 0, a
/// computed 0 is sent as 0xffff. `f` holds at least the transport header (checked on parse);
/// a shorter buffer is left alone.
#[inline]
pub fn set_endpoint(f: &mut [u8], l4: L4, end: End, addr: u32, port: u16) {
    if l4.off < ETH_LEN + 20 || l4.off > f.len() {
        return;
    }
    let (head, seg) = f.split_at_mut(l4.off);
    let Some(ip) = head.get_mut(ETH_LEN..ETH_LEN + 20).and_then(|h| <&mut [u8; 20]>::try_from(h).ok()) else {
        return;
    };
    let (addr_at, port_at) = match end {
        End::Src => (12, 0),
        End::Dst => (16, 2),
    };
    let old = u32::from_be_bytes([ip[addr_at], ip[addr_at + 1], ip[addr_at + 2], ip[addr_at + 3]]);
    ip[addr_at..addr_at + 4].copy_from_slice(&addr.to_be_bytes());
    // RFC 1624 eqn. 3 terms of the address change: ~m + m', word by word.
    let addr_delta = (!(old >> 16) & 0xffff) + (!old & 0xffff) + (addr >> 16) + (addr & 0xffff);
    let ip_csum = u16::from_be_bytes([ip[10], ip[11]]);
    ip[10..12].copy_from_slice(&(!fold(!ip_csum as u32 + addr_delta)).to_be_bytes());
    match l4.proto {
        PROTO_TCP => {
            if let Some(t) = seg.first_chunk_mut::<18>() {
                set_port(t, port_at, 16, addr_delta, port, false);
            }
        }
        PROTO_UDP => {
            if let Some(u) = seg.first_chunk_mut::<8>() {
                set_port(u, port_at, 6, addr_delta, port, true);
            }
        }
        _ => {}
    }
}

/// The transport half of [`set_endpoint`]: the port at `port_at` set and the checksum at
/// `csum_at` updated for it and for the address change's terms `addr_delta`. UDP (`udp`):
/// a checksum of 0 (none) stays 0, a computed 0 is sent as 0xffff.
#[inline]
fn set_port<const N: usize>(h: &mut [u8; N], port_at: usize, csum_at: usize, addr_delta: u32, port: u16, udp: bool) {
    let old_port = u16::from_be_bytes([h[port_at], h[port_at + 1]]);
    h[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    let c = u16::from_be_bytes([h[csum_at], h[csum_at + 1]]);
    if udp && c == 0 {
        return;
    }
    let mut new = !fold(!c as u32 + addr_delta + !old_port as u32 + port as u32);
    if udp && new == 0 {
        new = 0xffff;
    }
    h[csum_at..csum_at + 2].copy_from_slice(&new.to_be_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::Ipv4Packet;
    use crate::wire::tcp::TcpSegment;
    use crate::wire::udp::UdpDatagram;
    use proptest::prelude::*;

    /// The oracle: the packet views' setters, one RFC 1624 update for each change in turn.
    fn set_endpoint_by_views(f: &mut [u8], l4: L4, end: End, addr: u32, port: u16) {
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
        if l4.proto == PROTO_TCP {
            let mut t = TcpSegment::new_unchecked(seg);
            t.adjust_for_addr(old, addr);
            match end {
                End::Src => t.set_src_port(port),
                End::Dst => t.set_dst_port(port),
            }
        } else if l4.proto == PROTO_UDP {
            let mut u = UdpDatagram::new_unchecked(seg);
            u.adjust_for_addr(old, addr);
            match end {
                End::Src => u.set_src_port(port),
                End::Dst => u.set_dst_port(port),
            }
        }
    }

    /// Every checksum value, so that the one update whose result is 0 is met (a UDP checksum
    /// is then sent as 0xffff; a TCP one stays as computed).
    #[test]
    fn fused_endpoint_rewrite_matches_the_views_for_every_checksum() {
        let mut base = [0u8; 64];
        for (i, b) in base.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        for proto in [PROTO_TCP, PROTO_UDP] {
            let l4 = L4 { off: ETH_LEN + 20, proto };
            let at = if proto == PROTO_TCP { l4.off + 16 } else { l4.off + 6 };
            for end in [End::Src, End::Dst] {
                let mut zeros = 0;
                for c in 0..=0xffffu16 {
                    let mut frame = base;
                    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
                    let mut want = frame;
                    set_endpoint_by_views(&mut want, l4, end, 0xC612_0B07, 8080);
                    set_endpoint(&mut frame, l4, end, 0xC612_0B07, 8080);
                    assert_eq!(frame, want, "proto {proto}, checksum {c:#06x}");
                    zeros += (want[at..at + 2] == [0, 0]) as u32 + (want[at..at + 2] == [0xff, 0xff]) as u32;
                }
                assert!(zeros >= 1, "proto {proto}: no checksum gave all ones or zero");
            }
        }
    }

    proptest! {
        /// Every byte the fused rewrite writes is what the views write, for any header bytes
        /// (checksums 0, 0xffff and anything else), either end, TCP, UDP and another protocol.
        #[test]
        fn fused_endpoint_rewrite_matches_the_views(
            mut frame in prop::collection::vec(any::<u8>(), 60..80),
            proto in prop::sample::select(vec![PROTO_TCP, PROTO_UDP, 1u8]),
            src in any::<bool>(),
            addr in any::<u32>(),
            port in any::<u16>(),
            csum in prop::sample::select(vec![None, Some(0u16), Some(0xffff), Some(1)]),
        ) {
            let l4 = L4 { off: ETH_LEN + 20, proto };
            let at = if proto == PROTO_TCP { l4.off + 16 } else { l4.off + 6 };
            if let Some(c) = csum {
                frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
            let end = if src { End::Src } else { End::Dst };
            let mut want = frame.clone();
            set_endpoint_by_views(&mut want, l4, end, addr, port);
            set_endpoint(&mut frame, l4, end, addr, port);
            prop_assert_eq!(frame, want);
        }
    }
}
