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
    let addr_delta = word_terms(old, addr);
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

/// NAT's and FULLNAT's whole rewrite of a parsed frame: the source's address and port (if
/// `src`), the destination's (if `dst`), the TTL decremented and the MACs set, each checksum
/// updated once for all of it (the same bytes as [`set_endpoint`] for each end, then
/// [`route`]; a property test holds it to them). The common frame (an option-less IPv4
/// header, TCP or UDP) is rewritten on its fixed first 52 or 42 bytes, one length check for
/// everything; any other goes the general way. Always inlined: each caller's ends are known
/// there, and the code for an absent one goes.
#[inline(always)]
pub fn rewrite_routed(
    f: &mut [u8],
    l4: L4,
    src: Option<(u32, u16)>,
    dst: Option<(u32, u16)>,
    dst_mac: MacAddr,
    src_mac: MacAddr,
) {
    if l4.off == ETH_LEN + 20 {
        match l4.proto {
            PROTO_TCP => {
                if let Some(h) = f.first_chunk_mut::<{ ETH_LEN + 20 + 18 }>() {
                    return rewrite_routed_fixed(h, 16, false, src, dst, dst_mac, src_mac);
                }
            }
            PROTO_UDP => {
                if let Some(h) = f.first_chunk_mut::<{ ETH_LEN + 20 + 8 }>() {
                    return rewrite_routed_fixed(h, 6, true, src, dst, dst_mac, src_mac);
                }
            }
            _ => {}
        }
    }
    if let Some((addr, port)) = src {
        set_endpoint(f, l4, End::Src, addr, port);
    }
    if let Some((addr, port)) = dst {
        set_endpoint(f, l4, End::Dst, addr, port);
    }
    route(f, dst_mac, src_mac);
}

/// [`rewrite_routed`] on the fixed headers `h` (Ethernet, a 20-byte IPv4 header, then the
/// transport header with its checksum at `csum_at`). RFC 1624 eqn. 3 with every change's
/// terms summed first: `~m + m'` for each address and port word, and 0xfeff for the TTL's
/// word (see [`Ipv4Packet::decrement_ttl`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rewrite_routed_fixed<const N: usize>(
    h: &mut [u8; N],
    csum_at: usize,
    udp: bool,
    src: Option<(u32, u16)>,
    dst: Option<(u32, u16)>,
    dst_mac: MacAddr,
    src_mac: MacAddr,
) {
    const IP: usize = ETH_LEN;
    const L4_AT: usize = ETH_LEN + 20;
    let (mut addr_delta, mut port_delta) = (0u32, 0u32);
    if let Some((addr, port)) = src {
        let (a, p) = set_end(h, IP + 12, L4_AT, addr, port);
        (addr_delta, port_delta) = (addr_delta + a, port_delta + p);
    }
    if let Some((addr, port)) = dst {
        let (a, p) = set_end(h, IP + 16, L4_AT + 2, addr, port);
        (addr_delta, port_delta) = (addr_delta + a, port_delta + p);
    }
    h[IP + 8] = h[IP + 8].wrapping_sub(1);
    let ip_csum = u16::from_be_bytes([h[IP + 10], h[IP + 11]]);
    h[IP + 10..IP + 12].copy_from_slice(&(!fold(!ip_csum as u32 + addr_delta + 0xfeff)).to_be_bytes());
    let at = L4_AT + csum_at;
    let c = u16::from_be_bytes([h[at], h[at + 1]]);
    // UDP's rule as in `set_port`. Shared as a function, it cost DR 5 and FULLNAT 3
    // instructions a packet, in the register allocation of the pipeline's inlined body.
    if !(udp && c == 0) {
        let mut new = !fold(!c as u32 + addr_delta + port_delta);
        if udp && new == 0 {
            new = 0xffff;
        }
        h[at..at + 2].copy_from_slice(&new.to_be_bytes());
    }
    h[..6].copy_from_slice(&dst_mac.0);
    h[6..12].copy_from_slice(&src_mac.0);
}

/// RFC 1624 eqn. 3's terms `~m + m'` for a 32-bit field changing from `old` to `new`, a
/// 16-bit word at a time.
#[inline(always)]
fn word_terms(old: u32, new: u32) -> u32 {
    (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff)
}

/// One end's address and port set in the fixed headers `h`; RFC 1624's `~m + m'` terms of
/// the address's and the port's change.
#[inline(always)]
fn set_end<const N: usize>(h: &mut [u8; N], addr_at: usize, port_at: usize, addr: u32, port: u16) -> (u32, u32) {
    let old = u32::from_be_bytes([h[addr_at], h[addr_at + 1], h[addr_at + 2], h[addr_at + 3]]);
    h[addr_at..addr_at + 4].copy_from_slice(&addr.to_be_bytes());
    let old_port = u16::from_be_bytes([h[port_at], h[port_at + 1]]);
    h[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    (word_terms(old, addr), !old_port as u32 + port as u32)
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

        /// NAT's and FULLNAT's one-pass rewrite writes what the per-end rewrites and `route`
        /// write in turn: either end, both or none, TCP, UDP and another protocol, an IPv4
        /// header with options (the general way), checksums 0, 0xffff and any other, and
        /// frames too short for the fixed headers.
        #[test]
        fn routed_rewrite_matches_the_rewrites_in_turn(
            mut frame in prop::collection::vec(any::<u8>(), 30..80),
            proto in prop::sample::select(vec![PROTO_TCP, PROTO_UDP, 1u8]),
            options in any::<bool>(),
            src in prop::option::of((any::<u32>(), any::<u16>())),
            dst in prop::option::of((any::<u32>(), any::<u16>())),
            csum in prop::sample::select(vec![None, Some(0u16), Some(0xffff), Some(1)]),
            ip_csum in prop::sample::select(vec![None, Some(0u16), Some(0xffff), Some(0xfeff)]),
            ttl in 1u8..,
            macs in (any::<[u8; 6]>(), any::<[u8; 6]>()),
        ) {
            let l4 = L4 { off: ETH_LEN + if options { 24 } else { 20 }, proto };
            let at = if proto == PROTO_TCP { l4.off + 16 } else { l4.off + 6 };
            if let (Some(c), Some(b)) = (csum, frame.get_mut(at..at + 2)) {
                b.copy_from_slice(&c.to_be_bytes());
            }
            if let (Some(c), Some(b)) = (ip_csum, frame.get_mut(ETH_LEN + 10..ETH_LEN + 12)) {
                b.copy_from_slice(&c.to_be_bytes());
            }
            if let Some(b) = frame.get_mut(ETH_LEN + 8) {
                *b = ttl;
            }
            let (dst_mac, src_mac) = (MacAddr(macs.0), MacAddr(macs.1));
            let mut want = frame.clone();
            if let Some((a, p)) = src {
                set_endpoint(&mut want, l4, End::Src, a, p);
            }
            if let Some((a, p)) = dst {
                set_endpoint(&mut want, l4, End::Dst, a, p);
            }
            route(&mut want, dst_mac, src_mac);
            rewrite_routed(&mut frame, l4, src, dst, dst_mac, src_mac);
            prop_assert_eq!(frame, want);
        }
    }
}
