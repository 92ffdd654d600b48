//! xvs: a user-space, poll-mode L4 load-balancing director with IPVS semantics.
//!
//! The crate is the packet core (parse, schedule, track, rewrite) plus the control plane that
//! feeds it. Every per-packet decision runs through [`dataplane::Pipeline::process`], a pure
//! function of the frame, the tables snapshot, the worker's connection shard and a clock.
#![deny(unsafe_code)]

pub mod config;
pub mod conn;
pub mod control;
pub mod dataplane;
pub mod health;
pub mod keepalived;
pub mod metrics;
pub mod modes;
pub mod rules;
pub mod sched;
pub mod service;
pub mod stats;
pub mod system;
pub mod wire;
