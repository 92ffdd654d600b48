//! Prometheus metrics: `GET /metrics` on `metrics.listen` (off unless configured), served by
//! `tiny_http` on a control-plane thread and encoded by `prometheus-client`.
//!
//! Each scrape asks the control loop for a snapshot (the same counters `xvsadm -L --stats`
//! shows, the workers' datapath counters and the health checks' state) and encodes it.
//! Counters are cumulative since start (`xvsadm -Z` zeroes what xvsadm shows, not these:
//! Prometheus expects counters never to go back). Series follow the tables the workers run: a
//! server a failed health check took out has no series until it is back (and its counters
//! restart, as a new server's do); `xvs_server_up` of a checked server is always there.

use crate::control::health::TargetId;
use crate::control::{Reply, Request};
use crate::dataplane::{DropReason, PassReason, WorkerReport};
use crate::dataplane::{LoopRounds, LOOP_BOUNDS_NS};
use crate::ipvsadm::ServiceKey;
use crate::model::ServiceView;
use crossbeam_channel::{bounded, Sender};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// What a scrape shows.
pub struct Snapshot<'a> {
    pub services: Vec<ServiceView>,
    pub reports: &'a [WorkerReport],
    /// Frames the XDP program redirected to the workers and passed to the kernel.
    pub xdp: (u64, u64),
    /// Servers with a health check.
    pub checked: Vec<TargetId>,
    pub down: &'a HashSet<TargetId>,
    pub transitions: &'a HashMap<TargetId, u64>,
    /// Each running sync daemon's role and counters (see `SyncDaemon::counters`).
    pub sync: Vec<(&'static str, Vec<(&'static str, u64)>)>,
    /// VIPs announced over BGP now, and those configured but withdrawn.
    pub bgp: Vec<(std::net::Ipv4Addr, bool)>,
}

