//! The control socket: typed requests and replies between `xvsadm` and `xvs run`, one JSON
//! object per line over a Unix socket (mode 0600, so only its owner can change the director).
//! A request that does not parse gets an error reply and changes nothing.

use crate::conn::{ConnEntry, TcpState};
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

/// The most connection entries one `-L -c` reply carries (about 11 MB of JSON, inside
/// [`MAX_LINE`]); a bigger table is listed in part, and xvsadm says so.
pub const MAX_CONN_ENTRIES: usize = 100_000;

/// What `xvsadm` asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// One ipvsadm command line that changes the tables (`-A -E -D -C -a -e -d`), parsed
    /// and checked by the director with the same parser as `xvsadm`.
    Ipvsadm { args: Vec<String> },
    /// `-R`: rules as `ipvsadm -S` writes them, applied all or nothing.
    Restore { text: String },
    /// The services with their counters (`-L`).
    List,
    /// `-S`: the configured rules (servers held out by a failed health check included).
    Save,
    /// The connection table (`-L -c`).
    Connections,
    /// The timeouts (`-L --timeout`).
    Timeouts,
    /// Read the config file again and apply it (`xvs reload`, as SIGHUP does).
    Reload,
    /// Prometheus text of every counter (what `/metrics` serves).
    Metrics,
    /// The XDP program's and the workers' datapath counters (`xvsadm --workers`).
    Workers,
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
    /// At most [`MAX_CONN_ENTRIES`] entries of `total`.
    Connections {
        entries: Vec<ConnEntry>,
        total: u64,
    },
    Metrics {
        text: String,
    },
    /// Preformatted text.
    Text {
        text: String,
    },
    /// `--set`'s three: TCP established, TCP FIN_WAIT, UDP, in seconds.
    Timeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
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
    /// Persistence templates pointing at the server (PersistConn).
    pub persist: u32,
}

impl ServerCounters {
    /// Connections, in/out packets, in/out bytes: the five counters listings and the
    /// estimator follow, in ipvsadm's column order.
    pub fn five(&self) -> [u64; 5] {
        [self.conns, self.in_pkts, self.out_pkts, self.in_bytes, self.out_bytes]
    }
}

/// Smoothed per-second rates (IPVS's estimator, see [`crate::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A service and its servers' counters (`counters[i]` and `rates[i]` are
/// `service.servers[i]`'s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: VirtualService,
    pub counters: Vec<ServerCounters>,
    /// The service's own counters (since its last `-Z`); `None`: the sum of its servers'.
    #[serde(default)]
    pub total: Option<ServerCounters>,
    #[serde(default)]
    pub rate: Rates,
    #[serde(default)]
    pub rates: Vec<Rates>,
}

impl Rates {
    /// cps, in/out pps, in/out bps, in ipvsadm's column order.
    pub fn five(&self) -> [u64; 5] {
        [self.cps, self.inpps, self.outpps, self.inbps, self.outbps]
    }
}

impl ServiceView {
    /// The sum of the servers' connection, packet and byte counters.
    pub fn servers_total(&self) -> ServerCounters {
        let mut t = ServerCounters::default();
        for c in &self.counters {
            t.conns += c.conns;
            t.in_pkts += c.in_pkts;
            t.out_pkts += c.out_pkts;
            t.in_bytes += c.in_bytes;
            t.out_bytes += c.out_bytes;
        }
        t
    }
}

