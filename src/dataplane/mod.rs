//! The data plane: tables snapshot, per-packet pipeline, ports and the worker loop.

pub mod frame;
pub mod handoff;
pub mod pipeline;
pub mod port;
pub mod stats;
pub mod steer;
pub mod tables;
pub mod worker;
pub mod xsk;

pub use frame::Frame;
pub use handoff::Handoff;
pub use pipeline::{Parse, Parsed, Pipeline};
pub use port::{Desc, FramePool, FrameStore, Frames, MemPort, PcapPort, Port, RingStats, BURST, FRAME_SIZE, HEADROOM};
pub use stats::{DestCounters, DropReason, PassReason, Verdict, WorkerStats};
pub use tables::{DestEntry, NextHop, ServiceEntry, Tables};
pub use worker::{Control, Poll, Worker, WorkerReport};
