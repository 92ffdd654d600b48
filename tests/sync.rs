//! Connection sync through the pipeline: a master's workers queue IPVS's messages at IPVS's
//! thresholds, the messages survive the wire format, and a backup that installed them
//! forwards the connections' next packets (no SYN) to the same real server, with the same
//! rewrite, where without them it would drop or reschedule.

mod common;
use common::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use xvs::control::sync::message::{decode, Encoder};
use xvs::dataplane::pipeline::{SyncLink, SyncOutcome};
use xvs::dataplane::{DropReason, Pipeline, Verdict};
use xvs::model::{sync_flags, SyncConn, TcpState};

fn client(sport: u16, port: u16, t: Tcp) -> Vec<u8> {
    tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, port, t, 64, b"x")
}

fn drain(link: &SyncLink) -> Vec<SyncConn> {
    std::iter::from_fn(|| link.queue.pop()).collect()
}

/// The messages as a backup receives them: encoded, one datagram, decoded.
fn over_the_wire(msgs: &[SyncConn]) -> Vec<SyncConn> {
    let mut e = Encoder::new(1, 1472);
    for m in msgs {
        assert!(e.push(m));
    }
    let d = e.take().expect("a datagram");
    let got = decode(&d).expect("decodes");
    assert_eq!(got.syncid, 1);
    got.conns
}

fn install(p: &mut Pipeline, msgs: &[SyncConn], now: u64) -> Vec<SyncOutcome> {
    let link = SyncLink::default();
    msgs.iter().map(|m| p.install_synced(m, &link, now)).collect()
}

fn master() -> (Pipeline, Arc<SyncLink>) {
    let mut p = pipeline(&config_json(""));
    let link = Arc::new(SyncLink::default());
    p.set_sync_out(Some(link.clone()));
    (p, link)
}

/// Opens a NAT connection to port 80 from `sport`: SYN, the server's SYN-ACK, the client's
/// ACK; returns the real server MAC it went to.
fn open_nat(p: &mut Pipeline, sport: u16, now: u64) -> Vec<u8> {
    let (v, out) = run(p, &client(sport, 80, SYN), now);
    assert_eq!(v, Verdict::Tx(1));
    let rs = if out[0..6] == RS1_MAC { RS1 } else { RS2 };
    let synack = tcp_frame(RS1_MAC, DIR_R_MAC, rs, CLIENT, 8080, sport, SYNACK, 64, &[]);
    assert_eq!(run_on(p, &synack, 1, now).0, Verdict::Tx(0));
    assert_eq!(run(p, &client(sport, 80, ACK), now).0, Verdict::Tx(1));
    out[0..6].to_vec()
}

#[test]
fn a_master_syncs_at_the_third_packet_then_every_fiftieth_and_state_changes_at_once() {
    let (mut p, link) = master();
    open_nat(&mut p, 40000, 0);
    // SYN and ACK are packets 1 and 2: nothing yet.
    assert!(drain(&link).is_empty());
    assert_eq!(run(&mut p, &client(40000, 80, ACK), 1).0, Verdict::Tx(1));
    let m = drain(&link);
    assert_eq!(m.len(), 1, "packet 3");
    let m = m[0];
    assert_eq!(m.state, TcpState::Established as u16);
    assert_eq!(m.flags & sync_flags::FWD_MASK, sync_flags::MASQ);
    assert_eq!(m.flags & sync_flags::INACTIVE, 0);
    assert_eq!((m.cport, m.vport, m.dport, m.timeout_s), (40000, 80, 8080, 900));
    assert_eq!(m.caddr, u32::from_be_bytes(CLIENT));
    assert_eq!(m.vaddr, u32::from_be_bytes(VIP));
    for i in 4..=52 {
        run(&mut p, &client(40000, 80, ACK), i);
    }
    assert!(drain(&link).is_empty(), "packets 4..52");
    run(&mut p, &client(40000, 80, ACK), 53);
    assert_eq!(drain(&link).len(), 1, "packet 53");
    // The client's FIN: CLOSE_WAIT in IPVS's input table, sent at once.
    run(&mut p, &client(40000, 80, FINACK), 54);
    let m = drain(&link);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].state, TcpState::CloseWait as u16);
    assert_eq!(m[0].flags & sync_flags::INACTIVE, sync_flags::INACTIVE);
    // A half-open connection is never synced (SYN_RECV is not a synced state).
    for i in 0..5 {
        run(&mut p, &client(41000, 80, SYN), 60 + i);
    }
    assert!(drain(&link).is_empty());
    // Stopped: nothing is queued.
    p.set_sync_out(None);
    for i in 0..60 {
        run(&mut p, &client(40000, 80, ACK), 100 + i);
    }
    assert!(drain(&link).is_empty());
}

