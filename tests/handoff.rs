//! Connection ownership with several workers, without namespaces: two workers in one thread
//! over in-memory ports and the real handoff rings. Whatever worker a frame arrives at, the
//! owner handles it: the client endpoint's worker for NAT, the local port's for FULLNAT.

mod common;
use common::*;
use std::sync::Arc;
use xvs::config::Config;
use xvs::dataplane::pipeline::client_owner;
use xvs::dataplane::{FramePool, Handoff, MemPort, Pipeline, Tables, Worker};

fn workers(json: &str) -> (Vec<Worker<MemPort>>, Arc<Tables>) {
    let cfg = Config::parse(&json.replace("\"mtu\": 1500", "\"mtu\": 1500, \"workers\": 2")).expect("config");
    let tables = Arc::new(xvs::control::tables_for(&cfg, None).expect("tables"));
    let h = Arc::new(Handoff::new(2, 64));
    let ws = (0..2u16)
        .map(|w| {
            let ports = vec![MemPort::capturing(), MemPort::capturing()];
            let mut worker = Worker::new(w, Pipeline::new(tables.clone(), w), ports, FramePool::new(256), None);
            worker.set_handoff(h.clone());
            worker
        })
        .collect();
    (ws, tables)
}

/// Polls both workers until neither has anything left.
fn settle(ws: &mut [Worker<MemPort>]) {
    for _ in 0..8 {
        for w in ws.iter_mut() {
            w.poll();
        }
    }
}

/// A client port whose connections worker `owner` owns.
fn port_owned_by(ws: &[Worker<MemPort>], owner: u16) -> u16 {
    let c = u32::from_be_bytes(CLIENT);
    let seed = ws[0].pipeline.tables().owner_seed;
    (40000..).find(|p| client_owner(c, *p, 2, seed) == owner).expect("a port")
}

#[test]
fn nat_frames_reach_the_client_endpoints_owner_from_either_worker() {
    let (mut ws, _) = workers(&config_json(""));
    let sport = port_owned_by(&ws, 1);
    // The SYN arrives at worker 0, which hands it over; worker 1 forwards it.
    let syn = tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, 80, SYN, 64, &[]);
    ws[0].ports[0].push_rx(syn);
    settle(&mut ws);
    assert_eq!(ws[0].pipeline.stats.handoff_out, 1);
    assert_eq!(ws[1].pipeline.stats.handoff_in, 1);
    assert_eq!(ws[0].ports[1].tx.len(), 0);
    let fwd = ws[1].ports[1].tx.pop().expect("worker 1 forwards the SYN to a real server");
    assert_checksums(&fwd);
    assert_eq!(&fwd[30..34], &RS1, "to the first real server");
    // The reply arrives at worker 0 too (another queue): handed to worker 1, which owns it.
    let synack = tcp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 8080, sport, SYNACK, 64, &[]);
    ws[0].ports[1].push_rx(synack);
    settle(&mut ws);
    let back = ws[1].ports[0].tx.pop().expect("worker 1 forwards the reply to the client");
    assert_checksums(&back);
    assert_eq!((&back[26..30], &back[34..36]), (&VIP[..], &80u16.to_be_bytes()[..]), "source rewritten to the VIP");
    assert_eq!(ws[0].pipeline.stats.handoff_out, 2);
    assert_eq!(ws[1].pipeline.stats.handoff_in, 2);
    assert_eq!(ws[0].pipeline.shard.len(), 0, "worker 0 keeps no state for it");
    for w in &ws {
        assert_eq!(w.report().lost(), 0);
    }
}

