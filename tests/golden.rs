//! Golden frames: (description, input frame, expected verdict, expected output frame) through
//! the pure pipeline, for every mode and direction. Expected frames are built independently
//! with etherparse, so a byte-equal output also has every checksum right.

mod common;
use common::*;
use etherparse::IpNumber;
use xvs::dataplane::{DropReason, Verdict};

struct Case {
    desc: &'static str,
    input: Vec<u8>,
    verdict: Verdict,
    output: Option<Vec<u8>>,
}

fn run_cases(cases: Vec<Case>) {
    run_cases_with(&config_json(""), cases)
}

fn run_cases_with(json: &str, cases: Vec<Case>) {
    let mut p = pipeline(json);
    for (i, c) in cases.into_iter().enumerate() {
        // Frames to the director's server-side MAC arrive on that interface.
        let rx_port = u8::from(c.input[..6] == DIR_R_MAC);
        let (v, out) = run_on(&mut p, &c.input, rx_port, 1000 + i as u64);
        assert_eq!(v, c.verdict, "{}: verdict", c.desc);
        if let Some(exp) = c.output {
            // (ARP has no checksums.)
            let ethertype = if exp[12..14] == [0x81, 0] { &exp[16..18] } else { &exp[12..14] };
            assert_eq!(out, exp, "{}: output frame", c.desc);
            if ethertype == [8, 0] {
                assert_checksums(&out);
            }
        }
    }
}

#[test]
fn nat_both_directions() {
    let pl = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    run_cases(vec![
        Case {
            desc: "NAT SYN client->VIP:80 becomes client->RS1:8080, TTL-1, towards RS1's MAC",
            input: tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, SYN, 64, &[]),
            verdict: Verdict::Tx(1),
            output: Some(tcp_frame(DIR_R_MAC, RS1_MAC, CLIENT, RS1, 40000, 8080, SYN, 63, &[])),
        },
        Case {
            desc: "NAT SYN-ACK RS1:8080->client becomes VIP:80->client",
            input: tcp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 8080, 40000, SYNACK, 64, &[]),
            verdict: Verdict::Tx(0),
            output: Some(tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 80, 40000, SYNACK, 63, &[])),
        },
        Case {
            desc: "NAT data segment follows the connection",
            input: tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, ACK, 64, pl),
            verdict: Verdict::Tx(1),
            output: Some(tcp_frame(DIR_R_MAC, RS1_MAC, CLIENT, RS1, 40000, 8080, ACK, 63, pl)),
        },
        Case {
            desc: "NAT second connection goes to RS2 (rr)",
            input: tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40001, 80, SYN, 64, &[]),
            verdict: Verdict::Tx(1),
            output: Some(tcp_frame(DIR_R_MAC, RS2_MAC, CLIENT, RS2, 40001, 8080, SYN, 63, &[])),
        },
        Case {
            desc: "NAT reply from RS2 for the second connection",
            input: tcp_frame(RS2_MAC, DIR_R_MAC, RS2, CLIENT, 8080, 40001, SYNACK, 64, pl),
            verdict: Verdict::Tx(0),
            output: Some(tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 80, 40001, SYNACK, 63, pl)),
        },
        Case {
            desc: "a reply from the wrong real server is not ours: passed to the kernel",
            input: tcp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 8080, 40001, ACK, 64, &[]),
            verdict: Verdict::Pass(xvs::dataplane::PassReason::NotService),
            output: None,
        },
    ]);
}

#[test]
fn fullnat_both_directions() {
    let pl = b"hello";
    run_cases(vec![
        Case {
            desc: "FULLNAT SYN client:40000->VIP:81 becomes DIP:20000->RS1:8081",
            input: tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 81, SYN, 64, &[]),
            verdict: Verdict::Tx(1),
            output: Some(tcp_frame(DIR_R_MAC, RS1_MAC, DIP, RS1, 20000, 8081, SYN, 63, &[])),
        },
        Case {
            desc: "FULLNAT reply RS1:8081->DIP:20000 becomes VIP:81->client:40000",
            input: tcp_frame(RS1_MAC, DIR_R_MAC, RS1, DIP, 8081, 20000, SYNACK, 64, pl),
            verdict: Verdict::Tx(0),
            output: Some(tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 81, 40000, SYNACK, 63, pl)),
        },
        Case {
            desc: "FULLNAT second client connection gets the next local port",
            input: tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40001, 81, SYN, 64, &[]),
            verdict: Verdict::Tx(1),
            output: Some(tcp_frame(DIR_R_MAC, RS1_MAC, DIP, RS1, 20001, 8081, SYN, 63, &[])),
        },
    ]);
}

#[test]
fn dr_changes_macs_and_the_ttl() {
    let input = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 82, SYN, 64, b"x");
    run_cases(vec![Case {
        desc: "DR SYN: MACs, and the TTL decremented as IPVS does in every mode",
        input,
        verdict: Verdict::Tx(1),
        output: Some(tcp_frame(DIR_R_MAC, RS1_MAC, CLIENT, VIP, 40000, 82, SYN, 63, b"x")),
    }]);
}

