//! DR (direct routing, IPVS "Route"): the frame goes to the real server's MAC; at the IP
//! layer only the TTL changes (decremented, as IPVS does for every forwarding method); the
//! real server holds the VIP on a loopback and replies directly.

use super::route;
use crate::wire::MacAddr;

#[inline]
pub fn rewrite(f: &mut [u8], dst_mac: MacAddr, src_mac: MacAddr) {
    route(f, dst_mac, src_mac);
}
