//! The running control plane: what the operator configured, what the health checks found,
//! and the workers running the result. Every change (xvsadm, reload, SIGHUP, a health
//! transition, a next-hop change) becomes one new tables snapshot sent to every worker.

use super::accounting::Accounting;
use super::health::{self, HealthChecker, TargetId, Transition};
use super::protocol::{Reply, Request, MAX_CONN_ENTRIES};
use super::resolve::{self as system, Resolved};
use crate::config::Config;
use crate::dataplane::stats::StatsBoard;
use crate::dataplane::tables::TablesError;
use crate::dataplane::xdp::steer::{SteerSet, Steering};
use crate::dataplane::{Control, DestCounters, DropReason, PassReason, Tables, WorkerReport, WorkerStats};
use crate::ipvsadm::{self, Command, RuleError, ServiceKey};
use crate::model::{
    DaemonSpec, RealServer, ServerCounters, ServiceView, SyncRole, TcpState, VirtualService, UDP_STATE,
};
use crossbeam_channel::{bounded, Sender};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often next hops are resolved again.
pub const REFRESH: Duration = Duration::from_secs(2);

pub struct WorkerHandle {
    /// Where the worker publishes its counters.
    pub board: Arc<StatsBoard>,
    pub ctrl: Sender<Control>,
    pub thread: std::thread::JoinHandle<WorkerReport>,
}

/// What [`Director::take_over`] found.
#[derive(Debug)]
pub struct TakenOver {
    pub read: usize,
    pub installed: u64,
    pub age_ms: u64,
    /// The sync daemons the previous run had.
    pub daemons: Vec<DaemonSpec>,
    /// Each worker got its predecessor's connections (same seed and worker count).
    pub same_owners: bool,
}

/// Resolves the next hops of `cfg` and builds its snapshot against `prev`. It waits up to
/// `wait` for the kernel to resolve servers, or with `only_new` only servers the last
/// resolution did not know (an unresolved server already known does not stall every change).
/// `last_good` is the previous resolution: an address this one misses keeps its MAC from
/// there; it is replaced by this resolution.
pub fn build_tables(
    cfg: &Config,
    wait: Duration,
    only_new: bool,
    quiet: bool,
    prev: Option<&Tables>,
    last_good: &mut Option<Resolved>,
) -> Result<Tables, TablesError> {
    let known = |a: Option<std::net::Ipv4Addr>| {
        last_good.as_ref().is_some_and(|r| match a {
            Some(a) => r.neighbours.iter().any(|n| n.ip == a) || r.unresolved.iter().any(|(ip, _)| *ip == a),
            None => true,
        })
    };
    let r = system::resolve(cfg, wait, &|a| !only_new || !known(a));
    if !quiet {
        for (ip, why) in &r.unresolved {
            tracing::warn!(
                "next hop for {ip} unresolved: {why} (its frames are dropped as no_neighbour until it resolves)"
            );
        }
    }
    let t = super::tables_for(&system::with_resolved(cfg, &r, last_good.as_ref()), prev);
    // What was missed now but known before stays known for the next round too.
    let mut keep = r;
    if let Some(last) = last_good.as_ref() {
        for n in &last.neighbours {
            if keep.unresolved.iter().any(|(ip, _)| *ip == n.ip) && !keep.neighbours.iter().any(|x| x.ip == n.ip) {
                keep.neighbours.push(n.clone());
            }
        }
        keep.gateway = keep.gateway.or(last.gateway);
    }
    *last_good = Some(keep);
    t
}