/// An ICMP error about `input` from `src`, back to its sender's MAC, quoting the original as
/// RFC 1812 allows (576 bytes in all), as the director builds it.
fn icmp_error_expected(input: &[u8], src: [u8; 4], ty: u8, code: u8, rest: u32, ident: u16) -> Vec<u8> {
    let ip = &input[14..];
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let quoted = total.min(576 - 28);
    let mut e = Vec::new();
    e.extend_from_slice(&input[6..12]);
    e.extend_from_slice(&input[0..6]);
    e.extend_from_slice(&[0x08, 0x00]);
    let sender = [ip[12], ip[13], ip[14], ip[15]];
    e.extend_from_slice(&ipv4_header((8 + quoted) as u16, 64, IpNumber::ICMP, src, sender, ident, false));
    let mut icmp = vec![ty, code, 0, 0];
    icmp.extend_from_slice(&rest.to_be_bytes());
    icmp.extend_from_slice(&ip[..quoted]);
    let c = xvs::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    e.extend_from_slice(&icmp);
    e
}

#[test]
fn ttl_1_gets_time_exceeded_in_every_mode_and_direction() {
    // (description, frame, the address the answer comes from)
    let cases = [
        ("NAT SYN with TTL 1", tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, SYN, 1, &[]), VIP, 0),
        ("FULLNAT SYN with TTL 1", tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 81, SYN, 1, &[]), VIP, 0),
        ("DR SYN with TTL 1", tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 82, SYN, 1, b"y"), VIP, 0),
        ("TUN SYN with TTL 1", tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, SYN, 1, &[]), VIP, 0),
        ("DR with TTL 0", tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 82, SYN, 0, &[]), VIP, 0),
        (
            "UDP NAT datagram with TTL 1 and a long payload (quote cut at 576)",
            udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 5000, 53, 1, &[9u8; 1000]),
            VIP,
            0,
        ),
    ];
    for (desc, input, src, port) in cases {
        let mut p = pipeline(&config_json(""));
        let (v, out) = run(&mut p, &input, 0);
        assert_eq!(v, Verdict::Tx(port), "{desc}");
        assert_checksums(&out);
        assert_eq!(out, icmp_error_expected(&input, src, 11, 0, 0, 1), "{desc}");
        assert_eq!(p.stats.icmp_time_exceeded, 1, "{desc}");
    }
    // A NAT reply with TTL 1: answered to the real server from the director's address on
    // the interface it came in on.
    let mut p = pipeline(&config_json(""));
    assert_eq!(
        run(&mut p, &tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, SYN, 64, &[]), 0).0,
        Verdict::Tx(1)
    );
    let reply = tcp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 8080, 40000, SYNACK, 1, &[]);
    let (v, out) = run_on(&mut p, &reply, 1, 1);
    assert_eq!(v, Verdict::Tx(1), "back towards the real server");
    assert_eq!(out, icmp_error_expected(&reply, DIP, 11, 0, 0, 1));
}

#[test]
fn time_exceeded_is_rate_limited_as_the_kernel_limits_icmp() {
    let mut p = pipeline(&config_json(""));
    let ttl1 = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 82, SYN, 1, &[]);
    // A burst of 50, then about one a millisecond.
    let sent = (0..200).filter(|_| run(&mut p, &ttl1, 0).0 == Verdict::Tx(0)).count();
    assert_eq!(sent, 50);
    assert_eq!(p.stats.icmp_ratelimited, 150);
    assert_eq!(run(&mut p, &ttl1, 0).0, Verdict::Drop(DropReason::TtlExpired));
    assert_eq!(run(&mut p, &ttl1, 10).0, Verdict::Tx(0), "refilled 10 ms later");
}

/// `input` with its TTL one less (and the header checksum fixed).
fn ttl_minus_one(input: &[u8]) -> Vec<u8> {
    let mut f = input.to_vec();
    f[22] -= 1;
    fix_ip_checksum(&mut f);
    f
}

/// The IP-in-IP frame for `input`: the inner packet with its TTL decremented, under an outer
/// header with the inner TTL, TOS (ECN copied, RFC 6040) and DF.
fn tun_expected(input: &[u8], ident: u16) -> Vec<u8> {
    let dec = ttl_minus_one(input);
    let inner = &dec[14..];
    let df = inner[6] & 0x40 != 0;
    let mut e = Vec::new();
    e.extend_from_slice(&RS1_MAC);
    e.extend_from_slice(&DIR_R_MAC);
    e.extend_from_slice(&[0x08, 0x00]);
    let mut outer = ipv4_header(inner.len() as u16, inner[8], IpNumber::IPV4, DIP, RS1, ident, df);
    outer[1] = inner[1];
    outer[10..12].copy_from_slice(&[0, 0]);
    let c = xvs::wire::checksum::checksum(&outer);
    outer[10..12].copy_from_slice(&c.to_be_bytes());
    e.extend_from_slice(&outer);
    e.extend_from_slice(inner);
    e
}

