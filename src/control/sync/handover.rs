//! A hitless restart's handover: what the stopping run hands the next, in a file: the
//! connection table in IPVS's sync messages (the format a backup already installs), per
//! worker; the ownership seed (so that the next run places each connection on the worker
//! its frames reach); the sync daemons running (a role keepalived's notify switched is
//! kept).
//!
//! The file: `XVS-HANDOVER` (12 bytes), a format byte (2), the unix time in milliseconds it
//! was written (be64), the ownership seed (be64), the daemons as JSON (be32 length, bytes),
//! then records of (worker be16, length be32, datagram). Timeouts are what each connection
//! had left when written; the reader takes the time since off.

use super::message::{decode, Encoder, MAX_DATAGRAM};
use crate::model::{DaemonSpec, SyncConn};
use std::path::Path;

const MAGIC: &[u8; 12] = b"XVS-HANDOVER";
const FORMAT: u8 = 2;
const HEAD: usize = 12 + 1 + 8 + 8;

/// What one run hands the next.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handover {
    pub owner_seed: u64,
    pub daemons: Vec<DaemonSpec>,
    /// Each worker's connections and templates (index = worker).
    pub workers: Vec<Vec<SyncConn>>,
}

impl Handover {
    pub fn conns(&self) -> usize {
        self.workers.iter().map(Vec::len).sum()
    }
}

/// Why a handover file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a handover file of format {FORMAT} (no XVS-HANDOVER header, or format {format})")]
    Header { path: String, format: u8 },
    #[error("{path}: byte {at}: {why}")]
    Body { path: String, at: usize, why: String },
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Writes `h` to `path` (through a temporary file and a rename: a reader never sees half a
/// file). Returns the bytes written.
pub fn write(path: &Path, h: &Handover) -> Result<usize, HandoverError> {
    let io = |source| HandoverError::Io { path: path.display().to_string(), source };
    let mut out = Vec::with_capacity(HEAD + h.conns() * 48);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&unix_ms().to_be_bytes());
    out.extend_from_slice(&h.owner_seed.to_be_bytes());
    let daemons = serde_json::to_vec(&h.daemons).unwrap_or_default();
    out.extend_from_slice(&(daemons.len() as u32).to_be_bytes());
    out.extend_from_slice(&daemons);
    for (w, conns) in h.workers.iter().enumerate() {
        let mut e = Encoder::new(0, MAX_DATAGRAM);
        let flush = |e: &mut Encoder, out: &mut Vec<u8>| {
            if let Some(d) = e.take() {
                out.extend_from_slice(&(w as u16).to_be_bytes());
                out.extend_from_slice(&(d.len() as u32).to_be_bytes());
                out.extend_from_slice(&d);
            }
        };
        for c in conns {
            if !e.push(c) {
                flush(&mut e, &mut out);
                e.push(c);
            }
        }
        flush(&mut e, &mut out);
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &out).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(out.len())
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Reads a handover file: its contents, connections' timeouts less the time since it was
/// written (those run out are left out), and that time in milliseconds.
pub fn read(path: &Path) -> Result<(Handover, u64), HandoverError> {
    let p = || path.display().to_string();
    let b = std::fs::read(path).map_err(|source| HandoverError::Io { path: p(), source })?;
    if b.len() < HEAD + 4 || &b[..12] != MAGIC || b[12] != FORMAT {
        return Err(HandoverError::Header { path: p(), format: b.get(12).copied().unwrap_or(0) });
    }
    let age_ms = unix_ms().saturating_sub(be_u64(&b[13..21]));
    let age_s = (age_ms / 1000) as u32;
    let mut h = Handover { owner_seed: be_u64(&b[21..29]), ..Handover::default() };
    let mut at = HEAD;
    let bad = |at: usize, why: String| HandoverError::Body { path: p(), at, why };
    let jlen = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
    let json = b.get(at + 4..at + 4 + jlen).ok_or_else(|| bad(at, format!("{jlen} bytes of daemons announced")))?;
    h.daemons = serde_json::from_slice(json).map_err(|e| bad(at + 4, format!("the daemons: {e}")))?;
    at += 4 + jlen;
    while at < b.len() {
        let head = b.get(at..at + 6).ok_or_else(|| bad(at, "a record header cut short".into()))?;
        let w = u16::from_be_bytes([head[0], head[1]]) as usize;
        let len = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
        let d = b.get(at + 6..at + 6 + len).ok_or_else(|| bad(at, format!("{len} bytes announced, fewer left")))?;
        let got = decode(d).map_err(|e| bad(at + 6, e.to_string()))?;
        if w >= 4096 {
            return Err(bad(at, format!("worker {w}")));
        }
        if h.workers.len() <= w {
            h.workers.resize(w + 1, Vec::new());
        }
        for mut c in got.conns {
            if c.timeout_s == 0 {
                h.workers[w].push(c); // the receiver's own timeout
            } else if c.timeout_s > age_s {
                c.timeout_s -= age_s;
                h.workers[w].push(c);
            }
        }
        at += 6 + len;
    }
    Ok((h, age_ms))
}

/// The ownership seed of the handover file at `path`, if there is a good one (read before the
/// first snapshot is built).
pub fn peek_seed(path: &Path) -> Option<u64> {
    let b = std::fs::read(path).ok()?;
    (b.len() >= HEAD && &b[..12] == MAGIC && b[12] == FORMAT).then(|| be_u64(&b[21..29]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_round_trips_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handover");
        let conn = |i: u32| SyncConn {
            proto: 6,
            state: 1,
            caddr: i,
            cport: i as u16,
            vaddr: 7,
            vport: 80,
            daddr: 9,
            dport: 8080,
            timeout_s: 900,
            ..Default::default()
        };
        let h = Handover {
            owner_seed: 0x5eed,
            daemons: vec![DaemonSpec { syncid: 7, ..DaemonSpec::new(crate::model::SyncRole::Master, "xvs-r") }],
            workers: vec![(0..5000).map(conn).collect(), Vec::new(), (5000..5003).map(conn).collect()],
        };
        write(&path, &h).unwrap();
        assert_eq!(peek_seed(&path), Some(0x5eed));
        let (back, age) = read(&path).unwrap();
        assert!(age < 5000);
        assert_eq!(back, h, "5000 connections over several datagrams, per worker, seed and daemons");
        std::fs::write(&path, b"not a handover file at all").unwrap();
        assert!(matches!(read(&path), Err(HandoverError::Header { .. })));
        assert_eq!(peek_seed(&path), None);
        write(&path, &Handover { workers: vec![(0..10).map(conn).collect()], ..h.clone() }).unwrap();
        let mut b = std::fs::read(&path).unwrap();
        b.truncate(b.len() - 3);
        std::fs::write(&path, &b).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("bytes announced, fewer left"), "{e}");
    }
}
