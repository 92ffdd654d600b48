//! A deterministic companion to `benches/pipeline.rs` for instruction counts: runs N frames of
//! established flows (F flows, random order) through the worker loop on the in-memory port.
//! `valgrind --tool=callgrind --toggle-collect='*Worker*poll*' target/release/examples/pipeline-insns 4096 100000 [dr|nat|fullnat|tun]`
//! then Ir / N = instructions per packet (the compute floor, independent of this VM's noise).
//! `tools/insns-check` runs it against `tools/insns-budget` in `tools/test`.
//!
//! Mode `syn-dr` (or `syn-nat`) is `new_conn/<mode>`'s SYN flood instead: every frame a new
//! connection, about F live (SYN_RECV lives 1 s of the port's virtual clock, F frames), so
//! expiry keeps pace with creation. It first runs 4F frames through the worker to reach that
//! steady state, counted too: `tools/insns-check` runs N and 2N frames and takes the
//! difference, which is the steady state's alone.

use etherparse::PacketBuilder;
use std::sync::Arc;
use xvs::config::Config;
use xvs::dataplane::{Frame, MemPort, Pipeline, Worker};

fn frame(i: usize, syn: bool, vport: u16) -> Vec<u8> {
    let a = 0xC612_0000u32 + (i as u32 % 131_072);
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4(a.to_be_bytes(), [198, 18, 0, 100], 64)
        .tcp(1024 + (i / 131_072) as u16, vport, 1, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut out = Vec::new();
    b.write(&mut out, &[]).expect("frame");
    out
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let flows = args.first().copied().unwrap_or(4096);
    let packets = args.get(1).copied().unwrap_or(100_000);
    let mode = std::env::args().nth(3).unwrap_or_default();
    let syn_flood = mode.starts_with("syn-");
    let vport = match mode.trim_start_matches("syn-") {
        "nat" => 80,
        "fullnat" => 81,
        "tun" => 83,
        _ => 82,
    };
    // The SYN flood's table: as `new_conn`'s, a quarter more room than the live connections.
    let max = if syn_flood { flows + flows / 4 } else { 2_000_000 };
    let json = r#"{"director": {"interfaces": [{"name": "c", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"},
        {"name": "r", "mac": "02:00:00:00:01:01", "ip": "198.19.0.1"}]},
        "neighbours": [{"ip": "198.19.0.11", "mac": "02:00:00:00:01:11", "interface": "r"},
                       {"ip": "198.19.0.12", "mac": "02:00:00:00:01:12", "interface": "r"}],
        "conn": {"max_per_worker": MAX TIMEOUTS},
        "services": [{"proto": "tcp", "vip": "198.18.0.100", "port": 82,
          "real_servers": [{"addr": "198.19.0.11", "mode": "dr"}, {"addr": "198.19.0.12", "mode": "dr"}]},
          {"proto": "tcp", "vip": "198.18.0.100", "port": 80,
          "real_servers": [{"addr": "198.19.0.11", "mode": "nat"}, {"addr": "198.19.0.12", "mode": "nat"}]},
          {"proto": "tcp", "vip": "198.18.0.100", "port": 81,
          "real_servers": [{"addr": "198.19.0.11", "mode": "fullnat"}, {"addr": "198.19.0.12", "mode": "fullnat"}]},
          {"proto": "tcp", "vip": "198.18.0.100", "port": 83,
          "real_servers": [{"addr": "198.19.0.11", "mode": "tun"}, {"addr": "198.19.0.12", "mode": "tun"}]}]}"#;
    let timeouts = if syn_flood { r#", "timeouts": {"tcp_syn_recv": 1}"# } else { "" };
    let cfg = Config::parse(&json.replace("MAX", &max.to_string()).replace("TIMEOUTS", timeouts)).expect("config");
    let mut p = Pipeline::new(Arc::new(xvs::control::tables_for(&cfg, None).expect("tables")), 0);
    if syn_flood {
        return syn_flood_run(p, flows, packets, vport);
    }
    let mut buf = vec![0u8; 2048];
    for i in 0..flows {
        for syn in [true, false] {
            let f = frame(i, syn, vport);
            buf[256..256 + f.len()].copy_from_slice(&f);
            p.process(&mut Frame::new(&mut buf, 256, f.len()), 0, 0);
        }
    }
    // A fixed pseudo-random order (xorshift), the same every run.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let ring: Vec<Vec<u8>> = (0..flows.min(packets))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            frame((x % flows as u64) as usize, false, vport)
        })
        .collect();
    let mut w = Worker::new(
        0,
        p,
        vec![MemPort::looping(ring), MemPort::looping(Vec::new())],
        xvs::dataplane::FramePool::new(4096),
        None,
    );
    let mut done = 0;
    while done < packets {
        if let xvs::dataplane::Poll::Busy(n) = w.poll() {
            done += n;
        }
    }
    eprintln!("{} frames, {} forwarded, {} dropped", done, w.pipeline.stats.tx_frames, w.pipeline.stats.total_drops());
}

/// `new_conn`'s SYN flood: 2F distinct flows in a ring, so that a flow comes round only after
/// its connection expired; one frame every 1/F s of virtual time, so that about F live.
fn syn_flood_run(p: Pipeline, flows: usize, packets: usize, vport: u16) {
    let ring: Vec<Vec<u8>> = (0..2 * flows).map(|i| frame(i, true, vport)).collect();
    let mut rx = MemPort::looping(ring);
    rx.ns_per_frame = Some(1_000_000_000 / flows as u64);
    let mut w = Worker::new(0, p, vec![rx, MemPort::looping(Vec::new())], xvs::dataplane::FramePool::new(4096), None);
    let mut done = 0;
    while done < 4 * flows + packets {
        if let xvs::dataplane::Poll::Busy(n) = w.poll() {
            done += n;
        }
    }
    let (s, shard) = (&w.pipeline.stats, &w.pipeline.shard);
    eprintln!(
        "{done} frames, {} forwarded, {} dropped, {} connections created, {} live",
        s.tx_frames,
        s.total_drops(),
        shard.stats.created,
        shard.len()
    );
    // Counted only as the flood it claims to be: every frame a new connection, none refused
    // (a path that drops them would count cheap and pass its budget).
    assert_eq!(s.total_drops(), 0, "a SYN refused");
    assert_eq!(shard.stats.created, done as u64, "a frame that made no connection");
}