type Labels = Vec<(&'static str, String)>;

/// A worker's loop round histogram, counted by the worker itself: encoded as it is (a
/// Prometheus histogram in seconds).
#[derive(Debug, Default)]
struct LoopRoundsMetric(std::sync::OnceLock<LoopRounds>);

impl TypedMetric for LoopRoundsMetric {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LoopRoundsMetric {
    fn encode(&self, mut e: MetricEncoder) -> Result<(), std::fmt::Error> {
        let r = self.0.get().copied().unwrap_or_default();
        // Per bucket (the encoder adds them up), the last one unbounded.
        let bounds = LOOP_BOUNDS_NS.iter().map(|&ns| ns as f64 / 1e9).chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(r.buckets).collect();
        e.encode_histogram::<NoLabelSet>(r.sum_ns as f64 / 1e9, r.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

struct Metrics {
    registry: Registry,
}

impl Metrics {
    fn counter(&mut self, name: &str, help: &str) -> Family<Labels, Counter> {
        let f = Family::<Labels, Counter>::default();
        self.registry.register(name, help, f.clone());
        f
    }
    fn gauge(&mut self, name: &str, help: &str) -> Family<Labels, Gauge> {
        let f = Family::<Labels, Gauge>::default();
        self.registry.register(name, help, f.clone());
        f
    }
    /// `{prefix}_{connections,in_packets,...}`: one counter per [`crate::control::ServerCounters::five`].
    fn counters5(&mut self, prefix: &str, what: &str) -> Vec<Family<Labels, Counter>> {
        ["connections", "in_packets", "out_packets", "in_bytes", "out_bytes"]
            .iter()
            .map(|n| self.counter(&format!("{prefix}_{n}"), &format!("{what} {n}")))
            .collect()
    }
    /// `{prefix}_rate_{cps,in_pps,...}`: one gauge per [`crate::control::Rates::five`].
    fn rates5(&mut self, prefix: &str, what: &str) -> Vec<Family<Labels, Gauge>> {
        ["cps", "in_pps", "out_pps", "in_bps", "out_bps"]
            .iter()
            .map(|n| self.gauge(&format!("{prefix}_rate_{n}"), &format!("{what} {n} (IPVS estimator, 2 s samples)")))
            .collect()
    }
}

fn svc_labels(k: &ServiceKey) -> Labels {
    vec![("proto", k.proto.name().into()), ("vip", k.addr.to_string()), ("port", k.port.to_string())]
}

/// Encodes a snapshot as Prometheus text.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut m = Metrics { registry: Registry::with_prefix("xvs") };
    let svc_c = m.counters5("service", "Service");
    let srv_c = m.counters5("server", "Real server");
    let svc_r = m.rates5("service", "Service");
    let srv_r = m.rates5("server", "Real server");
    let active = m.gauge("server_active_connections", "Connections in ESTABLISHED");
    let inactive = m.gauge("server_inactive_connections", "Other connections");
    let persist = m.gauge("server_persistent_templates", "Persistence templates");
    let weight = m.gauge("server_weight", "Weight the schedulers use");
    let up = m.gauge("server_up", "Health check verdict (1 up, 0 down); only checked servers");
    let trans = m.counter("server_health_transitions", "Health state changes");
    for v in &s.services {
        let k = ServiceKey::of(&v.service);
        let t = v.total.unwrap_or_default();
        for (f, n) in svc_c.iter().zip(t.five()) {
            f.get_or_create(&svc_labels(&k)).inc_by(n);
        }
        for (f, n) in svc_r.iter().zip(v.rate.five()) {
            f.get_or_create(&svc_labels(&k)).set(n as i64);
        }
        for (i, (r, c)) in v.service.servers.iter().zip(&v.counters).enumerate() {
            let mut l = svc_labels(&k);
            l.push(("server", format!("{}:{}", r.addr, r.port)));
            let e = v.rates.get(i).copied().unwrap_or_default();
            for (f, n) in srv_r.iter().zip(e.five()) {
                f.get_or_create(&l).set(n as i64);
            }
            for (f, n) in srv_c.iter().zip(c.five()) {
                f.get_or_create(&l).inc_by(n);
            }
            active.get_or_create(&l).set(c.active as i64);
            inactive.get_or_create(&l).set(c.inactive as i64);
            persist.get_or_create(&l).set(c.persist as i64);
            weight.get_or_create(&l).set(r.weight as i64);
        }
    }
    for id in &s.checked {
        let mut l = svc_labels(&id.0);
        l.push(("server", format!("{}:{}", id.1, id.2)));
        up.get_or_create(&l).set(if s.down.contains(id) { 0 } else { 1 });
        trans.get_or_create(&l).inc_by(s.transitions.get(id).copied().unwrap_or(0));
    }
    let rx = m.counter("worker_rx_frames", "Frames received by the worker");
    let tx = m.counter("worker_tx_frames", "Frames sent by the worker");
    let drops = m.counter("worker_dropped_frames", "Frames dropped, by reason");
    let passes = m.counter("worker_passed_frames", "Frames not for the director, by reason");
    let handoff = m.counter("worker_handoffs", "Frames handed between workers (out, in, full)");
    let conns = m.gauge("worker_connections", "Connections and templates in the worker's table");
    let evicted = m.counter(
        "worker_evicted_embryonic",
        "Half-open connections evicted to make room for new ones (a full table, a SYN flood)",
    );
    let toa = m.counter(
        "worker_toa_segments",
        "FULLNAT opening segments of TOA services: with the option added, or without (no room)",
    );
    let rounds = Family::<Labels, LoopRoundsMetric>::default();
    m.registry.register(
        "worker_loop_round_seconds",
        "Duration of the worker's loop rounds (one rx burst per port, housekeeping, control; sleeps excluded)",
        rounds.clone(),
    );
    let longest = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    m.registry.register(
        "worker_loop_round_max_seconds",
        "The worker's longest loop round since start",
        longest.clone(),
    );
    let ring = m.counter("worker_ring_events", "AF_XDP ring counters (kernel drops, wakeups)");
    let lost = m.gauge("worker_frames_lost", "Frames neither free nor lent to the kernel (must be 0)");
    for r in s.reports {
        let w = || vec![("worker", r.worker.to_string())];
        rx.get_or_create(&w()).inc_by(r.stats.rx_frames);
        tx.get_or_create(&w()).inc_by(r.stats.tx_frames);
        for d in DropReason::ALL {
            let mut l = w();
            l.push(("reason", d.name().into()));
            drops.get_or_create(&l).inc_by(r.stats.dropped(d));
        }
        for p in PassReason::ALL {
            let mut l = w();
            l.push(("reason", p.name().into()));
            passes.get_or_create(&l).inc_by(r.stats.passed(p));
        }
        for (dir, n) in [("out", r.stats.handoff_out), ("in", r.stats.handoff_in), ("full", r.stats.handoff_full)] {
            let mut l = w();
            l.push(("direction", dir.into()));
            handoff.get_or_create(&l).inc_by(n);
        }
        conns.get_or_create(&w()).set(r.conns as i64);
        evicted.get_or_create(&w()).inc_by(r.shard.evicted_embryonic);
        for (what, n) in [("added", r.stats.toa_added), ("no_room", r.stats.toa_no_room)] {
            let mut l = w();
            l.push(("result", what.into()));
            toa.get_or_create(&l).inc_by(n);
        }
        lost.get_or_create(&w()).set(r.lost());
        let _ = rounds.get_or_create(&w()).0.set(r.loop_rounds);
        longest.get_or_create(&w()).set(r.loop_rounds.max_ns as f64 / 1e9);
        for (i, k) in r.rings.iter().enumerate() {
            for (what, n) in [
                ("rx_dropped", k.rx_dropped),
                ("rx_ring_full", k.rx_ring_full),
                ("rx_fill_ring_empty", k.rx_fill_ring_empty),
                ("tx_invalid_descs", k.tx_invalid_descs),
                ("tx_ring_empty", k.tx_ring_empty),
                ("wakeups", k.wakeups),
                ("pass_dropped", k.pass_dropped),
            ] {
                let mut l = w();
                l.push(("ring", i.to_string()));
                l.push(("counter", what.into()));
                ring.get_or_create(&l).inc_by(n);
            }
        }
    }
    let daemon = m.gauge("sync_daemon_running", "Connection sync daemons running, by role");
    let sync =
        m.counter("sync_events", "Connection sync: datagrams and connections sent, received, installed, dropped");
    for (role, counters) in &s.sync {
        daemon.get_or_create(&vec![("role", role.to_string())]).set(1);
        for (what, n) in counters {
            sync.get_or_create(&vec![("role", role.to_string()), ("event", what.to_string())]).inc_by(*n);
        }
    }
    let bgp = m.gauge("bgp_vip_announced", "1 while the VIP is announced over BGP, 0 withdrawn");
    for (vip, on) in &s.bgp {
        bgp.get_or_create(&vec![("vip", vip.to_string())]).set(i64::from(*on));
    }
    let xdp = m.counter("xdp_frames", "Frames the XDP program redirected to the workers or passed to the kernel");
    xdp.get_or_create(&vec![("verdict", "redirected".into())]).inc_by(s.xdp.0);
    xdp.get_or_create(&vec![("verdict", "passed".into())]).inc_by(s.xdp.1);
    let mut out = String::new();
    if encode(&mut out, &m.registry).is_err() {
        out.clear();
    }
    out
}

/// How long a rendered page is served again: scrapes at any rate cost the control loop one
/// render a second.
pub const CACHE: Duration = Duration::from_secs(1);

/// Serves `GET /metrics` on `addr`. A page older than [`CACHE`] is rendered again by a
/// [`Request::Metrics`] to the control loop over `control`, a channel of its own (scrapes
/// never queue behind xvsadm); the counters come from the workers' boards, so no scrape
/// reaches a worker.
pub fn serve(
    addr: SocketAddr,
    control: Sender<(Request, Sender<Reply>)>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| std::io::Error::other(format!("metrics.listen: cannot listen on {addr}: {e}")))?;
    std::thread::Builder::new().name("xvs-metrics".into()).spawn(move || {
        let mut cached: Option<(Instant, String)> = None;
        for req in server.incoming_requests() {
            let (code, body, ctype) = if req.method() != &tiny_http::Method::Get {
                (405, "only GET\n".to_string(), "text/plain")
            } else if req.url() != "/metrics" {
                (404, "see /metrics\n".to_string(), "text/plain")
            } else {
                let fresh = cached.as_ref().filter(|(at, _)| at.elapsed() < CACHE).map(|(_, t)| t.clone());
                let text = fresh.or_else(|| {
                    let (tx, rx) = bounded(1);
                    let reply = control
                        .send((Request::Metrics, tx))
                        .ok()
                        .and_then(|_| rx.recv_timeout(Duration::from_secs(10)).ok());
                    match reply {
                        Some(Reply::Metrics { text }) => {
                            cached = Some((Instant::now(), text.clone()));
                            Some(text)
                        }
                        _ => None,
                    }
                });
                match text {
                    Some(text) => (200, text, "application/openmetrics-text; version=1.0.0; charset=utf-8"),
                    None => (503, "the director did not answer\n".to_string(), "text/plain"),
                }
            };
            let mut resp = tiny_http::Response::from_string(body).with_status_code(code);
            if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()) {
                resp = resp.with_header(h);
            }
            let _ = req.respond(resp);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_rounds_are_a_histogram_in_seconds_with_the_longest_beside() {
        let mut l = LoopRounds::default();
        for ns in [500, 2_000, 2_000, 20_000_000] {
            l.record(ns);
        }
        let reports = [WorkerReport { worker: 3, loop_rounds: l, ..WorkerReport::default() }];
        let (down, transitions) = (HashSet::new(), HashMap::new());
        let s = Snapshot {
            services: Vec::new(),
            reports: &reports,
            xdp: (0, 0),
            checked: Vec::new(),
            down: &down,
            transitions: &transitions,
            sync: vec![("backup", vec![("datagrams", 5), ("created", 12)])],
            bgp: vec![("198.18.0.100".parse().unwrap(), true)],
        };
        let page = render(&s);
        for want in [
            "xvs_sync_daemon_running{role=\"backup\"} 1",
            "xvs_sync_events_total{role=\"backup\",event=\"created\"} 12",
            "xvs_bgp_vip_announced{vip=\"198.18.0.100\"} 1",
        ] {
            assert!(page.lines().any(|x| x == want), "no line {want}:\n{page}");
        }
        for want in [
            "# TYPE xvs_worker_loop_round_seconds histogram",
            "xvs_worker_loop_round_seconds_count{worker=\"3\"} 4",
            "xvs_worker_loop_round_seconds_bucket{le=\"0.000001\",worker=\"3\"} 1",
            "xvs_worker_loop_round_seconds_bucket{le=\"0.00001\",worker=\"3\"} 3",
            "xvs_worker_loop_round_seconds_bucket{le=\"0.01\",worker=\"3\"} 3",
            "xvs_worker_loop_round_seconds_bucket{le=\"0.05\",worker=\"3\"} 4",
            "xvs_worker_loop_round_seconds_bucket{le=\"+Inf\",worker=\"3\"} 4",
            "xvs_worker_loop_round_max_seconds{worker=\"3\"} 0.02",
        ] {
            assert!(page.lines().any(|x| x == want), "no line {want}:\n{page}");
        }
    }
}
