//! The command-line grammar: tokens to a [`Command`](super::Command).

use std::net::{Ipv4Addr, Ipv6Addr};

#[allow(unused_imports)]
use super::apply::*;
#[allow(unused_imports)]
use super::format::*;
#[allow(unused_imports)]
use super::options::*;
use super::*;
use crate::model::{
    FwdMode, Proto, SchedFlags, SchedKind, ServiceKey, DEFAULT_PERSISTENCE_TIMEOUT, MAX_PERSISTENCE_TIMEOUT,
};

// ------------------------------------------------------------------------------------------
// Small parsers
// ------------------------------------------------------------------------------------------

/// ipvsadm's `string_to_number`: `strtol(s, &end, 10)` must consume all of a non-empty `s`
/// and land in `min..=max`.
pub(super) fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, digits) = if let Some(d) = t.strip_prefix('-') {
        (true, d)
    } else if let Some(d) = t.strip_prefix('+') {
        (false, d)
    } else {
        (false, t)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    let v = if neg { -v } else { v };
    (min..=max).contains(&v).then_some(v)
}

pub(super) fn parse_u32(s: &str, min: u32, max: u32) -> Option<u32> {
    string_to_number(s, i64::from(min), i64::from(max)).and_then(|v| u32::try_from(v).ok())
}

pub(super) fn parse_port(s: &str) -> Option<u16> {
    if let Some(v) = string_to_number(s, 0, 65535) {
        return u16::try_from(v).ok();
    }
    PORT_NAMES.iter().find(|(n, _)| *n == s).map(|&(_, p)| p)
}

pub(super) enum HostPortError {
    /// An IPv6 address (xvs does not support them).
    Ipv6,
    Illegal,
}

/// `host[:port]` with a dotted-quad IPv4 host.
pub(super) fn parse_hostport(s: &str) -> Result<(Ipv4Addr, Option<u16>), HostPortError> {
    if s.starts_with('[') || s.parse::<Ipv6Addr>().is_ok() {
        return Err(HostPortError::Ipv6);
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if host.parse::<Ipv6Addr>().is_ok() {
        return Err(HostPortError::Ipv6);
    }
    let addr: Ipv4Addr = host.parse().map_err(|_| HostPortError::Illegal)?;
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or(HostPortError::Illegal)?),
    };
    Ok((addr, port))
}

/// A dotted-quad, contiguous netmask.
pub(super) fn parse_netmask(s: &str) -> Option<Ipv4Addr> {
    let m: Ipv4Addr = s.parse().ok()?;
    let bits = u32::from(m);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(m)
}

/// ipvsadm's `parse_sched_flags`, checked against `sched` when it is known.
pub(super) fn parse_sched_flags(sched: Option<&str>, arg: &str) -> Result<SchedFlags, RuleError> {
    let mut flags = SchedFlags::default();
    let mut any = false;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        any = true;
        let needs = match flag {
            "flag-1" => {
                flags.fallback = true;
                None
            }
            "flag-2" => {
                flags.port = true;
                None
            }
            "flag-3" => None,
            "sh-fallback" => {
                flags.fallback = true;
                Some("sh")
            }
            "sh-port" => {
                flags.port = true;
                Some("sh")
            }
            "mh-fallback" => {
                flags.fallback = true;
                Some("mh")
            }
            "mh-port" => {
                flags.port = true;
                Some("mh")
            }
            _ => return Err(RuleError::InvalidSchedFlag(flag.to_string())),
        };
        if let (Some(need), Some(s)) = (needs, sched) {
            if s != need {
                return Err(RuleError::IncompatibleSchedFlag(flag.to_string()));
            }
        }
    }
    if !any {
        return Err(RuleError::InvalidSchedFlag(arg.to_string()));
    }
    Ok(flags)
}

/// A scheduler name to an xvs scheduler (ipvsadm leaves this to the kernel: ENOENT).
pub(super) fn resolve_scheduler(name: &str) -> Result<SchedKind, RuleError> {
    if let Some(k) = SchedKind::parse(name) {
        return Ok(k);
    }
    match name {
        "lblc" | "lblcr" | "fo" | "ovf" | "twos" => Err(RuleError::SchedulerNotImplemented(name.to_string())),
        _ => Err(RuleError::SchedulerNotFound),
    }
}

// ------------------------------------------------------------------------------------------
// The command-line parser
// ------------------------------------------------------------------------------------------

