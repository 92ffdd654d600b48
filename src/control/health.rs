//! Health checks of real servers: TCP connect and HTTP GET, run by a small control-plane
//! thread pool (never by the workers).
//!
//! A scheduler thread keeps every target's state and next due time; due checks go to
//! [`POOL`] checker threads over a channel, and their results come back to the scheduler.
//! A server that is up goes down after `fall` failures in a row and comes back after `rise`
//! successes in a row (servers start up, as keepalived's do). Each transition is sent to the
//! control loop, which rebuilds the tables: the server leaves scheduling (or, with
//! `inhibit_on_failure`, stays with weight 0, as keepalived does) and returns on recovery.
//!
//! Checks leave from the director's own stack. When FULLNAT is configured, replies to the
//! director address on a port of `director.local_ports` belong to the workers, so checks bind
//! a source port outside that range ([`SourcePorts`]).

use crate::ipvsadm::ServiceKey;
use crate::model::VirtualService;
pub use crate::model::{CheckKind, CheckSpec, ServiceHealth};
use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Checker threads.
pub const POOL: usize = 4;

/// A checked real server: service, address, port.
pub type TargetId = (ServiceKey, Ipv4Addr, u16);

/// One server to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub id: TargetId,
    pub spec: CheckSpec,
}

/// The targets of the services as they are now (servers added by `xvsadm` are checked with
/// their service's check).
pub fn targets(services: &[VirtualService], health: &[ServiceHealth]) -> Vec<Target> {
    let mut out = Vec::new();
    for svc in services {
        let key = ServiceKey::of(svc);
        let Some(h) = health.iter().find(|h| h.key == Some(key)) else { continue };
        for r in &svc.servers {
            let spec = h.servers.iter().find(|(a, p, _)| *a == r.addr && *p == r.port).map(|(_, _, s)| s);
            if let Some(spec) = spec.or(h.check.as_ref()) {
                out.push(Target { id: (key, r.addr, r.port), spec: spec.clone() });
            }
        }
    }
    out
}

/// Whether failed servers of the service stay with weight 0.
pub fn inhibits(health: &[ServiceHealth], key: &ServiceKey) -> bool {
    health.iter().any(|h| h.key == Some(*key) && h.inhibit_on_failure)
}

/// A server changed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub id: TargetId,
    pub up: bool,
    /// The last check's result, e.g. "connect: Connection refused".
    pub why: String,
    /// The epoch (see [`HealthChecker::set_targets`]) in which the server started being
    /// checked: an event of a server deleted and added again since is stale.
    pub since: u64,
}

/// Source ports for checks: outside the FULLNAT local-port range, rotating (and closed with
/// a reset, so no TIME_WAIT pins them).
#[derive(Debug)]
pub struct SourcePorts {
    range: Option<(u16, u16)>,
    next: AtomicU32,
}

impl SourcePorts {
    /// `avoid`: the FULLNAT range, or None (the kernel picks, as usual).
    pub fn new(avoid: Option<(u16, u16)>) -> SourcePorts {
        let range = avoid.and_then(|(lo, hi)| {
            let below = (1024u32, lo as u32 - 1);
            let above = (hi as u32 + 1, 65535u32);
            let len = |r: (u32, u32)| if r.1 >= r.0 && r.0 >= 1024 { r.1 - r.0 + 1 } else { 0 };
            let pick = match (len(below), len(above)) {
                (0, 0) => return None,
                (b, a) if a >= b => above,
                _ => below,
            };
            Some((pick.0 as u16, pick.1 as u16))
        });
        SourcePorts { range, next: AtomicU32::new(0) }
    }

    /// The range checks bind in (None: the kernel's choice).
    pub fn range(&self) -> Option<(u16, u16)> {
        self.range
    }

    fn pick(&self) -> Option<u16> {
        let (lo, hi) = self.range?;
        let n = self.next.fetch_add(1, Ordering::Relaxed) % (hi as u32 - lo as u32 + 1);
        Some(lo + n as u16)
    }
}

fn connect(addr: SocketAddrV4, timeout: Duration, ports: &SourcePorts) -> Result<TcpStream, String> {
    let mut last = String::from("no source port could be bound");
    for _ in 0..16 {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).map_err(|e| format!("socket: {e}"))?;
        // Closing with a reset: no TIME_WAIT on our side, so the port is free at once.
        s.set_linger(Some(Duration::ZERO)).map_err(|e| format!("linger: {e}"))?;
        if let Some(port) = ports.pick() {
            s.set_reuse_address(true).map_err(|e| format!("reuseaddr: {e}"))?;
            if let Err(e) = s.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))) {
                last = format!("bind :{port}: {e}");
                continue;
            }
        }
        return match s.connect_timeout(&SockAddr::from(addr), timeout) {
            Ok(()) => Ok(s.into()),
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                last = format!("connect: {e}");
                continue;
            }
            Err(e) => Err(format!("connect: {e}")),
        };
    }
    Err(last)
}

