//! A new tables snapshot (live reconfiguration) keeps every connection on its real server,
//! wherever the new list puts the service and the server (slots are stable); a deleted
//! server's connections end at their next packet; persistence templates and loads stay with
//! their server; a server deleted and added again gets its slot back.

mod common;
use common::*;
use std::sync::Arc;
use xvs::config::Config;
use xvs::dataplane::{DropReason, Pipeline, Tables, Verdict};

const RS3: [u8; 4] = [198, 19, 0, 13];

/// A snapshot of a director config with these services (JSON array items), built against
/// `prev` as the director builds each one against the last.
fn next(prev: Option<&Tables>, services: &str) -> Arc<Tables> {
    let json = format!(
        r#"{{"director": {{"interfaces": [{{"name": "xvs-c", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"}},
                                          {{"name": "xvs-r", "mac": "02:00:00:00:01:01", "ip": "198.19.0.1"}}]}},
            "neighbours": [{{"ip": "198.18.0.2", "mac": "02:00:00:00:00:02", "interface": "xvs-c"}},
                           {{"ip": "198.19.0.11", "mac": "02:00:00:00:01:11", "interface": "xvs-r"}},
                           {{"ip": "198.19.0.12", "mac": "02:00:00:00:01:12", "interface": "xvs-r"}},
                           {{"ip": "198.19.0.13", "mac": "02:00:00:00:01:13", "interface": "xvs-r"}}],
            "services": [{services}]}}"#
    );
    Arc::new(xvs::control::tables_for(&Config::parse(&json).expect("config"), prev).expect("tables"))
}

fn cfg(services: &str) -> Arc<Tables> {
    next(None, services)
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
    let b = next(
        Some(p.tables()),
        &format!(
            r#"{{"proto": "udp", "vip": "198.18.0.100", "port": 53, "real_servers": [{}]}}, {}"#,
            rs(11, ""),
            nat80(&[rs(13, ""), rs(12, ""), rs(11, "")].join(","))
        ),
    );
    let svc = service_index(&b, 80);
    let slot11 = b.services[svc as usize].dest_slot(u32::from_be_bytes(RS1), 8080).expect("slot");
    assert_eq!(slot11, 0, "198.19.0.11 keeps its slot at the tail of the list");
    let id11 = b.dest_id(svc, slot11).expect("id") as usize;
    p.set_tables(b);
    for _ in 0..3 {
        assert_eq!(to_server(&mut p, 1000, ACK), Ok(RS1), "kept its server");
        assert_eq!(to_server(&mut p, 1001, ACK), Ok(RS2), "kept its server");
    }
    // Replies still match, from either server.
    let (v, out) = run(&mut p, &tcp_frame(RS2_MAC, DIR_R_MAC, RS2, CLIENT, 8080, 1001, ACK, 64, &[]), 0);
    assert!(matches!(v, Verdict::Tx(0)) && out[26..30] == VIP, "{v:?}");
    assert_eq!(p.stats.nodest_expired, 0);
    // Loads follow the servers (the schedulers read them in list order).
    let loads = p.shard.loads(svc);
    assert_eq!((loads[0].active, loads[1].active, loads[2].active), (0, 1, 1), "13, 12, 11");
    // Counters too.
    assert_eq!(p.stats.dests[id11].conns, 1, "198.19.0.11's connection count");
    // New connections see the new list, from where rr was: 12 was picked last, so 11 (after
    // it in 13, 12, 11), then 13.
    assert_eq!(connect(&mut p, 1002), RS1);
    assert_eq!(connect(&mut p, 1003), RS3);
}