#[derive(Default)]
pub(super) struct Parser<'a> {
    cmd: Option<Cmd>,
    opts: u64,
    svc: Option<(Proto, Ipv4Addr, u16)>,
    sched: Option<&'a str>,
    persistent: Option<u32>,
    netmask: Option<Ipv4Addr>,
    sched_flags: Option<&'a str>,
    dest: Option<(Ipv4Addr, Option<u16>)>,
    mode: Option<FwdMode>,
    weight: Option<u32>,
    u_threshold: Option<u32>,
    l_threshold: Option<u32>,
    /// The first unsupported option, refused after the legality checks.
    unsupported: Option<String>,
    /// `--tun-type`'s argument.
    tun_type: Option<&'a str>,
    /// `--start-daemon` / `--stop-daemon`'s role and the daemon options.
    role: Option<crate::model::SyncRole>,
    mcast_if: Option<&'a str>,
    syncid: Option<u8>,
    mcast_group: Option<Ipv4Addr>,
    mcast_port: Option<u16>,
    mcast_ttl: Option<u8>,
    sync_maxlen: Option<u16>,
}

pub(super) enum Flow {
    Continue,
    Done(Command),
}

impl<'a> Parser<'a> {
    fn has(&self, o: usize) -> bool {
        self.opts & (1u64 << o) != 0
    }

    fn set_option(&mut self, o: usize) -> Result<(), RuleError> {
        if self.has(o) {
            return Err(RuleError::MultipleOptions(OPT_NAMES[o]));
        }
        self.opts |= 1u64 << o;
        Ok(())
    }

    fn forward(&mut self, mode: FwdMode) -> Result<Flow, RuleError> {
        self.set_option(O_FORWARD)?;
        self.mode = Some(mode);
        Ok(Flow::Continue)
    }

    fn flag(&mut self, o: usize) -> Result<Flow, RuleError> {
        self.set_option(o)?;
        Ok(Flow::Continue)
    }

