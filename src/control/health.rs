//! Health checks of real servers: TCP connect and HTTP GET, run by one control-plane
//! thread (never by the workers).
//!
//! The `xvs-health` thread is an event loop on [`mio::Poll`]. It keeps every target's state
//! and next due time, and drives all the checks in flight at once: each is a non-blocking
//! socket that goes through connect, send and receive as the socket becomes ready, and
//! fails at its own deadline (start + `timeout`). A server that drops SYNs therefore costs
//! one socket for `timeout`, not a thread: hundreds of them are all checked every interval.
//!
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
use crossbeam_channel::{unbounded, Receiver, Sender, TryRecvError};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Checks in flight at once. Beyond this, due checks wait for one to end (they are not
/// failed): a bound on the loop's sockets well above any real configuration, so that the
/// process's fd limit, not this, is what a huge one meets first.
const IN_FLIGHT_MAX: usize = 4096;

/// The longest the loop sleeps. Target sets wake it at once (the waker); this only bounds
/// how late a missed wake-up, or the checker being dropped, is noticed.
const TICK: Duration = Duration::from_millis(100);

/// The waker's token; checks get the others.
const WAKER: Token = Token(usize::MAX);

/// The most of an HTTP response head read before giving up.
const HEAD_MAX: usize = 4096;

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

/// `t + d`; far off instead where that overflows, so that an absurd configured duration
/// cannot panic the checker's thread.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).or_else(|| t.checked_add(Duration::from_secs(365 * 86_400))).unwrap_or(t)
}

/// A non-blocking socket whose connect to `addr` is under way (or done).
fn connect(addr: SocketAddrV4, ports: &SourcePorts) -> Result<std::net::TcpStream, String> {
    let mut last = String::from("no source port could be bound");
    // Another source port is tried where one is taken (bind) or its 4-tuple is (connect).
    for _ in 0..16 {
        // Out of fds (EMFILE) fails here, and the check with it: the error says why.
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).map_err(|e| format!("socket: {e}"))?;
        s.set_nonblocking(true).map_err(|e| format!("nonblocking: {e}"))?;
        // Closing with a reset: no TIME_WAIT on our side, so the port is free at once.
        s.set_linger(Some(Duration::ZERO)).map_err(|e| format!("linger: {e}"))?;
        if let Some(port) = ports.pick() {
            s.set_reuse_address(true).map_err(|e| format!("reuseaddr: {e}"))?;
            if let Err(e) = s.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))) {
                last = format!("bind :{port}: {e}");
                continue;
            }
        }
        return match s.connect(&SockAddr::from(addr)) {
            // In progress is the usual answer of a non-blocking connect; its result comes
            // as writability (see `Flight::advance`).
            Ok(()) => Ok(s.into()),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(s.into()),
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                last = format!("connect: {e}");
                continue;
            }
            Err(e) => Err(format!("connect: {e}")),
        };
    }
    Err(last)
}

/// Where a check in flight is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Connecting,
    Sending,
    Receiving,
}

/// The HTTP part of a check: the request and how much of it the socket took, the response
/// head read so far.
struct Http {
    req: Vec<u8>,
    sent: usize,
    status: u16,
    head: Vec<u8>,
    len: usize,
}

/// One check in flight.
struct Flight {
    stream: mio::net::TcpStream,
    stage: Stage,
    deadline: Instant,
    timeout: Duration,
    /// None: a TCP check, done once connected.
    http: Option<Http>,
}

impl Flight {
    /// Opens the check's socket, starts its connect and registers it with `registry` under
    /// `token`. An error is the check's result (it failed before any waiting).
    fn start(
        addr: Ipv4Addr,
        port: u16,
        spec: &CheckSpec,
        ports: &SourcePorts,
        registry: &Registry,
        token: Token,
        now: Instant,
    ) -> Result<Flight, String> {
        let target = SocketAddrV4::new(addr, spec.port.unwrap_or(port));
        let http = match &spec.kind {
            CheckKind::Tcp => None,
            CheckKind::Http { path, status, host } => {
                let host = host.clone().unwrap_or_else(|| target.to_string());
                let req = format!(
                    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xvs-healthcheck\r\nConnection: close\r\n\r\n"
                );
                Some(Http { req: req.into_bytes(), sent: 0, status: *status, head: vec![0; HEAD_MAX], len: 0 })
            }
        };
        let mut stream = mio::net::TcpStream::from_std(connect(target, ports)?);
        // Writable tells the connect's result; an HTTP check then waits for the answer too.
        // Registered once for both: mio's epoll is edge-triggered, and `advance` always goes
        // on until the socket would block, so no edge is missed.
        let interest = if http.is_some() { Interest::WRITABLE | Interest::READABLE } else { Interest::WRITABLE };
        registry.register(&mut stream, token, interest).map_err(|e| format!("register: {e}"))?;
        Ok(Flight { stream, stage: Stage::Connecting, deadline: later(now, spec.timeout), timeout: spec.timeout, http })
    }

