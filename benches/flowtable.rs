//! The flow index side by side with what it replaced, in one run: `xvs::conn::flowtable`
//! against hashbrown's `HashTable<u32>` (sized as the shard sized it, for twice the entries),
//! both over the same 1M keys and hashes, keys compared in a separate array as the shard
//! compares them in its slab.
//!
//! - `lookup/*`: random order, one at a time (every lookup a cache miss at 1M).
//! - `burst/*`: 32 at a time in two stages (probe all, then verify all), as the pipeline does,
//!   the keys read in sequence as a packet's comes from its frame (`lookup/*` reads them at
//!   random, a miss of its own; burst figures before 2026-12-03 did too).
//! - `churn/*`: remove one entry and insert another at full capacity.
//! - After the benchmarks, the longest single churn operation of each over 4M operations is
//!   printed: hashbrown's in-place rehash (clearing its tombstones) is a stall of milliseconds.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hashbrown::HashTable;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::hint::black_box;
use std::time::{Duration, Instant};
use xvs::conn::flowtable::FlowTable;

const N: usize = 1 << 20;

fn hash(k: u64) -> u64 {
    let fold = |a: u64, b: u64| {
        let r = (a as u128) * (b as u128);
        (r as u64) ^ ((r >> 64) as u64)
    };
    fold(fold(k ^ 0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7345) ^ 0xa409_3822_299f_31d0, 0x9E37_79B9_7F4A_7C15)
}

/// Key `i` (a stand-in for a connection's 13-byte key).
fn key(i: usize) -> u64 {
    0xC612_0000_0000_0000 | (i as u64).wrapping_mul(0x0000_0100_0000_01b3)
}

/// A stand-in for the shard's 32-byte connection record, where keys are compared.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Rec {
    key: u64,
    _rest: [u64; 3],
}

struct Both {
    keys: Vec<u64>,
    recs: Vec<Rec>,
    flow: FlowTable,
    brown: HashTable<u32>,
    inline: Inline,
}

/// A measured alternative, not the shard's design: the records themselves in the table, two
/// to a cache line, each key in one of two lines (1.25 slots an entry, as the index has), so
/// that a lookup reads one line, or two, instead of an index line and then a record's. Records
/// would move on insert, which the shard's slab positions (the wheel's links, templates, the
/// reply index) do not allow today: this measures what such a redesign would buy.
struct Inline {
    lines: Vec<Line>,
    /// Keys that found no room: still looked up (and counted), they read both lines and miss.
    homeless: usize,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([Rec; 2]);

impl Inline {
    fn lines_of(&self, h: u64) -> (usize, usize) {
        let n = self.lines.len() as u64;
        (((h as u32 as u64 * n) >> 32) as usize, (((h >> 32) * n) >> 32) as usize)
    }

    fn free_in(&self, l: usize) -> Option<usize> {
        self.lines[l].0.iter().position(|r| r.key == 0)
    }

    /// Into either line; else one record of either moved to its other line.
    fn insert(&mut self, key: u64) -> bool {
        let (a, b) = self.lines_of(hash(key));
        for l in [a, b] {
            if let Some(j) = self.free_in(l) {
                self.lines[l].0[j] = Rec { key, _rest: [0; 3] };
                return true;
            }
        }
        for l in [a, b] {
            for j in 0..2 {
                let (x, y) = self.lines_of(hash(self.lines[l].0[j].key));
                let alt = if x == l { y } else { x };
                if let Some(k) = self.free_in(alt) {
                    self.lines[alt].0[k] = self.lines[l].0[j];
                    self.lines[l].0[j] = Rec { key, _rest: [0; 3] };
                    return true;
                }
            }
        }
        false
    }

    fn build(keys: &[u64]) -> Inline {
        let empty = Line([Rec { key: 0, _rest: [0; 3] }; 2]);
        let mut t = Inline { lines: vec![empty; (keys.len() * 5 / 4).div_ceil(2)], homeless: 0 };
        for &k in keys {
            if !t.insert(k) {
                t.homeless += 1;
            }
        }
        t
    }

