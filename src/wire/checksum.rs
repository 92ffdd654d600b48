//! Internet checksum (RFC 1071) and incremental updates (RFC 1624, eqn. 3:
//! `HC' = ~(~HC + ~m + m')`).

/// One's-complement sum of `data` added to `sum` (not folded, not inverted). Big-endian
/// 32-bit words are summed into a 64-bit accumulator (no carry handling per word), which is
/// equivalent to summing the 16-bit words once folded.
#[inline]
pub fn sum_bytes(sum: u32, data: &[u8]) -> u32 {
    let mut acc = sum as u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u32::from_be_bytes(tail) as u64;
    // Fold 64 -> 32 bits keeping the one's-complement carries.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    ((acc & 0xffff) + (acc >> 16)) as u32
}

/// Whether an option-less IPv4 header (20 bytes) sums to all ones, in two 64-bit
/// native-order words and a 32-bit one, each carry added back in: a one's-complement sum
/// does not depend on the byte order or the word width (2^16 - 1 divides 2^32 - 1 and
/// 2^64 - 1), and all ones is all ones either way. (Five 32-bit words summed in 64 bits,
/// then folded, were 3 instructions more.)
#[inline]
pub fn ipv4_header_ok(h: &[u8]) -> bool {
    let Some(h) = h.first_chunk::<20>() else { return false };
    let q = |i: usize| u64::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3], h[i + 4], h[i + 5], h[i + 6], h[i + 7]]);
    let w = u32::from_ne_bytes([h[16], h[17], h[18], h[19]]) as u64;
    // One's-complement sums in 64 bits, each carry added back in (end-around).
    let (s, c) = q(0).overflowing_add(q(8));
    let (s, c2) = s.overflowing_add(w + c as u64);
    let s = s + c2 as u64;
    let (s, c) = (s as u32).overflowing_add((s >> 32) as u32);
    let s = s + c as u32;
    let (s, c) = (s as u16).overflowing_add((s >> 16) as u16);
    s.wrapping_add(c as u16) == 0xffff
}

/// Folds a 32-bit one's-complement sum to 16 bits.
#[inline]
pub fn fold(sum: u32) -> u16 {
    // Two end-around carries always suffice for 32 bits (the first leaves at most 0x1fffe,
    // the second at most 0xffff): no loop, no branch.
    let s = (sum & 0xffff) + (sum >> 16);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// The checksum field value for `data` (inverted folded sum).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_bytes(0, data))
}

/// Sum of the IPv4 pseudo-header for TCP/UDP.
#[inline]
pub fn pseudo_header_sum(src: u32, dst: u32, proto: u8, l4_len: u16) -> u32 {
    (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto as u32 + l4_len as u32
}

/// RFC 1624 update of checksum field `csum` when a 16-bit word changes from `old` to `new`.
#[inline]
pub fn update_u16(csum: u16, old: u16, new: u16) -> u16 {
    let sum = (!csum as u32) + (!old as u32) + new as u32;
    !fold(sum)
}

/// RFC 1624 update of checksum field `csum` when a 32-bit word changes from `old` to `new`.
#[inline]
pub fn update_u32(csum: u16, old: u32, new: u32) -> u16 {
    let sum = (!csum as u32) + (!(old >> 16) as u16 as u32) + (!(old as u16) as u32) + (new >> 16) + (new & 0xffff);
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: sum of 0001 f203 f4f5 f6f7 = ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_bytes(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut data = [0x45u8, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 0x40, 0x11, 0, 0, 198, 18, 0, 1, 198, 18, 0, 100];
        let c0 = checksum(&data);
        let old = u32::from_be_bytes([data[16], data[17], data[18], data[19]]);
        let new = u32::from_be_bytes([198, 19, 7, 9]);
        data[16..20].copy_from_slice(&new.to_be_bytes());
        assert_eq!(update_u32(c0, old, new), checksum(&data));
        let c1 = checksum(&data);
        data[8] = 0x3f; // TTL 64 -> 63: word 0x4011 -> 0x3f11
        assert_eq!(update_u16(c1, 0x4011, 0x3f11), checksum(&data));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook RFC 1071 loop over 16-bit words, as an oracle.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], 0]) };
            s += w as u32;
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn fold_of_the_largest_sums() {
        assert_eq!(fold(u32::MAX), 0xffff);
        assert_eq!(fold(0xffff_0000), 0xffff);
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(0), 0);
    }

    proptest! {
        /// The two-step fold is the textbook loop, for any 32-bit sum.
        #[test]
        fn fold_matches_the_loop(sum in any::<u32>()) {
            let mut s = sum;
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            prop_assert_eq!(fold(sum), s as u16);
        }

        #[test]
        fn word_sum_matches_rfc1071(data in prop::collection::vec(any::<u8>(), 0..3000), seed in any::<u16>()) {
            prop_assert_eq!(checksum(&data), reference(&data));
            prop_assert_eq!(fold(sum_bytes(seed as u32, &data)), fold(seed as u32 + !reference(&data) as u32));
        }

        /// The 64-bit end-around sums agree with RFC 1071's 16-bit one, for any 20 bytes, and
        /// for bytes mostly 0xff or 0x00 (where the carries are), a valid checksum set or not.
        #[test]
        fn header_check_matches_rfc1071(
            h in prop::array::uniform20(prop_oneof![Just(0xffu8), Just(0u8), any::<u8>()]), fix in any::<bool>(),
        ) {
            let mut h = h;
            if fix {
                h[10] = 0;
                h[11] = 0;
                let c = reference(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            prop_assert_eq!(ipv4_header_ok(&h), reference(&h) == 0);
        }
    }
}
