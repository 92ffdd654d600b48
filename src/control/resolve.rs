//! Next hops, read from the kernel over rtnetlink (control plane only): interface MACs,
//! addresses and MTUs, routes, next-hop MACs from the neighbour table, and a watch on
//! neighbour, route and link changes so that a changed MAC is followed at once.
//!
//! Next hops are resolved, not typed: for every real server and for the default route, the
//! kernel's route gives the interface and the next-hop address, and the neighbour table its
//! MAC. An address the kernel has not resolved yet is solicited (one empty UDP datagram to
//! its discard port makes the kernel ARP for it) and looked up again. A lookup that fails
//! keeps the last MAC known good for that address ([`with_resolved`]).
//!
//! Why netlink rather than `ip -j ...`: no dependency on iproute2 being installed, no fork and
//! JSON parse per lookup (a refresh of N real servers is one neighbour dump, not N processes),
//! and the kernel tells us when neighbours, routes or links change ([`ChangeWatch`]) instead of
//! us polling. Everything here is synchronous and bounded: a request never waits more than
//! about a second for the kernel, and nothing here uses `unsafe` (the sockets come from
//! `netlink-sys`, socket options from `socket2`).

use crate::config::{Config, Connected, Neighbour};
use crate::wire::MacAddr;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTIPART, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

/// Errors reading the kernel's state.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The netlink socket itself failed (open, send, receive, timeout, unparsable reply).
    #[error("netlink: {0}")]
    Netlink(String),
    /// An interface lookup failed (no such interface, no Ethernet address, ...).
    #[error("interface {iface}: {msg}")]
    Iface { iface: String, msg: String },
    /// The kernel has no usable route to `addr` (unreachable, prohibited, odd next hop, ...).
    #[error("route to {addr}: {msg}")]
    Route { addr: Ipv4Addr, msg: String },
}

/// Size of the receive buffer: one datagram can hold many messages of a dump.
const RECV_BUF: usize = 64 * 1024;
/// How long one request waits for the kernel, so a request never hangs the control plane.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a dump the kernel marks as interrupted (the table changed under it) is retried.
const DUMP_ATTEMPTS: usize = 3;
/// Interface names are at most IFNAMSIZ - 1 bytes.
const IFNAMSIZ: usize = 16;
/// Length of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;

// Message types (linux/rtnetlink.h, linux/netlink.h); the route crate keeps its copies private.
const NLMSG_OVERRUN: u16 = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;

// Neighbour states (NUD_*), as bits: the kernel reports one, but the field is a mask.
const NUD_INCOMPLETE: u16 = 0x01;
const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_DELAY: u16 = 0x08;
const NUD_PROBE: u16 = 0x10;
const NUD_FAILED: u16 = 0x20;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;

/// Why one request failed, before the caller adds what it was asking about.
#[derive(Debug)]
enum ReqError {
    /// The kernel answered with this (positive) errno.
    Errno(i32),
    /// The socket failed, timed out, or the reply made no sense.
    Other(String),
}

impl fmt::Display for ReqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReqError::Errno(e) => write!(f, "{}", io::Error::from_raw_os_error(*e)),
            ReqError::Other(s) => f.write_str(s),
        }
    }
}

/// `(length, type, flags, sequence)` of the netlink message at the start of `b`, if `b` holds a
/// whole header.
fn nl_header(b: &[u8]) -> Option<(usize, u16, u16, u32)> {
    let len = u32::from_ne_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    let ty = u16::from_ne_bytes(b.get(4..6)?.try_into().ok()?);
    let flags = u16::from_ne_bytes(b.get(6..8)?.try_into().ok()?);
    let seq = u32::from_ne_bytes(b.get(8..12)?.try_into().ok()?);
    Some((len, ty, flags, seq))
}

/// NLMSG_ALIGN.
fn nl_align(len: usize) -> usize {
    len.saturating_add(3) & !3
}

fn mac_from(bytes: &[u8]) -> Option<MacAddr> {
    let a: [u8; 6] = bytes.try_into().ok()?;
    Some(MacAddr(a))
}

/// Whether a neighbour entry in `state` has a link-layer address the kernel itself would use:
/// REACHABLE, STALE, DELAY, PROBE, PERMANENT or NOARP, and not INCOMPLETE, FAILED or NONE.
fn usable_state(state: NeighbourState) -> bool {
    const USABLE: u16 = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;
    let s = u16::from(state);
    s & USABLE != 0 && s & (NUD_INCOMPLETE | NUD_FAILED) == 0
}

/// `(ifindex, address, MAC)` of an IPv4 neighbour entry, if it is usable. An all-zero MAC
/// (NOARP entries on non-Ethernet devices) is not usable: frames sent to it go nowhere.
fn usable_entry(n: &NeighbourMessage) -> Option<(u32, Ipv4Addr, MacAddr)> {
    if n.header.family != AddressFamily::Inet || !usable_state(n.header.state) {
        return None;
    }
    let mut addr = None;
    let mut mac = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => addr = Some(*ip),
            NeighbourAttribute::LinkLayerAddress(b) => mac = mac_from(b),
            _ => {}
        }
    }
    let mac = mac.filter(|m| m.0 != [0; 6])?;
    Some((n.header.ifindex, addr?, mac))
}

