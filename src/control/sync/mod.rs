//! IPVS's connection synchronisation, protocol version 1: the sync daemons.
//!
//! - A **master** gives every worker a [`SyncLink`]; workers queue the messages of
//!   connections due to be synced (IPVS's thresholds, see [`crate::conn::sync`]). The
//!   daemon's thread drains the queues every [`POLL`] into datagrams of at most `maxlen`
//!   bytes ([`message::Encoder`]) and sends each when full, or when its first message has
//!   waited [`FLUSH_AFTER`] (IPVS: at most 2 s), to the group (TTL 1, no loopback, from the
//!   interface's address) or to the configured unicast peers.
//! - A **backup** joins the group on its interface, decodes each datagram
//!   ([`message::decode`]), drops those of another syncid (unless its own is 0), and hands
//!   the connections to every worker, each installing those it owns
//!   ([`crate::dataplane::Pipeline::install_synced`]).
//!
//! One daemon of each role may run, as in IPVS. Nothing here is on the packet path.

pub mod handover;
pub mod message;

use crate::dataplane::pipeline::SyncLink;
use crate::dataplane::Control;
use crate::model::{DaemonSpec, SyncConn, SyncRole};
use crossbeam_channel::Sender;
use message::{decode, Encoder, MCAST_GROUP, MCAST_PORT};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest a partly filled datagram waits before it is sent.
pub const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// How often a master's thread drains its workers' queues.
pub const POLL: Duration = Duration::from_millis(5);
/// How long a backup's receive waits before it looks at its stop flag.
const RECV_WAIT: Duration = Duration::from_millis(100);
/// How long a backup waits for a busy worker to take a batch before dropping it (counted).
const HAND_WAIT: Duration = Duration::from_millis(500);

/// A daemon's own counters (the workers count what they installed on their [`SyncLink`]).
#[derive(Debug, Default)]
pub struct DaemonCounters {
    pub datagrams: AtomicU64,
    pub conns: AtomicU64,
    pub send_errors: AtomicU64,
    /// Datagrams dropped whole: malformed (see [`message::SyncError`]).
    pub malformed: AtomicU64,
    pub wrong_syncid: AtomicU64,
    /// Connections of good datagrams skipped (IPv6, persistence engines, unknown options).
    pub skipped: AtomicU64,
    /// Batches a busy worker did not take in time.
    pub handoff_dropped: AtomicU64,
    /// Datagrams from a sender other than the backup's configured masters (`peers`).
    pub foreign: AtomicU64,
}

