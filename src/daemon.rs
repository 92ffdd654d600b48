//! `xvs run`: the director daemon. Attaches the steering program, binds one AF_XDP socket per
//! (interface, queue), starts one worker per configured core and runs until SIGINT/SIGTERM.
//! The main thread is the control plane: it re-resolves next hops and pushes new tables
//! snapshots to the workers over their channels; SIGUSR1 prints the counters.

use anyhow::{bail, Context, Result};
use crossbeam_channel::{bounded, Sender};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs::config::Config;
use xvs::conn::{TcpState, UDP_STATE};
use xvs::control::{self, Reply, Request, ServerCounters, ServiceView};
use xvs::dataplane::steer::{SteerSet, Steering};
use xvs::dataplane::xsk::{UmemFrames, XskPort, XskSizes};
use xvs::dataplane::{
    Control, DestCounters, DropReason, Handoff, PassReason, Pipeline, Tables, Worker, WorkerReport, WorkerStats,
};
use xvs::health::{self, HealthChecker, SourcePorts, TargetId, Transition};
use xvs::rules::{self, Command, RuleError, ServiceKey};
use xvs::service::RealServer;
use xvs::stats::Accounting;
use xvs::system;

/// How often next hops are resolved again.
const REFRESH: Duration = Duration::from_secs(2);

struct WorkerHandle {
    ctrl: Sender<Control>,
    thread: std::thread::JoinHandle<WorkerReport>,
}

fn build_tables(cfg: &Config, wait: Duration, quiet: bool) -> Tables {
    let r = system::resolve(cfg, wait);
    if !quiet {
        for (ip, why) in &r.unresolved {
            tracing::warn!(
                "next hop for {ip} unresolved: {why} (its frames are dropped as no_neighbour until it resolves)"
            );
        }
    }
    Tables::build(&system::with_resolved(cfg, &r))
}

