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

/// Compared without a branch, the addresses as one 64-bit word, the ports as one 32-bit word
/// and the protocol: every packet compares its key with a record's, and the derived
/// field-by-field comparison was five compares and branches (17 instructions). (Packing the
/// ports and protocol into a second 64-bit word cost 6-14 instructions more a packet: the
/// shifts and ors of both keys.)
impl PartialEq for ConnKey {
    #[inline]
    fn eq(&self, other: &ConnKey) -> bool {
        let (a, b) = (self.words(), other.words());
        let ports = |k: &ConnKey| k.sport as u32 | (k.dport as u32) << 16;
        (a.0 ^ b.0) | (ports(self) ^ ports(other)) as u64 | (self.proto ^ other.proto) as u64 == 0
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
/// that a lookup costs one cache line. The wheel links, a connection's template and sync
/// bookkeeping, and a template's follower count live apart in [`Links`] (12 bytes), which
/// only housekeeping, state changes and sync touch.
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
    /// FULLNAT local port. A template has none: it keeps its timeout here and in
    /// `laddr_idx` ([`Conn::template_timeout_s`]).
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
    /// FULLNAT local address: index into the shard's local addresses (a template: the top
    /// byte of its timeout).
    pub(super) laddr_idx: u8,
    /// F_* bits, and the forwarding mode in bits 5..7.
    pub(super) flags: u8,
}

/// The cold half of a connection: 12 bytes, which only housekeeping, state changes and sync
/// touch.
/// No `Default`: an all-zero word would say "follows template 0"; [`Links::free`],
/// [`Links::following`] and [`Links::new_template`] say what a slot is.
#[derive(Clone, Copy, Debug)]
pub(super) struct Links {
    pub(super) next: u32,
    pub(super) prev: u32,
    /// Bits 0..23: for a connection, the slab index of the template it follows
    /// ([`NO_TEMPLATE`] if none); for a template, how many connections follow it. Bits
    /// 23..32: a connection's sync bookkeeping (see `sync`). Packed so that a connection
    /// costs 12 bytes here, not 16: slab indices fit 23 bits ([`MAX_CAPACITY`]).
    aux: u32,
}

/// Most connections and templates a shard holds: its slab indices (below it) fit the 23 bits
/// of [`Links`]'s template field, beside [`NO_TEMPLATE`].
pub const MAX_CAPACITY: u32 = crate::model::MAX_CONNS_PER_WORKER;
const TEMPLATE_BITS: u32 = (1 << 23) - 1;
const _: () = assert!(MAX_CAPACITY <= TEMPLATE_BITS && std::mem::size_of::<Links>() == 12);
/// [`Links`]'s template field of a connection that follows none.
pub(super) const NO_TEMPLATE: u32 = TEMPLATE_BITS;
/// Where [`Links`]'s sync bookkeeping starts.
pub(super) const SYNC_SHIFT: u32 = 23;

impl Links {
    /// A slot on the free list (`next`: the next free one).
    pub(super) fn free(next: u32) -> Links {
        Links { next, prev: super::shard::NONE, aux: NO_TEMPLATE }
    }
    /// A connection just made, following template `t` ([`super::shard::NONE`]: none), not on
    /// the wheel yet, never synced.
    pub(super) fn following(t: u32) -> Links {
        let none = super::shard::NONE;
        Links { next: none, prev: none, aux: if t == none { NO_TEMPLATE } else { t & TEMPLATE_BITS } }
    }
    /// A template just made: no connection follows it yet.
    pub(super) fn new_template() -> Links {
        Links { next: super::shard::NONE, prev: super::shard::NONE, aux: 0 }
    }
    /// The template a connection follows, or [`super::shard::NONE`].
    #[inline]
    pub(super) fn template(&self) -> u32 {
        match self.aux & TEMPLATE_BITS {
            NO_TEMPLATE => super::shard::NONE,
            t => t,
        }
    }
    /// How many connections follow a template.
    #[inline]
    pub(super) fn followers(&self) -> u32 {
        self.aux & TEMPLATE_BITS
    }
    /// One more (`+1`) or one fewer (`-1`) connection follows this template.
    pub(super) fn add_followers(&mut self, d: i32) {
        let n = (self.followers() as i64 + d as i64).clamp(0, (TEMPLATE_BITS - 1) as i64) as u32;
        self.aux = (self.aux & !TEMPLATE_BITS) | n;
    }
    /// A connection's sync bookkeeping (9 bits).
    #[inline]
    pub(super) fn sync_bits(&self) -> u32 {
        self.aux >> SYNC_SHIFT
    }
    #[inline]
    pub(super) fn set_sync_bits(&mut self, b: u32) {
        self.aux = (self.aux & TEMPLATE_BITS) | b << SYNC_SHIFT;
    }
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
    /// A template's timeout in seconds, which it keeps where a connection keeps its FULLNAT
    /// local tuple (24 bits: more than [`super::wheel::secs_to_ticks`] takes).
    #[inline]
    pub(super) fn template_timeout_s(&self) -> u32 {
        self.lport as u32 | (self.laddr_idx as u32) << 16
    }
    pub(super) fn set_template_timeout_s(&mut self, s: u32) {
        let s = s.min(0xff_ffff);
        self.lport = s as u16;
        self.laddr_idx = (s >> 16) as u8;
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