#[test]
fn tun_encapsulates_ipip() {
    let syn = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, SYN, 64, &[]);
    let data = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, ACK, 64, &[7u8; 1000]);
    run_cases(vec![
        Case {
            desc: "TUN SYN in IP-in-IP to RS1",
            input: syn.clone(),
            verdict: Verdict::Tx(1),
            output: Some(tun_expected(&syn, 1)),
        },
        Case {
            desc: "TUN 1000-byte segment",
            input: data.clone(),
            verdict: Verdict::Tx(1),
            output: Some(tun_expected(&data, 2)),
        },
        Case {
            desc: "TUN with DSCP EF and ECN CE: the outer header copies both (RFC 6040), TTL 17 -> 16",
            input: with_tos(&tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, ACK, 17, &[5u8; 10]), 0xb8 | 3),
            verdict: Verdict::Tx(1),
            output: Some(tun_expected(
                &with_tos(&tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, ACK, 17, &[5u8; 10]), 0xb8 | 3),
                3,
            )),
        },
        Case {
            desc: "TUN with ECT(1), TTL 2 -> 1 (still forwarded)",
            input: with_tos(&tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, ACK, 2, &[5u8; 10]), 1),
            verdict: Verdict::Tx(1),
            output: Some(tun_expected(
                &with_tos(&tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, ACK, 2, &[5u8; 10]), 1),
                4,
            )),
        },
    ]);
}

#[test]
fn tun_too_big_with_df_gets_frag_needed() {
    let mut p = pipeline(&config_json(""));
    let syn = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, SYN, 64, &[]);
    assert_eq!(run(&mut p, &syn, 0).0, Verdict::Tx(1));
    // IP total 1500: 1520 once encapsulated, above the 1500 MTU.
    let big = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, ACK, 64, &[1u8; 1460]);
    let (v, out) = run(&mut p, &big, 1);
    assert_eq!(v, Verdict::Tx(0), "answered on the port it came from");
    assert_checksums(&out);
    let quoted = 576 - 28;
    let mut e = Vec::new();
    e.extend_from_slice(&CLIENT_MAC);
    e.extend_from_slice(&DIR_C_MAC);
    e.extend_from_slice(&[0x08, 0x00]);
    e.extend_from_slice(&ipv4_header((8 + quoted) as u16, 64, IpNumber::ICMP, VIP, CLIENT, 2, false));
    let mut icmp = vec![3u8, 4, 0, 0, 0, 0, (1480u16 >> 8) as u8, (1480u16 & 0xff) as u8];
    // The quote shows the TTL already decremented, as the kernel's does.
    icmp.extend_from_slice(&ttl_minus_one(&big)[14..14 + quoted]);
    let c = xvs::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    e.extend_from_slice(&icmp);
    assert_eq!(out, e);
    assert_eq!(p.stats.icmp_frag_needed, 1);
}

#[test]
fn tun_too_big_without_df_is_dropped_and_counted() {
    let mut p = pipeline(&config_json(""));
    let syn = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, SYN, 64, &[]);
    assert_eq!(run(&mut p, &syn, 0).0, Verdict::Tx(1));
    let mut big = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, ACK, 64, &[1u8; 1460]);
    big[20] &= !0x40;
    fix_ip_checksum(&mut big);
    assert_eq!(run(&mut p, &big, 1).0, Verdict::Drop(DropReason::TooBigNoDf));
    assert_eq!(p.stats.dropped(DropReason::TooBigNoDf), 1);
}

/// `f` with IPv4 TOS `tos` (header checksum fixed).
fn with_tos(f: &[u8], tos: u8) -> Vec<u8> {
    let mut f = f.to_vec();
    f[15] = tos;
    fix_ip_checksum(&mut f);
    f
}

#[test]
fn udp_nat_with_and_without_checksum() {
    let q = b"\x12\x34\x01\x00\x00\x01";
    let mut zero = udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 5000, 53, 64, q);
    zero[40] = 0;
    zero[41] = 0;
    let mut zero_out = udp_frame(DIR_R_MAC, RS1_MAC, CLIENT, RS1, 5000, 5353, 63, q);
    zero_out[40] = 0;
    zero_out[41] = 0;
    run_cases(vec![
        Case {
            desc: "UDP NAT query",
            input: udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 5000, 53, 64, q),
            verdict: Verdict::Tx(1),
            output: Some(udp_frame(DIR_R_MAC, RS1_MAC, CLIENT, RS1, 5000, 5353, 63, q)),
        },
        Case {
            desc: "UDP NAT answer",
            input: udp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 5353, 5000, 64, q),
            verdict: Verdict::Tx(0),
            output: Some(udp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 53, 5000, 63, q)),
        },
        Case { desc: "UDP without checksum keeps none", input: zero, verdict: Verdict::Tx(1), output: Some(zero_out) },
    ]);
}

