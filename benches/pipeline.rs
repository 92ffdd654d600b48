//! The full pipeline on the in-memory port (rx copy into the frame pool, parse, lookup,
//! schedule, rewrite, tx), per forwarding mode:
//! - `established/<mode>`: a table holding 1M flows, packets in random flow order;
//! - `new_conn/<mode>`: a SYN flood, every packet a new flow, the table in steady state
//!   (connections expire as fast as they are created: ~1M live, FULLNAT ~50k, bounded by its
//!   local ports), expiry cost included.
//!
//! Throughput is per packet (one iteration = one 32-frame burst).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etherparse::PacketBuilder;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::sync::Arc;
use xvs::config::Config;
use xvs::dataplane::{MemPort, Pipeline, Worker, BURST};

/// Flows in the table (1M; `XVS_BENCH_FLOWS` overrides it to find the in-cache floor).
fn flows() -> usize {
    std::env::var("XVS_BENCH_FLOWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20)
}
const VIP: [u8; 4] = [198, 18, 0, 100];

fn config(max: usize, syn_recv: u32) -> Config {
    let rs = |mode: &str, port: u16| {
        (11..15)
            .map(|i| format!(r#"{{"addr": "198.19.0.{i}", "port": {port}, "mode": "{mode}"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    let neigh = (11..15)
        .map(|i| format!(r#"{{"ip": "198.19.0.{i}", "mac": "02:00:00:00:01:{i:02x}", "interface": "r"}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let json = format!(
        r#"{{"director": {{"interfaces": [{{"name": "c", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"}},
              {{"name": "r", "mac": "02:00:00:00:01:01", "ip": "198.19.0.1"}}], "local_ports": [1024, 65535]}},
            "neighbours": [{neigh}], "gateway": {{"mac": "02:00:00:00:00:fe", "interface": "c"}},
            "conn": {{"max_per_worker": {max}, "timeouts": {{"tcp_syn_recv": {syn_recv}}}}},
            "services": [
              {{"proto": "tcp", "vip": "198.18.0.100", "port": 80, "real_servers": [{}]}},
              {{"proto": "tcp", "vip": "198.18.0.100", "port": 81, "real_servers": [{}]}},
              {{"proto": "tcp", "vip": "198.18.0.100", "port": 82, "real_servers": [{}]}},
              {{"proto": "tcp", "vip": "198.18.0.100", "port": 83, "real_servers": [{}]}}]}}"#,
        rs("nat", 8080),
        rs("fullnat", 8080),
        rs("dr", 82),
        rs("tun", 83)
    );
    Config::parse(&json).expect("bench config")
}

/// Flow i: a client in 198.18.0.0/15 and a source port.
fn client(i: usize) -> ([u8; 4], u16) {
    let a = 0xC612_0000u32 + (i as u32 % 131_072);
    (a.to_be_bytes(), 1024 + (i / 131_072) as u16)
}

fn frame(i: usize, vport: u16, syn: bool, payload: usize) -> Vec<u8> {
    let (src, sport) = client(i);
    let b =
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]).ipv4(src, VIP, 64).tcp(sport, vport, 1, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut out = Vec::new();
    b.write(&mut out, &vec![0x42; payload]).expect("frame");
    out
}

fn worker(ring: Vec<Vec<u8>>, p: Pipeline, ns_per_frame: Option<u64>) -> Worker<MemPort> {
    let mut rx = MemPort::looping(ring);
    rx.ns_per_frame = ns_per_frame;
    Worker::new(0, p, vec![rx, MemPort::looping(Vec::new())], xvs::dataplane::FramePool::new(4096), None)
}

/// Whether a benchmark id is selected by the command line's filter (setup is expensive:
/// only build what runs).
fn selected(id: &str) -> bool {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
}

fn modes() -> [(&'static str, u16); 4] {
    [("nat", 80), ("fullnat", 81), ("dr", 82), ("tun", 83)]
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("established");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut rng = SmallRng::seed_from_u64(7);
    for (mode, vport) in modes() {
        if !selected(&format!("established/{mode}")) {
            continue;
        }
        let cfg = config(flows() + flows() / 8, 60);
        let tables = Arc::new(xvs::control::tables_for(&cfg, None).expect("tables"));
        let mut p = Pipeline::new(tables, 0);
        // FULLNAT holds at most one connection per local port: fill the rest of the 1M-entry
        // table with DR flows so lookups still run against 1M entries.
        let measured = if mode == "fullnat" { flows().min(60_000) } else { flows() };
        let mut buf = vec![0u8; 2048];
        for i in 0..flows() {
            let port = if i < measured { vport } else { 82 };
            for syn in [true, false] {
                let f = frame(i, port, syn, 0);
                buf[256..256 + f.len()].copy_from_slice(&f);
                let mut fr = xvs::dataplane::Frame::new(&mut buf, 256, f.len());
                p.process(&mut fr, 0, 0);
            }
        }
        assert_eq!(p.shard.len() as usize, flows(), "{mode}: table holds every flow");
        let mut order: Vec<usize> = (0..measured).collect();
        order.shuffle(&mut rng);
        // `XVS_BENCH_RING=N`: a ring of N frames over the flows in that order instead of one
        // frame a flow (N = 4096 with 1M flows: the table at full size but the records the
        // ring touches in cache; to tell the table's misses from the frames').
        let ring_len = match std::env::var("XVS_BENCH_RING") {
            Ok(v) => v.parse().ok().filter(|&n: &usize| n > 0).expect("XVS_BENCH_RING: a number of frames, 1 or more"),
            Err(_) => order.len(),
        };
        let ring: Vec<Vec<u8>> = (0..ring_len).map(|j| frame(order[j % order.len()], vport, false, 0)).collect();
        let mut w = worker(ring, p, None);
        g.bench_function(BenchmarkId::from_parameter(mode), |b| b.iter(|| w.poll()));
        let s = &w.pipeline.stats;
        assert_eq!(s.total_drops(), 0, "{mode}: nothing dropped");
        eprintln!("established/{mode}: {} frames forwarded, table {} entries", s.tx_frames, w.pipeline.shard.len());
    }
    g.finish();
}

fn new_conn(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_conn");
    g.throughput(Throughput::Elements(BURST as u64));
    for (mode, vport) in modes() {
        if !selected(&format!("new_conn/{mode}")) {
            continue;
        }
        // SYN_RECV lives 1 s of virtual time; 1 us per frame -> ~1M live connections
        // (FULLNAT: 20 us per frame -> ~50k, within its 64k local ports).
        let ns = if mode == "fullnat" { 20_000 } else { 1_000 };
        let cfg = config(flows() + flows() / 4, 1);
        let p = Pipeline::new(Arc::new(xvs::control::tables_for(&cfg, None).expect("tables")), 0);
        // Twice as many distinct flows as live connections: a flow comes round only after its
        // connection expired, so every packet is a new connection.
        let ring: Vec<Vec<u8>> = (0..2 * flows()).map(|i| frame(i, vport, true, 0)).collect();
        let mut w = worker(ring, p, Some(ns));
        // Reach steady state before measuring.
        for _ in 0..(2 * flows() / BURST) {
            w.poll();
        }
        g.bench_function(BenchmarkId::from_parameter(mode), |b| b.iter(|| w.poll()));
        let s = &w.pipeline.stats;
        assert_eq!(s.total_drops(), 0, "{mode}: no SYN refused");
        eprintln!(
            "new_conn/{mode}: {} connections created, {} live",
            w.pipeline.shard.stats.created,
            w.pipeline.shard.len()
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(4));
    targets = established, new_conn
}
criterion_main!(benches);
