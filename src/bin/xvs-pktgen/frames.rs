//! What the generator sends: flows from address and port ranges, the profiles, and the frames
//! written at fixed offsets straight into a buffer (no allocation per frame), every checksum
//! computed. Payloads of 18 bytes or more carry a marker (magic, sequence number, send time)
//! that the sink reads for loss, reordering and latency.

use std::net::Ipv4Addr;
use xvs::wire::checksum::{checksum, fold, pseudo_header_sum, sum_bytes};
use xvs::wire::MacAddr;

/// The marker's first two bytes ("XG").
pub const MAGIC: u16 = 0x5847;
/// Marker bytes: magic (2), sequence number (8), send time in ns since the epoch (8).
pub const MARKER_LEN: usize = 18;
/// The simple IMIX: 7 frames of 64 bytes, 4 of 570, 1 of 1518 (sizes on the wire, FCS
/// included), in this order.
pub const IMIX: [u16; 12] = [64, 570, 64, 64, 570, 64, 1518, 64, 570, 64, 570, 64];
/// A frame's size on the wire beyond what is written: the FCS the NIC appends.
pub const FCS: usize = 4;
pub const MIN_SIZE: u16 = 64;
pub const MAX_SIZE: u16 = 1518;

/// An inclusive range of addresses or ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub first: u32,
    pub count: u32,
}

impl Range {
    /// `A`, `A-B` or (addresses) `A/len`.
    pub fn addrs(s: &str) -> Result<Range, String> {
        let ip =
            |t: &str| t.trim().parse::<Ipv4Addr>().map(u32::from).map_err(|_| format!("'{t}' is not an IPv4 address"));
        if let Some((a, len)) = s.split_once('/') {
            let len: u32 = len
                .parse()
                .ok()
                .filter(|l| (8..=32).contains(l))
                .ok_or(format!("'{s}': prefix length must be 8..32"))?;
            let count = 1u32 << (32 - len);
            return Ok(Range { first: ip(a)? & !(count - 1), count });
        }
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let (a, b) = (ip(a)?, ip(b)?);
        if b < a {
            return Err(format!("'{s}': the range ends before it starts"));
        }
        Ok(Range { first: a, count: b - a + 1 })
    }

    /// `P` or `P-Q`.
    pub fn ports(s: &str) -> Result<Range, String> {
        let port = |t: &str| t.trim().parse::<u16>().map(u32::from).map_err(|_| format!("'{t}' is not a port"));
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let (a, b) = (port(a)?, port(b)?);
        if b < a {
            return Err(format!("'{s}': the range ends before it starts"));
        }
        Ok(Range { first: a, count: b - a + 1 })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Fixed(u16),
    Imix,
}

impl Size {
    pub fn parse(s: &str) -> Result<Size, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(Size::Imix);
        }
        let n: u16 = s.parse().map_err(|_| format!("'{s}' is not a size (64..1518 or imix)"))?;
        if !(MIN_SIZE..=MAX_SIZE).contains(&n) {
            return Err(format!("{n}: a frame is 64..1518 bytes on the wire (FCS included)"));
        }
        Ok(Size::Fixed(n))
    }

    /// The wire size of frame `n`.
    fn of(self, n: u64) -> u16 {
        match self {
            Size::Fixed(s) => s,
            Size::Imix => IMIX[(n % IMIX.len() as u64) as usize],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// UDP datagrams, flows in turn.
    Udp,
    /// A TCP SYN from each source in turn: every frame a new connection.
    Syn,
    /// Per flow a SYN, then ACKs carrying data, flows in turn.
    Established,
    /// Established flows, with `new_pct` percent of the frames SYNs from sources beyond them.
    Mix { new_pct: u8 },
}

/// Everything that decides the frames.
#[derive(Clone, Debug)]
pub struct Spec {
    pub profile: Profile,
    pub size: Size,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: Range,
    pub sport: Range,
    pub dst: Ipv4Addr,
    pub dport: u16,
    /// Flows (sources) used, at most `src.count * sport.count`; for `Mix`, the established ones.
    pub flows: u64,
    /// Sources in random order (a fixed seed) instead of one after another.
    pub random: bool,
    pub seed: u64,
    pub vlan: Option<u16>,
    pub ttl: u8,
}

impl Spec {
    /// Distinct sources the ranges hold.
    pub fn sources(&self) -> u64 {
        self.src.count as u64 * self.sport.count as u64
    }

    /// Source `i`: the address varies fastest, then the port.
    pub fn source(&self, i: u64) -> (u32, u16) {
        let i = i % self.sources().max(1);
        let a = self.src.first + (i % self.src.count as u64) as u32;
        let p = self.sport.first + (i / self.src.count as u64) as u32;
        (a, p as u16)
    }
}

/// splitmix64: a cheap, good 64-bit mix for random source order.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Produces frame after frame of a [`Spec`].
pub struct Generator {
    pub spec: Spec,
    /// Frames produced.
    pub n: u64,
    /// Mix: established frames and new connections produced, and the accumulator that
    /// spreads the new ones evenly.
    est_n: u64,
    new_n: u64,
    acc: u32,
    /// Marker stream (the sender thread): the top byte of every sequence number.
    stream: u8,
    /// Sender threads: thread `stream` takes every `threads`-th source, so that threads
    /// never send from the same one.
    threads: u64,
}

/// What a frame was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Udp,
    Syn,
    Ack,
}

