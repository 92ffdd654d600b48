//! What IPVS's connection sync needs of a shard: on a master, when a connection is due to be
//! synced and its message; on a backup, installing a message as `ip_vs_proc_conn` does.
//!
//! A connection's sync bookkeeping (packets modulo [`SYNC_PERIOD`], and the state last
//! synced: IPVS's `in_pkts` and `old_state`) lives in its cold `Links::timeout`, which only
//! templates use otherwise, so the hot record keeps its 32 bytes and a director without a
//! sync master never touches it.

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
        let pkts = ((l.timeout & 0xffff) + 1) % SYNC_PERIOD;
        let synced = l.timeout >> 24;
        l.timeout = synced << 24 | pkts;
        let state = c.state as u32;
        let due = if c.proto == PROTO_TCP {
            if state >= 32 || SYNCED_STATES & (1 << state) == 0 {
                return false;
            }
            (state != synced && state != TcpState::Established as u32) || pkts == SYNC_THRESHOLD
        } else {
            pkts == SYNC_THRESHOLD
        };
        if due {
            l.timeout = state << 24 | pkts;
        }
        due
    }

    /// The template connection `idx` follows, if any.
    pub fn template_of(&self, idx: u32) -> Option<u32> {
        let t = self.links.get(idx as usize)?.template;
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
            self.links.get(idx as usize)?.timeout
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
                m.timeout_s = if c.is_template() { left } else { left.max(1) };
                Some(m)
            })
            .collect()
    }

    /// Installs message `m` (IPVS's `ip_vs_proc_conn`), `n` naming the service, the real
    /// server and the mode the caller found for it in its tables. A known connection with
    /// another real server is replaced unless the message is INACTIVE; a known one is
    /// updated; otherwise it is created (FULLNAT with the master's local tuple), with the
    /// message's timeout (0: this shard's own). `template_timeout_s` is a template's timeout
    /// (the caller's choice when the message has none).
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
        let i = self.create_with(n, tuple, 0, now_ms)?;
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
        let mut how = Installed::Created;
        if let Some(t) = found {
            let c = self.slab[t as usize];
            if (c.daddr, c.dport) == (n.daddr, n.dport) {
                let ticks = secs_to_ticks(timeout_s);
                self.links[t as usize].timeout = ticks;
                self.slab[t as usize].expires = ms_to_tick(now_ms).wrapping_add(ticks);
                return Ok(Installed::Updated);
            }
            self.retire_template(t);
            how = Installed::Replaced;
        }
        self.create_template(key, n, timeout_s, now_ms)?;
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
        // Synced in this state: a backup that becomes master syncs it again on a change.
        self.links[idx as usize].timeout = (state as u32) << 24;
        self.unlink(idx);
        self.link(idx, expires);
    }
}