/// The output interface and IPv4 gateway of a route's attributes; with multipath and no
/// top-level next hop, the first path's. A gateway that is not IPv4 (RTA_VIA inet6, MPLS) is
/// an error: we cannot ARP for it.
fn next_hop(attrs: &[RouteAttribute]) -> Result<(Option<u32>, Option<Ipv4Addr>), String> {
    let mut oif = None;
    let mut gw = None;
    let mut first_path = None;
    for a in attrs {
        match a {
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(*g),
            RouteAttribute::Gateway(other) => return Err(format!("gateway {other:?} is not IPv4")),
            RouteAttribute::Via(RouteVia::Inet(g)) => gw = Some(*g),
            RouteAttribute::Via(other) => return Err(format!("next hop via {other:?} is not IPv4")),
            RouteAttribute::MultiPath(hops) if first_path.is_none() => first_path = hops.first(),
            _ => {}
        }
    }
    if oif.is_none() {
        if let Some(h) = first_path {
            let (_, hop_gw) = next_hop(&h.attributes)?;
            oif = Some(h.interface_index).filter(|&i| i != 0);
            gw = gw.or(hop_gw);
        }
    }
    Ok((oif, gw))
}

/// The IPv4 address of an address message: IFA_LOCAL, else IFA_ADDRESS (`ip addr`'s choice).
fn ipv4_of(a: &AddressMessage) -> Option<Ipv4Addr> {
    if a.header.family != AddressFamily::Inet {
        return None;
    }
    let v4 = |want_local: bool| {
        a.attributes.iter().find_map(|at| match at {
            AddressAttribute::Local(IpAddr::V4(ip)) if want_local => Some(*ip),
            AddressAttribute::Address(IpAddr::V4(ip)) if !want_local => Some(*ip),
            _ => None,
        })
    };
    v4(true).or_else(|| v4(false))
}

/// One NETLINK_ROUTE request/response socket (blocking, with a receive timeout of 1 s so a
/// request never hangs the control plane). Not shared between threads: each request is
/// sent and its whole answer read before the next (`&mut self`).
pub struct Rtnl {
    sock: Socket,
    port: u32,
    seq: u32,
    buf: Vec<u8>,
}

impl fmt::Debug for Rtnl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rtnl").field("port", &self.port).field("seq", &self.seq).finish()
    }
}