impl Default for ServiceView {
    fn default() -> Self {
        ServiceView {
            service: VirtualService::new(
                crate::service::Proto::Tcp,
                std::net::Ipv4Addr::UNSPECIFIED,
                0,
                crate::service::SchedKind::Wlc,
            ),
            counters: Vec::new(),
            total: None,
            rate: Rates::default(),
            rates: Vec::new(),
        }
    }
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

/// Answers one connection's request with `handle`.
pub fn serve(mut s: UnixStream, handle: impl FnOnce(Request) -> Reply) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let reply = match serde_json::from_slice::<Request>(&read_line(&s)?) {
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
    let (rate, thresholds, persist) = (
        !stats && opts.rate,
        !stats && !opts.rate && opts.thresholds,
        !stats && !opts.rate && !opts.thresholds && opts.persistent_conn,
    );
    if stats || rate {
        let t = if stats {
            ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]
        } else {
            ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"]
        };
        let _ = writeln!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", t[0], t[1], t[2], t[3], t[4]
        );
    } else if thresholds {
        let _ = writeln!(
            out,
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        );
    } else if persist {
        let _ = writeln!(
            out,
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
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
        let at = |addr, port| view.service.servers.iter().position(|r| r.addr == addr && r.port == port);
        let counter = |addr, port| at(addr, port).and_then(|i| view.counters.get(i)).copied().unwrap_or_default();
        let rates = |addr, port| at(addr, port).and_then(|i| view.rates.get(i)).copied().unwrap_or_default();
        if stats {
            let total = view.total.unwrap_or_else(|| view.servers_total());
            let _ = write!(out, "{:<33}", service_name(svc));
            for n in total.five() {
                largenum(&mut out, n, opts.exact);
            }
            out.push('\n');
        } else if rate {
            let r = view.rate;
            let _ = write!(out, "{:<33}", service_name(svc));
            for n in r.five() {
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
                for n in c.five() {
                    largenum(&mut out, n, opts.exact);
                }
                out.push('\n');
            } else if rate {
                let e = rates(r.addr, r.port);
                let _ = write!(out, "  -> {dname:<28} {:8} {:8} {:8}", e.cps, e.inpps, e.outpps);
                largenum(&mut out, e.inbps, opts.exact);
                largenum(&mut out, e.outbps, opts.exact);
                out.push('\n');
            } else if thresholds {
                let _ = writeln!(
                    out,
                    "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                    r.u_threshold, r.l_threshold, c.active, c.inactive
                );
            } else if persist {
                let _ = writeln!(
                    out,
                    "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                    r.weight, c.persist, c.active, c.inactive
                );
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

/// `ipvsadm -L -c -n`: the connection entries (templates included, as IPVS lists them).
pub fn list_conns(entries: &[ConnEntry]) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let _ = writeln!(out, "pro expire {:<11} {:<18} {:<18} destination", "state", "source", "virtual");
    for e in entries {
        let proto = if e.proto == 17 { "UDP" } else { "TCP" };
        let state = if e.proto == 17 { "UDP" } else { TcpState::from_u8(e.state).map_or("NONE", |s| s.name()) };
        let expire = format!("{:02}:{:02}", e.expires_s / 60, e.expires_s % 60);
        let ap = |(a, p): (std::net::Ipv4Addr, u16)| format!("{a}:{p}");
        let _ =
            writeln!(out, "{proto:<3} {expire:<6} {state:<11} {:<18} {:<18} {}", ap(e.client), ap(e.virt), ap(e.dest));
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn timeouts_line(tcp: u32, tcpfin: u32, udp: u32) -> String {
    format!("Timeout (tcp tcpfin udp): {tcp} {tcpfin} {udp}\n")
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
            persist: 0,
        };
        vec![
            ServiceView { service: udp, counters: vec![c(0, 5, 0, 0, 0)], ..ServiceView::default() },
            ServiceView {
                service: tcp,
                counters: vec![c(12, 40, 700, 30000, 2500000), c(4, 17, 534, 26789, 2067890)],
                ..ServiceView::default()
            },
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
    fn list_rate_is_ipvsadms_layout_byte_for_byte() {
        // ipvsadm-format.md §4: dests print cps/pps with %8llu, bps through print_largenum.
        let want = "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS$
  -> RemoteAddress:Port$
TCP  10.0.0.1:80                         3       42        0     5120        0$
  -> 192.168.10.1:80                     1       17        0     2120        0$
  -> 192.168.10.2:80                     2       25        0     3000        0$
UDP  10.0.0.1:53                         0        0        0        0        0$
  -> 192.168.10.3:53                     0        0        0        0        0$
";
        let mut v = example();
        let r = |cps, inpps, inbps| Rates { cps, inpps, outpps: 0, inbps, outbps: 0 };
        v[1].rate = r(3, 42, 5120);
        v[1].rates = vec![r(2, 25, 3000), r(1, 17, 2120)];
        let rate = ListOpts { rate: true, ..ListOpts::default() };
        assert_eq!(list(&v, 4096, &rate), Ok(want.replace('$', "")));
        // A dest's cps is not shortened with K/M; its bps are.
        v[1].rates[1] = r(123_456_789, 0, 123_456_789);
        let text = list(&v, 4096, &rate).unwrap();
        assert!(
            text.contains("  -> 192.168.10.1:80              123456789        0        0  123456K        0\n"),
            "{text}"
        );
    }

    #[test]
    fn list_thresholds_and_persistent_conn_layouts() {
        let mut v = example();
        v[1].service.servers[1].u_threshold = 100;
        v[1].service.servers[1].l_threshold = 50;
        v[1].counters[1].persist = 7;
        let want = "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn $
  -> RemoteAddress:Port$
TCP  10.0.0.1:80 wlc$
  -> 192.168.10.1:80              100        50         4          17        $
  -> 192.168.10.2:80              0          0          12         40        $
UDP  10.0.0.1:53 sh (sh-fallback,sh-port) persistent 360 mask 255.255.255.0$
  -> 192.168.10.3:53              0          0          0          5         $
";
        let t = ListOpts { thresholds: true, ..ListOpts::default() };
        assert_eq!(list(&v, 4096, &t), Ok(want.replace('$', "")));
        let want = "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn $
  -> RemoteAddress:Port$
TCP  10.0.0.1:80 wlc$
  -> 192.168.10.1:80              1         7           4          17        $
  -> 192.168.10.2:80              3         0           12         40        $
UDP  10.0.0.1:53 sh (sh-fallback,sh-port) persistent 360 mask 255.255.255.0$
  -> 192.168.10.3:53              0         0           0          5         $
";
        let p = ListOpts { persistent_conn: true, ..ListOpts::default() };
        assert_eq!(list(&v, 4096, &p), Ok(want.replace('$', "")));
    }

    #[test]
    fn connection_and_timeout_listings() {
        let a = |s: &str, p| (s.parse().unwrap(), p);
        let e = |proto, state, template, expires_s, client, dest| ConnEntry {
            proto,
            state,
            template,
            expires_s,
            client,
            virt: a("198.18.0.100", if proto == 17 { 53 } else { 80 }),
            dest,
        };
        let entries = [
            e(6, TcpState::Established as u8, false, 899, a("198.18.0.2", 41234), a("198.19.0.11", 8080)),
            e(6, 0, true, 359, a("198.18.0.0", 0), a("198.19.0.11", 8080)),
            e(17, crate::conn::UDP_STATE, false, 61, a("198.18.0.2", 5353), a("198.19.0.12", 53)),
        ];
        let want = "IPVS connection entries$
pro expire state       source             virtual            destination$
TCP 14:59  ESTABLISHED 198.18.0.2:41234   198.18.0.100:80    198.19.0.11:8080$
TCP 05:59  NONE        198.18.0.0:0       198.18.0.100:80    198.19.0.11:8080$
UDP 01:01  UDP         198.18.0.2:5353    198.18.0.100:53    198.19.0.12:53$
";
        assert_eq!(list_conns(&entries), want.replace('$', ""));
        assert_eq!(timeouts_line(900, 120, 300), "Timeout (tcp tcpfin udp): 900 120 300\n");
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
        let reply: Reply = serde_json::from_slice(&read_line(&a).unwrap()).unwrap();
        assert!(matches!(reply, Reply::Failed { code: 2, .. }), "{reply:?}");
        t.join().unwrap().unwrap();
    }
}
