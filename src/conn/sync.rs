//! What IPVS's connection sync needs of a shard: on a master, when a connection is due to be
//! synced and its message; on a backup, installing a message as `ip_vs_proc_conn` does.
//!
//! A connection's sync bookkeeping (packets modulo [`SYNC_PERIOD`], and the state last
//! synced: IPVS's `in_pkts` and `old_state`) lives in 9 bits of its cold `Links`, so the hot
//! record keeps its 32 bytes and a director without a sync master never touches it: 6 bits
//! of count, and 3 of state, which tell apart every state a connection is synced in (all
//! below 8) and "another state", all that `old_state` is compared for.

use super::record::*;
use super::shard::{ConnShard, NONE};
use super::wheel::{ms_to_tick, secs_to_ticks, TICK_MS};
use crate::model::{sync_flags, FwdMode, SyncConn, TcpState};
use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};

/// IPVS's `sync_threshold` defaults: a connection is synced at its 3rd client packet, then
/// every 50th (`pkts % sync_period == sync_threshold`).
pub const SYNC_THRESHOLD: u32 = 3;
pub const SYNC_PERIOD: u32 = 50;

/// TCP states a connection is synced in (`ip_vs_sync_conn_needed`).
const SYNCED_STATES: u32 = 1 << TcpState::Established as u32
    | 1 << TcpState::FinWait as u32
    | 1 << TcpState::Close as u32
    | 1 << TcpState::CloseWait as u32
    | 1 << TcpState::TimeWait as u32;

/// The state last synced, as kept in 3 bits: a state a connection is synced in is itself
/// (they are all below 8), any other 0 (NONE, never synced in), which differs from all of them,
/// as the state itself would.
#[inline]
fn synced_code(state: u32) -> u32 {
    if state < 8 && SYNCED_STATES & (1 << state) != 0 {
        state
    } else {
        0
    }
}
const _: () = assert!(SYNCED_STATES < 1 << 8 && SYNCED_STATES & 1 == 0 && SYNC_PERIOD <= 1 << COUNT_BITS);

/// The packet count's bits in the 9 (the state's code above them).
const COUNT_BITS: u32 = 6;

/// The 9 bits of a connection's sync bookkeeping: the synced state's code and the count.
#[inline]
fn sync_word(code: u32, pkts: u32) -> u32 {
    code << COUNT_BITS | pkts
}

/// How a message was installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    Created,
    /// Known already: state, activity and timeout taken from the message.
    Updated,
    /// Known with another real server (the master rescheduled it): replaced.
    Replaced,
}

impl ConnShard {
    /// Counts one client packet of connection `idx` and says whether it is due to be synced
    /// now (IPVS's `ip_vs_sync_conn_needed` with `sync_refresh_period` 0): a TCP connection
    /// only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT or TIME_WAIT; a change into one of
    /// those other than ESTABLISHED at once, otherwise at packet 3, 53, 103...
    #[inline]
    pub fn sync_due(&mut self, idx: u32) -> bool {
        let (Some(c), Some(l)) = (self.slab.get(idx as usize), self.links.get_mut(idx as usize)) else {
            return false;
        };
        if c.is_template() {
            return false;
        }
        let bits = l.sync_bits();
        let pkts = ((bits & ((1 << COUNT_BITS) - 1)) + 1) % SYNC_PERIOD;
        let synced = bits >> COUNT_BITS;
        l.set_sync_bits(sync_word(synced, pkts));
        let state = c.state as u32;
        let due = if c.proto == PROTO_TCP {
            if state >= 32 || SYNCED_STATES & (1 << state) == 0 {
                return false;
            }
            (synced_code(state) != synced && state != TcpState::Established as u32) || pkts == SYNC_THRESHOLD
        } else {
            pkts == SYNC_THRESHOLD
        };
        if due {
            l.set_sync_bits(sync_word(synced_code(state), pkts));
        }
        due
    }

    /// The template connection `idx` follows, if any.
    pub fn template_of(&self, idx: u32) -> Option<u32> {
        let t = self.links.get(idx as usize)?.template();
        (t != NONE && self.slab.get(t as usize).is_some_and(|c| c.flags & F_IN_USE != 0 && c.is_template()))
            .then_some(t)
    }

    /// The sync message of connection or template `idx`: its state's timeout (the template's
    /// own), the forwarding method in IPVS's flags (FULLNAT as MASQ with its local tuple).
    pub fn sync_message(&self, idx: u32) -> Option<SyncConn> {
        let c = *self.slab.get(idx as usize)?;
        let template = c.is_template();
        let mut flags = match c.mode() {
            FwdMode::Nat | FwdMode::FullNat => sync_flags::MASQ,
            FwdMode::Tun => sync_flags::TUNNEL,
            FwdMode::Dr => sync_flags::DROUTE,
        };
        let ticks = if template {
            flags |= sync_flags::TEMPLATE;
            secs_to_ticks(c.template_timeout_s())
        } else {
            if c.is_inactive() {
                flags |= sync_flags::INACTIVE;
            }
            self.timeouts.get(c.state as usize).copied().unwrap_or(0)
        };
        let fullnat = !template && c.mode() == FwdMode::FullNat;
        Some(SyncConn {
            proto: c.proto & 0x7f,
            flags,
            state: if template || c.proto == PROTO_UDP { 0 } else { c.state as u16 },
            caddr: c.caddr,
            cport: c.cport,
            vaddr: c.vaddr,
            vport: c.vport,
            daddr: c.daddr,
            dport: c.dport,
            fwmark: 0,
            timeout_s: (ticks as u64 * TICK_MS / 1000) as u32,
            laddr: if fullnat { self.laddr(&c) } else { 0 },
            lport: if fullnat { c.lport } else { 0 },
        })
    }

