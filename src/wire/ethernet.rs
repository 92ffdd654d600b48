//! Ethernet II frames.

use super::{get_u16, set_u16, Field, WireError};
use std::fmt;
use std::str::FromStr;

/// A 48-bit MAC address.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl FromStr for MacAddr {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next().ok_or(())?;
            if p.len() != 2 {
                return Err(());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(MacAddr(out))
    }
}

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

mod field {
    use super::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: usize = 12;
}
pub const HEADER_LEN: usize = 14;

/// A view of an Ethernet II frame.
pub struct EthernetFrame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }
    pub fn dst(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        MacAddr(m)
    }
    pub fn src(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        MacAddr(m)
    }
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&m.0);
    }
    pub fn set_src(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&m.0);
    }
    pub fn set_ethertype(&mut self, t: u16) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, t)
    }
}

/// An 802.1Q tag's length, and the VLAN id bits of its TCI.
pub const VLAN_TAG_LEN: usize = 4;
pub const VLAN_VID_MASK: u16 = 0x0fff;

/// Whether a frame carries an 802.1Q tag (after the MACs, TPID 0x8100).
#[inline]
pub fn is_vlan_tagged(d: &[u8]) -> bool {
    d.len() >= HEADER_LEN + VLAN_TAG_LEN && get_u16(d, field::ETHERTYPE) == ETHERTYPE_VLAN
}

/// Takes the 802.1Q tag out of a tagged frame (the MACs move 4 bytes towards the payload), so
/// that the frame continues as untagged; its TCI (priority, DEI, VLAN id). None, and nothing
/// changed, when the frame is not tagged.
pub fn pop_vlan(f: &mut super::Frame<'_>) -> Option<u16> {
    let d = f.data_mut();
    if !is_vlan_tagged(d) {
        return None;
    }
    let tci = get_u16(d, HEADER_LEN);
    d.copy_within(0..12, VLAN_TAG_LEN);
    let (head, len) = (f.head(), f.len());
    f.set_span(head + VLAN_TAG_LEN, len - VLAN_TAG_LEN);
    Some(tci)
}

/// Puts an 802.1Q tag with `tci` into an untagged frame (after its MACs); false, and nothing
/// changed, when the buffer has no room for it.
pub fn push_vlan(f: &mut super::Frame<'_>, tci: u16) -> bool {
    if f.len() < HEADER_LEN || !f.prepend(VLAN_TAG_LEN) {
        return false;
    }
    let d = f.data_mut();
    d.copy_within(VLAN_TAG_LEN..VLAN_TAG_LEN + 12, 0);
    set_u16(d, field::ETHERTYPE, ETHERTYPE_VLAN);
    set_u16(d, HEADER_LEN, tci);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Frame;

    #[test]
    fn a_tag_comes_out_and_goes_back_in_place() {
        let tagged: Vec<u8> =
            [&[1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0, 0xa0, 100, 8, 0][..], &[0x45; 20]].concat();
        let mut buf = [0u8; 64];
        buf[8..8 + tagged.len()].copy_from_slice(&tagged);
        let mut f = Frame::new(&mut buf, 8, tagged.len());
        assert_eq!(pop_vlan(&mut f), Some(0xa064));
        assert_eq!(f.head(), 12);
        assert_eq!(&f.data()[..14], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0]);
        assert_eq!(pop_vlan(&mut f), None, "untagged now");
        assert!(push_vlan(&mut f, 0xa064));
        assert_eq!(f.data(), &tagged[..]);
        // A frame at the start of its buffer moves towards the tail to make room.
        let mut buf = [0u8; 64];
        buf[..14].copy_from_slice(&tagged[..12].iter().chain(&[8u8, 0]).copied().collect::<Vec<_>>());
        let mut f = Frame::new(&mut buf, 0, 14);
        assert!(push_vlan(&mut f, 7));
        assert_eq!(&f.data()[12..18], &[0x81, 0, 0, 7, 8, 0]);
        let mut tiny = [0u8; 14];
        assert!(!push_vlan(&mut Frame::new(&mut tiny, 0, 14), 7), "no room");
        assert!(!is_vlan_tagged(&[0x81; 17]), "too short for a tag");
    }
}
