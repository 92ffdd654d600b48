//! Connection table behaviour through the pipeline: TCP states and active/inactive counts,
//! timeouts on a fake clock, persistence templates, bounded size.

mod common;
use common::*;
use std::sync::Arc;
use xvs::config::Config;
use xvs::conn::{ConnShard, ShardConfig, TcpState};
use xvs::dataplane::{DropReason, Pipeline, Verdict};

const S: u64 = 1000;

fn syn(sport: u16, port: u16) -> Vec<u8> {
    tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, port, SYN, 64, &[])
}
fn client(sport: u16, port: u16, t: Tcp) -> Vec<u8> {
    tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, port, t, 64, &[])
}
fn server(rs: [u8; 4], rport: u16, sport: u16, t: Tcp) -> Vec<u8> {
    tcp_frame(RS1_MAC, DIR_R_MAC, rs, CLIENT, rport, sport, t, 64, &[])
}
fn state_of(p: &Pipeline, cport: u16) -> Option<TcpState> {
    p.shard.iter().find(|(_, c)| c.cport == cport && !c.is_template()).and_then(|(_, c)| c.tcp_state())
}

#[test]
fn conn_entry_is_one_aligned_half_line() {
    assert_eq!(std::mem::size_of::<xvs::conn::Conn>(), 32);
    assert_eq!(std::mem::align_of::<xvs::conn::Conn>(), 32);
}

#[test]
fn table_memory_per_connection_is_under_64_bytes() {
    // At every size: 52.5 bytes a connection (32 of record, 12 of links, 8 of flow index),
    // the wheel and the FULLNAT port pools scaling with it (half a byte each). FULLNAT's
    // reply index adds 8. The smallest sizes round the index up to whole lines (21: 63.9
    // with FULLNAT); `tests/mem.rs` goes through every size to 1,100.
    for cap in [
        16u32, 21, 31, 100, 1_024, 16_384, 65_536, 100_000, 131_072, 200_000, 917_504, 1_000_000, 1_048_576, 1_100_000,
        2_000_000, 4_000_000,
    ] {
        for fullnat in [false, true] {
            let s = ConnShard::new(&ShardConfig { capacity: cap, fullnat, ..ShardConfig::default() });
            let per_conn = s.memory_bytes() as f64 / s.capacity() as f64;
            let budget = if fullnat { 64.0 } else { 55.0 };
            assert!(per_conn <= budget, "{cap} (FULLNAT {fullnat}): {per_conn:.1} bytes per connection");
            assert!(per_conn >= 52.0, "{cap}: {per_conn:.1}: the estimate counts slab, links, indexes and wheel");
        }
    }
}

#[test]
fn nat_states_and_active_inactive_counts() {
    let mut p = pipeline(&config_json(""));
    assert_eq!(run(&mut p, &syn(40000, 80), 0).0, Verdict::Tx(1));
    assert_eq!(state_of(&p, 40000), Some(TcpState::SynRecv));
    assert_eq!((p.shard.loads(0)[0].active, p.shard.loads(0)[0].inactive), (0, 1), "new connections are inactive");
    run(&mut p, &server(RS1, 8080, 40000, SYNACK), 1);
    assert_eq!(state_of(&p, 40000), Some(TcpState::SynRecv));
    run(&mut p, &client(40000, 80, ACK), 2);
    assert_eq!(state_of(&p, 40000), Some(TcpState::Established));
    assert_eq!((p.shard.loads(0)[0].active, p.shard.loads(0)[0].inactive), (1, 0), "ESTABLISHED is active");
    run(&mut p, &client(40000, 80, FINACK), 3);
    assert_eq!(state_of(&p, 40000), Some(TcpState::CloseWait));
    assert_eq!((p.shard.loads(0)[0].active, p.shard.loads(0)[0].inactive), (0, 1));
    run(&mut p, &server(RS1, 8080, 40000, FINACK), 4);
    assert_eq!(state_of(&p, 40000), Some(TcpState::TimeWait));
    // TIME_WAIT lasts 120 s.
    p.housekeeping(4 + 119 * S, usize::MAX);
    assert_eq!(state_of(&p, 40000), Some(TcpState::TimeWait));
    p.housekeeping(4 + 121 * S, usize::MAX);
    assert_eq!(state_of(&p, 40000), None);
    assert_eq!((p.shard.loads(0)[0].active, p.shard.loads(0)[0].inactive), (0, 0), "counts drop on expiry");
}

#[test]
fn dr_tracks_client_packets_only() {
    let mut p = pipeline(&config_json(""));
    run(&mut p, &syn(40000, 82), 0);
    run(&mut p, &client(40000, 82, ACK), 1);
    assert_eq!(state_of(&p, 40000), Some(TcpState::Established));
    run(&mut p, &client(40000, 82, FINACK), 2);
    assert_eq!(state_of(&p, 40000), Some(TcpState::FinWait), "INPUT-ONLY table");
    run(&mut p, &client(40000, 82, RST), 3);
    assert_eq!(state_of(&p, 40000), Some(TcpState::Close));
}

