//! `Scheduler::pick` cost for every scheduler, 4 and 64 servers (weights 1..=5), over 4096
//! pre-generated random flows (cycled, so hashing schedulers do not hit one hot bucket) and
//! random per-server active/inactive counts. Group `sched_pick`, ids like `wlc/64`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use xvs::model::{SchedFlags, SchedKind, MH_DEFAULT_TABLE_SIZE};
use xvs::sched::{DestLoad, DestSpec, Flow, Scheduler};

const FLOWS: usize = 4096;

fn bench_pick(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let flows: Vec<Flow> = (0..FLOWS)
        .map(|_| Flow {
            proto: 6,
            saddr: rng.gen(),
            sport: rng.gen_range(1024..=65535),
            daddr: 0xc0a8_0000 | rng.gen_range(0..=0xffff),
            dport: 80,
        })
        .collect();
    let mut group = c.benchmark_group("sched_pick");
    for n in [4usize, 64] {
        let specs: Vec<DestSpec> = (0..n)
            .map(|i| DestSpec { addr: 0x0a00_0001 + i as u32, port: 8080, weight: rng.gen_range(1..=5) })
            .collect();
        let loads: Vec<DestLoad> = specs
            .iter()
            .map(|s| DestLoad {
                weight: s.weight,
                active: rng.gen_range(0..2000),
                inactive: rng.gen_range(0..10_000),
                overloaded: false,
                persist: 0,
            })
            .collect();
        for kind in SchedKind::ALL {
            let mut sched = Scheduler::new(kind, SchedFlags::default(), MH_DEFAULT_TABLE_SIZE, &specs);
            let mut i = 0usize;
            group.bench_function(format!("{}/{}", kind.name(), n), |b| {
                b.iter(|| {
                    let f = &flows[i % FLOWS];
                    i = i.wrapping_add(1);
                    black_box(sched.pick(black_box(f), black_box(&loads)))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_pick);
criterion_main!(benches);