impl Generator {
    pub fn new(spec: Spec, stream: u8, threads: usize) -> Generator {
        let threads = threads.max(1) as u64;
        Generator { spec, n: 0, est_n: 0, new_n: 0, acc: 0, stream, threads }
    }

    /// The source index of the `k`-th draw among `count` sources starting at `base`.
    fn pick(&self, k: u64, base: u64, count: u64) -> u64 {
        let count = count.max(1);
        let k = k.wrapping_mul(self.threads).wrapping_add(self.stream as u64 % self.threads);
        let j = if self.spec.random {
            mix64(k ^ self.spec.seed.wrapping_mul(0x2545_F491_4F6C_DD1D)) % count
        } else {
            k % count
        };
        base + j
    }

    /// Writes the next frame into `buf` (at least 1522 bytes), stamped `ts_ns`; its length
    /// and what it is.
    pub fn next(&mut self, buf: &mut [u8], ts_ns: u64) -> (usize, Kind) {
        let s = &self.spec;
        let flows = s.flows.max(1);
        let seq = ((self.stream as u64) << 56) | (self.n & ((1 << 56) - 1));
        let wire = s.size.of(self.n) as usize;
        let (src, kind, tcp_seq) = match s.profile {
            Profile::Udp => (self.pick(self.n, 0, flows), Kind::Udp, 0),
            Profile::Syn => {
                let i = self.pick(self.n, 0, flows);
                (i, Kind::Syn, isn(i))
            }
            Profile::Established => self.established(self.n),
            Profile::Mix { new_pct } => {
                self.acc += new_pct as u32;
                if self.acc >= 100 {
                    self.acc -= 100;
                    // New connections come from the sources beyond the established flows.
                    let rest = s.sources().saturating_sub(flows).max(1);
                    let i = self.pick(self.new_n, flows, rest);
                    self.new_n += 1;
                    (i, Kind::Syn, isn(i))
                } else {
                    let r = self.established(self.est_n);
                    self.est_n += 1;
                    r
                }
            }
        };
        let (saddr, sport) = s.source(src);
        self.n += 1;
        let len = write_frame(buf, s, saddr, sport, kind, tcp_seq, wire, seq, ts_ns);
        (len, kind)
    }

    /// The `k`-th frame of the established profile: flows in turn, a SYN on the first
    /// round, then ACKs whose sequence numbers follow the data sent.
    fn established(&self, k: u64) -> (u64, Kind, u32) {
        let flows = self.spec.flows.max(1);
        let i = self.pick(k % flows, 0, flows);
        let round = k / flows;
        if round == 0 {
            return (i, Kind::Syn, isn(i));
        }
        let data = payload_room(&self.spec, Kind::Ack, self.spec.size.of(k) as usize) as u32;
        (i, Kind::Ack, isn(i).wrapping_add(1).wrapping_add(((round - 1) as u32).wrapping_mul(data)))
    }
}

/// A flow's initial sequence number (fixed per source, so ACKs follow their SYN).
fn isn(i: u64) -> u32 {
    mix64(i) as u32
}

fn headers_len(s: &Spec, kind: Kind) -> usize {
    14 + if s.vlan.is_some() { 4 } else { 0 } + 20 + if kind == Kind::Udp { 8 } else { 20 }
}