/// The worker's staged burst path decides exactly like frame-at-a-time processing, also when
/// one burst holds several frames of the same flow (a SYN and its follow-ups, a reply).
#[test]
fn burst_processing_equals_single_frames() {
    use xvs::dataplane::{FramePool, FrameStore, BURST};
    let mut frames = Vec::new();
    for c in 0..6u16 {
        let port = [80u16, 81, 82, 83, 80, 81][c as usize];
        frames.push(tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 41000 + c, port, SYN, 64, &[]));
        frames.push(tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 41000 + c, port, ACK, 64, b"data"));
        if port == 80 {
            let rs = if c == 0 { RS1 } else { RS2 };
            frames.push(tcp_frame(RS1_MAC, DIR_R_MAC, rs, CLIENT, 8080, 41000 + c, SYNACK, 64, &[]));
        }
        if port == 81 {
            let lport = 20000 + (c / 5);
            frames.push(tcp_frame(RS1_MAC, DIR_R_MAC, RS1, DIP, 8081, lport, SYNACK, 64, &[]));
        }
        frames.push(tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 41000 + c, port, RST, 64, &[]));
    }
    frames.push(vec![1, 2, 3]);
    frames.push(udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 5000, 53, 64, b"q"));
    frames.push(udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 5000, 53, 64, b"q"));
    let json = config_json("");

    let mut single = pipeline(&json);
    let expected: Vec<_> = frames.iter().map(|f| run(&mut single, f, 5)).collect();

    let mut burst = pipeline(&json);
    let mut pool = FramePool::new(64);
    let mut got = Vec::new();
    for chunk in frames.chunks(BURST) {
        let mut descs: Vec<_> = chunk.iter().map(|f| pool.load(f).unwrap()).collect();
        let mut verdicts = vec![Verdict::Drop(DropReason::NoConn); descs.len()];
        burst.process_burst(&mut pool, &mut descs, 0, 5, &mut verdicts);
        for (d, v) in descs.iter().zip(verdicts) {
            got.push((v, FrameStore::bytes(&pool, d).to_vec()));
            pool.free(d.idx);
        }
    }
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(expected.iter()).enumerate() {
        assert_eq!(g.0, e.0, "frame {i}: verdict");
        if matches!(e.0, Verdict::Tx(_)) {
            assert_eq!(g.1, e.1, "frame {i}: bytes");
        }
    }
    assert_eq!(burst.stats, single.stats);
    assert_eq!(burst.shard.len(), single.shard.len());
}

/// A new flow's SYN, its retransmission and its ACK in one burst (ten flows, every mode's
/// service): the later frames find the connection the first made in that burst, although
/// their stage-2 probes found nothing. Frame for frame as one at a time: the same verdicts,
/// bytes and connections.
#[test]
fn a_new_flows_frames_in_one_burst_share_the_connection_its_first_made() {
    use xvs::dataplane::{FramePool, FrameStore, BURST};
    let mut frames = Vec::new();
    for c in 0..10u16 {
        let port = [80u16, 81, 82, 83][c as usize % 4];
        for t in [SYN, SYN, ACK] {
            frames.push(tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 42000 + c, port, t, 64, &[]));
        }
    }
    assert!(frames.len() <= BURST);
    let json = config_json("");
    let mut single = pipeline(&json);
    let expected: Vec<_> = frames.iter().map(|f| run(&mut single, f, 5)).collect();
    let mut burst = pipeline(&json);
    let mut pool = FramePool::new(64);
    let mut descs: Vec<_> = frames.iter().map(|f| pool.load(f).unwrap()).collect();
    let mut verdicts = vec![Verdict::Drop(DropReason::NoConn); descs.len()];
    burst.process_burst(&mut pool, &mut descs, 0, 5, &mut verdicts);
    for (i, (d, v)) in descs.iter().zip(verdicts).enumerate() {
        assert_eq!(v, expected[i].0, "frame {i}: verdict");
        assert!(matches!(v, Verdict::Tx(_)), "frame {i}: forwarded");
        assert_eq!(FrameStore::bytes(&pool, d), &expected[i].1[..], "frame {i}: bytes");
    }
    assert_eq!(burst.shard.len(), 10, "one connection a flow");
    assert_eq!(burst.shard.len(), single.shard.len());
    assert_eq!(burst.stats, single.stats);
}

/// A NAT real server in two services: its reply is matched to the right one. And a port-0
/// (all ports, persistent) NAT service: the reply's source port is the client's original port.
#[test]
fn nat_replies_of_shared_servers_and_port0_services() {
    let extra = r#", {"proto": "tcp", "vip": "198.18.0.100", "port": 8443, "scheduler": "rr",
        "real_servers": [{"addr": "198.19.0.11", "port": 8080, "mode": "nat"}]},
      {"proto": "tcp", "vip": "198.18.0.101", "port": 0, "persistence_timeout": 60, "scheduler": "rr",
        "real_servers": [{"addr": "198.19.0.12", "port": 0, "mode": "nat"}]}"#;
    let mut p = pipeline(&config_json(extra));
    let vip2 = [198, 18, 0, 101];
    let cases = [
        (
            tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 8443, SYN, 64, &[]),
            Verdict::Tx(1),
            tcp_frame(DIR_R_MAC, RS1_MAC, CLIENT, RS1, 40000, 8080, SYN, 63, &[]),
        ),
        (
            tcp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 8080, 40000, SYNACK, 64, &[]),
            Verdict::Tx(0),
            tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 8443, 40000, SYNACK, 63, &[]),
        ),
        (
            tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, vip2, 40001, 5432, SYN, 64, &[]),
            Verdict::Tx(1),
            tcp_frame(DIR_R_MAC, RS2_MAC, CLIENT, RS2, 40001, 5432, SYN, 63, &[]),
        ),
        (
            tcp_frame(RS2_MAC, DIR_R_MAC, RS2, CLIENT, 5432, 40001, SYNACK, 64, &[]),
            Verdict::Tx(0),
            tcp_frame(DIR_C_MAC, CLIENT_MAC, vip2, CLIENT, 5432, 40001, SYNACK, 63, &[]),
        ),
    ];
    for (i, (input, verdict, output)) in cases.into_iter().enumerate() {
        let (v, out) = run(&mut p, &input, i as u64);
        assert_eq!(v, verdict, "case {i}");
        assert_eq!(out, output, "case {i}");
    }
}

