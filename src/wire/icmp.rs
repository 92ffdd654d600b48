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
/// Time exceeded: TTL reached 0 in transit.
pub const CODE_TTL_EXCEEDED: u8 = 0;

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
    /// Writes an error header (`ty`, `code`, the 4 bytes after the checksum as `rest`) and
    /// the checksum over the whole buffer (header + quoted datagram).
    pub fn write_error(&mut self, ty: u8, code: u8, rest: u32) {
        let b = self.buffer.as_mut();
        b[0] = ty;
        b[1] = code;
        set_u16(b, 2, 0);
        b[4..8].copy_from_slice(&rest.to_be_bytes());
        let c = checksum::checksum(b);
        set_u16(b, 2, c);
    }

    /// Destination unreachable / fragmentation needed (RFC 1191): the next-hop MTU in the
    /// low 16 bits of the rest.
    pub fn write_frag_needed(&mut self, mtu: u16) {
        self.write_error(TYPE_DEST_UNREACH, CODE_FRAG_NEEDED, mtu as u32);
    }
}