/// Why a daemon did not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncStartError {
    #[error("a {0} sync daemon is already running")]
    Running(&'static str),
    #[error("mcast-interface {name:?}: {why}")]
    Interface { name: String, why: String },
    #[error("sync socket: {what}: {source}")]
    Socket { what: &'static str, source: std::io::Error },
}

fn sock_err(what: &'static str) -> impl FnOnce(std::io::Error) -> SyncStartError {
    move |source| SyncStartError::Socket { what, source }
}

/// A running sync daemon.
pub struct SyncDaemon {
    /// As started, IPVS's defaults filled in.
    pub spec: DaemonSpec,
    pub links: Vec<Arc<SyncLink>>,
    pub counters: Arc<DaemonCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    ctrls: Vec<Sender<Control>>,
}

/// `spec` with IPVS's defaults for what it leaves unset, checked against the interface.
pub fn resolved(spec: &DaemonSpec) -> Result<DaemonSpec, SyncStartError> {
    let name = &spec.mcast_interface;
    let bad = |why: &str| SyncStartError::Interface { name: name.clone(), why: why.to_string() };
    if name.is_empty() || name.len() >= 16 || name.contains('/') || name.starts_with('.') {
        return Err(bad("not an interface name"));
    }
    let mtu = super::resolve::interface(name).map_err(|e| bad(&e.to_string()))?.2;
    let mut s = spec.clone();
    let most = mtu.saturating_sub(28).min(message::MAX_DATAGRAM as u32) as u16;
    s.maxlen = Some(spec.maxlen.map_or(most, |m| m.min(most)));
    s.group = Some(spec.group.unwrap_or(MCAST_GROUP));
    s.port = Some(spec.port.unwrap_or(MCAST_PORT));
    s.ttl = Some(spec.ttl.unwrap_or(1));
    if let Some(g) = s.group.filter(|g| !g.is_multicast()) {
        return Err(bad(&format!("group {g} is not a multicast address")));
    }
    Ok(s)
}

impl SyncDaemon {
    /// Starts a daemon of `spec` for the workers behind `ctrls` (a master's workers start
    /// queueing at once).
    pub fn start(spec: &DaemonSpec, ctrls: &[Sender<Control>]) -> Result<SyncDaemon, SyncStartError> {
        let spec = resolved(spec)?;
        let links: Vec<Arc<SyncLink>> = ctrls.iter().map(|_| Arc::new(SyncLink::default())).collect();
        let counters = Arc::new(DaemonCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = match spec.role {
            SyncRole::Master => {
                let sock = master_socket(&spec)?;
                let targets = targets(&spec);
                let (l, c, st, syncid, maxlen) =
                    (links.clone(), counters.clone(), stop.clone(), spec.syncid, spec.maxlen.unwrap_or(1472));
                let t = std::thread::Builder::new()
                    .name("xvs-sync-master".into())
                    .spawn(move || master_loop(sock, targets, l, c, st, syncid, maxlen as usize))
                    .map_err(sock_err("thread"))?;
                for (ctrl, link) in ctrls.iter().zip(&links) {
                    if ctrl.send_timeout(Control::SyncOut(Some(link.clone())), HAND_WAIT).is_err() {
                        tracing::warn!("sync master: a worker did not take its queue within {HAND_WAIT:?}");
                    }
                }
                t
            }
            SyncRole::Backup => {
                let sock = backup_socket(&spec)?;
                let (l, c, st, syncid, w) =
                    (links.clone(), counters.clone(), stop.clone(), spec.syncid, ctrls.to_vec());
                let sources: Vec<Ipv4Addr> = spec.peers.iter().map(|p| *p.ip()).collect();
                std::thread::Builder::new()
                    .name("xvs-sync-backup".into())
                    .spawn(move || backup_loop(sock.into(), w, l, c, st, syncid, sources))
                    .map_err(sock_err("thread"))?
            }
        };
        tracing::info!("{}", daemon_line(&spec).trim_end());
        Ok(SyncDaemon { spec, links, counters, stop, thread: Some(thread), ctrls: ctrls.to_vec() })
    }

    /// Stops the daemon: a master's workers stop queueing, and what they queued is sent.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.spec.role == SyncRole::Master {
            for c in &self.ctrls {
                let _ = c.send_timeout(Control::SyncOut(None), HAND_WAIT);
            }
            // Once a worker answers after that, it queues nothing more: the last drain
            // below sends everything it queued.
            for c in &self.ctrls {
                caught_up(c, HAND_WAIT);
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        tracing::info!("{} sync daemon stopped", self.spec.role.name());
    }

    /// The sum of one counter over the workers' links.
    pub fn link_sum(&self, f: impl Fn(&SyncLink) -> &AtomicU64) -> u64 {
        self.links.iter().map(|l| f(l).load(Ordering::Relaxed)).sum()
    }

    /// The daemon's counters by name (the metrics' `event` label).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut v = vec![
            ("datagrams", get(&c.datagrams)),
            ("conns", get(&c.conns)),
            ("send_errors", get(&c.send_errors)),
            ("malformed", get(&c.malformed)),
            ("wrong_syncid", get(&c.wrong_syncid)),
            ("skipped", get(&c.skipped)),
            ("handoff_dropped", get(&c.handoff_dropped)),
            ("foreign", get(&c.foreign)),
        ];
        for (name, f) in [
            ("queued", (|l: &SyncLink| &l.queued) as fn(&SyncLink) -> &AtomicU64),
            ("queue_full", |l| &l.queue_full),
            ("created", |l| &l.created),
            ("updated", |l| &l.updated),
            ("replaced", |l| &l.replaced),
            ("no_service", |l| &l.no_service),
            ("no_dest", |l| &l.no_dest),
            ("refused", |l| &l.refused),
        ] {
            v.push((name, self.link_sum(f)));
        }
        v
    }

    /// The daemon's counters, one line (for `xvsadm --workers`).
    pub fn counters_line(&self) -> String {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        match self.spec.role {
            SyncRole::Master => format!(
                "  sent: {} datagrams, {} connections; queued {}, queue full {}, send errors {}\n",
                get(&c.datagrams),
                get(&c.conns),
                self.link_sum(|l| &l.queued),
                self.link_sum(|l| &l.queue_full),
                get(&c.send_errors),
            ),
            SyncRole::Backup => format!(
                "  received: {} datagrams, {} connections; created {}, updated {}, replaced {}; \
                 no service {}, no server {}, refused {}; malformed {}, other syncid {}, not from a master {}, skipped {}, dropped {}\n",
                get(&c.datagrams),
                get(&c.conns),
                self.link_sum(|l| &l.created),
                self.link_sum(|l| &l.updated),
                self.link_sum(|l| &l.replaced),
                self.link_sum(|l| &l.no_service),
                self.link_sum(|l| &l.no_dest),
                self.link_sum(|l| &l.refused),
                get(&c.malformed),
                get(&c.wrong_syncid),
                get(&c.foreign),
                get(&c.skipped),
                get(&c.handoff_dropped),
            ),
        }
    }
}

