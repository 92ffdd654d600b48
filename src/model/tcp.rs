//! IPVS's TCP state names and per-state timeouts: shared by the connection table, the
//! config and the control plane's listings.

/// IPVS TCP states (numbering = IPVS's `IP_VS_TCP_S_*`). UDP connections use [`UDP_STATE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
}

/// Number of TCP states.
pub const TCP_STATES: usize = 11;
/// The state slot UDP connections use in the timeout table.
pub const UDP_STATE: u8 = 11;
/// Timeout table size: the TCP states plus UDP.
pub const STATES: usize = 12;

impl TcpState {
    pub const ALL: [TcpState; TCP_STATES] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];
    pub fn from_u8(v: u8) -> Option<TcpState> {
        TcpState::ALL.get(v as usize).copied()
    }
    /// IPVS's name, as `ipvsadm -Lc` prints it.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }
}

/// Per-state timeouts in seconds (IPVS defaults unless configured).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Indexed by [`TcpState`] as u8, and [`UDP_STATE`] for UDP.
    pub secs: [u32; STATES],
}

impl Default for Timeouts {
    fn default() -> Self {
        let mut secs = [0u32; STATES];
        secs[TcpState::None as usize] = 2;
        secs[TcpState::Established as usize] = 900;
        secs[TcpState::SynSent as usize] = 120;
        secs[TcpState::SynRecv as usize] = 60;
        secs[TcpState::FinWait as usize] = 120;
        secs[TcpState::TimeWait as usize] = 120;
        secs[TcpState::Close as usize] = 10;
        secs[TcpState::CloseWait as usize] = 60;
        secs[TcpState::LastAck as usize] = 30;
        secs[TcpState::Listen as usize] = 120;
        secs[TcpState::SynAck as usize] = 120;
        secs[UDP_STATE as usize] = 300;
        Timeouts { secs }
    }
}
