//! The running control plane: the director (install, reload, requests, health transitions),
//! the control protocol and socket, accounting (IPVS's estimator, `-Z`), health checks,
//! metrics, and next-hop resolution. Only binaries sit above it.

pub mod accounting;
pub mod alarms;
pub mod announce;
pub mod director;
pub mod health;
pub mod host;
pub mod metrics;
pub mod protocol;
pub mod resolve;
pub mod snapshot;
pub mod socket;
pub mod sync;

pub use protocol::{ControlError, Reply, Request, MAX_CONN_ENTRIES, MAX_LINE};
pub use snapshot::{tables_for, tables_spec};
pub use socket::{call, read_line, serve};

/// The runtime directory the default control socket lives in (mode 0700).
pub const RUNTIME_DIR: &str = "/run/xvs";