#[test]
fn an_unresolved_real_server_gets_nothing_and_neither_does_the_gateway() {
    // 198.19.0.99 has no neighbour entry; a default gateway is configured on the server side.
    let json = config_json(
        r#", {"proto": "tcp", "vip": "198.18.0.100", "port": 90, "scheduler": "rr",
              "real_servers": [{"addr": "198.19.0.99", "port": 80, "mode": "nat"}]}"#,
    )
    .replacen(
        "\"neighbours\"",
        r#""gateway": {"mac": "02:00:00:00:01:fe", "interface": "xvs-r"}, "neighbours""#,
        1,
    );
    let mut p = pipeline(&json);
    let syn = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 90, SYN, 64, &[]);
    assert_eq!(run(&mut p, &syn, 0).0, Verdict::Drop(DropReason::NoNeighbour));
    assert_eq!(p.stats.dropped(DropReason::NoNeighbour), 1);
    // Resolved servers still go to their own MAC, clients without an entry to the gateway.
    let (v, out) = run(&mut p, &tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40001, 80, SYN, 64, &[]), 0);
    assert_eq!((v, &out[0..6]), (Verdict::Tx(1), &RS1_MAC[..]));
}

#[test]
fn every_fragment_of_a_datagram_follows_the_first_to_the_same_server() {
    let big: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut p = pipeline(&config_json(""));
    // NAT, UDP 3000 bytes to VIP:53 in three fragments: the first is decided as the flow (to
    // RS1:5353, UDP checksum of the whole datagram updated), the others follow at the IP layer.
    let sent = fragments(&udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 5000, 53, 64, &big), 0x4242, 1480);
    let want = fragments(&udp_frame(DIR_R_MAC, RS1_MAC, CLIENT, RS1, 5000, 5353, 63, &big), 0x4242, 1480);
    assert_eq!(sent.len(), 3);
    for (i, (s, w)) in sent.iter().zip(&want).enumerate() {
        let (v, out) = run(&mut p, s, 10);
        assert_eq!(v, Verdict::Tx(1), "fragment {i}");
        assert_eq!(&out, w, "fragment {i}");
    }
    assert_eq!((p.stats.frag_tracked, p.stats.frag_followed), (1, 2));
    // The reply, fragmented by the real server: back from the VIP, every fragment.
    let sent = fragments(&udp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 5353, 5000, 64, &big), 0x0707, 1480);
    let want = fragments(&udp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 53, 5000, 63, &big), 0x0707, 1480);
    for (i, (s, w)) in sent.iter().zip(&want).enumerate() {
        let (v, out) = run_on(&mut p, s, 1, 11);
        assert_eq!((v, &out), (Verdict::Tx(0), w), "reply fragment {i}");
    }
    // Out of order: a later fragment before its first is dropped and counted (xvs does not
    // reassemble); once the first has been seen the others follow, last before middle too.
    let sent = fragments(&udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 5001, 53, 64, &big), 0x5151, 1480);
    assert_eq!(run(&mut p, &sent[1], 20).0, Verdict::Drop(DropReason::Fragment));
    assert_eq!(p.stats.frag_unknown, 1);
    for i in [0, 2, 1] {
        assert_eq!(run(&mut p, &sent[i], 21).0, Verdict::Tx(1), "fragment {i}");
    }
    // Too late: the first fragment's decision lasts 2 s.
    assert_eq!(run(&mut p, &sent[1], 21 + 2000).0, Verdict::Drop(DropReason::Fragment));
    assert_eq!(p.stats.frag_expired, 1);
}

#[test]
fn fragments_follow_in_dr_fullnat_and_tun() {
    let big = vec![3u8; 2000];
    let mut p = pipeline(&config_json(""));
    for port in [81u16, 82, 83] {
        let syn = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 41000, port, SYN, 64, &[]);
        assert_eq!(run(&mut p, &syn, 0).0, Verdict::Tx(1), "SYN to {port}");
    }
    let data = |port| tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 41000, port, ACK, 64, &big);
    // FULLNAT: every fragment from DIP to RS1; the first carries DIP:20000 -> RS1:8081.
    let sent = fragments(&data(81), 9, 1480);
    let want = fragments(&tcp_frame(DIR_R_MAC, RS1_MAC, DIP, RS1, 20000, 8081, ACK, 63, &big), 9, 1480);
    for (i, (s, w)) in sent.iter().zip(&want).enumerate() {
        assert_eq!(run(&mut p, s, 1), (Verdict::Tx(1), w.clone()), "FULLNAT fragment {i}");
    }
    // DR: MACs and TTL only, every fragment.
    let sent = fragments(&data(82), 10, 1480);
    for (i, s) in sent.iter().enumerate() {
        let (v, out) = run(&mut p, s, 2);
        let mut w = ttl_minus_one(s);
        w[0..6].copy_from_slice(&RS1_MAC);
        w[6..12].copy_from_slice(&DIR_R_MAC);
        assert_eq!((v, out), (Verdict::Tx(1), w), "DR fragment {i}");
    }
    // TUN: each fragment in its own IP-in-IP packet.
    let sent = fragments(&data(83), 11, 1400);
    for (i, s) in sent.iter().enumerate() {
        let (v, out) = run(&mut p, s, 3);
        assert_eq!(v, Verdict::Tx(1), "TUN fragment {i}");
        assert_checksums(&out);
        assert_eq!(&out[14 + 9..14 + 10], &[4], "IP-in-IP");
        assert_eq!(&out[14 + 20..], &ttl_minus_one(s)[14..], "the fragment inside, TTL-1");
    }
}