#[test]
fn a_backup_forwards_synced_nat_connections_to_the_same_server() {
    let (mut m, link) = master();
    assert_eq!(open_nat(&mut m, 40000, 0), RS1_MAC);
    assert_eq!(open_nat(&mut m, 40001, 0), RS2_MAC, "rr: the second connection goes to RS2");
    run(&mut m, &client(40001, 80, ACK), 1);
    let msgs = over_the_wire(&drain(&link));
    assert_eq!(msgs.len(), 1);
    let data = client(40001, 80, ACK);
    // Without sync, a backup taking over drops the connection's packets (rr needs a SYN).
    let mut cold = pipeline(&config_json(""));
    assert_eq!(run(&mut cold, &data, 10).0, Verdict::Drop(DropReason::NoConn));
    let mut b = pipeline(&config_json(""));
    assert_eq!(install(&mut b, &msgs, 10), vec![SyncOutcome::Done(xvs::conn::sync::Installed::Created)]);
    let (v, out_b) = run(&mut b, &data, 11);
    assert_eq!(v, Verdict::Tx(1));
    let (_, out_m) = run(&mut m, &data, 11);
    assert_eq!(out_b, out_m, "the backup rewrites exactly as the master does");
    assert_eq!(out_b[0..6], RS2_MAC);
    assert_checksums(&out_b);
    // The server's replies are un-NATed too.
    let reply = tcp_frame(RS2_MAC, DIR_R_MAC, RS2, CLIENT, 8080, 40001, ACK, 64, b"y");
    assert_eq!(run_on(&mut b, &reply, 1, 12), run_on(&mut m, &reply, 1, 12));
    // Established on the backup, with the message's timeout, and counted active.
    let c = b.shard.iter().map(|(_, c)| *c).find(|c| c.cport == 40001).unwrap();
    assert_eq!(c.tcp_state(), Some(TcpState::Established));
    assert!(!c.is_inactive());
    // Installed again: updated, not doubled.
    assert_eq!(install(&mut b, &msgs, 13), vec![SyncOutcome::Done(xvs::conn::sync::Installed::Updated)]);
    assert_eq!(b.shard.len(), 1);
    // A message naming another server but INACTIVE (a master's stale view): updated in place,
    // the server kept (`ip_vs_proc_conn`).
    let mut stale = msgs[0];
    stale.daddr = u32::from_be_bytes(RS1);
    stale.flags |= sync_flags::INACTIVE;
    assert_eq!(install(&mut b, &[stale], 13), vec![SyncOutcome::Done(xvs::conn::sync::Installed::Updated)]);
    assert_eq!(run(&mut b, &data, 13).1[0..6], RS2_MAC);
    // The master moved it to another server (a message naming RS1): replaced.
    let mut moved = msgs[0];
    moved.daddr = u32::from_be_bytes(RS1);
    assert_eq!(install(&mut b, &[moved], 14), vec![SyncOutcome::Done(xvs::conn::sync::Installed::Replaced)]);
    assert_eq!(run(&mut b, &data, 15).1[0..6], RS1_MAC);
}