    /// One option, `name` as typed (`-w`, `--weight`), with its argument if it takes one.
    fn handle(&mut self, spec: &Spec, name: &str, arg: Option<&'a str>) -> Result<Flow, RuleError> {
        let a = arg.unwrap_or("");
        if self.cmd.is_none() {
            // The first option must be a command.
            return match spec.id {
                Id::Command(c) => {
                    self.cmd = Some(c);
                    Ok(Flow::Continue)
                }
                Id::Help => Ok(Flow::Done(Command::Help)),
                Id::Version => Ok(Flow::Done(Command::Version)),
                Id::StartDaemon | Id::StopDaemon => {
                    let start = spec.id == Id::StartDaemon;
                    self.cmd = Some(if start { Cmd::StartDaemon } else { Cmd::StopDaemon });
                    self.role = Some(match a {
                        "master" => crate::model::SyncRole::Master,
                        "backup" => crate::model::SyncRole::Backup,
                        _ if start => return Err(RuleError::IllegalDaemonValue("start-daemon parameter")),
                        _ => return Err(RuleError::IllegalDaemonValue("stop_daemon parameter")),
                    });
                    Ok(Flow::Continue)
                }
                _ => Err(RuleError::NoCommand),
            };
        }
        match spec.id {
            Id::Command(_) | Id::Help | Id::Version | Id::StartDaemon | Id::StopDaemon => {
                Err(RuleError::MultipleCommands)
            }
            Id::Tcp | Id::Udp => {
                self.set_option(O_SERVICE)?;
                let proto = if spec.id == Id::Tcp { Proto::Tcp } else { Proto::Udp };
                match parse_hostport(a) {
                    Ok((addr, port)) => {
                        self.svc = Some((proto, addr, port.unwrap_or(0)));
                        Ok(Flow::Continue)
                    }
                    Err(HostPortError::Ipv6) => Err(RuleError::UnsupportedService(a.to_string())),
                    Err(HostPortError::Illegal) => Err(RuleError::IllegalServiceAddress),
                }
            }
            Id::Sctp | Id::Fwmark | Id::Ipv6 => Err(RuleError::UnsupportedService(name.to_string())),
            Id::Scheduler => {
                self.set_option(O_SCHEDULER)?;
                self.sched = Some(a);
                Ok(Flow::Continue)
            }
            Id::Persistent => {
                self.set_option(O_PERSISTENT)?;
                let t = match arg {
                    None => DEFAULT_PERSISTENCE_TIMEOUT,
                    Some(s) => parse_u32(s, 1, MAX_PERSISTENCE_TIMEOUT)
                        .ok_or_else(|| RuleError::InvalidTimeout(s.to_string()))?,
                };
                self.persistent = Some(t);
                Ok(Flow::Continue)
            }
            Id::Netmask => {
                self.set_option(O_NETMASK)?;
                self.netmask = Some(parse_netmask(a).ok_or(RuleError::IllegalNetmask)?);
                Ok(Flow::Continue)
            }
            Id::RealServer => {
                self.set_option(O_SERVER)?;
                match parse_hostport(a) {
                    Ok(d) => {
                        self.dest = Some(d);
                        Ok(Flow::Continue)
                    }
                    Err(HostPortError::Ipv6) => Err(RuleError::UnsupportedServer(a.to_string())),
                    Err(HostPortError::Illegal) => Err(RuleError::IllegalServerAddress),
                }
            }
            Id::Masq => self.forward(FwdMode::Nat),
            Id::Ipip => self.forward(FwdMode::Tun),
            Id::Gatewaying => self.forward(FwdMode::Dr),
            Id::FullNat => self.forward(FwdMode::FullNat),
            Id::Weight => {
                self.set_option(O_WEIGHT)?;
                self.weight = Some(parse_u32(a, 0, 65535).ok_or(RuleError::IllegalWeight)?);
                Ok(Flow::Continue)
            }
            Id::UThreshold => {
                self.set_option(O_UTHRESHOLD)?;
                self.u_threshold = Some(parse_u32(a, 0, i32::MAX as u32).ok_or(RuleError::IllegalUThreshold)?);
                Ok(Flow::Continue)
            }
            Id::LThreshold => {
                self.set_option(O_LTHRESHOLD)?;
                self.l_threshold = Some(parse_u32(a, 0, i32::MAX as u32).ok_or(RuleError::IllegalLThreshold)?);
                Ok(Flow::Continue)
            }
            Id::Numeric => self.flag(O_NUMERIC),
            Id::Connection => self.flag(O_CONNECTION),
            Id::Timeout => self.flag(O_TIMEOUT),
            Id::Stats => self.flag(O_STATS),
            Id::Rate => self.flag(O_RATE),
            Id::Thresholds => self.flag(O_THRESHOLDS),
            Id::PersistentConn => self.flag(O_PERSISTENTCONN),
            Id::NoSort => self.flag(O_NOSORT),
            Id::Sort => Ok(Flow::Continue),
            Id::Exact => self.flag(O_EXACT),
            Id::TunType => {
                self.set_option(O_TUN_TYPE)?;
                // ipvsadm's parse_tun_type: an unknown name fails at once.
                if !matches!(a, "ipip" | "gue" | "gre") {
                    return Err(RuleError::IllegalTunnelType);
                }
                self.tun_type = Some(a);
                Ok(Flow::Continue)
            }
            Id::SchedFlags => {
                self.set_option(O_SCHED_FLAGS)?;
                self.sched_flags = Some(a);
                Ok(Flow::Continue)
            }
            Id::Daemon => self.flag(O_DAEMON),
            Id::McastInterface => {
                self.set_option(O_MCAST_IF)?;
                // The kernel's IP_VS_IFNAME_MAXLEN (16, with the NUL).
                if a.is_empty() || a.len() > 15 {
                    return Err(RuleError::IllegalDaemonValue("mcast-interface"));
                }
                self.mcast_if = Some(a);
                Ok(Flow::Continue)
            }
            Id::Syncid => {
                self.set_option(O_SYNCID)?;
                self.syncid = Some(parse_u32(a, 0, 255).ok_or(RuleError::IllegalDaemonValue("syncid"))? as u8);
                Ok(Flow::Continue)
            }
            Id::McastGroup => {
                self.set_option(O_MCAST_GROUP)?;
                let g: Ipv4Addr = match a.parse() {
                    Ok(g) => g,
                    Err(_) if a.parse::<Ipv6Addr>().is_ok() => {
                        return Err(RuleError::UnsupportedOption(format!("--mcast-group {a}")))
                    }
                    Err(_) => return Err(RuleError::IllegalDaemonValue("multicast group")),
                };
                if !g.is_multicast() {
                    return Err(RuleError::IllegalDaemonValue("multicast group"));
                }
                self.mcast_group = Some(g);
                Ok(Flow::Continue)
            }
            Id::McastPort => {
                self.set_option(O_MCAST_PORT)?;
                self.mcast_port =
                    Some(parse_u32(a, 1, 65535).ok_or(RuleError::IllegalDaemonValue("mcast-port"))? as u16);
                Ok(Flow::Continue)
            }
            Id::McastTtl => {
                self.set_option(O_MCAST_TTL)?;
                self.mcast_ttl = Some(parse_u32(a, 1, 255).ok_or(RuleError::IllegalDaemonValue("mcast-ttl"))? as u8);
                Ok(Flow::Continue)
            }
            Id::SyncMaxlen => {
                self.set_option(O_SYNC_MAXLEN)?;
                // At least a header and one IPv4 connection with xvs's FULLNAT option (56 bytes);
                // at most what a UDP datagram holds.
                let most = 65535 - 28;
                self.sync_maxlen =
                    Some(parse_u32(a, 56, most).ok_or(RuleError::IllegalDaemonValue("sync-maxlen"))? as u16);
                Ok(Flow::Continue)
            }
            Id::Unsupported(o) => {
                self.set_option(o)?;
                if self.unsupported.is_none() {
                    let shown =
                        if name.starts_with("--") { name.to_string() } else { format!("{} (--{})", name, spec.long) };
                    self.unsupported = Some(shown);
                }
                Ok(Flow::Continue)
            }
        }
    }