    /// Moves the check on as far as the socket allows: its result, or None while it waits.
    /// Spurious wake-ups are harmless: every step asks the socket where it stands.
    fn advance(&mut self) -> Option<Result<(), String>> {
        if self.stage == Stage::Connecting {
            // The connect's error, if it failed (refused, unreachable), is SO_ERROR.
            match self.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return Some(Err(format!("connect: {e}"))),
            }
            // No error and no peer: still connecting (a wake-up before the handshake ended).
            match self.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected || e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    return None
                }
                Err(e) => return Some(Err(format!("connect: {e}"))),
            }
            self.stage = Stage::Sending;
        }
        let Some(h) = self.http.as_mut() else { return Some(Ok(())) };
        if self.stage == Stage::Sending {
            // The socket may take part of the request now and the rest when writable again.
            while h.sent < h.req.len() {
                match self.stream.write(&h.req[h.sent..]) {
                    Ok(0) => return Some(Err("send: the connection took no data".into())),
                    Ok(k) => h.sent += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Some(Err(format!("send: {e}"))),
                }
            }
            self.stage = Stage::Receiving;
        }
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&h.head[..h.len]) {
                // The status line is all a check needs, however much of the head follows.
                Ok(httparse::Status::Complete(_)) | Ok(httparse::Status::Partial) if resp.code.is_some() => {
                    let code = resp.code.unwrap_or(0);
                    let want = h.status;
                    return Some(if code == want {
                        Ok(())
                    } else {
                        Err(format!("HTTP status {code}, expected {want}"))
                    });
                }
                Ok(_) => {}
                Err(e) => return Some(Err(format!("bad HTTP response: {e}"))),
            }
            if h.len == h.head.len() {
                return Some(Err("HTTP response head too long".into()));
            }
            match self.stream.read(&mut h.head[h.len..]) {
                Ok(0) => return Some(Err("connection closed before a status line".into())),
                Ok(k) => h.len += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(format!("receive: {e}"))),
            }
        }
    }

    /// The result of a check whose deadline passed, naming what it was waiting for.
    fn timed_out(&self) -> String {
        let stage = if self.stage == Stage::Connecting { "connect" } else { "response" };
        format!("{stage}: timeout after {} ms", self.timeout.as_millis())
    }
}

/// Runs one check now, blocking the caller until it ends: Ok, or why it failed.
pub fn check(addr: Ipv4Addr, port: u16, spec: &CheckSpec, ports: &SourcePorts) -> Result<(), String> {
    let mut poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let mut flight = Flight::start(addr, port, spec, ports, poll.registry(), Token(0), Instant::now())?;
    let mut ready = Events::with_capacity(4);
    loop {
        let left = flight.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(flight.timed_out());
        }
        match poll.poll(&mut ready, Some(left)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        if !ready.is_empty() {
            if let Some(r) = flight.advance() {
                return r;
            }
        }
    }
}

struct State {
    target: Target,
    up: bool,
    streak: u32,
    due: Instant,
    /// Checks of this target in flight: a new one starts every interval even while an
    /// earlier one waits for its timeout (a timeout longer than the interval does not slow
    /// the verdict), up to [`per_target_cap`].
    running: u32,
    /// Bumped when the target's check changes: results of the old check are ignored.
    gen: u64,
    /// The epoch in which the target appeared.
    since: u64,
    /// Checks started so far, and the start number of the newest check whose result was
    /// counted: with overlapping checks, a result that comes back after a later-started
    /// check's is stale (the server's state has moved on) and is not counted.
    started: u64,
    newest: u64,
}

/// A check in flight, and the target state (by id and gen) its result belongs to.
struct Running {
    id: TargetId,
    gen: u64,
    /// The check's start number (see [`State::started`]).
    seq: u64,
    flight: Flight,
}

