//! Health-check settings as config.json and keepalived import give them.

use super::ServiceKey;
use std::net::Ipv4Addr;
use std::time::Duration;

/// What a check does.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CheckKind {
    /// The server accepts a TCP connection.
    Tcp,
    /// `GET path` answers with `status` (the `Host` header is `host`, else the address).
    Http { path: String, status: u16, host: Option<String> },
}

/// One server's check.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// Port to check (default: the server's port).
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Successes in a row that bring a down server back.
    pub rise: u32,
    /// Failures in a row that take an up server out.
    pub fall: u32,
}

/// The checks configured for one service (`services[i].health_check`, overridden per server).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ServiceHealth {
    pub key: Option<ServiceKey>,
    pub check: Option<CheckSpec>,
    pub servers: Vec<(Ipv4Addr, u16, CheckSpec)>,
    /// Failed servers keep their place with weight 0 instead of leaving the table.
    pub inhibit_on_failure: bool,
}
