//! ICMP errors the director sends about a packet it received: "fragmentation needed" (TUN,
//! too big with DF) and "time exceeded" (TTL would reach 0), built in place over the
//! received frame and sent back the way it came.

use crate::wire::ethernet::{ETHERTYPE_IPV4, HEADER_LEN as ETH_LEN};
use crate::wire::icmp::IcmpMessage;
use crate::wire::ipv4::{Ipv4Packet, PROTO_ICMP};
use crate::wire::EthernetFrame;
use crate::wire::Frame;

/// TTL of the headers the director creates (ICMP errors).
pub const TTL: u8 = 64;
/// RFC 1812: an ICMP error carries as much of the original as fits in 576 bytes.
const ICMP_MAX_QUOTE: usize = 576 - 20 - 8;

/// Turns `frame` (an IPv4 packet) into ICMP error `ty`/`code` (`rest`: the header's last 4
/// bytes) to its sender, from `src`, back to the MAC it came from, quoting the original's
/// header and as much of its payload as RFC 1812 allows. False (frame unchanged) if the
/// buffer cannot hold it.
pub fn error_reply(frame: &mut Frame<'_>, ty: u8, code: u8, rest: u32, src: u32, ident: u16) -> bool {
    let d = frame.data();
    if d.len() < ETH_LEN + 20 {
        return false;
    }
    let orig = Ipv4Packet::new_unchecked(&d[ETH_LEN..]);
    let quoted = (orig.total_len() as usize).min(ICMP_MAX_QUOTE).min(d.len() - ETH_LEN);
    let sender = orig.src_addr();
    let eth = EthernetFrame::new_unchecked(d);
    let (sender_mac, our_mac) = (eth.src(), eth.dst());
    let icmp_at = ETH_LEN + 20;
    let quote_at = icmp_at + 8;
    if !frame.set_len(quote_at + quoted) {
        return false;
    }
    let f = frame.data_mut();
    f.copy_within(ETH_LEN..ETH_LEN + quoted, quote_at);
    let mut eth = EthernetFrame::new_unchecked(&mut f[..ETH_LEN]);
    eth.set_dst(sender_mac);
    eth.set_src(our_mac);
    eth.set_ethertype(ETHERTYPE_IPV4);
    let total = (20 + 8 + quoted) as u16;
    Ipv4Packet::new_unchecked(&mut f[ETH_LEN..icmp_at]).write_header(0, total, ident, 0, TTL, PROTO_ICMP, src, sender);
    match IcmpMessage::new_checked(&mut f[icmp_at..]) {
        Ok(mut icmp) => {
            icmp.write_error(ty, code, rest);
            true
        }
        Err(_) => false,
    }
}

/// Where the parts of a received ICMP error are (offsets into the frame).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpError {
    /// The ICMP header.
    pub icmp: usize,
    /// The quoted IPv4 header and its transport header.
    pub quoted_ip: usize,
    pub quoted_l4: usize,
    /// End of the ICMP message (the outer packet's end).
    pub end: usize,
    pub ty: u8,
    pub code: u8,
}

/// Which end of the quoted packet a translation changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quoted {
    Src,
    Dst,
}

/// Rewrites one end of the packet an ICMP error quotes (address and port), keeping the quoted
/// IP header's checksum right, and the quoted transport checksum too when the quote holds it
/// (UDP's always, TCP's with 18 bytes or more of its header).
pub fn translate_quoted(f: &mut [u8], e: &IcmpError, proto: u8, end: Quoted, addr: u32, port: u16) {
    let mut ip = Ipv4Packet::new_unchecked(&mut f[e.quoted_ip..e.quoted_l4]);
    let old = match end {
        Quoted::Src => ip.src_addr(),
        Quoted::Dst => ip.dst_addr(),
    };
    match end {
        Quoted::Src => ip.set_src_addr(addr),
        Quoted::Dst => ip.set_dst_addr(addr),
    }
    let at = e.quoted_l4 + if end == Quoted::Src { 0 } else { 2 };
    let old_port = u16::from_be_bytes([f[at], f[at + 1]]);
    f[at..at + 2].copy_from_slice(&port.to_be_bytes());
    let csum_at = match proto {
        crate::wire::ipv4::PROTO_UDP => e.quoted_l4 + 6,
        _ => e.quoted_l4 + 16,
    };
    if csum_at + 2 <= e.end {
        let c = u16::from_be_bytes([f[csum_at], f[csum_at + 1]]);
        if !(proto == crate::wire::ipv4::PROTO_UDP && c == 0) {
            let c = crate::wire::checksum::update_u32(c, old, addr);
            let c = crate::wire::checksum::update_u16(c, old_port, port);
            // UDP's 0 means "no checksum": a computed 0 is sent as its other form.
            let c = if proto == crate::wire::ipv4::PROTO_UDP && c == 0 { 0xffff } else { c };
            f[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
}

/// Recomputes the ICMP checksum over the whole message (its quote changed).
pub fn fix_checksum(f: &mut [u8], e: &IcmpError) {
    f[e.icmp + 2..e.icmp + 4].copy_from_slice(&[0, 0]);
    let c = crate::wire::checksum::checksum(&f[e.icmp..e.end]);
    f[e.icmp + 2..e.icmp + 4].copy_from_slice(&c.to_be_bytes());
}
