//! The per-packet decision: parse, look up, schedule, track, rewrite.
//!
//! [`Pipeline::process`] is a pure function of the frame, the tables snapshot, the worker's
//! connection shard and schedulers, and the clock: the AF_XDP worker, the in-memory port used
//! by tests and benchmarks, and `xvs replay` all run exactly this code.

use super::frags::{Found, FragKey, FragTable};
use super::io::{Desc, FrameStore, BURST};
use super::onlink::OnLink;
use super::stats::{DestCounters, DropReason, PassReason, Verdict, WorkerStats};
use super::tables::{NextHop, Tables};
use crate::conn::{ConnKey, ConnShard, Dir, NewConn, Refused, ShardConfig, SlotSpec, TcpState, NONE};
use crate::model::FwdMode;
use crate::model::SchedKind;
use crate::modes::icmp::{self, IcmpError, Quoted};
use crate::modes::{self, dr, fullnat, nat, toa, tun, L4};
use crate::sched::{Flow, Scheduler};
use crate::wire::ethernet::{
    is_vlan_tagged, pop_vlan, push_vlan, ETHERTYPE_IPV4, ETHERTYPE_IPV6, HEADER_LEN as ETH_LEN, VLAN_VID_MASK,
};
use crate::wire::icmp::{CODE_TTL_EXCEEDED, TYPE_TIME_EXCEEDED};
use crate::wire::ipv4::{Ipv4Packet, FLAG_MF, FRAG_OFFSET_MASK, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::wire::tcp::{self, TcpSegment};
use crate::wire::udp::UdpDatagram;
use crate::wire::{EthernetFrame, WireError};
use crate::wire::{Frame, MacAddr};
use std::sync::Arc;

mod sync;
pub use sync::{SyncLink, SyncOutcome, SYNC_QUEUE};

/// A parsed IPv4 TCP/UDP frame: everything the decision needs, read once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub key: ConnKey,
    pub l4_off: u16,
    pub tcp_flags: u8,
    pub ttl: u8,
    /// A first fragment (more to come): its IP id, so the later ones follow its decision.
    pub frag_id: Option<u16>,
}

/// The outcome of parsing: a flow to look up, a later fragment (no transport header) to send
/// where its first went, or a verdict already.
pub enum Parse {
    Flow(Parsed),
    /// A later fragment ([`Pipeline::fragment_of`] tells which datagram).
    Fragment,
    /// An ICMP error quoting a TCP/UDP packet ([`Pipeline::icmp_error_of`] tells more). Both
    /// carry nothing: the common frames keep this small, and the rare ones are read again.
    IcmpError,
    Done(Verdict),
}

/// What forwarding a connection needs of its real server, copied out of the tables once a
/// packet.
#[derive(Clone, Copy, Debug)]
struct DestHop {
    next_hop: Option<NextHop>,
    /// Where its counters are kept.
    id: u32,
    live: bool,
    /// The connection was made by this very packet, its segment already applied
    /// ([`ConnShard::create_by`]): `on_packet` would change nothing.
    fresh: bool,
}

/// Whether a client's segment with `flags` opens its connection (state `state` before it):
/// a SYN, or the handshake's ACK (the segment a TOA real server reads the option from).
#[inline]
fn opens_connection(flags: u8, state: u8) -> bool {
    use crate::wire::tcp::{ACK, FIN, RST, SYN};
    match flags & (SYN | ACK | RST | FIN) {
        SYN => true,
        ACK => state == TcpState::SynRecv as u8,
        _ => false,
    }
}

/// Gives an opening segment of a FULLNAT connection of a TOA service the client's address
/// ([`toa`]); counts what could not carry it.
#[cold]
fn add_toa(stats: &mut WorkerStats, tables: &Tables, frame: &mut Frame<'_>, p: &Parsed, svc: u16) {
    if !tables.services.get(svc as usize).is_some_and(|s| s.toa) || p.frag_id.is_some() {
        return;
    }
    if toa::insert(frame, p.l4_off as usize, p.key.saddr, p.key.sport, tables.mtu) {
        stats.toa_added += 1;
    } else {
        stats.toa_no_room += 1;
    }
}

/// Where a burst's frames to transmit go, in burst order: the worker's per-port lists.
pub trait TxLists {
    /// Takes frame `d`, to be sent out of interface `iface`; false when it cannot (its
    /// verdict is then the caller's to act on).
    fn push(&mut self, iface: u8, d: Desc) -> bool;
}

// `process_burst_to` answers with a bit a position.
const _: () = assert!(BURST <= 32);

/// No lists: every verdict is the caller's (tests, a frame at a time).
pub struct NoTxLists;

impl TxLists for NoTxLists {
    #[inline]
    fn push(&mut self, _iface: u8, _d: Desc) -> bool {
        false
    }
}

/// One worker's packet core.
pub struct Pipeline {
    tables: Arc<Tables>,
    scheds: Vec<Scheduler>,
    pub shard: ConnShard,
    pub stats: WorkerStats,
    /// IP identification for headers the director creates (TUN outer, ICMP).
    ident: u16,
    /// This worker and how many there are (connection ownership, see [`Pipeline::owner`]).
    worker: u16,
    workers: u16,
    /// No snapshot applied yet: every service's loads are laid out by the first.
    fresh: bool,
    /// ICMP errors that may be sent now, and when the bucket was last refilled.
    icmp_tokens: u32,
    icmp_refill_ms: u64,
    /// First fragments' decisions, for the fragments that follow them.
    frags: FragTable,
    /// The VLAN id the frame being decided leaves with (0: untagged): its next hop's, or for
    /// an answer sent back where the frame came from, the one it arrived with.
    tx_vlan: u16,
    /// The VLAN id the frame being decided arrived with (0: untagged).
    rx_vlan: u16,
    /// MACs of clients on the director's links, learned from their frames.
    onlink: OnLink,
    /// A sync master's queue to its daemon (None: not a master).
    sync_out: Option<Arc<SyncLink>>,
    /// The connections made so far in this burst, as a 64-bit filter of their hashes
    /// ([`made_bit`]): a new flow whose stage-2 probe found nothing is looked up again only
    /// when an earlier frame of the burst may have made its connection since.
    made_in_burst: u64,
}

/// A connection hash's bit in [`Pipeline::made_in_burst`].
#[inline(always)]
fn made_bit(hash: u64) -> u64 {
    1 << (hash >> 58)
}

/// ICMP errors a worker sends at most per second, and in one burst (the kernel's defaults:
/// `icmp_msgs_per_sec` 1000, `icmp_msgs_burst` 50).
pub const ICMP_PER_SEC: u64 = 1000;
pub const ICMP_BURST: u64 = 50;

/// The worker that owns connections of client endpoint (addr, port) when `workers` share the
/// NAT/FULLNAT traffic: a multiplicative hash (ports alone are biased: Linux prefers even
/// source ports), scaled to `0..workers` without a division.
#[inline]
pub fn client_owner(addr: u32, port: u16, workers: u16, seed: u64) -> u16 {
    // Two folded multiplies keyed by the per-process seed (Tables::owner_seed): without it,
    // which sources land on which worker is known in advance. With one, the seed's low bits
    // only permuted a block of ports, and two seeds could place half the sources alike.
    let fold = |a: u64, b: u64| {
        let r = a as u128 * b as u128;
        (r as u64) ^ ((r >> 64) as u64)
    };
    let y = fold((((addr as u64) << 16) | port as u64) ^ seed, 0x9E37_79B9_7F4A_7C15);
    let x = fold(y ^ seed.rotate_left(32), 0xD6E8_FEB8_6659_FD93);
    (((x >> 32) * workers as u64) >> 32) as u16
}

impl Pipeline {
    /// A pipeline for worker `worker` of `tables.workers`.
    pub fn new(tables: Arc<Tables>, worker: u16) -> Pipeline {
        let cfg = ShardConfig {
            capacity: tables.max_conns_per_worker,
            timeouts: tables.timeouts,
            lport_range: tables.lport_range,
            worker,
            workers: tables.workers,
            hash_seeds: random_seeds(),
            fullnat: tables.has_fullnat,
        };
        let mut p = Pipeline::with_shard(tables, ConnShard::new(&cfg));
        p.frags = FragTable::new(random_seeds()[0]);
        p.worker = worker;
        p.workers = cfg.workers.max(1);
        p
    }