#[test]
fn default_timeouts_on_a_fake_clock() {
    let mut p = pipeline(&config_json(""));
    run(&mut p, &syn(40000, 80), 0);
    // SYN_RECV: 60 s.
    p.housekeeping(59 * S, usize::MAX);
    assert!(state_of(&p, 40000).is_some());
    p.housekeeping(61 * S, usize::MAX);
    assert!(state_of(&p, 40000).is_none(), "SYN_RECV expires after 60 s");

    // ESTABLISHED: 900 s (more than one turn of the timer wheel), refreshed by traffic.
    let t0 = 100 * S;
    run(&mut p, &syn(40001, 80), t0);
    run(&mut p, &client(40001, 80, ACK), t0);
    p.housekeeping(t0 + 899 * S, usize::MAX);
    assert_eq!(state_of(&p, 40001), Some(TcpState::Established));
    run(&mut p, &client(40001, 80, ACK), t0 + 899 * S);
    p.housekeeping(t0 + 1500 * S, usize::MAX);
    assert_eq!(state_of(&p, 40001), Some(TcpState::Established), "refreshed at 899 s");
    p.housekeeping(t0 + 1800 * S, usize::MAX);
    assert!(state_of(&p, 40001).is_none(), "gone 900 s after its last packet");

    // A state change shortens the timeout: ESTABLISHED (900 s) -> CLOSE (10 s) on RST.
    let t1 = 5000 * S;
    run(&mut p, &syn(40002, 80), t1);
    run(&mut p, &client(40002, 80, ACK), t1);
    run(&mut p, &client(40002, 80, RST), t1 + S);
    p.housekeeping(t1 + 10 * S, usize::MAX);
    assert_eq!(state_of(&p, 40002), Some(TcpState::Close));
    p.housekeeping(t1 + 12 * S, usize::MAX);
    assert!(state_of(&p, 40002).is_none(), "CLOSE expires after 10 s, not 900");
}

#[test]
fn udp_timeout_and_configured_timeouts() {
    let json = config_json("").replace(
        r#""conn": {"max_per_worker": 1024}"#,
        r#""conn": {"max_per_worker": 1024, "timeouts": {"udp": 5, "tcp_established": 30}}"#,
    );
    let mut p = pipeline(&json);
    run(&mut p, &udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 5000, 53, 64, b"q"), 0);
    assert_eq!(p.shard.len(), 1);
    p.housekeeping(4 * S, usize::MAX);
    assert_eq!(p.shard.len(), 1);
    p.housekeeping(6 * S, usize::MAX);
    assert_eq!(p.shard.len(), 0, "configured UDP timeout 5 s");
    run(&mut p, &syn(40000, 80), 10 * S);
    run(&mut p, &client(40000, 80, ACK), 10 * S);
    p.housekeeping(39 * S, usize::MAX);
    assert_eq!(p.shard.len(), 1);
    p.housekeeping(41 * S, usize::MAX);
    assert_eq!(p.shard.len(), 0, "configured ESTABLISHED timeout 30 s");
}

#[test]
fn persistence_templates() {
    let svc = r#", {"proto": "tcp", "vip": "198.18.0.100", "port": 443, "scheduler": "rr",
        "persistence_timeout": 30, "persistence_netmask": "255.255.255.0",
        "real_servers": [{"addr": "198.19.0.11", "mode": "dr"}, {"addr": "198.19.0.12", "mode": "dr"}]}"#;
    let mut p = pipeline(&config_json(svc));
    let first = |p: &mut Pipeline, src: [u8; 4], sport: u16, t: u64| {
        let (v, out) = run(p, &tcp_frame(CLIENT_MAC, DIR_C_MAC, src, VIP, sport, 443, SYN, 64, &[]), t);
        assert_eq!(v, Verdict::Tx(1));
        out[0..6].to_vec()
    };
    let a = first(&mut p, CLIENT, 40000, 0);
    assert_eq!(a, RS1_MAC);
    // Same client, other ports, and another client in the same /24: all follow the template.
    assert_eq!(first(&mut p, CLIENT, 40001, 1), a);
    assert_eq!(first(&mut p, [198, 18, 0, 77], 40002, 2), a);
    // Another /24 is scheduled by rr (next server).
    assert_eq!(first(&mut p, [198, 18, 1, 5], 40003, 3), RS2_MAC.to_vec());
    // Two templates (one per /24), counted on their servers (ipvsadm's PersistConn); the
    // listing shows them with the connections, and can be bounded.
    let svc = p.tables().services.len() as u16 - 1;
    let persist: Vec<u32> = p.shard.loads(svc).iter().map(|l| l.persist).collect();
    assert_eq!(persist, [1, 1]);
    let entries = p.shard.entries(4, usize::MAX);
    assert_eq!(entries.len(), 6);
    let t = entries.iter().find(|e| e.template && e.client.0 == std::net::Ipv4Addr::new(198, 18, 0, 0)).unwrap();
    assert_eq!((t.client.1, t.virt.1, t.expires_s), (0, 443, 30));
    assert_eq!(p.shard.entries(4, 2).len(), 2);
    // The connections (SYN_RECV, 60 s) keep the template alive past its own 30 s.
    p.housekeeping(45 * S, usize::MAX);
    assert_eq!(first(&mut p, CLIENT, 40004, 45 * S), a);
    // Once every connection and the template are gone, rr decides again. (The worker runs
    // housekeeping every 10 ms; a template still followed when its timer fires is re-armed.)
    for t in 46..=1000 {
        p.housekeeping(t * S, usize::MAX);
    }
    assert_eq!(p.shard.len(), 0);
    assert!(p.shard.loads(svc).iter().all(|l| l.persist == 0), "expired templates are uncounted");
    let b = first(&mut p, CLIENT, 40005, 1000 * S);
    assert_eq!(b, RS1_MAC, "rr continues: servers alternate, this pick is RS1 again");
    assert_eq!(first(&mut p, CLIENT, 40006, 1000 * S + 1), b, "and a new template pins it");
}