#[test]
fn a_deleted_servers_connections_end_and_a_quiesced_ones_drain() {
    let mut p = Pipeline::new(cfg(&nat80(&[rs(11, ""), rs(12, ""), rs(13, "")].join(","))), 0);
    assert_eq!(connect(&mut p, 1000), RS1);
    assert_eq!(connect(&mut p, 1001), RS2);
    assert_eq!(connect(&mut p, 1002), RS3);
    // 11 deleted, 12 quiesced (weight 0).
    let t = next(Some(p.tables()), &nat80(&[rs(12, r#", "weight": 0"#), rs(13, "")].join(",")));
    p.set_tables(t);
    assert_eq!(p.shard.len(), 3, "a new snapshot walks no connection");
    assert_eq!(to_server(&mut p, 1000, ACK), Err(Verdict::Drop(DropReason::NoConn)), "its server is gone");
    assert_eq!((p.stats.nodest_expired, p.shard.len()), (1, 2), "expired at its next packet");
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
    let t = next(Some(p.tables()), &persistent(&[rs(13, ""), rs(12, ""), rs(11, "")].join(",")));
    p.set_tables(t);
    for port in 1001..1005 {
        assert_eq!(connect(&mut p, port), first, "the client's template survives the reorder");
    }
    // Its server deleted: template and connections go, the client is scheduled afresh.
    let remaining: Vec<String> =
        [11u8, 12, 13].iter().filter(|&&l| [198, 19, 0, l] != first).map(|&l| rs(l, "")).collect();
    let t = next(Some(p.tables()), &persistent(&remaining.join(",")));
    p.set_tables(t);
    let second = connect(&mut p, 1010);
    assert_ne!(second, first, "the template of a deleted server is not followed");
    for port in 1011..1015 {
        assert_eq!(connect(&mut p, port), second, "the client's new template is followed");
    }
    assert_eq!(to_server(&mut p, 1001, ACK), Err(Verdict::Drop(DropReason::NoConn)));
    assert_eq!(p.stats.nodest_expired, 1);
}

#[test]
fn a_server_deleted_and_added_again_gets_its_slot_and_connections_back() {
    let mut p = Pipeline::new(cfg(&nat80(&[rs(11, ""), rs(12, "")].join(","))), 0);
    assert_eq!(connect(&mut p, 1000), RS1);
    assert_eq!(connect(&mut p, 1001), RS2);
    let gone = next(Some(p.tables()), &nat80(&rs(12, "")));
    p.set_tables(gone);
    // Back before its connection sent anything (IPVS restores a server from its trash).
    let back = next(Some(p.tables()), &nat80(&[rs(12, ""), rs(11, "")].join(",")));
    let svc = service_index(&back, 80) as usize;
    assert_eq!(back.services[svc].dest_slot(u32::from_be_bytes(RS1), 8080), Some(0));
    assert_eq!(back.services[svc].dests.len(), 2, "no new slot");
    p.set_tables(back);
    assert_eq!(to_server(&mut p, 1000, ACK), Ok(RS1), "its connection continues");
    assert_eq!(p.stats.nodest_expired, 0);
    // A deleted service's slot is a tombstone: not looked up, and kept for its return.
    let other = next(Some(p.tables()), r#"{"proto": "udp", "vip": "198.18.0.100", "port": 53, "real_servers": []}"#);
    assert!(!other.services[svc].live);
    assert_eq!(other.service(6, u32::from_be_bytes(VIP), 80), None);
    let again = next(Some(&other), &nat80(&rs(11, "")));
    assert_eq!(service_index(&again, 80) as usize, svc);
}

/// The state of the connection from client port `port`.
fn state_of(p: &Pipeline, port: u16) -> Option<xvs::conn::TcpState> {
    p.shard.iter().find(|(_, c)| !c.is_template() && c.cport == port).and_then(|(_, c)| c.tcp_state())
}

/// Closes the connection from `port` to `rs` as both ends would (FIN, ACK, FIN, ACK).
fn close(p: &mut Pipeline, port: u16, rs: [u8; 4], rs_mac: [u8; 6]) {
    assert_eq!(to_server(p, port, FINACK), Ok(rs));
    for t in [ACK, FINACK] {
        let (v, _) = run(p, &tcp_frame(rs_mac, DIR_R_MAC, rs, CLIENT, 8080, port, t, 64, &[]), 0);
        assert!(matches!(v, Verdict::Tx(_)), "{v:?}");
    }
    assert_eq!(to_server(p, port, ACK), Ok(rs));
}

#[test]
fn a_syn_reusing_a_closed_connections_ports_is_scheduled_afresh() {
    let mut p = Pipeline::new(cfg(&nat80(&[rs(11, ""), rs(12, "")].join(","))), 0);
    assert_eq!(connect(&mut p, 1000), RS1);
    close(&mut p, 1000, RS1, RS1_MAC);
    assert_eq!(state_of(&p, 1000), Some(xvs::conn::TcpState::TimeWait));
    // The client opens a new connection from the same port: rr's next server, not the old
    // connection's (IPVS conn_reuse_mode 1).
    assert_eq!(to_server(&mut p, 1000, SYN), Ok(RS2));
    assert_eq!(p.stats.conn_reused, 1);
    assert_eq!(p.shard.len(), 1, "the old connection was replaced");
    // A SYN retransmitted for a connection still opening is not a new connection.
    assert_eq!(to_server(&mut p, 1000, SYN), Ok(RS2));
    assert_eq!(p.stats.conn_reused, 1);
}

#[test]
fn a_quiesced_servers_connection_reused_by_a_syn_follows_the_scheduler() {
    let mut p = Pipeline::new(cfg(&nat80(&[rs(11, ""), rs(12, "")].join(","))), 0);
    assert_eq!(connect(&mut p, 1000), RS1);
    let t = next(Some(p.tables()), &nat80(&[rs(11, r#", "weight": 0"#), rs(12, "")].join(",")));
    p.set_tables(t);
    // Its established connection goes on; a new SYN on its ports drains it to the other.
    assert_eq!(to_server(&mut p, 1000, ACK), Ok(RS1));
    assert_eq!(to_server(&mut p, 1000, SYN), Ok(RS2));
    assert_eq!(p.stats.conn_reused, 1);
}

#[test]
fn a_persistent_clients_reused_ports_keep_its_server() {
    let svc = r#"{"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr", "persistence_timeout": 300, "real_servers": ["#
        .to_string()
        + &[rs(11, ""), rs(12, "")].join(",")
        + "]}";
    let mut p = Pipeline::new(cfg(&svc), 0);
    let first = connect(&mut p, 1000);
    close(&mut p, 1000, first, if first == RS1 { RS1_MAC } else { RS2_MAC });
    // Controlled by its template: the connection is reused as it is, on the same server.
    assert_eq!(to_server(&mut p, 1000, SYN), Ok(first));
    assert_eq!(p.stats.conn_reused, 0);
}

#[test]
fn rr_keeps_its_place_through_a_weight_change_and_mh_through_a_quiesce() {
    // rr over 11, 12, 13: after 11 and 12, a change of 13's weight (an upd_dest) leaves the
    // position where it was, as the kernel's list pointer: 13 is next.
    let three = |w13: &str| nat80(&[rs(11, ""), rs(12, ""), rs(13, w13)].join(","));
    let mut p = Pipeline::new(cfg(&three("")), 0);
    assert_eq!(connect(&mut p, 1000), RS1);
    assert_eq!(connect(&mut p, 1001), RS2);
    let t = next(Some(p.tables()), &three(r#", "weight": 3"#));
    p.set_tables(t);
    assert_eq!(connect(&mut p, 1002), RS3);

    // mh: quiescing a server (weight 0) keeps its slots (the kernel builds from last_weight),
    // so no client of another server moves.
    let mh = |w12: &str| {
        format!(
            r#"{{"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "mh", "real_servers": [{}]}}"#,
            [rs(11, ""), rs(12, w12), rs(13, "")].join(",")
        )
    };
    let clients: Vec<[u8; 4]> = (1..=60).map(|i| [198, 18, 1, i]).collect();
    let server_of = |p: &mut Pipeline, c: [u8; 4], port: u16| {
        let (v, out) = run(p, &tcp_frame(CLIENT_MAC, DIR_C_MAC, c, VIP, port, 80, SYN, 64, &[]), 0);
        matches!(v, Verdict::Tx(_)).then(|| [out[30], out[31], out[32], out[33]])
    };
    let mut p = Pipeline::new(cfg(&mh("")), 0);
    let before: Vec<_> = clients.iter().map(|&c| server_of(&mut p, c, 2000)).collect();
    assert!(before.contains(&Some(RS2)), "some clients on 198.19.0.12");
    let t = next(Some(p.tables()), &mh(r#", "weight": 0"#));
    p.set_tables(t);
    for (c, b) in clients.iter().zip(&before) {
        let now = server_of(&mut p, *c, 2001);
        if *b == Some(RS2) {
            assert_eq!(now, None, "its server is quiesced (no mh-fallback): no new connection");
        } else {
            assert_eq!(now, *b, "a client of another server stays");
        }
    }
}