#[test]
fn fullnat_keeps_the_masters_local_tuple_and_dr_its_server() {
    let (mut m, link) = master();
    for port in [81u16, 82] {
        assert_eq!(run(&mut m, &client(40000, port, SYN), 0).0, Verdict::Tx(1));
        assert_eq!(run(&mut m, &client(40000, port, ACK), 1).0, Verdict::Tx(1));
        assert_eq!(run(&mut m, &client(40000, port, ACK), 2).0, Verdict::Tx(1));
    }
    let sent = drain(&link);
    let fullnat = sent.iter().find(|c| c.vport == 81).copied().expect("FULLNAT synced");
    let dr = sent.iter().find(|c| c.vport == 82).copied().expect("DR synced");
    assert_eq!(fullnat.flags & sync_flags::FWD_MASK, sync_flags::MASQ);
    assert_eq!(fullnat.laddr, u32::from_be_bytes(DIP));
    assert!((20000..=20009).contains(&fullnat.lport));
    assert_eq!(dr.flags & sync_flags::FWD_MASK, sync_flags::DROUTE);
    assert_eq!(dr.lport, 0);
    let msgs = over_the_wire(&sent);
    assert_eq!(msgs, sent);
    let mut b = pipeline(&config_json(""));
    assert!(install(&mut b, &msgs, 5).iter().all(|o| matches!(o, SyncOutcome::Done(_))));
    for port in [81u16, 82] {
        let f = client(40000, port, ACK);
        assert_eq!(run(&mut b, &f, 6), run(&mut m, &f, 6), "port {port}");
    }
    // The real server answers the local tuple: the backup finds the connection by it.
    let reply = tcp_frame(RS1_MAC, DIR_R_MAC, RS1, DIP, 8081, fullnat.lport, ACK, 64, b"z");
    let (v, out) = run_on(&mut b, &reply, 1, 7);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(out, run_on(&mut m, &reply, 1, 7).1);
    // A new FULLNAT connection on the backup does not take the synced tuple.
    assert_eq!(run(&mut b, &client(40001, 81, SYN), 8).0, Verdict::Tx(1));
    let lports: Vec<u16> = b.shard.iter().filter(|(_, c)| c.vport == 81).map(|(_, c)| c.lport).collect();
    assert_eq!(lports.len(), 2);
    assert_ne!(lports[0], lports[1]);
}

/// A persistent service on port 443 (300 s) with two DR real servers.
const PERSISTENT_443: &str = r#", {"proto": "tcp", "vip": "198.18.0.100", "port": 443, "scheduler": "rr",
    "persistence_timeout": 300,
    "real_servers": [{"addr": "198.19.0.11", "mode": "dr"}, {"addr": "198.19.0.12", "mode": "dr"}]}"#;

/// A segment of another client (198.18.0.9:1000) to port 443.
fn other_client(t: Tcp) -> Vec<u8> {
    tcp_frame(CLIENT_MAC, DIR_C_MAC, [198, 18, 0, 9], VIP, 1000, 443, t, 64, &[])
}

#[test]
fn templates_ride_along_and_keep_new_connections_on_their_server() {
    let svc = PERSISTENT_443;
    let mut m = pipeline(&config_json(svc));
    let link = Arc::new(SyncLink::default());
    m.set_sync_out(Some(link.clone()));
    // A first client takes RS1; ours then takes RS2 and its template pins it there.
    let other = other_client(SYN);
    run(&mut m, &other, 0);
    for (i, t) in [SYN, ACK, ACK].into_iter().enumerate() {
        assert_eq!(run(&mut m, &client(40000, 443, t), i as u64).1[0..6], RS2_MAC);
    }
    let sent = drain(&link);
    assert_eq!(sent.len(), 2, "the connection and its template");
    let t = sent.iter().find(|c| c.is_template()).unwrap();
    assert_eq!((t.cport, t.vport, t.timeout_s, t.state), (0, 443, 300, 0));
    let mut b = pipeline(&config_json(svc));
    let created = SyncOutcome::Done(xvs::conn::sync::Installed::Created);
    assert_eq!(install(&mut b, &over_the_wire(&sent), 10), vec![created, created]);
    // A new connection of the same client, on the backup: the template sends it to RS2,
    // where rr alone would pick RS1.
    assert_eq!(run(&mut b, &client(40001, 443, SYN), 11).1[0..6], RS2_MAC);
    let mut cold = pipeline(&config_json(svc));
    assert_eq!(run(&mut cold, &client(40001, 443, SYN), 11).1[0..6], RS1_MAC);
}

