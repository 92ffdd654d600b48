//! `sync-decode CAPTURE.pcap`: IPVS connection-sync datagrams (protocol version 1) in a
//! capture, one line per connection, then a summary. Written from the kernel's structures
//! (`struct ip_vs_sync_mesg`, `struct ip_vs_sync_v4` / `_v6` and the option TLVs of
//! `net/netfilter/ipvs/ip_vs_sync.c`, laid out in `../shared/ha-notes.md`), independently of
//! xvs's encoder and decoder: the e2e tests check xvs's traffic with it, and its own tests
//! check it against datagrams assembled byte by byte from those layouts.
//!
//! Link types: Ethernet, Linux cooked and raw IP. `--port` (default 8848) picks the UDP
//! port. `--expect-conns N` exits non-zero unless at least N connections decoded;
//! `--strict` exits non-zero on any malformed datagram.

#[path = "pcap_packets.rs"]
mod pcap_packets;

use anyhow::{bail, Result};
use clap::Parser;
use etherparse::{NetSlice, TransportSlice};
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Parser)]
#[command(about = "Decode IPVS connection-sync (version 1) datagrams in a capture")]
struct Args {
    /// The capture (pcap).
    capture: std::path::PathBuf,
    /// UDP destination port of the sync traffic.
    #[arg(long, default_value_t = 8848)]
    port: u16,
    /// Fail unless at least this many connections decoded.
    #[arg(long)]
    expect_conns: Option<u64>,
    /// Fail on any malformed datagram.
    #[arg(long)]
    strict: bool,
}

/// `struct ip_vs_sync_mesg`: reserved u8, syncid u8, size be16, nr_conns u8, version s8,
/// spare be16.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    syncid: u8,
    size: u16,
    nr_conns: u8,
}

/// One `ip_vs_sync_v4` / `ip_vs_sync_v6` with what its options said.
#[derive(Debug, PartialEq, Eq)]
struct Conn {
    v6: bool,
    protocol: u8,
    flags: u32,
    state: u16,
    cport: u16,
    vport: u16,
    dport: u16,
    fwmark: u32,
    timeout: u32,
    caddr: String,
    vaddr: String,
    daddr: String,
    /// Option types seen (type byte as sent), with their lengths.
    options: Vec<(u8, u8)>,
    /// xvs's FULLNAT option (type 0x60: laddr be32, lport be16).
    fullnat: Option<(Ipv4Addr, u16)>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Decodes a whole datagram; Err names the first thing the kernel would drop it for.
fn decode(d: &[u8]) -> Result<(Header, Vec<Conn>), String> {
    if d.len() < 8 {
        return Err(format!("{} bytes: shorter than the header", d.len()));
    }
    if d[0] != 0 {
        return Err("version 0 message (first byte is nr_conns)".into());
    }
    if d[5] != 1 || u16_at(d, 6) != 0 {
        return Err(format!("version {} spare {}", d[5], u16_at(d, 6)));
    }
    let h = Header { syncid: d[1], size: u16_at(d, 2), nr_conns: d[4] };
    if h.size as usize != d.len() {
        return Err(format!("size field {} != datagram length {}", h.size, d.len()));
    }
    let mut conns = Vec::new();
    let mut at = 8usize;
    for i in 0..h.nr_conns as usize {
        if at + 4 > d.len() {
            return Err(format!("connection {i}: past the end"));
        }
        let typ = d[at];
        if typ & !1 != 0 {
            return Err(format!("connection {i}: type {typ:#x}"));
        }
        let v6 = typ == 1;
        let ver_size = u16_at(d, at + 2);
        if ver_size >> 12 != 0 {
            return Err(format!("connection {i}: version {}", ver_size >> 12));
        }
        let len = (ver_size & 0x0fff) as usize;
        let fixed = if v6 { 72 } else { 36 };
        if len < fixed || at + len > d.len() {
            return Err(format!("connection {i}: length {len} (fixed part {fixed}, {} bytes left)", d.len() - at));
        }
        let c = &d[at..at + len];
        let (caddr, vaddr, daddr) = if v6 {
            let a = |o: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&c[o..o + 16]).unwrap_or([0; 16])).to_string();
            (a(24), a(40), a(56))
        } else {
            let a = |o: usize| Ipv4Addr::from(u32_at(c, o)).to_string();
            (a(24), a(28), a(32))
        };
        let mut conn = Conn {
            v6,
            protocol: c[1],
            flags: u32_at(c, 4),
            state: u16_at(c, 8),
            cport: u16_at(c, 10),
            vport: u16_at(c, 12),
            dport: u16_at(c, 14),
            fwmark: u32_at(c, 16),
            timeout: u32_at(c, 20),
            caddr,
            vaddr,
            daddr,
            options: Vec::new(),
            fullnat: None,
        };
        let mut o = fixed;
        while o < len {
            if o + 2 > len {
                return Err(format!("connection {i}: option header past the connection"));
            }
            let (t, l) = (c[o], c[o + 1]);
            if l == 0 || o + 2 + l as usize > len {
                return Err(format!("connection {i}: option {t:#x} of length {l}"));
            }
            if t == 0x60 && l == 6 {
                conn.fullnat = Some((Ipv4Addr::from(u32_at(c, o + 2)), u16_at(c, o + 6)));
            }
            conn.options.push((t, l));
            o += 2 + l as usize;
        }
        conns.push(conn);
        at += (len + 3) & !3;
    }
    if at < d.len() {
        return Err(format!("{} bytes after the last connection", d.len() - at));
    }
    Ok((h, conns))
}