/// The sending half of the target channel, and the waker that makes the loop read it.
struct Feed {
    tx: Option<Sender<(Vec<Target>, u64)>>,
    waker: Waker,
}

impl Drop for Feed {
    /// The sender goes first, then the wake-up: the loop wakes to find the channel closed,
    /// and ends at once instead of at its next tick.
    fn drop(&mut self) {
        self.tx = None;
        let _ = self.waker.wake();
    }
}

/// The running health checker. Dropping it stops its thread.
pub struct HealthChecker {
    feed: Feed,
    /// Transitions, for the control loop.
    pub events: Receiver<Transition>,
    thread: JoinHandle<()>,
}

impl HealthChecker {
    /// Starts the checker's event-loop thread.
    pub fn start(ports: SourcePorts) -> io::Result<HealthChecker> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (ttx, trx) = unbounded::<(Vec<Target>, u64)>();
        let (etx, erx) = unbounded::<Transition>();
        let thread = std::thread::Builder::new().name("xvs-health".into()).spawn(move || run(poll, trx, etx, ports))?;
        Ok(HealthChecker { feed: Feed { tx: Some(ttx), waker }, events: erx, thread })
    }

    /// Replaces the set of targets, as of `epoch` (increasing). Servers already checked keep
    /// their state; new ones start up, in this epoch.
    pub fn set_targets(&self, t: Vec<Target>, epoch: u64) {
        if let Some(tx) = &self.feed.tx {
            let _ = tx.send((t, epoch));
        }
        // Woken, the loop takes the new set now rather than at the end of its wait.
        let _ = self.feed.waker.wake();
    }

    /// Whether the checker's thread still runs. It ends by itself only when it cannot go on
    /// (a panic, or an unrecoverable poll error, logged): then no server is checked any more,
    /// and the daemon should stop and say so rather than serve with frozen health.
    pub fn alive(&self) -> bool {
        !self.thread.is_finished()
    }
}