impl Drop for SyncDaemon {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

/// ipvsadm's `-L --daemon` line of one daemon (`list_daemon`, with the values the kernel
/// reports).
pub fn daemon_line(s: &DaemonSpec) -> String {
    let mut t = format!("{} sync daemon (mcast={}, syncid={}", s.role.name(), s.mcast_interface, s.syncid);
    if let Some(m) = s.maxlen {
        let _ = write!(t, ", maxlen={m}");
    }
    if let Some(g) = s.group {
        let _ = write!(t, ", group={g}");
    }
    if let Some(p) = s.port {
        let _ = write!(t, ", port={p}");
    }
    if let Some(ttl) = s.ttl {
        let _ = write!(t, ", ttl={ttl}");
    }
    t.push_str(")\n");
    t
}

fn targets(s: &DaemonSpec) -> Vec<SockAddr> {
    if s.peers.is_empty() {
        vec![SockAddr::from(SocketAddrV4::new(s.group.unwrap_or(MCAST_GROUP), s.port.unwrap_or(MCAST_PORT)))]
    } else {
        s.peers.iter().map(|p| SockAddr::from(*p)).collect()
    }
}

/// The interface's first IPv4 address and its index.
fn iface_addr(name: &str) -> Result<(Ipv4Addr, u32), SyncStartError> {
    let bad = |why: String| SyncStartError::Interface { name: name.to_string(), why };
    let mut nl = super::resolve::Rtnl::open().map_err(|e| bad(e.to_string()))?;
    let (_, addr, _mtu) = nl.interface(name).map_err(|e| bad(e.to_string()))?;
    let index = nl.ifindex(name).map_err(|e| bad(e.to_string()))?;
    let addr = addr.ok_or_else(|| bad("has no IPv4 address".to_string()))?;
    Ok((addr, index))
}

fn master_socket(s: &DaemonSpec) -> Result<Socket, SyncStartError> {
    let (addr, _) = iface_addr(&s.mcast_interface)?;
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(sock_err("socket"))?;
    sock.set_multicast_if_v4(&addr).map_err(sock_err("IP_MULTICAST_IF"))?;
    sock.set_multicast_ttl_v4(s.ttl.unwrap_or(1) as u32).map_err(sock_err("IP_MULTICAST_TTL"))?;
    sock.set_multicast_loop_v4(false).map_err(sock_err("IP_MULTICAST_LOOP"))?;
    sock.bind(&SockAddr::from(SocketAddrV4::new(addr, 0))).map_err(sock_err("bind"))?;
    Ok(sock)
}

fn backup_socket(s: &DaemonSpec) -> Result<Socket, SyncStartError> {
    let (_, index) = iface_addr(&s.mcast_interface)?;
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(sock_err("socket"))?;
    sock.set_reuse_address(true).map_err(sock_err("SO_REUSEADDR"))?;
    sock.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, s.port.unwrap_or(MCAST_PORT))))
        .map_err(sock_err("bind"))?;
    sock.join_multicast_v4_n(&s.group.unwrap_or(MCAST_GROUP), &InterfaceIndexOrAddress::Index(index))
        .map_err(sock_err("IP_ADD_MEMBERSHIP"))?;
    sock.set_read_timeout(Some(RECV_WAIT)).map_err(sock_err("SO_RCVTIMEO"))?;
    // Bursts of datagrams while the thread is busy handing out the last ones.
    let _ = sock.set_recv_buffer_size(4 << 20);
    Ok(sock)
}

