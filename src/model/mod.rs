//! The shared vocabulary: services, real servers, keys, loads, TCP state names, timeouts,
//! check settings and counters. Every layer may use it; it uses nothing of the crate.

mod conn;
mod counters;
mod health;
mod load;
mod service;
mod sync;
mod tcp;

pub use conn::{ConnEntry, MAX_CONNS_PER_WORKER};
pub use counters::{DestCounters, Rates, ServerCounters, ServiceView};
pub use health::{CheckKind, CheckSpec, ServiceHealth};
pub use load::DestLoad;
pub use service::*;
pub use sync::{sync_flags, DaemonSpec, SyncConn, SyncRole};
pub use tcp::{TcpState, Timeouts, STATES, TCP_STATES, UDP_STATE};

/// The largest IP packet (`director.mtu`) one AF_XDP frame holds: 2048-byte frames less 256
/// bytes of headroom and the 14-byte Ethernet header. Frames are single-buffer.
pub const MAX_MTU: u16 = 1778;