#[test]
fn a_full_table_evicts_unanswered_udp_flows_and_keeps_answered_ones() {
    // UDP 53 is NAT (answered = a reply came back); UDP 54 is DR (answered = a second
    // datagram came, the source is real).
    let dr = r#", {"proto": "udp", "vip": "198.18.0.100", "port": 54, "scheduler": "rr",
        "real_servers": [{"addr": "198.19.0.11", "mode": "dr"}]}"#;
    // 128 connections: the ring of embryonic ones remembers the last 16 (one for every 8).
    let json = config_json(dr).replace(r#""max_per_worker": 1024"#, r#""max_per_worker": 128"#);
    let mut p = pipeline(&json);
    let dgram = |sport: u16, port: u16| udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, port, 64, b"q");
    // 112 answered flows first.
    for i in 0..112 {
        assert_eq!(run(&mut p, &dgram(20000 + i, 53), 0).0, Verdict::Tx(1));
        let reply = udp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 5353, 20000 + i, 64, b"a");
        assert_eq!(run(&mut p, &reply, 0).0, Verdict::Tx(0));
    }
    for i in 0..8 {
        assert_eq!(run(&mut p, &dgram(30000 + i, 53), 0).0, Verdict::Tx(1));
        assert_eq!(run(&mut p, &dgram(31000 + i, 54), 0).0, Verdict::Tx(1));
    }
    // Half of each answered.
    for i in 0..4 {
        let reply = udp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 5353, 30000 + i, 64, b"a");
        assert_eq!(run(&mut p, &reply, 1).0, Verdict::Tx(0));
        assert_eq!(run(&mut p, &dgram(31000 + i, 54), 1).0, Verdict::Tx(1));
    }
    // A spoofed flood: every new source takes an unanswered flow's slot, oldest first.
    for i in 0..100 {
        assert_eq!(run(&mut p, &dgram(40000 + i, 53), 2).0, Verdict::Tx(1), "datagram {i}");
    }
    assert_eq!(p.shard.len(), 128);
    assert_eq!(p.shard.stats.evicted_embryonic, 100);
    assert_eq!(p.stats.dropped(DropReason::TableFull), 0);
    // The answered flows are still there, on their server.
    let live = |p: &Pipeline, port: u16| p.shard.iter().any(|(_, c)| c.cport == port);
    for i in 0..4 {
        assert!(live(&p, 30000 + i) && live(&p, 31000 + i), "answered flow {i} kept");
        assert!(!live(&p, 30004 + i) && !live(&p, 31004 + i), "unanswered flow {i} evicted");
    }
    assert!((0..112).all(|i| live(&p, 20000 + i)), "the first answered flows kept");
}

#[test]
fn a_full_table_evicts_half_open_connections_first_then_refuses() {
    // 128 connections: the ring of embryonic ones remembers the last 16 (one for every 8).
    let json = config_json("").replace(r#""max_per_worker": 1024"#, r#""max_per_worker": 128"#);
    let mut p = pipeline(&json);
    // 112 established first.
    for i in 0..112 {
        assert_eq!(run(&mut p, &syn(30000 + i, 82), 0).0, Verdict::Tx(1));
        assert_eq!(run(&mut p, &client(30000 + i, 82, ACK), 0).0, Verdict::Tx(1));
    }
    for i in 0..16 {
        assert_eq!(run(&mut p, &syn(40000 + i, 82), 0).0, Verdict::Tx(1));
    }
    // All but the first four complete their handshake.
    for i in 4..16 {
        assert_eq!(run(&mut p, &client(40000 + i, 82, ACK), 1).0, Verdict::Tx(1));
    }
    // Full: each new SYN takes the slot of the oldest half-open connection.
    for i in 0..4 {
        assert_eq!(run(&mut p, &syn(41000 + i, 82), 2).0, Verdict::Tx(1), "SYN {i} evicts a half-open one");
    }
    assert_eq!(p.shard.stats.evicted_embryonic, 4);
    assert_eq!(p.shard.len(), 128);
    for i in 0..4 {
        assert_eq!(run(&mut p, &client(41000 + i, 82, ACK), 3).0, Verdict::Tx(1));
    }
    // Every connection established: nothing may be evicted, the next SYN is refused.
    assert_eq!(run(&mut p, &syn(42000, 82), 4).0, Verdict::Drop(DropReason::TableFull));
    assert_eq!(p.stats.dropped(DropReason::TableFull), 1);
    assert_eq!(p.shard.stats.evicted_embryonic, 4);
    for i in 4..16 {
        assert_eq!(run(&mut p, &client(40000 + i, 82, ACK), 5).0, Verdict::Tx(1), "established flows keep flowing");
    }
    p.housekeeping(1000 * S, usize::MAX);
    assert_eq!(run(&mut p, &syn(42000, 82), 1000 * S).0, Verdict::Tx(1), "room again after expiry");
}

#[test]
fn fullnat_local_ports_are_bounded_and_recycled() {
    let mut p = pipeline(&config_json(""));
    for i in 0..10 {
        assert_eq!(run(&mut p, &syn(40000 + i, 81), 0).0, Verdict::Tx(1));
    }
    assert_eq!(run(&mut p, &syn(41000, 81), 0).0, Verdict::Drop(DropReason::NoLocalPort));
    p.housekeeping(100 * S, usize::MAX);
    assert_eq!(p.shard.lports_in_use(), 0);
    assert_eq!(run(&mut p, &syn(41000, 81), 100 * S).0, Verdict::Tx(1));
}

#[test]
fn overload_threshold_and_quiesce() {
    let svc = r#", {"proto": "tcp", "vip": "198.18.0.100", "port": 90, "scheduler": "wlc",
        "real_servers": [{"addr": "198.19.0.11", "mode": "dr", "u_threshold": 2}, {"addr": "198.19.0.12", "mode": "dr", "weight": 1}]}"#;
    let json = config_json(svc);
    let mut p = pipeline(&json);
    let svc_idx = 5u16;
    let dst = |p: &mut Pipeline, sport: u16| run(p, &syn(sport, 90), 0).1[0..6].to_vec();
    assert_eq!(dst(&mut p, 1), RS1_MAC);
    assert_eq!(dst(&mut p, 2), RS2_MAC);
    assert_eq!(dst(&mut p, 3), RS1_MAC);
    assert!(p.shard.loads(svc_idx)[0].overloaded, "2 connections reach u_threshold 2");
    assert_eq!(dst(&mut p, 4), RS2_MAC);
    assert_eq!(dst(&mut p, 5), RS2_MAC, "overloaded server gets nothing new");
    // Quiesce RS2 (weight 0): RS1 is overloaded too, so nothing is available.
    let mut cfg = Config::parse(&json).unwrap();
    cfg.services[5].servers[1].weight = 0;
    p.set_tables(Arc::new(xvs::control::tables_for(&cfg, None).expect("tables")));
    assert_eq!(run(&mut p, &syn(6, 90), 1).0, Verdict::Drop(DropReason::NoDest));
    // Existing connections to the quiesced server continue.
    assert_eq!(run(&mut p, &client(2, 90, ACK), 2).1[0..6].to_vec(), RS2_MAC);
}

