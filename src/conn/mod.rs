//! The connection table: one [`ConnShard`] per worker.
//!
//! A shard is a pre-sized slab of [`Conn`] records (48 bytes) with two hashbrown indexes of
//! `u32` slab positions (5 bytes a bucket): `by_in` for client->VIP packets and `by_out` for
//! real-server replies (NAT, FULLNAT). Keys are not duplicated in the indexes: a probe compares
//! against the slab record it points to. Expiry is a hashed timer wheel with intrusive links:
//! refreshing a connection's timeout is one store, and the wheel re-files a connection lazily
//! when its slot comes round, so expiry costs O(1) amortised per packet.

pub mod shard;
pub mod state;

pub use shard::{Conn, ConnKey, ConnShard, NewConn, Refused, ShardConfig, ShardStats, NONE, TICK_MS};
pub use state::{next_state, Dir, TcpState, Timeouts, UDP_STATE};