#[test]
fn fullnat_replies_go_to_the_worker_that_owns_the_local_port() {
    let (mut ws, tables) = workers(&config_json(""));
    let sport = port_owned_by(&ws, 0);
    ws[0].ports[0].push_rx(tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, 81, SYN, 64, &[]));
    settle(&mut ws);
    let fwd = ws[0].ports[1].tx.pop().expect("worker 0 forwards");
    let lport = u16::from_be_bytes([fwd[34], fwd[35]]);
    let (lo, _) = tables.lport_range;
    assert_eq!((lport - lo) % 2, 0, "worker 0's local ports");
    // The server's reply lands on worker 1's queue: handed back to worker 0.
    ws[1].ports[1].push_rx(tcp_frame(RS1_MAC, DIR_R_MAC, RS1, DIP, 8081, lport, SYNACK, 64, &[]));
    settle(&mut ws);
    assert_eq!(ws[1].pipeline.stats.handoff_out, 1);
    let back = ws[0].ports[0].tx.pop().expect("worker 0 forwards the reply");
    assert_checksums(&back);
    assert_eq!((&back[30..34], u16::from_be_bytes([back[36], back[37]])), (&CLIENT[..], sport));
}

#[test]
fn dr_and_tun_stay_where_they_arrive_and_a_full_ring_is_counted() {
    let (mut ws, _) = workers(&config_json(""));
    let sport = port_owned_by(&ws, 1);
    ws[0].ports[0].push_rx(tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, 82, SYN, 64, &[]));
    settle(&mut ws);
    assert_eq!(ws[0].pipeline.stats.handoff_out, 0, "DR: no replies come back, no owner needed");
    assert_eq!(ws[0].ports[1].tx.len(), 1);
    // 64 buffers in worker 1's ring: 100 frames for it overflow it while it does not poll.
    let c = u32::from_be_bytes(CLIENT);
    let seed = ws[0].pipeline.tables().owner_seed;
    for p in (30000..).filter(|p| client_owner(c, *p, 2, seed) == 1).take(100) {
        ws[0].ports[0].push_rx(tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, p, 80, SYN, 64, &[]));
    }
    for _ in 0..8 {
        ws[0].poll();
    }
    let s = &ws[0].pipeline.stats;
    assert!(s.handoff_full > 0, "a full ring is counted, not blocked on");
    assert_eq!(s.handoff_out, 100, "every SYN was for worker 1");
    settle(&mut ws);
    assert_eq!(ws[1].pipeline.stats.handoff_in, ws[0].pipeline.stats.handoff_out - ws[0].pipeline.stats.handoff_full);
    assert_eq!(ws[0].report().lost(), 0);
}

#[test]
fn later_fragments_and_icmp_errors_follow_their_connection_to_its_owner() {
    let (mut ws, _) = workers(&config_json(""));
    let sport = port_owned_by(&ws, 1);
    // A fragmented UDP datagram to the NAT service, all of it arriving at worker 0 (a NIC
    // hashes fragments by addresses alone): the first is handed to worker 1, which owns
    // the client endpoint, and the later ones follow it there.
    let big = udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, 53, 64, &[5u8; 3000]);
    let frags = fragments(&big, 77, 1480);
    assert_eq!(frags.len(), 3);
    for f in &frags {
        ws[0].ports[0].push_rx(f.clone());
    }
    settle(&mut ws);
    assert_eq!(ws[0].ports[1].tx.len(), 0, "worker 0 forwards nothing itself");
    let out: Vec<Vec<u8>> = std::iter::from_fn(|| ws[1].ports[1].tx.pop()).collect();
    assert_eq!(out.len(), 3, "worker 1 forwards every fragment");
    for f in &out {
        assert_eq!(&f[30..34], &RS1, "to the datagram's real server");
    }
    assert_eq!(ws[1].pipeline.stats.frag_followed, 2);
    // A TCP connection owned by worker 1, and an ICMP "fragmentation needed" about its
    // reply arriving at worker 0: relayed by worker 1 to the real server.
    ws[0].ports[0].push_rx(tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, 80, SYN, 64, &[]));
    settle(&mut ws);
    assert!(ws[1].ports[1].tx.pop().is_some(), "the SYN is forwarded");
    let reply = tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 80, sport, ACK, 63, &[1u8; 1400]);
    let err = frag_needed(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 1280, &reply[14..14 + 28]);
    ws[0].ports[0].push_rx(err);
    settle(&mut ws);
    assert_eq!(ws[1].pipeline.stats.icmp_relayed, 1, "the owner relays it");
    let relayed = ws[1].ports[1].tx.pop().expect("to the real server");
    assert_checksums(&relayed);
    assert_eq!(&relayed[30..34], &RS1, "addressed to the real server");
    assert_eq!(ws[0].pipeline.stats.icmp_relayed, 0);
    for w in &ws {
        assert_eq!(w.report().lost(), 0);
    }
}

