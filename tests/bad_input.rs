//! Bad input never panics and every frame is accounted: forwarded, dropped with a reason, or
//! passed to the kernel with a reason.

mod common;
use common::*;
use etherparse::{IpNumber, Ipv4Header, Ipv4Options, PacketBuilder};
use proptest::prelude::*;
use xvs::dataplane::{DropReason, MemPort, PassReason, Pipeline, Verdict, Worker};

fn fix_ip_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let ihl = ((f[14] & 0xf) as usize) * 4;
    let c = xvs::wire::checksum::checksum(&f[14..14 + ihl.min(f.len() - 14)]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

fn syn80() -> Vec<u8> {
    tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, SYN, 64, &[])
}

fn verdict(f: &[u8]) -> Verdict {
    let mut p = pipeline(&config_json(""));
    run(&mut p, f, 0).0
}

#[test]
fn table_of_bad_frames() {
    let mut bad_ihl = syn80();
    bad_ihl[14] = 0x44;
    fix_ip_checksum(&mut bad_ihl);
    let mut bad_version = syn80();
    bad_version[14] = 0x65;
    let mut long_total = syn80();
    long_total[16] = 0x05;
    fix_ip_checksum(&mut long_total);
    let mut bad_csum = syn80();
    bad_csum[24] ^= 0xff;
    // A later fragment (offset 8 bytes) whose first fragment was never seen.
    let mut frag = syn80();
    frag[21] = 0x01;
    fix_ip_checksum(&mut frag);
    let mut frag_other = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, [198, 18, 0, 1], 40000, 22, SYN, 64, &[]);
    frag_other[21] = 0x10; // offset
    fix_ip_checksum(&mut frag_other);
    let mut bad_doff = syn80();
    bad_doff[14 + 20 + 12] = 0x40; // data offset 4 words
    let mut long_udp = udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 5000, 53, 64, b"abc");
    long_udp[14 + 20 + 4] = 0x10;
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    let mut v6 = syn80();
    v6[12] = 0x86;
    v6[13] = 0xdd;
    let mut gre = syn80();
    gre[14 + 9] = 47;
    fix_ip_checksum(&mut gre);
    let ping = {
        let b = PacketBuilder::ethernet2(CLIENT_MAC, DIR_C_MAC).ipv4(CLIENT, VIP, 64).icmpv4_echo_request(1, 1);
        let mut out = Vec::new();
        b.write(&mut out, b"ping").unwrap();
        out
    };
    let cases: Vec<(&str, Vec<u8>, Verdict)> = vec![
        ("empty frame", vec![], Verdict::Drop(DropReason::EthTruncated)),
        ("13 bytes", vec![0; 13], Verdict::Drop(DropReason::EthTruncated)),
        ("Ethernet header only", syn80()[..14].to_vec(), Verdict::Drop(DropReason::IpTruncated)),
        ("IPv4 header cut", syn80()[..30].to_vec(), Verdict::Drop(DropReason::IpTruncated)),
        ("IHL 4", bad_ihl, Verdict::Drop(DropReason::IpBadHeader)),
        ("version 6 in an IPv4 ethertype", bad_version, Verdict::Drop(DropReason::IpBadHeader)),
        ("total length beyond the frame", long_total, Verdict::Drop(DropReason::IpTruncated)),
        ("bad header checksum", bad_csum, Verdict::Drop(DropReason::IpBadChecksum)),
        ("a later fragment to a VIP without its first", frag, Verdict::Drop(DropReason::Fragment)),
        ("fragment to the director", frag_other, Verdict::Pass(PassReason::NotService)),
        ("TCP data offset < 5", bad_doff, Verdict::Drop(DropReason::L4Bad)),
        ("TCP header cut", syn80()[..14 + 20 + 10].to_vec(), Verdict::Drop(DropReason::IpTruncated)),
        ("UDP length beyond the datagram", long_udp, Verdict::Drop(DropReason::L4Bad)),
        ("ARP", arp, Verdict::Pass(PassReason::NotIp)),
        ("IPv6", v6, Verdict::Pass(PassReason::Ipv6)),
        ("GRE to the VIP", gre, Verdict::Pass(PassReason::OtherProto)),
        ("ping to the VIP", ping, Verdict::Pass(PassReason::Icmp)),
        // Answered with ICMP time exceeded out of the port they came in on (tests/golden.rs
        // checks the answer byte for byte).
        ("TTL 1 on NAT", tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, SYN, 1, &[]), Verdict::Tx(0)),
        ("TTL 0 on DR", tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 82, SYN, 0, &[]), Verdict::Tx(0)),
        (
            "ACK without a connection",
            tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, ACK, 64, &[]),
            Verdict::Drop(DropReason::NoConn),
        ),
        (
            "SYN-ACK to the VIP",
            tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, SYNACK, 64, &[]),
            Verdict::Drop(DropReason::NoConn),
        ),
        (
            "SSH to the director",
            tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, [198, 18, 0, 1], 40000, 22, SYN, 64, &[]),
            Verdict::Pass(PassReason::NotService),
        ),
        (
            "port without a service",
            tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 9999, SYN, 64, &[]),
            Verdict::Pass(PassReason::NotService),
        ),
    ];
    for (desc, frame, want) in cases {
        assert_eq!(verdict(&frame), want, "{desc}");
    }
}

