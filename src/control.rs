//! The control socket: typed requests and replies between `xvsadm` and `xvs run`, one JSON
//! object per line over a Unix socket (mode 0600, so only its owner can change the director).
//! A request that does not parse gets an error reply and changes nothing.

use crate::rules::{ListOpts, RuleError};
use crate::service::{FwdMode, VirtualService};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Longest request or reply line read (a restore of many rules fits easily).
pub const MAX_LINE: u64 = 16 << 20;

/// What `xvsadm` asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// One ipvsadm command line that changes the tables (`-A -E -D -C -a -e -d`), parsed
    /// and checked by the director with the same parser as `xvsadm`.
    Ipvsadm { args: Vec<String> },
    /// `-R`: rules as `ipvsadm -S` writes them, applied all or nothing.
    Restore { text: String },
    /// The services with their counters (`-L`, `-S`).
    List,
}

/// What the director answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Done,
    /// ipvsadm's message and exit status.
    Failed {
        code: i32,
        message: String,
    },
    Services {
        size: u64,
        services: Vec<ServiceView>,
    },
}

/// Counters of one real server, summed over the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCounters {
    pub active: u32,
    pub inactive: u32,
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

/// A service and its servers' counters (`counters[i]` is `service.servers[i]`'s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: VirtualService,
    pub counters: Vec<ServerCounters>,
}

/// Errors talking to the director.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the director at {path}: {source} (is `xvs run` running? XVS_SOCKET names another socket)")]
    Connect { path: String, source: std::io::Error },
    #[error("talking to the director: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad message: {0}")]
    Format(#[from] serde_json::Error),
}

/// Reads one line of at most [`MAX_LINE`] bytes.
pub fn read_line(r: impl Read) -> std::io::Result<String> {
    let mut line = String::new();
    BufReader::new(r.take(MAX_LINE)).read_line(&mut line)?;
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
    Ok(serde_json::from_str(&read_line(&s)?)?)
}

/// Answers one connection's request with `handle`.
pub fn serve(mut s: UnixStream, handle: impl FnOnce(Request) -> Reply) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let reply = match serde_json::from_str::<Request>(&read_line(&s)?) {
        Ok(req) => handle(req),
        Err(e) => Reply::Failed { code: 2, message: format!("malformed request: {e}") },
    };
    let mut line =
        serde_json::to_string(&reply).unwrap_or_else(|_| "{\"Failed\":{\"code\":2,\"message\":\"reply\"}}".into());
    line.push('\n');
    s.write_all(line.as_bytes())
}

fn fwd_name(m: FwdMode) -> &'static str {
    match m {
        FwdMode::Nat => "Masq",
        FwdMode::Tun => "Tunnel",
        FwdMode::Dr => "Route",
        FwdMode::FullNat => "FullNat",
    }
}

/// The service name column: `"%-4s %s"` of protocol and `vip:port`.
fn service_name(s: &VirtualService) -> String {
    format!("{:<4} {}:{}", s.proto.name().to_uppercase(), s.vip, s.port)
}

/// ipvsadm's `print_largenum` (`--exact`: the whole number, at least 9 wide with a space).
fn largenum(out: &mut String, n: u64, exact: bool) {
    if exact {
        let digits = n.to_string();
        let _ = write!(out, "{:>w$}", digits, w = (digits.len() + 1).max(9));
        return;
    }
    let _ = match n {
        n if n < 100_000_000 => write!(out, "{n:9}"),
        n if n < 1_000_000_000 => write!(out, "{:8}K", n / 1000),
        n if n < 100_000_000_000 => write!(out, "{:8}M", n / 1_000_000),
        n if n < 100_000_000_000_000 => write!(out, "{:8}G", n / 1_000_000_000),
        n => write!(out, "{:8}T", n / 1_000_000_000_000),
    };
}