impl Rtnl {
    /// Opens and binds the socket. Needs no privileges.
    pub fn open() -> Result<Rtnl, ResolveError> {
        let nl = |what: &str, e: io::Error| ResolveError::Netlink(format!("{what}: {e}"));
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| nl("opening a NETLINK_ROUTE socket", e))?;
        let addr = sock.bind_auto().map_err(|e| nl("binding the netlink socket", e))?;
        socket2::SockRef::from(&sock)
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(|e| nl("setting the netlink receive timeout", e))?;
        Ok(Rtnl { sock, port: addr.port_number(), seq: 0, buf: Vec::with_capacity(RECV_BUF) })
    }

    /// Sends `inner` and collects every message of the answer; retries a dump the kernel
    /// marked as interrupted (NLM_F_DUMP_INTR: the table changed mid-dump), and returns the
    /// last attempt's messages if it keeps being interrupted.
    fn request(&mut self, inner: RouteNetlinkMessage, dump: bool) -> Result<Vec<RouteNetlinkMessage>, ReqError> {
        let mut attempt = 1;
        loop {
            let (msgs, interrupted) = self.request_once(inner.clone(), dump)?;
            if !interrupted || attempt >= DUMP_ATTEMPTS {
                return Ok(msgs);
            }
            tracing::debug!("netlink dump interrupted by a change, retrying");
            attempt += 1;
        }
    }

    fn request_once(
        &mut self,
        inner: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool), ReqError> {
        // Never 0: that is what notifications carry.
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
        msg.finalize();
        let mut out = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut out);
        let kernel = SocketAddr::new(0, 0);
        let sent =
            self.sock.send_to(&out, &kernel, 0).map_err(|e| ReqError::Other(format!("sending a request: {e}")))?;
        if sent != out.len() {
            return Err(ReqError::Other(format!("short send ({sent} of {} bytes)", out.len())));
        }

        // EINTR restarts the receive (and its 1 s timer); this bounds the total.
        let deadline = Instant::now() + 2 * REPLY_TIMEOUT;
        let mut msgs = Vec::new();
        let mut interrupted = false;
        loop {
            self.buf.clear();
            // MSG_TRUNC: the result is the datagram's real length, so truncation shows.
            let n = match self.sock.recv_from(&mut self.buf, libc::MSG_TRUNC) {
                Ok((n, from)) => {
                    if from.port_number() != 0 {
                        continue; // not from the kernel
                    }
                    n
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted && Instant::now() < deadline => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(ReqError::Other(format!("no answer from the kernel within {REPLY_TIMEOUT:?}")));
                }
                Err(e) => return Err(ReqError::Other(format!("receiving an answer: {e}"))),
            };
            if n > self.buf.len() {
                return Err(ReqError::Other(format!("answer of {n} bytes does not fit {RECV_BUF} bytes")));
            }
            let data = &self.buf[..n];
            let mut off = 0;
            while off < data.len() {
                let rest = &data[off..];
                let Some((len, _ty, flags, mseq)) = nl_header(rest) else {
                    return Err(ReqError::Other("malformed answer (short header)".into()));
                };
                if !(NLMSG_HDRLEN..=rest.len()).contains(&len) {
                    return Err(ReqError::Other(format!("malformed answer (message length {len})")));
                }
                off += nl_align(len);
                if mseq != seq {
                    continue; // a late answer to an earlier request that timed out
                }
                if flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                let multipart = flags & NLM_F_MULTIPART != 0;
                match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len]) {
                    Ok(m) => match m.payload {
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                Some(code) => Err(ReqError::Errno(code.get().saturating_neg())),
                                None => Ok((msgs, interrupted)), // an ACK
                            };
                        }
                        NetlinkPayload::Done(d) => {
                            return if d.code < 0 {
                                Err(ReqError::Errno(d.code.saturating_neg()))
                            } else {
                                Ok((msgs, interrupted))
                            };
                        }
                        NetlinkPayload::Overrun(_) => return Err(ReqError::Other("kernel reported an overrun".into())),
                        NetlinkPayload::InnerMessage(inner) => {
                            msgs.push(inner);
                            if !multipart {
                                return Ok((msgs, interrupted));
                            }
                        }
                        _ => {} // NOOP, and whatever later versions add
                    },
                    Err(e) if multipart => {
                        // One entry of a dump we cannot parse should not hide the others.
                        tracing::debug!("skipping an unparsable netlink message: {e}");
                    }
                    Err(e) => return Err(ReqError::Other(format!("unparsable answer: {e}"))),
                }
            }
        }
    }

    /// The link message of interface `name` (RTM_GETLINK by name, without statistics).
    fn link(&mut self, name: &str) -> Result<LinkMessage, ResolveError> {
        let iface = |msg: String| ResolveError::Iface { iface: name.to_string(), msg };
        if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
            return Err(iface("no such interface".into()));
        }
        let mut req = LinkMessage::default();
        req.attributes.push(LinkAttribute::IfName(name.to_string()));
        req.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        match self.request(RouteNetlinkMessage::GetLink(req), false) {
            Ok(msgs) => msgs
                .into_iter()
                .find_map(|m| match m {
                    RouteNetlinkMessage::NewLink(l) => Some(l),
                    _ => None,
                })
                .ok_or_else(|| iface("no such interface".into())),
            Err(ReqError::Errno(libc::ENODEV)) => Err(iface("no such interface".into())),
            Err(e) => Err(iface(e.to_string())),
        }
    }

    /// Every 802.1Q VLAN device as (its ifindex, its parent's ifindex, VLAN id): one link
    /// dump. A route through `eth0.100` leaves by `eth0`'s port, tagged 100.
    pub fn vlans(&mut self) -> Result<Vec<(u32, u32, u16)>, ResolveError> {
        use netlink_packet_route::link::{InfoData, InfoVlan, LinkInfo};
        let mut req = LinkMessage::default();
        req.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let msgs = self.dump(RouteNetlinkMessage::GetLink(req), "links")?;
        let mut out = Vec::new();
        for m in &msgs {
            let RouteNetlinkMessage::NewLink(l) = m else { continue };
            let mut parent = None;
            let mut vid = None;
            for a in &l.attributes {
                match a {
                    LinkAttribute::Link(p) => parent = Some(*p),
                    LinkAttribute::LinkInfo(infos) => {
                        for i in infos {
                            if let LinkInfo::Data(InfoData::Vlan(v)) = i {
                                vid = v.iter().find_map(|x| match x {
                                    InfoVlan::Id(id) => Some(*id),
                                    _ => None,
                                });
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let (Some(p), Some(v)) = (parent, vid) {
                out.push((l.header.index, p, v));
            }
        }
        Ok(out)
    }

    /// ifindex of an interface by name, or an `Iface` error "no such interface".
    pub fn ifindex(&mut self, name: &str) -> Result<u32, ResolveError> {
        Ok(self.link(name)?.header.index)
    }

    /// The interface's MAC, first IPv4 address and MTU (1500 if the kernel reports none).
    /// An interface without a 6-byte hardware address (tun, wireguard) is an `Iface` error.
    pub fn interface(&mut self, name: &str) -> Result<(MacAddr, Option<Ipv4Addr>, u32), ResolveError> {
        let link = self.link(name)?;
        let iface = |msg: String| ResolveError::Iface { iface: name.to_string(), msg };
        let mut mac = None;
        let mut mtu = None;
        for a in &link.attributes {
            match a {
                LinkAttribute::Address(b) => mac = mac_from(b),
                LinkAttribute::Mtu(m) => mtu = Some(*m),
                _ => {}
            }
        }
        let mac = mac.ok_or_else(|| iface("no Ethernet address".into()))?;
        let ip = self.first_ipv4(link.header.index).map_err(|e| iface(format!("reading addresses: {e}")))?;
        Ok((mac, ip, mtu.unwrap_or(1500)))
    }

    /// Every IPv4 address with its interface and prefix length: (ifindex, address, prefix).
    pub fn ipv4_prefixes(&mut self) -> Result<Vec<(u32, Ipv4Addr, u8)>, ResolveError> {
        let mut req = AddressMessage::default();
        req.header.family = AddressFamily::Inet;
        let msgs = self.dump(RouteNetlinkMessage::GetAddress(req), "addresses")?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => ipv4_of(a).map(|ip| (a.header.index, ip, a.header.prefix_len)),
                _ => None,
            })
            .collect())
    }

    /// Every IPv4 address of the host (every interface, IFA_LOCAL else IFA_ADDRESS).
    pub fn all_ipv4(&mut self) -> Result<Vec<Ipv4Addr>, ResolveError> {
        Ok(self.ipv4_prefixes()?.into_iter().map(|(_, ip, _)| ip).collect())
    }

    /// The first IPv4 address (IFA_LOCAL, else IFA_ADDRESS) on `ifindex`, in the kernel's
    /// order (primaries first), as `ip addr` lists them.
    fn first_ipv4(&mut self, ifindex: u32) -> Result<Option<Ipv4Addr>, ResolveError> {
        Ok(self.ipv4_prefixes()?.into_iter().find(|&(i, ..)| i == ifindex).map(|(_, ip, _)| ip))
    }

    /// A dump request; its messages, or a `Netlink` error saying what was dumped.
    fn dump(&mut self, req: RouteNetlinkMessage, what: &str) -> Result<Vec<RouteNetlinkMessage>, ResolveError> {
        self.request(req, true).map_err(|e| ResolveError::Netlink(format!("dumping {what}: {e}")))
    }

    /// The kernel's route for one destination, as `ip route get ADDR` asks it (RTM_GETROUTE,
    /// not a dump, RTA_DST set, dst_len 32): (output ifindex, next-hop address), the next hop
    /// being the gateway if there is one, else `addr` itself (on-link).
    pub fn route_get(&mut self, addr: Ipv4Addr) -> Result<(u32, Ipv4Addr), ResolveError> {
        let err = |msg: String| ResolveError::Route { addr, msg };
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        req.header.destination_prefix_length = 32;
        req.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(addr)));
        let msgs = self.request(RouteNetlinkMessage::GetRoute(req), false).map_err(|e| err(e.to_string()))?;
        let r = msgs
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .ok_or_else(|| err("no route".into()))?;
        let (oif, gw) = next_hop(&r.attributes).map_err(err)?;
        let oif = oif.ok_or_else(|| err("no output interface".into()))?;
        Ok((oif, gw.unwrap_or(addr)))
    }

    /// The main table's IPv4 default route (dst_len 0, unicast, not dead, with a gateway):
    /// (ifindex, gateway), the lowest metric winning if there are several; None if there is
    /// none.
    pub fn default_route(&mut self) -> Result<Option<(u32, Ipv4Addr)>, ResolveError> {
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        let msgs = self.dump(RouteNetlinkMessage::GetRoute(req), "routes")?;
        let mut best: Option<(u32, u32, Ipv4Addr)> = None; // (metric, ifindex, gateway)
        for m in &msgs {
            let RouteNetlinkMessage::NewRoute(r) = m else { continue };
            let h = &r.header;
            if h.address_family != AddressFamily::Inet
                || h.destination_prefix_length != 0
                || h.kind != RouteType::Unicast
                || h.flags.contains(RouteFlags::Dead)
            {
                continue;
            }
            // RTA_TABLE carries the full table id; the header's byte is the legacy copy.
            let table = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Table(t) => Some(*t),
                    _ => None,
                })
                .unwrap_or(u32::from(h.table));
            if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
                continue;
            }
            let metric = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Priority(p) => Some(*p),
                    _ => None,
                })
                .unwrap_or(0);
            let Ok((Some(oif), Some(gw))) = next_hop(&r.attributes) else { continue };
            if best.is_none_or(|(bm, _, _)| metric < bm) {
                best = Some((metric, oif, gw));
            }
        }
        Ok(best.map(|(_, oif, gw)| (oif, gw)))
    }

    /// The neighbour table's MAC for `addr` on `ifindex`, if usable (REACHABLE, STALE, DELAY,
    /// PROBE, PERMANENT or NOARP with a link-layer address). One RTM_GETNEIGH get request;
    /// on kernels without neighbour get (before 5.0), a dump filtered here.
    pub fn neighbour(&mut self, addr: Ipv4Addr, ifindex: u32) -> Result<Option<MacAddr>, ResolveError> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Inet;
        req.header.ifindex = ifindex;
        req.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(addr)));
        match self.request(RouteNetlinkMessage::GetNeighbour(req), false) {
            Ok(msgs) => Ok(msgs.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => {
                    usable_entry(n).filter(|&(i, a, _)| i == ifindex && a == addr).map(|(_, _, mac)| mac)
                }
                _ => None,
            })),
            Err(ReqError::Errno(libc::ENOENT)) => Ok(None),
            Err(ReqError::Errno(libc::EOPNOTSUPP | libc::EINVAL)) => {
                Ok(self.neighbours()?.into_iter().find(|&(i, a, _)| i == ifindex && a == addr).map(|(_, _, mac)| mac))
            }
            Err(e) => Err(ResolveError::Netlink(format!("neighbour {addr} on ifindex {ifindex}: {e}"))),
        }
    }

    /// All usable IPv4 neighbours as (ifindex, address, MAC), in one dump, so a refresh of N
    /// servers is one request, not N.
    pub fn neighbours(&mut self) -> Result<Vec<(u32, Ipv4Addr, MacAddr)>, ResolveError> {
        Ok(self.neighbours_with_state()?.into_iter().map(|(i, a, m, _)| (i, a, m)).collect())
    }

    /// As [`Rtnl::neighbours`], with whether each entry is STALE: the kernel re-validates a
    /// stale entry only when it sends to it, and it never sends the director's traffic, so
    /// the director asks it to (see [`resolve`]).
    pub fn neighbours_with_state(&mut self) -> Result<Vec<(u32, Ipv4Addr, MacAddr, bool)>, ResolveError> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Inet;
        let msgs = self.dump(RouteNetlinkMessage::GetNeighbour(req), "neighbours")?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => {
                    usable_entry(n).map(|(i, a, mac)| (i, a, mac, u16::from(n.header.state) & NUD_STALE != 0))
                }
                _ => None,
            })
            .collect())
    }
}