    /// A pipeline over a given shard (tests size it themselves).
    pub fn with_shard(tables: Arc<Tables>, shard: ConnShard) -> Pipeline {
        let mut p = Pipeline {
            tables: tables.clone(),
            scheds: Vec::new(),
            shard,
            stats: WorkerStats::default(),
            ident: 0,
            made_in_burst: 0,
            worker: 0,
            workers: 1,
            fresh: true,
            icmp_tokens: ICMP_BURST as u32,
            icmp_refill_ms: 0,
            frags: FragTable::new(0x51_7cc1_b727_220a),
            tx_vlan: 0,
            rx_vlan: 0,
            onlink: OnLink::default(),
            sync_out: None,
        };
        p.set_tables(tables);
        p
    }

    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// Switches to a new snapshot (at a batch boundary). Services and real servers keep
    /// their slots across snapshots (see [`Tables`]), so nothing walks the connection table:
    /// a connection whose server was deleted is expired at its next packet (IPVS's
    /// `expire_nodest_conn`), a SYN or UDP datagram then being scheduled afresh, or on its
    /// timer. Schedulers of services whose live servers and weights did not change are kept
    /// (rr and wrr keep their place); loads are re-laid per changed service. O(servers of
    /// the changed services), whatever the number of connections.
    pub fn set_tables(&mut self, tables: Arc<Tables>) {
        self.shard.set_local_addrs(&tables.local_addrs);
        if tables.has_fullnat {
            self.shard.enable_fullnat();
        }
        let mut old_scheds: Vec<Option<Scheduler>> = std::mem::take(&mut self.scheds).into_iter().map(Some).collect();
        let mut scheds = Vec::with_capacity(tables.services.len());
        for (i, s) in tables.services.iter().enumerate() {
            let old = self.tables.services.get(i);
            let prior = old_scheds.get_mut(i).and_then(Option::take);
            let sched = match (prior, old) {
                (Some(p), Some(o)) if o.same_schedule(s) => p,
                (prior, old) if s.scheduler == SchedKind::Wrr => {
                    // The kernel's hooks, one change at a time, from the state it had (flags
                    // mean nothing to wrr). A new service starts as `-A` does, empty (then one
                    // add at a time); one switched to wrr from another scheduler gets wrr's
                    // `init_svc` over its whole list, as `ipvsadm -E -s wrr` does.
                    match (prior, old) {
                        (Some(mut p), Some(o)) if o.live && p.kind() == SchedKind::Wrr => {
                            p.follow_hooks(&o.dest_specs(), &s.dest_specs());
                            p
                        }
                        (_, Some(o)) if o.live && !self.fresh => {
                            Scheduler::new(s.scheduler, s.flags, s.mh_table_size, &s.dest_specs())
                        }
                        _ => {
                            let mut n = Scheduler::new(s.scheduler, s.flags, s.mh_table_size, &[]);
                            n.follow_hooks(&[], &s.dest_specs());
                            n
                        }
                    }
                }
                (prior, old) => {
                    // The kernel's hooks for what changed: a fresh table or state, and what it
                    // keeps across the change (rr's position follows its server).
                    let mut n = Scheduler::new(s.scheduler, s.flags, s.mh_table_size, &s.dest_specs());
                    if let (Some(p), Some(o)) = (prior, old) {
                        n.carry_from(&p, &o.order, &s.order);
                    }
                    n
                }
            };
            scheds.push(sched);
            if self.fresh || old != Some(s) {
                let slots: Vec<SlotSpec> = s
                    .dests
                    .iter()
                    .map(|d| SlotSpec { weight: d.weight, u_threshold: d.u_threshold, l_threshold: d.l_threshold })
                    .collect();
                self.shard.set_service(i as u16, &s.order, &slots);
            }
        }
        self.scheds = scheds;
        self.fresh = false;
        self.shard.set_timeouts(&tables.timeouts);
        // Counters by server id: a new id starts at zero, the others keep counting.
        if self.stats.dests.len() < tables.dest_ids as usize {
            self.stats.dests.resize(tables.dest_ids as usize, DestCounters::default());
        }
        self.tables = tables;
    }

    /// Expires connections due at `now` (at most `budget`).
    pub fn housekeeping(&mut self, now_ms: u64, budget: usize) -> usize {
        self.shard.expire(now_ms, budget)
    }

    /// The common frame, parsed at fixed offsets: Ethernet II, an IPv4 header without options
    /// and with a right checksum, not a fragment, TCP or UDP whose header fits. None for
    /// anything else, which [`Pipeline::parse`] (the checked views) then decides: for every
    /// frame this accepts, `parse` gives the same `Parsed` (a property test holds it to that).
    #[inline]
    pub fn parse_common(d: &[u8]) -> Option<Parsed> {
        let h: &[u8; 42] = d.get(..42)?.try_into().ok()?;
        if h[12] != 0x08 || h[13] != 0x00 || h[14] != 0x45 {
            return None;
        }
        let total = u16::from_be_bytes([h[16], h[17]]) as usize;
        let frag = u16::from_be_bytes([h[20], h[21]]);
        if total < 28 || ETH_LEN + total > d.len() || frag & (FLAG_MF | FRAG_OFFSET_MASK) != 0 {
            return None;
        }
        if !crate::wire::checksum::ipv4_header_ok(&h[ETH_LEN..]) {
            return None;
        }
        let l4_len = total - 20;
        let (proto, tcp_flags) = match h[23] {
            PROTO_TCP => {
                let t = d.get(46..48)?;
                let off = ((t[0] >> 4) as usize) * 4;
                if l4_len < 20 || off < 20 || off > l4_len {
                    return None;
                }
                (PROTO_TCP, t[1])
            }
            PROTO_UDP => {
                let len = u16::from_be_bytes([h[38], h[39]]) as usize;
                if len < 8 || len > l4_len {
                    return None;
                }
                (PROTO_UDP, 0)
            }
            _ => return None,
        };
        let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Some(Parsed {
            key: ConnKey {
                saddr: be32(26),
                daddr: be32(30),
                sport: u16::from_be_bytes([h[34], h[35]]),
                dport: u16::from_be_bytes([h[36], h[37]]),
                proto,
            },
            l4_off: (ETH_LEN + 20) as u16,
            tcp_flags,
            ttl: h[22],
            frag_id: None,
        })
    }

    /// A frame the common parser did not take: its 802.1Q tag (if any) taken out into `tag`,
    /// then the common parser again and the checked one.
    #[inline]
    fn parse_rest<S: FrameStore>(&self, store: &mut S, desc: &mut Desc, tag: &mut u32) -> Parse {
        if is_vlan_tagged(store.bytes(desc)) {
            *tag = Self::untag(store, desc);
        }
        let d = store.bytes(desc);
        match Self::parse_common(d) {
            Some(p) => Parse::Flow(p),
            None => self.parse(d),
        }
    }

