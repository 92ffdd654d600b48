//! The connection shard alone with 1M entries: lookups of random flows one at a time and a
//! burst at a time, and insert+expire at steady state.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::hint::black_box;
use std::sync::Arc;
use xvs::conn::{ConnKey, ConnShard, NewConn, ShardConfig, SlotSpec, NONE};
use xvs::dataplane::Pipeline;
use xvs::model::FwdMode;

const N: u32 = 1 << 20;

fn key(i: u32) -> ConnKey {
    ConnKey {
        saddr: 0xC612_0000 + (i % 131_072),
        daddr: 0xC612_0064,
        sport: 1024 + (i / 131_072) as u16,
        dport: 80,
        proto: 6,
    }
}

fn new(i: u32) -> NewConn {
    NewConn {
        key: key(i),
        daddr: 0xC613_000B,
        dport: 80,
        mode: FwdMode::Nat,
        laddr: 0,
        svc: 0,
        dest: 0,
        template: NONE,
    }
}

fn shard(cap: u32) -> ConnShard {
    let mut s = ConnShard::new(&ShardConfig { capacity: cap, ..ShardConfig::default() });
    s.set_service(0, &[0], &[SlotSpec { weight: 1, ..SlotSpec::default() }]);
    s.start_clock(0);
    s
}

/// Transparent huge pages backing this process (the table is random access over tens of MB).
pub fn anon_huge() -> String {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages"))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_default()
}

/// The hashes of a burst of keys (the pipeline's first stage).
fn hashes(s: &ConnShard, ks: &[ConnKey]) -> [u64; 32] {
    let mut h = [0u64; 32];
    for (h, k) in h.iter_mut().zip(ks) {
        *h = s.hash(k);
    }
    h
}

fn bench(c: &mut Criterion) {
    let mut s = shard(N + N / 8);
    for i in 0..N {
        s.create(&new(i), 0).expect("room");
    }
    let mut order: Vec<u32> = (0..N).collect();
    order.shuffle(&mut SmallRng::seed_from_u64(1));
    let keys: Vec<ConnKey> = order.iter().map(|&i| key(i)).collect();
    eprintln!("GLIBC_TUNABLES={:?}; {}", std::env::var("GLIBC_TUNABLES").ok(), anon_huge());

    let mut g = c.benchmark_group("conn_1M");
    g.throughput(Throughput::Elements(1));
    let mut at = 0usize;
    g.bench_function("lookup_hit", |b| {
        b.iter(|| {
            let k = &keys[at];
            at = (at + 1) & (N as usize - 1);
            black_box(s.lookup_in(k, s.hash(k)))
        })
    });
    g.throughput(Throughput::Elements(32));
    at = 0;
    g.bench_function("lookup_hit_burst32", |b| {
        b.iter(|| {
            let ks = &keys[at..at + 32];
            at = (at + 32) & (N as usize - 1);
            let h = hashes(&s, ks);
            let mut found = 0u32;
            for (i, k) in ks.iter().enumerate() {
                found += s.lookup_in(k, h[i]).is_some() as u32;
            }
            black_box(found)
        })
    });
    at = 0;
    g.bench_function("lookup_in_burst32", |b| {
        b.iter(|| {
            let ks = &keys[at..at + 32];
            at = (at + 32) & (N as usize - 1);
            let h = hashes(&s, ks);
            // The pipeline's stages: probe every key's tag, then verify every record.
            let mut out = [0u32; 32];
            for (o, h) in out.iter_mut().zip(h.iter()) {
                *o = s.probe_in(*h);
            }
            for (o, k) in out.iter_mut().zip(ks.iter()) {
                if !s.is_in(*o, k) {
                    *o = NONE;
                }
            }
            black_box(out)
        })
    });
    at = 0;
    g.bench_function("probe_only_burst32", |b| {
        b.iter(|| {
            let ks = &keys[at..at + 32];
            at = (at + 32) & (N as usize - 1);
            let h = hashes(&s, ks);
            let mut out = [0u32; 32];
            for (o, h) in out.iter_mut().zip(h.iter()) {
                *o = s.probe_in(*h);
            }
            black_box(out)
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("lookup_miss", |b| {
        b.iter(|| {
            let mut k = keys[at];
            k.dport = 81;
            at = (at + 1) & (N as usize - 1);
            black_box(s.lookup_in(&k, s.hash(&k)))
        })
    });
    drop(s);

    // Steady state at 1M: every insert is matched by an expiry (UDP-less TCP NONE state
    // lives 2 s; 2 us of virtual time per insert keeps ~1M live).
    let mut s = shard(N + N / 4);
    let mut i = 0u32;
    let mut now_ns = 0u64;
    let step = 2_000u64;
    while i < 2 * N {
        s.create(&new(i), now_ns / 1_000_000).expect("room");
        s.expire(now_ns / 1_000_000, 64);
        i += 1;
        now_ns += step;
    }
    g.bench_function("insert_and_expire", |b| {
        b.iter(|| {
            let r = s.create(&new(i), now_ns / 1_000_000);
            s.expire(now_ns / 1_000_000, 64);
            i = i.wrapping_add(1);
            now_ns += step;
            black_box(r.is_ok())
        })
    });
    eprintln!("insert_and_expire: {} live at the end", s.len());
    g.finish();
}

/// A director config with one NAT service over these real servers (last address bytes).
fn nat_config(servers: &[u8]) -> xvs::config::Config {
    let rs: Vec<String> =
        servers.iter().map(|l| format!(r#"{{"addr": "198.19.0.{l}", "port": 8080, "mode": "nat"}}"#)).collect();
    let json = format!(
        r#"{{"director": {{"interfaces": [{{"name": "a", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"}}]}},
            "conn": {{"max_per_worker": {N}}},
            "services": [{{"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "wrr",
                          "real_servers": [{}]}}]}}"#,
        rs.join(",")
    );
    xvs::config::Config::parse(&json).expect("config")
}

/// Switching a worker to a new tables snapshot with 1M connections in its shard: the pause
/// it takes at the batch boundary. The snapshots alternate between a list of two servers and
/// the same two swapped behind a new head server (every connection's server moves in the
/// list), each built against the last as the director does. Stable slots make this
/// O(servers); before them every connection was walked (10.1 ms).
fn switch_tables(c: &mut Criterion) {
    let a = Arc::new(xvs::control::tables_for(&nat_config(&[11, 12]), None).expect("tables"));
    let mut p = Pipeline::new(a.clone(), 0);
    for i in 0..N {
        let mut n = new(i);
        n.dest = (i % 2) as u16;
        p.shard.create(&n, 0).expect("fits");
    }
    let b = Arc::new(xvs::control::tables_for(&nat_config(&[13, 12, 11]), Some(&a)).expect("tables"));
    let a2 = Arc::new(xvs::control::tables_for(&nat_config(&[11, 12]), Some(&b)).expect("tables"));
    let mut g = c.benchmark_group("conn");
    g.sample_size(20);
    let mut flip = false;
    g.bench_function("reconfig_1m_switch", |bench| {
        bench.iter(|| {
            flip = !flip;
            p.set_tables(if flip { b.clone() } else { a2.clone() });
        })
    });
    assert_eq!(p.shard.len(), N, "nothing removed");
    g.finish();
}

criterion_group! {
    name = reconfig;
    config = Criterion::default().warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(5));
    targets = switch_tables
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches, reconfig);
