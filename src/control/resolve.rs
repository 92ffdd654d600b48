//! What `xvs run` reads from the kernel (control plane only): interface MACs and addresses,
//! routes, and next-hop MACs from the neighbour table, through iproute2's JSON output.
//!
//! Next hops are resolved, not typed: for every real server and for the default route, the
//! kernel's route gives the interface and the next-hop address, and the neighbour table its
//! MAC. An address the kernel has not resolved yet is solicited (one empty UDP datagram to
//! its discard port makes the kernel ARP for it) and looked up again.

use crate::config::{Config, Neighbour};
use crate::wire::MacAddr;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

/// Errors reading the system's state.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("running `ip {args}`: {msg}")]
    Ip { args: String, msg: String },
    #[error("interface {iface}: {msg}")]
    Iface { iface: String, msg: String },
}

fn ip_json<T: for<'de> Deserialize<'de>>(args: &[&str]) -> Result<T, SystemError> {
    let mk = |msg: String| SystemError::Ip { args: args.join(" "), msg };
    let out = Command::new("ip").arg("-j").args(args).output().map_err(|e| mk(e.to_string()))?;
    if !out.status.success() {
        return Err(mk(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| mk(format!("unexpected output: {e}")))
}

#[derive(Deserialize)]
struct AddrInfo {
    family: String,
    local: String,
}

#[derive(Deserialize)]
struct Link {
    address: Option<String>,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
    mtu: Option<u32>,
}

/// An interface's MAC, first IPv4 address and MTU.
pub fn interface(iface: &str) -> Result<(MacAddr, Option<Ipv4Addr>, u32), SystemError> {
    let links: Vec<Link> = ip_json(&["addr", "show", "dev", iface])?;
    let l = links.first().ok_or_else(|| SystemError::Iface { iface: iface.into(), msg: "no such interface".into() })?;
    let mac = l
        .address
        .as_deref()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| SystemError::Iface { iface: iface.into(), msg: "no Ethernet address".into() })?;
    let ip = l.addr_info.iter().filter(|a| a.family == "inet").find_map(|a| a.local.parse().ok());
    Ok((mac, ip, l.mtu.unwrap_or(1500)))
}

#[derive(Deserialize)]
struct RouteJson {
    dev: Option<String>,
    gateway: Option<String>,
}

/// The interface and next-hop address the kernel routes `addr` through.
pub fn route(addr: Ipv4Addr) -> Result<(String, Ipv4Addr), SystemError> {
    let a = addr.to_string();
    let r: Vec<RouteJson> = ip_json(&["route", "get", &a])?;
    let r = r.first().ok_or_else(|| SystemError::Ip { args: format!("route get {a}"), msg: "no route".into() })?;
    let dev =
        r.dev.clone().ok_or_else(|| SystemError::Ip { args: format!("route get {a}"), msg: "no device".into() })?;
    let via = r.gateway.as_deref().and_then(|g| g.parse().ok()).unwrap_or(addr);
    Ok((dev, via))
}

/// The default route's interface and gateway, if there is one.
pub fn default_route() -> Result<Option<(String, Ipv4Addr)>, SystemError> {
    let r: Vec<RouteJson> = ip_json(&["route", "show", "default"])?;
    Ok(r.iter().find_map(|r| Some((r.dev.clone()?, r.gateway.as_deref()?.parse().ok()?))))
}

#[derive(Deserialize)]
struct NeighJson {
    lladdr: Option<String>,
    #[serde(default)]
    state: Vec<String>,
}

/// The neighbour table's MAC for `addr` on `dev`, if resolved (not INCOMPLETE or FAILED).
pub fn neighbour(addr: Ipv4Addr, dev: &str) -> Result<Option<MacAddr>, SystemError> {
    let a = addr.to_string();
    let n: Vec<NeighJson> = ip_json(&["neigh", "show", &a, "dev", dev])?;
    Ok(n.iter()
        .filter(|n| !n.state.iter().any(|s| s == "INCOMPLETE" || s == "FAILED"))
        .find_map(|n| n.lladdr.as_deref()?.parse().ok()))
}

/// Makes the kernel resolve `addr` (an empty datagram to its discard port, sent by the
/// director's own stack: the kernel ARPs for the next hop first).
pub fn solicit(addr: Ipv4Addr) {
    if let Ok(s) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) {
        let _ = s.send_to(&[], (addr, 9));
    }
}

