//! A new tables snapshot (live reconfiguration) keeps every connection on its real server,
//! wherever the new tables put the service and the server; a deleted server's connections
//! end; persistence templates and loads move with their server.

mod common;
use common::*;
use std::sync::Arc;
use xvs::config::Config;
use xvs::dataplane::{DropReason, Pipeline, Tables, Verdict};

const RS3: [u8; 4] = [198, 19, 0, 13];

/// A director config with these services (JSON array items).
fn cfg(services: &str) -> Arc<Tables> {
    let json = format!(
        r#"{{"director": {{"interfaces": [{{"name": "xvs-c", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"}},
                                          {{"name": "xvs-r", "mac": "02:00:00:00:01:01", "ip": "198.19.0.1"}}]}},
            "neighbours": [{{"ip": "198.18.0.2", "mac": "02:00:00:00:00:02", "interface": "xvs-c"}},
                           {{"ip": "198.19.0.11", "mac": "02:00:00:00:01:11", "interface": "xvs-r"}},
                           {{"ip": "198.19.0.12", "mac": "02:00:00:00:01:12", "interface": "xvs-r"}},
                           {{"ip": "198.19.0.13", "mac": "02:00:00:00:01:13", "interface": "xvs-r"}}],
            "services": [{services}]}}"#
    );
    Arc::new(Tables::build(&Config::parse(&json).expect("config")))
}

fn nat80(servers: &str) -> String {
    format!(r#"{{"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr", "real_servers": [{servers}]}}"#)
}

fn rs(last: u8, extra: &str) -> String {
    format!(r#"{{"addr": "198.19.0.{last}", "port": 8080, "mode": "nat"{extra}}}"#)
}

/// Sends a client segment from `port`; the real server it went to, if forwarded.
fn to_server(p: &mut Pipeline, port: u16, t: Tcp) -> Result<[u8; 4], Verdict> {
    let (v, out) = run(p, &tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, port, 80, t, 64, &[]), 0);
    match v {
        Verdict::Tx(_) => Ok([out[30], out[31], out[32], out[33]]),
        v => Err(v),
    }
}

/// Opens a connection from client port `port` (SYN, the server's SYN-ACK, ACK).
fn connect(p: &mut Pipeline, port: u16) -> [u8; 4] {
    let rs = to_server(p, port, SYN).expect("SYN forwarded");
    let (v, _) = run(p, &tcp_frame(RS1_MAC, DIR_R_MAC, rs, CLIENT, 8080, port, SYNACK, 64, &[]), 0);
    assert!(matches!(v, Verdict::Tx(_)), "SYN-ACK from {rs:?}: {v:?}");
    assert_eq!(to_server(p, port, ACK), Ok(rs));
    rs
}

fn service_index(t: &Tables, port: u16) -> u16 {
    t.service(6, u32::from_be_bytes(VIP), port).expect("service")
}

#[test]
fn connections_follow_their_server_through_inserts_and_reordering() {
    let a = cfg(&nat80(&[rs(11, ""), rs(12, "")].join(",")));
    let mut p = Pipeline::new(a, 0);
    assert_eq!(connect(&mut p, 1000), RS1);
    assert_eq!(connect(&mut p, 1001), RS2);
    // A UDP service first, a new server at the head of the list, the two swapped.
    let b = cfg(&format!(
        r#"{{"proto": "udp", "vip": "198.18.0.100", "port": 53, "real_servers": [{}]}}, {}"#,
        rs(11, ""),
        nat80(&[rs(13, ""), rs(12, ""), rs(11, "")].join(","))
    ));
    let svc = service_index(&b, 80);
    p.set_tables(b);
    assert_eq!(p.stats.reconfig_removed, 0);
    for _ in 0..3 {
        assert_eq!(to_server(&mut p, 1000, ACK), Ok(RS1), "kept its server");
        assert_eq!(to_server(&mut p, 1001, ACK), Ok(RS2), "kept its server");
    }
    // Replies still match, from either server.
    let (v, out) = run(&mut p, &tcp_frame(RS2_MAC, DIR_R_MAC, RS2, CLIENT, 8080, 1001, ACK, 64, &[]), 0);
    assert!(matches!(v, Verdict::Tx(0)) && out[26..30] == VIP, "{v:?}");
    // Loads moved with the servers (the schedulers read them by position).
    let loads = p.shard.loads(svc);
    assert_eq!((loads[0].active, loads[1].active, loads[2].active), (0, 1, 1), "13, 12, 11");
    // Counters too.
    assert_eq!(p.stats.dests[svc as usize][2].conns, 1, "198.19.0.11's connection count");
    // New connections see the new list.
    assert_eq!(connect(&mut p, 1002), RS3);
}

#[test]
fn a_deleted_servers_connections_end_and_a_quiesced_ones_drain() {
    let mut p = Pipeline::new(cfg(&nat80(&[rs(11, ""), rs(12, ""), rs(13, "")].join(","))), 0);
    assert_eq!(connect(&mut p, 1000), RS1);
    assert_eq!(connect(&mut p, 1001), RS2);
    assert_eq!(connect(&mut p, 1002), RS3);
    // 11 deleted, 12 quiesced (weight 0).
    p.set_tables(cfg(&nat80(&[rs(12, r#", "weight": 0"#), rs(13, "")].join(","))));
    assert_eq!(p.stats.reconfig_removed, 1);
    assert_eq!(to_server(&mut p, 1000, ACK), Err(Verdict::Drop(DropReason::NoConn)), "its server is gone");
    assert_eq!(to_server(&mut p, 1001, ACK), Ok(RS2), "a quiesced server keeps its connections");
    assert_eq!(to_server(&mut p, 1002, ACK), Ok(RS3));
    for port in 2000..2004 {
        assert_eq!(connect(&mut p, port), RS3, "new connections avoid the quiesced server");
    }
    // The client of the deleted server starts again and is scheduled afresh.
    assert_eq!(connect(&mut p, 1000), RS3);
}

#[test]
fn persistence_templates_follow_their_server() {
    let persistent = |servers: &str| {
        format!(
            r#"{{"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr", "persistence_timeout": 300, "real_servers": [{servers}]}}"#
        )
    };
    let mut p = Pipeline::new(cfg(&persistent(&[rs(11, ""), rs(12, "")].join(","))), 0);
    let first = connect(&mut p, 1000);
    p.set_tables(cfg(&persistent(&[rs(13, ""), rs(12, ""), rs(11, "")].join(","))));
    for port in 1001..1005 {
        assert_eq!(connect(&mut p, port), first, "the client's template survives the reorder");
    }
    // Its server deleted: template and connections go, the client is scheduled afresh.
    let remaining: Vec<String> =
        [11u8, 12, 13].iter().filter(|&&l| [198, 19, 0, l] != first).map(|&l| rs(l, "")).collect();
    p.set_tables(cfg(&persistent(&remaining.join(","))));
    assert!(p.stats.reconfig_removed >= 6, "5 connections and the template");
    assert_ne!(connect(&mut p, 1010), first);
}