    /// `generic_opt_check`: required, illegal and mutually exclusive options, in option order.
    fn generic_check(&self, cmd: Cmd) -> Result<(), RuleError> {
        let mut first_exclusive: Option<&'static str> = None;
        for (j, &option) in OPT_NAMES.iter().enumerate() {
            let rule = legality(cmd, j);
            if !self.has(j) {
                if rule == Legal::Required {
                    return Err(RuleError::MissingOption { option, command: cmd.name() });
                }
                continue;
            }
            match rule {
                Legal::Illegal => return Err(RuleError::IllegalOption { option, command: cmd.name() }),
                Legal::Exclusive => match first_exclusive {
                    None => first_exclusive = Some(option),
                    Some(last) => {
                        return Err(RuleError::ConflictingOptions { option, other: last, command: cmd.name() })
                    }
                },
                Legal::Required | Legal::Optional => {}
            }
        }
        Ok(())
    }

    fn finish(self, positional: &[&'a str]) -> Result<Command, RuleError> {
        let Some(cmd) = self.cmd else {
            return Err(RuleError::NoCommand);
        };
        let mut pos = positional.iter().copied();
        let mut timeouts = (0, 0, 0);
        if cmd == Cmd::Set {
            let (Some(a), Some(b), Some(c)) = (pos.next(), pos.next(), pos.next()) else {
                return Err(RuleError::SetNeedsThreeValues);
            };
            let t = |s: &str| {
                parse_u32(s, 0, MAX_PERSISTENCE_TIMEOUT).ok_or_else(|| RuleError::InvalidTimeout(s.to_string()))
            };
            timeouts = (t(a)?, t(b)?, t(c)?);
        }
        if let Some(extra) = pos.next() {
            return Err(RuleError::UnexpectedArgument(extra.to_string()));
        }

        self.generic_check(cmd)?;

        let key = self.svc.map(|(proto, addr, port)| ServiceKey { proto, addr, port });

        // process_options: checks on top of the table.
        let mut flags = None;
        if matches!(cmd, Cmd::Add | Cmd::Edit) {
            if let Some(k) = key {
                if k.port == 0 && self.persistent.is_none() {
                    return Err(RuleError::ZeroPort);
                }
            }
            let given = self.sched.filter(|s| !s.is_empty());
            let check_against = match cmd {
                Cmd::Add => Some(given.unwrap_or("wlc")),
                _ => given,
            };
            if let Some(arg) = self.sched_flags {
                flags = Some(parse_sched_flags(check_against, arg)?);
            }
        }
        if cmd == Cmd::List
            && ((self.has(O_CONNECTION) || self.has(O_TIMEOUT) || self.has(O_DAEMON))
                && (self.has(O_STATS) || self.has(O_RATE) || self.has(O_THRESHOLDS))
                || (self.has(O_TIMEOUT) || self.has(O_DAEMON)) && self.has(O_PERSISTENTCONN))
        {
            return Err(RuleError::ListConflict);
        }
        if let Some(name) = self.unsupported {
            return Err(RuleError::UnsupportedOption(name));
        }
        if let Some(t) = self.tun_type {
            // ipvsadm: tunnel options need the tunnelling forward method (-i).
            if self.mode != Some(FwdMode::Tun) {
                return Err(RuleError::TunnelConflict);
            }
            if t != "ipip" {
                return Err(RuleError::UnsupportedTunnel(t.to_string()));
            }
        }

        // Only reachable with a key where the table requires one.
        let need_key = || key.ok_or(RuleError::NoCommand);
        let out = match cmd {
            Cmd::Add | Cmd::Edit => {
                let given = self.sched.filter(|s| !s.is_empty());
                let scheduler = match (cmd, given) {
                    (_, Some(name)) => Some(resolve_scheduler(name)?),
                    (Cmd::Add, None) => Some(SchedKind::Wlc),
                    _ => None,
                };
                let opts = ServiceOpts { scheduler, persistent: self.persistent, netmask: self.netmask, flags };
                if cmd == Cmd::Add {
                    Command::AddService(need_key()?, opts)
                } else {
                    Command::EditService(need_key()?, opts)
                }
            }
            Cmd::Del => Command::DeleteService(need_key()?),
            Cmd::Flush => Command::Clear,
            Cmd::Restore => Command::Restore,
            Cmd::Save => Command::Save { numeric: self.has(O_NUMERIC) },
            Cmd::StartDaemon => Command::StartDaemon(crate::model::DaemonSpec {
                syncid: self.syncid.unwrap_or(0),
                maxlen: self.sync_maxlen,
                group: self.mcast_group,
                port: self.mcast_port,
                ttl: self.mcast_ttl,
                // ipvsadm's DEF_MCAST_IFN.
                ..crate::model::DaemonSpec::new(self.role.ok_or(RuleError::NoCommand)?, self.mcast_if.unwrap_or("eth0"))
            }),
            Cmd::StopDaemon => Command::StopDaemon(self.role.ok_or(RuleError::NoCommand)?),
            Cmd::Zero => Command::Zero(key),
            Cmd::Set => Command::SetTimeouts { tcp: timeouts.0, tcpfin: timeouts.1, udp: timeouts.2 },
            Cmd::List => Command::List(ListOpts {
                numeric: self.has(O_NUMERIC),
                stats: self.has(O_STATS),
                rate: self.has(O_RATE),
                exact: self.has(O_EXACT),
                thresholds: self.has(O_THRESHOLDS),
                persistent_conn: self.has(O_PERSISTENTCONN),
                connections: self.has(O_CONNECTION),
                timeout: self.has(O_TIMEOUT),
                daemon: self.has(O_DAEMON),
                nosort: self.has(O_NOSORT),
                service: key,
            }),
            Cmd::AddDest | Cmd::EditDest | Cmd::DelDest => {
                let key = need_key()?;
                let (addr, port) = self.dest.ok_or(RuleError::NoCommand)?;
                let mode = match cmd {
                    Cmd::AddDest => Some(self.mode.unwrap_or(FwdMode::Dr)),
                    _ => self.mode,
                };
                let port = match mode {
                    Some(FwdMode::Dr) | Some(FwdMode::Tun) => key.port,
                    _ => port.unwrap_or(key.port),
                };
                match cmd {
                    Cmd::DelDest => Command::DeleteServer(key, addr, port),
                    Cmd::AddDest => Command::AddServer(
                        key,
                        ServerOpts {
                            addr,
                            port: Some(port),
                            mode,
                            weight: Some(self.weight.unwrap_or(1)),
                            u_threshold: Some(self.u_threshold.unwrap_or(0)),
                            l_threshold: Some(self.l_threshold.unwrap_or(0)),
                        },
                    ),
                    _ => Command::EditServer(
                        key,
                        ServerOpts {
                            addr,
                            port: Some(port),
                            mode,
                            weight: self.weight,
                            u_threshold: self.u_threshold,
                            l_threshold: self.l_threshold,
                        },
                    ),
                }
            }
        };
        Ok(out)
    }
}

/// Parses one ipvsadm command line, `args` without argv\[0\].
///
/// No arguments at all is a plain list, as with ipvsadm. `-h` and `-v` as the first option
/// return [`Command::Help`] / [`Command::Version`] without looking at the rest (ipvsadm
/// exits there). Defaults are filled in for `-A` (scheduler wlc) and `-a` (direct routing,
/// weight 1, thresholds 0, the dest port forced to the service port for `-g`/`-i`).
pub fn parse_command(args: &[&str]) -> Result<Command, RuleError> {
    if args.is_empty() {
        return Ok(Command::List(ListOpts::default()));
    }
    let mut p = Parser::default();
    let mut positional: Vec<&str> = Vec::new();
    let mut only_positional = false;
    let mut i = 0;
    while i < args.len() {
        let tok = args[i];
        i += 1;
        if only_positional || tok == "-" || !tok.starts_with('-') {
            positional.push(tok);
            continue;
        }
        if tok == "--" {
            only_positional = true;
            continue;
        }
        if let Some(body) = tok.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(spec) = find_long(name) else {
                return Err(RuleError::UnknownOption(tok.to_string()));
            };
            let shown = format!("--{name}");
            let arg = match spec.arg {
                ArgKind::None => {
                    if inline.is_some() {
                        return Err(RuleError::UnwantedArgument(shown));
                    }
                    None
                }
                ArgKind::Required => match inline {
                    Some(v) => Some(v),
                    None if i < args.len() => {
                        i += 1;
                        Some(args[i - 1])
                    }
                    None => return Err(RuleError::MissingArgument(shown)),
                },
                ArgKind::Optional => match inline {
                    Some(v) => Some(v),
                    None if i < args.len() && !args[i].starts_with('-') => {
                        i += 1;
                        Some(args[i - 1])
                    }
                    None => None,
                },
            };
            if let Flow::Done(c) = p.handle(spec, &shown, arg)? {
                return Ok(c);
            }
            continue;
        }
        // A cluster of short options: "-Lnc", "-w3", "-p300".
        let body = &tok[1..];
        for (k, c) in body.char_indices() {
            let Some(spec) = find_short(c) else {
                return Err(RuleError::UnknownOption(tok.to_string()));
            };
            let shown = format!("-{c}");
            let rest = &body[k + c.len_utf8()..];
            if spec.arg == ArgKind::None {
                if let Flow::Done(cmd) = p.handle(spec, &shown, None)? {
                    return Ok(cmd);
                }
                continue;
            }
            let arg = if !rest.is_empty() {
                Some(rest)
            } else if i < args.len() && (spec.arg == ArgKind::Required || !args[i].starts_with('-')) {
                i += 1;
                Some(args[i - 1])
            } else if spec.arg == ArgKind::Required {
                return Err(RuleError::MissingArgument(shown));
            } else {
                None
            };
            if let Flow::Done(cmd) = p.handle(spec, &shown, arg)? {
                return Ok(cmd);
            }
            break;
        }
    }
    p.finish(&positional)
}

