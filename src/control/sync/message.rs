//! IPVS's sync message, protocol version 1 (`net/netfilter/ipvs/ip_vs_sync.c`): an 8-byte
//! header, then connections of 36 bytes (IPv4) or 72 (IPv6) each followed by options and
//! zero-padded to 4 bytes. Everything big-endian.
//!
//! The decoder takes what the kernel's `ip_vs_process_message` and `ip_vs_proc_sync_conn`
//! take and refuses what they refuse: a datagram whose `size` is not its length, a version
//! other than 1, a connection running past the datagram, a type with bits other than IPv6's,
//! a connection version other than 0, an option of length 0 or past its connection, a
//! sequence option that is not 24 bytes, a persistence engine name over 16, an option
//! repeated. A connection with an unknown mandatory option (its later options unread), a
//! persistence engine (xvs has none), an IPv6 address (xvs forwards IPv4), a protocol other
//! than TCP and UDP, or a TCP state past IPVS's last is skipped, counted, and the rest of the
//! datagram kept, as the kernel does; bytes after the counted connections are ignored, as
//! there. Stricter than the kernel: a connection length below its addresses' (the kernel
//! reads the fixed part regardless) drops the datagram.
//!
//! xvs's own option [`OPT_XVS_FULLNAT`] carries FULLNAT's local address and port; its type has
//! the "optional" bit (0x40), so a kernel backup skips it.

use crate::model::{sync_flags, SyncConn};

/// The multicast group and port IPVS's sync daemons use.
pub const MCAST_GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 81);
pub const MCAST_PORT: u16 = 8848;
pub const HEADER_LEN: usize = 8;
/// An IPv4 connection without options.
pub const CONN_V4_LEN: usize = 36;
/// An IPv6 connection without options.
pub const CONN_V6_LEN: usize = 72;
/// The version byte of protocol version 1.
pub const SYNC_PROTO_VER: u8 = 1;
/// Option types (`IPVS_OPT_*`) and the optional bit (`IPVS_OPT_F_PARAM`).
pub const OPT_SEQ_DATA: u8 = 1;
pub const OPT_PE_DATA: u8 = 2;
pub const OPT_PE_NAME: u8 = 3;
pub const OPT_F_PARAM: u8 = 0x40;
/// xvs's FULLNAT option: local address (4 bytes) and port (2). The kernel masks the optional
/// bit before it matches a type, so the type must not be 1, 2 or 3 once masked.
pub const OPT_XVS_FULLNAT: u8 = OPT_F_PARAM | 0x20;
const FULLNAT_OPT_LEN: usize = 2 + 6;
/// The length of the sequence option's data (two `ip_vs_seq`: init_seq, delta, previous_delta).
pub const SEQ_DATA_LEN: usize = 24;
/// The longest persistence engine name (`IP_VS_PENAME_MAXLEN`).
pub const PE_NAME_MAX: usize = 16;
/// The last TCP state number IPVS defines (`IP_VS_TCP_S_LAST` - 1).
pub const TCP_STATE_MAX: u16 = 10;
/// Most connections one header counts.
pub const MAX_CONNS: usize = 255;
/// Largest datagram length the 16-bit size field can state.
pub const MAX_DATAGRAM: usize = 65_535;

/// Why a datagram was dropped whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("datagram of {0} bytes is shorter than the 8-byte header")]
    Short(usize),
    #[error("header says {said} bytes, datagram has {got}")]
    SizeMismatch { said: usize, got: usize },
    #[error("protocol version {0} (xvs speaks version 1 only)")]
    Version(u8),
    #[error("connection {index} runs past the datagram")]
    Truncated { index: usize },
    #[error("connection {index}: unknown type bits {bits:#04x}")]
    BadType { index: usize, bits: u8 },
    #[error("connection {index}: connection version {version} (0 expected)")]
    ConnVersion { index: usize, version: u8 },
    #[error("connection {index}: length {len} shorter than its addresses")]
    ConnLength { index: usize, len: usize },
    #[error("connection {index}: option of length 0 or past the connection")]
    BadOption { index: usize },
}

/// Why one connection of a good datagram was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skipped {
    Ipv6,
    /// An option type without the optional bit that xvs does not know.
    MandatoryOption(u8),
    /// A persistence engine (IPVS's SIP engine): xvs has none.
    PersistenceEngine,
    Protocol(u8),
    State(u16),
}

/// A decoded datagram.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub syncid: u8,
    pub conns: Vec<SyncConn>,
    pub skipped: Vec<Skipped>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes one datagram. Bounds are checked before every read; nothing here panics.
