//! Table memory per connection as the allocator hands it out (`stats_alloc` counting every
//! allocation of this test binary), against the shard's own account
//! (`ConnShard::memory_bytes`), at several capacities.

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use xvs::conn::{ConnShard, ShardConfig};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn table_memory_as_allocated_matches_the_account_at_every_size() {
    let mut rows = Vec::new();
    for cap in [65_536u32, 100_000, 458_752, 917_504, 1_000_000, 1_048_576, 1_500_000] {
        let region = Region::new(GLOBAL);
        let s = ConnShard::new(&ShardConfig { capacity: cap, ..ShardConfig::default() });
        let change = region.change();
        let allocated = change.bytes_allocated.saturating_sub(change.bytes_deallocated);
        let per_conn = allocated as f64 / cap as f64;
        let account = s.memory_bytes() as f64 / cap as f64;
        rows.push(format!("{cap}: {per_conn:.1} bytes a connection allocated, {account:.1} accounted"));
        // What the allocator handed out is what the shard says it holds (within the few small
        // vectors it does not count).
        assert!((per_conn - account).abs() / account < 0.01, "{}", rows.join("\n"));
        // hashbrown's power-of-two index (twice the connections) makes this 59-69 bytes
        // depending on the size, once the fixed arrays (1.5 MB) are spread thin.
        if cap >= 458_752 {
            assert!(per_conn <= 70.0, "{}", rows.join("\n"));
        }
        drop(s);
    }
    println!("{}", rows.join("\n"));
}
