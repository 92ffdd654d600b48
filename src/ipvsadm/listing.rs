//! ipvsadm's listings (`-L -n` and its variants, `-L -c`, `--timeout`), byte for byte.

use super::{ListOpts, RuleError};
use crate::model::{ConnEntry, FwdMode, ServiceView, TcpState, VirtualService};
use std::fmt::Write as _;

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
    let order = if opts.nosort { owned.iter().collect() } else { crate::ipvsadm::sorted_services(&owned) };
    for svc in order {
        let key = crate::ipvsadm::ServiceKey::of(svc);
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
            if let Some(f) = crate::ipvsadm::sched_flags_text(svc) {
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
        let servers = if opts.nosort { svc.servers.iter().collect() } else { crate::ipvsadm::sorted_servers(svc) };
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
    use crate::model::{Persistence, Proto, RealServer, SchedFlags, SchedKind};
    use crate::model::{Rates, ServerCounters};

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
        let key = |port| crate::ipvsadm::ServiceKey { proto: Proto::Tcp, addr: "10.0.0.1".parse().unwrap(), port };
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
            e(17, crate::model::UDP_STATE, false, 61, a("198.18.0.2", 5353), a("198.19.0.12", 53)),
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
}
