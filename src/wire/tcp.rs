//! TCP segments (RFC 9293): the fields a director reads and rewrites.

use super::checksum;
use super::{get_u16, set_u16, WireError};

pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const CHECKSUM: usize = 16;
}
pub const MIN_HEADER_LEN: usize = 20;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// A view of a TCP segment.
pub struct TcpSegment<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        TcpSegment { buffer }
    }
    /// Checks that the fixed header and the data offset fit.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let off = ((b[field::DATA_OFF] >> 4) as usize) * 4;
        if off < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if off > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(TcpSegment { buffer })
    }
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Full verification against the IPv4 pseudo-header.
    pub fn verify_checksum(&self, src: u32, dst: u32) -> bool {
        let b = self.buffer.as_ref();
        let s = checksum::pseudo_header_sum(src, dst, 6, b.len() as u16);
        checksum::fold(checksum::sum_bytes(s, b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    pub fn set_src_port(&mut self, port: u16) {
        let old = self.src_port();
        set_u16(self.buffer.as_mut(), field::SRC_PORT, port);
        self.adjust(old, port);
    }
    pub fn set_dst_port(&mut self, port: u16) {
        let old = self.dst_port();
        set_u16(self.buffer.as_mut(), field::DST_PORT, port);
        self.adjust(old, port);
    }
    /// Accounts for an address change in the pseudo-header.
    pub fn adjust_for_addr(&mut self, old: u32, new: u32) {
        let c = checksum::update_u32(self.checksum(), old, new);
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
    fn adjust(&mut self, old: u16, new: u16) {
        let c = checksum::update_u16(self.checksum(), old, new);
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
    /// Recomputes the checksum from scratch (for frames whose checksum was left partial by
    /// a local stack's offload).
    pub fn fill_checksum(&mut self, src: u32, dst: u32) {
        let b = self.buffer.as_mut();
        set_u16(b, field::CHECKSUM, 0);
        let s = checksum::pseudo_header_sum(src, dst, 6, b.len() as u16);
        let c = !checksum::fold(checksum::sum_bytes(s, b));
        set_u16(b, field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_checksum_repairs_a_partial_checksum() {
        // A SYN 198.18.0.2:40000 -> 198.18.0.100:80 whose checksum field holds only the
        // pseudo-header sum, as a local stack's checksum offload leaves it.
        let mut seg = [0u8; 20];
        seg[0..2].copy_from_slice(&40000u16.to_be_bytes());
        seg[2..4].copy_from_slice(&80u16.to_be_bytes());
        seg[12] = 0x50;
        seg[13] = SYN;
        let (src, dst) = (0xC612_0002, 0xC612_0064);
        let partial = checksum::fold(checksum::pseudo_header_sum(src, dst, 6, 20));
        seg[16..18].copy_from_slice(&partial.to_be_bytes());
        let mut t = TcpSegment::new_checked(&mut seg[..]).unwrap();
        assert!(!t.verify_checksum(src, dst));
        t.fill_checksum(src, dst);
        assert!(t.verify_checksum(src, dst));
        // And the incremental setters keep it right.
        t.set_dst_port(8080);
        t.adjust_for_addr(dst, 0xC613_000B);
        assert!(t.verify_checksum(src, 0xC613_000B));
    }
}
