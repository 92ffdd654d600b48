//! One connection record: the key, the 32 hot bytes every packet reads, the cold links, and
//! what creating one takes.

use super::state::TcpState;
use crate::model::FwdMode;

/// A flow key as seen on the wire (addresses host order).
#[derive(Clone, Copy, Debug, Default, Eq)]
pub struct ConnKey {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

/// Compared as two 64-bit words: every packet compares its key with a record's, and the
/// derived field-by-field comparison was five compares and branches (17 instructions).
impl PartialEq for ConnKey {
    #[inline]
    fn eq(&self, other: &ConnKey) -> bool {
        let (a, b) = (self.words(), other.words());
        (a.0 ^ b.0) | (a.1 ^ b.1) == 0
    }
}

/// By the same words as [`PartialEq`], so that equal keys hash alike.
impl std::hash::Hash for ConnKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (a, b) = self.words();
        state.write_u64(a);
        state.write_u64(b);
    }
}

impl ConnKey {
    /// The key's fields packed into two words (no field overlaps another).
    #[inline(always)]
    fn words(&self) -> (u64, u64) {
        (
            self.saddr as u64 | (self.daddr as u64) << 32,
            self.sport as u64 | (self.dport as u64) << 16 | (self.proto as u64) << 32,
        )
    }

    /// Persistence templates live in the same index under a protocol no packet carries.
    pub fn template(proto: u8, client_net: u32, vip: u32, vport: u16) -> ConnKey {
        ConnKey { saddr: client_net, daddr: vip, sport: 0, dport: vport, proto: proto | 0x80 }
    }
}

/// One connection (or persistence template): the 32 bytes every packet reads, aligned so
/// that a lookup costs one cache line. The wheel links and template bookkeeping live apart
/// in [`Links`] (16 bytes), which only housekeeping and state changes touch.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(32))]
pub struct Conn {
    /// Client address and port (the original source).
    pub caddr: u32,
    /// Virtual address and port (the original destination).
    pub vaddr: u32,
    /// Real server address and port.
    pub daddr: u32,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    /// FULLNAT local port.
    pub lport: u16,
    /// Tick at which the connection expires unless refreshed.
    pub expires: u32,
    /// Service slot in the tables snapshot (stable while the director runs).
    pub svc: u16,
    /// Real-server slot within the service (stable: a deleted server's slot is never reused
    /// for another server).
    pub dest: u16,
    pub proto: u8,
    /// [`TcpState`] as u8, or [`UDP_STATE`].
    pub state: u8,
    /// FULLNAT local address: index into the shard's local addresses.
    pub(super) laddr_idx: u8,
    /// F_* bits, and the forwarding mode in bits 5..7.
    pub(super) flags: u8,
}

/// The cold half of a connection.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Links {
    pub(super) next: u32,
    pub(super) prev: u32,
    /// Slab index of the template this connection follows (or NONE); for a template, the
    /// number of connections following it.
    pub(super) template: u32,
    /// For a template: its timeout in ticks.
    pub(super) timeout: u32,
}

pub(super) const MODE_SHIFT: u8 = 5;

impl Conn {
    /// The key of the client's packets (templates: the masked client net, port 0).
    #[inline]
    pub fn in_key(&self) -> ConnKey {
        ConnKey { saddr: self.caddr, daddr: self.vaddr, sport: self.cport, dport: self.vport, proto: self.proto }
    }
    #[inline]
    pub fn mode(&self) -> FwdMode {
        match (self.flags >> MODE_SHIFT) & 3 {
            0 => FwdMode::Nat,
            1 => FwdMode::FullNat,
            2 => FwdMode::Tun,
            _ => FwdMode::Dr,
        }
    }
    pub fn is_template(&self) -> bool {
        self.flags & F_TEMPLATE != 0
    }
    /// Counted as inactive (every state but ESTABLISHED, and UDP).
    pub fn is_inactive(&self) -> bool {
        self.flags & F_INACTIVE != 0
    }
    pub fn tcp_state(&self) -> Option<TcpState> {
        TcpState::from_u8(self.state)
    }
    /// Counts the connection active (ESTABLISHED) or inactive (every other state, and UDP),
    /// as IPVS does; the change to its server's active count: +1, -1 or 0.
    #[inline]
    pub(super) fn set_active(&mut self, active: bool) -> i8 {
        let was_active = self.flags & F_INACTIVE == 0;
        if active == was_active {
            return 0;
        }
        if active {
            self.flags &= !F_INACTIVE;
            1
        } else {
            self.flags |= F_INACTIVE;
            -1
        }
    }
}

pub(super) fn mode_code(m: FwdMode) -> u8 {
    match m {
        FwdMode::Nat => 0,
        FwdMode::FullNat => 1,
        FwdMode::Tun => 2,
        FwdMode::Dr => 3,
    }
}

pub(super) const F_IN_USE: u8 = 1;

pub(super) const F_TEMPLATE: u8 = 2;

pub(super) const F_INACTIVE: u8 = 4;

/// Replies come back through the director (NAT, FULLNAT).
pub(super) const F_REPLIES: u8 = 8;

pub(super) const F_LPORT: u8 = 16;

/// Evictable like a half-open connection. TCP: made by a mid-connection segment (sh/mh
/// schedule those by the hash): its real server follows from the flow again, so an ACK flood
/// cannot fill the table with entries nothing may take back. UDP: unanswered, as every
/// datagram of a spoofed flood is: no reply seen yet (NAT, FULLNAT), or no second datagram
/// (DR, TUN, whose replies bypass the director). (Bits 5 and 6 hold the mode.)
pub(super) const F_BY_HASH: u8 = 128;

/// Everything needed to create a connection.
#[derive(Clone, Copy, Debug)]
pub struct NewConn {
    /// The client's packet: client -> VIP.
    pub key: ConnKey,
    pub daddr: u32,
    pub dport: u16,
    pub mode: FwdMode,
    /// FULLNAT local address (ignored otherwise).
    pub laddr: u32,
    pub svc: u16,
    pub dest: u16,
    /// Template to follow, or NONE.
    pub template: u32,
}

/// Why a new connection was not created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    TableFull,
    NoLocalPort,
}