/// Parses `ipvsadm -R` input: one command per line, returned with its 1-based line number.
///
/// As in ipvsadm, tokens are separated by space, tab or CR (so CRLF files work), any token
/// equal to `ipvsadm` is dropped (lines may start with `ipvsadm`) and blank lines are
/// skipped. Unlike ipvsadm, a token starting with `#` starts a comment running to the end of
/// the line, so `#` comment lines are skipped (ipvsadm fails on them). `-R` inside the input
/// is refused. Errors are wrapped in [`RuleError::Line`].
pub fn parse_rules(text: &str) -> Result<Vec<(usize, Command)>, RuleError> {
    let mut out = Vec::new();
    for (idx, line) in text.split('\n').enumerate() {
        let lineno = idx + 1;
        let mut tokens: Vec<&str> = Vec::new();
        for t in line.split([' ', '\t', '\r']) {
            if t.is_empty() || t == "ipvsadm" {
                continue;
            }
            if t.starts_with('#') {
                break;
            }
            tokens.push(t);
        }
        if tokens.is_empty() {
            continue;
        }
        let wrap = |e: RuleError| RuleError::Line { line: lineno, source: Box::new(e) };
        let cmd = parse_command(&tokens).map_err(wrap)?;
        if cmd == Command::Restore {
            return Err(wrap(RuleError::NestedRestore));
        }
        out.push((lineno, cmd));
    }
    Ok(out)
}