pub fn run(config: &Path) -> Result<()> {
    let mut cfg = Config::load(config).with_context(|| format!("invalid config {}", config.display()))?;
    system::complete_interfaces(&mut cfg)?;
    if cfg.dip().is_none() {
        bail!("director.dip: not set and {} has no IPv4 address", cfg.interfaces[0].name);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let usr1 = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGHUP, hup.clone())?;
    signal_hook::flag::register(SIGINT, stop.clone())?;
    signal_hook::flag::register(SIGTERM, stop.clone())?;
    signal_hook::flag::register(SIGUSR1, usr1.clone())?;
    check_local_ports(&cfg);

    let workers = cfg.workers;
    let names: Vec<String> = cfg.interfaces.iter().map(|i| i.name.clone()).collect();
    let mut queues = Vec::new();
    for n in &names {
        let q = xvs::dataplane::steer::rx_queues(n)?;
        if q < workers as u32 {
            bail!(
                "director.workers: {workers} workers need at least {workers} queues on {n}, which has {q} \
                 (every worker transmits on its own queue: add queues, or use fewer workers)"
            );
        }
        queues.push(q);
    }
    let tables = Arc::new(build_tables(&cfg, Duration::from_secs(2), false));
    let steering = Steering::attach(&names)?;
    steering.sync(&SteerSet::from_tables(&tables))?;

    let sizes = XskSizes { frames: cfg.umem_frames, ..XskSizes::default() };
    let handoff = (workers > 1).then(|| Arc::new(Handoff::new(workers, 1024)));
    let mut handles = Vec::new();
    let mut summary = Vec::new();
    for w in 0..workers {
        let mut frames = UmemFrames::new(&sizes)?;
        let mut ports = Vec::new();
        let mut port_ifaces = Vec::new();
        let owned: Vec<(usize, u32)> = (0..names.len())
            .flat_map(|i| (0..queues[i]).filter(move |q| q % workers as u32 == w as u32).map(move |q| (i, q)))
            .collect();
        if owned.len() > xvs::dataplane::worker::MAX_PORTS {
            bail!("worker {w} would drive {} queues; at most {}", owned.len(), xvs::dataplane::worker::MAX_PORTS);
        }
        let fill_target = sizes.frames / (2 * owned.len() as u32);
        for &(i, q) in &owned {
            let p = XskPort::open(&mut frames, &names[i], q, &sizes, fill_target)?;
            steering.register_socket(i, q, p.fd())?;
            summary.push(format!(
                "{} queue {q}: {} XDP, {}{} -> worker {w}",
                names[i],
                steering.mode(i).map_or("?", |m| m.name()),
                if p.info.zero_copy { "zero-copy" } else { "copy mode" },
                match &p.info.zero_copy_refused {
                    Some(why) => format!(" (zero-copy refused: {why})"),
                    None => String::new(),
                }
            ));
            ports.push(p);
            port_ifaces.push(i as u8);
        }
        let (tx, rx) = bounded(16);
        let pipeline = Pipeline::new(tables.clone(), w);
        let core = cfg.cores.get(w as usize).copied();
        let handoff = handoff.clone();
        let thread = std::thread::Builder::new()
            .name(format!("xvs-worker-{w}"))
            .spawn(move || {
                if let Some(c) = core {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                        tracing::warn!("worker {w}: could not pin to core {c}");
                    }
                }
                let mut worker = Worker::new(w, pipeline, ports, frames, Some(rx));
                worker.map_ports(&port_ifaces);
                if let Some(h) = handoff {
                    worker.set_handoff(h);
                }
                worker.run();
                worker.report()
            })
            .context("starting a worker thread")?;
        handles.push(WorkerHandle { ctrl: tx, thread });
    }
    println!("xvs: director up: {} interface(s), {workers} worker(s)", names.len());
    for s in &summary {
        println!("  {s}");
    }
    for (w, c) in (0..workers).map(|w| (w, cfg.cores.get(w as usize))) {
        match c {
            Some(c) => println!("  worker {w}: pinned to core {c}"),
            None => println!("  worker {w}: not pinned (director.cores not set)"),
        }
    }
    for t in &cfg.interfaces {
        println!(
            "  {}: mac {} ip {}",
            t.name,
            t.mac.map_or("?".into(), |m| m.to_string()),
            t.ip.map_or("-".into(), |a| a.to_string())
        );
    }
    println!("  services: {}, dip {}", cfg.services.len(), cfg.dip().map_or("-".into(), |a| a.to_string()));

    let requests = serve_control(&cfg.control_socket)?;
    println!("  control socket: {}", cfg.control_socket.display());
    if let Some(addr) = cfg.metrics {
        xvs::metrics::serve(addr, requests.1.clone())?;
        println!("  metrics: http://{addr}/metrics");
    }
    // Started even without checks configured, so that a reload can add some (its threads
    // sleep while there is nothing to check). Checks avoid the FULLNAT local ports.
    let ports = SourcePorts::new(Some(cfg.local_ports));
    if !cfg.health.is_empty() {
        match ports.range() {
            Some((lo, hi)) => println!("  health checks: source ports {lo}-{hi} (outside director.local_ports)"),
            None => println!("  health checks: kernel-chosen source ports"),
        }
    }
    let checks = HealthChecker::start(ports)?;

    let mut d = Director {
        path: config.to_path_buf(),
        admin: cfg,
        down: HashSet::new(),
        transitions: HashMap::new(),
        epoch: 0,
        appeared: HashMap::new(),
        current: tables,
        handles,
        steering,
        accounting: Accounting::default(),
        checks,
    };
    d.update_checks();
    let mut last_refresh = Instant::now();
    let mut last_sample = Instant::now();
    let mut worker_died = false;
    let events = d.checks.events.clone();
    while !stop.load(Ordering::Relaxed) {
        crossbeam_channel::select! {
            recv(requests.0) -> r => if let Ok((req, reply)) = r {
                let r = d.handle(req);
                let _ = reply.send(r);
            },
            recv(events) -> e => if let Ok(t) = e {
                d.health_transition(t);
            },
            default(Duration::from_millis(50)) => {}
        }
        if d.handles.iter().any(|h| h.thread.is_finished()) {
            tracing::error!("a worker stopped unexpectedly: shutting down");
            worker_died = true;
            break;
        }
        if usr1.swap(false, Ordering::Relaxed) {
            let cfg = d.effective();
            print_stats(&cfg, &collect(&d.handles), &d.steering);
        }
        if hup.swap(false, Ordering::Relaxed) {
            match d.reload() {
                Ok(()) => tracing::info!("SIGHUP: reloaded {}", d.path.display()),
                Err(e) => tracing::error!("SIGHUP: reload refused, nothing changed: {e}"),
            }
        }
        if last_sample.elapsed() >= xvs::stats::SAMPLE {
            // A worker that did not answer would be missing from the sums: no sample then
            // (the next one covers the longer interval, scaled to 2 s).
            if let (raw, true) = d.raw_views() {
                d.accounting.sample(&raw, last_sample.elapsed());
                last_sample = Instant::now();
            }
        }
        if last_refresh.elapsed() >= REFRESH {
            last_refresh = Instant::now();
            let t = build_tables(&d.effective(), Duration::from_millis(200), true);
            if !same_next_hops(&t, &d.current) {
                // The steering maps hold services and servers, not next hops: unchanged.
                tracing::info!("next hops changed: new tables for the workers");
                let t = Arc::new(t);
                for h in &d.handles {
                    let _ = h.ctrl.send(Control::Tables(t.clone()));
                }
                d.current = t;
            }
        }
    }
    let Director { admin: cfg, handles, steering, down, .. } = d;
    let cfg = effective(&cfg, &down);
    for h in &handles {
        let _ = h.ctrl.send(Control::Shutdown);
    }
    let mut reports = Vec::new();
    for h in handles {
        match h.thread.join() {
            Ok(r) => reports.push(r),
            Err(_) => tracing::error!("a worker panicked"),
        }
    }
    print_stats(&cfg, &reports, &steering);
    let _ = std::fs::remove_file(&cfg.control_socket);
    steering.detach()?;
    println!("xvs: stopped; XDP programs detached from {}", names.join(", "));
    if worker_died || reports.len() < workers as usize {
        bail!("a worker stopped unexpectedly");
    }
    Ok(())
}