/// The admin config with the health checks' verdicts applied: failed servers leave their
/// service, or keep their place with weight 0 where the service inhibits on failure.
pub fn effective(admin: &Config, down: &HashSet<TargetId>) -> Config {
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
pub struct Director {
    /// The config file (`xvs reload`, SIGHUP).
    pub path: PathBuf,
    /// The services as configured and changed by `xvsadm`.
    pub admin: Config,
    /// Servers failing their health check.
    pub down: HashSet<TargetId>,
    /// Health transitions per server (for the metrics).
    pub transitions: HashMap<TargetId, u64>,
    /// Health-check epochs: one per change of the targets, and the epoch in which each
    /// checked server appeared (so that an event from before it was deleted and re-added is
    /// recognised as stale).
    pub epoch: u64,
    pub appeared: HashMap<TargetId, u64>,
    pub current: Arc<Tables>,
    /// The last next-hop resolution (a failed lookup keeps its MAC from here).
    pub resolved: Option<Resolved>,
    pub handles: Vec<WorkerHandle>,
    pub steering: Steering,
    pub accounting: Accounting,
    pub checks: HealthChecker,
    /// The running sync daemons (a master, a backup, or both).
    pub sync: Vec<super::sync::SyncDaemon>,
    /// The VIPs' BGP announcements through BIRD (`"bgp"`), if configured.
    pub announcer: Option<super::announce::Announcer>,
}

impl Director {
    pub fn effective(&self) -> Config {
        effective(&self.admin, &self.down)
    }

    /// Installs a new admin config: new tables to every worker (they switch at a batch
    /// boundary), the steering maps, and the health checks' targets.
    pub fn install(&mut self, next: Config) -> Result<(), TablesError> {
        let view = effective(&next, &self.down);
        // Waiting for the kernel to resolve is worth it only for servers new to us; a change
        // among known ones (a health transition, a weight) must not stall on an unresolved one.
        let t = Arc::new(build_tables(
            &view,
            Duration::from_secs(1),
            true,
            false,
            Some(&self.current),
            &mut self.resolved,
        )?);
        for h in &self.handles {
            send_tables(h, &t);
        }
        self.steer(&t);
        tracing::info!("tables changed: {} service(s)", view.services.len());
        self.admin = next;
        self.current = t;
        self.update_checks();
        self.announce(false);
        Ok(())
    }

    /// Tells BIRD which VIPs to announce: those this director serves that have a real
    /// server with weight (after the health checks); `force` repeats what it said.
    pub fn announce(&mut self, force: bool) {
        if self.announcer.is_none() {
            return;
        }
        let serving = self.serving();
        let mut wanted = std::collections::BTreeMap::new();
        for svc in &self.effective().services {
            let up = serving && svc.servers.iter().any(|r| r.weight > 0);
            *wanted.entry(svc.vip).or_insert(false) |= up;
        }
        if let Some(a) = self.announcer.as_mut() {
            a.apply(&wanted, force);
        }
    }

    /// Whether the VIPs' traffic goes to the workers: not while this director runs only a
    /// backup sync daemon (IPVS's `backup_only`), unless that daemon is told to forward.
    pub fn serving(&self) -> bool {
        let master = self.sync.iter().any(|d| d.spec.role == SyncRole::Master);
        let backup = self.sync.iter().find(|d| d.spec.role == SyncRole::Backup);
        master || backup.is_none_or(|b| b.spec.forward)
    }

    /// The steering maps for tables `t` (without the services while not serving).
    pub fn steer(&self, t: &Tables) {
        let mut set = SteerSet::from_tables(t);
        if !self.serving() {
            set.services.clear();
            set.vips.clear();
        }
        if let Err(e) = self.steering.sync(&set) {
            tracing::error!("{e}");
        }
    }

    /// Writes every worker's connections to `path` for the next run (a hitless restart);
    /// the number written.
    pub fn hand_over(&self, path: &std::path::Path) -> Result<usize, String> {
        let mut h = super::sync::handover::Handover {
            owner_seed: self.current.owner_seed,
            daemons: self.sync.iter().map(|d| d.spec.clone()).collect(),
            workers: Vec::new(),
        };
        for (w, handle) in self.handles.iter().enumerate() {
            let (tx, rx) = bounded(1);
            handle
                .ctrl
                .send_timeout(Control::SyncDump(tx), Duration::from_secs(1))
                .map_err(|_| format!("worker {w} does not take requests"))?;
            h.workers.push(rx.recv_timeout(Duration::from_secs(10)).map_err(|_| format!("worker {w} did not answer"))?);
        }
        super::sync::handover::write(path, &h).map_err(|e| e.to_string())?;
        Ok(h.conns())
    }

    /// Takes what a previous run handed over in `path` (then removed, so that it is never
    /// taken twice). Each worker gets its predecessor's connections when the ownership seed
    /// and the worker count are the same (its frames reach it again: same queues, same
    /// owners), else every worker is offered all and keeps those it owns.
    pub fn take_over(&self, path: &std::path::Path) -> Result<Option<TakenOver>, String> {
        if !path.exists() {
            return Ok(None);
        }
        let read = super::sync::handover::read(path);
        let _ = std::fs::remove_file(path);
        let (h, age_ms) = read.map_err(|e| e.to_string())?;
        let link = Arc::new(crate::dataplane::pipeline::SyncLink {
            timeouts_left: true,
            ..crate::dataplane::pipeline::SyncLink::default()
        });
        let same = h.owner_seed == self.current.owner_seed && h.workers.len() == self.handles.len();
        for (w, conns) in h.workers.iter().enumerate() {
            let targets: Vec<&WorkerHandle> =
                if same { self.handles.get(w).into_iter().collect() } else { self.handles.iter().collect() };
            for chunk in conns.chunks(4096) {
                for t in &targets {
                    if t.ctrl
                        .send_timeout(Control::SyncIn(link.clone(), chunk.to_vec()), Duration::from_secs(1))
                        .is_err()
                    {
                        tracing::warn!("handover: a worker did not take {} connections", chunk.len());
                    }
                }
            }
        }
        // The channels are in order: once each worker answered this, it installed them all.
        for t in &self.handles {
            super::sync::caught_up(&t.ctrl, Duration::from_secs(30));
        }
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let installed = load(&link.created) + load(&link.updated) + load(&link.replaced);
        Ok(Some(TakenOver { read: h.conns(), installed, age_ms, daemons: h.daemons, same_owners: same }))
    }

    /// The daemons changed, and with them perhaps whether this director serves the VIPs:
    /// the steering maps and the BGP announcements follow.
    fn serving_changed(&mut self) {
        let t = self.current.clone();
        self.steer(&t);
        self.announce(false);
    }

    /// Starts a sync daemon (`--start-daemon`); one of each role at most. What ipvsadm's
    /// options cannot say (`peers`, `forward`) and what they leave unset comes from
    /// config.json's daemon of the same role, if it has one.
    pub fn start_daemon(&mut self, spec: &DaemonSpec) -> Result<(), String> {
        let mut spec = spec.clone();
        if let Some(c) = self.admin.sync.iter().find(|c| c.role == spec.role) {
            if spec.peers.is_empty() {
                spec.peers = c.peers.clone();
            }
            spec.forward |= c.forward;
            spec.maxlen = spec.maxlen.or(c.maxlen);
            spec.group = spec.group.or(c.group);
            spec.port = spec.port.or(c.port);
            spec.ttl = spec.ttl.or(c.ttl);
        }
        let spec = &spec;
        if self.sync.iter().any(|d| d.spec.role == spec.role) {
            // The kernel's EEXIST, as ipvsadm words it.
            return Err(format!("Daemon has already run (a {} sync daemon is running)", spec.role.name()));
        }
        let ctrls: Vec<_> = self.handles.iter().map(|h| h.ctrl.clone()).collect();
        let d = super::sync::SyncDaemon::start(spec, &ctrls).map_err(|e| e.to_string())?;
        self.sync.push(d);
        self.serving_changed();
        Ok(())
    }

    /// Stops the sync daemon of `role` (`--stop-daemon`).
    pub fn stop_daemon(&mut self, role: SyncRole) -> Result<(), String> {
        let Some(i) = self.sync.iter().position(|d| d.spec.role == role) else {
            return Err(format!("No daemon is running (no {} sync daemon)", role.name()));
        };
        self.sync.remove(i).stop();
        self.serving_changed();
        Ok(())
    }

    /// Resolves next hops again; when a MAC or route changed, the workers get new tables.
    /// Called on every netlink change notification and on a slow timer.
    pub fn refresh_next_hops(&mut self, wait: Duration) {
        let view = self.effective();
        match build_tables(&view, wait, false, true, Some(&self.current), &mut self.resolved) {
            Ok(t) if !same_next_hops(&t, &self.current) => {
                // The steering maps hold services and servers, not next hops: unchanged.
                tracing::info!("next hops changed: new tables for the workers");
                let t = Arc::new(t);
                for h in &self.handles {
                    send_tables(h, &t);
                }
                self.current = t;
            }
            Ok(_) => {}
            Err(e) => tracing::error!("next-hop refresh: {e}"),
        }
    }

    pub fn update_checks(&mut self) {
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

    /// Applies health transitions, all of them in one new tables snapshot (200 servers
    /// failing together cost one install, not 200).
    pub fn health_transitions(&mut self, ts: impl IntoIterator<Item = Transition>) {
        let mut applied = Vec::new();
        for t in ts {
            if self.appeared.get(&t.id) != Some(&t.since) {
                continue; // deleted (and perhaps added again) since the check ran
            }
            let changed = if t.up { self.down.remove(&t.id) } else { self.down.insert(t.id) };
            if changed {
                *self.transitions.entry(t.id).or_default() += 1;
                applied.push(t);
            }
        }
        if applied.is_empty() {
            return;
        }
        // Installed first, logged after: once the log says so, the workers have the tables.
        let next = self.admin.clone();
        if let Err(e) = self.install(next) {
            // Undone, so that listings keep showing what the workers run.
            for t in &applied {
                if t.up {
                    self.down.insert(t.id);
                } else {
                    self.down.remove(&t.id);
                }
            }
            tracing::error!("health: {} transition(s) not applied, tables not changed: {e}", applied.len());
            return;
        }
        for t in applied {
            let (key, addr, port) = t.id;
            let action = if health::inhibits(&self.admin.health, &key) { "weight 0" } else { "out of scheduling" };
            if t.up {
                tracing::warn!("health: {addr}:{port} of {key} is up ({}): back in scheduling", t.why);
            } else {
                tracing::warn!("health: {addr}:{port} of {key} is down ({}): {action}", t.why);
            }
        }
    }

    /// Re-reads the config file. Services, health checks, timeouts and neighbours change
    /// live; what sockets, threads and memory were built from needs a restart, and a file
    /// that changes it is refused whole.
    pub fn reload(&mut self) -> Result<(), String> {
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
        let fixed: [(&str, bool); 13] = [
            ("bgp", next.bgp != cur.bgp),
            ("director.health_file", next.health_file != cur.health_file),
            ("director.handover_file", next.handover_file != cur.handover_file),
            ("director.owner_seed", next.owner_seed != cur.owner_seed),
            ("director.workers", next.workers != cur.workers),
            ("director.local_addrs", next.local_addrs() != cur.local_addrs()),
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
        // The daemons follow the file only where its `sync` changed: a role switched at run
        // time (keepalived's notify running xvsadm) outlives an unrelated reload.
        let sync_changed = next.sync != cur.sync;
        let wanted = next.sync.clone();
        self.install(next).map_err(|e| e.to_string())?;
        if sync_changed {
            self.apply_sync(&wanted)?;
        }
        Ok(())
    }

    /// Makes the running daemons those of `wanted` (config.json's `sync`): a daemon that is
    /// not wanted, or wanted otherwise, is stopped; a wanted one not running is started.
    pub fn apply_sync(&mut self, wanted: &[DaemonSpec]) -> Result<(), String> {
        let keep =
            |d: &super::sync::SyncDaemon| wanted.iter().any(|w| super::sync::resolved(w).is_ok_and(|r| r == d.spec));
        let mut i = 0;
        while i < self.sync.len() {
            if keep(&self.sync[i]) {
                i += 1;
            } else {
                self.sync.remove(i).stop();
            }
        }
        let mut errors = Vec::new();
        for (j, w) in wanted.iter().enumerate() {
            if !self.sync.iter().any(|d| d.spec.role == w.role) {
                if let Err(e) = self.start_daemon(w) {
                    errors.push(format!("sync[{j}]: {e}"));
                }
            }
        }
        self.serving_changed();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// One control request. Changes build a complete new config that is validated before
    /// anything is touched; a refused change leaves everything as it was.
    pub fn handle(&mut self, req: Request) -> Reply {
        let failed = |e: RuleError| Reply::Failed { code: e.exit_code(), message: e.to_string() };
        let cmds: Vec<Command> = match req {
            Request::List => {
                let views = self.accounting.view(self.views_of(&collect_fresh(&self.handles)), false);
                return Reply::Services { size: self.size(), services: views };
            }
            Request::Connections => {
                // The run loop hands these to [`list_connections`]; this answers a caller that
                // did not.
                return Reply::Failed { code: 2, message: "connection listings are served by the run loop".into() };
            }
            Request::Save => {
                // What the operator configured, including servers a health check holds out.
                return Reply::Text { text: ipvsadm::save_rules(&self.admin.services) };
            }
            Request::Workers => {
                let mut text = workers_text(&collect_fresh(&self.handles), &self.steering);
                for d in &self.sync {
                    text.push_str(&super::sync::daemon_line(&d.spec));
                    text.push_str(&d.counters_line());
                }
                return Reply::Text { text };
            }
            Request::StartDaemon { spec } => {
                return match self.start_daemon(&spec) {
                    Ok(()) => Reply::Done,
                    Err(message) => Reply::Failed { code: 1, message },
                };
            }
            Request::StopDaemon { role } => {
                return match self.stop_daemon(role) {
                    Ok(()) => Reply::Done,
                    Err(message) => Reply::Failed { code: 1, message },
                };
            }
            Request::Daemons => {
                let mut text = String::new();
                for role in [SyncRole::Master, SyncRole::Backup] {
                    if let Some(d) = self.sync.iter().find(|d| d.spec.role == role) {
                        text.push_str(&super::sync::daemon_line(&d.spec));
                    }
                }
                return Reply::Text { text };
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
                let m = super::metrics::Snapshot {
                    services: self.accounting.view(raw, true),
                    reports: &reports,
                    xdp: (redirected, passed),
                    checked: health::targets(&self.admin.services, &self.admin.health).iter().map(|t| t.id).collect(),
                    down: &self.down,
                    transitions: &self.transitions,
                    sync: self.sync.iter().map(|d| (d.spec.role.name(), d.counters())).collect(),
                    bgp: self.announcer.as_ref().map_or_else(Vec::new, |a| a.state()),
                };
                return Reply::Metrics { text: super::metrics::render(&m) };
            }
            Request::Ipvsadm { args } => {
                let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
                match ipvsadm::parse_command(&args) {
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
                        let raw = self.views_of(&collect_fresh(&self.handles));
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
                        return match self.install(next) {
                            Ok(()) => Reply::Done,
                            Err(e) => Reply::Failed { code: 2, message: e.to_string() },
                        };
                    }
                    Ok(Command::StartDaemon(spec)) => return self.handle(Request::StartDaemon { spec }),
                    Ok(Command::StopDaemon(role)) => return self.handle(Request::StopDaemon { role }),
                    Ok(_) => return Reply::Failed { code: 2, message: "not a command that changes the tables".into() },
                    Err(e) => return failed(e),
                }
            }
            Request::Restore { text } => match ipvsadm::parse_rules(&text) {
                Ok(cmds) => cmds.into_iter().map(|(_, c)| c).collect(),
                Err(e) => return failed(e),
            },
        };
        let mut services = self.admin.services.clone();
        for c in &cmds {
            if let Err(e) = ipvsadm::apply(&mut services, c) {
                return failed(e);
            }
        }
        match self.admin.clone().with_services(services) {
            Ok(next) => match self.install(next) {
                Ok(()) => Reply::Done,
                Err(e) => Reply::Failed { code: 2, message: e.to_string() },
            },
            Err(e) => Reply::Failed { code: 2, message: e.to_string() },
        }
    }

    pub fn size(&self) -> u64 {
        self.admin.max_conns_per_worker as u64 * self.admin.workers as u64
    }

    /// The services the workers run, with their counters summed over the workers (since
    /// start: [`Accounting::view`] applies `-Z`), and whether every worker answered.
    pub fn raw_views(&self) -> (Vec<ServiceView>, bool) {
        let reports = collect(&self.handles);
        let complete = reports.len() == self.handles.len();
        (self.views_of(&reports), complete)
    }

    /// The services the workers run with the counters of `reports`.
    pub fn views_of(&self, reports: &[WorkerReport]) -> Vec<ServiceView> {
        let cfg = self.effective();
        cfg.services
            .iter()
            .map(|svc| ServiceView {
                service: svc.clone(),
                counters: svc
                    .servers
                    .iter()
                    .map(|r| {
                        let Some(id) = id_of(&self.current, svc, r) else { return ServerCounters::default() };
                        let loads = reports.iter().filter_map(|r| r.loads.get(id));
                        let (a, i, p) =
                            loads.fold((0, 0, 0), |(a, i, p), l| (a + l.active, i + l.inactive, p + l.persist));
                        ServerCounters::new(sum_dest(reports, id), a, i, p)
                    })
                    .collect(),
                ..ServiceView::default()
            })
            .collect()
    }
}

/// Hands a worker a new snapshot; a worker that has not drained its channel for a second is
/// stuck, and is reported rather than allowed to stall the control loop (the loop ends the
/// director when a worker thread stops).
fn send_tables(h: &WorkerHandle, t: &Arc<Tables>) {
    if let Err(e) = h.ctrl.send_timeout(Control::Tables(t.clone()), Duration::from_secs(1)) {
        tracing::error!("a worker did not take new tables within 1 s: {e}");
    }
}

/// The id of real server `r` of `svc` in `t`: where worker counters and loads are kept.
pub fn id_of(t: &Tables, svc: &VirtualService, r: &RealServer) -> Option<usize> {
    let si = t.service_slot(svc.proto.number(), u32::from(svc.vip), svc.port)?;
    let di = t.services.get(si as usize)?.dest_slot(u32::from(r.addr), r.port)?;
    t.dest_id(si, di).map(|id| id as usize)
}

pub fn same_next_hops(a: &Tables, b: &Tables) -> bool {
    a.services
        .iter()
        .flat_map(|s| s.dests.iter().map(|d| d.next_hop))
        .eq(b.services.iter().flat_map(|s| s.dests.iter().map(|d| d.next_hop)))
        && a.gateway() == b.gateway()
}

/// Every worker's counters as last published on its board (at most [`crate::dataplane::stats::PUBLISH_MS`] old):
/// no message reaches a worker.
pub fn collect(handles: &[WorkerHandle]) -> Vec<WorkerReport> {
    handles.iter().enumerate().map(|(w, h)| report_of(w as u16, &h.board)).collect()
}

/// Like [`collect`], but each worker's counters published after this call (waiting for its
/// next publish, at most 200 ms for a worker that is stuck): what a listing right after
/// traffic must show.
pub fn collect_fresh(handles: &[WorkerHandle]) -> Vec<WorkerReport> {
    let before: Vec<u64> = handles.iter().map(|h| h.board.publishes()).collect();
    let deadline = std::time::Instant::now() + Duration::from_millis(200);
    while handles.iter().zip(&before).any(|(h, &b)| h.board.publishes() == b) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    collect(handles)
}

/// A worker's board as a report.
pub fn report_of(worker: u16, board: &StatsBoard) -> WorkerReport {
    let (stats, shard, x, loads) = board.read();
    WorkerReport {
        worker,
        stats,
        conns: x.conns,
        shard,
        frames_total: x.frames_total,
        frames_free: x.frames_free,
        frames_in_kernel: x.frames_in_kernel,
        loads,
        rings: x.rings,
        idle_yields: x.idle_yields,
        loop_rounds: x.loop_rounds,
    }
}

/// Gathers `-L -c` from every worker on a thread of its own (each walks its table a slice
/// per loop round), so the control loop goes on serving meanwhile.
pub fn list_connections(ctrls: Vec<Sender<Control>>, reply: Sender<Reply>) {
    let spawned = std::thread::Builder::new().name("xvs-list".into()).spawn(move || {
        let mut entries = Vec::new();
        let mut total = 0u64;
        for c in &ctrls {
            let (tx, rx) = bounded(1);
            let left = MAX_CONN_ENTRIES - entries.len();
            if c.send(Control::Conns(left, tx)).is_ok() {
                if let Ok((mut e, n)) = rx.recv_timeout(Duration::from_secs(10)) {
                    entries.append(&mut e);
                    total += n as u64;
                }
            }
        }
        let _ = reply.send(Reply::Connections { entries, total });
    });
    if let Err(e) = spawned {
        tracing::error!("listing connections: {e}");
    }
}

/// One real server's counters summed over the workers' reports (`id`: its server id).
pub fn sum_dest(reports: &[WorkerReport], id: usize) -> DestCounters {
    let mut c = DestCounters::default();
    for d in reports.iter().filter_map(|r| r.stats.dests.get(id)) {
        c += *d;
    }
    c
}

pub fn reasons_text(s: &WorkerStats) -> String {
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
pub fn workers_text(reports: &[WorkerReport], steering: &Steering) -> String {
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
        let l = &r.loop_rounds;
        if l.count() > 0 {
            let _ = writeln!(
                out,
                "  loop: {} rounds, mean {} ns, longest {} us, over 1 ms {}, over 10 ms {}",
                l.count(),
                l.sum_ns / l.count(),
                l.max_ns / 1000,
                l.over(1_000_000),
                l.over(10_000_000)
            );
        }
        if r.shard.evicted_embryonic + r.shard.refused_full > 0 {
            let _ = writeln!(
                out,
                "  table: {} embryonic evicted for new connections, {} refused full",
                r.shard.evicted_embryonic, r.shard.refused_full
            );
        }
        if s.icmp_relayed + s.icmp_time_exceeded + s.icmp_ratelimited > 0 {
            let _ = writeln!(
                out,
                "  icmp: {} errors relayed, {} time exceeded sent, {} not sent (rate limit)",
                s.icmp_relayed, s.icmp_time_exceeded, s.icmp_ratelimited
            );
        }
        if s.frag_tracked + s.frag_unknown + s.frag_expired > 0 {
            let _ = writeln!(
                out,
                "  fragments: {} first tracked, {} followed, {} expired, {} unknown, {} evicted",
                s.frag_tracked, s.frag_followed, s.frag_expired, s.frag_unknown, s.frag_evicted
            );
        }
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