#[test]
fn expiry_is_budgeted_and_complete() {
    let mut s = ConnShard::new(&ShardConfig { capacity: 200_000, ..ShardConfig::default() });
    s.set_service(0, &[0], &[xvs::conn::SlotSpec { weight: 1, ..Default::default() }]);
    s.start_clock(0);
    for i in 0..100_000u32 {
        let n = xvs::conn::NewConn {
            key: xvs::conn::ConnKey { saddr: i, daddr: 7, sport: 1, dport: 80, proto: 17 },
            daddr: 9,
            dport: 80,
            mode: xvs::model::FwdMode::Dr,
            laddr: 0,
            svc: 0,
            dest: 0,
            template: xvs::conn::NONE,
        };
        s.create(&n, (i % 1000) as u64).unwrap();
    }
    assert_eq!(s.loads(0)[0].inactive, 100_000);
    // UDP 300 s: nothing is due at 299 s.
    assert_eq!(s.expire(299_000, usize::MAX), 0);
    let mut freed = 0;
    let mut rounds = 0;
    while !s.is_empty() {
        freed += s.expire(302_000, 10_000);
        rounds += 1;
    }
    assert_eq!(freed, 100_000);
    assert!(rounds >= 10, "a budget of 10k per round needs at least 10 rounds");
    assert_eq!(s.loads(0)[0].inactive, 0);
}