/// The admin config with the health checks' verdicts applied: failed servers leave their
/// service, or keep their place with weight 0 where the service inhibits on failure.
fn effective(admin: &Config, down: &HashSet<TargetId>) -> Config {
    let mut cfg = admin.clone();
    if down.is_empty() {
        return cfg;
    }
    for svc in cfg.services.iter_mut() {
        let key = ServiceKey::of(svc);
        let is_down = |r: &RealServer| down.contains(&(key, r.addr, r.port));
        if health::inhibits(&admin.health, &key) {
            for r in svc.servers.iter_mut().filter(|r| is_down(r)) {
                r.weight = 0;
            }
        } else {
            svc.servers.retain(|r| !is_down(r));
        }
    }
    cfg
}

/// The control plane's state: what the operator configured, what the health checks found,
/// and the workers running the result.
struct Director {
    /// The config file (`xvs reload`, SIGHUP).
    path: PathBuf,
    /// The services as configured and changed by `xvsadm`.
    admin: Config,
    /// Servers failing their health check.
    down: HashSet<TargetId>,
    /// Health transitions per server (for the metrics).
    transitions: HashMap<TargetId, u64>,
    /// Health-check epochs: one per change of the targets, and the epoch in which each
    /// checked server appeared (so that an event from before it was deleted and re-added is
    /// recognised as stale).
    epoch: u64,
    appeared: HashMap<TargetId, u64>,
    current: Arc<Tables>,
    handles: Vec<WorkerHandle>,
    steering: Steering,
    accounting: Accounting,
    checks: HealthChecker,
}

impl Director {
    fn effective(&self) -> Config {
        effective(&self.admin, &self.down)
    }

    /// Installs a new admin config: new tables to every worker (they switch at a batch
    /// boundary), the steering maps, and the health checks' targets.
    fn install(&mut self, next: Config) {
        let view = effective(&next, &self.down);
        let t = Arc::new(build_tables(&view, Duration::from_secs(1), false));
        for h in &self.handles {
            let _ = h.ctrl.send(Control::Tables(t.clone()));
        }
        if let Err(e) = self.steering.sync(&SteerSet::from_tables(&t)) {
            tracing::error!("{e}");
        }
        tracing::info!("tables changed: {} service(s)", view.services.len());
        self.admin = next;
        self.current = t;
        self.update_checks();
    }

    fn update_checks(&mut self) {
        let targets = health::targets(&self.admin.services, &self.admin.health);
        // A server no longer checked (deleted, or its check removed) is not held down.
        self.down.retain(|id| targets.iter().any(|t| t.id == *id));
        self.transitions.retain(|id, _| targets.iter().any(|t| t.id == *id));
        self.epoch += 1;
        let epoch = self.epoch;
        self.appeared.retain(|id, _| targets.iter().any(|t| t.id == *id));
        for t in &targets {
            self.appeared.entry(t.id).or_insert(epoch);
        }
        self.checks.set_targets(targets, epoch);
    }

