//! TOA, "TCP option address": a FULLNAT real server sees the director's local address as its
//! client, so the client's own address and port travel in a TCP option of the segments that
//! open the connection, as Alibaba's LVS and DPVS insert it and their `toa` kernel module on
//! the real server reads it (from the handshake's last ACK, which `accept` is given):
//!
//! ```text
//! kind 254 | length 8 | client port (2, network order) | client address (4, network order)
//! ```
//!
//! The option is appended to the segment's options: the headers move 8 bytes into the
//! frame's headroom (as `skb_push` would), leaving the payload where it is. Only opening
//! segments carry it (a SYN and the handshake's ACK), which are short; their TCP checksum is
//! computed again in full.

use super::ETH_LEN;
use crate::wire::checksum;
use crate::wire::ipv4::field as ip;
use crate::wire::tcp::{field as tcp, TcpSegment};
use crate::wire::{get_u16, set_u16, Frame};

/// The option's kind and length.
pub const KIND: u8 = 254;
pub const LEN: usize = 8;
/// TCP header length at most (data offset 15).
const MAX_TCP_HEADER: usize = 60;

/// Appends the TOA option naming `client:cport` to the TCP segment at `l4_off` of an
/// untagged IPv4 frame. False, and the frame unchanged, when it does not fit: the options
/// are full, or the packet would exceed `mtu` (IP bytes), or there is no room in the buffer.
pub fn insert(frame: &mut Frame<'_>, l4_off: usize, client: u32, cport: u16, mtu: u16) -> bool {
    let d = frame.data();
    if d.len() < l4_off + 20 || l4_off < ETH_LEN + 20 {
        return false;
    }
    let total = get_u16(d, ETH_LEN + ip::TOTAL_LEN) as usize;
    let ihl = l4_off - ETH_LEN;
    let doff = ((d[l4_off + tcp::DATA_OFF] >> 4) as usize) * 4;
    if doff < 20 || doff + LEN > MAX_TCP_HEADER || total < ihl + doff || ETH_LEN + total > d.len() {
        return false;
    }
    if total + LEN > mtu as usize {
        return false;
    }
    // Any Ethernet padding after the IP packet goes.
    let head_len = l4_off + doff;
    let new_len = ETH_LEN + total + LEN;
    if !frame.prepend(LEN) {
        return false;
    }
    let f = frame.data_mut();
    f.copy_within(LEN..LEN + head_len, 0);
    f[head_len..head_len + LEN].copy_from_slice(&toa_option(client, cport));
    f[l4_off + tcp::DATA_OFF] = ((((doff + LEN) / 4) as u8) << 4) | (f[l4_off + tcp::DATA_OFF] & 0x0f);
    let new_total = (total + LEN) as u16;
    set_u16(f, ETH_LEN + ip::TOTAL_LEN, new_total);
    let c = checksum::update_u16(get_u16(f, ETH_LEN + ip::CHECKSUM), total as u16, new_total);
    set_u16(f, ETH_LEN + ip::CHECKSUM, c);
    let src = u32::from_be_bytes([f[ETH_LEN + 12], f[ETH_LEN + 13], f[ETH_LEN + 14], f[ETH_LEN + 15]]);
    let dst = u32::from_be_bytes([f[ETH_LEN + 16], f[ETH_LEN + 17], f[ETH_LEN + 18], f[ETH_LEN + 19]]);
    TcpSegment::new_unchecked(&mut f[l4_off..ETH_LEN + total + LEN]).fill_checksum(src, dst);
    frame.set_len(new_len)
}

/// The option's 8 bytes.
pub fn toa_option(client: u32, cport: u16) -> [u8; LEN] {
    let p = cport.to_be_bytes();
    let a = client.to_be_bytes();
    [KIND, LEN as u8, p[0], p[1], a[0], a[1], a[2], a[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN with an MSS option, 2 bytes of Ethernet padding, in a buffer with headroom.
    fn syn() -> Vec<u8> {
        let mut b = vec![0u8; 64];
        let f = &mut b[..];
        f[12] = 0x08;
        let ipv = &mut f[ETH_LEN..];
        ipv[0] = 0x45;
        ipv[2..4].copy_from_slice(&44u16.to_be_bytes());
        ipv[8] = 64;
        ipv[9] = 6;
        ipv[12..16].copy_from_slice(&[198, 19, 0, 1]);
        ipv[16..20].copy_from_slice(&[198, 19, 0, 11]);
        let c = !checksum::fold(checksum::sum_bytes(0, &ipv[..20]));
        ipv[10..12].copy_from_slice(&c.to_be_bytes());
        let t = &mut ipv[20..44];
        t[0..2].copy_from_slice(&20000u16.to_be_bytes());
        t[2..4].copy_from_slice(&8080u16.to_be_bytes());
        t[12] = 6 << 4;
        t[13] = 0x02;
        t[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
        TcpSegment::new_unchecked(&mut *t).fill_checksum(0xc613_0001, 0xc613_000b);
        b
    }

    #[test]
    fn the_option_goes_after_the_others_and_every_field_follows() {
        let mut buf = vec![0u8; 256];
        let s = syn();
        buf[128..128 + 60].copy_from_slice(&s[..60]);
        let mut f = Frame::new(&mut buf, 128, 60);
        assert!(insert(&mut f, 34, 0xc612_0002, 40000, 1500));
        let d = f.data();
        assert_eq!(d.len(), 14 + 52, "the padding went, the option came");
        assert_eq!(f.head(), 120, "the headers moved into the headroom");
        assert_eq!(get_u16(d, 16), 52);
        assert!(checksum::ipv4_header_ok(&d[14..34]));
        assert_eq!(d[34 + 12] >> 4, 8);
        assert_eq!(&d[54..58], &[2, 4, 0x05, 0xb4], "the MSS option kept");
        assert_eq!(&d[58..66], &[254, 8, 0x9c, 0x40, 198, 18, 0, 2]);
        assert!(TcpSegment::new_unchecked(&d[34..66]).verify_checksum(0xc613_0001, 0xc613_000b));
    }

    #[test]
    fn no_room_leaves_the_frame_as_it_was() {
        let s = syn();
        // Too big for the MTU.
        let mut buf = vec![0u8; 256];
        buf[128..188].copy_from_slice(&s[..60]);
        let mut f = Frame::new(&mut buf, 128, 60);
        assert!(!insert(&mut f, 34, 1, 2, 48));
        assert_eq!((f.head(), f.data()), (128, &s[..60]));
        // Options already 40 bytes long.
        let mut full = s.clone();
        full[34 + 12] = 15 << 4;
        let mut buf = vec![0u8; 256];
        buf[128..188].copy_from_slice(&full[..60]);
        let mut f = Frame::new(&mut buf, 128, 60);
        assert!(!insert(&mut f, 34, 1, 2, 1500));
        assert_eq!(f.data(), &full[..60]);
        // A lying total length.
        let mut lie = s.clone();
        lie[16..18].copy_from_slice(&900u16.to_be_bytes());
        let mut buf = vec![0u8; 256];
        buf[128..188].copy_from_slice(&lie[..60]);
        let mut f = Frame::new(&mut buf, 128, 60);
        assert!(!insert(&mut f, 34, 1, 2, 1500));
    }
}