    /// Every connection and template as a sync message whose timeout is what it has left
    /// (templates still followed by connections: 0, the receiver's own), for handing the
    /// table to the next run of the director. Allocates: control path only.
    pub fn sync_all(&self, now_ms: u64) -> Vec<SyncConn> {
        self.iter()
            .filter_map(|(i, c)| {
                let mut m = self.sync_message(i)?;
                let left = self.expires_in_s(i, now_ms);
                m.timeout_s = match c.is_template() {
                    // Followed, it lives on here as long as its connections do: the next run
                    // (whose connections follow no template) gives it a whole timeout.
                    true if self.links[i as usize].followers() > 0 => 0,
                    true => left,
                    false => left.max(1),
                };
                Some(m)
            })
            .collect()
    }

    /// Installs message `m` (IPVS's `ip_vs_proc_conn`), `n` naming the service, the real
    /// server and the mode the caller found for it in its tables. A known connection with
    /// another real server is replaced unless the message is INACTIVE; a known one is
    /// updated; otherwise it is created (FULLNAT with the master's local tuple), with the
    /// message's timeout (0: this shard's own). `template_timeout_s` is a template's own
    /// timeout (what a follower re-arms it with); it expires after the message's timeout, or
    /// its own when the message has none.
    pub fn install_synced(
        &mut self,
        n: &NewConn,
        m: &SyncConn,
        template_timeout_s: u32,
        now_ms: u64,
    ) -> Result<Installed, Refused> {
        if m.is_template() {
            return self.install_template(n, m, template_timeout_s, now_ms);
        }
        let found = self.lookup_in(&n.key, self.hash(&n.key)).filter(|&i| self.in_use(i));
        let mut how = Installed::Created;
        if let Some(i) = found {
            let c = self.slab[i as usize];
            if (c.daddr, c.dport) == (n.daddr, n.dport) || m.is_inactive() {
                self.apply_synced(i, m, now_ms);
                return Ok(Installed::Updated);
            }
            self.remove(i);
            how = Installed::Replaced;
        }
        let tuple = (n.mode == FwdMode::FullNat).then_some((m.laddr, m.lport));
        let i = self.create_with(n, tuple, 0, self.hash(&n.key), now_ms)?;
        self.apply_synced(i, m, now_ms);
        Ok(how)
    }

    fn install_template(
        &mut self,
        n: &NewConn,
        m: &SyncConn,
        timeout_s: u32,
        now_ms: u64,
    ) -> Result<Installed, Refused> {
        let key = ConnKey::template(n.key.proto, m.caddr, m.vaddr, m.vport);
        let found = self.lookup_in(&key, self.hash(&key)).filter(|&i| self.in_use(i));
        let expires =
            ms_to_tick(now_ms).wrapping_add(secs_to_ticks(if m.timeout_s == 0 { timeout_s } else { m.timeout_s }));
        let mut how = Installed::Created;
        if let Some(t) = found {
            let c = self.slab[t as usize];
            if (c.daddr, c.dport) == (n.daddr, n.dport) {
                self.slab[t as usize].set_template_timeout_s(timeout_s);
                self.slab[t as usize].expires = expires;
                self.unlink(t);
                self.link(t, expires);
                return Ok(Installed::Updated);
            }
            self.retire_template(t);
            how = Installed::Replaced;
        }
        let t = self.create_template(key, n, timeout_s, now_ms)?;
        self.slab[t as usize].expires = expires;
        self.unlink(t);
        self.link(t, expires);
        Ok(how)
    }

