//! Ports: where frames come from and go to. [`Port`] and [`FrameStore`] are what the worker
//! drives; [`MemPort`] (tests, benchmarks), [`PcapPort`] (`xvs replay`) and `xsk` (AF_XDP,
//! the only module allowed `unsafe`) implement them.

mod port;
pub mod xsk;

pub use port::*;
