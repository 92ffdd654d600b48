//! The fuzz corpus (`fuzz/corpus/TARGET/`, small, kept in the repository: seeds and every
//! input that once crashed) replayed through the same target bodies as `cargo fuzz` runs
//! (`fuzz/harness.rs`), so a fixed crash stays fixed without the nightly toolchain.

#[path = "../fuzz/harness.rs"]
mod harness;

#[test]
fn every_corpus_input_runs_clean() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut total = 0;
    for (name, target) in harness::TARGETS {
        let dir = root.join(name);
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let data = std::fs::read(e.path()).expect("corpus file");
            target(&data);
            n += 1;
        }
        assert!(n > 0, "{name}: an empty corpus");
        total += n;
    }
    println!("{total} corpus inputs replayed");
}

#[test]
fn random_inputs_run_clean() {
    // A few thousand pseudo-random inputs per target (a smoke, in CI, of what `tools/fuzz`
    // runs for millions).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for (name, target) in harness::TARGETS {
        let t0 = std::time::Instant::now();
        for _ in 0..300 {
            let len = (next() % 512) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            target(&data);
        }
        // Bounded time: a target this slow would make the fuzzer's runs useless.
        assert!(t0.elapsed() < std::time::Duration::from_secs(20), "{name}: {:?} for 300 inputs", t0.elapsed());
    }
}
