//! DR (direct routing, IPVS "Route"): the frame goes to the real server's MAC unchanged at
//! the IP layer; the real server holds the VIP on a loopback and replies directly.

use super::set_macs;
use crate::wire::MacAddr;

#[inline]
pub fn rewrite(f: &mut [u8], dst_mac: MacAddr, src_mac: MacAddr) {
    set_macs(f, dst_mac, src_mac);
}
