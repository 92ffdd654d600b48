//! Test helpers: frame builders and an independent checksum oracle (etherparse).
#![allow(dead_code)]

use etherparse::{Ipv4Header, NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use std::sync::Arc;
use xvs::config::Config;
use xvs::dataplane::{Frame, Pipeline, Verdict, HEADROOM};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const DIR_C_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const DIR_R_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
pub const RS1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x11];
pub const RS2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x12];
pub const CLIENT: [u8; 4] = [198, 18, 0, 2];
pub const VIP: [u8; 4] = [198, 18, 0, 100];
pub const DIP: [u8; 4] = [198, 19, 0, 1];
pub const RS1: [u8; 4] = [198, 19, 0, 11];
pub const RS2: [u8; 4] = [198, 19, 0, 12];

/// A two-interface director: clients on xvs-c, real servers on xvs-r. One service per mode.
pub fn config_json(extra_services: &str) -> String {
    format!(
        r#"{{
  "director": {{
    "interfaces": [
      {{"name": "xvs-c", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"}},
      {{"name": "xvs-r", "mac": "02:00:00:00:01:01", "ip": "198.19.0.1"}}
    ],
    "dip": "198.19.0.1",
    "local_ports": [20000, 20009],
    "mtu": 1500
  }},
  "neighbours": [
    {{"ip": "198.18.0.2", "mac": "02:00:00:00:00:02", "interface": "xvs-c"}},
    {{"ip": "198.19.0.11", "mac": "02:00:00:00:01:11", "interface": "xvs-r"}},
    {{"ip": "198.19.0.12", "mac": "02:00:00:00:01:12", "interface": "xvs-r"}}
  ],
  "conn": {{"max_per_worker": 1024}},
  "services": [
    {{"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr",
      "real_servers": [{{"addr": "198.19.0.11", "port": 8080, "mode": "nat"}}, {{"addr": "198.19.0.12", "port": 8080, "mode": "nat"}}]}},
    {{"proto": "tcp", "vip": "198.18.0.100", "port": 81, "scheduler": "rr",
      "real_servers": [{{"addr": "198.19.0.11", "port": 8081, "mode": "fullnat"}}]}},
    {{"proto": "tcp", "vip": "198.18.0.100", "port": 82, "scheduler": "rr",
      "real_servers": [{{"addr": "198.19.0.11", "mode": "dr"}}]}},
    {{"proto": "tcp", "vip": "198.18.0.100", "port": 83, "scheduler": "rr",
      "real_servers": [{{"addr": "198.19.0.11", "mode": "tun"}}]}},
    {{"proto": "udp", "vip": "198.18.0.100", "port": 53, "scheduler": "rr",
      "real_servers": [{{"addr": "198.19.0.11", "port": 5353, "mode": "nat"}}]}}
    {extra_services}
  ]
}}"#
    )
}

pub fn pipeline(json: &str) -> Pipeline {
    let cfg = Config::parse(json).expect("test config is valid");
    Pipeline::new(Arc::new(xvs::control::tables_for(&cfg, None).expect("tables")), 0)
}

/// Runs one frame through the pipeline (in a buffer with headroom, like a UMEM frame), as
/// received on interface 0.
pub fn run(p: &mut Pipeline, frame: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
    run_on(p, frame, 0, now_ms)
}

/// Runs one frame through the pipeline as received on interface `rx_port`.
#[allow(dead_code)]
pub fn run_on(p: &mut Pipeline, frame: &[u8], rx_port: u8, now_ms: u64) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; 2048];
    let n = frame.len().min(2048 - HEADROOM);
    buf[HEADROOM..HEADROOM + n].copy_from_slice(&frame[..n]);
    let mut f = Frame::new(&mut buf, HEADROOM, n);
    let v = p.process(&mut f, rx_port, now_ms);
    (v, f.data().to_vec())
}

#[derive(Clone, Copy, Default)]
pub struct Tcp {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}
pub const SYN: Tcp = Tcp { syn: true, ack: false, fin: false, rst: false };
pub const SYNACK: Tcp = Tcp { syn: true, ack: true, fin: false, rst: false };
pub const ACK: Tcp = Tcp { syn: false, ack: true, fin: false, rst: false };
pub const FINACK: Tcp = Tcp { syn: false, ack: true, fin: true, rst: false };
pub const RST: Tcp = Tcp { syn: false, ack: false, fin: false, rst: true };

#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    t: Tcp,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(smac, dmac).ipv4(src, dst, ttl).tcp(sport, dport, 1000, 64240);
    if t.syn {
        b = b.syn();
    }
    if t.ack {
        b = b.ack(5000);
    }
    if t.fin {
        b = b.fin();
    }
    if t.rst {
        b = b.rst();
    }
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("build tcp frame");
    out
}