/// A connection made by its first segment (`create_by`, what the pipeline does) is the one
/// that creating it in NONE and applying the segment makes (`create`, then `on_packet`, as
/// IPVS does): the same record (state, timeout, flags), loads and expiry, for every mode and
/// every first segment the pipeline may make a connection by; and the pipeline applying the
/// segment again changes nothing.
#[test]
fn a_connection_made_by_its_first_segment_is_the_one_that_segment_leaves() {
    use xvs::conn::{ConnKey, Dir, NewConn, SlotSpec, NONE};
    use xvs::model::FwdMode;
    use xvs::wire::tcp::{ACK, FIN, PSH, SYN};
    // `full`: 900 of 1024 entries taken (UDP, service 1), past the 7/8 at which half-open
    // connections get the shorter SYN_RECV timeout.
    let shard = |full: bool| {
        let mut s = ConnShard::new(&ShardConfig { capacity: 1024, fullnat: true, ..ShardConfig::default() });
        s.set_service(0, &[0], &[SlotSpec { weight: 1, ..Default::default() }]);
        s.set_service(1, &[0], &[SlotSpec { weight: 1, ..Default::default() }]);
        s.start_clock(0);
        for i in 0..if full { 900 } else { 0 } {
            let key = ConnKey { saddr: 0xC612_1000 + i, daddr: 0xC612_0064, sport: 53, dport: 53, proto: 17 };
            let n = NewConn {
                key,
                daddr: 0xC613_000C,
                dport: 53,
                mode: FwdMode::Dr,
                laddr: 0,
                svc: 1,
                dest: 0,
                template: NONE,
            };
            s.create(&n, 5_000).unwrap();
        }
        s
    };
    let mut cases = 0;
    let modes = [FwdMode::Nat, FwdMode::FullNat, FwdMode::Dr, FwdMode::Tun];
    for (mode, full) in modes.into_iter().flat_map(|m| [(m, false), (m, true)]) {
        for flags in [SYN, ACK, PSH | ACK, FIN | ACK, SYN | ACK, SYN | FIN, PSH, 0] {
            for proto in [6u8, 17] {
                let n = NewConn {
                    key: ConnKey { saddr: 0xC612_0002, daddr: 0xC612_0064, sport: 40000, dport: 80, proto },
                    daddr: 0xC613_000B,
                    dport: 8080,
                    mode,
                    laddr: 0xC613_0001,
                    svc: 0,
                    dest: 0,
                    template: NONE,
                };
                let tcp = (proto == 6).then_some(flags);
                let (mut applied, mut born, mut again) = (shard(full), shard(full), shard(full));
                let a = applied.create(&n, 5_000).unwrap();
                applied.on_packet(a, Dir::of_client(mode), tcp, 5_000);
                let f = if proto == 6 { flags } else { 0 };
                let b = born.create_by(&n, born.hash(&n.key), f, 5_000).unwrap();
                let c = again.create_by(&n, again.hash(&n.key), f, 5_000).unwrap();
                again.on_packet(c, Dir::of_client(mode), tcp, 5_000);
                let what = format!("{mode:?} proto {proto} flags {flags:#04x} full {full}");
                for (s, i, how) in [(&mut born, b, "made by it"), (&mut again, c, "and applied again")] {
                    assert_eq!(format!("{:?}", s.conn(i)), format!("{:?}", applied.conn(a)), "{what}: {how}");
                    assert_eq!(s.loads(0), applied.loads(0), "{what}: {how}");
                }
                // The same expiry: due at the same round, whatever the wheel filed.
                let due = (1..=2000).map(|t| t * 1000).find(|&t| applied.is_expired(a, t));
                for (s, i) in [(&born, b), (&again, c)] {
                    assert_eq!((1..=2000).map(|t| t * 1000).find(|&t| s.is_expired(i, t)), due, "{what}");
                }
                for t in [due.unwrap_or(0) - 1000, due.unwrap_or(0) + 2000] {
                    let freed: Vec<usize> =
                        [&mut applied, &mut born, &mut again].into_iter().map(|s| s.expire(t, usize::MAX)).collect();
                    assert!(freed.iter().all(|&f| f == freed[0]), "{what}: at {t} ms freed {freed:?}");
                }
                for s in [&applied, &born, &again] {
                    assert!(!s.iter().any(|(_, c)| c.svc == 0), "{what}: expired");
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 128);
}

mod model {
    //! The shard against a plain model: after every full expiry pass, the live connections,
    //! their per-server counts and the free local ports are exactly what a naive map says.
    use proptest::prelude::*;
    use std::collections::HashMap;
    use xvs::conn::{ConnKey, ConnShard, Dir, NewConn, ShardConfig, TcpState, Timeouts, NONE, TICK_MS};
    use xvs::model::FwdMode;
    use xvs::wire::tcp::{ACK, FIN, RST, SYN};

    #[derive(Clone, Debug)]
    enum Op {
        Create { flow: u8, mode: u8, dest: u8 },
        Packet { flow: u8, flags: u8, reply: bool },
        Advance { ms: u32, budget: u16 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), 0u8..4, 0u8..3).prop_map(|(flow, mode, dest)| Op::Create { flow, mode, dest }),
            (any::<u8>(), prop::sample::select(vec![SYN, ACK, FIN | ACK, RST, 0]), any::<bool>())
                .prop_map(|(flow, flags, reply)| Op::Packet { flow, flags, reply }),
            (0u32..200_000, 1u16..64).prop_map(|(ms, budget)| Op::Advance { ms, budget }),
        ]
    }

    fn key(flow: u8) -> ConnKey {
        ConnKey {
            saddr: 0xC612_0000 + flow as u32 % 64,
            daddr: 0xC612_0064,
            sport: 1000 + flow as u16,
            dport: 80,
            proto: 6,
        }
    }

    struct M {
        expires_tick: u64,
        state: TcpState,
        dest: u16,
        lport: bool,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]
        #[test]
        fn shard_matches_model(ops in prop::collection::vec(op(), 1..300)) {
            let mut t = Timeouts::default();
            // Short timeouts so the ops reach them; ESTABLISHED longer than a wheel turn.
            t.secs[TcpState::SynRecv as usize] = 3;
            t.secs[TcpState::Close as usize] = 1;
            t.secs[TcpState::Established as usize] = 700;
            let mut s = ConnShard::new(&ShardConfig { capacity: 40, timeouts: t, lport_range: (5000, 5019), ..ShardConfig::default() });
            s.set_service(0, &[0, 1, 2], &[xvs::conn::SlotSpec { weight: 1, ..Default::default() }; 3]);
            s.start_clock(0);
            let mut now: u64 = 0;
            let mut model: HashMap<u8, M> = HashMap::new();
            let modes = [FwdMode::Nat, FwdMode::FullNat, FwdMode::Dr, FwdMode::Tun];
            let tick = |ms: u64| ms / TICK_MS;
            for o in ops {
                match o {
                    Op::Create { flow, mode, dest } => {
                        let flow = flow % 64;
                        let k = key(flow);
                        let h = s.hash(&k);
                        if let Some(i) = s.lookup_in(&k, h) {
                            if s.is_expired(i, now) { s.remove(i); model.remove(&flow); } else { continue; }
                        }
                        let n = NewConn { key: k, daddr: 0xC613_0000 + dest as u32, dport: 8080, mode: modes[mode as usize], laddr: 0xC613_0001, svc: 0, dest: dest as u16, template: NONE };
                        match s.create(&n, now) {
                            Ok(i) => {
                                s.on_packet(i, if mode < 2 { Dir::Input } else { Dir::InputOnly }, Some(SYN), now);
                                model.insert(flow, M { expires_tick: tick(now) + 300, state: TcpState::SynRecv, dest: dest as u16, lport: mode == 1 });
                            }
                            Err(_) => prop_assert!(s.len() == 40 || (mode == 1 && model.values().filter(|m| m.lport && m.dest == dest as u16).count() == 20)),
                        }
                    }
                    Op::Packet { flow, flags, reply } => {
                        let flow = flow % 64;
                        let k = key(flow);
                        let Some(i) = s.lookup_in(&k, s.hash(&k)) else { continue };
                        if s.is_expired(i, now) { s.remove(i); model.remove(&flow); continue; }
                        let m = model.get_mut(&flow).expect("model knows every live connection");
                        let c = *s.conn(i);
                        let dir = match (c.mode(), reply) {
                            (FwdMode::Nat | FwdMode::FullNat, false) => Dir::Input,
                            (FwdMode::Nat | FwdMode::FullNat, true) => Dir::Output,
                            _ => Dir::InputOnly,
                        };
                        let st = s.on_packet(i, dir, Some(flags), now);
                        m.state = xvs::conn::next_state(m.state, dir, flags);
                        prop_assert_eq!(st, m.state as u8);
                        m.expires_tick = tick(now) + t.secs[m.state as usize] as u64 * 100;
                    }
                    Op::Advance { ms, budget } => {
                        now += ms as u64;
                        // A bounded pass may leave work; a full pass must agree with the model.
                        s.expire(now, budget as usize);
                        s.expire(now, usize::MAX);
                        model.retain(|_, m| m.expires_tick > tick(now));
                        prop_assert_eq!(s.len() as usize, model.len(), "live connections at {} ms", now);
                    }
                }
                // Counts always match the model's connections.
                let (mut act, mut inact) = ([0u32; 3], [0u32; 3]);
                for m in model.values() {
                    if m.state == TcpState::Established { act[m.dest as usize] += 1 } else { inact[m.dest as usize] += 1 }
                }
                for d in 0..3 {
                    prop_assert_eq!(s.loads(0)[d].active, act[d]);
                    prop_assert_eq!(s.loads(0)[d].inactive, inact[d]);
                }
                let lports_used = model.values().filter(|m| m.lport).count();
                prop_assert_eq!(s.lports_in_use(), lports_used);
            }
        }
    }
}