pub fn decode(d: &[u8]) -> Result<Decoded, SyncError> {
    if d.len() < HEADER_LEN {
        return Err(SyncError::Short(d.len()));
    }
    // Version 0's header puts nr_conns first; version 1's first byte is 0 and the version
    // and spare follow (the kernel tells them apart by exactly these bytes).
    if d[0] != 0 || d[5] != SYNC_PROTO_VER || be16(d, 6) != 0 {
        return Err(SyncError::Version(if d[0] != 0 { 0 } else { d[5] }));
    }
    let size = be16(d, 2) as usize;
    if size != d.len() {
        return Err(SyncError::SizeMismatch { said: size, got: d.len() });
    }
    let nr = d[4] as usize;
    let mut out = Decoded { syncid: d[1], conns: Vec::with_capacity(nr), skipped: Vec::new() };
    let mut p = HEADER_LEN;
    for index in 0..nr {
        if p + 4 > d.len() {
            return Err(SyncError::Truncated { index });
        }
        let typ = d[p];
        if typ & !1 != 0 {
            return Err(SyncError::BadType { index, bits: typ });
        }
        let ver_size = be16(d, p + 2);
        let version = (ver_size >> 12) as u8;
        if version != 0 {
            return Err(SyncError::ConnVersion { index, version });
        }
        let len = (ver_size & 0x0fff) as usize;
        let end = p + len;
        if end > d.len() {
            return Err(SyncError::Truncated { index });
        }
        let v6 = typ & 1 != 0;
        let base = if v6 { CONN_V6_LEN } else { CONN_V4_LEN };
        if len < base {
            return Err(SyncError::ConnLength { index, len });
        }
        let c = &d[p..end];
        let mut skip = None;
        let mut conn = SyncConn {
            proto: c[1],
            flags: be32(c, 4),
            state: be16(c, 8),
            cport: be16(c, 10),
            vport: be16(c, 12),
            dport: be16(c, 14),
            fwmark: be32(c, 16),
            timeout_s: be32(c, 20),
            ..SyncConn::default()
        };
        if v6 {
            skip = Some(Skipped::Ipv6);
        } else {
            conn.caddr = be32(c, 24);
            conn.vaddr = be32(c, 28);
            conn.daddr = be32(c, 32);
        }
        let mut o = base;
        // Options seen (`ip_vs_proc_sync_conn`'s opt_flags): a repeated one drops the datagram.
        let (mut seen_seq, mut seen_pe_data, mut seen_pe_name) = (false, false, false);
        while o < len {
            if o + 2 > len {
                return Err(SyncError::BadOption { index });
            }
            let (ptype, plen) = (c[o], c[o + 1] as usize);
            o += 2;
            if plen == 0 || o + plen > len {
                return Err(SyncError::BadOption { index });
            }
            let data = &c[o..o + plen];
            let seen = match ptype & !OPT_F_PARAM {
                // xvs keeps no sequence adjustments: checked as the kernel checks, ignored.
                OPT_SEQ_DATA if plen != SEQ_DATA_LEN => return Err(SyncError::BadOption { index }),
                OPT_SEQ_DATA => Some(&mut seen_seq),
                OPT_PE_NAME if plen > PE_NAME_MAX => return Err(SyncError::BadOption { index }),
                OPT_PE_DATA => Some(&mut seen_pe_data),
                OPT_PE_NAME => Some(&mut seen_pe_name),
                _ => None,
            };
            if let Some(seen) = seen {
                if *seen {
                    return Err(SyncError::BadOption { index });
                }
                *seen = true;
            }
            match ptype & !OPT_F_PARAM {
                OPT_SEQ_DATA => {}
                OPT_PE_DATA | OPT_PE_NAME => skip = skip.or(Some(Skipped::PersistenceEngine)),
                _ if ptype == OPT_XVS_FULLNAT && plen == 6 => {
                    conn.laddr = be32(data, 0);
                    conn.lport = be16(data, 4);
                }
                _ if ptype & OPT_F_PARAM != 0 => {}
                t => {
                    // The kernel stops reading this connection here and skips it.
                    skip = skip.or(Some(Skipped::MandatoryOption(t)));
                    break;
                }
            }
            o += plen;
        }
        if skip.is_none() {
            let template = conn.flags & sync_flags::TEMPLATE != 0;
            skip = match conn.proto {
                6 if !template && conn.state > TCP_STATE_MAX => Some(Skipped::State(conn.state)),
                6 | 17 => None,
                other => Some(Skipped::Protocol(other)),
            };
        }
        match skip {
            Some(s) => out.skipped.push(s),
            None => out.conns.push(conn),
        }
        // The pad to 4 bytes follows the connection (it may be missing after the last).
        p = (end + 3) & !3;
    }
    // Bytes after the connections the header counts are ignored, as the kernel ignores them.
    Ok(out)
}