/// Fills in interface MACs and addresses the config left out.
pub fn complete_interfaces(cfg: &mut Config) -> Result<(), SystemError> {
    for i in cfg.interfaces.iter_mut() {
        let (mac, ip, _) = interface(&i.name)?;
        i.mac.get_or_insert(mac);
        if i.ip.is_none() {
            i.ip = ip;
        }
    }
    Ok(())
}

/// Next hops resolved from the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Real servers (and whatever else was asked) -> next hop.
    pub neighbours: Vec<Neighbour>,
    /// The default gateway's MAC and interface index.
    pub gateway: Option<(MacAddr, usize)>,
    /// Addresses that could not be resolved, with why.
    pub unresolved: Vec<(Ipv4Addr, String)>,
}

/// Resolves every real server of `cfg` (those without a static `neighbours` entry) and the
/// default gateway (unless `gateway` is configured), waiting up to `wait` for the kernel to
/// answer solicitations.
pub fn resolve(cfg: &Config, wait: Duration) -> Resolved {
    let mut targets: BTreeMap<Ipv4Addr, ()> = BTreeMap::new();
    for s in &cfg.services {
        for r in &s.servers {
            if !cfg.neighbours.iter().any(|n| n.ip == r.addr) {
                targets.insert(r.addr, ());
            }
        }
    }
    let iface_of = |dev: &str| cfg.interfaces.iter().position(|i| i.name == dev);
    // (target, interface index, next-hop address)
    let mut hops = Vec::new();
    let mut out = Resolved::default();
    for &addr in targets.keys() {
        match route(addr) {
            Ok((dev, via)) => match iface_of(&dev) {
                Some(i) => hops.push((Some(addr), i, via, dev)),
                None => out.unresolved.push((addr, format!("routed via {dev}, which is not a director interface"))),
            },
            Err(e) => out.unresolved.push((addr, e.to_string())),
        }
    }
    if cfg.gateway.is_none() {
        match default_route() {
            Ok(Some((dev, via))) => match iface_of(&dev) {
                Some(i) => hops.push((None, i, via, dev)),
                None => tracing::warn!("the default route leaves via {dev}, not a director interface: no gateway"),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!("reading the default route: {e}"),
        }
    }
    let deadline = Instant::now() + wait;
    let mut solicited = false;
    loop {
        let mut pending = Vec::new();
        for (target, i, via, dev) in hops.drain(..) {
            match neighbour(via, &dev) {
                Ok(Some(mac)) => match target {
                    Some(ip) => out.neighbours.push(Neighbour { ip, mac, interface: i }),
                    None => out.gateway = Some((mac, i)),
                },
                Ok(None) => pending.push((target, i, via, dev)),
                Err(e) => out.unresolved.push((target.unwrap_or(via), e.to_string())),
            }
        }
        if pending.is_empty() || Instant::now() >= deadline {
            for (target, _, via, dev) in pending {
                out.unresolved.push((target.unwrap_or(via), format!("no neighbour entry for {via} on {dev}")));
            }
            break;
        }
        if !solicited {
            for (_, _, via, _) in &pending {
                solicit(*via);
            }
            solicited = true;
        }
        std::thread::sleep(Duration::from_millis(20));
        hops = pending;
    }
    out.neighbours.sort_by_key(|n| n.ip);
    out
}

/// The config with resolved next hops added to the static ones (static entries win).
pub fn with_resolved(cfg: &Config, r: &Resolved) -> Config {
    let mut c = cfg.clone();
    for n in &r.neighbours {
        if !c.neighbours.iter().any(|x| x.ip == n.ip) {
            c.neighbours.push(n.clone());
        }
    }
    if c.gateway.is_none() {
        c.gateway = r.gateway;
    }
    c
}
