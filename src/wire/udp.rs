//! UDP datagrams (RFC 768). A zero checksum means "none" and stays zero across rewrites.

use super::checksum;
use super::{get_u16, set_u16, WireError};

pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
pub struct UdpDatagram<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        UdpDatagram { buffer }
    }
    /// Checks the header fits and the length field is consistent with the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = get_u16(b, field::LENGTH) as usize;
        if len < HEADER_LEN || len > b.len() {
            return Err(WireError::Malformed);
        }
        Ok(UdpDatagram { buffer })
    }
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
    pub fn set_src_port(&mut self, port: u16) {
        let old = self.src_port();
        set_u16(self.buffer.as_mut(), field::SRC_PORT, port);
        self.adjust16(old, port);
    }
    pub fn set_dst_port(&mut self, port: u16) {
        let old = self.dst_port();
        set_u16(self.buffer.as_mut(), field::DST_PORT, port);
        self.adjust16(old, port);
    }
    pub fn adjust_for_addr(&mut self, old: u32, new: u32) {
        let c = self.checksum();
        if c != 0 {
            set_u16(self.buffer.as_mut(), field::CHECKSUM, nonzero(checksum::update_u32(c, old, new)));
        }
    }
    fn adjust16(&mut self, old: u16, new: u16) {
        let c = self.checksum();
        if c != 0 {
            set_u16(self.buffer.as_mut(), field::CHECKSUM, nonzero(checksum::update_u16(c, old, new)));
        }
    }
}

/// A computed UDP checksum of 0 is sent as 0xffff (0 means "no checksum").
#[inline]
fn nonzero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}