#[test]
fn churn_never_grows_the_indexes() {
    use xvs::conn::{ConnKey, NewConn, NONE};
    let cap = 4096u32;
    let mut timeouts = xvs::conn::Timeouts::default();
    timeouts.secs[xvs::conn::UDP_STATE as usize] = 10;
    let mut s = ConnShard::new(&ShardConfig { capacity: cap, timeouts, ..ShardConfig::default() });
    s.set_service(0, &[0], &[xvs::conn::SlotSpec { weight: 1, ..Default::default() }]);
    s.start_clock(0);
    let before = s.index_bytes();
    // NAT connections (both indexes), ~3900 live, 400k created: tombstones galore.
    for i in 0..400_000u32 {
        let now = i as u64 * 2;
        let n = NewConn {
            key: ConnKey { saddr: i, daddr: 1, sport: (i % 60000) as u16, dport: 80, proto: 17 },
            daddr: 2,
            dport: 80,
            mode: xvs::model::FwdMode::Nat,
            laddr: 0,
            svc: 0,
            dest: 0,
            template: NONE,
        };
        s.expire(now, 64);
        if s.len() < cap {
            s.create(&n, now).expect("room");
        }
    }
    assert!(s.len() > 3000, "steady state near capacity: {}", s.len());
    assert!(s.stats.created > 200_000, "created {}", s.stats.created);
    assert_eq!(s.index_bytes(), before, "the index never grows");
}