/// Payload bytes of a frame of `wire` bytes on the wire (a SYN carries none).
fn payload_room(s: &Spec, kind: Kind, wire: usize) -> usize {
    if kind == Kind::Syn {
        return 0;
    }
    let tag = if s.vlan.is_some() { 4 } else { 0 };
    (wire - FCS + tag).saturating_sub(headers_len(s, kind))
}

#[allow(clippy::too_many_arguments)]
fn write_frame(
    buf: &mut [u8],
    s: &Spec,
    saddr: u32,
    sport: u16,
    kind: Kind,
    tcp_seq: u32,
    wire: usize,
    seq: u64,
    ts_ns: u64,
) -> usize {
    let hl = headers_len(s, kind);
    let payload = payload_room(s, kind, wire);
    // A SYN is padded to the minimum frame by the NIC's rules: padding after the IP packet.
    let tag = if s.vlan.is_some() { 4 } else { 0 };
    let len = (hl + payload).max(MIN_SIZE as usize - FCS + tag);
    let b = &mut buf[..len];
    b.fill(0);
    b[0..6].copy_from_slice(&s.dst_mac.0);
    b[6..12].copy_from_slice(&s.src_mac.0);
    let mut o = 12;
    if let Some(vid) = s.vlan {
        b[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        b[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
        o = 16;
    }
    b[o..o + 2].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = o + 2;
    let l4 = ip + 20;
    let l4_len = hl - l4 + payload;
    let total = (20 + l4_len) as u16;
    let proto = if kind == Kind::Udp { 17 } else { 6 };
    {
        let h = &mut b[ip..l4];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
        h[6] = 0x40; // DF
        h[8] = s.ttl;
        h[9] = proto;
        h[12..16].copy_from_slice(&saddr.to_be_bytes());
        h[16..20].copy_from_slice(&u32::from(s.dst).to_be_bytes());
        let c = checksum(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let data = hl;
    if payload >= MARKER_LEN {
        b[data..data + 2].copy_from_slice(&MAGIC.to_be_bytes());
        b[data + 2..data + 10].copy_from_slice(&seq.to_be_bytes());
        b[data + 10..data + 18].copy_from_slice(&ts_ns.to_be_bytes());
    }
    {
        let t = &mut b[l4..l4 + l4_len];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&s.dport.to_be_bytes());
        let ck_at = if kind == Kind::Udp {
            t[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            6
        } else {
            t[4..8].copy_from_slice(&tcp_seq.to_be_bytes());
            if kind == Kind::Ack {
                // The server's ISN is not known (its SYN-ACK is not read): 1 stands for it.
                t[8..12].copy_from_slice(&1u32.to_be_bytes());
            }
            t[12] = 5 << 4;
            t[13] = if kind == Kind::Syn { 0x02 } else { 0x10 };
            t[14..16].copy_from_slice(&64240u16.to_be_bytes());
            16
        };
        let sum = sum_bytes(pseudo_header_sum(saddr, u32::from(s.dst), proto, l4_len as u16), t);
        let mut c = !fold(sum);
        if kind == Kind::Udp && c == 0 {
            c = 0xffff;
        }
        t[ck_at..ck_at + 2].copy_from_slice(&c.to_be_bytes());
    }
    len
}

/// A marker read back from a received frame: (sequence number, send time), if the frame is
/// IPv4 TCP or UDP (one 802.1Q tag allowed) whose payload starts with one.
pub fn read_marker(f: &[u8]) -> Option<(u64, u64)> {
    let mut o = 12;
    if f.get(12..14)? == [0x81, 0x00] {
        o = 16;
    }
    if f.get(o..o + 2)? != [0x08, 0x00] {
        return None;
    }
    let ip = o + 2;
    let ihl = ((*f.get(ip)? & 0x0f) as usize) * 4;
    let l4 = ip + ihl;
    let data = match *f.get(ip + 9)? {
        17 => l4 + 8,
        6 => l4 + ((*f.get(l4 + 12)? >> 4) as usize) * 4,
        // IP-in-IP (TUN): the inner packet.
        4 => return read_marker_ip(f, l4),
        _ => return None,
    };
    marker_at(f, data)
}

fn read_marker_ip(f: &[u8], ip: usize) -> Option<(u64, u64)> {
    let ihl = ((*f.get(ip)? & 0x0f) as usize) * 4;
    let l4 = ip + ihl;
    let data = match *f.get(ip + 9)? {
        17 => l4 + 8,
        6 => l4 + ((*f.get(l4 + 12)? >> 4) as usize) * 4,
        _ => return None,
    };
    marker_at(f, data)
}

fn marker_at(f: &[u8], data: usize) -> Option<(u64, u64)> {
    let m = f.get(data..data + MARKER_LEN)?;
    if u16::from_be_bytes([m[0], m[1]]) != MAGIC {
        return None;
    }
    let seq = u64::from_be_bytes(m[2..10].try_into().ok()?);
    let ts = u64::from_be_bytes(m[10..18].try_into().ok()?);
    Some((seq, ts))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use std::collections::HashSet;

    /// A spec for tests: 198.18.1.0/24 x ports 10000-10003 to 198.18.0.100:80, 1024 flows.
    pub(crate) fn spec(profile: Profile, size: Size) -> Spec {
        Spec {
            profile,
            size,
            src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src: Range::addrs("198.18.1.0/24").unwrap(),
            sport: Range::ports("10000-10003").unwrap(),
            dst: Ipv4Addr::new(198, 18, 0, 100),
            dport: 80,
            flows: 1024,
            random: false,
            seed: 1,
            vlan: None,
            ttl: 64,
        }
    }

    /// Every checksum (IPv4, TCP/UDP over the pseudo-header) checked independently.
    fn check(f: &[u8]) -> (u32, u16, Option<u16>, Kind, usize) {
        let p = SlicedPacket::from_ethernet(f).expect("etherparse parses it");
        let vid = p.vlan.as_ref().map(|v| match v {
            etherparse::VlanSlice::SingleVlan(s) => s.vlan_identifier().value(),
            etherparse::VlanSlice::DoubleVlan(d) => d.outer().vlan_identifier().value(),
        });
        let Some(NetSlice::Ipv4(ip)) = p.net else { panic!("not IPv4") };
        let h = ip.header();
        assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum(), "IPv4 checksum");
        let src = u32::from(h.source_addr());
        let (sport, kind, plen) = match p.transport {
            Some(TransportSlice::Udp(u)) => {
                let want = u.to_header().calc_checksum_ipv4(&h.to_header(), u.payload()).unwrap();
                assert_eq!(u.checksum(), want, "UDP checksum");
                (u.source_port(), Kind::Udp, u.payload().len())
            }
            Some(TransportSlice::Tcp(t)) => {
                let want = t.to_header().calc_checksum_ipv4(&h.to_header(), t.payload()).unwrap();
                assert_eq!(t.checksum(), want, "TCP checksum");
                let k = if t.syn() { Kind::Syn } else { Kind::Ack };
                (t.source_port(), k, t.payload().len())
            }
            _ => panic!("neither TCP nor UDP"),
        };
        (src, sport, vid, kind, plen)
    }

    #[test]
    fn every_size_and_profile_builds_frames_with_right_checksums() {
        let mut buf = [0u8; 2048];
        for profile in [Profile::Udp, Profile::Syn, Profile::Established, Profile::Mix { new_pct: 10 }] {
            for size in [Size::Fixed(64), Size::Fixed(65), Size::Fixed(128), Size::Fixed(1518), Size::Imix] {
                for vlan in [None, Some(100)] {
                    let mut s = spec(profile, size);
                    s.vlan = vlan;
                    s.flows = 64;
                    let mut g = Generator::new(s, 3, 1);
                    for n in 0..200u64 {
                        let (len, kind) = g.next(&mut buf, 1_000 + n);
                        let (_, _, vid, k, plen) = check(&buf[..len]);
                        assert_eq!(k, kind);
                        assert_eq!(vid, vlan);
                        let tag = if vlan.is_some() { 4 } else { 0 };
                        let wire = match size {
                            Size::Fixed(w) => w as usize,
                            Size::Imix => IMIX[(n % 12) as usize] as usize,
                        };
                        if kind != Kind::Syn {
                            assert_eq!(len + FCS, wire + tag, "{profile:?} {size:?}: frame {n} is {len} bytes");
                        } else {
                            assert_eq!(len + FCS, 64 + tag, "a SYN is a minimum frame");
                        }
                        if plen >= MARKER_LEN {
                            let (seq, ts) = read_marker(&buf[..len]).expect("marker");
                            assert_eq!(seq, (3u64 << 56) | n);
                            assert_eq!(ts, 1_000 + n);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn sources_spread_exactly_over_the_ranges() {
        let mut buf = [0u8; 2048];
        for random in [false, true] {
            // 256 addresses x 4 ports = 1024 sources; 1024 flows: each exactly once a round
            // when sequential; random draws stay in range.
            let mut s = spec(Profile::Syn, Size::Fixed(64));
            s.random = random;
            let mut g = Generator::new(s.clone(), 0, 1);
            let mut seen = std::collections::HashMap::new();
            for _ in 0..4096 {
                let (len, _) = g.next(&mut buf, 0);
                let (src, sport, ..) = check(&buf[..len]);
                assert!((s.src.first..s.src.first + 256).contains(&src));
                assert!((10000..=10003).contains(&sport));
                *seen.entry((src, sport)).or_insert(0u32) += 1;
            }
            if random {
                // 4096 draws over 1024 sources: most seen, none far more than its share.
                assert!(seen.len() > 950, "{} distinct", seen.len());
                assert!(seen.values().all(|&c| c < 20));
            } else {
                assert_eq!(seen.len(), 1024);
                assert!(seen.values().all(|&c| c == 4), "sequential: every source 4 times");
            }
        }
    }

    #[test]
    fn established_flows_send_a_syn_then_acks_that_follow_their_data() {
        let mut buf = [0u8; 2048];
        let mut s = spec(Profile::Established, Size::Fixed(128));
        s.flows = 10;
        let mut g = Generator::new(s, 0, 1);
        let mut synned = HashSet::new();
        let mut last_seq = std::collections::HashMap::new();
        for n in 0..50 {
            let (len, kind) = g.next(&mut buf, 0);
            let (src, sport, _, _, plen) = check(&buf[..len]);
            let p = SlicedPacket::from_ethernet(&buf[..len]).unwrap();
            let Some(TransportSlice::Tcp(t)) = p.transport else { panic!() };
            if n < 10 {
                assert_eq!(kind, Kind::Syn);
                assert!(synned.insert((src, sport)));
                last_seq.insert((src, sport), (t.sequence_number().wrapping_add(1), 0usize));
            } else {
                assert_eq!(kind, Kind::Ack);
                assert!(synned.contains(&(src, sport)), "an ACK only for a flow that sent its SYN");
                let (next, prev_len) = last_seq[&(src, sport)];
                assert_eq!(t.sequence_number(), next.wrapping_add(prev_len as u32));
                last_seq.insert((src, sport), (t.sequence_number(), plen));
            }
        }
    }

    #[test]
    fn mix_sends_the_asked_share_of_new_connections_from_other_sources() {
        let mut buf = [0u8; 2048];
        let mut s = spec(Profile::Mix { new_pct: 10 }, Size::Fixed(128));
        s.flows = 100;
        let mut g = Generator::new(s.clone(), 0, 1);
        let (mut syns_new, mut total) = (0, 0);
        for _ in 0..2000 {
            let (len, kind) = g.next(&mut buf, 0);
            let (src, sport, ..) = check(&buf[..len]);
            total += 1;
            let idx = (sport as u64 - 10000) * 256 + (src - s.src.first) as u64;
            if idx >= 100 {
                assert_eq!(kind, Kind::Syn, "sources beyond the flows only open connections");
                syns_new += 1;
            }
        }
        assert_eq!(syns_new, total / 10);
    }

    #[test]
    fn ranges_and_sizes_parse_or_say_why_not() {
        assert_eq!(Range::addrs("198.18.0.0/24").unwrap(), Range { first: 0xC612_0000, count: 256 });
        assert_eq!(Range::addrs("198.18.0.5").unwrap().count, 1);
        assert_eq!(Range::addrs("198.18.0.5-198.18.0.9").unwrap().count, 5);
        assert!(Range::addrs("198.18.0.9-198.18.0.5").unwrap_err().contains("ends before"));
        assert!(Range::addrs("198.18.0.300").unwrap_err().contains("198.18.0.300"));
        assert!(Range::addrs("198.18.0.0/4").unwrap_err().contains("prefix"));
        assert_eq!(Range::ports("1024-65535").unwrap().count, 64512);
        assert!(Range::ports("70000").unwrap_err().contains("70000"));
        assert_eq!(Size::parse("IMIX").unwrap(), Size::Imix);
        assert!(Size::parse("63").unwrap_err().contains("64..1518"));
        assert!(Size::parse("9000").unwrap_err().contains("64..1518"));
    }
}