fn send(sock: &Socket, targets: &[SockAddr], d: &[u8], nconns: usize, c: &DaemonCounters) {
    for t in targets {
        match sock.send_to(d, t) {
            Ok(_) => {
                c.datagrams.fetch_add(1, Ordering::Relaxed);
                c.conns.fetch_add(nconns as u64, Ordering::Relaxed);
            }
            Err(e) => {
                if c.send_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("sync master: sending a datagram failed: {e} (counted from now on)");
                }
            }
        }
    }
}

fn master_loop(
    sock: Socket,
    targets: Vec<SockAddr>,
    links: Vec<Arc<SyncLink>>,
    c: Arc<DaemonCounters>,
    stop: Arc<AtomicBool>,
    syncid: u8,
    maxlen: usize,
) {
    let mut enc = Encoder::new(syncid, maxlen);
    let mut held_since: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        for l in &links {
            while let Some(m) = l.queue.pop() {
                if !enc.push(&m) {
                    let n = enc.len();
                    if let Some(d) = enc.take() {
                        send(&sock, &targets, &d, n, &c);
                    }
                    enc.push(&m);
                    held_since = None;
                }
                held_since.get_or_insert_with(Instant::now);
            }
        }
        if held_since.is_some_and(|t| stopping || t.elapsed() >= FLUSH_AFTER) {
            let n = enc.len();
            if let Some(d) = enc.take() {
                send(&sock, &targets, &d, n, &c);
            }
            held_since = None;
        }
        if stopping {
            return;
        }
        std::thread::sleep(POLL);
    }
}

fn backup_loop(
    sock: std::net::UdpSocket,
    ctrls: Vec<Sender<Control>>,
    links: Vec<Arc<SyncLink>>,
    c: Arc<DaemonCounters>,
    stop: Arc<AtomicBool>,
    syncid: u8,
    sources: Vec<Ipv4Addr>,
) {
    let mut buf = vec![0u8; message::MAX_DATAGRAM];
    let mut last_warn: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let n = match sock.recv_from(&mut buf) {
            // Only the configured masters, when there are some (IPVS takes any sender).
            Ok((_, from)) if !from_master(&sources, from) => {
                c.foreign.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Ok((n, _)) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("sync backup: receive failed: {e}");
                std::thread::sleep(RECV_WAIT);
                continue;
            }
        };
        c.datagrams.fetch_add(1, Ordering::Relaxed);
        let d = match decode(&buf[..n]) {
            Ok(d) => d,
            Err(e) => {
                c.malformed.fetch_add(1, Ordering::Relaxed);
                // Said when it starts, then at most every 10 s (a flood of bad datagrams
                // must not flood the log).
                if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    last_warn = Some(Instant::now());
                    tracing::warn!(
                        "sync backup: dropped a malformed datagram of {n} bytes: {e} ({} so far)",
                        c.malformed.load(Ordering::Relaxed)
                    );
                }
                continue;
            }
        };
        if syncid != 0 && d.syncid != syncid {
            c.wrong_syncid.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        c.skipped.fetch_add(d.skipped.len() as u64, Ordering::Relaxed);
        c.conns.fetch_add(d.conns.len() as u64, Ordering::Relaxed);
        if d.conns.is_empty() {
            continue;
        }
        hand_out(&ctrls, &links, d.conns, &c);
    }
}

/// Waits (at most `wait`) until the worker behind `ctrl` has handled every control message
/// sent before: its channel is in order, so its answer to a stats request says so.
pub fn caught_up(ctrl: &Sender<Control>, wait: Duration) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    if ctrl.send_timeout(Control::Stats(tx), HAND_WAIT).is_ok() {
        let _ = rx.recv_timeout(wait);
    }
}

/// Whether `from` is one of `sources` (any sender when there are none).
fn from_master(sources: &[Ipv4Addr], from: std::net::SocketAddr) -> bool {
    sources.is_empty() || matches!(from, std::net::SocketAddr::V4(a) if sources.contains(a.ip()))
}

fn hand_out(ctrls: &[Sender<Control>], links: &[Arc<SyncLink>], conns: Vec<SyncConn>, c: &DaemonCounters) {
    let last = ctrls.len().saturating_sub(1);
    let mut conns = Some(conns);
    for (i, (ctrl, link)) in ctrls.iter().zip(links).enumerate() {
        let batch = if i == last { conns.take().unwrap_or_default() } else { conns.clone().unwrap_or_default() };
        if ctrl.send_timeout(Control::SyncIn(link.clone(), batch), HAND_WAIT).is_err() {
            c.handoff_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
