//! Start-up checks of the host the director runs on: FULLNAT local ports against the kernel's
//! ephemeral ports, the DIP and VIPs against the director's own addresses, memory, and where
//! the director's threads may run (online cores, thread affinity).

use crate::config::Config;
use std::net::Ipv4Addr;

/// Port ranges in `net.ipv4.ip_local_reserved_ports` syntax (`8080,10000-10010`).
pub fn parse_port_list(text: &str) -> Vec<(u16, u16)> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .filter_map(|t| match t.split_once('-') {
            Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
            None => t.parse().ok().map(|p| (p, p)),
        })
        .collect()
}

/// Why FULLNAT local ports `ports` cannot be used beside the kernel's ephemeral range
/// `ephemeral` (less the ports it keeps `reserved`), or None. A port both ranges hold could be
/// given by the kernel to one of the director's own connections (a health check, the host's
/// traffic from the DIP) whose replies the steering program would then send to the workers.
pub fn local_ports_conflict(ports: (u16, u16), ephemeral: (u16, u16), reserved: &[(u16, u16)]) -> Option<String> {
    let (a, b) = ports;
    let (lo, hi) = ephemeral;
    let (from, to) = (a.max(lo), b.min(hi));
    if from > to {
        return None;
    }
    let is_reserved = |p: u16| reserved.iter().any(|&(x, y)| x <= p && p <= y);
    let first = (from..=to).find(|&p| !is_reserved(p))?;
    Some(format!(
        "director.local_ports: {a}-{b} overlaps the kernel's ephemeral ports {lo}-{hi} (net.ipv4.ip_local_port_range; \
         port {first} is in both and not in net.ipv4.ip_local_reserved_ports): the director's own connections would \
         get ports whose replies go to xvs. Choose ports outside {lo}-{hi}, or reserve them for xvs"
    ))
}

/// Bytes `xvs run` allocates at start for `cfg`: every worker's connection shard (as
/// [`crate::conn::ConnShard::memory_for`] counts it) and UMEM.
pub fn start_memory(cfg: &Config) -> u64 {
    let workers = cfg.workers.max(1) as u64;
    let fullnat = cfg.services.iter().any(|s| s.servers.iter().any(|r| r.mode == crate::model::FwdMode::FullNat));
    let shard = crate::conn::ConnShard::memory_for(cfg.max_conns_per_worker, fullnat) as u64;
    let umem = cfg.umem_frames as u64 * crate::dataplane::FRAME_SIZE as u64;
    workers * (shard + umem)
}

/// FULLNAT's sustainable rate for `cfg`, as logged at start: local tuples towards each real
/// server (addresses x ports), and the new connections a second they sustain per real
/// server when connections are short and each tuple waits out IPVS's TIME_WAIT (a closed
/// connection's entry keeps its tuple that long). None without a FULLNAT real server.
pub fn fullnat_rate(cfg: &Config) -> Option<String> {
    let servers: std::collections::BTreeSet<(u8, Ipv4Addr, u16)> = cfg
        .services
        .iter()
        .flat_map(|s| {
            s.servers
                .iter()
                .filter(|r| r.mode == crate::model::FwdMode::FullNat)
                .map(move |r| (s.proto.number(), r.addr, r.port))
        })
        .collect();
    if servers.is_empty() {
        return None;
    }
    let addrs = cfg.local_addrs().len() as u64;
    let ports = (cfg.local_ports.1 as u64 + 1).saturating_sub(cfg.local_ports.0 as u64);
    let tw = cfg.timeouts.secs[crate::conn::TcpState::TimeWait as usize].max(crate::conn::lports::SERVER_TIME_WAIT_SECS)
        as u64;
    let lap = tw + crate::conn::lports::LAP_MARGIN_SECS;
    let tuples = addrs * ports;
    Some(format!(
        "FULLNAT: {addrs} local address(es) x {ports} ports = {tuples} connections at once to each of {} real \
         servers; short connections closed by either end hold their tuple {tw} s (TIME_WAIT): about {} new \
         connections a second per real server, {} in all; a restart reuses no tuple a real server still holds \
         up to {} a second per real server",
        servers.len(),
        tuples / tw,
        tuples * servers.len() as u64 / tw,
        tuples / lap
    ))
}

