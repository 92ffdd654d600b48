//! A deterministic companion to `benches/pipeline.rs` for instruction counts: runs N frames of
//! established flows (F flows, random order) through the worker loop on the in-memory port.
//! `valgrind --tool=callgrind --toggle-collect='*Worker*poll*' target/release/examples/pipeline-insns 4096 100000 [dr|nat|fullnat]`
//! then Ir / N = instructions per packet (the compute floor, independent of this VM's noise).
//! `tools/insns-check` runs it against `tools/insns-budget` in `tools/test`.

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
    let vport = match std::env::args().nth(3).as_deref() {
        Some("nat") => 80,
        Some("fullnat") => 81,
        _ => 82,
    };
    let json = r#"{"director": {"interfaces": [{"name": "c", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"},
        {"name": "r", "mac": "02:00:00:00:01:01", "ip": "198.19.0.1"}]},
        "neighbours": [{"ip": "198.19.0.11", "mac": "02:00:00:00:01:11", "interface": "r"},
                       {"ip": "198.19.0.12", "mac": "02:00:00:00:01:12", "interface": "r"}],
        "conn": {"max_per_worker": 2000000},
        "services": [{"proto": "tcp", "vip": "198.18.0.100", "port": 82,
          "real_servers": [{"addr": "198.19.0.11", "mode": "dr"}, {"addr": "198.19.0.12", "mode": "dr"}]},
          {"proto": "tcp", "vip": "198.18.0.100", "port": 80,
          "real_servers": [{"addr": "198.19.0.11", "mode": "nat"}, {"addr": "198.19.0.12", "mode": "nat"}]},
          {"proto": "tcp", "vip": "198.18.0.100", "port": 81,
          "real_servers": [{"addr": "198.19.0.11", "mode": "fullnat"}, {"addr": "198.19.0.12", "mode": "fullnat"}]}]}"#;
    let cfg = Config::parse(json).expect("config");
    let mut p = Pipeline::new(Arc::new(xvs::control::tables_for(&cfg, None).expect("tables")), 0);
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