/// A router on the client's side (198.18.0.254 on the client's link).
const ROUTER: [u8; 4] = [198, 18, 0, 254];
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

#[test]
fn icmp_errors_reach_the_connections_server_or_client_translated() {
    let pl = [9u8; 1400];
    // Each mode's connection, then a router's "fragmentation needed" about the packet the
    // client was sent (quoting 8 bytes of TCP, or the whole header), relayed to the server as
    // the mode rewrote the connection: outer and quoted headers, every checksum.
    let mut p = pipeline(&config_json(""));
    for port in [80u16, 81, 82, 83] {
        assert_eq!(
            run(&mut p, &tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 42000, port, SYN, 64, &[]), 0).0,
            Verdict::Tx(1)
        );
    }
    // What the client was sent on each connection (as the real server's reply left the director or
    // the server itself), and what the server sent as it saw it.
    let cases = [
        (
            80,
            tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 80, 42000, ACK, 63, &pl),
            tcp_frame(DIR_R_MAC, CLIENT_MAC, RS1, CLIENT, 8080, 42000, ACK, 63, &pl),
            RS1,
        ),
        (
            81,
            tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 81, 42000, ACK, 63, &pl),
            tcp_frame(DIR_R_MAC, CLIENT_MAC, RS1, DIP, 8081, 20000, ACK, 63, &pl),
            RS1,
        ),
        (
            82,
            tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 82, 42000, ACK, 63, &pl),
            tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 82, 42000, ACK, 63, &pl),
            VIP,
        ),
        (
            83,
            tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 83, 42000, ACK, 63, &pl),
            tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 83, 42000, ACK, 63, &pl),
            VIP,
        ),
    ];
    for (port, sent, seen, outer_dst) in cases {
        for quote_len in [28usize, 48] {
            let input = frag_needed(ROUTER_MAC, DIR_C_MAC, ROUTER, VIP, 1280, &sent[14..14 + quote_len]);
            let (v, out) = run(&mut p, &input, 5);
            assert_eq!(v, Verdict::Tx(1), "port {port}, quote {quote_len}");
            assert_checksums(&out);
            match port {
                80 | 82 => {
                    // The router's address stays the source; NAT sends to the server, DR to the VIP it holds.
                    let want = frag_needed(DIR_R_MAC, RS1_MAC, ROUTER, outer_dst, 1280, &seen[14..14 + quote_len]);
                    assert_eq!(out, ttl_minus_one(&want), "port {port}, quote {quote_len}");
                }
                81 => {
                    let want = frag_needed(DIR_R_MAC, RS1_MAC, DIP, RS1, 1280, &seen[14..14 + quote_len]);
                    assert_eq!(out, ttl_minus_one(&want), "FULLNAT, quote {quote_len}");
                }
                _ => {
                    // TUN: in IP-in-IP to the server, as it is: the error is about the server's
                    // direct path to the client, which is not tunnelled (IPVS relays it so).
                    assert_eq!(&out[14 + 9], &4, "IP-in-IP");
                    let inner = &out[14 + 20..];
                    let want = frag_needed(DIR_R_MAC, RS1_MAC, ROUTER, VIP, 1280, &seen[14..14 + quote_len]);
                    assert_eq!(inner, &ttl_minus_one(&want)[14..], "TUN, quote {quote_len}");
                }
            }
        }
    }
    assert_eq!(p.stats.icmp_relayed, 8);
    // The other way: a router on the servers' side about a packet the server was sent by the
    // director reaches the client from the VIP, quoting what the client sent.
    let to_server = tcp_frame(DIR_R_MAC, RS1_MAC, CLIENT, RS1, 42000, 8080, ACK, 63, &pl);
    let input = frag_needed(RS1_MAC, DIR_R_MAC, [198, 19, 0, 254], CLIENT, 1280, &to_server[14..14 + 48]);
    let (v, out) = run_on(&mut p, &input, 1, 6);
    assert_eq!(v, Verdict::Tx(0), "to the client");
    let client_sent = tcp_frame(DIR_R_MAC, RS1_MAC, CLIENT, VIP, 42000, 80, ACK, 63, &pl);
    let want = frag_needed(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 1280, &client_sent[14..14 + 48]);
    assert_eq!(out, ttl_minus_one(&want));
    // FULLNAT's: to the DIP about DIP:20000 -> RS1:8081.
    let to_server = tcp_frame(DIR_R_MAC, RS1_MAC, DIP, RS1, 20000, 8081, ACK, 63, &pl);
    let input = frag_needed(RS1_MAC, DIR_R_MAC, [198, 19, 0, 254], DIP, 1280, &to_server[14..14 + 28]);
    let (v, out) = run_on(&mut p, &input, 1, 7);
    assert_eq!(v, Verdict::Tx(0));
    let client_sent = tcp_frame(DIR_R_MAC, RS1_MAC, CLIENT, VIP, 42000, 81, ACK, 63, &pl);
    let want = frag_needed(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 1280, &client_sent[14..14 + 28]);
    assert_eq!(out, ttl_minus_one(&want));
    // Errors about no connection, and pings, stay the kernel's.
    let stray = tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 80, 9, ACK, 63, &pl);
    let input = frag_needed(ROUTER_MAC, DIR_C_MAC, ROUTER, VIP, 1280, &stray[14..14 + 28]);
    assert_eq!(run(&mut p, &input, 8).0, Verdict::Pass(xvs::dataplane::PassReason::Icmp));
}