/// Refuses a config whose tables would not fit in `available` bytes (the kernel's
/// MemAvailable), naming the fields and the figures, before anything is allocated.
pub fn check_memory(cfg: &Config, available: u64) -> Result<(), String> {
    let need = start_memory(cfg);
    if need <= available {
        return Ok(());
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    Err(format!(
        "conn.max_per_worker: {} connections x {} workers (director.workers), with {} UMEM frames each \
         (director.umem_frames), need {:.1} GiB at start; this machine has {:.1} GiB available (MemAvailable). \
         Lower conn.max_per_worker (about {} bytes a connection)",
        cfg.max_conns_per_worker,
        cfg.workers,
        cfg.umem_frames,
        gib(need),
        gib(available),
        need / (cfg.max_conns_per_worker as u64 * cfg.workers.max(1) as u64).max(1)
    ))
}

/// The kernel's MemAvailable in bytes (None when /proc/meminfo cannot be read).
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A kernel CPU list ("0-3,6", as in /sys/devices/system/cpu/online), in order; None when
/// it does not parse.
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cores = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b): (usize, usize) = match part.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let c = part.parse().ok()?;
                (c, c)
            }
        };
        if a > b || b >= 1 << 16 {
            return None;
        }
        cores.extend(a..=b);
    }
    Some(cores)
}

/// The CPUs the kernel has online.
pub fn online_cores() -> Option<Vec<usize>> {
    parse_cpu_list(&std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?)
}

/// Where the director's other threads (control, metrics, health checks, sync, BGP) run when
/// the workers are pinned: every online core that no worker holds, so that none of them
/// preempts a busy-polling worker. None when the workers hold every core.
pub fn housekeeping_cores(worker_cores: &[usize], online: &[usize]) -> Option<Vec<usize>> {
    let rest: Vec<usize> = online.iter().copied().filter(|c| !worker_cores.contains(c)).collect();
    (!rest.is_empty()).then_some(rest)
}

/// Confines the calling thread, and every thread it starts from then on, to `cores`.
pub fn confine_thread(cores: &[usize]) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cores {
        set.set(c).map_err(|e| format!("core {c}: {e}"))?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|e| format!("cores {cores:?}: {e}"))
}

/// Reads the kernel's ranges and checks `cfg.local_ports` against them.
pub fn check_local_ports(cfg: &Config) -> Result<(), String> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let v: Vec<u16> =
        read("/proc/sys/net/ipv4/ip_local_port_range").split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let [lo, hi] = v[..] else { return Ok(()) };
    let reserved = parse_port_list(&read("/proc/sys/net/ipv4/ip_local_reserved_ports"));
    match local_ports_conflict(cfg.local_ports, (lo, hi), &reserved) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// What to report about the DIP and the VIPs given the director's own addresses `local`: a
