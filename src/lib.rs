//! xvs: a user-space, poll-mode L4 load-balancing director with IPVS semantics.
//!
//! The crate is the packet core (parse, schedule, track, rewrite) plus the control plane that
//! feeds it. Every per-packet decision runs through [`dataplane::Pipeline::process_burst_to`]
//! (the worker's; [`dataplane::Pipeline::process_burst`] is the same without transmit lists), a
//! pure function of the frames, the tables snapshot, the worker's connection shard and a clock.
//!
//! Layers, lowest first (a layer uses only those before it; `tests/layers.rs` enforces it):
//! `model` and `wire` (vocabulary, packet views), `modes` (rewrites), `sched`, `conn`,
//! `dataplane` (tables, pipeline, worker, io, xdp), then `ipvsadm` and `config` (languages
//! over the model), then `control` (the running control plane), then the binaries.
#![deny(unsafe_code)]

pub mod config;
pub mod conn;
pub mod control;
pub mod dataplane;
pub mod ipvsadm;
pub mod model;
pub mod modes;
pub mod sched;
pub mod wire;
