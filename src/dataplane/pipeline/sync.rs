//! Connection sync in the pipeline: a master's workers queue the messages of connections due
//! to be synced (lock-free, no allocation: a full queue drops the message, counted, as the
//! kernel drops when its buffers are full), a backup's workers install the messages their
//! sync daemon received.

use super::Pipeline;
use crate::conn::sync::Installed;
use crate::conn::{ConnKey, NewConn, Refused, NONE};
use crate::model::{FwdMode, SyncConn};
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicU64, Ordering};

/// Messages a worker's queue holds: 2 s of batching at 4k new connections a second.
pub const SYNC_QUEUE: usize = 8192;

/// Between one worker and the sync daemon: the master's outgoing queue, and the counters of
/// both directions (relaxed atomics, read by the daemon's listing and the metrics).
#[derive(Debug)]
pub struct SyncLink {
    pub queue: ArrayQueue<SyncConn>,
    pub queued: AtomicU64,
    pub queue_full: AtomicU64,
    pub created: AtomicU64,
    pub updated: AtomicU64,
    pub replaced: AtomicU64,
    /// Messages for a service or real server this director does not have.
    pub no_service: AtomicU64,
    pub no_dest: AtomicU64,
    /// No room (table full, or FULLNAT's local tuple held or another worker's).
    pub refused: AtomicU64,
    /// The messages' timeouts are what each entry has left (a handover from the previous
    /// run), not its state's whole timeout (IPVS's sync): a template then expires when it
    /// would have, and is re-armed with the service's persistence timeout.
    pub timeouts_left: bool,
}

impl Default for SyncLink {
    fn default() -> SyncLink {
        SyncLink {
            queue: ArrayQueue::new(SYNC_QUEUE),
            queued: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            created: AtomicU64::new(0),
            updated: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
            no_service: AtomicU64::new(0),
            no_dest: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            timeouts_left: false,
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What became of one installed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    Done(Installed),
    /// Another worker owns it (each worker is offered every message).
    NotMine,
    NoService,
    NoDest,
    Refused,
}

impl Pipeline {
    /// Queues the sync messages of connection `idx` if it is due (a master only; one branch
    /// otherwise). Its template rides along, as in IPVS. Kept out of line: a director that
    /// is no master pays one test of `sync_out` per client packet, nothing more.
    #[inline(never)]
    #[cold]
    pub(super) fn note_sync(&mut self, idx: u32) {
        let Some(link) = self.sync_out.as_deref() else { return };
        if !self.shard.sync_due(idx) {
            return;
        }
        let msgs = [Some(idx), self.shard.template_of(idx)];
        for m in msgs.into_iter().flatten().filter_map(|i| self.shard.sync_message(i)) {
            match link.queue.push(m) {
                Ok(()) => bump(&link.queued),
                Err(_) => bump(&link.queue_full),
            }
        }
    }

    /// Starts (Some) or stops (None) queueing sync messages.
    pub fn set_sync_out(&mut self, link: Option<std::sync::Arc<SyncLink>>) {
        self.sync_out = link;
    }

    /// Installs one received message against this worker's tables and shard, if this worker
    /// owns the connection (IPVS's `ip_vs_proc_conn`, see [`crate::conn::sync`]). Counted on
    /// `link`. A message for a service or real server not configured here is dropped (IPVS
    /// would keep an unbound entry; xvs could not forward it).
    pub fn install_synced(&mut self, m: &SyncConn, link: &SyncLink, now_ms: u64) -> SyncOutcome {
        let out = self.install_one(m, link.timeouts_left, now_ms);
        match out {
            SyncOutcome::Done(Installed::Created) => bump(&link.created),
            SyncOutcome::Done(Installed::Updated) => bump(&link.updated),
            SyncOutcome::Done(Installed::Replaced) => bump(&link.replaced),
            SyncOutcome::NoService => bump(&link.no_service),
            SyncOutcome::NoDest => bump(&link.no_dest),
            SyncOutcome::Refused => bump(&link.refused),
            SyncOutcome::NotMine => {}
        }
        out
    }

    fn install_one(&mut self, m: &SyncConn, timeouts_left: bool, now_ms: u64) -> SyncOutcome {
        let t = self.tables.clone();
        let Some(svc) = t.service(m.proto, m.vaddr, m.vport) else {
            return SyncOutcome::NoService;
        };
        let Some(s) = t.services.get(svc as usize) else {
            return SyncOutcome::NoService;
        };
        let key = ConnKey { saddr: m.caddr, daddr: m.vaddr, sport: m.cport, dport: m.vport, proto: m.proto };
        // A template has no client port, so no owner: every worker keeps it (each schedules
        // its own clients' new connections). DR/TUN connections have none either (their
        // frames land on whichever queue the NIC picks): every worker keeps them too.
        if !m.is_template() && self.owner(&key, Some(svc)).is_some() {
            return SyncOutcome::NotMine;
        }
        let Some(slot) = s.dest_slot(m.daddr, m.dport).or_else(|| s.dest_slot(m.daddr, 0)) else {
            return SyncOutcome::NoDest;
        };
        let Some(d) = s.dests.get(slot as usize) else {
            return SyncOutcome::NoDest;
        };
        // The receiver's own mode for the server, as IPVS takes the destination's. A FULLNAT
        // server here needs the master's local tuple, which a message without xvs's option
        // (from a kernel master, or for a server that is not FULLNAT there) does not carry.
        if d.mode == FwdMode::FullNat && m.lport == 0 && !m.is_template() {
            return SyncOutcome::Refused;
        }
        let n = NewConn {
            key,
            daddr: d.addr,
            dport: if d.port == 0 { m.dport } else { d.port },
            mode: d.mode,
            laddr: t.dip,
            svc,
            dest: slot,
            template: NONE,
        };
        // A template's own timeout, what a follower re-arms it with: the master's (IPVS
        // takes the message's), else the service's persistence. A handover's message has
        // only the time left, which sets when the template expires, not its timeout.
        let template_timeout = match (m.timeout_s, s.persistence) {
            (t, _) if t != 0 && !timeouts_left => t,
            (_, Some((t, _))) => t,
            (0, None) => 180,
            (t, _) => t,
        };
        match self.shard.install_synced(&n, m, template_timeout, now_ms) {
            Ok(how) => {
                if how != Installed::Updated && !m.is_template() {
                    if let Some(c) = self.stats.dests.get_mut(d.id as usize) {
                        c.conns += 1;
                    }
                }
                SyncOutcome::Done(how)
            }
            Err(Refused::TableFull | Refused::NoLocalPort) => SyncOutcome::Refused,
        }
    }
}