/// The bytes connection `c` takes in a datagram, pad included.
pub fn encoded_len(c: &SyncConn) -> usize {
    let len = CONN_V4_LEN + if c.lport != 0 { FULLNAT_OPT_LEN } else { 0 };
    (len + 3) & !3
}

/// Builds datagrams of at most `max_len` bytes (the interface's MTU less 28, as the kernel).
pub struct Encoder {
    buf: Vec<u8>,
    max_len: usize,
    syncid: u8,
}

impl Encoder {
    pub fn new(syncid: u8, max_len: usize) -> Encoder {
        let max_len = max_len.clamp(HEADER_LEN + CONN_V4_LEN + FULLNAT_OPT_LEN + 4, MAX_DATAGRAM);
        let mut e = Encoder { buf: Vec::with_capacity(max_len), max_len, syncid };
        e.reset();
        e
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0, self.syncid, 0, HEADER_LEN as u8, 0, SYNC_PROTO_VER, 0, 0]);
    }

    /// Connections in the datagram being built.
    pub fn len(&self) -> usize {
        self.buf[4] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `c` still fits in the datagram being built.
    pub fn fits(&self, c: &SyncConn) -> bool {
        self.len() < MAX_CONNS && self.buf.len() + encoded_len(c) <= self.max_len
    }

    /// Appends `c`; false (and nothing written) when it does not fit: take the datagram first.
    pub fn push(&mut self, c: &SyncConn) -> bool {
        if !self.fits(c) {
            return false;
        }
        let start = self.buf.len();
        let len = CONN_V4_LEN + if c.lport != 0 { FULLNAT_OPT_LEN } else { 0 };
        let b = &mut self.buf;
        b.push(0);
        b.push(c.proto);
        b.extend_from_slice(&(len as u16).to_be_bytes());
        // HASHED is the sender's own business (the kernel clears it too).
        b.extend_from_slice(&(c.flags & !sync_flags::HASHED).to_be_bytes());
        b.extend_from_slice(&c.state.to_be_bytes());
        b.extend_from_slice(&c.cport.to_be_bytes());
        b.extend_from_slice(&c.vport.to_be_bytes());
        b.extend_from_slice(&c.dport.to_be_bytes());
        b.extend_from_slice(&c.fwmark.to_be_bytes());
        b.extend_from_slice(&c.timeout_s.to_be_bytes());
        b.extend_from_slice(&c.caddr.to_be_bytes());
        b.extend_from_slice(&c.vaddr.to_be_bytes());
        b.extend_from_slice(&c.daddr.to_be_bytes());
        if c.lport != 0 {
            b.extend_from_slice(&[OPT_XVS_FULLNAT, 6]);
            b.extend_from_slice(&c.laddr.to_be_bytes());
            b.extend_from_slice(&c.lport.to_be_bytes());
        }
        while !(b.len() - start).is_multiple_of(4) {
            b.push(0);
        }
        self.buf[4] += 1;
        let size = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&size.to_be_bytes());
        true
    }

    /// The datagram built so far (None when it holds no connection); the encoder starts a
    /// new one.
    pub fn take(&mut self) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        let d = self.buf.clone();
        self.reset();
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sync_flags::*;

    fn conn(i: u32) -> SyncConn {
        SyncConn {
            proto: 6,
            flags: DROUTE,
            state: 1,
            caddr: 0xC612_0002 + i,
            cport: 40000 + i as u16,
            vaddr: 0xC612_0064,
            vport: 80,
            daddr: 0xC613_000B,
            dport: 8080,
            fwmark: 0,
            timeout_s: 900,
            laddr: 0,
            lport: 0,
        }
    }

    #[test]
    fn a_connection_is_laid_out_as_the_kernel_struct() {
        let mut e = Encoder::new(7, 1472);
        assert!(e.push(&conn(0)));
        let d = e.take().unwrap();
        assert_eq!(d.len(), 8 + 36);
        // Header: reserved 0, syncid, size, nr_conns 1, version 1, spare 0.
        assert_eq!(&d[..8], &[0, 7, 0, 44, 1, 1, 0, 0]);
        let c = &d[8..];
        assert_eq!(c[0], 0, "IPv4");
        assert_eq!(c[1], 6);
        assert_eq!(&c[2..4], &[0, 36], "ver_size: version 0, 36 bytes");
        assert_eq!(&c[4..8], &[0, 0, 0, 3], "flags: DROUTE");
        assert_eq!(&c[8..10], &[0, 1], "ESTABLISHED");
        assert_eq!(&c[10..12], &40000u16.to_be_bytes());
        assert_eq!(&c[12..14], &80u16.to_be_bytes());
        assert_eq!(&c[14..16], &8080u16.to_be_bytes());
        assert_eq!(&c[16..20], &[0; 4], "fwmark");
        assert_eq!(&c[20..24], &900u32.to_be_bytes());
        assert_eq!(&c[24..28], &[198, 18, 0, 2]);
        assert_eq!(&c[28..32], &[198, 18, 0, 100]);
        assert_eq!(&c[32..36], &[198, 19, 0, 11]);
        assert_eq!(decode(&d).unwrap().conns, vec![conn(0)]);
    }

    #[test]
    fn the_fullnat_option_is_optional_to_a_kernel_and_padded() {
        let mut c = conn(1);
        c.flags = MASQ;
        c.laddr = 0xC613_0001;
        c.lport = 10001;
        let mut e = Encoder::new(0, 1472);
        e.push(&c);
        let d = e.take().unwrap();
        // 36 + 8 option bytes = 44, already a multiple of 4.
        assert_eq!(d.len(), 8 + 44);
        assert_eq!(&d[8 + 2..8 + 4], &[0, 44]);
        assert_eq!(d[8 + 36], OPT_XVS_FULLNAT);
        assert_ne!(OPT_XVS_FULLNAT & OPT_F_PARAM, 0);
        assert!(![OPT_SEQ_DATA, OPT_PE_DATA, OPT_PE_NAME].contains(&(OPT_XVS_FULLNAT & !OPT_F_PARAM)));
        assert_eq!(decode(&d).unwrap().conns, vec![c]);
    }

    #[test]
    fn datagrams_stay_within_the_length_and_255_connections() {
        let mut e = Encoder::new(1, 1472);
        let mut n = 0;
        while e.push(&conn(n)) {
            n += 1;
        }
        assert_eq!(n as usize, (1472 - 8) / 36);
        let d = e.take().unwrap();
        assert!(d.len() <= 1472);
        assert_eq!(decode(&d).unwrap().conns.len(), n as usize);
        let mut big = Encoder::new(1, 65_535);
        let mut m = 0;
        while big.push(&conn(m)) {
            m += 1;
        }
        assert_eq!(m, 255);
        assert!(e.take().is_none(), "the encoder starts empty again");
    }

    #[test]
    fn truncated_oversized_and_lying_datagrams_are_refused() {
        let mut e = Encoder::new(0, 1472);
        e.push(&conn(0));
        e.push(&conn(1));
        let d = e.take().unwrap();
        for cut in 0..d.len() {
            assert!(decode(&d[..cut]).is_err(), "{cut} bytes of {}", d.len());
        }
        let mut longer = d.clone();
        longer.extend_from_slice(&[0; 4]);
        assert!(matches!(decode(&longer), Err(SyncError::SizeMismatch { .. })));
        // The header's size agrees, with bytes after the counted connections: ignored, as the
        // kernel ignores them.
        let n = longer.len() as u16;
        longer[2..4].copy_from_slice(&n.to_be_bytes());
        assert_eq!(decode(&longer).map(|g| g.conns.len()), Ok(2));
        // More connections than are there.
        let mut lie = d.clone();
        lie[4] = 3;
        assert!(matches!(decode(&lie), Err(SyncError::Truncated { index: 2 })));
        // A connection length past the datagram, and one shorter than its addresses.
        let mut lie = d.clone();
        lie[8 + 3] = 200;
        assert!(matches!(decode(&lie), Err(SyncError::Truncated { index: 0 })));
        let mut lie = d.clone();
        lie[8 + 3] = 20;
        assert!(matches!(decode(&lie), Err(SyncError::ConnLength { index: 0, len: 20 })));
        // Version 0, version 2, a connection version, unknown type bits.
        let mut v = d.clone();
        v[0] = 2;
        assert_eq!(decode(&v), Err(SyncError::Version(0)));
        let mut v = d.clone();
        v[5] = 2;
        assert_eq!(decode(&v), Err(SyncError::Version(2)));
        let mut v = d.clone();
        v[8 + 2] = 0x10;
        assert!(matches!(decode(&v), Err(SyncError::ConnVersion { index: 0, version: 1 })));
        let mut v = d.clone();
        v[8] = 2;
        assert!(matches!(decode(&v), Err(SyncError::BadType { index: 0, bits: 2 })));
    }

    /// A datagram assembled by hand from the kernel's layout (not by the encoder).
    fn datagram(conns: &[Vec<u8>]) -> Vec<u8> {
        let mut d = vec![0, 9, 0, 0, conns.len() as u8, 1, 0, 0];
        for c in conns {
            d.extend_from_slice(c);
            while d.len() % 4 != 0 {
                d.push(0);
            }
        }
        let n = d.len() as u16;
        d[2..4].copy_from_slice(&n.to_be_bytes());
        d
    }

    fn raw(proto: u8, state: u16, options: &[u8]) -> Vec<u8> {
        let mut c = vec![0, proto];
        c.extend_from_slice(&((36 + options.len()) as u16).to_be_bytes());
        c.extend_from_slice(&0u32.to_be_bytes());
        c.extend_from_slice(&state.to_be_bytes());
        c.extend_from_slice(&[0x9c, 0x40, 0, 80, 0x1f, 0x90]);
        c.extend_from_slice(&[0; 4]);
        c.extend_from_slice(&300u32.to_be_bytes());
        c.extend_from_slice(&[198, 18, 0, 2, 198, 18, 0, 100, 198, 19, 0, 12]);
        c.extend_from_slice(options);
        c
    }

    #[test]
    fn bad_connections_are_skipped_and_the_rest_kept() {
        let seq = {
            let mut o = vec![OPT_SEQ_DATA, 24];
            o.extend_from_slice(&[0; 24]);
            o
        };
        let d = datagram(&[
            raw(6, 1, &seq),             // kept: sequence data is ignored
            raw(6, 1, &[0x05, 2, 0, 0]), // unknown mandatory option
            raw(6, 1, &[0x45, 2, 0, 0]), // unknown optional option: kept
            raw(6, 1, &[OPT_PE_NAME, 3, b's', b'i', b'p']),
            raw(132, 1, &[]), // SCTP
            raw(6, 11, &[]),  // no such TCP state
            raw(17, 0, &[]),  // kept
        ]);
        let got = decode(&d).unwrap();
        assert_eq!(got.syncid, 9);
        assert_eq!(got.conns.len(), 3);
        assert_eq!(got.conns[0].cport, 40000);
        assert_eq!(got.conns[0].dport, 8080);
        assert_eq!(got.conns[0].daddr, 0xC613_000C);
        assert_eq!(got.conns[2].proto, 17);
        assert_eq!(
            got.skipped,
            vec![Skipped::MandatoryOption(5), Skipped::PersistenceEngine, Skipped::Protocol(132), Skipped::State(11)]
        );
        // A sequence option of another length, a repeated one, a long engine name: dropped.
        let short_seq = [OPT_SEQ_DATA, 4, 0, 0, 0, 0];
        assert!(matches!(decode(&datagram(&[raw(6, 1, &short_seq)])), Err(SyncError::BadOption { index: 0 })));
        let twice = [seq.clone(), seq.clone()].concat();
        assert!(matches!(decode(&datagram(&[raw(6, 1, &twice)])), Err(SyncError::BadOption { index: 0 })));
        let mut long_name = vec![OPT_PE_NAME, 17];
        long_name.extend_from_slice(&[b'x'; 17]);
        assert!(matches!(decode(&datagram(&[raw(6, 1, &long_name)])), Err(SyncError::BadOption { index: 0 })));
        // After an unknown mandatory option the connection's other options are not read (a
        // broken one behind it does not matter): that connection is skipped.
        let got = decode(&datagram(&[raw(6, 1, &[0x05, 2, 0, 0, 0x45, 0]), raw(17, 0, &[])])).unwrap();
        assert_eq!((got.conns.len(), got.skipped.clone()), (1, vec![Skipped::MandatoryOption(5)]));
        // An option of length 0, and one running past its connection, drop the datagram.
        assert!(matches!(decode(&datagram(&[raw(6, 1, &[0x45, 0])])), Err(SyncError::BadOption { index: 0 })));
        assert!(matches!(decode(&datagram(&[raw(6, 1, &[0x45, 9, 0, 0])])), Err(SyncError::BadOption { index: 0 })));
        // IPv6 connections are skipped whole.
        let mut v6 = vec![1, 6];
        v6.extend_from_slice(&72u16.to_be_bytes());
        v6.extend_from_slice(&[0; 68]);
        let got = decode(&datagram(&[v6, raw(6, 1, &[])])).unwrap();
        assert_eq!((got.conns.len(), got.skipped.clone()), (1, vec![Skipped::Ipv6]));
    }
}
