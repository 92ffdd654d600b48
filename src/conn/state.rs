//! TCP connection states and IPVS's state table (`ip_vs_proto_tcp.c`), with per-state
//! timeouts. The director tracks both directions for NAT/FULLNAT and the client's packets
//! only for DR/TUN (IPVS's INPUT-ONLY table).

pub use crate::model::{TcpState, Timeouts, STATES, TCP_STATES, UDP_STATE};

/// Which table a packet's flags are looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client to real server, replies are tracked too (NAT, FULLNAT).
    Input = 0,
    /// Real server to client (NAT, FULLNAT replies).
    Output = 1,
    /// Client to real server when replies bypass the director (DR, TUN).
    InputOnly = 2,
}

impl Dir {
    /// The table a client's segments are looked up in: replies tracked too (NAT, FULLNAT),
    /// or not (DR, TUN).
    #[inline]
    pub fn of_client(mode: crate::model::FwdMode) -> Dir {
        use crate::model::FwdMode;
        match mode {
            FwdMode::Nat | FwdMode::FullNat => Dir::Input,
            FwdMode::Tun | FwdMode::Dr => Dir::InputOnly,
        }
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI, SynRecv as SR,
    SynSent as SS, TimeWait as TW,
};

/// `[dir][event][state] -> state`, events: syn, fin, ack, rst (IPVS `tcp_states`, as since
/// Linux 3.11's sloppy TCP: an ACK in state NONE, a connection made by a non-SYN, is
/// ESTABLISHED; before, CLOSE).
#[rustfmt::skip]
const TABLE: [[[TcpState; TCP_STATES]; 4]; 3] = [
    // INPUT       sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        /*syn*/ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The next state after a segment with `flags` (TCP flag byte) in direction `dir`.
/// Segments with none of SYN/FIN/ACK/RST leave the state as it is (IPVS `tcp_state_idx`).
#[inline]
pub fn next_state(state: TcpState, dir: Dir, flags: u8) -> TcpState {
    use crate::wire::tcp::{ACK, FIN, RST, SYN};
    let event = if flags & RST != 0 {
        3
    } else if flags & SYN != 0 {
        0
    } else if flags & FIN != 0 {
        1
    } else if flags & ACK != 0 {
        2
    } else {
        return state;
    };
    TABLE[dir as usize][event][state as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::{ACK, FIN, RST, SYN};

    #[test]
    fn three_way_handshake_and_close_through_nat() {
        let mut s = next_state(TcpState::None, Dir::Input, SYN);
        assert_eq!(s, TcpState::SynRecv);
        s = next_state(s, Dir::Output, SYN | ACK);
        assert_eq!(s, TcpState::SynRecv);
        s = next_state(s, Dir::Input, ACK);
        assert_eq!(s, TcpState::Established);
        s = next_state(s, Dir::Input, FIN | ACK);
        assert_eq!(s, TcpState::CloseWait);
        s = next_state(s, Dir::Output, FIN | ACK);
        assert_eq!(s, TcpState::TimeWait);
        assert_eq!(next_state(TcpState::Established, Dir::Output, FIN | ACK), TcpState::FinWait);
        assert_eq!(next_state(TcpState::Established, Dir::Input, RST), TcpState::Close);
        assert_eq!(next_state(TcpState::Established, Dir::Input, 0), TcpState::Established);
    }

    #[test]
    fn input_only_close() {
        let mut s = next_state(TcpState::None, Dir::InputOnly, SYN);
        s = next_state(s, Dir::InputOnly, ACK);
        assert_eq!(s, TcpState::Established);
        s = next_state(s, Dir::InputOnly, FIN | ACK);
        assert_eq!(s, TcpState::FinWait);
        s = next_state(s, Dir::InputOnly, ACK);
        assert_eq!(s, TcpState::FinWait);
        assert_eq!(next_state(TcpState::LastAck, Dir::InputOnly, ACK), TcpState::Close);
    }
}
