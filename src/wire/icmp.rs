//! ICMPv4 messages (RFC 792): the director builds "fragmentation needed" (RFC 1191) and reads
//! error messages that quote a connection's packet.

use super::checksum;
use super::{get_u16, set_u16, WireError};

pub const HEADER_LEN: usize = 8;
pub const TYPE_ECHO_REPLY: u8 = 0;
pub const TYPE_DEST_UNREACH: u8 = 3;
pub const TYPE_ECHO_REQUEST: u8 = 8;
pub const TYPE_TIME_EXCEEDED: u8 = 11;
pub const CODE_FRAG_NEEDED: u8 = 4;

/// A view of an ICMP message.
pub struct IcmpMessage<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpMessage<T> {
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(IcmpMessage { buffer })
    }
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 2)
    }
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum_bytes(0, self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpMessage<T> {
    /// Writes a destination-unreachable/fragmentation-needed header (RFC 1191) and the
    /// checksum over the whole buffer (header + quoted datagram).
    pub fn write_frag_needed(&mut self, mtu: u16) {
        let b = self.buffer.as_mut();
        b[0] = TYPE_DEST_UNREACH;
        b[1] = CODE_FRAG_NEEDED;
        set_u16(b, 2, 0);
        set_u16(b, 4, 0);
        set_u16(b, 6, mtu);
        let c = checksum::checksum(b);
        set_u16(b, 2, c);
    }
}