#[test]
fn a_handed_over_template_expires_when_it_would_have_and_is_rearmed_with_the_persistence() {
    // A hitless restart hands over what each entry has left (`sync_all`). A template's time
    // left sets when it expires; what a new connection re-arms it with is still the
    // service's persistence timeout (it once took the 10 s left as its timeout too).
    let svc = PERSISTENT_443;
    let mut old = pipeline(&config_json(svc));
    let other = other_client(SYN);
    run(&mut old, &other, 0);
    assert_eq!(run(&mut old, &client(40000, 443, SYN), 0).1[0..6], RS2_MAC);
    // The other client's connection is established: its template is still followed.
    run(&mut old, &other_client(ACK), 1);
    // Ours (half-open) has expired by 290 s; its template has 10 s left.
    old.housekeeping(290_000, usize::MAX);
    let handed: Vec<SyncConn> = old.shard.sync_all(290_000).into_iter().filter(|m| m.is_template()).collect();
    let mine = handed.iter().find(|m| m.caddr == u32::from_be_bytes(CLIENT)).expect("our template");
    assert_eq!(mine.timeout_s, 10, "what it has left");
    // A followed template goes with 0: the next run, whose connections follow none, gives it
    // a whole timeout (here it would have lived as long as its connection).
    let followed = handed.iter().find(|m| m.caddr == u32::from_be_bytes([198, 18, 0, 9])).expect("the other");
    assert_eq!(followed.timeout_s, 0);
    let mut new = pipeline(&config_json(svc));
    let link = SyncLink { timeouts_left: true, ..SyncLink::default() };
    let created = SyncOutcome::Done(xvs::conn::sync::Installed::Created);
    assert_eq!(new.install_synced(mine, &link, 0), created);
    let template = |p: &Pipeline, now: u64| {
        p.shard.entries(now, 100).into_iter().find(|e| e.template && e.client.0.octets() == CLIENT).map(|e| e.expires_s)
    };
    assert_eq!(template(&new, 0), Some(10), "it expires when it would have");
    // A new connection of the client within those 10 s follows it to RS2 and re-arms it
    // for the persistence timeout.
    assert_eq!(run(&mut new, &client(40001, 443, SYN), 5_000).1[0..6], RS2_MAC);
    assert_eq!(template(&new, 5_000), Some(300), "re-armed with the service's persistence");
    let link2 = SyncLink { timeouts_left: true, ..SyncLink::default() };
    assert_eq!(new.install_synced(followed, &link2, 5_000), created);
    let other_t = |p: &Pipeline, now: u64| {
        p.shard
            .entries(now, 100)
            .into_iter()
            .find(|e| e.template && e.client.0.octets() == [198, 18, 0, 9])
            .map(|e| e.expires_s)
    };
    assert_eq!(other_t(&new, 5_000), Some(300), "a followed one: a whole timeout");
    // Installed again by live sync (the master's whole timeout), the same holds.
    let mut backup = pipeline(&config_json(svc));
    let live = SyncConn { timeout_s: 300, ..*mine };
    assert_eq!(install(&mut backup, &[live], 0), vec![created]);
    assert_eq!(template(&backup, 0), Some(300));
}

#[test]
fn messages_the_backup_cannot_place_are_counted_not_installed() {
    let (mut m, link) = master();
    open_nat(&mut m, 40000, 0);
    run(&mut m, &client(40000, 80, ACK), 1);
    let msg = drain(&link)[0];
    let link = SyncLink::default();
    let mut b = pipeline(&config_json(""));
    let mut no_svc = msg;
    no_svc.vport = 9999;
    let mut no_dest = msg;
    no_dest.daddr = u32::from_be_bytes([198, 19, 0, 99]);
    let mut udp_state = msg;
    udp_state.proto = 17;
    udp_state.vport = 53;
    udp_state.dport = 5353;
    udp_state.state = 0;
    assert_eq!(b.install_synced(&no_svc, &link, 5), SyncOutcome::NoService);
    assert_eq!(b.install_synced(&no_dest, &link, 5), SyncOutcome::NoDest);
    assert!(matches!(b.install_synced(&udp_state, &link, 5), SyncOutcome::Done(_)));
    assert_eq!(link.no_service.load(Ordering::Relaxed), 1);
    assert_eq!(link.no_dest.load(Ordering::Relaxed), 1);
    assert_eq!(link.created.load(Ordering::Relaxed), 1);
    assert_eq!(b.shard.len(), 1);
    // A FULLNAT message whose local tuple is outside the backup's range is refused.
    let mut far = msg;
    far.vport = 81;
    far.dport = 8081;
    far.laddr = u32::from_be_bytes(DIP);
    far.lport = 30000;
    assert_eq!(b.install_synced(&far, &link, 5), SyncOutcome::Refused);
}

