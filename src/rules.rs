//! The ipvsadm command line: parsing, applying to a service table, and `ipvsadm -S -n` output.
//!
//! This is the grammar of ipvsadm 1.31 (see `shared/ipvsadm-format.md` §1), hand-written over
//! `&[&str]` tokens because ipvsadm's popt grammar does not fit a derive-style parser:
//!
//! * The first *option* must be a command (`-A -E -D -C -R -S -a -e -d -L/-l -Z --set -h -v`);
//!   a second command gives `multiple commands specified`. Non-option words may appear anywhere
//!   (popt permutes them); only `--set` takes them (its three timeouts), anything else is
//!   `unexpected argument WORD`. `--` ends the options.
//! * Short options cluster (`-Ln`, `-Lnc`); a short option that takes an argument takes the rest
//!   of its cluster (`-w3`, `-p300`) or else the next token, whatever it looks like (`-w -1` is
//!   an illegal weight). Long options take `--name=value` or `--name value`.
//! * `-p/--persistent` has an *optional* argument: as in popt, the next token is taken as the
//!   timeout unless it starts with `-` (so `-p foo` is `invalid timeout value `foo' specified`,
//!   exactly like ipvsadm); without one the timeout is [`DEFAULT_PERSISTENCE_TIMEOUT`] (360).
//! * Each option may be given once (`multiple '%s' options specified`); which options each
//!   command needs, allows or forbids is ipvsadm's `commands_v_options` table, checked in
//!   ipvsadm's option order so the same error comes first.
//! * Numbers are parsed like ipvsadm's `string_to_number` (C `strtol` base 10: leading
//!   white space and a sign are accepted, the whole string must be used).
//!
//! Differences from ipvsadm, all deliberate:
//!
//! * xvs serves IPv4 TCP and UDP only: IPv6 addresses, `-f/--fwmark-service`, `-6` and
//!   `--sctp-service` are refused with [`RuleError::UnsupportedService`]. Host names are not
//!   resolved (addresses must be dotted quads); ports may be numbers or a few well-known
//!   service names (`http`, `https`, `domain`, `ssh`, ... see `PORT_NAMES`).
//! * The sync daemon (`--start-daemon`, `--stop-daemon`, `--daemon`, `--mcast-*`, `--syncid`,
//!   `--sync-maxlen`), one-packet scheduling (`-o/--ops`), persistence engines (`--pe`) and the
//!   tunnel options (`--tun-*`) are not implemented: they are parsed (so that ipvsadm's
//!   legality errors still come first) and then refused with [`RuleError::UnsupportedOption`].
//! * `-j/--fullnat` is an xvs extension: the FULLNAT forwarding method ([`FwdMode::FullNat`]),
//!   like `-m` but the source address is rewritten too. `ipvsadm -S` style output uses `-j`.
//! * Schedulers ipvsadm knows but xvs does not implement (`lblc`, `lblcr`, `fo`, `ovf`,
//!   `twos`) give "Scheduler or persistence engine not found: xvs does not implement ...".
//! * `-b flag-1` / `flag-2` are the kernel's generic names for the fallback / port bits, so
//!   they mean `*-fallback` / `*-port` with sh and mh; `flag-3` has no meaning and is ignored.
//!   Flags are only kept for sh and mh services (other schedulers ignore them in IPVS too).
//! * `-E` and `-e` change only the fields given on the command line (ipvsadm and the kernel
//!   replace every field, resetting the ones not given to their defaults: wlc, not persistent,
//!   weight 1, direct routing, ...). As a consequence `-E` cannot turn persistence off.
//! * The `-b` compatibility check for `-E` without `-s` is skipped (ipvsadm checks against
//!   wlc); for `-A` the flags are checked against `-s` or the default wlc, like ipvsadm.
//! * In `-R` input ([`parse_rules`]) a token starting with `#` starts a comment that runs to
//!   the end of the line. ipvsadm itself fails on such lines (its comment handling is dead
//!   code, which is why `ipvsadm-restore` greps out `^#` lines first).
//! * A restore stops at the first failing line (ipvsadm goes on after kernel errors).

use std::cmp::Ordering;
use std::fmt;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::service::{
    FwdMode, Persistence, Proto, RealServer, SchedFlags, SchedKind, VirtualService, DEFAULT_PERSISTENCE_TIMEOUT,
    MAX_PERSISTENCE_TIMEOUT,
};

// ------------------------------------------------------------------------------------------
// Public types
// ------------------------------------------------------------------------------------------

/// A virtual service as ipvsadm names it: `-t|-u addr:port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    pub proto: Proto,
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl ServiceKey {
    /// The key of an existing service.
    pub fn of(svc: &VirtualService) -> ServiceKey {
        ServiceKey { proto: svc.proto, addr: svc.vip, port: svc.port }
    }

    /// Whether `svc` is the service this key names.
    pub fn matches(&self, svc: &VirtualService) -> bool {
        svc.proto == self.proto && svc.vip == self.addr && svc.port == self.port
    }
}

/// ipvsadm's rule form: `-t 10.0.0.1:80` / `-u 10.0.0.1:53`.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = match self.proto {
            Proto::Tcp => "-t",
            Proto::Udp => "-u",
        };
        write!(f, "{} {}:{}", flag, self.addr, self.port)
    }
}

/// Options of `-A` / `-E`.
///
/// From `-A`, `scheduler` is always `Some` (`-s` or the default wlc). From `-E`, every field
/// is `Some` only when it was given on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceOpts {
    pub scheduler: Option<SchedKind>,
    /// `-p [timeout]`: the persistence timeout in seconds (360 when `-p` has no value).
    pub persistent: Option<u32>,
    /// `-M netmask` (a contiguous IPv4 mask); only used together with persistence.
    pub netmask: Option<Ipv4Addr>,
    /// `-b flags`.
    pub flags: Option<SchedFlags>,
}

/// Options of `-a` / `-e`.
///
/// From `-a` every field is `Some`, with ipvsadm's defaults filled in (direct routing,
/// weight 1, thresholds 0). From `-e` only the fields given are `Some`, except `port`.
/// `port` is the destination port the command names: the `-r` port, or the service port
/// when `-r` has none, and always the service port for `-g`/`-i` (ipvsadm forces it; for
/// `-a` without a forwarding option the default `-g` applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerOpts {
    pub addr: Ipv4Addr,
    pub port: Option<u16>,
    pub mode: Option<FwdMode>,
    pub weight: Option<u32>,
    pub u_threshold: Option<u32>,
    pub l_threshold: Option<u32>,
}

/// Options of `-L` / `-l` / `--list`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListOpts {
    /// `-n`
    pub numeric: bool,
    /// `--stats`
    pub stats: bool,
    /// `--rate`
    pub rate: bool,
    /// `--exact` / `-X`
    pub exact: bool,
    /// `--thresholds`
    pub thresholds: bool,
    /// `--persistent-conn`
    pub persistent_conn: bool,
    /// `-c` / `--connection`: list connections instead of services.
    pub connections: bool,
    /// `--timeout`: list the timeouts instead of services.
    pub timeout: bool,
    /// `--nosort`: kernel (list) order instead of ipvsadm's sort.
    pub nosort: bool,
    /// `-t|-u addr:port`: list only this service (and no version line).
    pub service: Option<ServiceKey>,
}

/// One ipvsadm command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-A` / `--add-service`
    AddService(ServiceKey, ServiceOpts),
    /// `-E` / `--edit-service`
    EditService(ServiceKey, ServiceOpts),
    /// `-D` / `--delete-service`
    DeleteService(ServiceKey),
    /// `-C` / `--clear`
    Clear,
    /// `-R` / `--restore`: read commands from stdin (see [`parse_rules`]).
    Restore,
    /// `-S` / `--save` (`-n`: numeric; xvs never resolves names, so both print numbers).
    Save { numeric: bool },
    /// `-a` / `--add-server`
    AddServer(ServiceKey, ServerOpts),
    /// `-e` / `--edit-server`
    EditServer(ServiceKey, ServerOpts),
    /// `-d` / `--delete-server`: service, real server address and port.
    DeleteServer(ServiceKey, Ipv4Addr, u16),
    /// `-L` / `-l` / `--list` (also what ipvsadm does with no arguments at all).
    List(ListOpts),
    /// `-Z` / `--zero`: zero the counters of one service or of all.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp` (0 = leave unchanged).
    SetTimeouts { tcp: u32, tcpfin: u32, udp: u32 },
    /// `-h` / `--help`
    Help,
    /// `-v` / `--version`
    Version,
}

