//! `xvs run`: the director daemon. Attaches the steering program, binds one AF_XDP socket per
//! (interface, queue), starts one worker per configured core and runs until SIGINT/SIGTERM.
//! The main thread is the control loop: it serves requests, applies health transitions,
//! re-resolves next hops and pushes new tables snapshots to the workers over their channels;
//! SIGUSR1 prints the counters.

use crate::report::services_text;
use anyhow::{bail, Context, Result};
use crossbeam_channel::bounded;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs::config::Config;
use xvs::control::accounting::Accounting;
use xvs::control::alarms::Alarms;
use xvs::control::director::{
    build_tables, collect, effective, list_connections, sum_dest, workers_text, Director, WorkerHandle, REFRESH,
};
use xvs::control::health::{HealthChecker, SourcePorts};
use xvs::control::resolve as system;
use xvs::control::socket;
use xvs::control::Request;
use xvs::dataplane::io::xsk::{UmemFrames, XskPort, XskSizes};
use xvs::dataplane::stats::StatsBoard;
use xvs::dataplane::xdp::steer::{SteerSet, Steering};
use xvs::dataplane::{Control, Handoff, Pipeline, Tables, Worker, WorkerReport};

pub fn run(config: &Path, force: bool) -> Result<()> {
    let mut cfg = Config::load(config).with_context(|| format!("invalid config {}", config.display()))?;
    system::complete_interfaces(&mut cfg)?;
    if cfg.dip().is_none() {
        bail!("director.dip: not set and {} has no IPv4 address", cfg.interfaces[0].name);
    }
    // Workers pinned: the process's other threads, started from here on, keep off their
    // cores (a busy-polling worker preempted for a health check or a scrape loses the time).
    let mut housekeeping = None;
    let mut online = Vec::new();
    if !cfg.cores.is_empty() {
        online = xvs::control::host::online_cores().context("reading /sys/devices/system/cpu/online")?;
        if let Some(c) = cfg.cores.iter().find(|c| !online.contains(c)) {
            bail!("director.cores: core {c} is not online (online: {online:?})");
        }
        housekeeping = xvs::control::host::housekeeping_cores(&cfg.cores, &online);
        if let Some(rest) = &housekeeping {
            xvs::control::host::confine_thread(rest)
                .map_err(|e| anyhow::anyhow!("confining the control threads: {e}"))?;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let usr1 = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGHUP, hup.clone())?;
    signal_hook::flag::register(SIGINT, stop.clone())?;
    signal_hook::flag::register(SIGTERM, stop.clone())?;
    signal_hook::flag::register(SIGUSR1, usr1.clone())?;
    // SIGUSR2: a hitless restart (director.handover_file): the table is handed over and the
    // steering programs are left attached, holding, for the next run.
    let usr2 = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGUSR2, usr2.clone())?;
    // Tables that do not fit would fail (or swap) after the programs are attached.
    if let Some(avail) = xvs::control::host::mem_available() {
        if let Err(why) = xvs::control::host::check_memory(&cfg, avail) {
            bail!("{why}");
        }
    }
    // The kernel must never hand a FULLNAT local port to the director's own connections.
    if let Err(why) = xvs::control::host::check_local_ports(&cfg) {
        bail!("{why}");
    }
    match xvs::control::resolve::Rtnl::open().and_then(|mut nl| nl.all_ipv4()) {
        Ok(local) => {
            for w in xvs::control::host::foreign_addresses(&cfg, &local) {
                tracing::warn!("{w}");
            }
        }
        Err(e) => tracing::warn!("reading the host's addresses: {e}"),
    }

    let workers = cfg.workers;
    let names: Vec<String> = cfg.interfaces.iter().map(|i| i.name.clone()).collect();
    let mut queues = Vec::new();
    for n in &names {
        let q = xvs::dataplane::xdp::steer::rx_queues(n)?;
        if q < workers as u32 {
            bail!(
                "director.workers: {workers} workers need at least {workers} queues on {n}, which has {q} \
                 (every worker transmits on its own queue: add queues, or use fewer workers)"
            );
        }
        queues.push(q);
    }
    let mut resolved = None;
    // The first snapshot's ownership seed: the configured one, else at a hitless restart the
    // previous run's (its connections are handed to the workers that owned them), else random.
    let handover_seed = cfg.handover_file.as_deref().and_then(xvs::control::sync::handover::peek_seed);
    let first = Config { owner_seed: cfg.owner_seed.or(handover_seed), ..cfg.clone() };
    let tables = Arc::new(build_tables(&first, Duration::from_secs(2), false, false, None, &mut resolved)?);
    let steering = Steering::attach(&names, force)?;
    steering.sync(&SteerSet::from_tables(&tables))?;

    let sizes = XskSizes { frames: cfg.umem_frames, ..XskSizes::default() };
    let handoff = (workers > 1).then(|| Arc::new(Handoff::new(workers, 1024)));
    let mut handles = Vec::new();
    let mut summary = Vec::new();
    let mut sockets = Vec::new();
    for w in 0..workers {
        // A worker's memory (its UMEM, populated when mapped, and its table) is allocated and
        // first touched on the worker's own core, so that on a NUMA machine it lies on the
        // worker's node: this thread runs there while it builds them.
        if let Some(&c) = cfg.cores.get(w as usize) {
            xvs::control::host::confine_thread(&[c])
                .map_err(|e| anyhow::anyhow!("director.cores: worker {w} cannot run on core {c}: {e}"))?;
        }
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
            // Into the steering maps only once the workers hold the handed-over table.
            sockets.push((i, q, p.fd()));
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
        let board = Arc::new(StatsBoard::default());
        let pipeline = Pipeline::new(tables.clone(), w);
        let worker_board = board.clone();
        let core = cfg.cores.get(w as usize).copied();
        let handoff = handoff.clone();
        // Fault injection for the tests (tests/e2e.rs): worker 0 panics this many ms after
        // start, as a bug would. Nothing else reads it.
        let panic_after = (w == 0)
            .then(|| std::env::var("XVS_TEST_WORKER_PANIC_MS").ok().and_then(|v| v.parse::<u64>().ok()))
            .flatten();
        let thread = std::thread::Builder::new()
            .name(format!("xvs-worker-{w}"))
            .spawn(move || {
                if let Some(ms) = panic_after {
                    std::thread::sleep(Duration::from_millis(ms));
                    panic!("injected fault (XVS_TEST_WORKER_PANIC_MS)");
                }
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
                worker.set_board(worker_board);
                worker.run();
                worker.report()
            })
            .context("starting a worker thread")?;
        handles.push(WorkerHandle { board, ctrl: tx, thread });
    }
    if !cfg.cores.is_empty() {
        let back = housekeeping.as_deref().unwrap_or(&online);
        xvs::control::host::confine_thread(back).map_err(|e| anyhow::anyhow!("confining the control threads: {e}"))?;
    }
    // Every socket is in its map: a director frame no longer needs holding, and a crash
    // leaves them to the kernel (which resets what it does not know, so clients fail fast),
    // unless hitless restarts are configured (then a crash holds them for the next run).
    let listener = socket::bind(&cfg.control_socket)?;
    let (req_tx, req_rx) = bounded::<socket::Pending>(16);
    let control_thread = socket::serve_control(listener, req_tx.clone())?;
    let requests = (req_rx, req_tx);

    // Scrapes have a channel of their own: they never wait behind xvsadm.
    let (metrics_tx, metrics_rx) = bounded::<socket::Pending>(4);
    let mut metrics_thread = None;
    if let Some(addr) = cfg.metrics {
        metrics_thread = Some(xvs::control::metrics::serve(addr, metrics_tx)?);
    }
    // Started even without checks configured, so that a reload can add some (its threads
    // sleep while there is nothing to check). Checks avoid the FULLNAT local ports.
    let ports = SourcePorts::new(Some(cfg.local_ports));
    let check_ports = ports.range();
    let checks = HealthChecker::start(ports)?;
    // The start-up report, one event per line; "director up" comes last, once the control
    // socket, the metrics listener and the health checker are up, and tells systemd too.
    for s in &summary {
        tracing::info!("{s}");
    }
    for (w, c) in (0..workers).map(|w| (w, cfg.cores.get(w as usize))) {
        match c {
            Some(c) => tracing::info!("worker {w}: pinned to core {c}"),
            None => tracing::info!("worker {w}: not pinned (director.cores not set)"),
        }
    }
    match (&housekeeping, cfg.cores.is_empty()) {
        (Some(rest), _) => tracing::info!("control, health-check and sync threads: cores {rest:?}"),
        (None, false) => {
            tracing::info!("control, health-check and sync threads: share the workers' cores (no other core online)")
        }
        (None, true) => {}
    }
    for t in &cfg.interfaces {
        tracing::info!(
            "{}: mac {} ip {}",
            t.name,
            t.mac.map_or("?".into(), |m| m.to_string()),
            t.ip.map_or("-".into(), |a| a.to_string())
        );
    }
    tracing::info!("services: {}, dip {}", cfg.services.len(), cfg.dip().map_or("-".into(), |a| a.to_string()));
    if let Some(rate) = xvs::control::host::fullnat_rate(&cfg) {
        tracing::info!("{rate}");
    }
    tracing::info!("control socket: {}", cfg.control_socket.display());
    if let Some(addr) = cfg.metrics {
        tracing::info!("metrics: http://{addr}/metrics");
        if !addr.ip().is_loopback() {
            tracing::warn!("metrics.listen {addr} is reachable beyond this host: /metrics has no authentication");
        }
    }
    if !cfg.health.is_empty() {
        match check_ports {
            Some((lo, hi)) => tracing::info!("health checks: source ports {lo}-{hi} (outside director.local_ports)"),
            None => tracing::info!("health checks: kernel-chosen source ports"),
        }
    }

    let mut d = Director {
        path: config.to_path_buf(),
        admin: cfg,
        down: HashSet::new(),
        transitions: HashMap::new(),
        epoch: 0,
        appeared: HashMap::new(),
        current: tables,
        resolved,
        handles,
        steering,
        accounting: Accounting::default(),
        checks,
        sync: Vec::new(),
        announcer: None,
    };
    d.update_checks();
    // A hitless restart: the previous run's table into the workers before a frame reaches
    // them (the programs hold frames until the sockets are in their maps, below).
    let handover_file = d.admin.handover_file.clone();
    let mut daemons = d.admin.sync.clone();
    if let Some(path) = &handover_file {
        match d.take_over(path) {
            Ok(Some(t)) => {
                tracing::info!(
                    "handover: {} of {} connections taken over from the previous run ({} written {} ms ago{})",
                    t.installed,
                    t.read,
                    path.display(),
                    t.age_ms,
                    if t.same_owners { "" } else { "; ownership changed, every worker offered all" }
                );
                // The daemons it ran (a role keepalived's notify switched outlives the restart).
                if !t.daemons.is_empty() {
                    tracing::info!("handover: the sync daemons as the previous run had them");
                    daemons = t.daemons;
                }
            }
            Ok(None) => tracing::info!("handover: no table from a previous run at {}", path.display()),
            Err(e) => tracing::warn!("handover: the previous run's table not taken: {e}"),
        }
    }
    for &(i, q, fd) in &sockets {
        d.steering.register_socket(i, q, fd)?;
    }
    // Every socket is in its map: a director frame no longer needs holding, and a crash
    // leaves them to the kernel (which resets what it does not know, so clients fail fast),
    // unless hitless restarts are configured (then a crash holds them for the next run).
    if handover_file.is_none() {
        d.steering.set_hold(false)?;
    }
    if !daemons.is_empty() {
        d.apply_sync(&daemons).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    // The periodic refresh (which solicits what is unresolved) and the one a netlink change
    // triggers keep their own clocks, so a stream of changes cannot starve the first.
    let mut last_refresh = Instant::now();
    let mut last_net_refresh = Instant::now();
    let mut last_sample = Instant::now();
    let mut worker_died = false;
    let mut thread_died = None;
    let events = d.checks.events.clone();
    // Neighbour, route and link changes trigger a resolution at once; the slow timer
    // re-solicits what is still unresolved.
    let (net_tx, net_rx) = bounded::<()>(1);
    let watch = system::spawn_watch(net_tx)?;
    let mut net_changed = false;
    let mut alarms = Alarms::default();
    let mut last_alarm_check = Instant::now();
    let health_file = d.admin.health_file.clone();
    write_health(health_file.as_deref(), true);
    // BGP last: the VIPs are announced once this director forwards them.
    d.announcer = d.admin.bgp.clone().map(xvs::control::announce::Announcer::new);
    d.announce(true);
    let mut last_announce = Instant::now();
    tracing::info!("director up: {} interface(s), {workers} worker(s)", names.len());
    // systemd (Type=notify): ready now that the socket, metrics and checks are up; the
    // watchdog is fed by this loop, so a stuck control loop gets the director restarted.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("telling systemd we are ready: {e}");
    }
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut last_watchdog = Instant::now();
    let mut handing_over = false;
    while !stop.load(Ordering::Relaxed) {
        if usr2.swap(false, Ordering::Relaxed) {
            match &handover_file {
                Some(path) => match d.hand_over(path) {
                    Ok(n) => {
                        tracing::info!(
                            "SIGUSR2: {n} connections handed over in {}; exiting for a restart",
                            path.display()
                        );
                        handing_over = true;
                        break;
                    }
                    Err(e) => tracing::error!("SIGUSR2: handover failed, still running: {e}"),
                },
                None => tracing::warn!("SIGUSR2: director.handover_file is not set: no hitless restart, still running"),
            }
        }
        crossbeam_channel::select! {
            recv(net_rx) -> _ => net_changed = true,
            recv(requests.0) -> r => match r {
                Ok((Request::Connections, reply)) => {
                    list_connections(d.handles.iter().map(|h| h.ctrl.clone()).collect(), reply);
                }
                Ok((req, reply)) => {
                    let r = d.handle(req);
                    let _ = reply.send(r);
                }
                Err(_) => {}
            },
            recv(metrics_rx) -> r => if let Ok((req, reply)) = r {
                let _ = reply.send(d.handle(req));
            },
            recv(events) -> e => if let Ok(t) = e {
                // Whatever else is pending goes into the same snapshot.
                let more: Vec<_> = events.try_iter().collect();
                d.health_transitions(std::iter::once(t).chain(more));
            },
            default(Duration::from_millis(50)) => {}
        }
        if d.handles.iter().any(|h| h.thread.is_finished()) {
            tracing::error!("a worker stopped unexpectedly: shutting down");
            worker_died = true;
            break;
        }
        // A control-plane thread that ends ends the director: systemd restarts it whole
        // rather than leaving it half deaf.
        let dead = [
            ("control socket", control_thread.is_finished()),
            ("metrics", metrics_thread.as_ref().is_some_and(|t| t.is_finished())),
            ("health checker", !d.checks.alive()),
            ("netlink watch", watch.is_finished()),
        ]
        .into_iter()
        .find_map(|(what, dead)| dead.then_some(what));
        if let Some(what) = dead {
            tracing::error!("the {what} thread stopped unexpectedly: shutting down");
            thread_died = Some(what);
            break;
        }
        if usr1.swap(false, Ordering::Relaxed) {
            let cfg = d.effective();
            log_stats(&cfg, &d.current, &collect(&d.handles), &d.steering);
        }
        if hup.swap(false, Ordering::Relaxed) {
            match d.reload() {
                Ok(()) => tracing::info!("SIGHUP: reloaded {}", d.path.display()),
                Err(e) => tracing::error!("SIGHUP: reload refused, nothing changed: {e}"),
            }
        }
        if last_sample.elapsed() >= xvs::control::accounting::SAMPLE {
            // A worker that did not answer would be missing from the sums: no sample then
            // (the next one covers the longer interval, scaled to 2 s).
            if let (raw, true) = d.raw_views() {
                d.accounting.sample(&raw, last_sample.elapsed());
                last_sample = Instant::now();
            }
        }
        // A burst of notifications (neighbours re-probed under traffic) costs one resolution
        // per 100 ms at most.
        if net_changed && last_net_refresh.elapsed() >= Duration::from_millis(100) {
            net_changed = false;
            last_net_refresh = Instant::now();
            d.refresh_next_hops(Duration::ZERO);
        }
        if let Some(every) = watchdog {
            if last_watchdog.elapsed() >= every {
                last_watchdog = Instant::now();
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
        if last_alarm_check.elapsed() >= Duration::from_secs(1) {
            last_alarm_check = Instant::now();
            for a in alarms.check(&collect(&d.handles), last_alarm_check) {
                if a.delta > 0 {
                    tracing::warn!("{}", a.text);
                } else {
                    tracing::info!("{}", a.text);
                }
            }
        }
        if last_refresh.elapsed() >= REFRESH {
            last_refresh = Instant::now();
            d.refresh_next_hops(Duration::from_millis(200));
        }
        // BIRD may have restarted (and lost what it was told): said again now and then.
        if d.announcer.is_some() && last_announce.elapsed() >= Duration::from_secs(10) {
            last_announce = Instant::now();
            d.announce(true);
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    // Before the workers stop: keepalived gives the VIP up, and the router's BGP withdraws
    // it, while the connections still flow (not for a hitless restart: the next run takes
    // over on this director).
    if !handing_over {
        write_health(health_file.as_deref(), false);
        if let Some(a) = d.announcer.as_mut() {
            a.withdraw_all();
        }
    }
    let Director { admin: cfg, handles, steering, down, current, .. } = d;
    let cfg = effective(&cfg, &down);
    for h in &handles {
        let _ = h.ctrl.send(Control::Shutdown);
    }
    let mut reports = Vec::new();
    let mut panics = Vec::new();
    for (w, h) in handles.into_iter().enumerate() {
        match h.thread.join() {
            Ok(r) => reports.push(r),
            Err(e) => {
                let why = e
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| e.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                tracing::error!("worker {w} panicked: {why}");
                panics.push(format!("worker {w} panicked: {why}"));
            }
        }
    }
    log_stats(&cfg, &current, &reports, &steering);
    let _ = std::fs::remove_file(&cfg.control_socket);
    if handing_over {
        steering.hand_over()?;
        tracing::info!("stopped for a restart; XDP programs left attached and holding on {}", names.join(", "));
    } else {
        steering.detach()?;
        tracing::info!("stopped; XDP programs detached from {}", names.join(", "));
    }
    if !panics.is_empty() {
        // Exits non-zero: systemd (Restart=on-failure) starts a whole new director.
        bail!("{}", panics.join("; "));
    }
    if worker_died || reports.len() < workers as usize {
        bail!("a worker stopped unexpectedly");
    }
    if let Some(what) = thread_died {
        bail!("the {what} thread stopped unexpectedly");
    }
    Ok(())
}

/// The counters (SIGUSR1, exit), one log event per line.
fn log_stats(cfg: &Config, tables: &Tables, reports: &[WorkerReport], steering: &Steering) {
    let text = workers_text(reports, steering) + &services_text(cfg, tables, |id| sum_dest(reports, id));
    for line in text.lines() {
        tracing::info!("{line}");
    }
}

/// Writes the data-plane health for keepalived's `track_file` (`director.health_file`): "0"
/// while forwarding, "1" once stopping or broken (with weight 0, non-zero is FAULT). Written
/// to a temporary file and renamed, so keepalived never reads half a value.
fn write_health(path: Option<&std::path::Path>, ok: bool) {
    let Some(path) = path else { return };
    let tmp = path.with_extension("tmp");
    let r = std::fs::write(&tmp, if ok { "0\n" } else { "1\n" }).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        tracing::warn!("director.health_file {}: {e}", path.display());
    }
}
