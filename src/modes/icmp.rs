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