/// An ipvsadm error. `Display` is ipvsadm's own message where ipvsadm has one.
///
/// [`RuleError::exit_code`] is ipvsadm's exit status: 255 for usage errors (ipvsadm prints
/// the message, if any, then ``Try `ipvsadm -h' or 'ipvsadm --help' for more information.``,
/// see [`TRY_HELP`]), 2 for errors reported with `fail()`, 1 for kernel errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// No command, or the first option is not a command.
    #[error("Try `ipvsadm -h' or 'ipvsadm --help' for more information.")]
    NoCommand,
    /// popt: an option ipvsadm does not know.
    #[error("{0}: unknown option")]
    UnknownOption(String),
    /// popt: an option that needs an argument is last.
    #[error("{0}: missing argument")]
    MissingArgument(String),
    /// popt: `--flag=value` for an option without argument.
    #[error("{0}: option does not take an argument")]
    UnwantedArgument(String),
    /// `-R` inside `-R` input (ipvsadm: try-help exit).
    #[error("the restore command (-R) cannot be used in restore input")]
    NestedRestore,

    #[error("multiple commands specified")]
    MultipleCommands,
    #[error("multiple '{0}' options specified")]
    MultipleOptions(&'static str),
    #[error("You need to supply the '{option}' option for the '{command}' command")]
    MissingOption { option: &'static str, command: &'static str },
    #[error("Illegal '{option}' option with the '{command}' command")]
    IllegalOption { option: &'static str, command: &'static str },
    #[error("The option '{option}' conflicts with the '{other}' option in the '{command}' command")]
    ConflictingOptions { option: &'static str, other: &'static str, command: &'static str },
    #[error("options conflicts in the list command")]
    ListConflict,
    #[error("illegal virtual server address[:port] specified")]
    IllegalServiceAddress,
    #[error("illegal real server address[:port] specified")]
    IllegalServerAddress,
    /// `-M` is not a dotted IPv4 address or not a contiguous mask.
    #[error("illegal virtual server persistent mask specified")]
    IllegalNetmask,
    #[error("invalid timeout value `{0}' specified")]
    InvalidTimeout(String),
    #[error("illegal weight specified")]
    IllegalWeight,
    #[error("illegal u_threshold specified")]
    IllegalUThreshold,
    #[error("illegal l_threshold specified")]
    IllegalLThreshold,
    #[error("Zero port specified for non-persistent service")]
    ZeroPort,
    #[error("incompatible scheduler flag `{0}'")]
    IncompatibleSchedFlag(String),
    #[error("invalid scheduler flag `{0}'")]
    InvalidSchedFlag(String),
    #[error("--set option requires 3 timeout values")]
    SetNeedsThreeValues,
    #[error("unexpected argument {0}")]
    UnexpectedArgument(String),
    /// IPv6, fwmark and SCTP services.
    #[error("xvs supports IPv4 TCP and UDP services only: '{0}'")]
    UnsupportedService(String),
    /// An IPv6 real server.
    #[error("xvs supports IPv4 real servers only: '{0}'")]
    UnsupportedServer(String),
    /// Sync daemon, one-packet scheduling, persistence engines, tunnel options.
    #[error("xvs does not support the '{0}' option")]
    UnsupportedOption(String),

    #[error("Service already exists")]
    ServiceExists,
    #[error("Scheduler or persistence engine not found")]
    SchedulerNotFound,
    /// A scheduler ipvsadm knows (lblc, lblcr, fo, ovf, twos) that xvs does not implement.
    #[error("Scheduler or persistence engine not found: xvs does not implement the '{0}' scheduler")]
    SchedulerNotImplemented(String),
    #[error("No such service")]
    NoSuchService,
    #[error("Service not defined")]
    ServiceNotDefined,
    #[error("Destination already exists")]
    DestinationExists,
    #[error("No such destination")]
    NoSuchDestination,
    /// The kernel refuses `l_threshold > u_threshold` with ERANGE (even when u is 0).
    #[error("Numerical result out of range: l_threshold {l} is above u_threshold {u}")]
    ThresholdRange { l: u32, u: u32 },

    /// An error on one line of restore input.
    #[error("line {line}: {source}")]
    Line { line: usize, source: Box<RuleError> },
}

/// What ipvsadm prints after a usage error (exit code 255).
pub const TRY_HELP: &str = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.";

impl RuleError {
    /// ipvsadm's exit status for this error: 255 (usage, `tryhelp_exit`/`exit(-1)`),
    /// 2 (`fail()`), 1 (kernel errors such as "Service already exists").
    pub fn exit_code(&self) -> i32 {
        use RuleError::*;
        match self {
            NoCommand | UnknownOption(_) | MissingArgument(_) | UnwantedArgument(_) | NestedRestore => 255,
            ServiceExists
            | SchedulerNotFound
            | SchedulerNotImplemented(_)
            | NoSuchService
            | ServiceNotDefined
            | DestinationExists
            | NoSuchDestination
            | ThresholdRange { .. } => 1,
            Line { source, .. } => source.exit_code(),
            _ => 2,
        }
    }

    /// Whether ipvsadm would follow this message with [`TRY_HELP`] (exit code 255).
    pub fn is_usage_error(&self) -> bool {
        self.exit_code() == 255
    }
}

// ------------------------------------------------------------------------------------------
// Option tables (ipvsadm 1.31 order)
// ------------------------------------------------------------------------------------------

const O_NUMERIC: usize = 0;
const O_CONNECTION: usize = 1;
const O_SERVICE: usize = 2;
const O_SCHEDULER: usize = 3;
const O_PERSISTENT: usize = 4;
const O_NETMASK: usize = 5;
const O_SERVER: usize = 6;
const O_FORWARD: usize = 7;
const O_WEIGHT: usize = 8;
const O_UTHRESHOLD: usize = 9;
const O_LTHRESHOLD: usize = 10;
const O_MCAST_IF: usize = 11;
const O_TIMEOUT: usize = 12;
const O_DAEMON: usize = 13;
const O_STATS: usize = 14;
const O_RATE: usize = 15;
const O_THRESHOLDS: usize = 16;
const O_PERSISTENTCONN: usize = 17;
const O_NOSORT: usize = 18;
const O_SYNCID: usize = 19;
const O_EXACT: usize = 20;
const O_OPS: usize = 21;
const O_PE: usize = 22;
const O_SCHED_FLAGS: usize = 23;
const O_MCAST_GROUP: usize = 24;
const O_MCAST_PORT: usize = 25;
const O_MCAST_TTL: usize = 26;
const O_SYNC_MAXLEN: usize = 27;
const O_TUN_INFO: usize = 28;
const O_TUN_TYPE: usize = 29;
const O_TUN_PORT: usize = 30;
const O_TUN_NOCSUM: usize = 31;
const O_TUN_CSUM: usize = 32;
const O_TUN_REMCSUM: usize = 33;
const NUM_OPTS: usize = 34;

const OPT_NAMES: [&str; NUM_OPTS] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// ipvsadm's commands (the daemon commands are refused before they get here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Set,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    /// ipvsadm's `cmdnames`.
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Set => "set",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Legal {
    /// `+`
    Required,
    /// `x`
    Illegal,
    /// ` `
    Optional,
    /// `1`
    Exclusive,
}

/// ipvsadm's `commands_v_options` table.
fn legality(cmd: Cmd, opt: usize) -> Legal {
    use Legal::*;
    match cmd {
        Cmd::Add | Cmd::Edit => match opt {
            O_SERVICE => Required,
            O_SCHEDULER | O_PERSISTENT | O_NETMASK | O_OPS | O_PE | O_SCHED_FLAGS => Optional,
            _ => Illegal,
        },
        Cmd::Del => match opt {
            O_SERVICE => Required,
            _ => Illegal,
        },
        Cmd::Flush | Cmd::Set | Cmd::Restore => Illegal,
        Cmd::List => match opt {
            O_CONNECTION | O_SERVICE | O_TIMEOUT | O_DAEMON => Exclusive,
            O_NUMERIC | O_STATS | O_RATE | O_THRESHOLDS | O_PERSISTENTCONN | O_NOSORT | O_EXACT | O_TUN_INFO => {
                Optional
            }
            _ => Illegal,
        },
        Cmd::AddDest | Cmd::EditDest => match opt {
            O_SERVICE | O_SERVER => Required,
            O_FORWARD | O_WEIGHT | O_UTHRESHOLD | O_LTHRESHOLD | O_TUN_TYPE | O_TUN_PORT | O_TUN_NOCSUM
            | O_TUN_CSUM | O_TUN_REMCSUM => Optional,
            _ => Illegal,
        },
        Cmd::DelDest => match opt {
            O_SERVICE | O_SERVER => Required,
            _ => Illegal,
        },
        Cmd::Save => match opt {
            O_NUMERIC => Optional,
            _ => Illegal,
        },
        Cmd::Zero => match opt {
            O_SERVICE => Optional,
            _ => Illegal,
        },
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ArgKind {
    None,
    Required,
    Optional,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Id {
    Command(Cmd),
    Help,
    Version,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Ipv6,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masq,
    Ipip,
    Gatewaying,
    FullNat,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    Timeout,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    SchedFlags,
    /// Parsed for legality, then refused: (option bit).
    Unsupported(usize),
}

struct Spec {
    long: &'static str,
    short: Option<char>,
    arg: ArgKind,
    id: Id,
}

const fn spec(long: &'static str, short: Option<char>, arg: ArgKind, id: Id) -> Spec {
    Spec { long, short, arg, id }
}

const SPECS: &[Spec] = &[
    spec("add-service", Some('A'), ArgKind::None, Id::Command(Cmd::Add)),
    spec("edit-service", Some('E'), ArgKind::None, Id::Command(Cmd::Edit)),
    spec("delete-service", Some('D'), ArgKind::None, Id::Command(Cmd::Del)),
    spec("clear", Some('C'), ArgKind::None, Id::Command(Cmd::Flush)),
    spec("list", Some('L'), ArgKind::None, Id::Command(Cmd::List)),
    spec("list", Some('l'), ArgKind::None, Id::Command(Cmd::List)),
    spec("zero", Some('Z'), ArgKind::None, Id::Command(Cmd::Zero)),
    spec("add-server", Some('a'), ArgKind::None, Id::Command(Cmd::AddDest)),
    spec("edit-server", Some('e'), ArgKind::None, Id::Command(Cmd::EditDest)),
    spec("delete-server", Some('d'), ArgKind::None, Id::Command(Cmd::DelDest)),
    spec("set", None, ArgKind::None, Id::Command(Cmd::Set)),
    spec("restore", Some('R'), ArgKind::None, Id::Command(Cmd::Restore)),
    spec("save", Some('S'), ArgKind::None, Id::Command(Cmd::Save)),
    spec("help", Some('h'), ArgKind::None, Id::Help),
    spec("version", Some('v'), ArgKind::None, Id::Version),
    spec("start-daemon", None, ArgKind::Required, Id::StartDaemon),
    spec("stop-daemon", None, ArgKind::Required, Id::StopDaemon),
    spec("tcp-service", Some('t'), ArgKind::Required, Id::Tcp),
    spec("udp-service", Some('u'), ArgKind::Required, Id::Udp),
    spec("sctp-service", None, ArgKind::Required, Id::Sctp),
    spec("fwmark-service", Some('f'), ArgKind::Required, Id::Fwmark),
    spec("ipv6", Some('6'), ArgKind::None, Id::Ipv6),
    spec("scheduler", Some('s'), ArgKind::Required, Id::Scheduler),
    spec("persistent", Some('p'), ArgKind::Optional, Id::Persistent),
    spec("netmask", Some('M'), ArgKind::Required, Id::Netmask),
    spec("real-server", Some('r'), ArgKind::Required, Id::RealServer),
    spec("masquerading", Some('m'), ArgKind::None, Id::Masq),
    spec("ipip", Some('i'), ArgKind::None, Id::Ipip),
    spec("gatewaying", Some('g'), ArgKind::None, Id::Gatewaying),
    spec("fullnat", Some('j'), ArgKind::None, Id::FullNat),
    spec("weight", Some('w'), ArgKind::Required, Id::Weight),
    spec("u-threshold", Some('x'), ArgKind::Required, Id::UThreshold),
    spec("l-threshold", Some('y'), ArgKind::Required, Id::LThreshold),
    spec("numeric", Some('n'), ArgKind::None, Id::Numeric),
    spec("connection", Some('c'), ArgKind::None, Id::Connection),
    spec("timeout", None, ArgKind::None, Id::Timeout),
    spec("stats", None, ArgKind::None, Id::Stats),
    spec("rate", None, ArgKind::None, Id::Rate),
    spec("thresholds", None, ArgKind::None, Id::Thresholds),
    spec("persistent-conn", None, ArgKind::None, Id::PersistentConn),
    spec("nosort", None, ArgKind::None, Id::NoSort),
    spec("sort", None, ArgKind::None, Id::Sort),
    spec("exact", Some('X'), ArgKind::None, Id::Exact),
    spec("sched-flags", Some('b'), ArgKind::Required, Id::SchedFlags),
    spec("ops", Some('o'), ArgKind::None, Id::Unsupported(O_OPS)),
    spec("pe", None, ArgKind::Required, Id::Unsupported(O_PE)),
    spec("daemon", None, ArgKind::None, Id::Unsupported(O_DAEMON)),
    spec("mcast-interface", None, ArgKind::Required, Id::Unsupported(O_MCAST_IF)),
    spec("syncid", None, ArgKind::Required, Id::Unsupported(O_SYNCID)),
    spec("mcast-group", None, ArgKind::Required, Id::Unsupported(O_MCAST_GROUP)),
    spec("mcast-port", None, ArgKind::Required, Id::Unsupported(O_MCAST_PORT)),
    spec("mcast-ttl", None, ArgKind::Required, Id::Unsupported(O_MCAST_TTL)),
    spec("sync-maxlen", None, ArgKind::Required, Id::Unsupported(O_SYNC_MAXLEN)),
    spec("tun-info", None, ArgKind::None, Id::Unsupported(O_TUN_INFO)),
    spec("tun-type", None, ArgKind::Required, Id::Unsupported(O_TUN_TYPE)),
    spec("tun-port", None, ArgKind::Required, Id::Unsupported(O_TUN_PORT)),
    spec("tun-nocsum", None, ArgKind::None, Id::Unsupported(O_TUN_NOCSUM)),
    spec("tun-csum", None, ArgKind::None, Id::Unsupported(O_TUN_CSUM)),
    spec("tun-remcsum", None, ArgKind::None, Id::Unsupported(O_TUN_REMCSUM)),
];

fn find_long(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.long == name)
}

fn find_short(c: char) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.short == Some(c))
}

/// Port names accepted after `:` (ipvsadm asks getservbyname; xvs knows these).
const PORT_NAMES: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("tftp", 69),
    ("http", 80),
    ("www", 80),
    ("pop3", 110),
    ("ntp", 123),
    ("imap", 143),
    ("imap2", 143),
    ("snmp", 161),
    ("ldap", 389),
    ("https", 443),
    ("submissions", 465),
    ("syslog", 514),
    ("submission", 587),
    ("ldaps", 636),
    ("imaps", 993),
    ("pop3s", 995),
    ("mysql", 3306),
    ("postgresql", 5432),
    ("http-alt", 8080),
];

