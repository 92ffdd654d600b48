//! Applying commands to a service table.

use std::net::Ipv4Addr;

#[allow(unused_imports)]
use super::format::*;
#[allow(unused_imports)]
use super::options::*;
#[allow(unused_imports)]
use super::parse::*;
use super::*;
use crate::model::{
    FwdMode, Persistence, RealServer, SchedFlags, SchedKind, ServiceKey, VirtualService, MAX_PERSISTENCE_TIMEOUT,
};

// ------------------------------------------------------------------------------------------
// Applying commands to a service table
// ------------------------------------------------------------------------------------------

pub(super) fn find_service<'s>(services: &'s mut [VirtualService], key: &ServiceKey) -> Option<&'s mut VirtualService> {
    services.iter_mut().find(|s| key.matches(s))
}

/// sh and mh use the flags; IPVS ignores them for every other scheduler, and so does xvs.
pub(super) fn effective_flags(sched: SchedKind, flags: SchedFlags) -> SchedFlags {
    match sched {
        SchedKind::Sh | SchedKind::Mh => flags,
        _ => SchedFlags::default(),
    }
}

pub(super) fn check_timeout(t: u32) -> Result<u32, RuleError> {
    if (1..=MAX_PERSISTENCE_TIMEOUT).contains(&t) {
        Ok(t)
    } else {
        Err(RuleError::InvalidTimeout(t.to_string()))
    }
}

pub(super) fn check_server_numbers(weight: u32, u: u32, l: u32) -> Result<(), RuleError> {
    if weight > 65535 {
        return Err(RuleError::IllegalWeight);
    }
    if u > i32::MAX as u32 {
        return Err(RuleError::IllegalUThreshold);
    }
    if l > i32::MAX as u32 {
        return Err(RuleError::IllegalLThreshold);
    }
    if l > u {
        return Err(RuleError::ThresholdRange { l, u });
    }
    Ok(())
}

/// The port a server command names: the service port for direct routing and tunnelling
/// (ipvsadm forces it), else the given port or the service port.
pub(super) fn dest_port(key: &ServiceKey, mode: Option<FwdMode>, port: Option<u16>) -> u16 {
    match mode {
        Some(FwdMode::Dr) | Some(FwdMode::Tun) => key.port,
        _ => port.unwrap_or(key.port),
    }
}

