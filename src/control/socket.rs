//! The control socket's transport: one JSON line each way over a Unix stream.

use super::protocol::{ControlError, Reply, Request, MAX_LINE};
use crossbeam_channel::{bounded, Sender};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads one line of at most [`MAX_LINE`] bytes (any bytes: JSON parsing judges them).
pub fn read_line(r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    BufReader::new(r.take(MAX_LINE)).read_until(b'\n', &mut line)?;
    Ok(line)
}

/// Sends one request and waits for its reply.
pub fn call(path: &Path, req: &Request) -> Result<Reply, ControlError> {
    let mut s =
        UnixStream::connect(path).map_err(|e| ControlError::Connect { path: path.display().to_string(), source: e })?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    Ok(serde_json::from_slice(&read_line(&s)?)?)
}

/// How long a client has to send its whole request, and to take its whole reply: a client
/// that connects and stalls holds only its own connection thread, never the director.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
pub const REPLY_DEADLINE: Duration = Duration::from_secs(10);
/// Connections served at once; more are answered "busy" at once and closed.
pub const MAX_CLIENTS: usize = 64;
/// Requests (one a connection) accepted a second, with a burst of as many: more are answered
/// "busy" at once, so that a runaway script cannot keep the control loop from the workers'
/// reports and health checks.
pub const MAX_REQUESTS_PER_S: u32 = 1000;

/// A token bucket: `MAX_REQUESTS_PER_S` a second, as many at once.
#[derive(Debug)]
pub struct RequestBucket {
    tokens: f64,
    at: Instant,
    per_s: f64,
}

impl RequestBucket {
    pub fn new(per_s: u32) -> RequestBucket {
        RequestBucket { tokens: per_s as f64, at: Instant::now(), per_s: per_s as f64 }
    }

    /// Whether one more request may go through at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.per_s).min(self.per_s);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Reads one request line before `deadline` (the whole line, not each read: a client that
/// trickles a byte at a time is cut off too).
fn read_request(s: &mut UnixStream, deadline: Instant) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "request deadline passed"));
        }
        s.set_read_timeout(Some(left))?;
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(line);
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buf[..=end]);
            return Ok(line);
        }
        line.extend_from_slice(&buf[..n]);
        if line.len() as u64 > MAX_LINE {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "request longer than MAX_LINE"));
        }
    }
}

/// Writes `data` before `deadline` (a client that never reads its reply is cut off).
fn write_before(s: &mut UnixStream, data: &[u8], deadline: Instant) -> std::io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "reply deadline passed"));
        }
        s.set_write_timeout(Some(left))?;
        match s.write(&data[off..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn reply_line(reply: &Reply) -> Vec<u8> {
    let mut line =
        serde_json::to_string(reply).unwrap_or_else(|_| "{\"Failed\":{\"code\":2,\"message\":\"reply\"}}".into());
    line.push('\n');
    line.into_bytes()
}

/// Answers one connection's request with `handle`, within [`REQUEST_DEADLINE`] and
/// [`REPLY_DEADLINE`].
pub fn serve(mut s: UnixStream, handle: impl FnOnce(Request) -> Reply) -> std::io::Result<()> {
    let line = read_request(&mut s, Instant::now() + REQUEST_DEADLINE)?;
    let reply = match serde_json::from_slice::<Request>(&line) {
        Ok(req) => handle(req),
        Err(e) => Reply::Failed { code: 2, message: format!("malformed request: {e}") },
    };
    write_before(&mut s, &reply_line(&reply), Instant::now() + REPLY_DEADLINE)
}

/// A request for the control loop, with where its reply goes.
pub type Pending = (Request, Sender<Reply>);

/// Errors setting up the control socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("control.socket: {0} is in use by another director")]
    InUse(String),
    #[error("control.socket: {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Creates the socket's directory (mode 0700, so only the director's user reaches the socket
/// even before its own mode is set) unless it exists, removes a stale socket, refuses a live
/// one, and binds.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| SocketError::Io { path: p, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
        }
        if path.starts_with(super::RUNTIME_DIR) {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse(path.display().to_string()));
        }
        std::fs::remove_file(path).map_err(io(path))?;
    }
    let listener = UnixListener::bind(path).map_err(io(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    Ok(listener)
}

/// Serves the control socket: one thread per connection (at most [`MAX_CLIENTS`]), each
/// request handed to the control loop over `tx`. A slow or silent client delays nobody else.
pub fn serve_control(listener: UnixListener, tx: Sender<Pending>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let clients = Arc::new(AtomicUsize::new(0));
    let mut bucket = RequestBucket::new(MAX_REQUESTS_PER_S);
    std::thread::Builder::new().name("xvs-control".into()).spawn(move || {
        for conn in listener.incoming() {
            let mut s = match conn {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors, say: back off rather than spin on the error.
                    tracing::warn!("control socket: accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if !bucket.take(Instant::now()) {
                let busy = Reply::Failed {
                    code: 2,
                    message: format!("busy: more than {MAX_REQUESTS_PER_S} requests a second"),
                };
                let _ = s.set_nonblocking(true);
                let _ = s.write(&reply_line(&busy));
                continue;
            }
            if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
                clients.fetch_sub(1, Ordering::AcqRel);
                let busy = Reply::Failed { code: 2, message: format!("busy: {MAX_CLIENTS} clients connected") };
                let _ = s.set_nonblocking(true);
                let _ = s.write(&reply_line(&busy));
                continue;
            }
            let (tx, mine) = (tx.clone(), clients.clone());
            let spawned = std::thread::Builder::new().name("xvs-control-client".into()).spawn(move || {
                let _ = serve(s, move |req| {
                    let (rtx, rrx) = bounded(1);
                    if tx.send((req, rtx)).is_err() {
                        return Reply::Failed { code: 2, message: "the director is stopping".into() };
                    }
                    rrx.recv_timeout(Duration::from_secs(20))
                        .unwrap_or(Reply::Failed { code: 2, message: "the director did not answer".into() })
                });
                mine.fetch_sub(1, Ordering::AcqRel);
            });
            if spawned.is_err() {
                clients.fetch_sub(1, Ordering::AcqRel);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_requests_are_answered_with_an_error() {
        let (a, b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || serve(b, |_| Reply::Done));
        (&a).write_all(b"{\"Ipvsadm\": 7}\n").unwrap();
        let reply: Reply = serde_json::from_slice(&read_line(&a).unwrap()).unwrap();
        assert!(matches!(reply, Reply::Failed { code: 2, .. }), "{reply:?}");
        t.join().unwrap().unwrap();
    }

    #[test]
    fn the_request_rate_is_bounded_with_a_burst() {
        let t0 = Instant::now();
        let mut b = RequestBucket::new(1000);
        b.at = t0;
        assert_eq!((0..1500).filter(|_| b.take(t0)).count(), 1000, "a burst of 1000");
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(2)), "2 ms later: two more");
        assert!(b.take(t0 + Duration::from_millis(2)));
        assert!(!b.take(t0 + Duration::from_millis(2)));
        // A second idle refills it, no more.
        assert_eq!((0..1500).filter(|_| b.take(t0 + Duration::from_secs(5))).count(), 1000);
    }
}