    /// The first line, or both (two lines, as many as the flow index's burst prefetches).
    fn prefetch(&self, h: u64, both: bool) {
        let (a, b) = self.lines_of(h);
        let lines = [a, b];
        for &l in &lines[..1 + both as usize] {
            if let Some(l) = self.lines.get(l) {
                xvs::conn::prefetch(l);
            }
        }
    }

    fn find(&self, h: u64, key: u64) -> bool {
        let (a, b) = self.lines_of(h);
        [a, b].iter().any(|&l| self.lines.get(l).is_some_and(|line| line.0.iter().any(|r| r.key == key)))
    }
}

fn build() -> Both {
    let keys: Vec<u64> = (0..N).map(key).collect();
    let mut flow = FlowTable::with_capacity(N);
    let mut brown = HashTable::with_capacity(2 * N);
    for (i, k) in keys.iter().enumerate() {
        flow.insert(hash(*k), i as u32, |j| hash(keys[j as usize])).expect("room");
        brown.insert_unique(hash(*k), i as u32, |&j| hash(keys[j as usize]));
    }
    let recs = keys.iter().map(|&key| Rec { key, _rest: [0; 3] }).collect();
    let inline = Inline::build(&keys);
    eprintln!("flowtable/inline: {} of {} keys found no room", inline.homeless, keys.len());
    Both { keys, recs, flow, brown, inline }
}

fn order() -> Vec<usize> {
    let mut o: Vec<usize> = (0..N).collect();
    o.shuffle(&mut SmallRng::seed_from_u64(7));
    o
}

/// A burst's 32 keys (the next ones of `keys`, in order) and their hashes; `each` gets every
/// hash as it is computed (a prefetch).
fn burst_keys(at: &mut usize, keys: &[u64], mut each: impl FnMut(u64)) -> ([u64; 32], [u64; 32]) {
    let (mut ks, mut hs) = ([0u64; 32], [0u64; 32]);
    for j in 0..32 {
        *at = (*at + 1) % keys.len();
        ks[j] = keys[*at];
        hs[j] = hash(ks[j]);
        each(hs[j]);
    }
    (ks, hs)
}

fn benches(c: &mut Criterion) {
    let mut b = build();
    let order = order();
    let mut g = c.benchmark_group("flowtable");
    g.throughput(Throughput::Elements(1));
    let mut at = 0;
    g.bench_function("lookup/flowtable", |bn| {
        bn.iter(|| {
            at = (at + 1) % N;
            let i = order[at];
            let k = b.keys[i];
            black_box(b.flow.find(hash(k), |j| b.keys[j as usize] == k))
        })
    });
    g.bench_function("lookup/hashbrown", |bn| {
        bn.iter(|| {
            at = (at + 1) % N;
            let i = order[at];
            let k = b.keys[i];
            black_box(b.brown.find(hash(k), |&j| b.keys[j as usize] == k).copied())
        })
    });
    g.throughput(Throughput::Elements(32));
    // The keys in the lookups' order, read in sequence: a packet's key comes from its frame,
    // already in cache, not from a random place in a key array (which was a miss of its own
    // in every variant).
    let shuffled: Vec<u64> = order.iter().map(|&i| b.keys[i]).collect();
    // A burst in stages, as the pipeline runs it: hash all (and prefetch the index lines),
    // probe all (and prefetch the 32-byte records), then verify all against the record.
    for (name, table, pf_index, pf_rec) in [
        ("burst/flowtable", true, false, false),
        ("burst/flowtable+prefetch", true, true, true),
        ("burst/hashbrown", false, false, false),
        ("burst/hashbrown+prefetch", false, false, true),
    ] {
        g.bench_function(name, |bn| {
            bn.iter(|| {
                let mut hint = [0u32; 32];
                let (ks, hs) = burst_keys(&mut at, &shuffled, |h| {
                    if pf_index {
                        b.flow.prefetch(h);
                    }
                });
                for j in 0..32 {
                    hint[j] = if table {
                        b.flow.probe(hs[j])
                    } else {
                        b.brown.find(hs[j], |_| true).copied().unwrap_or(u32::MAX)
                    };
                    if pf_rec {
                        if let Some(r) = b.recs.get(hint[j] as usize) {
                            xvs::conn::prefetch(r);
                        }
                    }
                }
                let mut found = 0u32;
                for j in 0..32 {
                    found += (b.recs.get(hint[j] as usize).map(|r| r.key) == Some(ks[j])) as u32;
                }
                black_box(found)
            })
        });
    }
    // The same burst against records kept in the table itself: hash all and prefetch each
    // key's first line (or both), then compare all.
    for (name, both) in [("burst/inline+prefetch", false), ("burst/inline+prefetch2", true)] {
        g.bench_function(name, |bn| {
            bn.iter(|| {
                let (ks, hs) = burst_keys(&mut at, &shuffled, |h| b.inline.prefetch(h, both));
                let mut found = 0u32;
                for j in 0..32 {
                    found += b.inline.find(hs[j], ks[j]) as u32;
                }
                black_box(found)
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    // Churn: entry `slot` gets a new key each time.
    let mut next = N;
    g.bench_function("churn/flowtable", |bn| {
        bn.iter(|| {
            let slot = next % N;
            let old = b.keys[slot];
            b.flow.remove(hash(old), slot as u32);
            b.keys[slot] = key(next);
            next += 1;
            let keys = &b.keys;
            b.flow.insert(hash(keys[slot]), slot as u32, |j| hash(keys[j as usize])).expect("room")
        })
    });
    // hashbrown's copy of the keys went stale above: rebuild it for its own churn.
    b.brown = HashTable::with_capacity(2 * N);
    for (i, k) in b.keys.iter().enumerate() {
        b.brown.insert_unique(hash(*k), i as u32, |&j| hash(b.keys[j as usize]));
    }
    g.bench_function("churn/hashbrown", |bn| {
        bn.iter(|| {
            let slot = next % N;
            let old = b.keys[slot];
            if let Ok(e) = b.brown.find_entry(hash(old), |&j| j == slot as u32) {
                e.remove();
            }
            b.keys[slot] = key(next);
            next += 1;
            let keys = &b.keys;
            b.brown.insert_unique(hash(keys[slot]), slot as u32, |&j| hash(keys[j as usize]));
        })
    });
    g.finish();
    longest_churn_ops();
}

/// The longest single remove+insert of each table over 4M of them at full capacity.
fn longest_churn_ops() {
    let ops = if std::env::args().any(|a| a == "--bench") { 4 * N } else { N / 8 };
    for which in ["flowtable", "hashbrown"] {
        let mut b = build();
        let mut worst = Duration::ZERO;
        for n in 0..ops {
            let slot = n % N;
            let t = Instant::now();
            let old = b.keys[slot];
            b.keys[slot] = key(N + n);
            let keys = &b.keys;
            if which == "flowtable" {
                b.flow.remove(hash(old), slot as u32);
                b.flow.insert(hash(keys[slot]), slot as u32, |j| hash(keys[j as usize])).expect("room");
            } else {
                if let Ok(e) = b.brown.find_entry(hash(old), |&j| j == slot as u32) {
                    e.remove();
                }
                b.brown.insert_unique(hash(keys[slot]), slot as u32, |&j| hash(keys[j as usize]));
            }
            worst = worst.max(t.elapsed());
        }
        println!("flowtable/longest churn op, {which}: {worst:?} over {ops} remove+insert at 1M entries");
    }
}

criterion_group! {
    name = flowtable;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = benches
}
criterion_main!(flowtable);
