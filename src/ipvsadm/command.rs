//! What a parsed ipvsadm command line is: the command and its options.

use std::net::Ipv4Addr;

use crate::model::{FwdMode, SchedFlags, SchedKind, ServiceKey};

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
    /// `--daemon`: list the sync daemons instead of services.
    pub daemon: bool,
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
    /// `--start-daemon master|backup` and its options (IPVS's defaults filled in when it
    /// starts).
    StartDaemon(crate::model::DaemonSpec),
    /// `--stop-daemon master|backup`.
    StopDaemon(crate::model::SyncRole),
    /// `-h` / `--help`
    Help,
    /// `-v` / `--version`
    Version,
}