const TCP_STATES: [&str; 11] = [
    "NONE",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "SYNACK",
];

fn describe(c: &Conn) -> String {
    let method = ["MASQ", "LOCALNODE", "TUNNEL", "DROUTE", "BYPASS", "?5", "?6", "?7"][(c.flags & 7) as usize];
    let proto = match c.protocol {
        6 => "TCP",
        17 => "UDP",
        132 => "SCTP",
        _ => "proto?",
    };
    let state = if c.protocol == 6 { TCP_STATES.get(c.state as usize).copied().unwrap_or("?") } else { "-" };
    let mut s = format!(
        "{proto} {state} {}:{} -> {}:{} -> {}:{} {method}{}{} timeout {}s",
        c.caddr,
        c.cport,
        c.vaddr,
        c.vport,
        c.daddr,
        c.dport,
        if c.flags & 0x1000 != 0 { " TEMPLATE" } else { "" },
        if c.flags & 0x0100 != 0 { " INACTIVE" } else { "" },
        c.timeout
    );
    if c.fwmark != 0 {
        s += &format!(" fwmark {}", c.fwmark);
    }
    if let Some((a, p)) = c.fullnat {
        s += &format!(" fullnat-local {a}:{p}");
    }
    for (t, l) in c.options.iter().filter(|(t, _)| *t != 0x60) {
        s += &format!(" option {t:#x}/{l}");
    }
    s
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (mut datagrams, mut conns, mut bad) = (0u64, 0u64, 0u64);
    pcap_packets::each(&args.capture, |timestamp, p| {
        let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(udp))) = (&p.net, &p.transport) else { return };
        if udp.destination_port() != args.port {
            return;
        }
        datagrams += 1;
        let (src, dst, ttl) = (ip.header().source_addr(), ip.header().destination_addr(), ip.header().ttl());
        let at = format!("{}.{:06}", timestamp.as_secs(), timestamp.subsec_micros());
        match decode(udp.payload()) {
            Ok((h, cs)) => {
                println!("{at} {src} -> {dst} ttl {ttl}: syncid {} size {} conns {}", h.syncid, h.size, h.nr_conns);
                for c in &cs {
                    println!("  {}", describe(c));
                }
                conns += cs.len() as u64;
            }
            Err(e) => {
                bad += 1;
                println!("{at} {src} -> {dst}: MALFORMED: {e}");
            }
        }
    })?;
    println!("{datagrams} sync datagrams, {conns} connections, {bad} malformed");
    if args.strict && bad > 0 {
        bail!("{bad} malformed datagram(s)");
    }
    if let Some(n) = args.expect_conns {
        if conns < n {
            bail!("{conns} connection(s) decoded, expected at least {n}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ip_vs_sync_v4` byte by byte: type, protocol, ver_size, flags, state, cport, vport,
    /// dport, fwmark, timeout, caddr, vaddr, daddr.
    fn v4(len: u16, opts: &[u8]) -> Vec<u8> {
        let mut c = vec![0, 6];
        c.extend_from_slice(&len.to_be_bytes());
        c.extend_from_slice(&[0, 0, 0x01, 0x00]); // flags: INACTIVE, MASQ
        c.extend_from_slice(&[0, 4]); // FIN_WAIT
        c.extend_from_slice(&[0x9c, 0x40, 0x00, 0x50, 0x1f, 0x90]); // 40000, 80, 8080
        c.extend_from_slice(&[0, 0, 0, 0]);
        c.extend_from_slice(&[0, 0, 0, 120]);
        c.extend_from_slice(&[198, 18, 0, 2, 198, 18, 0, 100, 198, 19, 0, 11]);
        c.extend_from_slice(opts);
        c
    }

    fn mesg(syncid: u8, conns: &[Vec<u8>]) -> Vec<u8> {
        let mut d = vec![0, syncid, 0, 0, conns.len() as u8, 1, 0, 0];
        for c in conns {
            d.extend_from_slice(c);
            while d.len() % 4 != 0 {
                d.push(0);
            }
        }
        let n = d.len() as u16;
        d[2..4].copy_from_slice(&n.to_be_bytes());
        d
    }

    #[test]
    fn the_layouts_of_the_notes() {
        let d = mesg(5, &[v4(36, &[]), v4(44, &[0x60, 6, 198, 19, 0, 1, 0x27, 0x11])]);
        assert_eq!(d.len(), 8 + 36 + 44);
        let (h, cs) = decode(&d).unwrap();
        assert_eq!(h, Header { syncid: 5, size: 88, nr_conns: 2 });
        assert_eq!(cs[0].state, 4);
        assert_eq!((cs[0].cport, cs[0].vport, cs[0].dport, cs[0].timeout), (40000, 80, 8080, 120));
        assert_eq!((cs[0].caddr.as_str(), cs[0].daddr.as_str()), ("198.18.0.2", "198.19.0.11"));
        assert_eq!(cs[1].fullnat, Some((Ipv4Addr::new(198, 19, 0, 1), 10001)));
        assert!(describe(&cs[0])
            .contains("TCP FIN_WAIT 198.18.0.2:40000 -> 198.18.0.100:80 -> 198.19.0.11:8080 MASQ INACTIVE"));
        // A sequence option (type 1, 24 bytes) is walked over.
        let mut seq = vec![1, 24];
        seq.extend_from_slice(&[0; 24]);
        let (_, cs) = decode(&mesg(0, &[v4(62, &seq)])).unwrap();
        assert_eq!(cs[0].options, vec![(1, 24)]);
    }

    #[test]
    fn truncated_oversized_and_lying_datagrams() {
        let d = mesg(1, &[v4(36, &[]), v4(36, &[])]);
        for cut in 0..d.len() {
            assert!(decode(&d[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = d.clone();
        long.extend_from_slice(&[0; 8]);
        assert!(decode(&long).is_err(), "size field says less");
        let mut lie = d.clone();
        lie[4] = 3;
        assert!(decode(&lie).is_err(), "more connections than sent");
        let mut lie = d.clone();
        lie[8 + 3] = 250;
        assert!(decode(&lie).is_err(), "connection longer than the datagram");
        let mut v0 = d.clone();
        v0[0] = 2;
        assert!(decode(&v0).is_err());
        assert!(decode(&mesg(0, &[v4(40, &[0x60, 0])])).is_err(), "option of length 0");
    }

    /// xvs's encoder, read by this decoder: the two agree on every field.
    #[test]
    fn xvs_encoder_output_decodes_here() {
        use xvs::control::sync::message::Encoder;
        use xvs::model::SyncConn;
        let m = SyncConn {
            proto: 17,
            flags: 3,
            state: 0,
            caddr: 0xC612_0002,
            cport: 5000,
            vaddr: 0xC612_0064,
            vport: 53,
            daddr: 0xC613_000C,
            dport: 5353,
            fwmark: 0,
            timeout_s: 300,
            laddr: 0,
            lport: 0,
        };
        let full = SyncConn { proto: 6, flags: 0, state: 1, laddr: 0xC613_0001, lport: 10001, ..m };
        let mut e = Encoder::new(9, 1472);
        assert!(e.push(&m) && e.push(&full));
        let (h, cs) = decode(&e.take().unwrap()).unwrap();
        assert_eq!((h.syncid, h.nr_conns), (9, 2));
        assert_eq!((cs[0].protocol, cs[0].flags, cs[0].cport, cs[0].dport, cs[0].timeout), (17, 3, 5000, 5353, 300));
        assert_eq!(cs[0].vaddr, "198.18.0.100");
        assert_eq!(cs[1].fullnat, Some((Ipv4Addr::new(198, 19, 0, 1), 10001)));
        assert_eq!(cs[1].options, vec![(0x60, 6)]);
    }
}