/// A spoofed SYN flood from 1,048,576 distinct sources (198.18.0.0/16 x 16 ports, 1M SYNs a
/// second of virtual time) against a 64k-entry table, while 100 established connections keep
/// sending: not one of their packets is refused, a legitimate client connects during and
/// after the flood, and every SYN finds room by evicting an older half-open connection.
#[test]
fn a_syn_flood_from_a_million_sources_never_takes_an_established_connection() {
    let json = config_json("").replace(r#""max_per_worker": 1024"#, r#""max_per_worker": 65536"#);
    let mut p = pipeline(&json);
    for i in 0..100 {
        assert_eq!(run(&mut p, &syn(30000 + i, 82), 0).0, Verdict::Tx(1));
        assert_eq!(run(&mut p, &client(30000 + i, 82, ACK), 0).0, Verdict::Tx(1));
    }
    let mut frame = tcp_frame(CLIENT_MAC, DIR_C_MAC, [198, 18, 0, 0], VIP, 1024, 82, SYN, 64, &[]);
    let (mut est_sent, mut legit) = (0u32, 0u16);
    for n in 0..(1u32 << 20) {
        let now = 1 + n as u64 / 1000;
        // Source 198.18.a.b, port 1024 + n / 65536: patched into one frame, checksums redone.
        frame[28] = (n >> 8) as u8;
        frame[29] = n as u8;
        frame[34..36].copy_from_slice(&(1024 + (n >> 16) as u16).to_be_bytes());
        fix_ip_checksum(&mut frame);
        fix_tcp_checksum(&mut frame);
        assert_eq!(run(&mut p, &frame, now).0, Verdict::Tx(1), "flood SYN {n}");
        if n % 1000 == 999 {
            let i = (n / 1000 % 100) as u16;
            assert_eq!(run(&mut p, &client(30000 + i, 82, ACK), now).0, Verdict::Tx(1), "established {i} at SYN {n}");
            est_sent += 1;
        }
        if n % 100_000 == 50_000 {
            // A legitimate client's handshake in the middle of the flood.
            assert_eq!(run(&mut p, &syn(40000 + legit, 82), now).0, Verdict::Tx(1));
            assert_eq!(run(&mut p, &client(40000 + legit, 82, ACK), now).0, Verdict::Tx(1), "legit {legit}");
            legit += 1;
        }
    }
    assert_eq!(p.stats.dropped(DropReason::TableFull), 0);
    assert!(p.shard.len() <= 65536);
    assert!(p.shard.stats.evicted_embryonic > 900_000, "evicted {}", p.shard.stats.evicted_embryonic);
    assert_eq!(est_sent, 1048);
    // Right after the flood, and every connection still there.
    let after = 1 + (1u64 << 20) / 1000;
    assert_eq!(run(&mut p, &syn(41000, 82), after).0, Verdict::Tx(1));
    assert_eq!(run(&mut p, &client(41000, 82, ACK), after).0, Verdict::Tx(1));
    for i in 0..100 {
        assert_eq!(run(&mut p, &client(30000 + i, 82, ACK), after).0, Verdict::Tx(1));
    }
    for i in 0..legit {
        assert_eq!(run(&mut p, &client(40000 + i, 82, ACK), after).0, Verdict::Tx(1), "legit {i} kept");
    }
}

/// More than 7/8 full, a new half-open connection lives 4 s instead of SYN_RECV's timeout.
#[test]
fn half_open_connections_expire_sooner_when_the_table_is_nearly_full() {
    let json = config_json("").replace(r#""max_per_worker": 1024"#, r#""max_per_worker": 16"#);
    let mut p = pipeline(&json);
    for i in 0..16 {
        assert_eq!(run(&mut p, &syn(40000 + i, 82), 0).0, Verdict::Tx(1));
    }
    assert!(p.shard.under_pressure());
    p.housekeeping(5 * S, usize::MAX);
    // The 15th and 16th came above 14 of 16 (7/8): gone after 4 s; the first 14 stay.
    assert_eq!(p.shard.len(), 14);
    assert!(state_of(&p, 40013).is_some() && state_of(&p, 40014).is_none() && state_of(&p, 40015).is_none());
    assert!(!p.shard.under_pressure());
}

/// sh and mh services schedule a mid-connection packet of a flow they hold no entry for by
/// the hash, to the server a SYN would have gone to (another director started the flow, or
/// its entry was evicted); rr still needs a SYN, and an RST never makes a connection.
#[test]
fn sh_and_mh_schedule_an_unknown_flows_ack_by_the_hash() {
    let extra = |sched: &str, port: u16| {
        let flags = if sched == "rr" { String::new() } else { format!(r#""sched_flags": ["{sched}-port"],"#) };
        format!(
            r#", {{"proto": "tcp", "vip": "198.18.0.100", "port": {port}, "scheduler": "{sched}", {flags}
                 "real_servers": [{{"addr": "198.19.0.11", "mode": "dr"}}, {{"addr": "198.19.0.12", "mode": "dr"}}]}}"#
        )
    };
    let json = config_json(&format!("{}{}{}", extra("mh", 90), extra("sh", 91), extra("rr", 92)));
    for port in [90u16, 91] {
        let (mut first, mut second) = (pipeline(&json), pipeline(&json));
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..64u16 {
            // Director one sees the SYN; director two only the flow's next segment.
            let (v1, f1) = run(&mut first, &syn(40000 + i, port), 0);
            let (v2, f2) = run(&mut second, &client(40000 + i, port, ACK), 0);
            assert_eq!((v1, v2), (Verdict::Tx(1), Verdict::Tx(1)), "port {port} flow {i}");
            assert_eq!(f1[0..6], f2[0..6], "port {port} flow {i}: the same real server");
            seen.insert(f1[0..6].to_vec());
            assert_eq!(state_of(&second, 40000 + i), Some(TcpState::Established), "taken as established");
        }
        assert_eq!(seen.len(), 2, "port {port}: flows hashed (with their ports) over both servers");
        let (v, _) = run(&mut second, &client(41000, port, RST), 0);
        assert_eq!(v, Verdict::Drop(DropReason::NoConn), "an RST makes no connection");
    }
    let mut p = pipeline(&json);
    assert_eq!(run(&mut p, &client(40000, 92, ACK), 0).0, Verdict::Drop(DropReason::NoConn), "rr needs a SYN");
}

/// A connection is made in the state of its first segment, unless that segment cannot be
/// forwarded: a TTL-1 ACK to an sh service is answered with "time exceeded" and leaves its
/// entry in NONE (2 s, inactive), not ESTABLISHED (900 s, counted active) for a flow no server
/// saw; a TTL-1 SYN the same.
#[test]
fn a_segment_that_cannot_be_forwarded_leaves_its_connection_in_none() {
    let json = config_json(
        r#", {"proto": "tcp", "vip": "198.18.0.100", "port": 91, "scheduler": "sh", "sched_flags": ["sh-port"],
             "real_servers": [{"addr": "198.19.0.11", "port": 8080, "mode": "nat"}]}"#,
    );
    let mut p = pipeline(&json);
    let svc = p.tables().service(6, u32::from_be_bytes(VIP), 91).expect("service");
    for (sport, t) in [(40000u16, ACK), (40001, SYN)] {
        let ttl1 = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, 91, t, 1, &[]);
        assert_eq!(run(&mut p, &ttl1, 0).0, Verdict::Tx(0), "answered: time exceeded");
        assert_eq!(state_of(&p, sport), Some(TcpState::None));
    }
    assert_eq!(p.stats.icmp_time_exceeded, 2);
    let l = &p.shard.loads(svc)[0];
    assert_eq!((l.active, l.inactive), (0, 2));
    // Deliverable, the same ACK makes it established at once.
    assert_eq!(run(&mut p, &client(40002, 91, ACK), 0).0, Verdict::Tx(1));
    assert_eq!(state_of(&p, 40002), Some(TcpState::Established));
    assert_eq!(p.shard.loads(svc)[0].active, 1);
}

