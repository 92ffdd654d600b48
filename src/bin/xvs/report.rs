//! What `xvs run` and `xvs replay` print about services and drop reasons.

use std::fmt::Write as _;
use xvs::config::Config;
use xvs::control::director::{id_of, reasons_text};
use xvs::dataplane::{DestCounters, Tables, WorkerStats};

/// Per service, one line per real server with its connections and packets; `counters` is
/// given the server's id in `tables`.
pub fn services_text(cfg: &Config, tables: &Tables, counters: impl Fn(usize) -> DestCounters) -> String {
    let mut out = String::new();
    for svc in &cfg.services {
        let _ = writeln!(out, "{} {}:{} {}", svc.proto.name().to_uppercase(), svc.vip, svc.port, svc.scheduler);
        for r in &svc.servers {
            let c = id_of(tables, svc, r).map(&counters).unwrap_or_default();
            let _ = writeln!(
                out,
                "  -> {}:{} {} weight {}: {} conns, {} packets in, {} packets out",
                r.addr,
                r.port,
                r.mode.name(),
                r.weight,
                c.conns,
                c.in_pkts,
                c.out_pkts
            );
        }
    }
    out
}

/// One line per drop and pass reason that counted something.
pub fn print_reasons(s: &WorkerStats) {
    print!("{}", reasons_text(s));
}