/// What kinds of change notifications arrived during one [`ChangeWatch::wait`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// A neighbour entry was added, changed or removed (RTM_NEWNEIGH / RTM_DELNEIGH).
    pub neigh: bool,
    /// An IPv4 route was added, changed or removed (RTM_NEWROUTE / RTM_DELROUTE).
    pub route: bool,
    /// A link was added, changed (up/down, MAC, MTU) or removed (RTM_NEWLINK / RTM_DELLINK).
    pub link: bool,
}

impl Changes {
    /// Everything: what an overrun reports, since notifications were lost and the caller has
    /// to re-read all of it.
    pub const ALL: Changes = Changes { neigh: true, route: true, link: true };

    /// Whether anything changed.
    pub fn any(&self) -> bool {
        self.neigh || self.route || self.link
    }
}

/// Receive buffer asked for the watch socket (best effort; the kernel caps it at rmem_max),
/// so a burst of neighbour changes does not overrun it.
const WATCH_RCVBUF: usize = 1 << 20;
/// Longest single wait; a longer timeout returns all-false after this, like a timeout.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// At most this many datagrams are drained per wait, so a storm cannot pin the caller.
const MAX_DRAIN: usize = 4096;

/// A socket subscribed to neighbour, IPv4 route and link changes (RTNLGRP_NEIGH,
/// RTNLGRP_IPV4_ROUTE, RTNLGRP_LINK). Reads never block past the caller's timeout: the wait
/// for the first datagram uses SO_RCVTIMEO, draining uses MSG_DONTWAIT.
///
/// (Why not mio: `mio::unix::SourceFd` needs mio's `os-ext` feature, and `libc::poll` needs
/// `unsafe`; a receive timeout does the same job with neither.)
pub struct ChangeWatch {
    sock: Socket,
    buf: Vec<u8>,
}

