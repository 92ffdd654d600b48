//! ipvsadm 1.31's option table: names, arguments, and which command allows which option.

#[allow(unused_imports)]
use super::apply::*;
#[allow(unused_imports)]
use super::format::*;
#[allow(unused_imports)]
use super::parse::*;

// ------------------------------------------------------------------------------------------
// Option tables (ipvsadm 1.31 order)
// ------------------------------------------------------------------------------------------

pub(super) const O_NUMERIC: usize = 0;
pub(super) const O_CONNECTION: usize = 1;
pub(super) const O_SERVICE: usize = 2;
pub(super) const O_SCHEDULER: usize = 3;
pub(super) const O_PERSISTENT: usize = 4;
pub(super) const O_NETMASK: usize = 5;
pub(super) const O_SERVER: usize = 6;
pub(super) const O_FORWARD: usize = 7;
pub(super) const O_WEIGHT: usize = 8;
pub(super) const O_UTHRESHOLD: usize = 9;
pub(super) const O_LTHRESHOLD: usize = 10;
pub(super) const O_MCAST_IF: usize = 11;
pub(super) const O_TIMEOUT: usize = 12;
pub(super) const O_DAEMON: usize = 13;
pub(super) const O_STATS: usize = 14;
pub(super) const O_RATE: usize = 15;
pub(super) const O_THRESHOLDS: usize = 16;
pub(super) const O_PERSISTENTCONN: usize = 17;
pub(super) const O_NOSORT: usize = 18;
pub(super) const O_SYNCID: usize = 19;
pub(super) const O_EXACT: usize = 20;
pub(super) const O_OPS: usize = 21;
pub(super) const O_PE: usize = 22;
pub(super) const O_SCHED_FLAGS: usize = 23;
pub(super) const O_MCAST_GROUP: usize = 24;
pub(super) const O_MCAST_PORT: usize = 25;
pub(super) const O_MCAST_TTL: usize = 26;
pub(super) const O_SYNC_MAXLEN: usize = 27;
pub(super) const O_TUN_INFO: usize = 28;
pub(super) const O_TUN_TYPE: usize = 29;
pub(super) const O_TUN_PORT: usize = 30;
pub(super) const O_TUN_NOCSUM: usize = 31;
pub(super) const O_TUN_CSUM: usize = 32;
pub(super) const O_TUN_REMCSUM: usize = 33;
pub(super) const NUM_OPTS: usize = 34;

pub(super) const OPT_NAMES: [&str; NUM_OPTS] = [
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

/// ipvsadm's commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cmd {
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
    StartDaemon,
    StopDaemon,
}

impl Cmd {
    /// ipvsadm's `cmdnames`.
    pub(super) fn name(self) -> &'static str {
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
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Legal {
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
pub(super) fn legality(cmd: Cmd, opt: usize) -> Legal {
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
        Cmd::StartDaemon => match opt {
            O_MCAST_IF | O_SYNCID | O_MCAST_GROUP | O_MCAST_PORT | O_MCAST_TTL | O_SYNC_MAXLEN => Optional,
            _ => Illegal,
        },
        Cmd::StopDaemon => match opt {
            O_SYNCID => Optional,
            _ => Illegal,
        },
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ArgKind {
    None,
    Required,
    Optional,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Id {
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
    /// `--tun-type`: only `ipip` is served.
    TunType,
    Daemon,
    McastInterface,
    Syncid,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    /// Parsed for legality, then refused: (option bit).
    Unsupported(usize),
}

pub(super) struct Spec {
    pub(super) long: &'static str,
    pub(super) short: Option<char>,
    pub(super) arg: ArgKind,
    pub(super) id: Id,
}

pub(super) const fn spec(long: &'static str, short: Option<char>, arg: ArgKind, id: Id) -> Spec {
    Spec { long, short, arg, id }
}

pub(super) const SPECS: &[Spec] = &[
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
    spec("daemon", None, ArgKind::None, Id::Daemon),
    spec("mcast-interface", None, ArgKind::Required, Id::McastInterface),
    spec("syncid", None, ArgKind::Required, Id::Syncid),
    spec("mcast-group", None, ArgKind::Required, Id::McastGroup),
    spec("mcast-port", None, ArgKind::Required, Id::McastPort),
    spec("mcast-ttl", None, ArgKind::Required, Id::McastTtl),
    spec("sync-maxlen", None, ArgKind::Required, Id::SyncMaxlen),
    spec("tun-info", None, ArgKind::None, Id::Unsupported(O_TUN_INFO)),
    spec("tun-type", None, ArgKind::Required, Id::TunType),
    spec("tun-port", None, ArgKind::Required, Id::Unsupported(O_TUN_PORT)),
    spec("tun-nocsum", None, ArgKind::None, Id::Unsupported(O_TUN_NOCSUM)),
    spec("tun-csum", None, ArgKind::None, Id::Unsupported(O_TUN_CSUM)),
    spec("tun-remcsum", None, ArgKind::None, Id::Unsupported(O_TUN_REMCSUM)),
];

pub(super) fn find_long(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.long == name)
}

pub(super) fn find_short(c: char) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.short == Some(c))
}

/// Port names accepted after `:` (ipvsadm asks getservbyname; xvs knows these).
pub(super) const PORT_NAMES: &[(&str, u16)] = &[
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