#[allow(clippy::too_many_arguments)]
pub fn udp_frame(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac).ipv4(src, dst, ttl).udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("build udp frame");
    out
}

/// Independent oracle: every IPv4 header checksum and TCP/UDP checksum in the frame is
/// right (IP-in-IP: outer and inner).
pub fn assert_checksums(frame: &[u8]) {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse parses the frame");
    let Some(NetHeaders::Ipv4(ip, _)) = &h.net else { panic!("not IPv4") };
    assert_eq!(ip.header_checksum, ip.calc_header_checksum(), "IPv4 header checksum");
    let payload = h.payload.slice();
    match &h.transport {
        Some(TransportHeader::Tcp(t)) => {
            assert_eq!(t.checksum, t.calc_checksum_ipv4(ip, payload).expect("tcp csum"), "TCP checksum")
        }
        Some(TransportHeader::Udp(u)) => {
            if u.checksum != 0 {
                assert_eq!(u.checksum, u.calc_checksum_ipv4(ip, payload).expect("udp csum"), "UDP checksum")
            }
        }
        Some(TransportHeader::Icmpv4(i)) => {
            assert_eq!(i.checksum, i.icmp_type.calc_checksum(payload), "ICMP checksum")
        }
        _ => {
            if ip.protocol == etherparse::IpNumber::IPV4 {
                // The same link header (tag and all) over the inner packet.
                let l2 = frame.len() - h.payload.slice().len() - ip.header_len();
                let mut inner = frame[..l2].to_vec();
                inner.extend_from_slice(&frame[l2 + ip.header_len()..]);
                assert_checksums(&inner);
            }
        }
    }
}

/// The frame with its IPv4 header rebuilt (for building expected outer headers).
pub fn ipv4_header(
    payload_len: u16,
    ttl: u8,
    proto: etherparse::IpNumber,
    src: [u8; 4],
    dst: [u8; 4],
    ident: u16,
    df: bool,
) -> Vec<u8> {
    let mut h = Ipv4Header::new(payload_len, ttl, proto, src, dst).expect("header");
    h.identification = ident;
    h.dont_fragment = df;
    h.header_checksum = h.calc_header_checksum();
    h.to_bytes().to_vec()
}

/// `frame` (Ethernet + IPv4) with IP id `id`, split as a host splits it: `chunk` bytes of IP
/// payload a fragment (a multiple of 8), the same id, MF on all but the last.
pub fn fragments(frame: &[u8], id: u16, chunk: usize) -> Vec<Vec<u8>> {
    let ihl = ((frame[14] & 0xf) * 4) as usize;
    let payload = &frame[14 + ihl..];
    let df = u16::from_be_bytes([frame[20], frame[21]]) & 0x4000;
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + chunk).min(payload.len());
        let mut f = frame[..14 + ihl].to_vec();
        f.extend_from_slice(&payload[off..end]);
        f[16..18].copy_from_slice(&((ihl + end - off) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&id.to_be_bytes());
        let mf = if end < payload.len() { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&(df | mf | (off / 8) as u16).to_be_bytes());
        fix_ip_checksum(&mut f);
        out.push(f);
        off = end;
    }
    out
}

/// An ICMP "fragmentation needed" (next-hop MTU `mtu`) from `src` to `dst` quoting `quote`.
pub fn frag_needed(smac: [u8; 6], dmac: [u8; 6], src: [u8; 4], dst: [u8; 4], mtu: u16, quote: &[u8]) -> Vec<u8> {
    use etherparse::icmpv4::DestUnreachableHeader;
    use etherparse::Icmpv4Type;
    let b = etherparse::PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu }));
    let mut out = Vec::with_capacity(b.size(quote.len()));
    b.write(&mut out, quote).expect("icmp frame");
    out
}

pub fn fix_ip_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let ihl = ((f[14] & 0xf) as usize) * 4;
    let c = xvs::wire::checksum::checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Recomputes the TCP checksum of an untagged IPv4 (no options) TCP frame.
pub fn fix_tcp_checksum(f: &mut [u8]) {
    let src = u32::from_be_bytes([f[26], f[27], f[28], f[29]]);
    let dst = u32::from_be_bytes([f[30], f[31], f[32], f[33]]);
    let total = u16::from_be_bytes([f[16], f[17]]) as usize;
    let l4 = &mut f[34..14 + total];
    l4[16] = 0;
    l4[17] = 0;
    let sum = xvs::wire::checksum::sum_bytes(xvs::wire::checksum::pseudo_header_sum(src, dst, 6, l4.len() as u16), l4);
    let c = !xvs::wire::checksum::fold(sum);
    l4[16..18].copy_from_slice(&c.to_be_bytes());
}
