//! The control protocol: typed requests and replies between `xvsadm` and `xvs run`, one JSON
//! object per line over a Unix socket (mode 0600, so only its owner can change the director).
//! A request that does not parse gets an error reply and changes nothing.

use crate::model::{ConnEntry, ServiceView};
use serde::{Deserialize, Serialize};

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
    /// `--start-daemon master|backup` (connection sync).
    StartDaemon { spec: crate::model::DaemonSpec },
    /// `--stop-daemon master|backup`.
    StopDaemon { role: crate::model::SyncRole },
    /// `-L --daemon`.
    Daemons,
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