/// An ACK flood against an mh service (each ACK of an unknown flow makes a connection by the
/// hash) fills the table with entries a SYN may still take back: a new client gets in, and a
/// flood flow whose entry was taken goes to the same server at its next segment.
#[test]
fn an_ack_flood_on_an_mh_service_cannot_lock_the_table() {
    let json = config_json(
        r#", {"proto": "tcp", "vip": "198.18.0.100", "port": 90, "scheduler": "mh", "sched_flags": ["mh-port"],
              "real_servers": [{"addr": "198.19.0.11", "mode": "dr"}, {"addr": "198.19.0.12", "mode": "dr"}]}"#,
    )
    .replace(r#""max_per_worker": 1024"#, r#""max_per_worker": 16"#);
    let mut p = pipeline(&json);
    let mut first_mac = Vec::new();
    for i in 0..64u16 {
        let (v, f) = run(&mut p, &client(30000 + i, 90, ACK), 0);
        assert_eq!(v, Verdict::Tx(1), "ACK {i}");
        first_mac.push(f[0..6].to_vec());
    }
    assert_eq!(p.shard.len(), 16);
    assert_eq!(p.shard.stats.evicted_embryonic, 48, "each ACK past 16 took an older by-hash entry's slot");
    assert_eq!(run(&mut p, &syn(40000, 90), 1).0, Verdict::Tx(1), "a new client gets in");
    assert_eq!(run(&mut p, &client(40000, 90, ACK), 1).0, Verdict::Tx(1));
    let (v, f) = run(&mut p, &client(30000, 90, ACK), 2);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(f[0..6], first_mac[0][..], "an evicted flow comes back to its server");
}

/// An idle worker whose expiry has fallen behind (here its clock jumped past every timeout)
/// catches up in rounds of at most `EXPIRE_CATCH_UP` connections, so that a burst arriving
/// meanwhile waits for one bounded round only, and does not sleep between those rounds.
#[test]
fn an_idle_worker_catches_up_on_expiry_in_bounded_rounds_without_sleeping() {
    use xvs::dataplane::worker::EXPIRE_CATCH_UP;
    use xvs::dataplane::{FramePool, MemPort, Poll, Worker};
    let json = config_json("").replace(r#""max_per_worker": 1024"#, r#""max_per_worker": 4096"#);
    let cfg = Config::parse(&json).expect("config");
    let tables = Arc::new(xvs::control::tables_for(&cfg, None).expect("tables"));
    let ports = vec![MemPort::capturing(), MemPort::capturing()];
    let mut w = Worker::new(0, Pipeline::new(tables, 0), ports, FramePool::new(256), None);
    // 3000 SYNs, 1 us of virtual time apart.
    w.ports[0].ns_per_frame = Some(1000);
    let n = 3000;
    for i in 0..n {
        w.ports[0].push_rx(syn(20000 + i as u16, 80));
    }
    while let Poll::Busy(_) = w.poll() {}
    assert_eq!(w.pipeline.shard.len(), n, "every SYN made a connection");
    // The port's clock now reads 3000 frames x 100 s: past every timeout, no frame left.
    w.ports[0].ns_per_frame = Some(100 * S * 1_000_000);
    let mut left = n;
    let mut rounds = 0;
    loop {
        let p = w.poll();
        rounds += 1;
        let now = w.pipeline.shard.len();
        assert!(left - now <= EXPIRE_CATCH_UP as u32, "round {rounds} expired {} at once", left - now);
        left = now;
        match p {
            Poll::Busy(0) => assert!(left > 0, "busy with nothing left to expire"),
            // Free to sleep (or, the capture port having no more frames, to stop).
            Poll::Idle | Poll::Finished => break,
            other => panic!("round {rounds}: {other:?}"),
        }
        assert!(rounds < 10, "expiry does not catch up");
    }
    assert_eq!(left, 0, "idle (free to sleep) only once caught up");
    assert_eq!(rounds, (n as usize).div_ceil(EXPIRE_CATCH_UP), "rounds of the full budget, none lost to sleep");
}