/// `ipvsadm -L -n` (with `--stats`, `--exact`, `--nosort`, or one service), byte for byte in
/// ipvsadm 1.31's layout, sorted as ipvsadm sorts. `size` fills the version line's connection
/// table size. A named service that does not exist is ipvsadm's "No such service".
pub fn list(views: &[ServiceView], size: u64, opts: &ListOpts) -> Result<String, RuleError> {
    let stats = opts.stats;
    let mut out = String::new();
    match &opts.service {
        Some(k) if !views.iter().any(|v| k.matches(&v.service)) => return Err(RuleError::NoSuchService),
        Some(_) => {}
        None => out = format!("IP Virtual Server version 1.2.1 (size={size})\n"),
    }
    if stats {
        let _ = writeln!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        );
    } else {
        out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
        out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    }
    let owned: Vec<VirtualService> = views
        .iter()
        .map(|v| v.service.clone())
        .filter(|s| opts.service.as_ref().is_none_or(|k| k.matches(s)))
        .collect();
    let order = if opts.nosort { owned.iter().collect() } else { crate::rules::sorted_services(&owned) };
    for svc in order {
        let key = crate::rules::ServiceKey::of(svc);
        let Some(view) = views.iter().find(|v| key.matches(&v.service)) else { continue };
        let counter = |addr, port| {
            view.service
                .servers
                .iter()
                .position(|r| r.addr == addr && r.port == port)
                .and_then(|i| view.counters.get(i))
                .copied()
                .unwrap_or_default()
        };
        if stats {
            let mut total = ServerCounters::default();
            for c in &view.counters {
                total.conns += c.conns;
                total.in_pkts += c.in_pkts;
                total.out_pkts += c.out_pkts;
                total.in_bytes += c.in_bytes;
                total.out_bytes += c.out_bytes;
            }
            let _ = write!(out, "{:<33}", service_name(svc));
            for n in [total.conns, total.in_pkts, total.out_pkts, total.in_bytes, total.out_bytes] {
                largenum(&mut out, n, opts.exact);
            }
            out.push('\n');
        } else {
            let _ = write!(out, "{} {}", service_name(svc), svc.scheduler.name());
            if let Some(f) = crate::rules::sched_flags_text(svc) {
                let _ = write!(out, " ({f})");
            }
            if let Some(p) = svc.persistence {
                let _ = write!(out, " persistent {}", p.timeout_s);
                if p.netmask != std::net::Ipv4Addr::BROADCAST {
                    let _ = write!(out, " mask {}", p.netmask);
                }
            }
            out.push('\n');
        }
        let servers = if opts.nosort { svc.servers.iter().collect() } else { crate::rules::sorted_servers(svc) };
        for r in servers {
            let c = counter(r.addr, r.port);
            let dname = format!("{}:{}", r.addr, r.port);
            if stats {
                let _ = write!(out, "  -> {dname:<28}");
                for n in [c.conns, c.in_pkts, c.out_pkts, c.in_bytes, c.out_bytes] {
                    largenum(&mut out, n, opts.exact);
                }
                out.push('\n');
            } else {
                let _ = writeln!(
                    out,
                    "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                    dname,
                    fwd_name(r.mode),
                    r.weight,
                    c.active,
                    c.inactive
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Persistence, Proto, RealServer, SchedFlags, SchedKind};

    fn server(addr: &str, port: u16, weight: u32, mode: FwdMode) -> RealServer {
        RealServer { addr: addr.parse().unwrap(), port, weight, mode, u_threshold: 0, l_threshold: 0 }
    }

    /// The example of ipvsadm-format.md §2.2 and §3 (IPv4 part), `$` marking line ends.
    fn example() -> Vec<ServiceView> {
        let mut tcp = VirtualService::new(Proto::Tcp, "10.0.0.1".parse().unwrap(), 80, SchedKind::Wlc);
        tcp.servers = vec![server("192.168.10.2", 80, 3, FwdMode::Dr), server("192.168.10.1", 80, 1, FwdMode::Dr)];
        let mut udp = VirtualService::new(Proto::Udp, "10.0.0.1".parse().unwrap(), 53, SchedKind::Sh);
        udp.flags = SchedFlags { fallback: true, port: true };
        udp.persistence = Some(Persistence { timeout_s: 360, netmask: "255.255.255.0".parse().unwrap() });
        udp.servers = vec![server("192.168.10.3", 53, 0, FwdMode::Nat)];
        let c = |active, inactive, conns, in_pkts, in_bytes| ServerCounters {
            active,
            inactive,
            conns,
            in_pkts,
            out_pkts: 0,
            in_bytes,
            out_bytes: 0,
        };
        vec![
            ServiceView { service: udp, counters: vec![c(0, 5, 0, 0, 0)] },
            ServiceView { service: tcp, counters: vec![c(12, 40, 700, 30000, 2500000), c(4, 17, 534, 26789, 2067890)] },
        ]
    }

    #[test]
    fn list_numeric_is_ipvsadms_layout_byte_for_byte() {
        let want = "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port Scheduler Flags$
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn$
TCP  10.0.0.1:80 wlc$
  -> 192.168.10.1:80              Route   1      4          17        $
  -> 192.168.10.2:80              Route   3      12         40        $
UDP  10.0.0.1:53 sh (sh-fallback,sh-port) persistent 360 mask 255.255.255.0$
  -> 192.168.10.3:53              Masq    0      0          5         $
";
        assert_eq!(list(&example(), 4096, &ListOpts::default()), Ok(want.replace('$', "")));
    }

    #[test]
    fn list_stats_is_ipvsadms_layout_byte_for_byte() {
        let want = "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes$
  -> RemoteAddress:Port$
TCP  10.0.0.1:80                      1234    56789        0  4567890        0$
  -> 192.168.10.1:80                   534    26789        0  2067890        0$
  -> 192.168.10.2:80                   700    30000        0  2500000        0$
UDP  10.0.0.1:53                         0        0        0        0        0$
  -> 192.168.10.3:53                     0        0        0        0        0$
";
        let stats = ListOpts { stats: true, ..ListOpts::default() };
        assert_eq!(list(&example(), 4096, &stats), Ok(want.replace('$', "")));
    }

    #[test]
    fn one_service_exact_and_unsorted_listings() {
        let key = |port| crate::rules::ServiceKey { proto: Proto::Tcp, addr: "10.0.0.1".parse().unwrap(), port };
        let one = ListOpts { service: Some(key(80)), ..ListOpts::default() };
        let want = "Prot LocalAddress:Port Scheduler Flags$
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn$
TCP  10.0.0.1:80 wlc$
  -> 192.168.10.1:80              Route   1      4          17        $
  -> 192.168.10.2:80              Route   3      12         40        $
";
        assert_eq!(list(&example(), 4096, &one), Ok(want.replace('$', "")), "no version line");
        let missing = ListOpts { service: Some(key(81)), ..ListOpts::default() };
        assert_eq!(list(&example(), 4096, &missing), Err(RuleError::NoSuchService));
        let mut v = example();
        v[1].counters[0].in_bytes = 1_234_567_890_123;
        let exact = ListOpts { stats: true, exact: true, service: Some(key(80)), ..ListOpts::default() };
        let text = list(&v, 4096, &exact).unwrap();
        assert!(
            text.contains("TCP  10.0.0.1:80                      1234    56789        0 1234569958013        0\n"),
            "{text}"
        );
        let nosort = ListOpts { nosort: true, ..ListOpts::default() };
        let text = list(&example(), 4096, &nosort).unwrap();
        let first = text.lines().nth(3).unwrap();
        assert!(first.starts_with("UDP  10.0.0.1:53"), "table order kept: {text}");
        assert!(
            text.contains("192.168.10.2:80              Route   3      12         40        \n  -> 192.168.10.1"),
            "{text}"
        );
    }

    #[test]
    fn large_numbers_get_ipvsadms_suffixes() {
        let mut s = String::new();
        for n in [99_999_999u64, 123_456_789, 9_876_543_210, 1_234_567_890_123, 123_456_789_012_345] {
            largenum(&mut s, n, false);
        }
        assert_eq!(s, " 99999999  123456K    9876M    1234G     123T");
    }

    #[test]
    fn malformed_requests_are_answered_with_an_error() {
        let (a, b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || serve(b, |_| Reply::Done));
        (&a).write_all(b"{\"Ipvsadm\": 7}\n").unwrap();
        let reply: Reply = serde_json::from_str(&read_line(&a).unwrap()).unwrap();
        assert!(matches!(reply, Reply::Failed { code: 2, .. }), "{reply:?}");
        t.join().unwrap().unwrap();
    }
}