    /// Parses a received frame far enough to decide (checked views: never panics).
    #[inline]
    pub fn parse(&self, d: &[u8]) -> Parse {
        let Ok(eth) = EthernetFrame::new_checked(d) else {
            return Parse::Done(Verdict::Drop(DropReason::EthTruncated));
        };
        match eth.ethertype() {
            ETHERTYPE_IPV4 => {}
            ETHERTYPE_IPV6 => return Parse::Done(Verdict::Pass(PassReason::Ipv6)),
            _ => return Parse::Done(Verdict::Pass(PassReason::NotIp)),
        }
        let ip = match Ipv4Packet::new_checked(&d[ETH_LEN..]) {
            Ok(ip) => ip,
            Err(WireError::Truncated) => return Parse::Done(Verdict::Drop(DropReason::IpTruncated)),
            Err(WireError::Malformed) => return Parse::Done(Verdict::Drop(DropReason::IpBadHeader)),
        };
        if !ip.verify_checksum() {
            return Parse::Done(Verdict::Drop(DropReason::IpBadChecksum));
        }
        let proto = ip.protocol();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let frag = ip.flags_frag();
        if frag & FRAG_OFFSET_MASK != 0 {
            // A later fragment: no transport header; it goes where its first fragment went.
            return if matches!(proto, PROTO_TCP | PROTO_UDP) {
                Parse::Fragment
            } else {
                Parse::Done(Verdict::Pass(PassReason::OtherProto))
            };
        }
        let frag_id = (frag & FLAG_MF != 0).then(|| ip.ident());
        let l4_off = ETH_LEN + ip.header_len();
        let l4 = &d[l4_off..ETH_LEN + ip.total_len() as usize];
        let (sport, dport, flags) = match proto {
            PROTO_TCP => match TcpSegment::new_checked(l4) {
                Ok(t) => (t.src_port(), t.dst_port(), t.flags()),
                Err(_) => return Parse::Done(Verdict::Drop(DropReason::L4Bad)),
            },
            // A first fragment holds the UDP header, not the length the header gives.
            PROTO_UDP if frag_id.is_some() && l4.len() >= 8 => {
                let u = UdpDatagram::new_unchecked(l4);
                (u.src_port(), u.dst_port(), 0)
            }
            PROTO_UDP => match UdpDatagram::new_checked(l4) {
                Ok(u) => (u.src_port(), u.dst_port(), 0),
                Err(_) => return Parse::Done(Verdict::Drop(DropReason::L4Bad)),
            },
            PROTO_ICMP => {
                return match Self::icmp_error_of(d) {
                    Some(_) => Parse::IcmpError,
                    None => Parse::Done(Verdict::Pass(PassReason::Icmp)),
                }
            }
            _ => return Parse::Done(Verdict::Pass(PassReason::OtherProto)),
        };
        Parse::Flow(Parsed {
            key: ConnKey { saddr: src, daddr: dst, sport, dport, proto },
            l4_off: l4_off as u16,
            tcp_flags: flags,
            ttl: ip.ttl(),
            frag_id,
        })
    }

    /// An ICMP error (destination unreachable, time exceeded, parameter problem) that quotes
    /// a TCP or UDP packet's IP header and at least 8 bytes of its transport header is one to
    /// relay to a connection (IPVS `ip_vs_in_icmp` / `ip_vs_out_icmp`); all other ICMP (echo,
    /// short quotes) is the kernel's.
    /// (The frame was checked by [`Pipeline::parse`]: an IPv4 header with a right checksum.)
    pub fn icmp_error_of(d: &[u8]) -> Option<(ConnKey, IcmpError, u8)> {
        let ip = Ipv4Packet::new_checked(d.get(ETH_LEN..)?).ok()?;
        // A fragmented error cannot be checked or translated whole: the kernel's.
        if ip.is_fragment() {
            return None;
        }
        let (icmp, end, ttl) = (ETH_LEN + ip.header_len(), ETH_LEN + ip.total_len() as usize, ip.ttl());
        let pass = None;
        let Some(msg) = d.get(icmp..end) else { return pass };
        // A corrupted error is not relayed (IPVS checks it too): its checksum would be made
        // right on the way out.
        if crate::wire::checksum::checksum(msg) != 0 {
            return None;
        }
        if msg.len() < 8 + 20 + 8 || !matches!(msg[0], 3 | 11 | 12) {
            return pass;
        }
        let quoted_ip = icmp + 8;
        // The quote is cut: its header's total length is the original's, not the quote's.
        let q = Ipv4Packet::new_unchecked(&d[quoted_ip..end]);
        if q.version() != 4 || q.header_len() < 20 {
            return pass;
        }
        let quoted_l4 = quoted_ip + q.header_len();
        if !matches!(q.protocol(), PROTO_TCP | PROTO_UDP)
            || quoted_l4 + 8 > end
            || q.flags_frag() & FRAG_OFFSET_MASK != 0
        {
            return pass;
        }
        let port = |at: usize| u16::from_be_bytes([d[at], d[at + 1]]);
        let key = ConnKey {
            saddr: q.src_addr(),
            daddr: q.dst_addr(),
            sport: port(quoted_l4),
            dport: port(quoted_l4 + 2),
            proto: q.protocol(),
        };
        let e = IcmpError { icmp, quoted_ip, quoted_l4, end, ty: msg[0], code: msg[1] };
        Some((key, e, ttl))
    }

    /// The datagram a later fragment belongs to, and its TTL.
    pub fn fragment_of(d: &[u8]) -> Option<(FragKey, u8)> {
        let ip = Ipv4Packet::new_checked(d.get(ETH_LEN..)?).ok()?;
        let k = FragKey { saddr: ip.src_addr(), daddr: ip.dst_addr(), proto: ip.protocol(), id: ip.ident() };
        Some((k, ip.ttl()))
    }

    /// The connection an ICMP error is about, and whether it goes to the real server (an
    /// error about a packet the client was sent) or to the client (about one the server was
    /// sent). `q` is the quoted packet's key.
    fn icmp_conn(&self, q: &ConnKey) -> Option<(u32, bool)> {
        // Quoted VIP:vport -> client: the connection's client-side key is the reverse.
        let client_side = ConnKey { saddr: q.daddr, daddr: q.saddr, sport: q.dport, dport: q.sport, proto: q.proto };
        if self.tables.service(q.proto, q.saddr, q.sport).is_some() {
            if let Some(i) = self.shard.lookup_in(&client_side, self.shard.hash(&client_side)) {
                return Some((i, true));
            }
        }
        // Quoted client (or DIP:lport) -> server: its reply's key is the reverse.
        let reply = client_side;
        self.find_reply(&reply).map(|i| (i, false))
    }

    /// Another worker that owns the connection an ICMP error quoting `q` is about (NAT and
    /// FULLNAT: see [`Pipeline::owner`]; the quoted packet names the client endpoint or the
    /// local port). DR and TUN connections live where their queue put them: an error is
    /// relayed when it reaches that worker.
    fn icmp_owner(&self, q: &ConnKey) -> Option<u16> {
        if self.workers < 2 {
            return None;
        }
        // The connection's client-side key (about what a client was sent), or its reply's key
        // (about what a server was sent): the quoted packet reversed, as `icmp_conn` finds it.
        let k = ConnKey { saddr: q.daddr, daddr: q.saddr, sport: q.dport, dport: q.sport, proto: q.proto };
        self.owner(&k, self.tables.service(q.proto, q.saddr, q.sport))
    }

