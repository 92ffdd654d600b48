//! Our XDP programs (C in `bpf/`, built by `build.rs`) and their loader and maps.

pub mod steer;