/// Runs one check now: Ok, or why it failed.
pub fn check(addr: Ipv4Addr, port: u16, spec: &CheckSpec, ports: &SourcePorts) -> Result<(), String> {
    let deadline = Instant::now() + spec.timeout;
    let target = SocketAddrV4::new(addr, spec.port.unwrap_or(port));
    let mut s = connect(target, spec.timeout, ports)?;
    let CheckKind::Http { path, status, host } = &spec.kind else { return Ok(()) };
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(left)).map_err(|e| e.to_string())?;
    let host = host.clone().unwrap_or_else(|| target.to_string());
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xvs-healthcheck\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 4096];
    let mut n = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf[..n]) {
            Ok(httparse::Status::Complete(_)) | Ok(httparse::Status::Partial) if resp.code.is_some() => {
                let code = resp.code.unwrap_or(0);
                return if code == *status { Ok(()) } else { Err(format!("HTTP status {code}, expected {status}")) };
            }
            Ok(_) => {}
            Err(e) => return Err(format!("bad HTTP response: {e}")),
        }
        if n == buf.len() {
            return Err("HTTP response head too long".into());
        }
        match s.read(&mut buf[n..]) {
            Ok(0) => return Err("connection closed before a status line".into()),
            Ok(k) => n += k,
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}

struct State {
    target: Target,
    up: bool,
    streak: u32,
    due: Instant,
    running: bool,
    /// Bumped when the target's check changes: results of the old check are ignored.
    gen: u64,
    /// The epoch in which the target appeared.
    since: u64,
}

type Job = (TargetId, Target, u64);
type Done = (TargetId, u64, Result<(), String>);

/// The running health checker. Dropping it stops its threads.
pub struct HealthChecker {
    targets: Sender<(Vec<Target>, u64)>,
    /// Transitions, for the control loop.
    pub events: Receiver<Transition>,
}

impl HealthChecker {
    /// Starts the scheduler and the checker pool.
    pub fn start(ports: SourcePorts) -> std::io::Result<HealthChecker> {
        let ports = Arc::new(ports);
        let (ttx, trx) = unbounded::<(Vec<Target>, u64)>();
        let (etx, erx) = unbounded::<Transition>();
        let (jtx, jrx) = bounded::<Job>(1024);
        let (dtx, drx) = unbounded::<Done>();
        for i in 0..POOL {
            let (jrx, dtx, ports) = (jrx.clone(), dtx.clone(), ports.clone());
            std::thread::Builder::new().name(format!("xvs-check-{i}")).spawn(move || {
                for (id, t, gen) in jrx.iter() {
                    let r = check(id.1, id.2, &t.spec, &ports);
                    if dtx.send((id, gen, r)).is_err() {
                        break;
                    }
                }
            })?;
        }
        std::thread::Builder::new().name("xvs-health".into()).spawn(move || schedule(trx, jtx, drx, etx))?;
        Ok(HealthChecker { targets: ttx, events: erx })
    }

    /// Replaces the set of targets, as of `epoch` (increasing). Servers already checked keep
    /// their state; new ones start up, in this epoch.
    pub fn set_targets(&self, t: Vec<Target>, epoch: u64) {
        let _ = self.targets.send((t, epoch));
    }
}

