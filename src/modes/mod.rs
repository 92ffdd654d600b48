//! Forwarding modes: in-place rewrites of a frame's headers.
//!
//! Every function takes the frame's bytes (Ethernet header first) and an [`L4`] describing
//! where the IPv4 and transport headers are; they keep every checksum right through RFC 1624
//! incremental updates and never allocate.

pub mod dr;
pub mod fullnat;
pub mod nat;
pub mod tun;

use crate::wire::checksum;
use crate::wire::ethernet::HEADER_LEN as ETH_LEN;
use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};
use crate::wire::{get_u16, get_u32, set_u16, set_u32, MacAddr};

/// Where the headers of a parsed IPv4 TCP/UDP frame are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4 {
    /// Offset of the transport header (14 + IHL*4).
    pub off: usize,
    /// IP protocol number (6 or 17).
    pub proto: u8,
}

const IP_CSUM: usize = ETH_LEN + 10;
const IP_SRC: usize = ETH_LEN + 12;
const IP_DST: usize = ETH_LEN + 16;
const IP_TTL: usize = ETH_LEN + 8;

/// Which end of the flow a rewrite changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Src,
    Dst,
}

/// Offset of the transport checksum within the transport header, and whether zero means
/// "no checksum" (UDP).
#[inline]
fn l4_csum(proto: u8) -> Option<(usize, bool)> {
    match proto {
        PROTO_TCP => Some((16, false)),
        PROTO_UDP => Some((6, true)),
        _ => None,
    }
}

/// Rewrites one end's address and port, fixing the IPv4 header checksum and the transport
/// checksum (pseudo-header + port). `f` holds at least the transport header (checked on parse).
#[inline]
pub fn set_endpoint(f: &mut [u8], l4: L4, end: End, addr: u32, port: u16) {
    let (ip_at, port_at) = match end {
        End::Src => (IP_SRC, l4.off),
        End::Dst => (IP_DST, l4.off + 2),
    };
    let old_addr = get_u32(f, ip_at);
    let old_port = get_u16(f, port_at);
    set_u32(f, ip_at, addr);
    set_u16(f, port_at, port);
    let c = checksum::update_u32(get_u16(f, IP_CSUM), old_addr, addr);
    set_u16(f, IP_CSUM, c);
    if let Some((off, zero_is_none)) = l4_csum(l4.proto) {
        let at = l4.off + off;
        let old = get_u16(f, at);
        if zero_is_none && old == 0 {
            return;
        }
        let mut c = checksum::update_u32(old, old_addr, addr);
        c = checksum::update_u16(c, old_port, port);
        if zero_is_none && c == 0 {
            c = 0xffff;
        }
        set_u16(f, at, c);
    }
}

/// Decrements the IPv4 TTL, fixing the header checksum.
#[inline]
pub fn decrement_ttl(f: &mut [u8]) {
    let old = get_u16(f, IP_TTL);
    f[IP_TTL] = f[IP_TTL].wrapping_sub(1);
    let new = get_u16(f, IP_TTL);
    let c = checksum::update_u16(get_u16(f, IP_CSUM), old, new);
    set_u16(f, IP_CSUM, c);
}

/// Sets the Ethernet destination and source.
#[inline]
pub fn set_macs(f: &mut [u8], dst: MacAddr, src: MacAddr) {
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
}