/// Applies a table-changing command with the kernel's checks and error messages.
///
/// * `AddService`: "Service already exists"; scheduler default wlc; persistence when `-p`
///   was given, netmask default 255.255.255.255; flags kept for sh/mh only.
/// * `EditService`: "No such service"; changes only the fields given (see the module docs).
/// * `DeleteService`: "No such service". `Clear` empties the table.
/// * `AddServer`: "Service not defined", then the kernel's threshold check, then
///   "Destination already exists" (same address and port). Defaults: direct routing, weight
///   1, thresholds 0. **IPVS inserts a new real server at the head of the service's list
///   (`list_add_rcu`), so the new server goes to index 0**: the most recently added server
///   comes first in scheduling order and in `--nosort` listings.
/// * `EditServer`: "Service not defined", "No such destination"; changes only the fields
///   given; the result must keep `l_threshold <= u_threshold`.
/// * `DeleteServer`: "Service not defined", "No such destination".
///
/// Every other command (list, save, zero, set, help, version, restore) changes nothing
/// here and returns `Ok(())`.
pub fn apply(services: &mut Vec<VirtualService>, cmd: &Command) -> Result<(), RuleError> {
    match cmd {
        Command::AddService(key, o) => {
            if services.iter().any(|s| key.matches(s)) {
                return Err(RuleError::ServiceExists);
            }
            let sched = o.scheduler.unwrap_or(SchedKind::Wlc);
            let mut svc = VirtualService::new(key.proto, key.addr, key.port, sched);
            if let Some(t) = o.persistent {
                svc.persistence = Some(Persistence {
                    timeout_s: check_timeout(t)?,
                    netmask: o.netmask.unwrap_or(Ipv4Addr::BROADCAST),
                });
            }
            svc.flags = effective_flags(sched, o.flags.unwrap_or_default());
            services.push(svc);
        }
        Command::EditService(key, o) => {
            let svc = find_service(services, key).ok_or(RuleError::NoSuchService)?;
            if let Some(t) = o.persistent {
                check_timeout(t)?;
            }
            if let Some(s) = o.scheduler {
                svc.scheduler = s;
            }
            match (o.persistent, svc.persistence.as_mut()) {
                (Some(t), Some(p)) => {
                    p.timeout_s = t;
                    if let Some(m) = o.netmask {
                        p.netmask = m;
                    }
                }
                (Some(t), None) => {
                    svc.persistence =
                        Some(Persistence { timeout_s: t, netmask: o.netmask.unwrap_or(Ipv4Addr::BROADCAST) });
                }
                (None, Some(p)) => {
                    if let Some(m) = o.netmask {
                        p.netmask = m;
                    }
                }
                (None, None) => {}
            }
            if let Some(f) = o.flags {
                svc.flags = f;
            }
            svc.flags = effective_flags(svc.scheduler, svc.flags);
        }
        Command::DeleteService(key) => {
            let before = services.len();
            services.retain(|s| !key.matches(s));
            if services.len() == before {
                return Err(RuleError::NoSuchService);
            }
        }
        Command::Clear => services.clear(),
        Command::AddServer(key, o) => {
            let svc = find_service(services, key).ok_or(RuleError::ServiceNotDefined)?;
            let mode = o.mode.unwrap_or(FwdMode::Dr);
            let port = dest_port(key, Some(mode), o.port);
            let weight = o.weight.unwrap_or(1);
            let u = o.u_threshold.unwrap_or(0);
            let l = o.l_threshold.unwrap_or(0);
            check_server_numbers(weight, u, l)?;
            if svc.servers.iter().any(|d| d.addr == o.addr && d.port == port) {
                return Err(RuleError::DestinationExists);
            }
            svc.servers.insert(0, RealServer { addr: o.addr, port, weight, mode, u_threshold: u, l_threshold: l });
        }
        Command::EditServer(key, o) => {
            let svc = find_service(services, key).ok_or(RuleError::ServiceNotDefined)?;
            let port = dest_port(key, o.mode, o.port);
            let dest = svc
                .servers
                .iter_mut()
                .find(|d| d.addr == o.addr && d.port == port)
                .ok_or(RuleError::NoSuchDestination)?;
            let weight = o.weight.unwrap_or(dest.weight);
            let u = o.u_threshold.unwrap_or(dest.u_threshold);
            let l = o.l_threshold.unwrap_or(dest.l_threshold);
            check_server_numbers(weight, u, l)?;
            dest.weight = weight;
            dest.u_threshold = u;
            dest.l_threshold = l;
            if let Some(m) = o.mode {
                dest.mode = m;
            }
        }
        Command::DeleteServer(key, addr, port) => {
            let svc = find_service(services, key).ok_or(RuleError::ServiceNotDefined)?;
            let before = svc.servers.len();
            svc.servers.retain(|d| !(d.addr == *addr && d.port == *port));
            if svc.servers.len() == before {
                return Err(RuleError::NoSuchDestination);
            }
        }
        Command::Restore
        | Command::Save { .. }
        | Command::List(_)
        | Command::Zero(_)
        | Command::SetTimeouts { .. }
        | Command::Help
        | Command::StartDaemon(_)
        | Command::StopDaemon(_)
        | Command::Version => {}
    }
    Ok(())
}

/// [`parse_rules`], then [`apply`] of every command to an empty table, stopping at the first
/// error (wrapped in [`RuleError::Line`]).
pub fn services_from_rules(text: &str) -> Result<Vec<VirtualService>, RuleError> {
    let mut services = Vec::new();
    for (line, cmd) in parse_rules(text)? {
        apply(&mut services, &cmd).map_err(|e| RuleError::Line { line, source: Box::new(e) })?;
    }
    Ok(services)
}
