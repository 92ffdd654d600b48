//! IPv4 packets (RFC 791).

use super::checksum;
use super::{get_u16, get_u32, set_u16, set_u32, Field, WireError};

pub mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

pub const MIN_HEADER_LEN: usize = 20;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const FLAG_DF: u16 = 0x4000;
pub const FLAG_MF: u16 = 0x2000;
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet. `new_checked` guarantees version 4, IHL >= 5, and that the
/// header and `total_len` fit in the buffer (trailing Ethernet padding is allowed).
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Ipv4Packet { buffer };
        if p.version() != 4 {
            return Err(WireError::Malformed);
        }
        let hl = p.header_len();
        let tl = p.total_len() as usize;
        if hl < MIN_HEADER_LEN || tl < hl {
            return Err(WireError::Malformed);
        }
        if p.buffer.as_ref().len() < tl {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::TOTAL_LEN)
    }
    /// The identification (which datagram a fragment belongs to).
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }
    pub fn flags_frag(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG)
    }
    /// More-fragments set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn src_addr(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SRC_ADDR.start)
    }
    pub fn dst_addr(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::DST_ADDR.start)
    }
    /// Whether the header checksum is right.
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        if self.header_len() == MIN_HEADER_LEN && b.len() >= MIN_HEADER_LEN {
            return checksum::ipv4_header_ok(b);
        }
        checksum::fold(checksum::sum_bytes(0, &b[..self.header_len()])) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the source address, updating the header checksum (RFC 1624).
    pub fn set_src_addr(&mut self, addr: u32) {
        let old = self.src_addr();
        set_u32(self.buffer.as_mut(), field::SRC_ADDR.start, addr);
        let c = checksum::update_u32(self.checksum(), old, addr);
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
    /// Sets the destination address, updating the header checksum (RFC 1624).
    pub fn set_dst_addr(&mut self, addr: u32) {
        let old = self.dst_addr();
        set_u32(self.buffer.as_mut(), field::DST_ADDR.start, addr);
        let c = checksum::update_u32(self.checksum(), old, addr);
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
    /// Decrements TTL, updating the header checksum. The TTL is the high byte of its 16-bit
    /// word, so RFC 1624's eqn. 3 `~(~HC + ~m + m')` has `~m + m' = 0xfeff` whatever the
    /// word (for TTL >= 1): one add and one fold, the same result as the general update.
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let b = self.buffer.as_mut();
        b[field::TTL] = b[field::TTL].wrapping_sub(1);
        let s = (!get_u16(b, field::CHECKSUM)) as u32 + 0xfeff;
        set_u16(b, field::CHECKSUM, !(((s & 0xffff) + (s >> 16)) as u16));
    }
    /// Writes a complete option-less header and its checksum.
    #[allow(clippy::too_many_arguments)]
    pub fn write_header(
        &mut self,
        tos: u8,
        total_len: u16,
        ident: u16,
        flags_frag: u16,
        ttl: u8,
        proto: u8,
        src: u32,
        dst: u32,
    ) {
        // The checksum from the values, not read back from the bytes (TUN writes a header a
        // packet: 28 instructions over the bytes), and the header built whole, then stored.
        let sum = (0x4500 | tos as u32)
            + total_len as u32
            + ident as u32
            + flags_frag as u32
            + ((ttl as u32) << 8 | proto as u32)
            + (src >> 16)
            + (src & 0xffff)
            + (dst >> 16)
            + (dst & 0xffff);
        let mut h = [0u8; MIN_HEADER_LEN];
        h[field::VER_IHL] = 0x45;
        h[field::TOS] = tos;
        set_u16(&mut h, field::TOTAL_LEN, total_len);
        set_u16(&mut h, field::IDENT, ident);
        set_u16(&mut h, field::FLAGS_FRAG, flags_frag);
        h[field::TTL] = ttl;
        h[field::PROTOCOL] = proto;
        set_u16(&mut h, field::CHECKSUM, !checksum::fold(sum));
        set_u32(&mut h, field::SRC_ADDR.start, src);
        set_u32(&mut h, field::DST_ADDR.start, dst);
        self.buffer.as_mut()[..MIN_HEADER_LEN].copy_from_slice(&h);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The five-word check and the TTL shortcut agree with the general computation.
        #[test]
        fn fast_checksum_paths_match_the_general_ones(mut h in prop::array::uniform20(any::<u8>()), fix in any::<bool>()) {
            h[0] = 0x45;
            h[2..4].copy_from_slice(&20u16.to_be_bytes());
            if fix {
                h[10] = 0;
                h[11] = 0;
                let c = checksum::checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            let general = checksum::fold(checksum::sum_bytes(0, &h)) == 0xffff;
            prop_assert_eq!(Ipv4Packet::new_unchecked(&h[..]).verify_checksum(), general);
            if h[8] >= 1 {
                let mut a = h;
                let old = get_u16(&a, field::TTL);
                let want = checksum::update_u16(get_u16(&a, field::CHECKSUM), old, old - 0x100);
                Ipv4Packet::new_unchecked(&mut a[..]).decrement_ttl();
                prop_assert_eq!(get_u16(&a, field::CHECKSUM), want);
                prop_assert_eq!(a[8], h[8] - 1);
            }
        }

        /// A header written whole, its checksum summed from the values, is the header written
        /// field by field with its checksum computed over the bytes.
        #[test]
        fn written_header_matches_its_bytes_checksum(
            tos in any::<u8>(), total in any::<u16>(), ident in any::<u16>(), ff in any::<u16>(),
            ttl in any::<u8>(), proto in any::<u8>(), src in any::<u32>(), dst in any::<u32>(),
        ) {
            let mut h = [0xa5u8; 24];
            Ipv4Packet::new_unchecked(&mut h[..]).write_header(tos, total, ident, ff, ttl, proto, src, dst);
            let mut want = [0u8; 20];
            want[0] = 0x45;
            want[1] = tos;
            want[2..4].copy_from_slice(&total.to_be_bytes());
            want[4..6].copy_from_slice(&ident.to_be_bytes());
            want[6..8].copy_from_slice(&ff.to_be_bytes());
            want[8] = ttl;
            want[9] = proto;
            want[12..16].copy_from_slice(&src.to_be_bytes());
            want[16..20].copy_from_slice(&dst.to_be_bytes());
            let c = checksum::checksum(&want);
            want[10..12].copy_from_slice(&c.to_be_bytes());
            prop_assert_eq!(&h[..20], &want[..]);
            prop_assert_eq!(&h[20..], &[0xa5u8; 4][..], "nothing past the header written");
        }
    }
}