/// The checker's loop: returns when the target channel's sender is gone (the checker was
/// dropped), or when polling fails for good.
fn run(mut poll: Poll, targets: Receiver<(Vec<Target>, u64)>, events: Sender<Transition>, ports: SourcePorts) {
    let mut states: HashMap<TargetId, State> = HashMap::new();
    let mut flights: HashMap<Token, Running> = HashMap::new();
    let mut gen = 0u64;
    let mut next_token = 0usize;
    let mut ready = Events::with_capacity(1024);
    loop {
        // Target sets, in order (each one's epoch matters to the targets it adds).
        let mut changed = false;
        loop {
            match targets.try_recv() {
                Ok((t, epoch)) => {
                    replace(&mut states, t, epoch, &mut gen);
                    changed = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if changed {
            // Checks of targets gone, or whose check changed, would be ignored: they end now
            // and give their sockets back.
            flights.retain(|_, r| states.get(&r.id).is_some_and(|s| s.gen == r.gen));
        }

        let now = Instant::now();
        let expired: Vec<Token> = flights.iter().filter(|(_, r)| r.flight.deadline <= now).map(|(t, _)| *t).collect();
        for token in expired {
            if let Some(r) = flights.remove(&token) {
                if let Some(s) = states.get_mut(&r.id).filter(|s| s.gen == r.gen) {
                    s.running = s.running.saturating_sub(1);
                    record(r.id, s, r.seq, Err(r.flight.timed_out()), &events);
                }
            }
        }
        for (id, s) in states.iter_mut() {
            if s.running >= per_target_cap(&s.target.spec) || s.due > now || flights.len() >= IN_FLIGHT_MAX {
                continue;
            }
            // Due again one interval after this check starts.
            s.due = later(now, s.target.spec.interval);
            let token = free_token(&mut next_token, &flights);
            s.started += 1;
            let seq = s.started;
            match Flight::start(id.1, id.2, &s.target.spec, &ports, poll.registry(), token, now) {
                Ok(flight) => {
                    s.running += 1;
                    flights.insert(token, Running { id: *id, gen: s.gen, seq, flight });
                }
                // Out of file descriptors says nothing about the server: not checked this
                // time (the unit file raises the limit; the next interval tries again).
                Err(why) if why.contains("os error 24") || why.contains("os error 23") => {
                    tracing::debug!("health: {}:{} not checked: {why}", id.1, id.2);
                }
                Err(why) => record(*id, s, seq, Err(why), &events),
            }
        }

        // Sleep until the next check is due or the next deadline, whichever is first. Due
        // times do not count while no check can start (they would make this spin).
        let next_due = if flights.len() < IN_FLIGHT_MAX {
            states.values().filter(|s| s.running < per_target_cap(&s.target.spec)).map(|s| s.due).min()
        } else {
            None
        };
        let next_deadline = flights.values().map(|r| r.flight.deadline).min();
        let wait = match next_due.into_iter().chain(next_deadline).min() {
            Some(t) => t.saturating_duration_since(Instant::now()).min(TICK),
            None => TICK,
        };
        if let Err(e) = poll.poll(&mut ready, Some(wait)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Nothing can be checked without polling: end, so that `alive` tells the daemon.
            tracing::error!("health checks stopped: poll: {e}");
            return;
        }
        for ev in ready.iter() {
            // The waker only cuts the wait short: target sets are read at the top.
            let token = ev.token();
            let Some(r) = flights.get_mut(&token) else { continue };
            let Some(result) = r.flight.advance() else { continue };
            if let Some(r) = flights.remove(&token) {
                if let Some(s) = states.get_mut(&r.id).filter(|s| s.gen == r.gen) {
                    s.running = s.running.saturating_sub(1);
                    record(r.id, s, r.seq, result, &events);
                }
            }
        }
    }
}

/// How many checks of one target may be in flight: enough that one starts every interval
/// while earlier ones wait out their timeout, at most 8.
fn per_target_cap(spec: &CheckSpec) -> u32 {
    let i = spec.interval.as_millis().max(1);
    ((spec.timeout.as_millis() / i) as u32 + 1).clamp(1, 8)
}

/// A token no check in flight holds (nor the waker).
fn free_token(next: &mut usize, flights: &HashMap<Token, Running>) -> Token {
    loop {
        let t = Token(*next);
        *next = next.wrapping_add(1);
        if t != WAKER && !flights.contains_key(&t) {
            return t;
        }
    }
}

/// Installs a new target set. Unchanged targets keep their state and any check in flight.
fn replace(states: &mut HashMap<TargetId, State>, t: Vec<Target>, epoch: u64, gen: &mut u64) {
    let mut next_states = HashMap::new();
    for target in t {
        let id = target.id;
        *gen += 1;
        let now = Instant::now();
        let s = match states.remove(&id) {
            Some(s) if s.target.spec == target.spec => s,
            Some(s) => State {
                target,
                up: s.up,
                streak: 0,
                due: now,
                running: 0,
                gen: *gen,
                since: s.since,
                started: 0,
                newest: 0,
            },
            None => State {
                target,
                up: true,
                streak: 0,
                due: now,
                running: 0,
                gen: *gen,
                since: epoch,
                started: 0,
                newest: 0,
            },
        };
        next_states.insert(id, s);
    }
    *states = next_states;
}

/// Counts a check's result into the target's streak; a transition when it reaches `fall`
/// (or `rise`).
fn record(id: TargetId, s: &mut State, seq: u64, r: Result<(), String>, events: &Sender<Transition>) {
    if seq < s.newest {
        return; // a later-started check has spoken already
    }
    s.newest = seq;
    let ok = r.is_ok();
    if ok == s.up {
        s.streak = 0;
        return;
    }
    s.streak = s.streak.saturating_add(1);
    let need = if s.up { s.target.spec.fall } else { s.target.spec.rise };
    if s.streak >= need {
        s.up = ok;
        s.streak = 0;
        let why = match r {
            Ok(()) => "check passed".to_string(),
            Err(e) => e,
        };
        // No receiver left means the checker is going away: there is no one to tell.
        let _ = events.send(Transition { id, up: ok, why, since: s.since });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
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

    /// A loopback listener that never accepts, its accept queue full: Linux drops a SYN to
    /// a listener whose accept queue is full (`tcp_conn_request`: `sk_acceptq_is_full`,
    /// checked whatever the SYN-cookie setting), so a connect to it neither succeeds nor
    /// fails, like one to a server behind a dropping firewall. Backlog 1 holds two
    /// connections (the kernel tests `>`, not `>=`); the queue is filled until a connect
    /// times out, so the count does not matter. The returned streams keep it full.
    fn silent_listener() -> (Socket, u16, Vec<std::net::TcpStream>) {
        let l = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        l.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))).unwrap();
        l.listen(1).unwrap();
        let port = l.local_addr().unwrap().as_socket_ipv4().unwrap().port();
        let to = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut queued = Vec::new();
        loop {
            match std::net::TcpStream::connect_timeout(&to, Duration::from_millis(300)) {
                Ok(s) => queued.push(s),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
                Err(e) => panic!("filling the accept queue: {e}"),
            }
            assert!(queued.len() < 16, "the accept queue never filled: SYNs are not dropped here");
        }
        (l, port, queued)
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
    fn timeouts_name_the_stage_they_stopped_in() {
        let ports = SourcePorts::new(None);
        let lo = Ipv4Addr::LOCALHOST;
        let mut quick = spec(CheckKind::Http { path: "/".into(), status: 200, host: None });
        quick.timeout = Duration::from_millis(200);
        // SYNs dropped: the connect never ends.
        let (_silent, sport, _queued) = silent_listener();
        assert_eq!(check(lo, sport, &quick, &ports), Err("connect: timeout after 200 ms".into()));
        // Connected by the kernel (room in the accept queue), never answered.
        let mute = TcpListener::bind("127.0.0.1:0").unwrap();
        let mport = mute.local_addr().unwrap().port();
        assert_eq!(check(lo, mport, &quick, &ports), Err("response: timeout after 200 ms".into()));
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
        assert!(hc.alive());
    }

    #[test]
    fn two_hundred_silent_targets_are_all_down_in_time() {
        let (_silent, port, _queued) = silent_listener();
        let spec = CheckSpec {
            kind: CheckKind::Tcp,
            port: None,
            interval: Duration::from_millis(300),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 2,
        };
        // 200 services, each with the one silent server: 200 targets, 200 checks at once.
        let ids: Vec<TargetId> = (0..200u16)
            .map(|i| {
                let key = ServiceKey {
                    proto: crate::model::Proto::Tcp,
                    addr: Ipv4Addr::new(198, 18, 0, 100),
                    port: 1000 + i,
                };
                (key, Ipv4Addr::LOCALHOST, port)
            })
            .collect();
        let hc = HealthChecker::start(SourcePorts::new(None)).unwrap();
        let bound = spec.interval * spec.fall + spec.timeout + Duration::from_secs(1);
        let t0 = Instant::now();
        hc.set_targets(ids.iter().map(|&id| Target { id, spec: spec.clone() }).collect(), 1);
        let mut down = HashSet::new();
        while down.len() < ids.len() {
            let left = bound.saturating_sub(t0.elapsed());
            let Ok(e) = hc.events.recv_timeout(left) else {
                panic!("{} of {} targets down after {:?} (bound {bound:?})", down.len(), ids.len(), t0.elapsed());
            };
            assert!(!e.up, "{e:?}");
            assert_eq!(e.why, "connect: timeout after 1000 ms", "{e:?}");
            assert_eq!(e.since, 1);
            assert!(down.insert(e.id), "down twice: {e:?}");
        }
        let took = t0.elapsed();
        assert!(took <= bound, "all down after {took:?}, bound {bound:?}");
        assert!(ids.iter().all(|id| down.contains(id)));
        assert!(hc.alive());
    }

    #[test]
    fn a_result_older_than_one_already_counted_is_ignored() {
        let key = ServiceKey { proto: crate::model::Proto::Tcp, addr: Ipv4Addr::new(198, 18, 0, 100), port: 80 };
        let id = (key, Ipv4Addr::new(198, 19, 0, 11), 80);
        let mut st = State {
            target: Target { id, spec: spec(CheckKind::Tcp) },
            up: false,
            streak: 0,
            due: Instant::now(),
            running: 0,
            gen: 1,
            since: 1,
            started: 6,
            newest: 0,
        };
        let (tx, rx) = unbounded();
        // Checks 5 and 6 pass: up (rise 2).
        record(id, &mut st, 5, Ok(()), &tx);
        record(id, &mut st, 6, Ok(()), &tx);
        assert!(rx.try_recv().is_ok_and(|t| t.up));
        // Checks 3 and 4, started before the server recovered, time out later: not counted.
        record(id, &mut st, 3, Err("connect: timeout after 5000 ms".into()), &tx);
        record(id, &mut st, 4, Err("connect: timeout after 5000 ms".into()), &tx);
        assert!(st.up && rx.try_recv().is_err(), "no flap back down");
    }
}
