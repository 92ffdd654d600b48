//! The data plane: tables snapshot, per-packet pipeline, ports and the worker loop.
//!
//! `io` holds the ports (in-memory, pcap, AF_XDP: the crate's only unsafe code) and `xdp` the
//! steering program that sends director traffic to the sockets.

pub mod frags;
pub mod handoff;
pub mod io;
pub mod onlink;
pub mod pipeline;
pub mod stats;
pub mod tables;
pub mod worker;
pub mod xdp;

pub use crate::wire::Frame;
pub use handoff::Handoff;
pub use io::{Desc, FramePool, FrameStore, Frames, MemPort, PcapPort, Port, RingStats, BURST, FRAME_SIZE, HEADROOM};
pub use pipeline::{Parse, Parsed, Pipeline};
pub use stats::{DestCounters, DropReason, LoopRounds, PassReason, Verdict, WorkerStats, LOOP_BOUNDS_NS};
pub use tables::{DestEntry, NextHop, ServiceEntry, Tables};
pub use worker::{Control, Poll, Worker, WorkerReport};
