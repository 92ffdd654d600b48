//! ipvsadm's orderings and `ipvsadm -S -n` output.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

#[allow(unused_imports)]
use super::apply::*;
#[allow(unused_imports)]
use super::options::*;
#[allow(unused_imports)]
use super::parse::*;
use crate::model::{FwdMode, RealServer, SchedKind, ServiceKey, VirtualService};

// ------------------------------------------------------------------------------------------
// Sorting and `ipvsadm -S -n`
// ------------------------------------------------------------------------------------------

/// libipvs's IPv4 address comparison: `int r = ntohl(a) - ntohl(b)`, so addresses more than
/// 2^31 apart compare in wrapped order (10.0.0.1 sorts after 192.168.0.1). Not a total
/// order; [`sorted_services`] and [`sorted_servers`] sort without assuming one.
pub fn cmp_ipv4_ipvsadm(a: Ipv4Addr, b: Ipv4Addr) -> Ordering {
    (u32::from(a).wrapping_sub(u32::from(b)) as i32).cmp(&0)
}

/// `ipvs_cmp_services` for IPv4 TCP/UDP: protocol number, address (wrapped), port.
pub(super) fn cmp_services(a: &VirtualService, b: &VirtualService) -> Ordering {
    a.proto
        .number()
        .cmp(&b.proto.number())
        .then_with(|| cmp_ipv4_ipvsadm(a.vip, b.vip))
        .then_with(|| a.port.cmp(&b.port))
}

/// `ipvs_cmp_dests`: address (wrapped), then port.
pub(super) fn cmp_dests(a: &RealServer, b: &RealServer) -> Ordering {
    cmp_ipv4_ipvsadm(a.addr, b.addr).then_with(|| a.port.cmp(&b.port))
}

/// glibc's `qsort` merge sort (`msort_with_tmp`): split n/2 | n - n/2, merge taking the left
/// element unless it compares greater. Deterministic and panic-free for comparators that are
/// not total orders, like ipvsadm's.
pub(super) fn glibc_msort<T: Copy>(v: &mut [T], tmp: &mut Vec<T>, cmp: &dyn Fn(&T, &T) -> Ordering) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    {
        let (left, right) = v.split_at_mut(n1);
        glibc_msort(left, tmp, cmp);
        glibc_msort(right, tmp, cmp);
    }
    tmp.clear();
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) != Ordering::Greater {
            tmp.push(v[i]);
            i += 1;
        } else {
            tmp.push(v[j]);
            j += 1;
        }
    }
    tmp.extend_from_slice(&v[i..n1]);
    tmp.extend_from_slice(&v[j..n]);
    v.copy_from_slice(tmp);
}

/// Services in ipvsadm's listing order (`ipvs_sort_services`, including its address quirk).
pub fn sorted_services(services: &[VirtualService]) -> Vec<&VirtualService> {
    let mut v: Vec<&VirtualService> = services.iter().collect();
    let mut tmp = Vec::with_capacity(v.len());
    glibc_msort(&mut v, &mut tmp, &|a, b| cmp_services(a, b));
    v
}

/// A service's real servers in ipvsadm's listing order (`ipvs_sort_dests`).
pub fn sorted_servers(svc: &VirtualService) -> Vec<&RealServer> {
    let mut v: Vec<&RealServer> = svc.servers.iter().collect();
    let mut tmp = Vec::with_capacity(v.len());
    glibc_msort(&mut v, &mut tmp, &|a, b| cmp_dests(a, b));
    v
}

/// A service's scheduler flags as ipvsadm prints them (`-b` of `-S`, the parentheses of `-L`),
/// if any.
pub fn sched_flags_text(svc: &VirtualService) -> Option<String> {
    let prefix = match svc.scheduler {
        SchedKind::Sh => "sh",
        SchedKind::Mh => "mh",
        _ => return None,
    };
    let mut parts = Vec::new();
    if svc.flags.fallback {
        parts.push(format!("{prefix}-fallback"));
    }
    if svc.flags.port {
        parts.push(format!("{prefix}-port"));
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Exactly what `ipvsadm -S -n` prints for these services (§6 of the format notes): sorted
/// services, each `-A` line followed by its sorted `-a` lines; nothing for an empty table.
/// FULLNAT servers are written with the xvs `-j` option. Thresholds are not saved (ipvsadm
/// does not save them either).
pub fn save_rules(services: &[VirtualService]) -> String {
    let mut out = String::new();
    for svc in sorted_services(services) {
        let name = ServiceKey::of(svc).to_string();
        let _ = write!(out, "-A {} -s {}", name, svc.scheduler.name());
        if let Some(p) = svc.persistence {
            let _ = write!(out, " -p {}", p.timeout_s);
            if p.netmask != Ipv4Addr::BROADCAST {
                let _ = write!(out, " -M {}", p.netmask);
            }
        }
        if let Some(f) = sched_flags_text(svc) {
            let _ = write!(out, " -b {f}");
        }
        out.push('\n');
        for d in sorted_servers(svc) {
            let fwd = match d.mode {
                FwdMode::Nat => "-m",
                FwdMode::Tun => "-i",
                FwdMode::Dr => "-g",
                FwdMode::FullNat => "-j",
            };
            // ipvsadm 1.31 names the tunnel type of tunnelling servers.
            let tun = if d.mode == FwdMode::Tun { " --tun-type ipip" } else { "" };
            let _ = writeln!(out, "-a {} -r {}:{} {} -w {}{tun}", name, d.addr, d.port, fwd, d.weight);
        }
    }
    out
}