#[test]
fn ethernet_padding_is_tolerated() {
    let mut f = syn80();
    f.extend_from_slice(&[0u8; 6]);
    let mut p = pipeline(&config_json(""));
    let (v, out) = run(&mut p, &f, 0);
    assert_eq!(v, Verdict::Tx(1));
    assert_checksums(&out[..out.len() - 6]);
}

#[test]
fn ip_options_are_forwarded_with_right_checksums() {
    let mut ip = Ipv4Header::new(20, 64, IpNumber::TCP, CLIENT, VIP).unwrap();
    ip.options = Ipv4Options::try_from(&[1u8, 1, 1, 0][..]).unwrap(); // NOP NOP NOP EOL
    let b = PacketBuilder::ethernet2(CLIENT_MAC, DIR_C_MAC)
        .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .tcp(40000, 80, 1, 100)
        .syn();
    let mut f = Vec::new();
    b.write(&mut f, &[]).unwrap();
    assert_eq!(f[14] & 0xf, 6);
    let mut p = pipeline(&config_json(""));
    let (v, out) = run(&mut p, &f, 0);
    assert_eq!(v, Verdict::Tx(1));
    assert_checksums(&out);
    assert_eq!(&out[14 + 16..14 + 20], &RS1, "destination rewritten");
    assert_eq!(&out[14 + 24 + 2..14 + 24 + 4], &8080u16.to_be_bytes(), "port rewritten after the options");
}

fn run_all(p: &mut Pipeline, frames: &[Vec<u8>]) {
    for (i, f) in frames.iter().enumerate() {
        let _ = run(p, f, i as u64);
    }
    let s = &p.stats;
    assert_eq!(s.rx_frames, frames.len() as u64);
    assert_eq!(s.tx_frames + s.total_drops() + s.total_passes(), s.rx_frames, "every frame is accounted");
}