/// DIP the host does not hold never sees FULLNAT replies; a VIP it does not hold is not
/// answered for by ARP, so only a router that routes it to the director brings its traffic.
pub fn foreign_addresses(cfg: &Config, local: &[Ipv4Addr]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(dip) = cfg.dip().filter(|d| !local.contains(d)) {
        out.push(format!("director.dip {dip} is not an address of this host: FULLNAT replies to it will not arrive"));
    }
    for (i, a) in cfg.local_addrs.iter().enumerate().filter(|(_, a)| !local.contains(a)) {
        out.push(format!(
            "director.local_addrs[{i}] {a} is not an address of this host: nothing answers the real servers' ARP \
             for it, so FULLNAT replies to it will not arrive (add it: ip addr add {a}/32 dev IF)"
        ));
    }
    let mut vips: Vec<Ipv4Addr> = cfg.services.iter().map(|s| s.vip).collect();
    vips.sort();
    vips.dedup();
    for v in vips.into_iter().filter(|v| !local.contains(v)) {
        out.push(format!(
            "VIP {v} is not an address of this host: nothing answers ARP for it, so only traffic routed to the \
             director reaches it"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_that_does_not_fit_is_refused_with_the_figures() {
        let json = |max: u64| {
            format!(
                r#"{{"director": {{"interfaces": [{{"name": "xvs-c", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"}}],
                     "workers": 2, "local_ports": [10000, 32767]}},
                   "conn": {{"max_per_worker": {max}}}, "services": []}}"#
            )
        };
        let small = Config::parse(&json(1 << 20)).expect("config");
        // 2 x (1M x 52.5 B + 8192 UMEM frames of 2 KiB) is about 144 MB.
        let need = start_memory(&small);
        assert!((140_000_000..150_000_000).contains(&need), "{need}");
        assert!(check_memory(&small, 1 << 30).is_ok());
        let big = Config::parse(&json(8_000_000)).expect("config");
        let e = check_memory(&big, 512 << 20).unwrap_err();
        assert!(e.starts_with("conn.max_per_worker: 8000000 connections x 2 workers"), "{e}");
        assert!(e.contains("this machine has 0.5 GiB available"), "{e}");
        assert!(e.contains("need 0.8 GiB"), "{e}");
    }

    #[test]
    fn cpu_lists_parse_and_the_other_threads_get_the_cores_no_worker_holds() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0,2-4,7"), Some(vec![0, 2, 3, 4, 7]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(housekeeping_cores(&[1], &[0, 1]), Some(vec![0]));
        assert_eq!(housekeeping_cores(&[2, 3], &[0, 1, 2, 3]), Some(vec![0, 1]));
        assert_eq!(housekeeping_cores(&[0, 1], &[0, 1]), None);
    }

    #[test]
    fn the_fullnat_rate_is_addresses_times_ports_over_time_wait() {
        let json = |mode: &str| {
            format!(
                r#"{{"director": {{"interfaces": [{{"name": "xvs-c", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"}}],
                     "local_addrs": ["198.18.0.1", "198.18.0.9"], "local_ports": [20000, 59999]}},
                   "services": [{{"proto": "tcp", "vip": "198.18.0.100", "port": 80, "real_servers": [
                     {{"addr": "198.18.0.11", "port": 80, "mode": "{mode}"}}, {{"addr": "198.18.0.12", "port": 80, "mode": "{mode}"}}]}}]}}"#
            )
        };
        let r = fullnat_rate(&Config::parse(&json("fullnat")).expect("config")).expect("FULLNAT");
        // 2 x 40,000 tuples a server over 120 s: 666 a second each, 1,333 in all.
        assert!(
            r.starts_with("FULLNAT: 2 local address(es) x 40000 ports = 80000 connections at once to each of 2"),
            "{r}"
        );
        assert!(r.contains("about 666 new connections a second per real server, 1333 in all"), "{r}");
        assert!(r.ends_with("up to 533 a second per real server"), "{r}");
        assert_eq!(fullnat_rate(&Config::parse(&json("nat")).expect("config")), None);
    }

    #[test]
    fn local_ports_beside_the_kernels_ephemeral_range() {
        let linux = (32768, 60999);
        assert_eq!(local_ports_conflict((10000, 32767), linux, &[]), None);
        assert_eq!(local_ports_conflict((61000, 65535), linux, &[]), None);
        let e = local_ports_conflict((20000, 59999), linux, &[]).expect("overlap");
        assert!(
            e.starts_with("director.local_ports: 20000-59999 overlaps the kernel's ephemeral ports 32768-60999"),
            "{e}"
        );
        assert!(e.contains("port 32768 is in both"), "{e}");
        // Reserved for xvs: the kernel never hands them out.
        assert_eq!(local_ports_conflict((40000, 49999), linux, &parse_port_list("8080, 40000-49999")), None);
        let part = local_ports_conflict((40000, 49999), linux, &parse_port_list("40000-44999")).expect("partly");
        assert!(part.contains("port 45000"), "{part}");
    }

    #[test]
    fn reserved_port_lists_parse_as_the_kernel_prints_them() {
        assert_eq!(parse_port_list("8080,10000-10010\n"), vec![(8080, 8080), (10000, 10010)]);
        assert_eq!(parse_port_list(""), vec![]);
        assert_eq!(parse_port_list("x,1-y,7"), vec![(7, 7)]);
    }
}