impl fmt::Debug for ChangeWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeWatch").finish_non_exhaustive()
    }
}

/// What one receive on the watch socket gave.
enum Got {
    /// A datagram of this many bytes (possibly more than the buffer: truncated).
    Data(usize),
    /// Nothing within the timeout (or nothing pending, without blocking).
    Nothing,
    /// A datagram from someone other than the kernel (any process may unicast to our port).
    Ignored,
    /// A signal interrupted the receive.
    Interrupted,
    /// ENOBUFS: the kernel dropped notifications.
    Overrun,
    /// Anything else.
    Failed(io::Error),
}

impl ChangeWatch {
    /// Opens the socket and joins the three groups. Needs no privileges (rtnetlink lets
    /// anyone listen).
    pub fn open() -> Result<ChangeWatch, ResolveError> {
        let nl = |what: &str, e: io::Error| ResolveError::Netlink(format!("{what}: {e}"));
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| nl("opening a NETLINK_ROUTE socket", e))?;
        sock.bind_auto().map_err(|e| nl("binding the netlink socket", e))?;
        for group in [libc::RTNLGRP_NEIGH, libc::RTNLGRP_IPV4_ROUTE, libc::RTNLGRP_LINK] {
            sock.add_membership(group).map_err(|e| nl(&format!("joining rtnetlink group {group}"), e))?;
        }
        if let Err(e) = socket2::SockRef::from(&sock).set_recv_buffer_size(WATCH_RCVBUF) {
            tracing::debug!("enlarging the netlink watch buffer: {e}");
        }
        Ok(ChangeWatch { sock, buf: Vec::with_capacity(RECV_BUF) })
    }

    /// One receive; `wait` None means "don't block", Some(d) blocks up to d (d >= 1 µs).
    fn recv(&mut self, wait: Option<Duration>) -> Got {
        let flags = match wait {
            None => libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            Some(d) => {
                if let Err(e) = socket2::SockRef::from(&self.sock).set_read_timeout(Some(d)) {
                    return Got::Failed(e);
                }
                libc::MSG_TRUNC
            }
        };
        self.buf.clear();
        match self.sock.recv_from(&mut self.buf, flags) {
            Ok((_, from)) if from.port_number() != 0 => Got::Ignored,
            Ok((n, _)) => Got::Data(n),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Got::Overrun,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Got::Interrupted,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Got::Nothing,
            Err(e) => Got::Failed(e),
        }
    }

    /// Waits up to `timeout` for any change notification, drains every pending message, and
    /// returns what kinds arrived; all-false on timeout. An overrun (ENOBUFS, NLMSG_OVERRUN,
    /// a truncated or malformed datagram) reports all three, so the caller re-reads
    /// everything. Never panics.
    pub fn wait(&mut self, timeout: Duration) -> Changes {
        let timeout = timeout.min(MAX_WAIT);
        let start = Instant::now();
        let mut changes = Changes::default();
        // Block for the first datagram.
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            // A zero SO_RCVTIMEO means "forever": under 1 µs, just look without blocking.
            let got = if left < Duration::from_micros(1) { self.recv(None) } else { self.recv(Some(left)) };
            match got {
                Got::Data(n) => {
                    self.classify(n, &mut changes);
                    break;
                }
                Got::Nothing => return changes,
                Got::Interrupted | Got::Ignored => {
                    if start.elapsed() >= timeout {
                        return changes;
                    }
                }
                Got::Overrun => {
                    changes = Changes::ALL;
                    break;
                }
                Got::Failed(e) => {
                    // Should not happen; sleep out the timeout so a caller's loop cannot spin.
                    tracing::warn!("netlink watch: {e}");
                    std::thread::sleep(timeout.saturating_sub(start.elapsed()));
                    return changes;
                }
            }
        }
        // Drain whatever else is pending.
        for _ in 0..MAX_DRAIN {
            match self.recv(None) {
                Got::Data(n) => self.classify(n, &mut changes),
                Got::Nothing => break,
                Got::Interrupted | Got::Ignored => {}
                Got::Overrun => changes = Changes::ALL,
                Got::Failed(e) => {
                    tracing::warn!("netlink watch: {e}");
                    break;
                }
            }
        }
        changes
    }

    /// Adds the kinds of the messages in the `n`-byte datagram now in the buffer.
    fn classify(&self, n: usize, changes: &mut Changes) {
        if n > self.buf.len() {
            *changes = Changes::ALL; // truncated: we cannot tell what was in it
            return;
        }
        classify_datagram(&self.buf[..n], changes);
    }
}

