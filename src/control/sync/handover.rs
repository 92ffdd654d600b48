//! A hitless restart's handover: the connection table written by the stopping run and read
//! by the next, in IPVS's sync messages (the format a backup already installs).
//!
//! The file: `XVS-HANDOVER` (12 bytes), a format byte (1), the unix time in milliseconds
//! it was written (be64), then datagrams, each preceded by its length (be32). Timeouts are
//! what each connection had left when written; the reader takes the time since off.

use super::message::{decode, Encoder, MAX_DATAGRAM};
use crate::model::SyncConn;
use std::path::Path;

const MAGIC: &[u8; 12] = b"XVS-HANDOVER";
const FORMAT: u8 = 1;
const HEAD: usize = 12 + 1 + 8;

/// Why a handover file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a handover file (no XVS-HANDOVER header, or format {format})")]
    Header { path: String, format: u8 },
    #[error("{path}: datagram at byte {at}: {why}")]
    Datagram { path: String, at: usize, why: String },
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Writes `conns` to `path` (through a temporary file and a rename: a reader never sees
/// half a file). Returns the bytes written.
pub fn write(path: &Path, conns: &[SyncConn]) -> Result<usize, HandoverError> {
    let io = |source| HandoverError::Io { path: path.display().to_string(), source };
    let mut out = Vec::with_capacity(HEAD + conns.len() * 48);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&unix_ms().to_be_bytes());
    let mut e = Encoder::new(0, MAX_DATAGRAM);
    let flush = |e: &mut Encoder, out: &mut Vec<u8>| {
        if let Some(d) = e.take() {
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
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &out).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(out.len())
}

/// Reads a handover file: the connections, their timeouts less the time since it was
/// written (those run out are left out), and that time in milliseconds.
pub fn read(path: &Path) -> Result<(Vec<SyncConn>, u64), HandoverError> {
    let p = || path.display().to_string();
    let b = std::fs::read(path).map_err(|source| HandoverError::Io { path: p(), source })?;
    if b.len() < HEAD || &b[..12] != MAGIC || b[12] != FORMAT {
        return Err(HandoverError::Header { path: p(), format: b.get(12).copied().unwrap_or(0) });
    }
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&b[13..21]);
    let age_ms = unix_ms().saturating_sub(u64::from_be_bytes(ms));
    let age_s = (age_ms / 1000) as u32;
    let mut conns = Vec::new();
    let mut at = HEAD;
    while at < b.len() {
        let bad = |why: String| HandoverError::Datagram { path: p(), at, why };
        let len = b.get(at..at + 4).map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize);
        let Some(len) = len else { return Err(bad("a length cut short".into())) };
        let d = b.get(at + 4..at + 4 + len).ok_or_else(|| bad(format!("{len} bytes announced, fewer left")))?;
        let got = decode(d).map_err(|e| bad(e.to_string()))?;
        for mut c in got.conns {
            if c.timeout_s == 0 {
                conns.push(c); // the receiver's own timeout
            } else if c.timeout_s > age_s {
                c.timeout_s -= age_s;
                conns.push(c);
            }
        }
        at += 4 + len;
    }
    Ok((conns, age_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_round_trips_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handover");
        let conns: Vec<SyncConn> = (0..5000u32)
            .map(|i| SyncConn {
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
            })
            .collect();
        write(&path, &conns).unwrap();
        let (back, age) = read(&path).unwrap();
        assert!(age < 5000);
        assert_eq!(back, conns, "5000 connections over several datagrams");
        std::fs::write(&path, b"not a handover file at all").unwrap();
        assert!(matches!(read(&path), Err(HandoverError::Header { .. })));
        write(&path, &conns[..10]).unwrap();
        let mut b = std::fs::read(&path).unwrap();
        b.truncate(b.len() - 3);
        std::fs::write(&path, &b).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("datagram at byte 21"), "{e}");
    }
}