// ------------------------------------------------------------------------------------------
// Small parsers
// ------------------------------------------------------------------------------------------

/// ipvsadm's `string_to_number`: `strtol(s, &end, 10)` must consume all of a non-empty `s`
/// and land in `min..=max`.
fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
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

fn parse_u32(s: &str, min: u32, max: u32) -> Option<u32> {
    string_to_number(s, i64::from(min), i64::from(max)).and_then(|v| u32::try_from(v).ok())
}

fn parse_port(s: &str) -> Option<u16> {
    if let Some(v) = string_to_number(s, 0, 65535) {
        return u16::try_from(v).ok();
    }
    PORT_NAMES.iter().find(|(n, _)| *n == s).map(|&(_, p)| p)
}

enum HostPortError {
    /// An IPv6 address (xvs does not support them).
    Ipv6,
    Illegal,
}

/// `host[:port]` with a dotted-quad IPv4 host.
fn parse_hostport(s: &str) -> Result<(Ipv4Addr, Option<u16>), HostPortError> {
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
fn parse_netmask(s: &str) -> Option<Ipv4Addr> {
    let m: Ipv4Addr = s.parse().ok()?;
    let bits = u32::from(m);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(m)
}

/// ipvsadm's `parse_sched_flags`, checked against `sched` when it is known.
fn parse_sched_flags(sched: Option<&str>, arg: &str) -> Result<SchedFlags, RuleError> {
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
fn resolve_scheduler(name: &str) -> Result<SchedKind, RuleError> {
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
struct Parser<'a> {
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
}

enum Flow {
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
                Id::StartDaemon | Id::StopDaemon => Err(RuleError::UnsupportedOption(name.to_string())),
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
            Id::SchedFlags => {
                self.set_option(O_SCHED_FLAGS)?;
                self.sched_flags = Some(a);
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

// ------------------------------------------------------------------------------------------
// Applying commands to a service table
// ------------------------------------------------------------------------------------------

fn find_service<'s>(services: &'s mut [VirtualService], key: &ServiceKey) -> Option<&'s mut VirtualService> {
    services.iter_mut().find(|s| key.matches(s))
}

/// sh and mh use the flags; IPVS ignores them for every other scheduler, and so does xvs.
fn effective_flags(sched: SchedKind, flags: SchedFlags) -> SchedFlags {
    match sched {
        SchedKind::Sh | SchedKind::Mh => flags,
        _ => SchedFlags::default(),
    }
}

fn check_timeout(t: u32) -> Result<u32, RuleError> {
    if (1..=MAX_PERSISTENCE_TIMEOUT).contains(&t) {
        Ok(t)
    } else {
        Err(RuleError::InvalidTimeout(t.to_string()))
    }
}

fn check_server_numbers(weight: u32, u: u32, l: u32) -> Result<(), RuleError> {
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
fn dest_port(key: &ServiceKey, mode: Option<FwdMode>, port: Option<u16>) -> u16 {
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
fn cmp_services(a: &VirtualService, b: &VirtualService) -> Ordering {
    a.proto
        .number()
        .cmp(&b.proto.number())
        .then_with(|| cmp_ipv4_ipvsadm(a.vip, b.vip))
        .then_with(|| a.port.cmp(&b.port))
}

/// `ipvs_cmp_dests`: address (wrapped), then port.
fn cmp_dests(a: &RealServer, b: &RealServer) -> Ordering {
    cmp_ipv4_ipvsadm(a.addr, b.addr).then_with(|| a.port.cmp(&b.port))
}

/// glibc's `qsort` merge sort (`msort_with_tmp`): split n/2 | n - n/2, merge taking the left
/// element unless it compares greater. Deterministic and panic-free for comparators that are
/// not total orders, like ipvsadm's.
fn glibc_msort<T: Copy>(v: &mut [T], tmp: &mut Vec<T>, cmp: &dyn Fn(&T, &T) -> Ordering) {
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
            let _ = writeln!(out, "-a {} -r {}:{} {} -w {}", name, d.addr, d.port, fwd, d.weight);
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn tcp(a: &str, port: u16) -> ServiceKey {
        ServiceKey { proto: Proto::Tcp, addr: ip(a), port }
    }

    fn udp(a: &str, port: u16) -> ServiceKey {
        ServiceKey { proto: Proto::Udp, addr: ip(a), port }
    }

    fn p(line: &str) -> Result<Command, RuleError> {
        let toks: Vec<&str> = line.split_whitespace().collect();
        parse_command(&toks)
    }

    fn err(line: &str) -> String {
        match p(line) {
            Ok(c) => panic!("{line:?} parsed as {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn code(line: &str) -> i32 {
        p(line).unwrap_err().exit_code()
    }

    fn svc_opts(line: &str) -> (ServiceKey, ServiceOpts) {
        match p(line).unwrap() {
            Command::AddService(k, o) | Command::EditService(k, o) => (k, o),
            c => panic!("{c:?}"),
        }
    }

    fn srv_opts(line: &str) -> (ServiceKey, ServerOpts) {
        match p(line).unwrap() {
            Command::AddServer(k, o) | Command::EditServer(k, o) => (k, o),
            c => panic!("{c:?}"),
        }
    }

    fn list(line: &str) -> ListOpts {
        match p(line).unwrap() {
            Command::List(o) => o,
            c => panic!("{c:?}"),
        }
    }

    // --- commands -------------------------------------------------------------------------

    #[test]
    fn add_service_basic() {
        assert_eq!(
            p("-A -t 10.0.0.1:80 -s rr").unwrap(),
            Command::AddService(
                tcp("10.0.0.1", 80),
                ServiceOpts { scheduler: Some(SchedKind::Rr), persistent: None, netmask: None, flags: None }
            )
        );
        assert_eq!(
            p("--add-service --udp-service 10.0.0.1:53 --scheduler sh").unwrap(),
            Command::AddService(
                udp("10.0.0.1", 53),
                ServiceOpts { scheduler: Some(SchedKind::Sh), ..Default::default() }
            )
        );
    }

    #[test]
    fn add_service_default_scheduler_is_wlc() {
        let (_, o) = svc_opts("-A -t 10.0.0.1:80");
        assert_eq!(o.scheduler, Some(SchedKind::Wlc));
        // `-s ""`: ipvsadm falls back to the default too.
        match parse_command(&["-A", "-t", "10.0.0.1:80", "-s", ""]).unwrap() {
            Command::AddService(_, o) => assert_eq!(o.scheduler, Some(SchedKind::Wlc)),
            c => panic!("{c:?}"),
        }
        assert_eq!(err("-A -t 10.0.0.1:80 -s"), "-s: missing argument");
    }

    #[test]
    fn all_schedulers_parse() {
        for k in SchedKind::ALL {
            let (_, o) = svc_opts(&format!("-A -t 10.0.0.1:80 -s {}", k.name()));
            assert_eq!(o.scheduler, Some(k));
        }
    }

    #[test]
    fn edit_service_only_given_fields() {
        assert_eq!(
            p("-E -t 10.0.0.1:80 -p 100").unwrap(),
            Command::EditService(
                tcp("10.0.0.1", 80),
                ServiceOpts { scheduler: None, persistent: Some(100), netmask: None, flags: None }
            )
        );
        let (_, o) = svc_opts("--edit-service -t 10.0.0.1:80 -s mh");
        assert_eq!(o.scheduler, Some(SchedKind::Mh));
    }

    #[test]
    fn delete_service() {
        assert_eq!(p("-D -t 10.0.0.1:80").unwrap(), Command::DeleteService(tcp("10.0.0.1", 80)));
        assert_eq!(p("--delete-service -u 10.0.0.1:53").unwrap(), Command::DeleteService(udp("10.0.0.1", 53)));
        assert_eq!(err("-D"), "You need to supply the 'service-address' option for the 'delete-service' command");
    }

    #[test]
    fn clear_restore_save() {
        assert_eq!(p("-C").unwrap(), Command::Clear);
        assert_eq!(p("--clear").unwrap(), Command::Clear);
        assert_eq!(p("-R").unwrap(), Command::Restore);
        assert_eq!(p("--restore").unwrap(), Command::Restore);
        assert_eq!(p("-S").unwrap(), Command::Save { numeric: false });
        assert_eq!(p("-S -n").unwrap(), Command::Save { numeric: true });
        assert_eq!(p("-Sn").unwrap(), Command::Save { numeric: true });
        assert_eq!(p("--save --numeric").unwrap(), Command::Save { numeric: true });
        assert_eq!(err("-C -n"), "Illegal 'numeric' option with the 'flush' command");
        assert_eq!(err("-R -n"), "Illegal 'numeric' option with the 'restore' command");
        assert_eq!(err("-S --stats"), "Illegal 'stats' option with the 'save' command");
        assert_eq!(err("-S --nosort"), "Illegal 'nosort' option with the 'save' command");
    }

    #[test]
    fn add_server_defaults() {
        assert_eq!(
            p("-a -t 10.0.0.1:80 -r 192.168.10.1").unwrap(),
            Command::AddServer(
                tcp("10.0.0.1", 80),
                ServerOpts {
                    addr: ip("192.168.10.1"),
                    port: Some(80),
                    mode: Some(FwdMode::Dr),
                    weight: Some(1),
                    u_threshold: Some(0),
                    l_threshold: Some(0),
                }
            )
        );
    }

    #[test]
    fn add_server_all_options() {
        let (k, o) = srv_opts(
            "--add-server --tcp-service 10.0.0.1:80 --real-server 192.168.10.1:8080 \
             --masquerading --weight 5 --u-threshold 100 --l-threshold 50",
        );
        assert_eq!(k, tcp("10.0.0.1", 80));
        assert_eq!(
            o,
            ServerOpts {
                addr: ip("192.168.10.1"),
                port: Some(8080),
                mode: Some(FwdMode::Nat),
                weight: Some(5),
                u_threshold: Some(100),
                l_threshold: Some(50),
            }
        );
        let (_, o) = srv_opts("-a -t 10.0.0.1:80 -r 192.168.10.1:8080 -w3 -x10 -y5 -m");
        assert_eq!(o.weight, Some(3));
        assert_eq!(o.u_threshold, Some(10));
        assert_eq!(o.l_threshold, Some(5));
    }

    #[test]
    fn forwarding_methods_and_port_forcing() {
        let cases = [
            ("-g", FwdMode::Dr, 80),
            ("--gatewaying", FwdMode::Dr, 80),
            ("-i", FwdMode::Tun, 80),
            ("--ipip", FwdMode::Tun, 80),
            ("-m", FwdMode::Nat, 8080),
            ("--masquerading", FwdMode::Nat, 8080),
            ("-j", FwdMode::FullNat, 8080),
            ("--fullnat", FwdMode::FullNat, 8080),
            ("", FwdMode::Dr, 80),
        ];
        for (flag, mode, port) in cases {
            let (_, o) = srv_opts(&format!("-a -t 10.0.0.1:80 -r 192.168.10.1:8080 {flag}"));
            assert_eq!(o.mode, Some(mode), "{flag}");
            assert_eq!(o.port, Some(port), "{flag}");
        }
        // No port on -r: the service port.
        let (_, o) = srv_opts("-a -t 10.0.0.1:80 -r 192.168.10.1 -m");
        assert_eq!(o.port, Some(80));
        // -r before -t still takes the service port.
        let (_, o) = srv_opts("-a -r 192.168.10.1 -t 10.0.0.1:80 -m");
        assert_eq!(o.port, Some(80));
    }

    #[test]
    fn edit_server_only_given_fields() {
        assert_eq!(
            p("-e -t 10.0.0.1:80 -r 192.168.10.1:8080 -w 7").unwrap(),
            Command::EditServer(
                tcp("10.0.0.1", 80),
                ServerOpts {
                    addr: ip("192.168.10.1"),
                    port: Some(8080),
                    mode: None,
                    weight: Some(7),
                    u_threshold: None,
                    l_threshold: None,
                }
            )
        );
        let (_, o) = srv_opts("--edit-server -t 10.0.0.1:80 -r 192.168.10.1:8080 -i");
        assert_eq!(o.port, Some(80));
        assert_eq!(o.mode, Some(FwdMode::Tun));
        assert_eq!(
            err("-e -t 10.0.0.1:80"),
            "You need to supply the 'real-server' option for the 'edit-server' command"
        );
    }

    #[test]
    fn delete_server() {
        assert_eq!(
            p("-d -t 10.0.0.1:80 -r 192.168.10.1").unwrap(),
            Command::DeleteServer(tcp("10.0.0.1", 80), ip("192.168.10.1"), 80)
        );
        assert_eq!(
            p("--delete-server -t 10.0.0.1:80 -r 192.168.10.1:8080").unwrap(),
            Command::DeleteServer(tcp("10.0.0.1", 80), ip("192.168.10.1"), 8080)
        );
        assert_eq!(
            err("-d -t 10.0.0.1:80 -r 192.168.10.1 -w 1"),
            "Illegal 'weight' option with the 'delete-server' command"
        );
        assert_eq!(
            err("-d -t 10.0.0.1:80 -r 192.168.10.1 -m"),
            "Illegal 'forwarding-method' option with the 'delete-server' command"
        );
        assert_eq!(
            err("-d -t 10.0.0.1:80"),
            "You need to supply the 'real-server' option for the 'delete-server' command"
        );
    }

    #[test]
    fn list_variants() {
        assert_eq!(p("").unwrap(), Command::List(ListOpts::default()));
        assert_eq!(list("-L"), ListOpts::default());
        assert_eq!(list("-l"), ListOpts::default());
        assert_eq!(list("--list"), ListOpts::default());
        let n = ListOpts { numeric: true, ..Default::default() };
        assert_eq!(list("-L -n"), n);
        assert_eq!(list("-Ln"), n);
        assert_eq!(list("-ln"), n);
        assert_eq!(list("--list --numeric"), n);
        assert_eq!(list("-Ln --sort"), n);
        let o = list("-Ln --stats --exact");
        assert!(o.numeric && o.stats && o.exact && !o.rate);
        let o = list("-L -X --rate");
        assert!(o.exact && o.rate);
        let o = list("-Lnc");
        assert!(o.numeric && o.connections);
        let o = list("-L --connection");
        assert!(o.connections);
        let o = list("-L --timeout");
        assert!(o.timeout);
        let o = list("-L --thresholds --persistent-conn --nosort");
        assert!(o.thresholds && o.persistent_conn && o.nosort);
        let o = list("-Ln -t 10.0.0.1:80");
        assert_eq!(o.service, Some(tcp("10.0.0.1", 80)));
        assert!(o.numeric);
    }

    #[test]
    fn list_conflicts() {
        assert_eq!(
            err("-L -c -t 10.0.0.1:80"),
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
        );
        assert_eq!(
            err("-L --timeout -c"),
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command"
        );
        assert_eq!(err("-L -c --stats"), "options conflicts in the list command");
        assert_eq!(err("-L --timeout --rate"), "options conflicts in the list command");
        assert_eq!(err("-L --timeout --persistent-conn"), "options conflicts in the list command");
        assert_eq!(code("-L -c --stats"), 2);
        assert_eq!(err("-L -s rr"), "Illegal 'scheduler' option with the 'list' command");
    }

    #[test]
    fn zero() {
        assert_eq!(p("-Z").unwrap(), Command::Zero(None));
        assert_eq!(p("--zero -t 10.0.0.1:80").unwrap(), Command::Zero(Some(tcp("10.0.0.1", 80))));
        assert_eq!(err("-Z -n"), "Illegal 'numeric' option with the 'zero' command");
    }

    #[test]
    fn set_timeouts() {
        assert_eq!(p("--set 900 120 300").unwrap(), Command::SetTimeouts { tcp: 900, tcpfin: 120, udp: 300 });
        assert_eq!(p("--set 0 0 0").unwrap(), Command::SetTimeouts { tcp: 0, tcpfin: 0, udp: 0 });
        assert_eq!(err("--set 1 2"), "--set option requires 3 timeout values");
        assert_eq!(err("--set"), "--set option requires 3 timeout values");
        assert_eq!(err("--set 1 2 3 4"), "unexpected argument 4");
        assert_eq!(err("--set a 2 3"), "invalid timeout value `a' specified");
        assert_eq!(err("--set 1 2 2678401"), "invalid timeout value `2678401' specified");
        assert_eq!(code("--set 1 2"), 2);
        assert_eq!(err("--set 1 2 3 -n"), "Illegal 'numeric' option with the 'set' command");
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p("-h").unwrap(), Command::Help);
        assert_eq!(p("--help").unwrap(), Command::Help);
        assert_eq!(p("-h whatever --bogus").unwrap(), Command::Help);
        assert_eq!(p("-v").unwrap(), Command::Version);
        assert_eq!(p("--version").unwrap(), Command::Version);
        assert_eq!(err("-L -h"), "multiple commands specified");
    }

    // --- options --------------------------------------------------------------------------

    #[test]
    fn persistent_timeout() {
        assert_eq!(svc_opts("-A -t 10.0.0.1:80 -p").1.persistent, Some(360));
        assert_eq!(
            svc_opts("-A -t 10.0.0.1:80 -p -s rr").1,
            ServiceOpts {
                scheduler: Some(SchedKind::Rr),
                persistent: Some(DEFAULT_PERSISTENCE_TIMEOUT),
                netmask: None,
                flags: None,
            }
        );
        assert_eq!(svc_opts("-A -t 10.0.0.1:80 -p 100").1.persistent, Some(100));
        assert_eq!(svc_opts("-A -t 10.0.0.1:80 -p300").1.persistent, Some(300));
        assert_eq!(svc_opts("-A -t 10.0.0.1:80 --persistent=200").1.persistent, Some(200));
        assert_eq!(svc_opts("-A -t 10.0.0.1:80 --persistent 200").1.persistent, Some(200));
        assert_eq!(svc_opts("-A -t 10.0.0.1:80 --persistent --scheduler sh").1.persistent, Some(360));
        assert_eq!(svc_opts("-A -t 10.0.0.1:80 -p 2678400").1.persistent, Some(MAX_PERSISTENCE_TIMEOUT));
        assert_eq!(svc_opts("-A -t 10.0.0.1:80 -p 1").1.persistent, Some(1));
        assert_eq!(err("-A -t 10.0.0.1:80 -p 0"), "invalid timeout value `0' specified");
        assert_eq!(err("-A -t 10.0.0.1:80 -p 2678401"), "invalid timeout value `2678401' specified");
        assert_eq!(err("-A -t 10.0.0.1:80 -p foo"), "invalid timeout value `foo' specified");
        assert_eq!(code("-A -t 10.0.0.1:80 -p foo"), 2);
    }

    #[test]
    fn netmask() {
        let (_, o) = svc_opts("-A -t 10.0.0.1:80 -p -M 255.255.255.0");
        assert_eq!(o.netmask, Some(ip("255.255.255.0")));
        let (_, o) = svc_opts("-A -t 10.0.0.1:80 -p --netmask 0.0.0.0");
        assert_eq!(o.netmask, Some(ip("0.0.0.0")));
        let (_, o) = svc_opts("-A -t 10.0.0.1:80 -p -M 255.255.255.255");
        assert_eq!(o.netmask, Some(Ipv4Addr::BROADCAST));
        for bad in ["255.0.255.0", "0.255.255.255", "255.255.255.1", "24", "foo", ""] {
            assert_eq!(
                p(&format!("-A -t 10.0.0.1:80 -p -M {bad}")).map_err(|e| e.to_string()).unwrap_err(),
                if bad.is_empty() {
                    "-M: missing argument".to_string()
                } else {
                    "illegal virtual server persistent mask specified".to_string()
                },
                "{bad}"
            );
        }
    }

    #[test]
    fn sched_flags() {
        let (_, o) = svc_opts("-A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port");
        assert_eq!(o.flags, Some(SchedFlags { fallback: true, port: true }));
        let (_, o) = svc_opts("-A -t 10.0.0.1:80 -s mh --sched-flags mh-port");
        assert_eq!(o.flags, Some(SchedFlags { fallback: false, port: true }));
        let (_, o) = svc_opts("-A -t 10.0.0.1:80 -s mh -b flag-1,flag-3");
        assert_eq!(o.flags, Some(SchedFlags { fallback: true, port: false }));
        let (_, o) = svc_opts("-A -t 10.0.0.1:80 -s rr -b flag-2");
        assert_eq!(o.flags, Some(SchedFlags { fallback: false, port: true }));
        assert_eq!(err("-A -t 10.0.0.1:80 -s rr -b sh-fallback"), "incompatible scheduler flag `sh-fallback'");
        assert_eq!(err("-A -t 10.0.0.1:80 -s sh -b mh-port"), "incompatible scheduler flag `mh-port'");
        assert_eq!(err("-A -t 10.0.0.1:80 -s mh -b sh-port"), "incompatible scheduler flag `sh-port'");
        // Without -s the default wlc is checked, like ipvsadm.
        assert_eq!(err("-A -t 10.0.0.1:80 -b sh-port"), "incompatible scheduler flag `sh-port'");
        assert_eq!(err("-A -t 10.0.0.1:80 -s sh -b sh-bogus"), "invalid scheduler flag `sh-bogus'");
        assert_eq!(err("-A -t 10.0.0.1:80 -s sh -b ,"), "invalid scheduler flag `,'");
        assert_eq!(code("-A -t 10.0.0.1:80 -s sh -b x"), 2);
        // -E without -s: checked against the existing service when applied.
        let (_, o) = svc_opts("-E -t 10.0.0.1:80 -b sh-port");
        assert_eq!(o.flags, Some(SchedFlags { fallback: false, port: true }));
        assert_eq!(err("-E -t 10.0.0.1:80 -s rr -b sh-port"), "incompatible scheduler flag `sh-port'");
    }

    #[test]
    fn scheduler_errors() {
        assert_eq!(err("-A -t 10.0.0.1:80 -s wr"), "Scheduler or persistence engine not found");
        assert_eq!(code("-A -t 10.0.0.1:80 -s wr"), 1);
        for s in ["lblc", "lblcr", "fo", "ovf"] {
            let e = p(&format!("-A -t 10.0.0.1:80 -s {s}")).unwrap_err();
            assert!(matches!(e, RuleError::SchedulerNotImplemented(_)));
            assert!(e.to_string().starts_with("Scheduler or persistence engine not found"));
            assert!(e.to_string().contains(s));
            assert_eq!(e.exit_code(), 1);
        }
    }

    #[test]
    fn weight_and_thresholds() {
        assert_eq!(srv_opts("-a -t 10.0.0.1:80 -r 1.2.3.4 -w 0").1.weight, Some(0));
        assert_eq!(srv_opts("-a -t 10.0.0.1:80 -r 1.2.3.4 -w 65535").1.weight, Some(65535));
        assert_eq!(srv_opts("-a -t 10.0.0.1:80 -r 1.2.3.4 --weight=+7").1.weight, Some(7));
        for bad in ["65536", "-1", "abc", "1x", "99999999999999999999999"] {
            assert_eq!(err(&format!("-a -t 10.0.0.1:80 -r 1.2.3.4 -w {bad}")), "illegal weight specified", "{bad}");
        }
        assert_eq!(code("-a -t 10.0.0.1:80 -r 1.2.3.4 -w -1"), 2);
        assert_eq!(srv_opts("-a -t 10.0.0.1:80 -r 1.2.3.4 -x 2147483647").1.u_threshold, Some(i32::MAX as u32));
        assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 -x 2147483648"), "illegal u_threshold specified");
        assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 -y -5"), "illegal l_threshold specified");
    }

    #[test]
    fn service_addresses() {
        let (k, _) = svc_opts("-A -t 10.0.0.1:http");
        assert_eq!(k.port, 80);
        let (k, _) = svc_opts("-A -t 10.0.0.1:https");
        assert_eq!(k.port, 443);
        let (k, _) = svc_opts("-A -u 10.0.0.1:domain");
        assert_eq!(k, udp("10.0.0.1", 53));
        let (k, _) = svc_opts("-A -t 10.0.0.1:65535");
        assert_eq!(k.port, 65535);
        let (k, _) = svc_opts("--add-service --tcp-service=10.0.0.1:22");
        assert_eq!(k.port, 22);
        for bad in [
            "10.0.0",
            "10.0.0.1:",
            "10.0.0.1:65536",
            "10.0.0.1:nosuchport",
            "80",
            "host.example:80",
            "256.0.0.1:80",
            "10.0.0.1:80:90",
        ] {
            assert_eq!(err(&format!("-A -t {bad}")), "illegal virtual server address[:port] specified", "{bad}");
        }
        assert_eq!(code("-A -t 10.0.0"), 2);
        for bad in ["10.0.0", "1.2.3.4:x", "1.2.3.4:-5"] {
            assert_eq!(
                err(&format!("-a -t 10.0.0.1:80 -r {bad}")),
                "illegal real server address[:port] specified",
                "{bad}"
            );
        }
    }

    #[test]
    fn unsupported_services() {
        for (line, what) in [
            ("-A -f 1 -s rr", "-f"),
            ("-A --fwmark-service 1", "--fwmark-service"),
            ("-A --sctp-service 10.0.0.1:80", "--sctp-service"),
            ("-A -t [2001:db8::1]:80", "[2001:db8::1]:80"),
            ("-A -t 2001:db8::1", "2001:db8::1"),
            ("-A -t 10.0.0.1:80 -6", "-6"),
        ] {
            assert_eq!(err(line), format!("xvs supports IPv4 TCP and UDP services only: '{what}'"), "{line}");
            assert_eq!(code(line), 2);
        }
        assert_eq!(err("-a -t 10.0.0.1:80 -r [::1]:80"), "xvs supports IPv4 real servers only: '[::1]:80'");
    }

    #[test]
    fn unsupported_options_after_legality() {
        let e = p("-A -t 10.0.0.1:80 --ops").unwrap_err();
        assert!(matches!(e, RuleError::UnsupportedOption(ref s) if s == "--ops"), "{e:?}");
        assert_eq!(e.to_string(), "xvs does not support the '--ops' option");
        let e = p("-A -u 10.0.0.1:53 -o").unwrap_err();
        assert!(matches!(e, RuleError::UnsupportedOption(_)), "{e:?}");
        assert!(e.to_string().contains("--ops"));
        assert!(matches!(p("-A -t 10.0.0.1:80 --pe sip").unwrap_err(), RuleError::UnsupportedOption(_)));
        assert!(matches!(
            p("-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-type gre").unwrap_err(),
            RuleError::UnsupportedOption(_)
        ));
        assert!(matches!(p("-L --daemon").unwrap_err(), RuleError::UnsupportedOption(_)));
        assert!(matches!(p("--start-daemon master").unwrap_err(), RuleError::UnsupportedOption(_)));
        assert!(matches!(p("--stop-daemon backup").unwrap_err(), RuleError::UnsupportedOption(_)));
        // ipvsadm's legality errors come first.
        assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 --ops"), "Illegal 'ops' option with the 'add-server' command");
        assert_eq!(err("-A -t 10.0.0.1:80 --tun-type gre"), "Illegal 'tun-type' option with the 'add-service' command");
        assert_eq!(err("-A -t 10.0.0.1:80 --ops --ops"), "multiple 'ops' options specified");
    }

    // --- legality and grammar errors ------------------------------------------------------

    #[test]
    fn required_and_illegal_options() {
        assert_eq!(
            err("-a -t 10.0.0.1:80"),
            "You need to supply the 'real-server' option for the 'add-server' command"
        );
        assert_eq!(err("-A -t 10.0.0.1:80 -w 3"), "Illegal 'weight' option with the 'add-service' command");
        assert_eq!(err("-A -s rr"), "You need to supply the 'service-address' option for the 'add-service' command");
        // Checked in ipvsadm's option order: scheduler (3) before real-server (6).
        assert_eq!(err("-a -t 10.0.0.1:80 -s rr"), "Illegal 'scheduler' option with the 'add-server' command");
        assert_eq!(err("-A -t 10.0.0.1:80 -r 1.2.3.4"), "Illegal 'real-server' option with the 'add-service' command");
        assert_eq!(err("-E -t 10.0.0.1:80 -m"), "Illegal 'forwarding-method' option with the 'edit-service' command");
        assert_eq!(err("-D -t 10.0.0.1:80 -s rr"), "Illegal 'scheduler' option with the 'delete-service' command");
        assert_eq!(code("-a -t 10.0.0.1:80"), 2);
    }

    #[test]
    fn zero_port_service() {
        assert_eq!(err("-A -t 10.0.0.1 -s rr"), "Zero port specified for non-persistent service");
        assert_eq!(err("-E -t 10.0.0.1:0"), "Zero port specified for non-persistent service");
        assert_eq!(code("-A -t 10.0.0.1"), 2);
        let (k, o) = svc_opts("-A -t 10.0.0.1 -s rr -p");
        assert_eq!(k.port, 0);
        assert_eq!(o.persistent, Some(360));
        // Fine for the commands that do not create a service.
        assert_eq!(p("-D -t 10.0.0.1").unwrap(), Command::DeleteService(tcp("10.0.0.1", 0)));
    }

    #[test]
    fn multiple_commands_and_options() {
        assert_eq!(err("-A -a -t 10.0.0.1:80"), "multiple commands specified");
        assert_eq!(err("-A -t 10.0.0.1:80 -E"), "multiple commands specified");
        assert_eq!(err("-AE"), "multiple commands specified");
        assert_eq!(err("-L --set"), "multiple commands specified");
        assert_eq!(code("-A -a"), 2);
        assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 -w 1 -w 2"), "multiple 'weight' options specified");
        assert_eq!(err("-A -t 10.0.0.1:80 -u 10.0.0.1:80"), "multiple 'service-address' options specified");
        assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 -g -m"), "multiple 'forwarding-method' options specified");
        assert_eq!(err("-A -t 10.0.0.1:80 -p -p 10"), "multiple 'persistent' options specified");
        assert_eq!(err("-Lnn"), "multiple 'numeric' options specified");
        assert_eq!(err("-A -t 10.0.0.1:80 -s rr --scheduler wrr"), "multiple 'scheduler' options specified");
        // --sort is a no-op and may repeat.
        assert!(p("-L --sort --sort").is_ok());
    }

    #[test]
    fn no_command_and_popt_errors() {
        assert_eq!(err("-t 10.0.0.1:80 -A"), TRY_HELP);
        assert_eq!(code("-t 10.0.0.1:80 -A"), 255);
        assert_eq!(err("foo"), TRY_HELP);
        assert_eq!(code("foo"), 255);
        assert_eq!(err("-nL"), TRY_HELP);
        assert_eq!(err("# a comment"), TRY_HELP);
        assert_eq!(err("-A --bogus"), "--bogus: unknown option");
        assert_eq!(code("-A --bogus"), 255);
        assert_eq!(err("-Lq"), "-Lq: unknown option");
        assert_eq!(err("-A -t"), "-t: missing argument");
        assert_eq!(code("-A -t"), 255);
        assert_eq!(err("-a -t 10.0.0.1:80 --weight"), "--weight: missing argument");
        assert_eq!(err("-L --numeric=1"), "--numeric: option does not take an argument");
        assert_eq!(code("-L --numeric=1"), 255);
        assert!(p("-A -t 10.0.0.1:80 -x").unwrap_err().is_usage_error());
    }

    #[test]
    fn positional_arguments() {
        assert_eq!(err("-A -t 10.0.0.1:80 extra"), "unexpected argument extra");
        assert_eq!(err("extra -C"), "unexpected argument extra");
        assert_eq!(err("-C -- -n"), "unexpected argument -n");
        assert_eq!(err("-C -"), "unexpected argument -");
        assert_eq!(p("--set -- 1 2 3").unwrap(), Command::SetTimeouts { tcp: 1, tcpfin: 2, udp: 3 });
        // popt permutes: the timeouts may come anywhere after the command.
        assert_eq!(p("--set 1 2 3").unwrap(), Command::SetTimeouts { tcp: 1, tcpfin: 2, udp: 3 });
    }

    #[test]
    fn exit_codes() {
        assert_eq!(RuleError::ServiceExists.exit_code(), 1);
        assert_eq!(RuleError::NoSuchService.exit_code(), 1);
        assert_eq!(RuleError::ServiceNotDefined.exit_code(), 1);
        assert_eq!(RuleError::DestinationExists.exit_code(), 1);
        assert_eq!(RuleError::NoSuchDestination.exit_code(), 1);
        assert_eq!(RuleError::SchedulerNotFound.exit_code(), 1);
        assert_eq!(RuleError::IllegalWeight.exit_code(), 2);
        assert_eq!(RuleError::MultipleCommands.exit_code(), 2);
        assert_eq!(RuleError::NoCommand.exit_code(), 255);
        assert_eq!(RuleError::NestedRestore.exit_code(), 255);
        let l = RuleError::Line { line: 3, source: Box::new(RuleError::ServiceExists) };
        assert_eq!(l.exit_code(), 1);
        assert_eq!(l.to_string(), "line 3: Service already exists");
    }

    #[test]
    fn kernel_error_messages() {
        let msgs = [
            (RuleError::ServiceExists, "Service already exists"),
            (RuleError::SchedulerNotFound, "Scheduler or persistence engine not found"),
            (RuleError::NoSuchService, "No such service"),
            (RuleError::ServiceNotDefined, "Service not defined"),
            (RuleError::DestinationExists, "Destination already exists"),
            (RuleError::NoSuchDestination, "No such destination"),
        ];
        for (e, m) in msgs {
            assert_eq!(e.to_string(), m);
        }
    }

    // --- apply ----------------------------------------------------------------------------

    fn run(lines: &[&str]) -> Result<Vec<VirtualService>, RuleError> {
        let mut v = Vec::new();
        for l in lines {
            apply(&mut v, &p(l)?)?;
        }
        Ok(v)
    }

    fn run_err(lines: &[&str]) -> String {
        run(lines).unwrap_err().to_string()
    }

    #[test]
    fn apply_add_service() {
        let v = run(&["-A -t 10.0.0.1:80"]).unwrap();
        assert_eq!(v.len(), 1);
        let s = &v[0];
        assert_eq!(s.proto, Proto::Tcp);
        assert_eq!(s.vip, ip("10.0.0.1"));
        assert_eq!(s.port, 80);
        assert_eq!(s.scheduler, SchedKind::Wlc);
        assert_eq!(s.persistence, None);
        assert_eq!(s.flags, SchedFlags::default());
        assert_eq!(s.mh_table_size, crate::service::MH_DEFAULT_TABLE_SIZE);
        assert!(s.servers.is_empty());

        let v = run(&["-A -u 10.0.0.1:53 -s sh -p -b sh-port"]).unwrap();
        assert_eq!(v[0].persistence, Some(Persistence { timeout_s: 360, netmask: Ipv4Addr::BROADCAST }));
        assert_eq!(v[0].flags, SchedFlags { fallback: false, port: true });

        let v = run(&["-A -t 10.0.0.1:80 -s rr -p 60 -M 255.255.0.0"]).unwrap();
        assert_eq!(v[0].persistence, Some(Persistence { timeout_s: 60, netmask: ip("255.255.0.0") }));
        // -M without -p: not persistent.
        let v = run(&["-A -t 10.0.0.1:80 -M 255.255.0.0"]).unwrap();
        assert_eq!(v[0].persistence, None);
        // flag-1 with rr is accepted and ignored.
        let v = run(&["-A -t 10.0.0.1:80 -s rr -b flag-1"]).unwrap();
        assert_eq!(v[0].flags, SchedFlags::default());

        assert_eq!(run_err(&["-A -t 10.0.0.1:80", "-A -t 10.0.0.1:80 -s rr"]), "Service already exists");
        // Same address and port, other protocol: a different service.
        assert_eq!(run(&["-A -t 10.0.0.1:80", "-A -u 10.0.0.1:80"]).unwrap().len(), 2);
    }

    #[test]
    fn apply_edit_service() {
        assert_eq!(run_err(&["-E -t 10.0.0.1:80 -s rr"]), "No such service");
        let v = run(&["-A -t 10.0.0.1:80 -s sh -p 100 -M 255.255.255.0 -b sh-fallback", "-E -t 10.0.0.1:80 -p 200"])
            .unwrap();
        assert_eq!(v[0].scheduler, SchedKind::Sh);
        assert_eq!(v[0].persistence, Some(Persistence { timeout_s: 200, netmask: ip("255.255.255.0") }));
        assert_eq!(v[0].flags, SchedFlags { fallback: true, port: false });

        let v = run(&[
            "-A -t 10.0.0.1:80 -s sh -p 100 -b sh-fallback",
            "-E -t 10.0.0.1:80 -M 255.255.0.0",
            "-E -t 10.0.0.1:80 -s mh",
        ])
        .unwrap();
        assert_eq!(v[0].scheduler, SchedKind::Mh);
        assert_eq!(v[0].persistence.unwrap().netmask, ip("255.255.0.0"));
        assert_eq!(v[0].flags, SchedFlags { fallback: true, port: false });

        let v = run(&["-A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port", "-E -t 10.0.0.1:80 -s rr"]).unwrap();
        assert_eq!(v[0].scheduler, SchedKind::Rr);
        assert_eq!(v[0].flags, SchedFlags::default(), "flags dropped for rr");

        let v = run(&["-A -t 10.0.0.1:80 -s sh", "-E -t 10.0.0.1:80 -b sh-port"]).unwrap();
        assert_eq!(v[0].flags, SchedFlags { fallback: false, port: true });

        let v = run(&["-A -t 10.0.0.1:80 -s rr", "-E -t 10.0.0.1:80 -p"]).unwrap();
        assert_eq!(v[0].scheduler, SchedKind::Rr);
        assert_eq!(v[0].persistence, Some(Persistence { timeout_s: 360, netmask: Ipv4Addr::BROADCAST }));
    }

    #[test]
    fn apply_delete_and_clear() {
        assert_eq!(run_err(&["-D -t 10.0.0.1:80"]), "No such service");
        let v = run(&["-A -t 10.0.0.1:80", "-A -t 10.0.0.2:80", "-a -t 10.0.0.1:80 -r 1.1.1.1", "-D -t 10.0.0.1:80"])
            .unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].vip, ip("10.0.0.2"));
        let v = run(&["-A -t 10.0.0.1:80", "-A -t 10.0.0.2:80", "-C"]).unwrap();
        assert!(v.is_empty());
    }

    #[test]
    fn apply_add_server() {
        assert_eq!(run_err(&["-a -t 10.0.0.1:80 -r 1.1.1.1"]), "Service not defined");
        let v = run(&[
            "-A -t 10.0.0.1:80 -s rr",
            "-a -t 10.0.0.1:80 -r 1.1.1.1",
            "-a -t 10.0.0.1:80 -r 1.1.1.2:8080 -m -w 3 -x 10 -y 5",
            "-a -t 10.0.0.1:80 -r 1.1.1.3:9999 -i",
        ])
        .unwrap();
        let s = &v[0].servers;
        // Head insertion: newest first.
        assert_eq!(s.iter().map(|d| d.addr).collect::<Vec<_>>(), vec![ip("1.1.1.3"), ip("1.1.1.2"), ip("1.1.1.1")]);
        assert_eq!(
            s[2],
            RealServer { addr: ip("1.1.1.1"), port: 80, weight: 1, mode: FwdMode::Dr, u_threshold: 0, l_threshold: 0 }
        );
        assert_eq!(
            s[1],
            RealServer {
                addr: ip("1.1.1.2"),
                port: 8080,
                weight: 3,
                mode: FwdMode::Nat,
                u_threshold: 10,
                l_threshold: 5
            }
        );
        assert_eq!(s[0].port, 80, "-i forces the service port");
        assert_eq!(s[0].mode, FwdMode::Tun);

        assert_eq!(
            run_err(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1", "-a -t 10.0.0.1:80 -r 1.1.1.1:8080 -w 5"]),
            "Destination already exists",
            "-g forces port 80, so this is the same destination"
        );
        // Same address, other port (NAT): a different destination.
        let v = run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1", "-a -t 10.0.0.1:80 -r 1.1.1.1:8080 -m"])
            .unwrap();
        assert_eq!(v[0].servers.len(), 2);
        // The kernel refuses l > u, even with u = 0.
        let e = run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1 -x 5 -y 6"]).unwrap_err();
        assert_eq!(e, RuleError::ThresholdRange { l: 6, u: 5 });
        assert_eq!(e.exit_code(), 1);
        assert!(run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1 -y 6"]).is_err());
        assert!(run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1 -x 6 -y 6"]).is_ok());
    }

    #[test]
    fn apply_edit_server() {
        assert_eq!(run_err(&["-e -t 10.0.0.1:80 -r 1.1.1.1"]), "Service not defined");
        assert_eq!(run_err(&["-A -t 10.0.0.1:80", "-e -t 10.0.0.1:80 -r 1.1.1.1"]), "No such destination");
        let v = run(&[
            "-A -t 10.0.0.1:80",
            "-a -t 10.0.0.1:80 -r 1.1.1.1:8080 -m -w 3 -x 10 -y 5",
            "-e -t 10.0.0.1:80 -r 1.1.1.1:8080 -w 9",
        ])
        .unwrap();
        assert_eq!(
            v[0].servers[0],
            RealServer {
                addr: ip("1.1.1.1"),
                port: 8080,
                weight: 9,
                mode: FwdMode::Nat,
                u_threshold: 10,
                l_threshold: 5
            }
        );
        let v = run(&[
            "-A -t 10.0.0.1:80",
            "-a -t 10.0.0.1:80 -r 1.1.1.1:8080 -m",
            "-e -t 10.0.0.1:80 -r 1.1.1.1:8080 -j -x 100",
        ])
        .unwrap();
        assert_eq!(v[0].servers[0].mode, FwdMode::FullNat);
        assert_eq!(v[0].servers[0].u_threshold, 100);
        assert_eq!(v[0].servers[0].weight, 1);
        // -g forces the service port: the NAT dest on 8080 is not found.
        assert_eq!(
            run_err(&[
                "-A -t 10.0.0.1:80",
                "-a -t 10.0.0.1:80 -r 1.1.1.1:8080 -m",
                "-e -t 10.0.0.1:80 -r 1.1.1.1:8080 -g",
            ]),
            "No such destination"
        );
        assert_eq!(
            run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1 -x 10", "-e -t 10.0.0.1:80 -r 1.1.1.1 -y 11",])
                .unwrap_err(),
            RuleError::ThresholdRange { l: 11, u: 10 }
        );
    }

    #[test]
    fn apply_delete_server() {
        assert_eq!(run_err(&["-d -t 10.0.0.1:80 -r 1.1.1.1"]), "Service not defined");
        assert_eq!(run_err(&["-A -t 10.0.0.1:80", "-d -t 10.0.0.1:80 -r 1.1.1.1"]), "No such destination");
        let v = run(&[
            "-A -t 10.0.0.1:80",
            "-a -t 10.0.0.1:80 -r 1.1.1.1",
            "-a -t 10.0.0.1:80 -r 1.1.1.2:8080 -m",
            "-d -t 10.0.0.1:80 -r 1.1.1.2:8080",
            "-d -t 10.0.0.1:80 -r 1.1.1.1",
        ])
        .unwrap();
        assert!(v[0].servers.is_empty());
    }

    #[test]
    fn apply_other_commands_are_noops() {
        let mut v = run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1"]).unwrap();
        let before = v.clone();
        for l in ["-L -n", "-S -n", "-Z", "-Z -t 10.0.0.9:80", "--set 1 2 3", "-h", "-v", "-R"] {
            apply(&mut v, &p(l).unwrap()).unwrap();
        }
        assert_eq!(v, before);
    }

    // --- restore format -------------------------------------------------------------------

    #[test]
    fn restore_format() {
        let text = "# saved by ipvsadm-save\n\
                    \n\
                    ipvsadm -A -t 10.0.0.1:80 -s rr\r\n\
                    \t  \r\n\
                    -a\t-t 10.0.0.1:80   -r 1.1.1.1:80 -g -w 2   # trailing comment\r\n\
                    ipvsadm ipvsadm -a -t 10.0.0.1:80 -r 1.1.1.2 ipvsadm\n\
                    #-A -t 10.0.0.9:80\n";
        let cmds = parse_rules(text).unwrap();
        assert_eq!(cmds.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![3, 5, 6]);
        assert!(matches!(cmds[0].1, Command::AddService(_, _)));
        let v = services_from_rules(text).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].scheduler, SchedKind::Rr);
        assert_eq!(v[0].servers.len(), 2);
        assert_eq!(v[0].servers[0].addr, ip("1.1.1.2"));
        assert_eq!(v[0].servers[1].weight, 2);
        assert!(parse_rules("").unwrap().is_empty());
        assert!(parse_rules("\n\n# only comments\r\n").unwrap().is_empty());
        assert!(services_from_rules("ipvsadm\n").unwrap().is_empty());
    }

    #[test]
    fn restore_errors_carry_line_numbers() {
        let e = parse_rules("-A -t 10.0.0.1:80\n\n-a -t 10.0.0.1:80 -r 1.1.1.1 -w 70000\n").unwrap_err();
        assert_eq!(e, RuleError::Line { line: 3, source: Box::new(RuleError::IllegalWeight) });
        assert_eq!(e.to_string(), "line 3: illegal weight specified");
        assert_eq!(e.exit_code(), 2);

        let e = parse_rules("-C\n-R\n").unwrap_err();
        assert_eq!(e, RuleError::Line { line: 2, source: Box::new(RuleError::NestedRestore) });
        assert_eq!(e.exit_code(), 255);
        assert!(parse_rules("ipvsadm --restore").is_err());

        let e = services_from_rules("-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: Service already exists");
        assert_eq!(e.exit_code(), 1);
        let e = services_from_rules("-a -t 10.0.0.1:80 -r 1.1.1.1\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1: Service not defined");
        let e = services_from_rules("bogus\n").unwrap_err();
        assert_eq!(e.exit_code(), 255);
    }

    // --- save format ----------------------------------------------------------------------

    const SAVE_EXAMPLE: &str = "\
-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 192.168.10.1:80 -g -w 1
-a -t 10.0.0.1:80 -r 192.168.10.2:80 -g -w 3
-A -u 10.0.0.1:53 -s sh -p 360 -M 255.255.255.0 -b sh-fallback,sh-port
-a -u 10.0.0.1:53 -r 192.168.10.3:53 -m -w 0
";

    #[test]
    fn save_matches_ipvsadm_example() {
        let mut tcp_svc = VirtualService::new(Proto::Tcp, ip("10.0.0.1"), 80, SchedKind::Wlc);
        let dest = |a: &str, port, weight, mode| RealServer {
            addr: ip(a),
            port,
            weight,
            mode,
            u_threshold: 0,
            l_threshold: 0,
        };
        // Kernel list order (newest first) is not the saved order.
        tcp_svc.servers = vec![dest("192.168.10.2", 80, 3, FwdMode::Dr), dest("192.168.10.1", 80, 1, FwdMode::Dr)];
        let mut udp_svc = VirtualService::new(Proto::Udp, ip("10.0.0.1"), 53, SchedKind::Sh);
        udp_svc.flags = SchedFlags { fallback: true, port: true };
        udp_svc.persistence = Some(Persistence { timeout_s: 360, netmask: ip("255.255.255.0") });
        udp_svc.servers = vec![dest("192.168.10.3", 53, 0, FwdMode::Nat)];
        // UDP first in the table: the sort puts TCP (6) first.
        let table = vec![udp_svc, tcp_svc];
        assert_eq!(save_rules(&table), SAVE_EXAMPLE);
        // And back.
        let back = services_from_rules(SAVE_EXAMPLE).unwrap();
        assert_eq!(save_rules(&back), SAVE_EXAMPLE);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].servers[0].addr, ip("192.168.10.2"), "head insertion");
        assert_eq!(save_rules(&[]), "");
    }

    #[test]
    fn save_other_forms() {
        let v = services_from_rules(
            "-A -t 10.0.0.1:0 -s mh -p 100 -b mh-port\n\
             -a -t 10.0.0.1:0 -r 1.1.1.1:8080 -j -w 2 -x 10 -y 5\n\
             -a -t 10.0.0.1:0 -r 1.1.1.2 -i\n\
             -A -u 10.0.0.2:53 -s rr -p 50 -M 255.255.255.255\n\
             -A -t 10.0.0.3:80 -s mh\n",
        )
        .unwrap();
        assert_eq!(
            save_rules(&v),
            "-A -t 10.0.0.1:0 -s mh -p 100 -b mh-port\n\
             -a -t 10.0.0.1:0 -r 1.1.1.1:8080 -j -w 2\n\
             -a -t 10.0.0.1:0 -r 1.1.1.2:0 -i -w 1\n\
             -A -t 10.0.0.3:80 -s mh\n\
             -A -u 10.0.0.2:53 -s rr -p 50\n"
        );
    }

    #[test]
    fn sort_quirk() {
        assert_eq!(cmp_ipv4_ipvsadm(ip("10.0.0.1"), ip("192.168.0.1")), Ordering::Greater);
        assert_eq!(cmp_ipv4_ipvsadm(ip("10.0.0.1"), ip("10.0.0.2")), Ordering::Less);
        assert_eq!(cmp_ipv4_ipvsadm(ip("10.0.0.1"), ip("10.0.0.1")), Ordering::Equal);
        let v = services_from_rules(
            "-A -t 10.0.0.1:80\n\
             -A -t 192.168.0.1:80\n\
             -A -t 10.0.0.1:79\n\
             -a -t 10.0.0.1:80 -r 10.0.0.5:80\n\
             -a -t 10.0.0.1:80 -r 192.168.0.5:80\n\
             -a -t 10.0.0.1:80 -r 10.0.0.4:8080 -m\n\
             -a -t 10.0.0.1:80 -r 10.0.0.4:81 -m\n",
        )
        .unwrap();
        assert_eq!(
            save_rules(&v),
            "-A -t 192.168.0.1:80 -s wlc\n\
             -A -t 10.0.0.1:79 -s wlc\n\
             -A -t 10.0.0.1:80 -s wlc\n\
             -a -t 10.0.0.1:80 -r 192.168.0.5:80 -g -w 1\n\
             -a -t 10.0.0.1:80 -r 10.0.0.4:81 -m -w 1\n\
             -a -t 10.0.0.1:80 -r 10.0.0.4:8080 -m -w 1\n\
             -a -t 10.0.0.1:80 -r 10.0.0.5:80 -g -w 1\n"
        );
    }

    #[test]
    fn sort_never_panics_on_cyclic_addresses() {
        // 0.0.0.0 > 128.0.0.1 > ... the quirk is not transitive.
        let addrs = ["0.0.0.0", "128.0.0.1", "255.0.0.0", "64.0.0.0", "192.0.0.0", "1.0.0.0"];
        let mut svc = VirtualService::new(Proto::Tcp, ip("1.1.1.1"), 80, SchedKind::Rr);
        let mut table = Vec::new();
        for a in addrs {
            table.push(VirtualService::new(Proto::Tcp, ip(a), 80, SchedKind::Rr));
            svc.servers.push(RealServer {
                addr: ip(a),
                port: 80,
                weight: 1,
                mode: FwdMode::Dr,
                u_threshold: 0,
                l_threshold: 0,
            });
        }
        assert_eq!(sorted_services(&table).len(), addrs.len());
        assert_eq!(sorted_servers(&svc).len(), addrs.len());
    }

    fn normalized(mut v: Vec<VirtualService>) -> Vec<VirtualService> {
        for s in &mut v {
            s.servers.sort_by_key(|d| (u32::from(d.addr), d.port));
        }
        v.sort_by_key(|s| (s.proto.number(), u32::from(s.vip), s.port));
        v
    }

    #[test]
    fn round_trip_example() {
        let v = services_from_rules(SAVE_EXAMPLE).unwrap();
        let again = services_from_rules(&save_rules(&v)).unwrap();
        assert_eq!(normalized(again), normalized(v));
    }

    // --- property tests -------------------------------------------------------------------

    fn arb_table() -> impl Strategy<Value = Vec<VirtualService>> {
        let server = (any::<u32>(), any::<u16>(), 0u32..=65535, 0usize..4);
        let service = (
            any::<bool>(),
            any::<u32>(),
            any::<u16>(),
            0usize..SchedKind::ALL.len(),
            proptest::option::of((1u32..=MAX_PERSISTENCE_TIMEOUT, 0u32..=32)),
            any::<(bool, bool)>(),
            proptest::collection::vec(server, 0..6),
        );
        proptest::collection::vec(service, 0..6).prop_map(|raw| {
            let mut out: Vec<VirtualService> = Vec::new();
            for (is_tcp, vip, port, sched, persist, (fallback, fport), servers) in raw {
                let proto = if is_tcp { Proto::Tcp } else { Proto::Udp };
                let sched = SchedKind::ALL[sched];
                let port = if port == 0 && persist.is_none() { 1 } else { port };
                let mut svc = VirtualService::new(proto, Ipv4Addr::from(vip), port, sched);
                svc.persistence = persist.map(|(t, bits)| Persistence {
                    timeout_s: t,
                    netmask: Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0)),
                });
                svc.flags = effective_flags(sched, SchedFlags { fallback, port: fport });
                for (addr, dport, weight, mode) in servers {
                    let mode = [FwdMode::Dr, FwdMode::Tun, FwdMode::Nat, FwdMode::FullNat][mode];
                    let dport = if matches!(mode, FwdMode::Dr | FwdMode::Tun) { port } else { dport };
                    let addr = Ipv4Addr::from(addr);
                    if svc.servers.iter().any(|d| d.addr == addr && d.port == dport) {
                        continue;
                    }
                    svc.servers.push(RealServer { addr, port: dport, weight, mode, u_threshold: 0, l_threshold: 0 });
                }
                if !out.iter().any(|s| ServiceKey::of(s) == ServiceKey::of(&svc)) {
                    out.push(svc);
                }
            }
            out
        })
    }

    const VOCAB: &[&str] = &[
        "-A",
        "-E",
        "-D",
        "-C",
        "-R",
        "-S",
        "-a",
        "-e",
        "-d",
        "-L",
        "-l",
        "-Z",
        "--set",
        "-h",
        "-v",
        "-t",
        "-u",
        "-f",
        "-6",
        "-s",
        "-p",
        "-M",
        "-b",
        "-r",
        "-g",
        "-i",
        "-m",
        "-j",
        "-w",
        "-x",
        "-y",
        "-n",
        "-c",
        "-X",
        "-o",
        "--stats",
        "--rate",
        "--exact",
        "--thresholds",
        "--persistent-conn",
        "--nosort",
        "--sort",
        "--timeout",
        "--daemon",
        "--ops",
        "--pe",
        "--tun-type",
        "--start-daemon",
        "--sctp-service",
        "10.0.0.1:80",
        "10.0.0.1",
        "10.0.0.1:0",
        "192.168.1.1:8080",
        "rr",
        "sh",
        "mh",
        "wlc",
        "lblc",
        "sh-fallback,sh-port",
        "mh-port",
        "flag-1",
        "360",
        "0",
        "65536",
        "-1",
        "2147483648",
        "255.255.255.0",
        "255.0.255.0",
        "1.2.3.4:http",
        "[::1]:80",
        "::1",
        "--",
        "-",
        "=",
        "--weight=3",
        "--persistent=",
        "--numeric=x",
        "-Lnc",
        "-p300",
        "-w3",
        "ipvsadm",
        "#",
        "é",
        "-é",
        "--é",
        "-Aé",
    ];

    fn arb_tokens() -> impl Strategy<Value = Vec<String>> {
        let tok = prop_oneof![
            3 => proptest::sample::select(VOCAB).prop_map(String::from),
            1 => ".{0,10}",
            1 => "-[A-Za-z0-9]{1,4}",
        ];
        proptest::collection::vec(tok, 0..12)
    }

    proptest! {
        #[test]
        fn prop_parse_never_panics(tokens in arb_tokens()) {
            let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
            let mut table = Vec::new();
            match parse_command(&refs) {
                Ok(cmd) => {
                    let _ = apply(&mut table, &cmd);
                    let _ = apply(&mut table, &cmd);
                }
                Err(e) => {
                    prop_assert!(!e.to_string().is_empty());
                    prop_assert!([1, 2, 255].contains(&e.exit_code()));
                }
            }
            let text = tokens.join(" ");
            let _ = parse_rules(&text);
            let _ = services_from_rules(&text.replace('#', "\n"));
        }

        #[test]
        fn prop_random_rules_never_panic(lines in proptest::collection::vec(arb_tokens(), 0..8)) {
            let text: Vec<String> = lines.iter().map(|l| l.join(" ")).collect();
            let text = text.join("\n");
            if let Ok(v) = services_from_rules(&text) {
                let saved = save_rules(&v);
                // Whatever was built can be saved and restored.
                let back = services_from_rules(&saved);
                prop_assert!(back.is_ok(), "{saved}: {back:?}");
            }
        }

        #[test]
        fn prop_save_round_trip(table in arb_table()) {
            let saved = save_rules(&table);
            let back = services_from_rules(&saved);
            prop_assert!(back.is_ok(), "{}: {:?}", saved, back);
            prop_assert_eq!(normalized(back.unwrap()), normalized(table));
        }
    }
}