#[test]
fn a_frame_handed_over_is_never_handed_on_again() {
    // Two workers that disagree about the owner (as for a moment while they switch to a new
    // snapshot): worker 0 thinks worker 1 owns the client port, worker 1 thinks worker 2 does.
    let json = config_json("");
    let with_workers = |n: u32, prev: Option<&xvs::dataplane::Tables>| {
        let cfg =
            Config::parse(&json.replace("\"mtu\": 1500", &format!("\"mtu\": 1500, \"workers\": {n}"))).expect("config");
        Arc::new(xvs::control::tables_for(&cfg, prev).expect("tables"))
    };
    // The second snapshot follows the first, keeping its owner seed, as a reconfiguration does.
    let two = with_workers(2, None);
    let three = with_workers(3, Some(&two));
    assert_eq!(two.owner_seed, three.owner_seed);
    let (c, seed) = (u32::from_be_bytes(CLIENT), two.owner_seed);
    let sport =
        (40000..).find(|p| client_owner(c, *p, 2, seed) == 1 && client_owner(c, *p, 3, seed) == 2).expect("a port");
    let h = Arc::new(Handoff::new(2, 64));
    let mut ws: Vec<Worker<MemPort>> = [(0u16, two), (1, three)]
        .into_iter()
        .map(|(w, t)| {
            let ports = vec![MemPort::capturing(), MemPort::capturing()];
            let mut worker = Worker::new(w, Pipeline::new(t, w), ports, FramePool::new(256), None);
            worker.set_handoff(h.clone());
            worker
        })
        .collect();
    ws[0].ports[0].push_rx(tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, sport, 80, SYN, 64, &[]));
    settle(&mut ws);
    assert_eq!(ws[0].pipeline.stats.handoff_out, 1);
    assert_eq!(ws[1].pipeline.stats.dropped(xvs::dataplane::DropReason::HandoffLoop), 1, "dropped, not bounced");
    assert_eq!(ws[0].pipeline.stats.handoff_in, 0);
    for w in &ws {
        assert_eq!(w.report().lost(), 0);
    }
}

/// The owner hash is seeded at random when the director starts (a flood cannot be aimed at
/// one worker by choosing sources) and keeps its seed across reconfigurations (connections
/// stay with their owner).
#[test]
fn the_owner_hash_is_seeded_per_start_and_kept_across_snapshots() {
    let cfg =
        Config::parse(&config_json("").replace("\"mtu\": 1500", "\"mtu\": 1500, \"workers\": 4")).expect("config");
    let a = xvs::control::tables_for(&cfg, None).expect("tables");
    let b = xvs::control::tables_for(&cfg, None).expect("tables");
    assert_ne!(a.owner_seed, b.owner_seed, "two starts, two seeds");
    assert_eq!(xvs::control::tables_for(&cfg, Some(&a)).expect("tables").owner_seed, a.owner_seed);
    // The same 4096 sources spread differently under the two seeds, and evenly under each.
    let c = u32::from_be_bytes(CLIENT);
    let spread = |seed| {
        let mut n = [0u32; 4];
        for p in 0..4096u16 {
            n[client_owner(c, 10000 + p, 4, seed) as usize] += 1;
        }
        n
    };
    let (sa, sb) = (spread(a.owner_seed), spread(b.owner_seed));
    assert!(sa.iter().chain(sb.iter()).all(|&k| (900..=1150).contains(&k)), "{sa:?} {sb:?}");
    let moved = (0..4096u16)
        .filter(|p| client_owner(c, 10000 + p, 4, a.owner_seed) != client_owner(c, 10000 + p, 4, b.owner_seed))
        .count();
    assert!(moved > 2500, "{moved} of 4096 sources change worker with the seed");
}
