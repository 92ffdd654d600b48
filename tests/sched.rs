//! Scheduler behaviour through the public API only (`xvs::sched`, `xvs::service`).
//!
//! For every scheduler: pick sequences from a fresh state, with and without accumulating
//! connections, weight 0, weight changes (rebuild + changed loads), the overload flag, an empty
//! list and all-zero weights. Plus the hashing schedulers' distribution and stability.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use xvs::model::{SchedFlags, SchedKind};
use xvs::sched::{hash_32, DestLoad, DestSpec, Flow, Scheduler};

const NOFLAGS: SchedFlags = SchedFlags { fallback: false, port: false };
const FALLBACK: SchedFlags = SchedFlags { fallback: true, port: false };
const PORT: SchedFlags = SchedFlags { fallback: false, port: true };

fn addr(i: usize) -> u32 {
    0x0a00_0001 + ((i as u32) << 8)
}

fn specs(w: &[u32]) -> Vec<DestSpec> {
    w.iter().enumerate().map(|(i, &weight)| DestSpec { addr: addr(i), port: 80, weight }).collect()
}

fn loads(w: &[u32]) -> Vec<DestLoad> {
    w.iter().map(|&weight| DestLoad { weight, ..DestLoad::default() }).collect()
}

fn new(kind: SchedKind, w: &[u32]) -> Scheduler {
    Scheduler::new(kind, NOFLAGS, 4093, &specs(w))
}

fn flow(saddr: u32, sport: u16, daddr: u32) -> Flow {
    Flow { proto: 6, saddr, sport, daddr, dport: 80 }
}

fn fixed_flow() -> Flow {
    flow(0xc0a8_0001, 40000, 0x0a0a_0a0a)
}

/// How a test feeds connections back after a pick.
#[derive(Clone, Copy, PartialEq)]
enum Acc {
    None,
    Inactive,
    Active,
}

/// `n` picks on the same flow as letters ('-' = None), updating `l` as `acc` says.
fn run(s: &mut Scheduler, l: &mut [DestLoad], n: usize, acc: Acc) -> String {
    let f = fixed_flow();
    (0..n)
        .map(|_| match s.pick(&f, l) {
            Some(i) => {
                match acc {
                    Acc::None => {}
                    Acc::Inactive => l[i].inactive += 1,
                    Acc::Active => l[i].active += 1,
                }
                (b'A' + i as u8) as char
            }
            None => '-',
        })
        .collect()
}

fn count(seq: &str, c: char) -> usize {
    seq.chars().filter(|&x| x == c).count()
}

/// Modular inverse of the hash_32 multiplier: `src_for_bucket(b)` hashes to bucket `b`.
fn src_for_bucket(b: u32) -> u32 {
    const C: u32 = 0x61C8_8647;
    let mut inv: u32 = C; // Newton: inv = inv * (2 - C * inv), 5 steps for 32 bits.
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(C.wrapping_mul(inv)));
    }
    let s = (b << 24).wrapping_mul(inv);
    assert_eq!(hash_32(s, 8), b);
    s
}

// ---------------------------------------------------------------------------------------------
// Every scheduler

#[test]
fn all_empty_list_is_none() {
    for kind in SchedKind::ALL {
        for flags in [NOFLAGS, FALLBACK] {
            let mut s = Scheduler::new(kind, flags, 251, &[]);
            assert_eq!(s.kind(), kind);
            assert_eq!(s.pick(&fixed_flow(), &[]), None, "{kind}");
            // Loads longer than the (empty) rebuild: never panics.
            let _ = s.pick(&fixed_flow(), &loads(&[1, 1]));
        }
    }
}

#[test]
fn all_zero_weights_is_none() {
    for kind in SchedKind::ALL {
        for flags in [NOFLAGS, FALLBACK] {
            let mut s = Scheduler::new(kind, flags, 4093, &specs(&[0, 0, 0]));
            let mut l = loads(&[0, 0, 0]);
            for i in 0..50u32 {
                let f = flow(i.wrapping_mul(0x9e37_79b9), i as u16, i);
                assert_eq!(s.pick(&f, &l), None, "{kind}");
            }
            assert_eq!(run(&mut s, &mut l, 5, Acc::Inactive), "-----", "{kind}");
        }
    }
}