    /// Relays an ICMP error to the connection's real server or client, translating the outer
    /// header and the quoted packet as the mode rewrote the connection's packets (IPVS's
    /// `ip_vs_nat_icmp`), every checksum kept right.
    #[cold]
    fn relay_icmp(&mut self, frame: &mut Frame<'_>, q: &ConnKey, e: &IcmpError, ttl: u8, now_ms: u64) -> Verdict {
        let Some((idx, to_server)) = self.icmp_conn(q) else {
            return Verdict::Pass(PassReason::Icmp);
        };
        if self.shard.is_expired(idx, now_ms) {
            return Verdict::Pass(PassReason::Icmp);
        }
        if ttl <= 1 {
            return Verdict::Drop(DropReason::TtlExpired);
        }
        let c = *self.shard.conn(idx);
        let laddr = self.shard.laddr(&c);
        let mode = c.mode();
        // Only errors addressed where the connection's packets came from: the VIP (to the
        // server), the client (NAT) or the local address (FULLNAT) to the client. Anything else
        // would let anyone who knows a connection's tuple bounce errors through us.
        let outer_dst = Ipv4Packet::new_unchecked(&frame.data()[ETH_LEN..]).dst_addr();
        let expected = match (to_server, mode) {
            (true, _) => c.vaddr,
            (false, FwdMode::FullNat) => laddr,
            (false, _) => c.caddr,
        };
        if outer_dst != expected {
            return Verdict::Pass(PassReason::Icmp);
        }
        let hop = if to_server {
            self.tables.services.get(c.svc as usize).and_then(|s| s.dests.get(c.dest as usize)).and_then(|d| d.next_hop)
        } else {
            self.client_hop(c.caddr)
        };
        let Some(NextHop { mac, port, vlan }) = hop else {
            return Verdict::Drop(DropReason::NoNeighbour);
        };
        let src_mac = self.tables.port_mac(port);
        let f = frame.data_mut();
        match (mode, to_server) {
            (FwdMode::Nat, true) => {
                Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]).set_dst_addr(c.daddr);
                icmp::translate_quoted(f, e, q.proto, Quoted::Src, c.daddr, c.dport);
            }
            (FwdMode::FullNat, true) => {
                let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]);
                ip.set_src_addr(laddr);
                ip.set_dst_addr(c.daddr);
                icmp::translate_quoted(f, e, q.proto, Quoted::Src, c.daddr, c.dport);
                icmp::translate_quoted(f, e, q.proto, Quoted::Dst, laddr, c.lport);
            }
            (FwdMode::Nat, false) => {
                Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]).set_src_addr(c.vaddr);
                icmp::translate_quoted(f, e, q.proto, Quoted::Dst, c.vaddr, c.vport);
            }
            (FwdMode::FullNat, false) => {
                let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]);
                ip.set_src_addr(c.vaddr);
                ip.set_dst_addr(c.caddr);
                icmp::translate_quoted(f, e, q.proto, Quoted::Src, c.caddr, c.cport);
                icmp::translate_quoted(f, e, q.proto, Quoted::Dst, c.vaddr, c.vport);
            }
            // DR and TUN servers see the connection as the client does: nothing to translate.
            (FwdMode::Dr | FwdMode::Tun, _) => {}
        }
        icmp::fix_checksum(f, e);
        // To a TUN server: about its direct path to the client (not tunnelled), relayed as it
        // is, as IPVS does; only the tunnel's own errors would take 20 off the MTU.
        let tun_to = (mode == FwdMode::Tun && to_server).then_some(c.daddr);
        if let Err(r) = self.send_on(frame, tun_to, mac, src_mac) {
            return Verdict::Drop(r);
        }
        self.stats.icmp_relayed += 1;
        self.tx_vlan = vlan;
        Verdict::Tx(port)
    }

    /// Decides one frame and rewrites it in place when it is forwarded. Counts everything.
    /// A burst of one through [`Pipeline::process_burst`]: there is one decision path.
    pub fn process(&mut self, frame: &mut Frame<'_>, rx_port: u8, now_ms: u64) -> Verdict {
        let mut d = [Desc { idx: 0, head: frame.head() as u16, len: frame.len() as u16 }];
        let mut out = [Verdict::Drop(DropReason::EthTruncated)];
        self.process_burst(&mut OneFrame(frame.reborrow()), &mut d, rx_port, now_ms, &mut out);
        frame.set_span(d[0].head as usize, d[0].len as usize);
        out[0]
    }

    /// Another worker that owns this flow's connection, if any. With several workers, a
    /// NAT/FULLNAT connection lives on one worker whatever queue its frames arrive on: the
    /// client endpoint's [`client_owner`] for client frames and NAT replies (whose destination
    /// is the client), the local port's worker for FULLNAT replies. DR/TUN services see no
    /// replies, so they stay on the worker whose queue received them.
    #[inline]
    pub fn owner(&self, k: &ConnKey, svc: Option<u16>) -> Option<u16> {
        if self.workers < 2 {
            return None;
        }
        let t = &self.tables;
        let w = match svc {
            Some(s) => match t.services.get(s as usize) {
                Some(s) if s.replies_return => client_owner(k.saddr, k.sport, self.workers, t.owner_seed),
                _ => return None,
            },
            // A FULLNAT reply: its local port names the worker (every worker owns a share of
            // the ports of each local address).
            None if self.shard.is_local_addr(k.daddr) => {
                let (lo, hi) = t.lport_range;
                if k.dport < lo || k.dport > hi {
                    return None;
                }
                (k.dport - lo) % self.workers
            }
            None if !t.nat_services(k.proto, k.saddr, k.sport).is_empty() => {
                client_owner(k.daddr, k.dport, self.workers, t.owner_seed)
            }
            None => return None,
        };
        (w != self.worker).then_some(w)
    }

    /// The lookup-and-forward half of [`Pipeline::process`], with the service already looked up
    /// (`hash` is the key's hash, used for a service's packets) or `deferred` (a possible VIP's
    /// packet, whose connection is tried first), and a lookup hint from the burst's probe stage
    /// (checked here: an earlier frame of the burst may have created or removed connections
    /// since).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn decide_hinted(
        &mut self,
        frame: &mut Frame<'_>,
        p: &Parsed,
        hash: u64,
        svc: Option<u16>,
        deferred: bool,
        hint: u32,
        rx_port: u8,
        now_ms: u64,
    ) -> Verdict {
        let to = if deferred { self.established(p, hint, now_ms) } else { None };
        let (idx, hop) = match to {
            Some(to) => to,
            None => {
                let svc = if deferred { self.tables.service(p.key.proto, p.key.daddr, p.key.dport) } else { svc };
                let Some(svc) = svc else { return self.decide_reply(frame, p, hint, rx_port, now_ms) };
                match self.resolve_in(p, hash, svc, hint, now_ms) {
                    Ok(to) => to,
                    Err(v) => return v,
                }
            }
        };
        self.forward_in(frame, p, idx, hop, rx_port, now_ms)
    }

    /// The connection and real server a packet of service `svc` goes to: its live connection,
    /// else a new one (scheduled).
    #[inline]
    fn resolve_in(
        &mut self,
        p: &Parsed,
        hash: u64,
        svc: u16,
        hint: u32,
        now_ms: u64,
    ) -> Result<(u32, DestHop), Verdict> {
        let k = &p.key;
        // A probe that found nothing in stage 2 stands unless this burst has made a
        // connection of a like hash since (a second SYN of the flow, its ACK).
        let found = if hint != NONE && self.shard.is_in(hint, k) {
            Some(hint)
        } else if hint == NONE && self.made_in_burst & made_bit(hash) == 0 {
            None
        } else {
            self.shard.lookup_in(k, hash)
        };
        let live = self.live(found, now_ms);
        // Its real server, read once for the test here and the forwarding below.
        let hop = live.and_then(|i| self.hop_of(i));
        match (live, hop) {
            (Some(i), Some(h)) if h.live && !self.reused_by_syn(i, p) => {
                if k.proto == PROTO_UDP && !self.shard.conn(i).mode().replies_through_director() {
                    // A second datagram: the DR/TUN flow's source is real.
                    self.shard.mark_answered(i);
                }
                Ok((i, h))
            }
            _ => {
                if let Some(i) = live {
                    // Its real server was deleted, or a client's new SYN reuses a closing
                    // connection's ports: expire it and schedule this packet afresh (IPVS
                    // `expire_nodest_conn`, `conn_reuse_mode` 1; a TCP segment without SYN
                    // is then dropped as `no_conn`).
                    if hop.is_some_and(|h| h.live) {
                        self.stats.conn_reused += 1;
                    } else {
                        self.stats.nodest_expired += 1;
                    }
                    self.shard.remove(i);
                }
                let i = self.new_conn(svc, p, hash, now_ms)?;
                self.made_in_burst |= made_bit(hash);
                match self.hop_of(i) {
                    Some(h) => Ok((i, DestHop { fresh: true, ..h })),
                    None => Err(Verdict::Drop(DropReason::StaleConn)),
                }
            }
        }
    }

    /// A packet to no service: a real server's reply to a connection, or not the director's.
    #[inline]
    fn decide_reply(&mut self, frame: &mut Frame<'_>, p: &Parsed, hint: u32, rx_port: u8, now_ms: u64) -> Verdict {
        let k = &p.key;
        let found = if hint != NONE && self.shard.is_out(hint, k) { Some(hint) } else { self.find_reply(k) };
        if let Some(idx) = self.live(found, now_ms) {
            if k.proto == PROTO_UDP {
                self.shard.mark_answered(idx);
            }
            return self.forward_out(frame, p, idx, rx_port, now_ms);
        }
        Verdict::Pass(PassReason::NotService)
    }

    /// A client packet of slab entry `idx`, when that is its live connection, to a real server
    /// still live, and not a SYN that starts afresh: what [`Pipeline::resolve_in`] decides
    /// then, without the service's lookup (the record names its service). None, with nothing
    /// changed, for anything else: the caller then looks the service up and decides the usual
    /// way. (A live server's service is live, and covers the connection's VIP and port: that
    /// lookup would have found a service, and with it this connection and this server.)
    #[inline]
    fn established(&mut self, p: &Parsed, idx: u32, now_ms: u64) -> Option<(u32, DestHop)> {
        // One read of the record: live, this key's, not past its timeout.
        let c = self.shard.live_in(idx, &p.key, now_ms)?;
        let (svc, dest, replies) = (c.svc, c.dest, c.mode().replies_through_director());
        // A deleted service's servers are all deleted too (`Tables::build`): the server's
        // liveness answers for both.
        let d = self.tables.services.get(svc as usize)?.dests.get(dest as usize).filter(|d| d.live)?;
        let hop = DestHop { next_hop: d.next_hop, id: d.id, live: true, fresh: false };
        let answered = p.key.proto == PROTO_UDP && !replies;
        if self.reused_by_syn(idx, p) {
            return None;
        }
        if answered {
            // A second datagram: the DR/TUN flow's source is real.
            self.shard.mark_answered(idx);
        }
        Some((idx, hop))
    }

    /// Processes a burst of frames (at most [`BURST`]) in stages, like DPDK's bulk hash
    /// lookup: parse and hash all, probe the index for all, verify the slab records for all,
    /// then decide and rewrite each. The cache misses of the burst's lookups overlap instead of
    /// being paid one after another. Descriptors are updated (TUN grows frames).
    pub fn process_burst<S: FrameStore>(
        &mut self,
        store: &mut S,
        descs: &mut [Desc],
        rx_port: u8,
        now_ms: u64,
        out: &mut [Verdict],
    ) {
        self.process_burst_to(store, descs, rx_port, now_ms, out, &mut NoTxLists);
    }

    /// [`Pipeline::process_burst`], with each frame to transmit put straight on `tx`'s list
    /// for its interface, in burst order, so that the caller does not dispatch every verdict
    /// a second time. Returns the positions (a bit each) that `tx` did not take: every
    /// frame not transmitted, and any `tx` refused; `out` holds their verdicts.
    pub fn process_burst_to<S: FrameStore, T: TxLists>(
        &mut self,
        store: &mut S,
        descs: &mut [Desc],
        rx_port: u8,
        now_ms: u64,
        out: &mut [Verdict],
        tx: &mut T,
    ) -> u32 {
        let mut rest = 0u32;
        let n = descs.len().min(out.len()).min(BURST);
        self.made_in_burst = 0;
        let mut parsed = [Parsed::default(); BURST];
        let mut hashes = [0u64; BURST];
        let mut svcs = [None; BURST];
        let mut hint = [NONE; BURST];
        let mut flow = [false; BURST];
        // Later fragments and ICMP errors, by position (rare: read again when decided).
        let (mut later, mut icmps) = (0u32, 0u32);
        // 802.1Q tags taken out of frames (0x1_0000 | TCI; 0: untagged). A tagged frame is
        // decided untagged and tagged again on its way out.
        let mut tags = [0u32; BURST];
        // With one worker nothing is handed off, so the service is not needed before the
        // connection is looked up: a flow to a possible VIP probes the client-side index
        // first, and its service is looked up (stage 2 or 3) only when no live connection of
        // a live service is found. `deferred`: those flows, by position, until then.
        let connection_first = self.workers < 2;
        let mut deferred = 0u32;
        // Frame and byte counts kept in registers for the burst, added once at its end.
        let (mut rx_bytes, mut tx_frames, mut tx_bytes) = (0u64, 0u64, 0u64);
        for i in 0..n {
            let d = store.bytes(&descs[i]);
            rx_bytes += d.len() as u64;
            let p = match Self::parse_common(d) {
                Some(p) => p,
                None => match self.parse_rest(store, &mut descs[i], &mut tags[i]) {
                    Parse::Flow(p) => p,
                    Parse::Done(v) => {
                        out[i] = v;
                        continue;
                    }
                    Parse::Fragment => {
                        later |= 1 << i;
                        continue;
                    }
                    Parse::IcmpError => {
                        icmps |= 1 << i;
                        continue;
                    }
                },
            };
            if !self.tables.maybe_vip(p.key.daddr) {
                // No service's: a reply, or not the director's (`svcs[i]` stays None).
            } else if connection_first {
                deferred |= 1 << i;
            } else {
                svcs[i] = self.tables.service(p.key.proto, p.key.daddr, p.key.dport);
            }
            if let Some(w) = self.owner(&p.key, svcs[i]) {
                if let Some(id) = p.frag_id {
                    // A NIC hashes a datagram's fragments alike (by addresses): the later ones
                    // arrive here too, and follow this one.
                    self.note_handed_fragment(&p, id, w, now_ms);
                }
                out[i] = Verdict::Handoff(w as u8);
                continue;
            }
            flow[i] = true;
            // NAT replies are looked up by another key (see `first_probe`); FULLNAT replies
            // by their own, in the reply index.
            if svcs[i].is_some() || deferred & (1 << i) != 0 {
                hashes[i] = self.shard.hash(&p.key);
                self.shard.prefetch_in(hashes[i]);
            } else if self.shard.is_local_addr(p.key.daddr) {
                hashes[i] = self.shard.hash(&p.key);
                self.shard.prefetch_out(hashes[i]);
            }
            parsed[i] = p;
        }
        // The index lines were prefetched above, while the rest of the burst was parsed; now
        // probe them all, prefetching each candidate record for the decisions below.
        for j in 0..n {
            if flow[j] {
                if deferred & (1 << j) != 0 {
                    hint[j] = self.shard.probe_in(hashes[j]);
                    if hint[j] == NONE {
                        // No connection: the service decides (a new one, whose probe is this
                        // one, or a reply, probed by its own key).
                        deferred &= !(1 << j);
                        let k = &parsed[j].key;
                        svcs[j] = self.tables.service(k.proto, k.daddr, k.dport);
                        if svcs[j].is_none() {
                            hint[j] = self.first_probe(k, hashes[j], None);
                        }
                    }
                } else {
                    hint[j] = self.first_probe(&parsed[j].key, hashes[j], svcs[j]);
                }
                self.shard.prefetch_conn(hint[j]);
            }
        }
        for i in 0..n {
            // Unless its decision names a next hop: back where it came from.
            self.tx_vlan = tags[i] as u16 & VLAN_VID_MASK;
            self.rx_vlan = self.tx_vlan;
            if flow[i] {
                let mut f = store.frame(&descs[i]);
                let p = &parsed[i];
                let deferred = deferred & (1 << i) != 0;
                out[i] = self.decide_hinted(&mut f, p, hashes[i], svcs[i], deferred, hint[i], rx_port, now_ms);
                descs[i].head = f.head() as u16;
                descs[i].len = f.len() as u16;
            } else if (later | icmps) & (1 << i) != 0 {
                let mut f = store.frame(&descs[i]);
                out[i] = self.decide_rare(&mut f, later & (1 << i) != 0, now_ms);
                descs[i].head = f.head() as u16;
                descs[i].len = f.len() as u16;
            }
            if tags[i] | self.tx_vlan as u32 != 0 {
                out[i] = self.retag(store, &mut descs[i], out[i], tags[i]);
            }
            match out[i] {
                Verdict::Tx(iface) => {
                    tx_frames += 1;
                    tx_bytes += descs[i].len as u64;
                    if !tx.push(iface, descs[i]) {
                        rest |= 1 << i;
                    }
                    continue;
                }
                Verdict::Drop(r) => self.stats.drops[r as usize] += 1,
                Verdict::Pass(r) => self.stats.passes[r as usize] += 1,
                Verdict::Handoff(_) => self.stats.handoff_out += 1,
            }
            rest |= 1 << i;
        }
        self.stats.rx_frames += n as u64;
        self.stats.rx_bytes += rx_bytes;
        self.stats.tx_frames += tx_frames;
        self.stats.tx_bytes += tx_bytes;
        rest
    }

    /// Takes a received frame's 802.1Q tag out; `0x1_0000 | TCI`.
    #[cold]
    fn untag<S: FrameStore>(store: &mut S, d: &mut Desc) -> u32 {
        let mut f = store.frame(d);
        let tag = pop_vlan(&mut f).map_or(0, |tci| 0x1_0000 | tci as u32);
        d.head = f.head() as u16;
        d.len = f.len() as u16;
        tag
    }

    /// Tags a decided frame for the VLAN it leaves on: a forwarded one with its next hop's
    /// VLAN id (keeping the priority it came with when that is its own VLAN), one passed to
    /// the kernel or another worker with the tag it came with, as received.
    #[cold]
    fn retag<S: FrameStore>(&mut self, store: &mut S, d: &mut Desc, v: Verdict, rx_tag: u32) -> Verdict {
        let rx_vid = rx_tag as u16 & VLAN_VID_MASK;
        let tci = match v {
            Verdict::Drop(_) => return v,
            Verdict::Tx(_) if self.tx_vlan == 0 => return v,
            Verdict::Tx(_) if rx_tag == 0 || self.tx_vlan != rx_vid => self.tx_vlan,
            _ if rx_tag == 0 => return v,
            _ => rx_tag as u16,
        };
        let mut f = store.frame(d);
        let ok = push_vlan(&mut f, tci);
        d.head = f.head() as u16;
        d.len = f.len() as u16;
        if ok {
            v
        } else {
            Verdict::Drop(DropReason::NoRoom)
        }
    }

    /// The connection a real server's reply belongs to: FULLNAT by its local port, NAT by the
    /// client-side key rebuilt for each service of that real server.
    #[inline]
    fn find_reply(&self, k: &ConnKey) -> Option<u32> {
        if self.shard.is_local_addr(k.daddr) {
            if let Some(i) = self.shard.lookup_out(k, self.shard.hash(k)) {
                return Some(i);
            }
        }
        for &svc in self.tables.nat_services(k.proto, k.saddr, k.sport) {
            let Some(ik) = self.reply_in_key(svc, k) else { continue };
            if let Some(i) = self.shard.lookup_in(&ik, self.shard.hash(&ik)) {
                if self.shard.is_out(i, k) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// The client-side key a NAT reply `k` would have if it belonged to service `svc`.
    #[inline]
    fn reply_in_key(&self, svc: u16, k: &ConnKey) -> Option<ConnKey> {
        let s = self.tables.services.get(svc as usize)?;
        // A port-0 service kept the client's destination port, which the reply carries back.
        let vport = if s.vport == 0 { k.sport } else { s.vport };
        Some(ConnKey { saddr: k.daddr, daddr: s.vip, sport: k.dport, dport: vport, proto: k.proto })
    }

    /// The first lookup a burst makes for a flow: its own key for a service's packets; for a
    /// possible reply, its local port's owner (FULLNAT) or the rebuilt client-side key of its
    /// real server's first service (NAT).
    #[inline]
    fn first_probe(&self, k: &ConnKey, hash: u64, svc: Option<u16>) -> u32 {
        if svc.is_some() {
            return self.shard.probe_in(hash);
        }
        if self.shard.is_local_addr(k.daddr) {
            return self.shard.probe_out(hash);
        }
        match self.tables.nat_services(k.proto, k.saddr, k.sport).first().and_then(|s| self.reply_in_key(*s, k)) {
            Some(ik) => self.shard.probe_in(self.shard.hash(&ik)),
            None => NONE,
        }
    }

    /// A found connection, unless it timed out before housekeeping collected it.
    #[inline]
    fn live(&mut self, found: Option<u32>, now_ms: u64) -> Option<u32> {
        let i = found?;
        if self.shard.is_expired(i, now_ms) {
            self.shard.remove(i);
            return None;
        }
        Some(i)
    }

    /// Answers a packet whose TTL would reach 0 with ICMP "time exceeded" from `src`, back
    /// out of `rx_port`, at most [`ICMP_PER_SEC`] a second (burst [`ICMP_BURST`]) per worker
    /// as the kernel limits its own ICMP errors; the packet itself is dropped.
    #[cold]
    fn time_exceeded(&mut self, frame: &mut Frame<'_>, rx_port: u8, src: u32, now_ms: u64) -> Verdict {
        let refill = now_ms.saturating_sub(self.icmp_refill_ms).saturating_mul(ICMP_PER_SEC) / 1000;
        if refill > 0 {
            self.icmp_tokens = (self.icmp_tokens as u64 + refill).min(ICMP_BURST) as u32;
            self.icmp_refill_ms = now_ms;
        }
        if self.icmp_tokens == 0 {
            self.stats.icmp_ratelimited += 1;
            return Verdict::Drop(DropReason::TtlExpired);
        }
        self.ident = self.ident.wrapping_add(1);
        if !modes::icmp::error_reply(frame, TYPE_TIME_EXCEEDED, CODE_TTL_EXCEEDED, 0, src, self.ident) {
            return Verdict::Drop(DropReason::TtlExpired);
        }
        self.icmp_tokens -= 1;
        self.stats.icmp_time_exceeded += 1;
        Verdict::Tx(rx_port)
    }

    /// Whether a SYN for connection `idx` starts a new connection rather than continuing it
    /// (IPVS `conn_reuse_mode` 1, `is_new_conn_expected`): the old one is in TIME_WAIT or
    /// CLOSE and not controlled by a persistence template; or its server is quiesced (weight
    /// 0, IPVS's `expire_nodest_conn` rule), so a client reusing its ports follows the
    /// scheduler and a quiesced server really drains.
    #[inline]
    fn reused_by_syn(&self, idx: u32, p: &Parsed) -> bool {
        if p.key.proto != PROTO_TCP || p.tcp_flags & tcp::SYN == 0 {
            return false;
        }
        let c = self.shard.conn(idx);
        let quiesced = self
            .tables
            .services
            .get(c.svc as usize)
            .and_then(|s| s.dests.get(c.dest as usize))
            .is_some_and(|d| d.weight == 0);
        let closing = matches!(c.tcp_state(), Some(TcpState::TimeWait | TcpState::Close));
        quiesced || (closing && !self.shard.follows_template(idx))
    }

    /// What forwarding connection `idx` needs of its real server (None: its service or slot
    /// is gone from the tables).
    #[inline]
    fn hop_of(&self, idx: u32) -> Option<DestHop> {
        let c = self.shard.conn(idx);
        let d = self.tables.services.get(c.svc as usize)?.dests.get(c.dest as usize)?;
        Some(DestHop { next_hop: d.next_hop, id: d.id, live: d.live, fresh: false })
    }

    /// Schedules a new connection (IPVS `ip_vs_schedule` / `ip_vs_sched_persist`); `hash`
    /// is its key's, from the lookup that missed.
    #[inline(never)]
    fn new_conn(&mut self, svc: u16, p: &Parsed, hash: u64, now_ms: u64) -> Result<u32, Verdict> {
        let k = p.key;
        if k.proto == PROTO_TCP && p.tcp_flags & (tcp::SYN | tcp::ACK | tcp::RST) != tcp::SYN {
            // sh and mh pick by the flow's addresses alone: a flow whose entry was lost (an
            // evicted one, a restart, a flow another director started) goes to the same real
            // server again, as Maglev and Katran do. The others need a SYN, as in IPVS; an
            // RST never makes a connection.
            let by_hash = p.tcp_flags & (tcp::SYN | tcp::RST) == 0
                && self.scheds.get(svc as usize).is_some_and(|s| matches!(s.kind(), SchedKind::Sh | SchedKind::Mh));
            if !by_hash {
                return Err(Verdict::Drop(DropReason::NoConn));
            }
        }
        let tables = &self.tables;
        let Some(s) = tables.services.get(svc as usize) else {
            return Err(Verdict::Drop(DropReason::NoDest));
        };
        let flow = Flow { proto: k.proto, saddr: k.saddr, sport: k.sport, daddr: k.daddr, dport: k.dport };
        let mut template = NONE;
        let mut chosen = None;
        if let Some((_, mask)) = s.persistence {
            let tkey = ConnKey::template(k.proto, k.saddr & mask, k.daddr, s.vport);
            let th = self.shard.hash(&tkey);
            let found = match self.shard.lookup_in(&tkey, th) {
                Some(t) if self.shard.is_expired(t, now_ms) => {
                    self.shard.remove(t);
                    None
                }
                f => f,
            };
            if let Some(t) = found {
                let c = self.shard.conn(t);
                // The template's server must still be in this service (it may be quiesced).
                let usable = s
                    .dests
                    .get(c.dest as usize)
                    .is_some_and(|d| c.svc == svc && d.live && d.addr == c.daddr && (d.port == c.dport || d.port == 0));
                if usable {
                    chosen = Some(c.dest as usize);
                    template = t;
                    self.shard.touch_template(t, now_ms);
                } else {
                    // Its server is gone: out of the way of the template made now.
                    self.shard.retire_template(t);
                }
            }
        }
        let di = match chosen {
            Some(d) => d,
            None => {
                let Some(sched) = self.scheds.get_mut(svc as usize) else {
                    return Err(Verdict::Drop(DropReason::NoDest));
                };
                // The scheduler picks a position in list order; connections name the slot.
                match sched.pick(&flow, self.shard.loads(svc)).and_then(|i| s.order.get(i)) {
                    Some(&slot) => slot as usize,
                    None => return Err(Verdict::Drop(DropReason::NoDest)),
                }
            }
        };
        let Some(d) = s.dests.get(di) else {
            return Err(Verdict::Drop(DropReason::NoDest));
        };
        let mut n = NewConn {
            key: k,
            daddr: d.addr,
            dport: if d.port == 0 { k.dport } else { d.port },
            mode: d.mode,
            laddr: tables.dip,
            svc,
            dest: di as u16,
            template,
        };
        if let (Some((timeout, mask)), NONE) = (s.persistence, template) {
            let tkey = ConnKey::template(k.proto, k.saddr & mask, k.daddr, s.vport);
            match self.shard.create_template(tkey, &n, timeout, now_ms) {
                // In place: a second `NewConn` built from this one cost 20 instructions.
                Ok(t) => n.template = t,
                Err(_) => return Err(Verdict::Drop(DropReason::TableFull)),
            }
        }
        // The connection is made in the state its first segment leads to, unless that segment
        // cannot be forwarded (its TTL runs out, its server's neighbour is unknown): then it
        // stays in NONE, which `forward_in` leaves it in, with NONE's short timeout, as before
        // connections were made in their first segment's state. (Else a flood of TTL-1 ACKs to
        // an sh/mh service would leave ESTABLISHED entries that no server ever saw.)
        let deliverable = p.ttl > 1 && d.next_hop.is_some();
        let flags = if k.proto == PROTO_TCP && deliverable { p.tcp_flags } else { 0 };
        match self.shard.create_by(&n, hash, flags, now_ms) {
            Ok(i) => {
                if let Some(c) = self.stats.dests.get_mut(d.id as usize) {
                    c.conns += 1;
                }
                Ok(i)
            }
            Err(Refused::TableFull) => Err(Verdict::Drop(DropReason::TableFull)),
            Err(Refused::NoLocalPort) => Err(Verdict::Drop(DropReason::NoLocalPort)),
        }
    }

    /// Client -> real server.
    #[inline]
    fn forward_in(
        &mut self,
        frame: &mut Frame<'_>,
        p: &Parsed,
        idx: u32,
        d: DestHop,
        rx_port: u8,
        now_ms: u64,
    ) -> Verdict {
        // Only what every mode needs; the others read the rest of the record in their arms.
        let mode = self.shard.conn(idx).mode();
        let Some(NextHop { mac, port, vlan }) = d.next_hop else {
            return Verdict::Drop(DropReason::NoNeighbour);
        };
        let src_mac = self.tables.port_mac(port);
        let l4 = L4 { off: p.l4_off as usize, proto: p.key.proto };
        // Every mode decrements the TTL, as IPVS does; one that would reach 0 is answered
        // with "time exceeded" from the address it was sent to (the VIP), as the kernel does.
        if p.ttl <= 1 {
            return self.time_exceeded(frame, rx_port, p.key.daddr, now_ms);
        }
        let dir = Dir::of_client(mode);
        if dir == Dir::Input {
            // The replies go back to the client: at its own MAC when it is on our link.
            if let Some(at) = self.tables.on_link(p.key.saddr) {
                learn_client(&mut self.onlink, frame.data(), p.key.saddr, at, (rx_port, self.rx_vlan), now_ms);
            }
        }
        let flags = (p.key.proto == PROTO_TCP).then_some(p.tcp_flags);
        let len = frame.len() as u64;
        match mode {
            FwdMode::Nat => {
                let c = self.shard.conn(idx);
                nat::rewrite_in(frame.data_mut(), l4, c.daddr, c.dport, mac, src_mac)
            }
            FwdMode::FullNat => {
                let c = self.shard.conn(idx);
                let (laddr, lport, state, svc) = (self.shard.laddr(c), c.lport, c.state, c.svc);
                let (daddr, dport) = (c.daddr, c.dport);
                fullnat::rewrite_in(frame.data_mut(), l4, laddr, lport, daddr, dport, mac, src_mac);
                if p.key.proto == PROTO_TCP && opens_connection(p.tcp_flags, state) {
                    add_toa(&mut self.stats, &self.tables, frame, p, svc);
                }
            }
            FwdMode::Dr => dr::rewrite(frame.data_mut(), mac, src_mac),
            FwdMode::Tun => {
                self.ident = self.ident.wrapping_add(1);
                let daddr = self.shard.conn(idx).daddr;
                match tun::encap(frame, self.tables.dip, daddr, self.ident, self.tables.mtu, mac, src_mac) {
                    Ok(()) => {}
                    Err(tun::TunError::TooBig { df: true }) => {
                        let mtu = self.tables.mtu - tun::OVERHEAD as u16;
                        if tun::frag_needed(frame, mtu, self.ident) {
                            self.stats.icmp_frag_needed += 1;
                            return Verdict::Tx(rx_port);
                        }
                        return Verdict::Drop(DropReason::NoRoom);
                    }
                    Err(tun::TunError::TooBig { df: false }) => return Verdict::Drop(DropReason::TooBigNoDf),
                    Err(tun::TunError::NoRoom) => return Verdict::Drop(DropReason::NoRoom),
                }
            }
        }
        if !d.fresh {
            self.shard.on_packet(idx, dir, flags, now_ms);
        }
        if let Some(s) = self.stats.dests.get_mut(d.id as usize) {
            s.in_pkts += 1;
            s.in_bytes += len;
        }
        // The rare tail, one test for both: a fragment's decision kept, a sync master's queue.
        if p.frag_id.is_some() | self.sync_out.is_some() {
            self.client_tail(p, idx, now_ms);
        }
        self.tx_vlan = vlan;
        Verdict::Tx(port)
    }

    /// The next hop of a client: its neighbour entry; on a connected subnet, its own MAC as
    /// learned from its frames (never the gateway: unknown, it gets nothing); else the gateway.
    #[inline]
    fn client_hop(&self, addr: u32) -> Option<NextHop> {
        if let Some(h) = self.tables.neighbour(addr) {
            return Some(h);
        }
        match self.tables.on_link(addr) {
            Some(at) => self
                .onlink
                .lookup(addr)
                .filter(|&(_, port, vlan)| (port, vlan) == at)
                .map(|(mac, port, vlan)| NextHop { mac, port, vlan }),
            None => self.tables.gateway(),
        }
    }

    /// A later fragment (`fragment`) or an ICMP error, read again from the frame.
    #[cold]
    fn decide_rare(&mut self, f: &mut Frame<'_>, fragment: bool, now_ms: u64) -> Verdict {
        if fragment {
            match Self::fragment_of(f.data()) {
                Some((k, ttl)) => self.forward_fragment(f, &k, ttl, now_ms),
                None => Verdict::Drop(DropReason::Fragment),
            }
        } else {
            match Self::icmp_error_of(f.data()) {
                Some((q, e, ttl)) if !self.tables.icmp_to_kernel => match self.icmp_owner(&q) {
                    Some(w) => Verdict::Handoff(w as u8),
                    None => self.relay_icmp(f, &q, &e, ttl, now_ms),
                },
                _ => Verdict::Pass(PassReason::Icmp),
            }
        }
    }

    /// Sends a rarely forwarded frame (a relayed ICMP error, a later fragment) on to `mac`
    /// from `src_mac`: in IP-in-IP to `tun_to` (a TUN server: the tunnel's own TTL and DF),
    /// else routed as it is (TTL decremented, MACs set).
    fn send_on(
        &mut self,
        frame: &mut Frame<'_>,
        tun_to: Option<u32>,
        mac: MacAddr,
        src_mac: MacAddr,
    ) -> Result<(), DropReason> {
        let Some(daddr) = tun_to else {
            modes::decrement_ttl(frame.data_mut());
            modes::set_macs(frame.data_mut(), mac, src_mac);
            return Ok(());
        };
        self.ident = self.ident.wrapping_add(1);
        tun::encap(frame, self.tables.dip, daddr, self.ident, self.tables.mtu, mac, src_mac).map_err(|e| match e {
            tun::TunError::TooBig { .. } => DropReason::TooBigNoDf,
            tun::TunError::NoRoom => DropReason::NoRoom,
        })
    }

    /// Keeps that a first fragment was handed to worker `w`, for the fragments that follow it.
    #[cold]
    fn note_handed_fragment(&mut self, p: &Parsed, id: u16, w: u16, now_ms: u64) {
        let k = FragKey { saddr: p.key.saddr, daddr: p.key.daddr, proto: p.key.proto, id };
        if self.frags.insert_handed(k, w, now_ms) {
            self.stats.frag_evicted += 1;
        }
    }

    /// What a client segment rarely needs after its rewrite: its fragments' decision kept,
    /// its sync messages queued (see [`Pipeline::note_sync`]).
    #[cold]
    #[inline(never)]
    fn client_tail(&mut self, p: &Parsed, idx: u32, now_ms: u64) {
        if let Some(id) = p.frag_id {
            self.track_fragments(p, id, idx, false, now_ms);
        }
        if self.sync_out.is_some() {
            self.note_sync(idx);
        }
    }

    /// Keeps a first fragment's decision for the fragments that follow it.
    #[cold]
    fn track_fragments(&mut self, p: &Parsed, id: u16, idx: u32, reply: bool, now_ms: u64) {
        let k = FragKey { saddr: p.key.saddr, daddr: p.key.daddr, proto: p.key.proto, id };
        self.stats.frag_tracked += 1;
        if self.frags.insert(k, idx, reply, now_ms) {
            self.stats.frag_evicted += 1;
        }
    }

    /// A later fragment: rewritten at the IP layer as its first fragment was (it carries no
    /// transport header), to the same next hop. One whose first fragment was not seen is
    /// dropped (`fragment`): xvs does not reassemble.
    #[cold]
    fn forward_fragment(&mut self, frame: &mut Frame<'_>, k: &FragKey, ttl: u8, now_ms: u64) -> Verdict {
        // Not ours to follow: dropped when it is for a VIP (no first fragment, no server to
        // send it to), else the kernel's (traffic of the host itself).
        let unknown = |t: &Tables| {
            if t.is_vip(k.daddr) {
                Verdict::Drop(DropReason::Fragment)
            } else {
                Verdict::Pass(PassReason::NotService)
            }
        };
        let (idx, reply) = match self.frags.lookup(k, now_ms) {
            Found::Hit { conn, reply } => (conn, reply),
            // Its first fragment went to the worker that owns the connection: so does it.
            Found::Handed(w) => return Verdict::Handoff(w as u8),
            Found::Expired => {
                self.stats.frag_expired += 1;
                return unknown(&self.tables);
            }
            Found::Miss => {
                self.stats.frag_unknown += 1;
                return unknown(&self.tables);
            }
        };
        let c = *self.shard.conn(idx);
        let laddr = self.shard.laddr(&c);
        // The slot may have been freed, or hold another connection by now: the fragment
        // must match a live one.
        let ours = self.shard.in_use(idx)
            && c.proto == k.proto
            && if reply {
                c.daddr == k.saddr && k.daddr == if c.mode() == FwdMode::FullNat { laddr } else { c.caddr }
            } else {
                c.caddr == k.saddr && c.vaddr == k.daddr
            };
        if !ours {
            self.stats.frag_unknown += 1;
            return unknown(&self.tables);
        }
        if ttl <= 1 {
            // Linux answers only a datagram's first fragment: a later one quotes no headers.
            return Verdict::Drop(DropReason::TtlExpired);
        }
        let len = frame.len() as u64;
        let id = self.tables.dest_id(c.svc, c.dest).unwrap_or(u32::MAX);
        let hop = if reply {
            self.client_hop(c.caddr)
        } else {
            self.tables.services.get(c.svc as usize).and_then(|s| s.dests.get(c.dest as usize)).and_then(|d| d.next_hop)
        };
        let Some(NextHop { mac, port, vlan }) = hop else {
            return Verdict::Drop(DropReason::NoNeighbour);
        };
        let src_mac = self.tables.port_mac(port);
        let f = frame.data_mut();
        let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]);
        match (c.mode(), reply) {
            (FwdMode::Nat, false) => ip.set_dst_addr(c.daddr),
            (FwdMode::FullNat, false) => {
                ip.set_src_addr(laddr);
                ip.set_dst_addr(c.daddr);
            }
            (FwdMode::Nat, true) => ip.set_src_addr(c.vaddr),
            (FwdMode::FullNat, true) => {
                ip.set_src_addr(c.vaddr);
                ip.set_dst_addr(c.caddr);
            }
            (FwdMode::Dr | FwdMode::Tun, _) => {}
        }
        let tun_to = (c.mode() == FwdMode::Tun && !reply).then_some(c.daddr);
        if let Err(r) = self.send_on(frame, tun_to, mac, src_mac) {
            return Verdict::Drop(r);
        }
        self.stats.frag_followed += 1;
        if let Some(s) = self.stats.dests.get_mut(id as usize) {
            if reply {
                s.out_pkts += 1;
                s.out_bytes += len;
            } else {
                s.in_pkts += 1;
                s.in_bytes += len;
            }
        }
        self.tx_vlan = vlan;
        Verdict::Tx(port)
    }

    /// Real server -> client (NAT, FULLNAT replies).
    #[inline]
    fn forward_out(&mut self, frame: &mut Frame<'_>, p: &Parsed, idx: u32, rx_port: u8, now_ms: u64) -> Verdict {
        let c = *self.shard.conn(idx);
        if p.ttl <= 1 {
            // From the director's address on the interface it came in on (the kernel's
            // choice for a packet it was not addressed by).
            let src = self.tables.iface_ip(rx_port);
            return self.time_exceeded(frame, rx_port, src, now_ms);
        }
        let Some(NextHop { mac, port, vlan }) = self.client_hop(c.caddr) else {
            return Verdict::Drop(DropReason::NoNeighbour);
        };
        let src_mac = self.tables.port_mac(port);
        let l4 = L4 { off: p.l4_off as usize, proto: p.key.proto };
        let len = frame.len() as u64;
        match c.mode() {
            FwdMode::FullNat => {
                fullnat::rewrite_out(frame.data_mut(), l4, c.vaddr, c.vport, c.caddr, c.cport, mac, src_mac)
            }
            _ => nat::rewrite_out(frame.data_mut(), l4, c.vaddr, c.vport, mac, src_mac),
        }
        let flags = (p.key.proto == PROTO_TCP).then_some(p.tcp_flags);
        self.shard.on_packet(idx, Dir::Output, flags, now_ms);
        if let Some(id) = p.frag_id {
            self.track_fragments(p, id, idx, true, now_ms);
        }
        let id = self.tables.dest_id(c.svc, c.dest).unwrap_or(u32::MAX);
        if let Some(s) = self.stats.dests.get_mut(id as usize) {
            s.out_pkts += 1;
            s.out_bytes += len;
        }
        self.tx_vlan = vlan;
        Verdict::Tx(port)
    }
}