#[test]
fn config_json_sync_daemons_are_checked_and_name_the_field() {
    use xvs::config::Config;
    let with = |sync: &str| {
        let base = config_json("");
        Config::parse(&base.replacen("\"services\": [", &format!("\"sync\": [{sync}],\n  \"services\": ["), 1))
    };
    let cfg = with(
        r#"{"state": "master", "mcast_interface": "xvs-r", "syncid": 7, "peers": ["198.19.0.3:8848"]},
                      {"state": "backup", "mcast_interface": "xvs-r", "syncid": 7, "mcast_port": 9000}"#,
    )
    .expect("valid");
    assert_eq!(cfg.sync.len(), 2);
    assert_eq!(cfg.sync[0].peers, vec!["198.19.0.3:8848".parse().unwrap()]);
    assert_eq!((cfg.sync[1].syncid, cfg.sync[1].port), (7, Some(9000)));
    for (sync, path, value) in [
        (r#"{"state": "primary", "mcast_interface": "x"}"#, "sync[0].state", "primary"),
        (r#"{"state": "master", "mcast_interface": "x", "syncid": 256}"#, "sync[0].syncid", "256"),
        (
            r#"{"state": "master", "mcast_interface": "x", "mcast_group": "10.0.0.1"}"#,
            "sync[0].mcast_group",
            "10.0.0.1",
        ),
        (r#"{"state": "master", "mcast_interface": "x", "peers": ["nowhere"]}"#, "sync[0].peers[0]", "nowhere"),
        (r#"{"state": "master", "mcast_interface": "x", "sync_maxlen": 20}"#, "sync[0].sync_maxlen", "20"),
        (
            r#"{"state": "master", "mcast_interface": "abcdefghijklmnopq"}"#,
            "sync[0].mcast_interface",
            "abcdefghijklmnopq",
        ),
        (
            r#"{"state": "master", "mcast_interface": "x"}, {"state": "master", "mcast_interface": "y"}"#,
            "sync[1].state",
            "master",
        ),
    ] {
        let e = with(sync).expect_err(sync).to_string();
        assert!(e.contains(path) && e.contains(value), "{sync}: {e}");
    }
}

/// A TCP connection message with small made-up fields (what the daemon tests carry).
fn some_conn() -> SyncConn {
    SyncConn { proto: 6, state: 1, caddr: 1, cport: 2, vaddr: 3, vport: 4, daddr: 5, dport: 6, ..Default::default() }
}

/// A master with unicast peers: what its workers queue reaches the peer within the flush
/// time, as one datagram the decoder reads back (no namespace needed: loopback).
#[test]
fn a_master_daemon_sends_queued_connections_to_its_unicast_peer() {
    use xvs::control::sync::SyncDaemon;
    use xvs::dataplane::Control;
    use xvs::model::{DaemonSpec, SyncRole};
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    peer.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let std::net::SocketAddr::V4(at) = peer.local_addr().unwrap() else { panic!() };
    let (tx, rx) = crossbeam_channel::bounded(4);
    let spec = DaemonSpec { syncid: 3, peers: vec![at], ..DaemonSpec::new(SyncRole::Master, "lo") };
    let d = SyncDaemon::start(&spec, &[tx]).expect("master starts on lo");
    let Ok(Control::SyncOut(Some(link))) = rx.recv() else { panic!("the worker is told to queue") };
    let m = SyncConn { timeout_s: 900, ..some_conn() };
    for i in 0..3 {
        link.queue.push(SyncConn { cport: i, ..m }).unwrap();
    }
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 2048];
    let n = peer.recv(&mut buf).expect("a datagram within 5 s");
    // Flushed after a second (not at once, not after the 5 s the peer would wait).
    assert!(t0.elapsed() < std::time::Duration::from_secs(4), "flushed within a second: {:?}", t0.elapsed());
    let got = decode(&buf[..n]).expect("decodes");
    assert_eq!(got.syncid, 3);
    assert_eq!(got.conns.iter().map(|c| c.cport).collect::<Vec<_>>(), vec![0, 1, 2]);
    // Counted once send_to returned: wait for it (bounded).
    let t1 = std::time::Instant::now();
    while !d.counters_line().contains("sent: 1 datagrams, 3 connections") {
        assert!(t1.elapsed() < std::time::Duration::from_secs(2), "{}", d.counters_line());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    d.stop();
    assert!(matches!(rx.recv(), Ok(Control::SyncOut(None))), "stopping tells the worker to stop queueing");
}

/// Directors behind ECMP agree on a flow's server only with deterministic schedulers: two
/// independently started pipelines (their own random seeds, as two processes have) pick the
/// same server for every flow with mh, sh and dh, and mh and sh pick it again for a
/// mid-connection segment they never saw the SYN of.
#[test]
fn mh_sh_and_dh_pick_alike_on_separately_started_directors() {
    for sched in ["mh", "sh", "dh"] {
        let svc = format!(
            r#", {{"proto": "tcp", "vip": "198.18.0.100", "port": 90, "scheduler": "{sched}",
                "real_servers": [{{"addr": "198.19.0.11", "mode": "dr"}}, {{"addr": "198.19.0.12", "mode": "dr"}}]}}"#
        );
        let (mut a, mut b) = (pipeline(&config_json(&svc)), pipeline(&config_json(&svc)));
        let mut on = [0usize; 2];
        for i in 0..600u32 {
            let src = [198, 18, (i >> 8) as u8 & 0x7f, i as u8];
            let sport = 1024 + (i * 7919 % 60000) as u16;
            let dst = if sched == "dh" { [198, 18, 0, 100] } else { VIP };
            let syn = tcp_frame(CLIENT_MAC, DIR_C_MAC, src, dst, sport, 90, SYN, 64, &[]);
            let (va, fa) = run(&mut a, &syn, i as u64);
            let (vb, fb) = run(&mut b, &syn, i as u64);
            assert_eq!((va, vb), (Verdict::Tx(1), Verdict::Tx(1)));
            assert_eq!(fa[0..6], fb[0..6], "{sched}: flow {i} picked differently");
            on[(fa[0..6] == RS2_MAC) as usize] += 1;
            if sched != "dh" {
                // A segment of the same flow at a third director that never saw its SYN.
                let mut c = pipeline(&config_json(&svc));
                let ack = tcp_frame(CLIENT_MAC, DIR_C_MAC, src, dst, sport, 90, ACK, 64, b"x");
                assert_eq!(run(&mut c, &ack, 0).1[0..6], fa[0..6], "{sched}: flow {i} by the hash");
            }
        }
        // dh hashes the destination (one VIP: one server); the others spread the flows.
        if sched != "dh" {
            assert!(on[0] > 180 && on[1] > 180, "{sched}: {on:?}");
        }
    }
}

/// A backup with `peers` takes datagrams only from those masters (loopback, no namespace).
#[test]
fn a_backup_with_peers_takes_datagrams_from_them_only() {
    use xvs::control::sync::SyncDaemon;
    use xvs::dataplane::Control;
    use xvs::model::{DaemonSpec, SyncRole};
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let spec = |peer: &str| DaemonSpec {
        port: Some(port),
        peers: vec![peer.parse().unwrap()],
        ..DaemonSpec::new(SyncRole::Backup, "lo")
    };
    let mut e = Encoder::new(0, 1472);
    e.push(&some_conn());
    let datagram = e.take().unwrap();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (peer, taken) in [("127.0.0.9:8848", false), ("127.0.0.1:8848", true)] {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let d = SyncDaemon::start(&spec(peer), &[tx]).expect("backup starts on lo");
        sender.send_to(&datagram, ("127.0.0.1", port)).unwrap();
        let got = rx.recv_timeout(std::time::Duration::from_secs(1));
        assert_eq!(matches!(got, Ok(Control::SyncIn(_, ref c)) if c.len() == 1), taken, "peer {peer}");
        if !taken {
            assert!(d.counters_line().contains("not from a master 1"), "{}", d.counters_line());
        }
        d.stop();
    }
}

/// Two workers on each director, the same `director.owner_seed`: every synced NAT and
/// FULLNAT connection is installed by exactly one backup worker, the one whose index owned it
/// on the master (so its client frames and its FULLNAT replies reach it there), and the
/// other refuses it as not its own. Loads follow: one active connection per message.
#[test]
fn with_a_shared_owner_seed_a_two_worker_backup_places_connections_as_the_master() {
    let json = config_json("")
        .replace("\"mtu\": 1500", "\"mtu\": 1500, \"workers\": 2, \"owner_seed\": \"5eed1234abcd\"")
        .replace("[20000, 20009]", "[20000, 20099]");
    let workers = |json: &str| -> Vec<Pipeline> {
        let cfg = xvs::config::Config::parse(json).expect("config");
        let t = Arc::new(xvs::control::tables_for(&cfg, None).expect("tables"));
        (0..2).map(|w| Pipeline::new(t.clone(), w)).collect()
    };
    let (mut master, mut backup) = (workers(&json), workers(&json));
    let link = Arc::new(SyncLink::default());
    for p in master.iter_mut() {
        p.set_sync_out(Some(link.clone()));
    }
    let mut owners = Vec::new();
    for (i, port) in [(0u16, 80u16), (1, 81)].iter().flat_map(|&(_, port)| (0..12u16).map(move |i| (i, port))) {
        let sport = 41000 + i;
        let key = xvs::conn::ConnKey {
            saddr: u32::from_be_bytes(CLIENT),
            daddr: u32::from_be_bytes(VIP),
            sport,
            dport: port,
            proto: 6,
        };
        let svc = master[0].tables().service(6, key.daddr, port);
        let w = (0..2).find(|&w| master[w].owner(&key, svc).is_none()).expect("an owner");
        for (j, t) in [SYN, ACK, ACK].into_iter().enumerate() {
            assert_eq!(run(&mut master[w], &client(sport, port, t), j as u64).0, Verdict::Tx(1));
        }
        owners.push((sport, port, w));
    }
    assert!(owners.iter().any(|o| o.2 == 0) && owners.iter().any(|o| o.2 == 1), "both workers own some");
    let msgs = over_the_wire(&drain(&link));
    assert_eq!(msgs.len(), owners.len());
    for m in &msgs {
        let w = owners.iter().find(|o| (o.0, o.1) == (m.cport, m.vport)).map(|o| o.2).expect("sent");
        let got: Vec<SyncOutcome> = (0..2).map(|b| install(&mut backup[b], &[*m], 5)[0]).collect();
        assert_eq!(got[w], SyncOutcome::Done(xvs::conn::sync::Installed::Created), "port {} from {}", m.vport, m.cport);
        assert_eq!(got[1 - w], SyncOutcome::NotMine);
    }
    // Without the shared seed (each director its own random one), a FULLNAT connection
    // whose client owner differs from its local port's owner has no worker to go to: about
    // half of them (12 here: all placed by chance once in 4096 runs).
    let mut own_seed = workers(&json.replace(", \"owner_seed\": \"5eed1234abcd\"", ""));
    let unplaced = msgs
        .iter()
        .filter(|m| m.vport == 81)
        .filter(|m| {
            (0..2).all(|b| {
                install(&mut own_seed[b], &[**m], 5)[0] != SyncOutcome::Done(xvs::conn::sync::Installed::Created)
            })
        })
        .count();
    assert!(unplaced > 0, "every FULLNAT connection placed without a shared seed");
    // The next segment of each connection, at the backup worker that owns it, goes where the
    // master sent it.
    for &(sport, port, w) in &owners {
        let f = client(sport, port, ACK);
        assert_eq!(run(&mut backup[w], &f, 6), run(&mut master[w], &f, 6), "port {port} from {sport}");
    }
    // Loads: each backup worker counts the connections it holds as active, once.
    for (b, p) in backup.iter().enumerate() {
        let held = owners.iter().filter(|o| o.2 == b).count() as u32;
        let active: u32 =
            (0..p.tables().services.len() as u16).flat_map(|s| p.shard.loads(s).to_vec()).map(|l| l.active).sum();
        assert_eq!(active, held, "worker {b}");
    }
}