/// `frame` with an 802.1Q tag of `tci` after its MACs.
fn tagged(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

#[test]
fn vlan_tagged_frames_are_served_and_leave_tagged_for_their_next_hops_vlan() {
    // Clients on VLAN 100, RS1 on VLAN 200 (VLAN devices on the interfaces), RS2 on VLAN 100.
    let json = config_json("")
        .replace(r#""interface": "xvs-c"}"#, r#""interface": "xvs-c", "vlan": 100}"#)
        .replace(
            r#""02:00:00:00:01:11", "interface": "xvs-r"}"#,
            r#""02:00:00:00:01:11", "interface": "xvs-r", "vlan": 200}"#,
        )
        .replace(
            r#""02:00:00:00:01:12", "interface": "xvs-r"}"#,
            r#""02:00:00:00:01:12", "interface": "xvs-r", "vlan": 100}"#,
        );
    // Priority 5 on VLAN 100.
    let (c100, r200) = (0xa000 | 100, 200);
    let syn = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, SYN, 64, &[]);
    let arp = {
        let mut a = vec![0xff; 6];
        a.extend_from_slice(&CLIENT_MAC);
        a.extend_from_slice(&[0x08, 0x06]);
        a.extend_from_slice(&[0u8; 28]);
        a
    };
    let pl = b"tagged";
    run_cases_with(
        &json,
        vec![
            Case {
                desc: "NAT SYN on VLAN 100 leaves for RS1 on VLAN 200",
                input: tagged(&syn, c100),
                verdict: Verdict::Tx(1),
                output: Some(tagged(&tcp_frame(DIR_R_MAC, RS1_MAC, CLIENT, RS1, 40000, 8080, SYN, 63, &[]), r200)),
            },
            Case {
                desc: "its reply on VLAN 200 goes back to the client on VLAN 100",
                input: tagged(&tcp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 8080, 40000, SYNACK, 64, pl), r200),
                verdict: Verdict::Tx(0),
                output: Some(tagged(&tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 80, 40000, SYNACK, 63, pl), 100)),
            },
            Case {
                desc: "the second connection goes to RS2, on the client's VLAN: its priority is kept",
                input: tagged(&tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40001, 80, SYN, 64, &[]), c100),
                verdict: Verdict::Tx(1),
                output: Some(tagged(&tcp_frame(DIR_R_MAC, RS2_MAC, CLIENT, RS2, 40001, 8080, SYN, 63, &[]), c100)),
            },
            Case {
                desc: "an untagged frame of the connection still leaves tagged for RS1's VLAN",
                input: tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, ACK, 64, pl),
                verdict: Verdict::Tx(1),
                output: Some(tagged(&tcp_frame(DIR_R_MAC, RS1_MAC, CLIENT, RS1, 40000, 8080, ACK, 63, pl), r200)),
            },
            Case {
                desc: "FULLNAT on VLAN 100 to RS1 on VLAN 200",
                input: tagged(&tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 81, SYN, 64, &[]), c100),
                verdict: Verdict::Tx(1),
                output: Some(tagged(&tcp_frame(DIR_R_MAC, RS1_MAC, DIP, RS1, 20000, 8081, SYN, 63, &[]), r200)),
            },
            Case {
                desc: "DR on VLAN 100 to RS1 on VLAN 200",
                input: tagged(&tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 82, SYN, 64, b"x"), c100),
                verdict: Verdict::Tx(1),
                output: Some(tagged(&tcp_frame(DIR_R_MAC, RS1_MAC, CLIENT, VIP, 40000, 82, SYN, 63, b"x"), r200)),
            },
            Case {
                desc: "TUN on VLAN 100: the IP-in-IP frame is tagged 200",
                input: tagged(&tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, SYN, 64, &[]), c100),
                verdict: Verdict::Tx(1),
                output: Some(tagged(
                    &tun_expected(&tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 83, SYN, 64, &[]), 1),
                    r200,
                )),
            },
            Case {
                desc: "TTL 1 on VLAN 100: time exceeded goes back on VLAN 100 with the priority it came with",
                input: tagged(&tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40002, 82, SYN, 1, &[]), c100),
                verdict: Verdict::Tx(0),
                output: Some(tagged(
                    &icmp_error_expected(
                        &tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40002, 82, SYN, 1, &[]),
                        VIP,
                        11,
                        0,
                        0,
                        2,
                    ),
                    c100,
                )),
            },
            Case {
                desc: "tagged ARP is the kernel's, tag and all",
                input: tagged(&arp, c100),
                verdict: Verdict::Pass(xvs::dataplane::PassReason::NotIp),
                output: Some(tagged(&arp, c100)),
            },
            Case {
                desc: "tagged traffic to the host is the kernel's, unchanged",
                input: tagged(
                    &tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, [198, 18, 0, 1], 40000, 22, SYN, 64, &[]),
                    c100,
                ),
                verdict: Verdict::Pass(xvs::dataplane::PassReason::NotService),
                output: Some(tagged(
                    &tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, [198, 18, 0, 1], 40000, 22, SYN, 64, &[]),
                    c100,
                )),
            },
            Case {
                desc: "a tag with nothing behind it is dropped as a truncated frame",
                input: tagged(&syn[..14], c100)[..18].to_vec(),
                verdict: Verdict::Drop(DropReason::IpTruncated),
                output: None,
            },
        ],
    );
}