    /// Takes state, activity and timeout from message `m` for connection `idx`.
    fn apply_synced(&mut self, idx: u32, m: &SyncConn, now_ms: u64) {
        let Some(c) = self.slab.get_mut(idx as usize) else { return };
        let tcp = c.proto == PROTO_TCP;
        if tcp && (m.state as u32) <= TcpState::SynAck as u32 {
            c.state = m.state as u8;
        }
        // Synced, it is no half-open or unanswered flow: the master saw it through.
        c.flags &= !F_BY_HASH;
        let delta = c.set_active(tcp && c.state == TcpState::Established as u8);
        let (svc, dest, state, lport) = (c.svc, c.dest, c.state, c.flags & F_LPORT != 0);
        let own = self.timeouts.get(state as usize).copied().unwrap_or(1);
        let mut ticks = if m.timeout_s == 0 { own } else { secs_to_ticks(m.timeout_s) };
        if state == TcpState::TimeWait as u8 && lport {
            // As for a connection of its own: its tuple is not offered again before the real
            // server's TIME_WAIT has passed.
            ticks = ticks.max(self.fullnat_time_wait);
        }
        let expires = ms_to_tick(now_ms).wrapping_add(ticks);
        self.slab[idx as usize].expires = expires;
        self.loads.shift(svc, dest, delta);
        // As `ip_vs_proc_conn`: synced in this state (a backup that becomes master syncs it
        // again on a change), its packets counted from the threshold (the next sync at the
        // 50th packet, not the 3rd).
        self.links[idx as usize].set_sync_bits(sync_word(synced_code(state as u32), SYNC_THRESHOLD));
        self.unlink(idx);
        self.link(idx, expires);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::shard::ShardConfig;
    use proptest::prelude::*;

    /// IPVS's `ip_vs_sync_conn_needed` (sync_refresh_period 0, sync_period 50, threshold 3)
    /// with its whole `old_state` and an unbounded `in_pkts`: the oracle for the 9 bits the
    /// shard keeps instead.
    #[derive(Default)]
    struct Ipvs {
        in_pkts: u64,
        old_state: u32,
    }

    impl Ipvs {
        fn due(&mut self, tcp: bool, state: u32) -> bool {
            self.in_pkts += 1;
            if tcp {
                if SYNCED_STATES & (1 << state) == 0 {
                    return false;
                }
                if state != self.old_state && state != TcpState::Established as u32 {
                    self.old_state = state;
                    return true;
                }
            }
            if self.in_pkts % SYNC_PERIOD as u64 != SYNC_THRESHOLD as u64 {
                return false;
            }
            self.old_state = state;
            true
        }
    }

    proptest! {
        /// Any sequence of states a TCP connection's packets see (each state a run of
        /// packets), and a UDP flow's packets: due exactly when IPVS's test says so. Made by
        /// its first packet, or installed from a sync message in some state (IPVS's
        /// `ip_vs_proc_conn`: `in_pkts` at the threshold, `old_state` that state).
        #[test]
        fn sync_due_agrees_with_ipvs(
            tcp in any::<bool>(),
            follows in any::<bool>(),
            installed in prop::option::of(0u8..11),
            runs in prop::collection::vec((0u8..11, 1usize..120), 1..40),
        ) {
            let mut s = ConnShard::new(&ShardConfig { capacity: 64, ..ShardConfig::default() });
            let proto = if tcp { PROTO_TCP } else { PROTO_UDP };
            let n = |sport: u16, template: u32| NewConn {
                key: ConnKey { saddr: 0xc612_0001, daddr: 0xc613_0001, sport, dport: 80, proto },
                daddr: 0xc613_000b,
                dport: 80,
                mode: FwdMode::Nat,
                laddr: 0,
                svc: 0,
                dest: 0,
                template,
            };
            let template = if follows {
                let key = ConnKey::template(proto, 0xc612_0000, 0xc613_0001, 80);
                s.create_template(key, &n(0, NONE), 300, 0).expect("room")
            } else {
                NONE
            };
            let i = s.create(&n(40000, template), 0).expect("room");
            let mut ipvs = Ipvs::default();
            if let Some(state) = installed {
                let mut m = s.sync_message(i).expect("a connection");
                m.state = if tcp { state as u16 } else { 0 };
                s.apply_synced(i, &m, 0);
                let state = if tcp { state as u32 } else { crate::conn::UDP_STATE as u32 };
                ipvs = Ipvs { in_pkts: SYNC_THRESHOLD as u64, old_state: state };
            }
            for (state, packets) in runs {
                let state = if tcp { state } else { crate::conn::UDP_STATE };
                s.slab[i as usize].state = state;
                for k in 0..packets {
                    prop_assert_eq!(s.sync_due(i), ipvs.due(tcp, state as u32), "state {} packet {}", state, k);
                }
            }
            // The bookkeeping beside it leaves the template relation alone.
            prop_assert_eq!(s.template_of(i), (template != NONE).then_some(template));
        }
    }

    #[test]
    fn the_packed_links_keep_template_followers_and_sync_bits_apart() {
        let top = super::super::record::MAX_CAPACITY - 1;
        let mut l = Links::following(top);
        l.set_sync_bits(0x1ff);
        assert_eq!((l.template(), l.sync_bits()), (top, 0x1ff));
        l.set_sync_bits(0);
        assert_eq!((l.template(), l.sync_bits()), (top, 0));
        let mut l = Links::following(NONE);
        l.set_sync_bits(0x1ff);
        assert_eq!((l.template(), l.sync_bits()), (NONE, 0x1ff));
        let mut t = Links::new_template();
        t.set_sync_bits(0x155);
        for _ in 0..top {
            t.add_followers(1);
        }
        assert_eq!((t.followers(), t.sync_bits()), (top, 0x155));
        t.add_followers(1);
        assert_eq!(t.followers(), top, "saturates below the field's top");
        t.add_followers(-1);
        assert_eq!(t.followers(), top - 1);
        let mut t = Links::new_template();
        t.add_followers(-1);
        assert_eq!(t.followers(), 0, "never below 0");
    }
}