/// Adds the kinds of the notification messages in `data` to `changes`, reading only the
/// netlink headers (so no payload, however odd, can make it fail). Malformed => all.
fn classify_datagram(data: &[u8], changes: &mut Changes) {
    let mut off = 0;
    while off < data.len() {
        let rest = &data[off..];
        let whole = |&(len, ..): &(usize, u16, u16, u32)| (NLMSG_HDRLEN..=rest.len()).contains(&len);
        let Some((len, ty, _, _)) = nl_header(rest).filter(whole) else {
            *changes = Changes::ALL;
            return;
        };
        match ty {
            RTM_NEWNEIGH | RTM_DELNEIGH => changes.neigh = true,
            RTM_NEWROUTE | RTM_DELROUTE => changes.route = true,
            RTM_NEWLINK | RTM_DELLINK => changes.link = true,
            NLMSG_OVERRUN => *changes = Changes::ALL,
            _ => {}
        }
        off += nl_align(len);
    }
}

// ------------------------------------------------------------------------------------------
// What the director asks: its interfaces, and the next hops of its real servers
// ------------------------------------------------------------------------------------------

/// Makes the kernel resolve `addr` (an empty datagram to its discard port, sent by the
/// director's own stack: the kernel ARPs for the next hop first).
pub fn solicit(addr: Ipv4Addr) {
    if let Ok(s) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) {
        let _ = s.send_to(&[], (addr, 9));
    }
}

/// An interface's MAC, first IPv4 address and MTU.
pub fn interface(iface: &str) -> Result<(MacAddr, Option<Ipv4Addr>, u32), ResolveError> {
    Rtnl::open()?.interface(iface)
}

/// Fills in interface MACs and addresses the config left out.
pub fn complete_interfaces(cfg: &mut Config) -> Result<(), ResolveError> {
    let mut nl = Rtnl::open()?;
    for i in cfg.interfaces.iter_mut() {
        let (mac, ip, _) = nl.interface(&i.name)?;
        i.mac.get_or_insert(mac);
        if i.ip.is_none() {
            i.ip = ip;
        }
    }
    Ok(())
}

/// Next hops resolved from the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Real servers (and whatever else was asked) -> next hop.
    pub neighbours: Vec<Neighbour>,
    /// The default gateway's MAC, interface index and VLAN id (0: untagged).
    pub gateway: Option<(MacAddr, usize, u16)>,
    /// Addresses that could not be resolved, with why.
    pub unresolved: Vec<(Ipv4Addr, String)>,
    /// The subnets of the addresses on director interfaces and VLAN devices on them.
    pub connected: Vec<Connected>,
    /// Every IPv4 address of the host (the steering program leaves traffic to them to the
    /// kernel: health-check replies to a VLAN device's address, say).
    pub host_addrs: Vec<Ipv4Addr>,
}