#[test]
fn all_never_pick_unavailable_random() {
    let mut rng = SmallRng::seed_from_u64(7);
    for kind in SchedKind::ALL {
        for flags in [NOFLAGS, FALLBACK, PORT] {
            for _ in 0..20 {
                let n = rng.gen_range(1..=12);
                let w: Vec<u32> = (0..n).map(|_| rng.gen_range(0..=4)).collect();
                let mut s = Scheduler::new(kind, flags, 251, &specs(&w));
                let mut l = loads(&w);
                for d in l.iter_mut() {
                    d.overloaded = rng.gen_bool(0.3);
                    d.active = rng.gen_range(0..20);
                    d.inactive = rng.gen_range(0..200);
                }
                let any = l.iter().any(|d| d.available());
                for _ in 0..50 {
                    let f = flow(rng.gen(), rng.gen(), rng.gen());
                    let got = s.pick(&f, &l);
                    if let Some(i) = got {
                        assert!(l[i].available(), "{kind} picked unavailable {i}");
                    }
                    // Schedulers that search the whole list always find an available server.
                    let searches = !matches!(kind, SchedKind::Sh | SchedKind::Dh | SchedKind::Mh)
                        || (flags.fallback && kind != SchedKind::Dh);
                    if searches {
                        assert_eq!(got.is_some(), any, "{kind} {w:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn all_loads_shorter_or_longer_never_panic() {
    let mut rng = SmallRng::seed_from_u64(8);
    for kind in SchedKind::ALL {
        for flags in [NOFLAGS, FALLBACK, PORT] {
            let mut s = Scheduler::new(kind, flags, 251, &specs(&[3, 1, 2, 5, 1, 1]));
            for len in [0usize, 1, 3, 6, 9, 300] {
                let l = loads(&vec![2; len]);
                for _ in 0..30 {
                    let f = flow(rng.gen(), rng.gen(), rng.gen());
                    if let Some(i) = s.pick(&f, &l) {
                        assert!(i < len, "{kind}");
                    }
                }
            }
        }
    }
}

#[test]
fn all_weight_zero_never_chosen_others_continue() {
    for kind in SchedKind::ALL {
        let w = [2, 0, 3, 1];
        let mut s = Scheduler::new(kind, FALLBACK, 4093, &specs(&w));
        let mut l = loads(&w);
        let mut got = [0usize; 4];
        for i in 0..2000u32 {
            let f = flow(i.wrapping_mul(0x9e37_79b9), i as u16, i.wrapping_mul(0x85eb_ca6b));
            if let Some(d) = s.pick(&f, &l) {
                got[d] += 1;
                l[d].active += 1;
            }
        }
        assert_eq!(got[1], 0, "{kind} {got:?}");
        assert!(got[0] > 0 && got[2] > 0 && got[3] > 0, "{kind} {got:?}");
    }
}

#[test]
fn all_overloaded_never_chosen_while_overloaded() {
    for kind in SchedKind::ALL {
        let w = [1, 1, 1];
        let mut s = Scheduler::new(kind, FALLBACK, 4093, &specs(&w));
        let mut l = loads(&w);
        l[0].overloaded = true;
        let mut got = [0usize; 3];
        for i in 0..600u32 {
            let f = flow(i.wrapping_mul(0x9e37_79b9), i as u16, i.wrapping_mul(0x85eb_ca6b));
            if let Some(d) = s.pick(&f, &l) {
                got[d] += 1;
                l[d].active += 1;
            }
        }
        assert_eq!(got[0], 0, "{kind} {got:?}");
        assert!(got[1] > 0 && got[2] > 0, "{kind} {got:?}");
        // Cleared: it is chosen again.
        l[0].overloaded = false;
        l[1].overloaded = true;
        let mut got = [0usize; 3];
        for i in 0..600u32 {
            let f = flow(i.wrapping_mul(0x9e37_79b9), i as u16, i.wrapping_mul(0x85eb_ca6b));
            if let Some(d) = s.pick(&f, &l) {
                got[d] += 1;
                l[d].active += 1;
            }
        }
        assert_eq!(got[1], 0, "{kind} {got:?}");
        assert!(got[0] > 0, "{kind} {got:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// rr

#[test]
fn rr_sequence() {
    let w = [1, 1, 1];
    let mut s = new(SchedKind::Rr, &w);
    assert_eq!(run(&mut s, &mut loads(&w), 9, Acc::None), "ABCABCABC");
    // Connections do not matter; weights only as 0 / > 0.
    let w = [5, 1, 9];
    let mut s = new(SchedKind::Rr, &w);
    assert_eq!(run(&mut s, &mut loads(&w), 6, Acc::Inactive), "ABCABC");
    let mut s = new(SchedKind::Rr, &w);
    assert_eq!(run(&mut s, &mut loads(&w), 6, Acc::Active), "ABCABC");
}

#[test]
fn rr_weight_zero_overload_and_change() {
    let w = [1, 0, 1];
    let mut s = new(SchedKind::Rr, &w);
    let mut l = loads(&w);
    assert_eq!(run(&mut s, &mut l, 4, Acc::Inactive), "ACAC");
    // B gets a weight: rebuild + loads; position (C) kept.
    let w = [1, 2, 1];
    s.rebuild(&specs(&w));
    let mut l = loads(&w);
    assert_eq!(run(&mut s, &mut l, 6, Acc::None), "ABCABC");
    l[1].overloaded = true;
    assert_eq!(run(&mut s, &mut l, 4, Acc::None), "ACAC");
    l[1].overloaded = false;
    assert_eq!(run(&mut s, &mut l, 3, Acc::None), "ABC");
    // Quiesce all: none (position kept), then resume.
    let mut z = loads(&[0, 0, 0]);
    assert_eq!(run(&mut s, &mut z, 2, Acc::None), "--");
    assert_eq!(run(&mut s, &mut l, 4, Acc::None), "ABCA");
    // Shrink below the position: restart at the head.
    s.rebuild(&specs(&[1]));
    assert_eq!(run(&mut s, &mut loads(&[1]), 2, Acc::None), "AA");
}

// ---------------------------------------------------------------------------------------------
// wrr

#[test]
fn wrr_kernel_sequences() {
    let w = [5, 3];
    let mut s = new(SchedKind::Wrr, &w);
    assert_eq!(run(&mut s, &mut loads(&w), 16, Acc::None), "AAABABABAAABABAB");
    let w = [4, 3, 2];
    let mut s = new(SchedKind::Wrr, &w);
    assert_eq!(run(&mut s, &mut loads(&w), 18, Acc::None), "AABABCABCAABABCABC");
    // Accumulating connections change nothing.
    let mut s = new(SchedKind::Wrr, &w);
    assert_eq!(run(&mut s, &mut loads(&w), 18, Acc::Active), "AABABCABCAABABCABC");
    let mut s = new(SchedKind::Wrr, &w);
    let seq = run(&mut s, &mut loads(&w), 900, Acc::Inactive);
    assert_eq!([count(&seq, 'A'), count(&seq, 'B'), count(&seq, 'C')], [400, 300, 200]);
}

#[test]
fn wrr_weight_zero_and_overload() {
    let w = [5, 0, 3];
    let mut s = new(SchedKind::Wrr, &w);
    let mut l = loads(&w);
    assert_eq!(run(&mut s, &mut l, 8, Acc::None), "AAACACAC");
    l[0].overloaded = true;
    assert_eq!(run(&mut s, &mut l, 4, Acc::None), "CCCC");
    l[2].overloaded = true;
    assert_eq!(run(&mut s, &mut l, 3, Acc::None), "---");
    l[0].overloaded = false;
    assert_eq!(run(&mut s, &mut l, 3, Acc::None), "AAA");
    // Quiesced through the loads only (no rebuild yet).
    let mut q = loads(&[5, 0, 0]);
    assert_eq!(run(&mut s, &mut q, 3, Acc::None), "AAA");
}

#[test]
fn wrr_weight_change() {
    let mut s = new(SchedKind::Wrr, &[5, 3]);
    // cw = 4 after two picks.
    assert_eq!(run(&mut s, &mut loads(&[5, 3]), 2, Acc::None), "AA");
    // mw = 3 < cw: cw = mw (the kernel's dest_changed), from the head.
    let w = [1, 3];
    s.rebuild(&specs(&w));
    let mut l = loads(&w);
    assert_eq!(run(&mut s, &mut l, 10, Acc::None), "BBABBBABBB");
    let seq = run(&mut s, &mut l, 400, Acc::None);
    assert_eq!([count(&seq, 'A'), count(&seq, 'B')], [100, 300]);
    // Add a server.
    let w = [1, 3, 2];
    s.rebuild(&specs(&w));
    let seq = run(&mut s, &mut loads(&w), 600, Acc::None);
    let c = [count(&seq, 'A'), count(&seq, 'B'), count(&seq, 'C')];
    assert!(c[0].abs_diff(100) <= 2 && c[1].abs_diff(300) <= 2, "{c:?}");
}

// ---------------------------------------------------------------------------------------------
// lc

#[test]
fn lc_sequences() {
    let w = [5, 1, 1];
    // No connections: everyone ties at 0, the first wins.
    let mut s = new(SchedKind::Lc, &w);
    assert_eq!(run(&mut s, &mut loads(&w), 4, Acc::None), "AAAA");
    // Accumulating: weights are ignored, plain balancing.
    assert_eq!(run(&mut s, &mut loads(&w), 9, Acc::Inactive), "ABCABCABC");
    assert_eq!(run(&mut s, &mut loads(&w), 6, Acc::Active), "ABCABC");
    // active counts 256 inactive.
    let mut l = loads(&[1, 1]);
    l[0].active = 1;
    l[1].inactive = 255;
    assert_eq!(run(&mut s, &mut l, 1, Acc::None), "B");
    l[1].inactive = 256;
    assert_eq!(run(&mut s, &mut l, 1, Acc::None), "A");
}

#[test]
fn lc_zero_overload_change() {
    let w = [1, 0, 1];
    let mut s = new(SchedKind::Lc, &w);
    let mut l = loads(&w);
    assert_eq!(run(&mut s, &mut l, 4, Acc::Inactive), "ACAC");
    // B gets a weight: it has the least connections now.
    let w = [1, 1, 1];
    s.rebuild(&specs(&w));
    for (d, nw) in l.iter_mut().zip(w) {
        d.weight = nw;
    }
    // A=2, B=0, C=2: B twice, then the tie A, B, C goes to A, then B.
    assert_eq!(run(&mut s, &mut l, 4, Acc::Inactive), "BBAB");
    l[1].overloaded = true;
    assert_eq!(run(&mut s, &mut l, 4, Acc::Inactive), "CACA");
}

// ---------------------------------------------------------------------------------------------
// wlc

#[test]
fn wlc_sequences() {
    let w = [3, 1];
    let mut s = new(SchedKind::Wlc, &w);
    assert_eq!(run(&mut s, &mut loads(&w), 4, Acc::None), "AAAA");
    let mut l = loads(&w);
    assert_eq!(run(&mut s, &mut l, 10, Acc::Inactive), "ABAAABAAAB");
    let seq = run(&mut s, &mut l, 390, Acc::Inactive);
    assert_eq!([count(&seq, 'A'), count(&seq, 'B')], [293, 97]);
    assert_eq!((l[0].inactive, l[1].inactive), (300, 100));
    let mut l = loads(&w);
    assert_eq!(run(&mut s, &mut l, 10, Acc::Active), "ABAAABAAAB");
    // Overhead = active * 256 + inactive, divided by weight.
    let mut l = loads(&[1, 2]);
    l[0].active = 1;
    l[1].inactive = 511;
    assert_eq!(run(&mut s, &mut l, 1, Acc::None), "B");
    l[1].inactive = 512;
    assert_eq!(run(&mut s, &mut l, 1, Acc::None), "A");
}

#[test]
fn wlc_zero_overload_change() {
    let w = [3, 0, 1];
    let mut s = new(SchedKind::Wlc, &w);
    let mut l = loads(&w);
    let seq = run(&mut s, &mut l, 400, Acc::Inactive);
    assert_eq!(count(&seq, 'B'), 0);
    assert_eq!([count(&seq, 'A'), count(&seq, 'C')], [300, 100]);
    // Weights change to 1,0,3: C catches up until 1:3.
    let w = [1, 0, 3];
    s.rebuild(&specs(&w));
    for (d, nw) in l.iter_mut().zip(w) {
        d.weight = nw;
    }
    let seq = run(&mut s, &mut l, 400, Acc::Inactive);
    assert_eq!([count(&seq, 'A'), count(&seq, 'C')], [0, 400]);
    assert_eq!((l[0].inactive, l[2].inactive), (300, 500));
    // C alone until 300 * 3 = 900, then 1:3.
    let seq = run(&mut s, &mut l, 800, Acc::Inactive);
    assert_eq!((l[0].inactive, l[2].inactive), (400, 1200));
    assert_eq!(count(&seq, 'A'), 100);
    l[2].overloaded = true;
    assert_eq!(run(&mut s, &mut l, 5, Acc::Inactive), "AAAAA");
}

// ---------------------------------------------------------------------------------------------
// sed

#[test]
fn sed_sequences() {
    let w = [1, 3];
    let mut s = new(SchedKind::Sed, &w);
    // (0+1)/1 vs (0+1)/3: the heavier server, also with no connections at all.
    assert_eq!(run(&mut s, &mut loads(&w), 4, Acc::None), "BBBB");
    // Inactive connections are ignored.
    assert_eq!(run(&mut s, &mut loads(&w), 4, Acc::Inactive), "BBBB");
    let mut l = loads(&w);
    assert_eq!(run(&mut s, &mut l, 8, Acc::Active), "BBABBBAB");
    let seq = run(&mut s, &mut l, 392, Acc::Active);
    assert_eq!((l[0].active, l[1].active), (100, 300));
    assert_eq!(count(&seq, 'A') + 2, 100);
}

#[test]
fn sed_zero_overload_change() {
    let w = [0, 1, 3];
    let mut s = new(SchedKind::Sed, &w);
    let mut l = loads(&w);
    let seq = run(&mut s, &mut l, 400, Acc::Active);
    assert_eq!(count(&seq, 'A'), 0);
    assert_eq!((l[1].active, l[2].active), (100, 300));
    let w = [2, 1, 3];
    s.rebuild(&specs(&w));
    for (d, nw) in l.iter_mut().zip(w) {
        d.weight = nw;
    }
    let seq = run(&mut s, &mut l, 200, Acc::Active);
    assert_eq!(count(&seq, 'A'), 200);
    l[0].overloaded = true;
    let seq = run(&mut s, &mut l, 40, Acc::Active);
    assert_eq!(count(&seq, 'A'), 0);
}

// ---------------------------------------------------------------------------------------------
// nq

#[test]
fn nq_sequences() {
    let w = [1, 3];
    let mut s = new(SchedKind::Nq, &w);
    // Idle servers first, in list order.
    assert_eq!(run(&mut s, &mut loads(&w), 4, Acc::None), "AAAA");
    assert_eq!(run(&mut s, &mut loads(&w), 4, Acc::Inactive), "AAAA");
    let mut l = loads(&w);
    // A idle, B idle, then sed: 2/1 vs (n+1)/3.
    assert_eq!(run(&mut s, &mut l, 7, Acc::Active), "ABBBBBA");
    let mut l = loads(&[2, 2, 2]);
    assert_eq!(run(&mut s, &mut l, 9, Acc::Active), "ABCABCABC");
}

#[test]
fn nq_zero_overload_change() {
    let w = [0, 1, 1];
    let mut s = new(SchedKind::Nq, &w);
    let mut l = loads(&w);
    assert_eq!(run(&mut s, &mut l, 6, Acc::Active), "BCBCBC");
    let w = [1, 1, 1];
    s.rebuild(&specs(&w));
    l[0].weight = 1;
    // A idle, then A (2/1) vs B, C (4/1) until A ties at 4/1 (ties go to A).
    assert_eq!(run(&mut s, &mut l, 5, Acc::Active), "AAAAB");
    l[0].overloaded = true;
    assert_eq!(run(&mut s, &mut l, 4, Acc::Active), "CBCB");
}

// ---------------------------------------------------------------------------------------------
// sh

/// Server per bucket, read through `pick` with sources that hash to each bucket.
fn sh_buckets(s: &mut Scheduler, l: &[DestLoad]) -> Vec<Option<usize>> {
    (0..256).map(|b| s.pick(&flow(src_for_bucket(b), 0, 1), l)).collect()
}

#[test]
fn sh_same_source_same_server() {
    let w = [1, 1, 1, 1];
    let mut s = new(SchedKind::Sh, &w);
    let mut l = loads(&w);
    let mut rng = SmallRng::seed_from_u64(1);
    for _ in 0..200 {
        let src: u32 = rng.gen();
        let first = s.pick(&flow(src, rng.gen(), rng.gen()), &l);
        assert!(first.is_some());
        for _ in 0..5 {
            // Other ports / destinations / load do not matter without sh-port.
            let again = s.pick(&flow(src, rng.gen(), rng.gen()), &l);
            assert_eq!(again, first);
            if let Some(i) = again {
                l[i].active += 3;
            }
        }
    }
    // From a fresh state the mapping is the same.
    let mut s2 = new(SchedKind::Sh, &w);
    for src in 0..100u32 {
        let f = flow(src.wrapping_mul(0x0101_0101), 1, 1);
        assert_eq!(s.pick(&f, &l), s2.pick(&f, &l));
    }
}

#[test]
fn sh_buckets_follow_weights() {
    let mut s = new(SchedKind::Sh, &[2, 1]);
    let l = loads(&[2, 1]);
    let b = sh_buckets(&mut s, &l);
    assert_eq!(&b[..6], &[0, 0, 1, 0, 0, 1].map(Some));
    let a = b.iter().filter(|&&x| x == Some(0)).count();
    assert_eq!((a, 256 - a), (171, 85));
    // Weight change: 1,1 is 128 / 128.
    s.rebuild(&specs(&[1, 1]));
    let b = sh_buckets(&mut s, &loads(&[1, 1]));
    assert_eq!(b.iter().filter(|&&x| x == Some(0)).count(), 128);
    // Random sources: about 2:1.
    let mut s = new(SchedKind::Sh, &[2, 1]);
    let mut rng = SmallRng::seed_from_u64(2);
    let mut c = [0usize; 2];
    for _ in 0..100_000 {
        let i = s.pick(&flow(rng.gen(), 0, 0), &l).unwrap_or(9);
        c[i] += 1;
    }
    let share = c[0] as f64 / 100_000.0;
    assert!((share - 171.0 / 256.0).abs() < 0.01, "{c:?}");
}

#[test]
fn sh_port_flag() {
    let w = [1, 1, 1, 1];
    let mut s = Scheduler::new(SchedKind::Sh, PORT, 4093, &specs(&w));
    let l = loads(&w);
    let src = src_for_bucket(0);
    // Bucket = hash_32(saddr + sport): sport 0 is bucket 0 = server A.
    assert_eq!(s.pick(&flow(src, 0, 1), &l), Some(0));
    let servers: std::collections::HashSet<_> = (0..64u16).map(|p| s.pick(&flow(src, p, 1), &l)).collect();
    assert!(servers.len() > 1);
    // Same source and port: same server.
    assert_eq!(s.pick(&flow(src, 7, 1), &l), s.pick(&flow(src, 7, 9), &l));
}

#[test]
fn sh_unavailable_and_fallback() {
    let w = [1, 1, 1, 1];
    let mut l = loads(&w);
    l[1].overloaded = true;
    let mut plain = new(SchedKind::Sh, &w);
    let mut fb = Scheduler::new(SchedKind::Sh, FALLBACK, 4093, &specs(&w));
    let bp = sh_buckets(&mut plain, &l);
    let bf = sh_buckets(&mut fb, &l);
    for b in 0..256usize {
        if b % 4 == 1 {
            // B's buckets: none without fallback, another server with it (the kernel's walk
            // starts at bucket 2 * b).
            assert_eq!(bp[b], None);
            let start = (2 * b) & 255;
            let want = if start % 4 == 1 { (start + 1) % 4 } else { start % 4 };
            assert_eq!(bf[b], Some(want), "bucket {b}");
        } else {
            assert_eq!(bp[b], Some(b % 4));
            assert_eq!(bf[b], Some(b % 4));
        }
    }
    // Quiesced (weight 0 in the rebuild): still one bucket each, never chosen.
    let w = [1, 0, 1];
    let mut plain = new(SchedKind::Sh, &w);
    let b = sh_buckets(&mut plain, &loads(&w));
    assert_eq!(&b[..6], &[Some(0), None, Some(2), Some(0), None, Some(2)]);
    let mut fb = Scheduler::new(SchedKind::Sh, FALLBACK, 4093, &specs(&w));
    let b = sh_buckets(&mut fb, &loads(&w));
    assert!(b.iter().all(|x| matches!(x, Some(0) | Some(2))));
    // Nothing available: none even with fallback.
    let mut all = loads(&w);
    all[0].overloaded = true;
    all[2].weight = 0;
    assert!(sh_buckets(&mut fb, &all).iter().all(Option::is_none));
}

// ---------------------------------------------------------------------------------------------
// dh

#[test]
fn dh_by_destination() {
    let w = [5, 1, 1];
    let mut s = new(SchedKind::Dh, &w);
    let mut l = loads(&w);
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..200 {
        let dst: u32 = rng.gen();
        let first = s.pick(&flow(rng.gen(), rng.gen(), dst), &l);
        assert!(first.is_some());
        for _ in 0..5 {
            let again = s.pick(&flow(rng.gen(), rng.gen(), dst), &l);
            assert_eq!(again, first);
            if let Some(i) = again {
                l[i].inactive += 1;
            }
        }
    }
    // One bucket per server, weights ignored: bucket b -> server b % 3.
    for b in 0..256u32 {
        let f = flow(1, 1, src_for_bucket(b));
        assert_eq!(s.pick(&f, &l), Some(b as usize % 3));
    }
    // A weight change does not move anything.
    s.rebuild(&specs(&[1, 1, 9]));
    let l2 = loads(&[1, 1, 9]);
    for b in 0..256u32 {
        let f = flow(1, 1, src_for_bucket(b));
        assert_eq!(s.pick(&f, &l2), Some(b as usize % 3));
    }
}

#[test]
fn dh_unavailable_is_none() {
    let w = [1, 0, 1];
    let mut s = Scheduler::new(SchedKind::Dh, FALLBACK, 4093, &specs(&w));
    let mut l = loads(&w);
    l[2].overloaded = true;
    for b in 0..256u32 {
        let f = flow(1, 1, src_for_bucket(b));
        let want = if b % 3 == 0 { Some(0) } else { None };
        assert_eq!(s.pick(&f, &l), want, "bucket {b}");
    }
}

// ---------------------------------------------------------------------------------------------
// mh

fn mh(flags: SchedFlags, m: u32, w: &[u32], addrs: &[u32]) -> Scheduler {
    let specs: Vec<DestSpec> =
        w.iter().zip(addrs).map(|(&weight, &addr)| DestSpec { addr, port: 8080, weight }).collect();
    Scheduler::new(SchedKind::Mh, flags, m, &specs)
}

fn shares(s: &mut Scheduler, l: &[DestLoad], keys: &[Flow]) -> Vec<f64> {
    let mut c = vec![0usize; l.len()];
    for f in keys {
        if let Some(i) = s.pick(f, l) {
            c[i] += 1;
        }
    }
    c.iter().map(|&x| x as f64 / keys.len() as f64).collect()
}

fn random_keys(n: usize, seed: u64) -> Vec<Flow> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| flow(rng.gen(), rng.gen(), rng.gen())).collect()
}

#[test]
fn mh_distribution_follows_weights() {
    let keys = random_keys(100_000, 4);
    let addrs: Vec<u32> = (0..4).map(addr).collect();
    for m in [251u32, 4093] {
        let w = [1, 2, 3, 4];
        let mut s = mh(NOFLAGS, m, &w, &addrs);
        let sh = shares(&mut s, &loads(&w), &keys);
        for (i, &x) in sh.iter().enumerate() {
            let want = w[i] as f64 / 10.0;
            // Within 5% (relative) at 4093; the 251-slot table is coarser.
            let tol = if m == 4093 { 0.05 } else { 0.12 };
            assert!((x - want).abs() <= want * tol, "m={m} {sh:?}");
        }
        // Equal weights.
        let w = [1, 1, 1, 1];
        let mut s = mh(NOFLAGS, m, &w, &addrs);
        let sh = shares(&mut s, &loads(&w), &keys);
        assert!(sh.iter().all(|&x| (x - 0.25).abs() < 0.02), "m={m} {sh:?}");
    }
    // Weight change through rebuild: 1,1 -> 3,1.
    let mut s = mh(NOFLAGS, 4093, &[1, 1], &addrs);
    let sh = shares(&mut s, &loads(&[1, 1]), &keys);
    assert!((sh[0] - 0.5).abs() < 0.02, "{sh:?}");
    s.rebuild(&[
        DestSpec { addr: addrs[0], port: 8080, weight: 3 },
        DestSpec { addr: addrs[1], port: 8080, weight: 1 },
    ]);
    let sh = shares(&mut s, &loads(&[3, 1]), &keys);
    assert!((sh[0] - 0.75).abs() < 0.02, "{sh:?}");
}

#[test]
fn mh_removing_one_moves_about_one_nth() {
    let keys = random_keys(100_000, 5);
    let mut rng = SmallRng::seed_from_u64(6);
    for n in [4usize, 10] {
        for removed in [0, n / 2, n - 1] {
            let addrs: Vec<u32> = (0..n).map(|_| rng.gen()).collect();
            let w = vec![1; n];
            let mut before = mh(NOFLAGS, 4093, &w, &addrs);
            let l = loads(&w);
            let mut addrs2 = addrs.clone();
            addrs2.remove(removed);
            let w2 = vec![1; n - 1];
            let mut after = mh(NOFLAGS, 4093, &w2, &addrs2);
            let l2 = loads(&w2);
            let (mut moved, mut on_rest, mut rest_moved) = (0usize, 0usize, 0usize);
            for f in &keys {
                let a = before.pick(f, &l).map(|i| addrs[i]);
                let b = after.pick(f, &l2).map(|i| addrs2[i]);
                assert!(a.is_some() && b.is_some());
                if a != b {
                    moved += 1;
                }
                if a != Some(addrs[removed]) {
                    on_rest += 1;
                    if a != b {
                        rest_moved += 1;
                    }
                }
            }
            let frac = moved as f64 / keys.len() as f64;
            let nf = n as f64;
            eprintln!(
                "mh: {n} servers, server {removed} removed: {:.2}% of 100,000 flows moved (1/n = {:.2}%)",
                frac * 100.0,
                100.0 / nf
            );
            assert!(frac > 0.5 / nf && frac < 1.5 / nf, "n={n} removed={removed} moved {frac}");
            // Keys that were on the remaining servers mostly stay.
            let rest_frac = rest_moved as f64 / on_rest as f64;
            assert!(rest_frac < 0.25 / nf, "n={n} rest moved {rest_frac}");
        }
    }
}

#[test]
fn mh_same_source_port_flag_and_size_251() {
    let w = [1, 1, 1];
    let addrs: Vec<u32> = (0..3).map(addr).collect();
    let l = loads(&w);
    let mut s = mh(NOFLAGS, 251, &w, &addrs);
    let mut p = mh(PORT, 251, &w, &addrs);
    let mut rng = SmallRng::seed_from_u64(9);
    let mut port_varies = false;
    for _ in 0..200 {
        let src: u32 = rng.gen();
        let first = s.pick(&flow(src, rng.gen(), rng.gen()), &l);
        assert!(first.is_some());
        let mut lp = l.clone();
        for _ in 0..3 {
            assert_eq!(s.pick(&flow(src, rng.gen(), rng.gen()), &lp), first);
            lp[0].active += 100;
        }
        let pf = p.pick(&flow(src, 1000, 1), &l);
        assert_eq!(p.pick(&flow(src, 1000, 2), &l), pf);
        if p.pick(&flow(src, 1001, 1), &l) != pf || p.pick(&flow(src, 2000, 1), &l) != pf {
            port_varies = true;
        }
    }
    assert!(port_varies);
}

#[test]
fn mh_unavailable_and_fallback() {
    let w = [1, 1, 1, 1];
    let addrs: Vec<u32> = (0..4).map(addr).collect();
    let mut plain = mh(NOFLAGS, 4093, &w, &addrs);
    let mut fb = mh(FALLBACK, 4093, &w, &addrs);
    let mut l = loads(&w);
    let keys = random_keys(5000, 10);
    let home: Vec<Option<usize>> = keys.iter().map(|f| plain.pick(f, &l)).collect();
    l[2].overloaded = true;
    let mut spread = [0usize; 4];
    for (f, h) in keys.iter().zip(&home) {
        let p = plain.pick(f, &l);
        let q = fb.pick(f, &l);
        if *h == Some(2) {
            assert_eq!(p, None);
            let q = q.unwrap_or(9);
            assert!(q != 2 && q < 4);
            spread[q] += 1;
        } else {
            // Keys of available servers never move.
            assert_eq!(p, *h);
            assert_eq!(q, *h);
        }
    }
    // The orphaned keys are spread over the others.
    assert!(spread[0] > 0 && spread[1] > 0 && spread[3] > 0, "{spread:?}");
    // Weight 0 in the rebuild: no slots, the others take its keys.
    let w0 = [1, 1, 0, 1];
    let mut s = mh(NOFLAGS, 4093, &w0, &addrs);
    let sh = shares(&mut s, &loads(&w0), &keys);
    assert_eq!(sh[2], 0.0);
    assert!((sh.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}

/// The kernel's `ip_vs_mh_permutate` + `ip_vs_mh_populate` written out again from
/// `net/netfilter/ipvs/ip_vs_mh.c`: offset from hash1, skip from hash2, turns from the last
/// weights, rounds over the list. The table names list positions.
fn kernel_mh_table(m: u32, dests: &[(u32, u16, u32)]) -> Vec<Option<usize>> {
    use std::hash::Hasher;
    let hsiphash = |v: u32, k: u64| {
        let mut h = siphasher::sip::SipHasher13::new_with_keys(k, k);
        h.write(&v.to_le_bytes());
        h.finish() as u32
    };
    let (hash1, hash2) = (2_654_435_761u64, 2_654_446_892u64);
    let gcd = |a: u32, b: u32| {
        let (mut a, mut b) = (a, b);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let g = dests.iter().map(|d| d.2).filter(|&w| w > 0).fold(0, gcd);
    let mut table = vec![None; m as usize];
    if g == 0 {
        return table;
    }
    let mw = dests.iter().map(|d| d.2).max().unwrap_or(0) / g;
    let shift = (32 - mw.leading_zeros()).saturating_sub(6);
    let mut ds: Vec<(u32, u32, u32)> = dests
        .iter()
        .map(|&(addr, port, lw)| {
            let v = addr.wrapping_add(port as u32);
            let turns = match (lw / g) >> shift {
                0 => u32::from(lw != 0),
                t => t,
            };
            (hsiphash(v, hash1) % m, hsiphash(v, hash2) % (m - 1) + 1, turns)
        })
        .collect();
    let mut used = vec![false; m as usize];
    let mut n = 0;
    'outer: loop {
        for (i, d) in ds.iter_mut().enumerate() {
            for _ in 0..d.2 {
                while used[d.0 as usize] {
                    d.0 = (d.0 + d.1) % m;
                }
                used[d.0 as usize] = true;
                table[d.0 as usize] = Some(i);
                n += 1;
                if n == m {
                    break 'outer;
                }
            }
        }
    }
    table
}

#[test]
fn mh_tables_are_the_kernels() {
    let keys = random_keys(20_000, 9);
    let cases: [&[u32]; 4] = [&[1, 1, 1], &[1, 2, 3, 4], &[100, 1], &[5, 0, 5]];
    for m in [251u32, 4093] {
        for w in cases {
            let addrs: Vec<u32> = (0..w.len()).map(addr).collect();
            let dests: Vec<(u32, u16, u32)> = addrs.iter().zip(w).map(|(&a, &w)| (a, 8080, w)).collect();
            let table = kernel_mh_table(m, &dests);
            let mut s = mh(NOFLAGS, m, w, &addrs);
            let l = loads(w);
            for f in &keys {
                let mut h = siphasher::sip::SipHasher13::new_with_keys(2_654_435_761, 2_654_435_761);
                std::hash::Hasher::write(&mut h, &f.saddr.to_le_bytes());
                let slot = (std::hash::Hasher::finish(&h) as u32 % m) as usize;
                let want = table[slot].filter(|&i| w[i] > 0);
                assert_eq!(s.pick(f, &l), want, "m {m} weights {w:?}");
            }
        }
    }
}
