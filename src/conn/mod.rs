//! The connection table: one [`ConnShard`] per worker.
//!
//! A shard is a pre-sized slab of connection records (32 hot bytes + 12 cold) with one flow
//! index of `u32` slab positions ([`flowtable`]: cache-line buckets of 16-bit signatures, two
//! choices, fixed size, 8 bytes a connection; it never grows or rehashes, and a burst
//! prefetches its lines). Keys are not duplicated in the index: a probe compares against the
//! slab record it points to. FULLNAT replies are found in a second index of the same kind by
//! their whole tuple (see `lports`); NAT replies by rebuilding the client-side key from the
//! real server's services. Expiry is a hashed timer wheel with intrusive links:
//! refreshing a connection's timeout is one store, and the wheel re-files a connection lazily
//! when its slot comes round, so expiry costs O(1) amortised per packet.

pub mod flowtable;
mod index;
pub mod loads;
pub mod lports;
mod record;
pub mod shard;
pub mod state;
pub mod sync;
mod wheel;

pub use loads::SlotSpec;
pub use shard::{Conn, ConnKey, ConnShard, NewConn, Refused, ShardConfig, ShardStats, NONE, TICK_MS};
pub use state::{next_state, Dir, TcpState, Timeouts, UDP_STATE};

/// Asks the CPU to bring the cache line of `r` in (a hint: no fault, no wait), so that the
/// misses of a burst's lookups overlap. `safe_arch` wraps the SSE intrinsic safely.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_t0(r);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