fn mutate(mut f: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for (at, b) in edits {
        if !f.is_empty() {
            let i = at % f.len();
            f[i] = *b;
        }
    }
    let keep = f.len().saturating_sub(cut % 8);
    f.truncate(keep);
    f
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..20)) {
        let mut p = pipeline(&config_json(""));
        run_all(&mut p, &frames);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        sport in any::<u16>(), port in prop::sample::select(vec![53u16, 80, 81, 82, 83, 9999]),
        edits in prop::collection::vec((0usize..1600, any::<u8>()), 0..6), cut in any::<usize>(),
        len in 0usize..1600, udp in any::<bool>(), reply in any::<bool>(),
    ) {
        let payload = vec![0x5a; len];
        let f = match (udp, reply) {
            (true, false) => udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, port, 64, &payload),
            (true, true) => udp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 5353, sport, 64, &payload),
            (false, false) => tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, port, SYN, 64, &payload),
            (false, true) => tcp_frame(RS1_MAC, DIR_R_MAC, RS1, DIP, 8081, 20000, ACK, 64, &payload),
        };
        let mut p = pipeline(&config_json(""));
        let first = f.clone();
        run_all(&mut p, &[first, mutate(f, &edits, cut)]);
    }

    /// The fixed-offset parser accepts only what the checked parser accepts, and reads it
    /// the same, whatever the bytes (valid frames mutated and cut anywhere).
    #[test]
    fn the_common_frame_parser_agrees_with_the_checked_one(
        sport in any::<u16>(), edits in prop::collection::vec((0usize..80, any::<u8>()), 0..4),
        cut in any::<usize>(), len in 0usize..100, udp in any::<bool>(), fix in any::<bool>(),
    ) {
        let payload = vec![0x5a; len];
        let f = if udp {
            udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, 53, 64, &payload)
        } else {
            tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, 80, ACK, 64, &payload)
        };
        let p = pipeline(&config_json(""));
        let mut m = mutate(f.clone(), &edits, cut);
        // Half the time the header checksum is made right again, so that mutated headers
        // get past it.
        if fix && m.len() >= 14 + 60 {
            let ihl = ((m[14] & 0xf) as usize) * 4;
            if ihl >= 20 {
                m[24] = 0;
                m[25] = 0;
                let c = xvs::wire::checksum::checksum(&m[14..14 + ihl]);
                m[24..26].copy_from_slice(&c.to_be_bytes());
            }
        }
        for f in [f, m] {
            if let Some(fast) = Pipeline::parse_common(&f) {
                match p.parse(&f) {
                    xvs::dataplane::Parse::Flow(slow) => prop_assert_eq!(fast, slow),
                    _ => prop_assert!(false, "only the fast parser accepted {:?}", f),
                }
            }
        }
    }

    #[test]
    fn forwarded_frames_always_have_right_checksums(
        sport in 1u16.., port in prop::sample::select(vec![53u16, 80, 81, 82, 83]), len in 0usize..1400,
    ) {
        let payload = vec![0xa5; len];
        let f = if port == 53 {
            udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, port, 64, &payload)
        } else {
            tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, port, SYN, 64, &payload)
        };
        let mut p = pipeline(&config_json(""));
        let (v, out) = run(&mut p, &f, 0);
        prop_assert!(matches!(v, Verdict::Tx(_)));
        assert_checksums(&out);
    }
}

#[test]
fn worker_loop_accounts_every_frame_and_loses_no_buffer() {
    let mut port = MemPort::capturing();
    let good = syn80();
    for i in 0..500u32 {
        let mut f = good.clone();
        if i % 3 == 0 {
            f.truncate((i as usize) % f.len());
        }
        f[..].iter_mut().skip(34).take(2).for_each(|b| *b = (i & 0xff) as u8);
        port.push_rx(f);
    }
    let p = pipeline(&config_json(""));
    let mut w = Worker::new(0, p, vec![port, MemPort::capturing()], xvs::dataplane::FramePool::new(256), None);
    assert_eq!(w.run(), xvs::dataplane::Poll::Finished);
    let s = &w.pipeline.stats;
    assert_eq!(s.rx_frames, 500);
    assert_eq!(s.tx_frames + s.total_drops() + s.total_passes(), 500);
    assert_eq!(w.ports[1].tx.len() as u64, s.tx_frames, "forwarded frames left on the real-server port");
    assert_eq!(w.pool.available(), 256, "every frame buffer is back in the pool");
}

#[test]
fn a_frame_for_a_port_taken_away_is_counted_and_its_buffer_freed() {
    let mut port = MemPort::capturing();
    for _ in 0..100 {
        port.push_rx(syn80());
    }
    let p = pipeline(&config_json(""));
    let mut w = Worker::new(0, p, vec![port, MemPort::capturing()], xvs::dataplane::FramePool::new(256), None);
    // The real servers' port, gone after the worker mapped its interfaces (`ports` is public).
    w.ports.pop();
    assert_eq!(w.run(), xvs::dataplane::Poll::Finished);
    let s = &w.pipeline.stats;
    assert_eq!(s.rx_frames, 100);
    assert_eq!(s.tx_frames, 0, "nothing could be sent");
    assert_eq!(s.drops[xvs::dataplane::DropReason::TxFull as usize], 100);
    assert_eq!(w.pool.available(), 256, "every frame buffer is back in the pool");
}
