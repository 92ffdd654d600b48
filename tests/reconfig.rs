//! A new tables snapshot (live reconfiguration) keeps every connection on its real server,
//! wherever the new list puts the service and the server (slots are stable); a deleted
//! server's connections end at their next packet; persistence templates and loads stay with
//! their server; a server deleted and added again gets its slot back.

mod common;
use common::*;
use std::sync::Arc;
use xvs::config::Config;
use xvs::dataplane::{DropReason, Pipeline, Tables, Verdict};
use xvs::model::{SchedFlags, SchedKind};
use xvs::sched::{DestLoad, DestSpec, Flow, Scheduler};

const RS3: [u8; 4] = [198, 19, 0, 13];

/// A snapshot of a director config with these services (JSON array items), built against
/// `prev` as the director builds each one against the last.
fn next(prev: Option<&Tables>, services: &str) -> Arc<Tables> {
    next_macs(prev, services, "02:00:00:00:01:12")
}

/// As [`next`], with 198.19.0.12 at `mac12` (a MAC refresh).
fn next_macs(prev: Option<&Tables>, services: &str, mac12: &str) -> Arc<Tables> {
    let json = format!(
        r#"{{"director": {{"interfaces": [{{"name": "xvs-c", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"}},
                                          {{"name": "xvs-r", "mac": "02:00:00:00:01:01", "ip": "198.19.0.1"}}]}},
            "neighbours": [{{"ip": "198.18.0.2", "mac": "02:00:00:00:00:02", "interface": "xvs-c"}},
                           {{"ip": "198.19.0.11", "mac": "02:00:00:00:01:11", "interface": "xvs-r"}},
                           {{"ip": "198.19.0.12", "mac": "{mac12}", "interface": "xvs-r"}},
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

/// The kernel's server list and the state rr and wrr keep in it, driven through the same hooks
/// the kernel runs (`net/netfilter/ipvs/ip_vs_rr.c`, `ip_vs_wrr.c`, written out again from
/// the kernel's source), with every other scheduler's pick from its formula over the
/// director's own loads, or from a table built afresh from the list (sh, dh; mh from the last
/// weights).
struct KernelService {
    kind: SchedKind,
    /// (last address byte, weight, last non-zero weight), in the kernel's list order.
    list: Vec<(u8, u32, u32)>,
    /// rr's list pointer (None: the head).
    rr_at: Option<u8>,
    /// wrr's mark: cl (None: head), cw, mw, di.
    cl: Option<u8>,
    cw: i64,
    mw: i64,
    di: i64,
}

impl KernelService {
    /// `-A`: `init_svc` on an empty service.
    fn new(kind: SchedKind) -> KernelService {
        KernelService { kind, list: Vec::new(), rr_at: None, cl: None, cw: 0, mw: 0, di: 1 }
    }

    fn dest_changed(&mut self) {
        let weights: Vec<i64> = self.list.iter().map(|d| d.1 as i64).collect();
        let g = weights.iter().filter(|w| **w > 0).fold(0, |g, &w| if g == 0 { w } else { gcd(g, w) });
        self.cl = None;
        self.di = if g == 0 { 1 } else { g };
        self.mw = weights.iter().copied().max().unwrap_or(0) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// `-a`, the server landing at `at` of the list (the kernel's `-a` inserts at the head;
    /// config.json's list is in the order written, so a server written last is at the tail).
    fn add(&mut self, last: u8, w: u32, at: usize) {
        self.list.insert(at, (last, w, w));
        self.dest_changed();
    }

    /// `-e`: a new weight (the last non-zero one kept for mh).
    fn edit(&mut self, last: u8, w: u32) {
        let d = self.list.iter_mut().find(|d| d.0 == last).expect("listed");
        d.1 = w;
        if w > 0 {
            d.2 = w;
        }
        self.dest_changed();
    }

    /// `-d`: rr's pointer, if at the server, moves to the one before it.
    fn delete(&mut self, last: u8) {
        let i = self.list.iter().position(|d| d.0 == last).expect("listed");
        if self.rr_at == Some(last) {
            self.rr_at = if i == 0 { None } else { Some(self.list[i - 1].0) };
        }
        self.list.remove(i);
        self.dest_changed();
    }

    fn after(&self, at: Option<u8>) -> usize {
        at.and_then(|a| self.list.iter().position(|d| d.0 == a)).map_or(0, |i| i + 1)
    }

    /// The server the kernel picks for a new connection from `client`, the director's loads
    /// (in list order) given.
    fn pick(&mut self, client: [u8; 4], loads: &[DestLoad], mh_size: u32) -> Option<u8> {
        let n = self.list.len();
        let live = |i: usize| self.list[i].1 > 0;
        match self.kind {
            SchedKind::Rr => {
                let start = self.after(self.rr_at);
                let i = (0..n).map(|k| (start + k) % n).find(|&i| live(i))?;
                self.rr_at = Some(self.list[i].0);
                Some(self.list[i].0)
            }
            SchedKind::Wrr => {
                if self.mw <= 0 {
                    return None;
                }
                let mut from = self.after(self.cl);
                loop {
                    if let Some(i) = (from..n).find(|&i| self.list[i].1 as i64 >= self.cw) {
                        self.cl = Some(self.list[i].0);
                        return Some(self.list[i].0);
                    }
                    self.cw -= self.di;
                    if self.cw <= 0 {
                        self.cw = self.mw;
                    }
                    from = 0;
                }
            }
            SchedKind::Lc | SchedKind::Wlc | SchedKind::Sed | SchedKind::Nq => {
                let (kind, list) = (self.kind, &self.list);
                let oh = |l: &DestLoad| match kind {
                    SchedKind::Lc | SchedKind::Wlc => (l.active as u64) * 256 + l.inactive as u64,
                    _ => l.active as u64 + 1,
                };
                let mut least: Option<usize> = None;
                for i in (0..n).filter(|&i| live(i)) {
                    if kind == SchedKind::Nq && loads[i].active == 0 {
                        return Some(list[i].0);
                    }
                    least = match least {
                        None => Some(i),
                        Some(j) if kind == SchedKind::Lc && oh(&loads[i]) < oh(&loads[j]) => Some(i),
                        Some(j)
                            if kind != SchedKind::Lc
                                && oh(&loads[j]) * list[i].1 as u64 > oh(&loads[i]) * list[j].1 as u64 =>
                        {
                            Some(i)
                        }
                        keep => keep,
                    };
                }
                least.map(|i| list[i].0)
            }
            SchedKind::Sh | SchedKind::Dh | SchedKind::Mh => {
                let mh = self.kind == SchedKind::Mh;
                let specs: Vec<DestSpec> = self
                    .list
                    .iter()
                    .map(|d| DestSpec {
                        addr: u32::from_be_bytes([198, 19, 0, d.0]),
                        port: 8080,
                        weight: if mh { d.2 } else { d.1 },
                    })
                    .collect();
                let mut fresh = Scheduler::new(self.kind, SchedFlags::default(), mh_size, &specs);
                let flow = Flow {
                    proto: 6,
                    saddr: u32::from_be_bytes(client),
                    sport: 0,
                    daddr: u32::from_be_bytes(VIP),
                    dport: 80,
                };
                fresh.pick(&flow, loads).map(|i| self.list[i].0)
            }
        }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[test]
fn every_scheduler_follows_the_kernels_hooks_through_live_changes() {
    let kinds = [
        ("rr", SchedKind::Rr),
        ("wrr", SchedKind::Wrr),
        ("lc", SchedKind::Lc),
        ("wlc", SchedKind::Wlc),
        ("sed", SchedKind::Sed),
        ("nq", SchedKind::Nq),
        ("sh", SchedKind::Sh),
        ("dh", SchedKind::Dh),
        ("mh", SchedKind::Mh),
    ];
    for (name, kind) in kinds {
        // config.json's list is in the order written: the model's list is kept so.
        let svc = |servers: &[(u8, u32)]| {
            let rs: Vec<String> = servers.iter().map(|(l, w)| rs(*l, &format!(r#", "weight": {w}"#))).collect();
            format!(
                r#"{{"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "{name}", "real_servers": [{}]}}"#,
                rs.join(",")
            )
        };
        let mut k = KernelService::new(kind);
        let mut p = Pipeline::new(cfg(&svc(&[(11, 1), (12, 2)])), 0);
        k.add(12, 2, 0);
        k.add(11, 1, 0);
        let mut port = 1000u16;
        let mut client = 0u8;
        let mut picks = |p: &mut Pipeline, k: &mut KernelService, what: &str| {
            for _ in 0..9 {
                port += 1;
                client = client.wrapping_add(37);
                let c = [198, 18, 1, client];
                let svc = service_index(p.tables(), 80);
                let size = p.tables().services[svc as usize].mh_table_size;
                let want = k.pick(c, p.shard.loads(svc), size);
                let (v, out) = run(p, &tcp_frame(CLIENT_MAC, DIR_C_MAC, c, VIP, port, 80, SYN, 64, &[]), 0);
                let got = matches!(v, Verdict::Tx(_)).then(|| out[33]);
                assert_eq!(got, want, "{name} after {what}: connection from port {port}");
                // Every other connection completes (active and inactive loads both move).
                if let (Some(rs), true) = (got, port.is_multiple_of(2)) {
                    let ack = tcp_frame(CLIENT_MAC, DIR_C_MAC, c, VIP, port, 80, ACK, 64, &[]);
                    let synack = tcp_frame(RS1_MAC, DIR_R_MAC, [198, 19, 0, rs], c, 8080, port, SYNACK, 64, &[]);
                    run(p, &synack, 0);
                    run(p, &ack, 0);
                }
            }
        };
        picks(&mut p, &mut k, "-A and two -a");
        // A third server.
        let t = next(Some(p.tables()), &svc(&[(11, 1), (12, 2), (13, 3)]));
        p.set_tables(t);
        k.add(13, 3, 2);
        picks(&mut p, &mut k, "a third server");
        // A weight change.
        let t = next(Some(p.tables()), &svc(&[(11, 1), (12, 5), (13, 3)]));
        p.set_tables(t);
        k.edit(12, 5);
        picks(&mut p, &mut k, "a weight change");
        // A health flap: 11 taken out, then back (written last).
        let t = next(Some(p.tables()), &svc(&[(12, 5), (13, 3)]));
        p.set_tables(t);
        k.delete(11);
        picks(&mut p, &mut k, "a failed server");
        let t = next(Some(p.tables()), &svc(&[(12, 5), (13, 3), (11, 1)]));
        p.set_tables(t);
        k.add(11, 1, 2);
        picks(&mut p, &mut k, "its return");
        // A MAC refresh: nothing the scheduler sees.
        let t = next_macs(Some(p.tables()), &svc(&[(12, 5), (13, 3), (11, 1)]), "02:00:00:00:01:22");
        p.set_tables(t);
        picks(&mut p, &mut k, "a MAC refresh");
        // Quiescing 13 (weight 0).
        let t = next(Some(p.tables()), &svc(&[(12, 5), (13, 0), (11, 1)]));
        p.set_tables(t);
        k.edit(13, 0);
        picks(&mut p, &mut k, "a quiesce");
    }
}

#[test]
fn a_service_switched_to_wrr_starts_as_the_kernels_init_svc() {
    // `ipvsadm -E -s wrr` binds wrr with `init_svc` over the whole list: cw = mw = 3, so the
    // weight-3 server takes the first three connections.
    let svc = |sched: &str| {
        format!(
            r#"{{"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "{sched}", "real_servers": [{}]}}"#,
            [rs(11, r#", "weight": 3"#), rs(12, r#", "weight": 1"#)].join(",")
        )
    };
    let mut p = Pipeline::new(cfg(&svc("rr")), 0);
    let t = next(Some(p.tables()), &svc("wrr"));
    p.set_tables(t);
    let got: Vec<[u8; 4]> = (0..4).map(|i| to_server(&mut p, 3000 + i, SYN).expect("forwarded")).collect();
    assert_eq!(got, [RS1, RS1, RS1, RS2]);
    // A new wrr service starts as `-A` then one `-a` at a time (cw stays 1): one pass first.
    let mut p = Pipeline::new(cfg(&svc("wrr")), 0);
    let got: Vec<[u8; 4]> = (0..4).map(|i| to_server(&mut p, 3000 + i, SYN).expect("forwarded")).collect();
    assert_eq!(got, [RS1, RS2, RS1, RS1]);
}

/// With one worker a client packet looks its connection up before its service (issue 11),
/// and what the service decided must not change with that: a connection made under a port-0
/// service keeps its server when an exact service for its port is added on the VIP (a new
/// connection takes the exact one); with its own service deleted, its next packet ends it
/// as a deleted server's would; with no TCP service left on the VIP, its TCP packets are no
/// service's, connection or not.
#[test]
fn a_connection_is_looked_up_first_and_its_service_still_decides() {
    // Port 0: every port, to the same port of 198.19.0.11.
    let any_port = r#"{"proto": "tcp", "vip": "198.18.0.100", "port": 0, "scheduler": "rr", "persistence_timeout": 300,
        "real_servers": [{"addr": "198.19.0.11", "port": 0, "mode": "nat"}]}"#;
    let mut p = Pipeline::new(cfg(any_port), 0);
    for port in [1000, 1002] {
        assert_eq!(to_server(&mut p, port, SYN), Ok(RS1));
        let (v, _) = run(&mut p, &tcp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 80, port, SYNACK, 64, &[]), 0);
        assert!(matches!(v, Verdict::Tx(_)), "SYN-ACK: {v:?}");
        assert_eq!(to_server(&mut p, port, ACK), Ok(RS1));
    }
    let both = next(Some(p.tables()), &[any_port.to_string(), nat80(&rs(13, ""))].join(","));
    p.set_tables(both);
    assert_eq!(to_server(&mut p, 1000, ACK), Ok(RS1), "the connection keeps its server");
    assert_eq!(connect(&mut p, 1001), RS3, "a new connection takes the exact service");
    let exact = next(Some(p.tables()), &nat80(&rs(13, "")));
    p.set_tables(exact);
    assert_eq!(to_server(&mut p, 1001, ACK), Ok(RS3));
    assert_eq!(to_server(&mut p, 1000, ACK), Err(Verdict::Drop(DropReason::NoConn)), "its service is gone");
    assert_eq!(p.stats.nodest_expired, 1);
    // A UDP service keeps the VIP itself (its filter bit set), so that the TCP packets still
    // find their connections first and only then no service.
    let none = next(Some(p.tables()), r#"{"proto": "udp", "vip": "198.18.0.100", "port": 53, "real_servers": []}"#);
    p.set_tables(none);
    let before = p.shard.len();
    for port in [1001, 1002] {
        assert_eq!(
            to_server(&mut p, port, ACK),
            Err(Verdict::Pass(xvs::dataplane::PassReason::NotService)),
            "no TCP service on the VIP"
        );
    }
    assert_eq!(p.shard.len(), before, "its connections are left to time out");
}