fn schedule(
    targets: Receiver<(Vec<Target>, u64)>,
    jobs: Sender<Job>,
    done: Receiver<Done>,
    events: Sender<Transition>,
) {
    let mut states: HashMap<TargetId, State> = HashMap::new();
    let mut gen = 0u64;
    loop {
        let now = Instant::now();
        for (id, s) in states.iter_mut() {
            if !s.running && s.due <= now {
                s.running = true;
                s.due = now + s.target.spec.interval;
                if jobs.try_send((*id, s.target.clone(), s.gen)).is_err() {
                    s.running = false;
                }
            }
        }
        let next = states.values().filter(|s| !s.running).map(|s| s.due).min();
        let wait = next.map_or(Duration::from_secs(1), |d| d.saturating_duration_since(Instant::now()));
        select! {
            recv(targets) -> t => {
                let Ok((t, epoch)) = t else { return };
                // Unchanged targets keep their state and any check in flight.
                let mut next_states = HashMap::new();
                for target in t {
                    let id = target.id;
                    gen += 1;
                    let s = match states.remove(&id) {
                        Some(s) if s.target.spec == target.spec => s,
                        Some(s) => State { target, up: s.up, streak: 0, due: Instant::now(), running: false, gen, since: s.since },
                        None => State { target, up: true, streak: 0, due: Instant::now(), running: false, gen, since: epoch },
                    };
                    next_states.insert(id, s);
                }
                states = next_states;
            }
            recv(done) -> d => {
                let Ok((id, g, r)) = d else { return };
                let Some(s) = states.get_mut(&id).filter(|s| s.gen == g) else { continue };
                s.running = false;
                let ok = r.is_ok();
                if ok == s.up {
                    s.streak = 0;
                    continue;
                }
                s.streak += 1;
                let need = if s.up { s.target.spec.fall } else { s.target.spec.rise };
                if s.streak >= need {
                    s.up = ok;
                    s.streak = 0;
                    let why = match r { Ok(()) => "check passed".to_string(), Err(e) => e };
                    if events.send(Transition { id, up: ok, why, since: s.since }).is_err() {
                        return;
                    }
                }
            }
            default(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn spec(kind: CheckKind) -> CheckSpec {
        CheckSpec {
            kind,
            port: None,
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 2,
        }
    }

    #[test]
    fn source_ports_avoid_the_fullnat_range() {
        assert_eq!(SourcePorts::new(None).range(), None);
        assert_eq!(SourcePorts::new(Some((20000, 59999))).range(), Some((1024, 19999)));
        assert_eq!(SourcePorts::new(Some((1024, 30000))).range(), Some((30001, 65535)));
        assert_eq!(SourcePorts::new(Some((1024, 65535))).range(), None);
        let p = SourcePorts::new(Some((2000, 65535)));
        assert_eq!(p.range(), Some((1024, 1999)));
        for _ in 0..2000 {
            assert!((1024..=1999).contains(&p.pick().unwrap()));
        }
    }

    #[test]
    fn tcp_and_http_checks_against_local_listeners() {
        let ports = SourcePorts::new(None);
        let lo = Ipv4Addr::LOCALHOST;
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let tport = tcp.local_addr().unwrap().port();
        assert_eq!(check(lo, tport, &spec(CheckKind::Tcp), &ports), Ok(()));
        drop(tcp);
        let closed = check(lo, tport, &spec(CheckKind::Tcp), &ports);
        assert!(closed.as_ref().is_err_and(|e| e.starts_with("connect:")), "{closed:?}");

        let http = TcpListener::bind("127.0.0.1:0").unwrap();
        let hport = http.local_addr().unwrap().port();
        let srv = std::thread::spawn(move || {
            for code in [200, 503] {
                let (mut s, _) = http.accept().unwrap();
                let mut b = [0u8; 1024];
                let n = s.read(&mut b).unwrap();
                let req = String::from_utf8_lossy(&b[..n]).to_string();
                assert!(req.starts_with("GET /health HTTP/1.1\r\nHost: example\r\n"), "{req}");
                let _ = s.write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes());
            }
        });
        let get = spec(CheckKind::Http { path: "/health".into(), status: 200, host: Some("example".into()) });
        assert_eq!(check(lo, hport, &get, &ports), Ok(()));
        assert_eq!(check(lo, hport, &get, &ports), Err("HTTP status 503, expected 200".into()));
        srv.join().unwrap();
    }

    #[test]
    fn a_server_falls_after_fall_failures_and_rises_after_rise_successes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let key = ServiceKey { proto: crate::model::Proto::Tcp, addr: Ipv4Addr::new(198, 18, 0, 100), port: 80 };
        let id = (key, Ipv4Addr::LOCALHOST, port);
        let hc = HealthChecker::start(SourcePorts::new(None)).unwrap();
        hc.set_targets(vec![Target { id, spec: spec(CheckKind::Tcp) }], 1);
        // Up while it answers: no event for a while.
        assert!(hc.events.recv_timeout(Duration::from_millis(300)).is_err());
        drop(l);
        // Reconfigurations every 10 ms (the same target) do not restart its checks.
        let t0 = Instant::now();
        let down = loop {
            hc.set_targets(vec![Target { id, spec: spec(CheckKind::Tcp) }], 1);
            if let Ok(e) = hc.events.recv_timeout(Duration::from_millis(10)) {
                break e;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "never went down");
        };
        assert_eq!((down.id, down.up), (id, false));
        let _l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let up = hc.events.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((up.id, up.up), (id, true));
    }
}