/// Four seeds from the process's random source (ahash's, seeded by the OS at first use).
fn random_seeds() -> [u64; 4] {
    let r = ahash::RandomState::new();
    [r.hash_one(1u64), r.hash_one(2u64), r.hash_one(3u64), r.hash_one(4u64)]
}

/// Remembers the MAC of a client on subnet `at` (port, VLAN) of the director's links, from a
/// frame it sent that came in on `rx` (port, VLAN): one that came in elsewhere was routed, and
/// its source MAC is not the client's.
#[inline]
fn learn_client(onlink: &mut OnLink, d: &[u8], addr: u32, at: (u8, u16), rx: (u8, u16), now_ms: u64) {
    if at == rx {
        if let Ok(eth) = EthernetFrame::new_checked(d) {
            onlink.learn(addr, eth.src(), rx.0, rx.1, now_ms);
        }
    }
}

/// A store holding one frame, so that [`Pipeline::process`] runs the burst path.
struct OneFrame<'a>(Frame<'a>);

impl FrameStore for OneFrame<'_> {
    fn bytes(&self, d: &Desc) -> &[u8] {
        self.0.bytes_at(d.head as usize, d.len as usize)
    }
    fn frame(&mut self, d: &Desc) -> Frame<'_> {
        // Where the last view left it (a tag taken out moves the frame).
        self.0.set_span(d.head as usize, d.len as usize);
        self.0.reborrow()
    }
}