/// Resolves every real server of `cfg` (those without a static `neighbours` entry) and the
/// default gateway (unless `gateway` is configured), waiting up to `wait` for the kernel to
/// answer solicitations of the addresses `worth_waiting` accepts (the gateway is `None`):
/// one that stays unresolved does not stall a caller that did not ask for it. One route
/// request per server, one neighbour dump per round.
pub fn resolve(cfg: &Config, wait: Duration, worth_waiting: &dyn Fn(Option<Ipv4Addr>) -> bool) -> Resolved {
    let mut out = Resolved::default();
    let mut nl = match Rtnl::open() {
        Ok(nl) => nl,
        Err(e) => {
            tracing::warn!("resolving next hops: {e}");
            return out;
        }
    };
    let mut targets: BTreeSet<Ipv4Addr> = BTreeSet::new();
    // DR servers are on the director's link by definition (the frame keeps the VIP as its
    // destination): their own MAC on the route's interface, never a gateway's (IPVS's
    // IP_VS_RT_MODE_KNOWN_NH).
    let mut on_link: BTreeSet<Ipv4Addr> = BTreeSet::new();
    for s in &cfg.services {
        for r in &s.servers {
            if !cfg.neighbours.iter().any(|n| n.ip == r.addr) {
                targets.insert(r.addr);
                if r.mode == crate::model::FwdMode::Dr {
                    on_link.insert(r.addr);
                }
            }
        }
    }
    // Interface index (position in the config) of each kernel ifindex.
    let mut ifaces: Vec<(u32, usize)> = Vec::new();
    for (i, iface) in cfg.interfaces.iter().enumerate() {
        match nl.ifindex(&iface.name) {
            Ok(k) => ifaces.push((k, i)),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    // A VLAN device on a director interface is that interface, tagged.
    let vlans = nl.vlans().unwrap_or_else(|e| {
        tracing::warn!("{e}");
        Vec::new()
    });
    let iface_of = |k: u32| -> Option<(usize, u16)> {
        if let Some((_, i)) = ifaces.iter().find(|(x, _)| *x == k) {
            return Some((*i, 0));
        }
        let &(_, parent, vid) = vlans.iter().find(|(v, _, _)| *v == k)?;
        ifaces.iter().find(|(x, _)| *x == parent).map(|(_, i)| (*i, vid))
    };
    let name_of = |k: u32| format!("ifindex {k}");
    // Clients on these subnets get their replies at their own MAC.
    match nl.ipv4_prefixes() {
        Ok(addrs) => {
            out.host_addrs = addrs.iter().map(|&(_, ip, _)| ip).collect();
            for (k, ip, prefix) in addrs {
                // A /32 (a VIP held on the interface) is no subnet.
                if let (Some((i, vlan)), true) = (iface_of(k), prefix < 32) {
                    let mask = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
                    let c = Connected { net: Ipv4Addr::from(u32::from(ip) & mask), prefix, interface: i, vlan };
                    if !out.connected.contains(&c) {
                        out.connected.push(c);
                    }
                }
            }
        }
        Err(e) => tracing::warn!("{e}"),
    }
    // (target or None for the gateway, (interface position, VLAN), kernel ifindex, next-hop
    // address)
    type Hop = (Option<Ipv4Addr>, (usize, u16), u32, Ipv4Addr);
    let mut hops: Vec<Hop> = Vec::new();
    for &addr in &targets {
        match nl.route_get(addr) {
            Ok((k, via)) => match iface_of(k) {
                Some(i) => hops.push((Some(addr), i, k, if on_link.contains(&addr) { addr } else { via })),
                None => {
                    out.unresolved.push((addr, format!("routed via {}, which is not a director interface", name_of(k))))
                }
            },
            Err(e) => out.unresolved.push((addr, e.to_string())),
        }
    }
    if cfg.gateway.is_none() {
        match nl.default_route() {
            Ok(Some((k, via))) => match iface_of(k) {
                Some(i) => hops.push((None, i, k, via)),
                None => {
                    tracing::warn!("the default route leaves via {}, not a director interface: no gateway", name_of(k))
                }
            },
            Ok(None) => {}
            Err(e) => tracing::warn!("reading the default route: {e}"),
        }
    }
    let deadline = Instant::now() + wait;
    let mut solicited = false;
    loop {
        let table = match nl.neighbours_with_state() {
            Ok(t) => t,
            Err(e) => {
                for (target, _, _, via) in hops.drain(..) {
                    out.unresolved.push((target.unwrap_or(via), e.to_string()));
                }
                break;
            }
        };
        let mut pending = Vec::new();
        for (target, i, k, via) in hops.drain(..) {
            match table.iter().find(|(ki, a, ..)| *ki == k && *a == via).map(|&(_, _, m, stale)| (m, stale)) {
                Some((mac, stale)) => {
                    // A stale entry is used as it is (the kernel would too), and the kernel is
                    // made to probe it: if the host moved to another MAC, the probe fails, the
                    // kernel resolves it again, and the change notification brings the new MAC.
                    if stale {
                        solicit(via);
                    }
                    match target {
                        Some(ip) => out.neighbours.push(Neighbour { ip, mac, interface: i.0, vlan: i.1 }),
                        None => out.gateway = Some((mac, i.0, i.1)),
                    }
                }
                None => pending.push((target, i, k, via)),
            }
        }
        if !pending.iter().any(|(target, ..)| worth_waiting(*target)) || Instant::now() >= deadline {
            for (target, i, _, via) in pending {
                let dev = match cfg.interfaces.get(i.0).map_or("?", |x| x.name.as_str()) {
                    dev if i.1 == 0 => dev.to_string(),
                    dev => format!("{dev} VLAN {}", i.1),
                };
                out.unresolved.push((target.unwrap_or(via), format!("no neighbour entry for {via} on {dev}")));
            }
            break;
        }
        if !solicited {
            for (_, _, _, via) in &pending {
                solicit(*via);
            }
            solicited = true;
        }
        std::thread::sleep(Duration::from_millis(20));
        hops = pending;
    }
    out.neighbours.sort_by_key(|n| n.ip);
    out
}

/// The config with resolved next hops added to the static ones (static entries win). An
/// address this resolution missed keeps the MAC `last_good` had for it: a neighbour entry
/// being re-probed, or a netlink error, does not take a working server's traffic away.
pub fn with_resolved(cfg: &Config, r: &Resolved, last_good: Option<&Resolved>) -> Config {
    let mut c = cfg.clone();
    for n in &r.neighbours {
        if !c.neighbours.iter().any(|x| x.ip == n.ip) {
            c.neighbours.push(n.clone());
        }
    }
    if let Some(last) = last_good {
        for (ip, _) in &r.unresolved {
            if let Some(n) = last.neighbours.iter().find(|n| n.ip == *ip) {
                if !c.neighbours.iter().any(|x| x.ip == n.ip) {
                    c.neighbours.push(n.clone());
                }
            }
        }
    }
    if c.gateway.is_none() {
        c.gateway = r.gateway.or(last_good.and_then(|l| l.gateway));
    }
    // Static subnets first (the longest prefix wins in the tables anyway).
    let connected =
        if r.connected.is_empty() { last_good.map_or(&r.connected, |l| &l.connected) } else { &r.connected };
    c.connected.extend(connected.iter().copied());
    let hosts =
        if r.host_addrs.is_empty() { last_good.map_or(&r.host_addrs, |l| &l.host_addrs) } else { &r.host_addrs };
    c.host_addrs.extend(hosts.iter().copied());
    c
}

/// Watches neighbour, route and link changes on a thread of its own and sends one token per
/// burst of changes to `changed` (a full channel already holds one: that is enough). The
/// control loop then resolves again at once, instead of waiting for its periodic refresh.
pub fn spawn_watch(changed: crossbeam_channel::Sender<()>) -> Result<std::thread::JoinHandle<()>, ResolveError> {
    let mut w = ChangeWatch::open()?;
    std::thread::Builder::new()
        .name("xvs-netlink".into())
        .spawn(move || loop {
            if w.wait(Duration::from_secs(1)).any() {
                if let Err(crossbeam_channel::TrySendError::Disconnected(())) = changed.try_send(()) {
                    return;
                }
            }
        })
        .map_err(|e| ResolveError::Netlink(format!("starting the watch thread: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_interface() {
        let mut nl = Rtnl::open().unwrap();
        let (mac, ip, mtu) = nl.interface("lo").unwrap();
        assert_eq!(mtu, 65536);
        assert_eq!(ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(mac, MacAddr([0; 6]));
        assert!(nl.ifindex("lo").unwrap() > 0);
    }

    #[test]
    fn unknown_interface() {
        let mut nl = Rtnl::open().unwrap();
        for name in ["xvs-nosuch0", "", "a-name-far-too-long-for-linux"] {
            match nl.ifindex(name) {
                Err(ResolveError::Iface { iface, msg }) => {
                    assert_eq!(iface, name);
                    assert_eq!(msg, "no such interface");
                }
                other => panic!("{name:?}: {other:?}"),
            }
        }
        // The socket still works after an error answer.
        assert!(nl.ifindex("lo").is_ok());
    }

    #[test]
    fn route_to_loopback() {
        let mut nl = Rtnl::open().unwrap();
        let lo = nl.ifindex("lo").unwrap();
        assert_eq!(nl.route_get(Ipv4Addr::LOCALHOST).unwrap(), (lo, Ipv4Addr::LOCALHOST));
        let other = Ipv4Addr::new(127, 0, 0, 2);
        assert_eq!(nl.route_get(other).unwrap(), (lo, other));
    }

    #[test]
    fn default_route_and_neighbours_read() {
        let mut nl = Rtnl::open().unwrap();
        let d = nl.default_route().unwrap();
        if let Some((oif, gw)) = d {
            assert!(oif > 0);
            assert!(!gw.is_unspecified());
        }
        let all = nl.neighbours().unwrap();
        for (i, a, m) in &all {
            assert!(*i > 0);
            assert_ne!(m.0, [0; 6], "{a}");
        }
        let lo = nl.ifindex("lo").unwrap();
        assert!(nl.neighbour(Ipv4Addr::LOCALHOST, lo).is_ok());
        // Many requests on one socket keep their answers apart.
        for _ in 0..50 {
            assert_eq!(nl.route_get(Ipv4Addr::LOCALHOST).unwrap().0, lo);
        }
    }

    #[test]
    fn watch_times_out_quickly() {
        let mut w = ChangeWatch::open().unwrap();
        let t = Instant::now();
        let _ = w.wait(Duration::from_millis(10));
        assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
        let t = Instant::now();
        let _ = w.wait(Duration::ZERO);
        let _ = w.wait(Duration::from_nanos(10));
        assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
    }

    fn msg(ty: u16, payload: usize) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload;
        let mut m = vec![0u8; nl_align(len)];
        m[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&ty.to_ne_bytes());
        m
    }

    #[test]
    fn classifies_notifications() {
        let mut d = msg(RTM_NEWNEIGH, 3);
        d.extend(msg(RTM_DELROUTE, 12));
        d.extend(msg(3, 4)); // NLMSG_DONE: ignored
        let mut c = Changes::default();
        classify_datagram(&d, &mut c);
        assert_eq!(c, Changes { neigh: true, route: true, link: false });

        let mut c = Changes::default();
        classify_datagram(&msg(RTM_NEWLINK, 0), &mut c);
        assert_eq!(c, Changes { neigh: false, route: false, link: true });

        for bad in [vec![1, 2, 3], msg(RTM_NEWLINK, 8)[..20].to_vec(), msg(NLMSG_OVERRUN, 0)] {
            let mut c = Changes::default();
            classify_datagram(&bad, &mut c);
            assert_eq!(c, Changes::ALL);
        }
        let mut zero_len = msg(RTM_NEWLINK, 0);
        zero_len[0..4].copy_from_slice(&0u32.to_ne_bytes());
        let mut c = Changes::default();
        classify_datagram(&zero_len, &mut c);
        assert_eq!(c, Changes::ALL);
    }

    #[test]
    fn neighbour_states() {
        for s in [
            NeighbourState::Reachable,
            NeighbourState::Stale,
            NeighbourState::Delay,
            NeighbourState::Probe,
            NeighbourState::Permanent,
            NeighbourState::Noarp,
        ] {
            assert!(usable_state(s), "{s}");
        }
        for s in [NeighbourState::Incomplete, NeighbourState::Failed, NeighbourState::None] {
            assert!(!usable_state(s), "{s}");
        }
    }

    #[test]
    fn multipath_next_hop() {
        use netlink_packet_route::route::RouteNextHop;
        let mut hop = RouteNextHop::default();
        hop.interface_index = 7;
        hop.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(198, 18, 0, 1))));
        let attrs = vec![RouteAttribute::MultiPath(vec![hop])];
        assert_eq!(next_hop(&attrs).unwrap(), (Some(7), Some(Ipv4Addr::new(198, 18, 0, 1))));
        let attrs = vec![RouteAttribute::Oif(3)];
        assert_eq!(next_hop(&attrs).unwrap(), (Some(3), None));
    }
}