    fn health_transition(&mut self, t: Transition) {
        let (key, addr, port) = t.id;
        if self.appeared.get(&t.id) != Some(&t.since) {
            return; // deleted (and perhaps added again) since the check ran
        }
        let changed = if t.up { self.down.remove(&t.id) } else { self.down.insert(t.id) };
        if !changed {
            return;
        }
        *self.transitions.entry(t.id).or_default() += 1;
        // Installed first, logged after: once the log says so, the workers have the tables.
        let next = self.admin.clone();
        self.install(next);
        let action = if health::inhibits(&self.admin.health, &key) { "weight 0" } else { "out of scheduling" };
        if t.up {
            tracing::warn!("health: {addr}:{port} of {key} is up ({}): back in scheduling", t.why);
        } else {
            tracing::warn!("health: {addr}:{port} of {key} is down ({}): {action}", t.why);
        }
    }

    /// Re-reads the config file. Services, health checks, timeouts and neighbours change
    /// live; what sockets, threads and memory were built from needs a restart, and a file
    /// that changes it is refused whole.
    fn reload(&mut self) -> Result<(), String> {
        let mut next = Config::load(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let cur = &self.admin;
        if next.interfaces.len() != cur.interfaces.len()
            || next.interfaces.iter().zip(&cur.interfaces).any(|(n, c)| {
                n.name != c.name || n.mac.is_some_and(|m| Some(m) != c.mac) || n.ip.is_some_and(|a| Some(a) != c.ip)
            })
        {
            return Err("director.interfaces: changed; restart xvs to apply".into());
        }
        next.interfaces = cur.interfaces.clone();
        let fixed: [(&str, bool); 8] = [
            ("director.workers", next.workers != cur.workers),
            ("director.cores", next.cores != cur.cores),
            ("director.umem_frames", next.umem_frames != cur.umem_frames),
            ("director.dip", next.dip() != cur.dip()),
            ("director.local_ports", next.local_ports != cur.local_ports),
            ("conn.max_per_worker", next.max_conns_per_worker != cur.max_conns_per_worker),
            ("control.socket", next.control_socket != cur.control_socket),
            ("metrics.listen", next.metrics != cur.metrics),
        ];
        if let Some((field, _)) = fixed.iter().find(|(_, changed)| *changed) {
            return Err(format!("{field}: changed; restart xvs to apply (nothing was reloaded)"));
        }
        self.install(next);
        Ok(())
    }

    /// One control request. Changes build a complete new config that is validated before
    /// anything is touched; a refused change leaves everything as it was.
    fn handle(&mut self, req: Request) -> Reply {
        let failed = |e: RuleError| Reply::Failed { code: e.exit_code(), message: e.to_string() };
        let cmds: Vec<Command> = match req {
            Request::List => {
                let views = self.accounting.view(self.raw_views().0, false);
                return Reply::Services { size: self.size(), services: views };
            }
            Request::Connections => {
                let mut entries = Vec::new();
                let mut total = 0u64;
                for h in &self.handles {
                    let (tx, rx) = bounded(1);
                    let left = control::MAX_CONN_ENTRIES - entries.len();
                    if h.ctrl.send(Control::Conns(left, tx)).is_ok() {
                        if let Ok((mut e, n)) = rx.recv_timeout(Duration::from_secs(5)) {
                            entries.append(&mut e);
                            total += n as u64;
                        }
                    }
                }
                return Reply::Connections { entries, total };
            }
            Request::Save => {
                // What the operator configured, including servers a health check holds out.
                return Reply::Text { text: rules::save_rules(&self.admin.services) };
            }
            Request::Workers => {
                return Reply::Text { text: workers_text(&collect(&self.handles), &self.steering) };
            }
            Request::Timeouts => {
                let t = &self.admin.timeouts.secs;
                return Reply::Timeouts {
                    tcp: t[TcpState::Established as usize],
                    tcpfin: t[TcpState::FinWait as usize],
                    udp: t[UDP_STATE as usize],
                };
            }
            Request::Reload => {
                return match self.reload() {
                    Ok(()) => Reply::Done,
                    Err(message) => Reply::Failed { code: 2, message },
                }
            }
            Request::Metrics => {
                let raw = self.raw_views().0;
                let reports = collect(&self.handles);
                let (redirected, passed) = self.steering.counters();
                let m = xvs::metrics::Snapshot {
                    services: self.accounting.view(raw, true),
                    reports: &reports,
                    xdp: (redirected, passed),
                    checked: health::targets(&self.admin.services, &self.admin.health).iter().map(|t| t.id).collect(),
                    down: &self.down,
                    transitions: &self.transitions,
                };
                return Reply::Metrics { text: xvs::metrics::render(&m) };
            }
            Request::Ipvsadm { args } => {
                let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
                match rules::parse_command(&args) {
                    Ok(
                        c @ (Command::AddService(..)
                        | Command::EditService(..)
                        | Command::DeleteService(_)
                        | Command::Clear
                        | Command::AddServer(..)
                        | Command::EditServer(..)
                        | Command::DeleteServer(..)),
                    ) => vec![c],
                    Ok(Command::Zero(key)) => {
                        let raw = self.raw_views().0;
                        if let Some(k) = &key {
                            if !raw.iter().any(|v| k.matches(&v.service)) {
                                return failed(RuleError::NoSuchService);
                            }
                        }
                        self.accounting.zero(&raw, key.as_ref());
                        return Reply::Done;
                    }
                    Ok(Command::SetTimeouts { tcp, tcpfin, udp }) => {
                        let mut next = self.admin.clone();
                        for (v, state) in
                            [(tcp, TcpState::Established as u8), (tcpfin, TcpState::FinWait as u8), (udp, UDP_STATE)]
                        {
                            if v != 0 {
                                next.timeouts.secs[state as usize] = v;
                            }
                        }
                        self.install(next);
                        return Reply::Done;
                    }
                    Ok(_) => return Reply::Failed { code: 2, message: "not a command that changes the tables".into() },
                    Err(e) => return failed(e),
                }
            }
            Request::Restore { text } => match rules::parse_rules(&text) {
                Ok(cmds) => cmds.into_iter().map(|(_, c)| c).collect(),
                Err(e) => return failed(e),
            },
        };
        let mut services = self.admin.services.clone();
        for c in &cmds {
            if let Err(e) = rules::apply(&mut services, c) {
                return failed(e);
            }
        }
        match self.admin.clone().with_services(services) {
            Ok(next) => {
                self.install(next);
                Reply::Done
            }
            Err(e) => Reply::Failed { code: 2, message: e.to_string() },
        }
    }

    fn size(&self) -> u64 {
        self.admin.max_conns_per_worker as u64 * self.admin.workers as u64
    }

    /// The services the workers run, with their counters summed over the workers (since
    /// start: [`Accounting::view`] applies `-Z`), and whether every worker answered.
    fn raw_views(&self) -> (Vec<ServiceView>, bool) {
        let reports = collect(&self.handles);
        let complete = reports.len() == self.handles.len();
        let cfg = self.effective();
        let views = cfg
            .services
            .iter()
            .enumerate()
            .map(|(si, svc)| ServiceView {
                service: svc.clone(),
                counters: (0..svc.servers.len())
                    .map(|di| {
                        let d = sum_dest(&reports, si, di);
                        let mut c = ServerCounters {
                            conns: d.conns,
                            in_pkts: d.in_pkts,
                            out_pkts: d.out_pkts,
                            in_bytes: d.in_bytes,
                            out_bytes: d.out_bytes,
                            ..ServerCounters::default()
                        };
                        for l in reports.iter().filter_map(|r| r.loads.get(si).and_then(|v| v.get(di))) {
                            c.active += l.active;
                            c.inactive += l.inactive;
                            c.persist += l.persist;
                        }
                        c
                    })
                    .collect(),
                ..ServiceView::default()
            })
            .collect();
        (views, complete)
    }
}

type Pending = (Request, Sender<Reply>);

/// Listens on the control socket (mode 0600: only its owner may change the director). Each
/// connection's request goes to the main loop, which owns the tables and the workers' channels.
fn serve_control(path: &Path) -> Result<(crossbeam_channel::Receiver<Pending>, Sender<Pending>)> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!("control.socket: {} is in use by another director", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("control.socket: binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let (tx, rx) = bounded::<Pending>(16);
    let sender = tx.clone();
    std::thread::Builder::new().name("xvs-control".into()).spawn(move || {
        for s in listener.incoming().flatten() {
            let tx = tx.clone();
            let _ = control::serve(s, move |req| {
                let (rtx, rrx) = bounded(1);
                if tx.send((req, rtx)).is_err() {
                    return Reply::Failed { code: 2, message: "the director is stopping".into() };
                }
                rrx.recv_timeout(Duration::from_secs(20))
                    .unwrap_or(Reply::Failed { code: 2, message: "the director did not answer".into() })
            });
        }
    })?;
    Ok((rx, sender))
}

/// FULLNAT local ports must not be handed out by the kernel to the director's own sockets.
fn check_local_ports(cfg: &Config) {
    if !cfg.services.iter().any(|s| s.servers.iter().any(|r| r.mode == xvs::service::FwdMode::FullNat)) {
        return;
    }
    let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else { return };
    let v: Vec<u16> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    if let [lo, hi] = v[..] {
        let (a, b) = cfg.local_ports;
        if a <= hi && lo <= b {
            tracing::warn!(
                "director.local_ports {a}-{b} overlaps the kernel's ephemeral ports {lo}-{hi}: replies to the \
                 director's own connections on those ports go to xvs (set net.ipv4.ip_local_reserved_ports)"
            );
        }
    }
}

fn same_next_hops(a: &Tables, b: &Tables) -> bool {
    a.services
        .iter()
        .flat_map(|s| s.dests.iter().map(|d| d.next_hop))
        .eq(b.services.iter().flat_map(|s| s.dests.iter().map(|d| d.next_hop)))
        && a.gateway() == b.gateway()
}

fn collect(handles: &[WorkerHandle]) -> Vec<WorkerReport> {
    let mut out = Vec::new();
    for h in handles {
        let (tx, rx) = bounded(1);
        if h.ctrl.send(Control::Stats(tx)).is_ok() {
            if let Ok(r) = rx.recv_timeout(Duration::from_secs(1)) {
                out.push(r);
            }
        }
    }
    out
}

/// One real server's counters summed over the workers' reports.
fn sum_dest(reports: &[WorkerReport], si: usize, di: usize) -> DestCounters {
    let mut c = DestCounters::default();
    for d in reports.iter().filter_map(|r| r.stats.dests.get(si).and_then(|v| v.get(di))) {
        c.conns += d.conns;
        c.in_pkts += d.in_pkts;
        c.out_pkts += d.out_pkts;
        c.in_bytes += d.in_bytes;
        c.out_bytes += d.out_bytes;
    }
    c
}

/// Per service, one line per real server with its connections and packets.
pub fn print_services(cfg: &Config, counters: impl Fn(usize, usize) -> DestCounters) {
    for (si, svc) in cfg.services.iter().enumerate() {
        println!("{} {}:{} {}", svc.proto.name().to_uppercase(), svc.vip, svc.port, svc.scheduler);
        for (di, r) in svc.servers.iter().enumerate() {
            let c = counters(si, di);
            println!(
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
}

/// One line per drop and pass reason that counted something.
pub fn print_reasons(s: &WorkerStats) {
    print!("{}", reasons_text(s));
}

fn reasons_text(s: &WorkerStats) -> String {
    let mut out = String::new();
    for d in DropReason::ALL {
        if s.dropped(d) > 0 {
            let _ = writeln!(out, "  dropped {:<16} {:>10}", d.name(), s.dropped(d));
        }
    }
    for p in PassReason::ALL {
        if s.passed(p) > 0 {
            let _ = writeln!(out, "  passed {:<17} {:>10}", p.name(), s.passed(p));
        }
    }
    out
}

/// The XDP program's and each worker's datapath counters (SIGUSR1, exit, `xvsadm --workers`).
fn workers_text(reports: &[WorkerReport], steering: &Steering) -> String {
    let (redirected, passed) = steering.counters();
    let mut out = format!("xdp: {redirected} frames to the workers, {passed} passed to the kernel\n");
    for r in reports {
        let s = &r.stats;
        let _ = writeln!(
            out,
            "worker {}: rx {} tx {} dropped {} passed {} handoff out {} in {} full {} conns {} frames {}/{} free, {} lent, {} lost",
            r.worker,
            s.rx_frames,
            s.tx_frames,
            s.total_drops(),
            s.total_passes(),
            s.handoff_out,
            s.handoff_in,
            s.handoff_full,
            r.conns,
            r.frames_free,
            r.frames_total,
            r.frames_in_kernel,
            r.lost()
        );
        out.push_str(&reasons_text(s));
        for (i, k) in r.rings.iter().enumerate() {
            let _ = writeln!(
                out,
                "  ring {i}: rx_dropped {} rx_ring_full {} fill_empty {} tx_invalid {} tx_ring_empty {} wakeups {} pass_dropped {}",
                k.rx_dropped,
                k.rx_ring_full,
                k.rx_fill_ring_empty,
                k.tx_invalid_descs,
                k.tx_ring_empty,
                k.wakeups,
                k.pass_dropped
            );
        }
    }
    out
}

fn print_stats(cfg: &Config, reports: &[WorkerReport], steering: &Steering) {
    print!("{}", workers_text(reports, steering));
    print_services(cfg, |si, di| sum_dest(reports, si, di));
}