#[test]
fn clients_on_a_connected_subnet_get_replies_at_their_own_mac_never_the_gateways() {
    // No neighbour entry for clients: 198.18.0.0/24 is on xvs-c, the gateway elsewhere on it.
    let json = config_json("")
        .replace(r#"{"ip": "198.18.0.2", "mac": "02:00:00:00:00:02", "interface": "xvs-c"},"#, "")
        .replacen(
            "\"neighbours\"",
            r#""gateway": {"mac": "02:00:00:00:00:fe", "interface": "xvs-c"},
               "connected": [{"subnet": "198.18.0.0/24", "interface": "xvs-c"}], "neighbours""#,
            1,
        );
    let gw = [0x02, 0, 0, 0, 0, 0xfe];
    let far = [198, 18, 7, 2];
    let other = [0x02, 0, 0, 0, 0, 0x33];
    let pl = b"x";
    run_cases_with(
        &json,
        vec![
            Case {
                desc: "an on-link client's SYN (its MAC is learned)",
                input: tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, SYN, 64, &[]),
                verdict: Verdict::Tx(1),
                output: None,
            },
            Case {
                desc: "NAT reply: to the client's own MAC, not the gateway's",
                input: tcp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 8080, 40000, SYNACK, 64, pl),
                verdict: Verdict::Tx(0),
                output: Some(tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 80, 40000, SYNACK, 63, pl)),
            },
            Case {
                desc: "FULLNAT: the same",
                input: tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40001, 81, SYN, 64, &[]),
                verdict: Verdict::Tx(1),
                output: Some(tcp_frame(DIR_R_MAC, RS1_MAC, DIP, RS1, 20000, 8081, SYN, 63, &[])),
            },
            Case {
                desc: "FULLNAT reply to the client's own MAC",
                input: tcp_frame(RS1_MAC, DIR_R_MAC, RS1, DIP, 8081, 20000, SYNACK, 64, pl),
                verdict: Verdict::Tx(0),
                output: Some(tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 81, 40001, SYNACK, 63, pl)),
            },
            Case {
                desc: "a client off the link",
                input: tcp_frame(gw, DIR_C_MAC, far, VIP, 40000, 80, SYN, 64, &[]),
                verdict: Verdict::Tx(1),
                output: None,
            },
            Case {
                desc: "gets its replies through the gateway",
                input: tcp_frame(RS2_MAC, DIR_R_MAC, RS2, far, 8080, 40000, SYNACK, 64, pl),
                verdict: Verdict::Tx(0),
                output: Some(tcp_frame(DIR_C_MAC, gw, VIP, far, 80, 40000, SYNACK, 63, pl)),
            },
            Case {
                desc: "an on-link address whose frames came in on the other interface (routed)",
                input: tcp_frame(other, DIR_R_MAC, [198, 18, 0, 9], VIP, 40000, 80, SYN, 64, &[]),
                verdict: Verdict::Tx(1),
                output: None,
            },
            Case {
                desc: "is never heard on its link: its reply goes nowhere, not to the gateway",
                input: tcp_frame(RS1_MAC, DIR_R_MAC, RS1, [198, 18, 0, 9], 8080, 40000, SYNACK, 64, pl),
                verdict: Verdict::Drop(DropReason::NoNeighbour),
                output: None,
            },
            Case {
                desc: "the client's new MAC (a replaced NIC) is followed at once",
                input: tcp_frame(other, DIR_C_MAC, CLIENT, VIP, 40000, 80, ACK, 64, pl),
                verdict: Verdict::Tx(1),
                output: None,
            },
            Case {
                desc: "the next reply goes to the new MAC",
                input: tcp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 8080, 40000, ACK, 64, pl),
                verdict: Verdict::Tx(0),
                output: Some(tcp_frame(DIR_C_MAC, other, VIP, CLIENT, 80, 40000, ACK, 63, pl)),
            },
        ],
    );
}
