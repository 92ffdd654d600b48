//! The fuzz targets' bodies, shared by `fuzz/fuzz_targets/*` (cargo-fuzz, libFuzzer) and
//! `tests/fuzz_corpus.rs` (which replays the corpus kept in `fuzz/corpus/` under `cargo
//! test`). Each takes the fuzzer's bytes and panics only on a real fault: a crash of the code
//! under test, or a broken invariant checked here.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use xvs::config::Config;
use xvs::conn::{ConnKey, ConnShard, Dir, NewConn, ShardConfig, TcpState, Timeouts, NONE, TICK_MS};
use xvs::dataplane::{Desc, FramePool, Pipeline, Verdict, BURST};
use xvs::model::FwdMode;

/// Reads the fuzzer's bytes as a stream of small decisions (0 once they run out).
pub struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    pub fn new(d: &'a [u8]) -> Self {
        Bytes(d)
    }
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub const CONFIG: &str = r#"{
  "director": {
    "interfaces": [
      {"name": "xvs-c", "mac": "02:00:00:00:00:01", "ip": "198.18.0.1"},
      {"name": "xvs-r", "mac": "02:00:00:00:01:01", "ip": "198.19.0.1"}],
    "local_addrs": ["198.19.0.1", "198.19.0.2"], "local_ports": [20000, 20063], "workers": WORKERS, "mtu": 1500},
  "neighbours": [
    {"ip": "198.18.0.2", "mac": "02:00:00:00:00:02", "interface": "xvs-c"},
    {"ip": "198.19.0.11", "mac": "02:00:00:00:01:11", "interface": "xvs-r", "vlan": 7},
    {"ip": "198.19.0.12", "mac": "02:00:00:00:01:12", "interface": "xvs-r"}],
  "connected": [{"subnet": "198.18.0.0/24", "interface": "xvs-c"}],
  "conn": {"max_per_worker": 64},
  "services": [
    {"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "wlc",
     "real_servers": [{"addr": "198.19.0.11", "port": 8080, "mode": "nat"}, {"addr": "198.19.0.12", "port": 8080, "mode": "nat"}]},
    {"proto": "tcp", "vip": "198.18.0.100", "port": 81, "scheduler": "rr", "toa": true,
     "real_servers": [{"addr": "198.19.0.11", "port": 8081, "mode": "fullnat"}, {"addr": "198.19.0.12", "port": 8081, "mode": "fullnat"}]},
    {"proto": "tcp", "vip": "198.18.0.100", "port": 82, "scheduler": "mh", "mh_table_size": 251,
     "real_servers": [{"addr": "198.19.0.11", "mode": "dr"}, {"addr": "198.19.0.12", "mode": "dr"}]},
    {"proto": "tcp", "vip": "198.18.0.100", "port": 83, "scheduler": "sh",
     "real_servers": [{"addr": "198.19.0.11", "mode": "tun"}, {"addr": "198.19.0.12", "mode": "tun"}]},
    {"proto": "udp", "vip": "198.18.0.100", "port": 53, "scheduler": "rr", "persistence_timeout": 60,
     "real_servers": [{"addr": "198.19.0.11", "port": 5353, "mode": "nat"}, {"addr": "198.19.0.12", "port": 5353, "mode": "fullnat"}]},
    {"proto": "udp", "vip": "198.18.0.101", "port": 0, "scheduler": "rr", "persistence_timeout": 30,
     "real_servers": [{"addr": "198.19.0.11", "mode": "tun"}]}]
}"#;

/// The pipelines the burst target runs against: one worker, or worker 0 of two (handoffs).
pub fn pipeline(workers: u8) -> Pipeline {
    let cfg = Config::parse(&CONFIG.replace("WORKERS", &workers.to_string())).expect("the fuzz config is valid");
    Pipeline::new(Arc::new(xvs::control::tables_for(&cfg, None).expect("tables")), 0)
}

const MACS: [[u8; 6]; 3] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 1, 0x11]];
const ADDRS: [[u8; 4]; 8] = [
    [198, 18, 0, 2],
    [198, 18, 0, 100],
    [198, 18, 0, 101],
    [198, 19, 0, 1],
    [198, 19, 0, 2],
    [198, 19, 0, 11],
    [198, 19, 0, 12],
    [198, 18, 0, 77],
];
const PORTS: [u16; 8] = [80, 81, 82, 83, 53, 8080, 20000, 5353];

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32).sum()
}
fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// An Ethernet + IPv4 frame with a TCP, UDP or ICMP payload chosen by the bytes, valid to the
/// checksum; then structural damage (bytes overwritten, cut short, grown), and the checksums
/// made right again or not, so both the checks and what lies behind them are reached.
fn frame(b: &mut Bytes) -> Vec<u8> {
    let kind = b.u8();
    let (src, dst) = (ADDRS[b.u8() as usize % 8], ADDRS[b.u8() as usize % 8]);
    let (sport, dport) = (PORTS[b.u8() as usize % 8].wrapping_add((b.u8() % 4) as u16), PORTS[b.u8() as usize % 8]);
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&MACS[b.u8() as usize % 3]);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 2]);
    let vlan = kind & 0x80 != 0;
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0, b.u8() % 9]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_at = f.len();
    let proto = match kind % 4 {
        0 | 1 => 6,
        2 => 17,
        _ => 1,
    };
    let payload_len = (b.u8() % 64) as usize;
    let l4: Vec<u8> = match proto {
        6 => {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&sport.to_be_bytes());
            t[2..4].copy_from_slice(&dport.to_be_bytes());
            t[4..8].copy_from_slice(&(b.u16() as u32).to_be_bytes());
            t[12] = 5 << 4;
            t[13] = [0x02, 0x10, 0x12, 0x11, 0x04, 0x18, 0x01, 0x00][b.u8() as usize % 8];
            t[14] = 0xff;
            if b.u8() & 1 == 1 {
                t.extend_from_slice(&[2, 4, 5, 0xb4]);
                t[12] = 6 << 4;
            }
            t.extend(std::iter::repeat_n(0x61, payload_len));
            t
        }
        17 => {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&sport.to_be_bytes());
            u[2..4].copy_from_slice(&dport.to_be_bytes());
            u[4..6].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
            u.extend(std::iter::repeat_n(0x62, payload_len));
            u
        }
        _ => {
            // An ICMP error quoting a TCP/UDP header (or an echo request).
            let t = b.u8();
            let mut i = vec![if t & 1 == 0 { 3 } else { 8 }, if t & 2 == 0 { 4 } else { 0 }, 0, 0, 0, 0, 0x05, 0xdc];
            let mut q = vec![0x45, 0, 0, 48, 0, 0, 0, 0, 64, if t & 4 == 0 { 6 } else { 17 }, 0, 0];
            q.extend_from_slice(&dst);
            q.extend_from_slice(&src);
            let c = !fold(sum16(&q));
            q[10..12].copy_from_slice(&c.to_be_bytes());
            q.extend_from_slice(&dport.to_be_bytes());
            q.extend_from_slice(&sport.to_be_bytes());
            q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0, 0, 0, 0, 0, 0]);
            i.extend_from_slice(&q);
            let c = !fold(sum16(&i));
            i[2..4].copy_from_slice(&c.to_be_bytes());
            i
        }
    };
    let total = 20 + l4.len();
    let frag = match b.u8() % 8 {
        0 => 0x2000u16,                // first fragment
        1 => 0x2000 | (b.u8() as u16), // a middle one
        2 => b.u8() as u16 + 1,        // the last
        3 => 0x4000,                   // DF
        _ => 0,
    };
    let ttl = [64u8, 1, 2, 0][b.u8() as usize % 4];
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0, 0, ttl, proto, 0, 0];
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = !fold(sum16(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let l4_at = f.len();
    f.extend_from_slice(&l4);
    if proto != 1 {
        fix_l4(&mut f, ip_at, l4_at, proto);
    }
    // Damage.
    for _ in 0..b.u8() % 4 {
        let at = b.u16() as usize % f.len();
        f[at] = b.u8();
    }
    match b.u8() % 8 {
        0 => f.truncate(b.u8() as usize % (f.len() + 1)),
        1 => f.extend(std::iter::repeat_n(0, b.u8() as usize)),
        _ => {}
    }
    if b.u8() & 1 == 1 && f.len() >= l4_at + 8 {
        // Checksums made right again over the damage: the parser's later checks are reached.
        let ihl = 20;
        f[ip_at + 10] = 0;
        f[ip_at + 11] = 0;
        let c = !fold(sum16(&f[ip_at..ip_at + ihl]));
        f[ip_at + 10..ip_at + 12].copy_from_slice(&c.to_be_bytes());
        if proto != 1 {
            fix_l4(&mut f, ip_at, l4_at, proto);
        }
    }
    f
}

fn fix_l4(f: &mut [u8], ip_at: usize, l4_at: usize, proto: u8) {
    let at = l4_at + if proto == 6 { 16 } else { 6 };
    if f.len() < at + 2 {
        return;
    }
    f[at] = 0;
    f[at + 1] = 0;
    let len = f.len() - l4_at;
    let mut s = sum16(&f[ip_at + 12..ip_at + 20]) + proto as u32 + len as u32;
    s += sum16(&f[l4_at..]);
    let mut c = !fold(s);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Bursts of structurally mutated frames through the whole pipeline (`process_burst`, the
/// path every frame takes), against two configurations, with the clock moving and
/// housekeeping in between. Checks: no panic; every frame gets a verdict that is counted
/// once; a frame sent has a right IPv4 header checksum and fits its buffer.
pub fn pipeline_burst(data: &[u8]) {
    let mut b = Bytes::new(data);
    let mut p = pipeline(1 + b.u8() % 2);
    let mut pool = FramePool::new(BURST as u32 * 2);
    let mut now = 1000u64;
    let mut rounds = 0;
    while !b.is_empty() && rounds < 64 {
        rounds += 1;
        let n = 1 + b.u8() as usize % BURST;
        let mut descs = [Desc::default(); BURST];
        let mut loaded = 0;
        for d in descs.iter_mut().take(n) {
            match pool.load(&frame(&mut b)) {
                Some(x) => {
                    *d = x;
                    loaded += 1;
                }
                None => break,
            }
        }
        let before = p.stats.clone();
        let mut out = [Verdict::Drop(xvs::dataplane::DropReason::EthTruncated); BURST];
        let rx_port = b.u8() % 2;
        p.process_burst(&mut pool, &mut descs[..loaded], rx_port, now, &mut out[..loaded]);
        let s = &p.stats;
        assert_eq!(s.rx_frames - before.rx_frames, loaded as u64, "every frame counted as received");
        let decided = (s.tx_frames - before.tx_frames)
            + (s.total_drops() - before.total_drops())
            + (s.total_passes() - before.total_passes())
            + (s.handoff_out - before.handoff_out);
        assert_eq!(decided, loaded as u64, "every frame has one verdict, counted once");
        for (d, v) in descs.iter().zip(out.iter()).take(loaded) {
            if let Verdict::Tx(_) = v {
                let f = pool.bytes(d);
                let ip_at = if f.len() > 14 && f[12..14] == [0x81, 0] { 18 } else { 14 };
                assert!(f.len() >= ip_at + 20, "a sent frame holds an IPv4 header");
                let ihl = (f[ip_at] & 15) as usize * 4;
                assert!(f.len() >= ip_at + ihl);
                assert_eq!(fold(sum16(&f[ip_at..ip_at + ihl])), 0xffff, "a sent frame's IPv4 checksum is right");
            }
            pool.free(d.idx);
        }
        // Up to 1.8 s a round: timeouts are reached over a run, and each expiry pass stays
        // short (the wheel turns 10 ms a tick).
        now += b.u8() as u64 * 7;
        if b.u8() & 3 == 0 {
            p.housekeeping(now, b.u8() as usize);
        }
    }
}

/// A model of one connection.
struct M {
    expires_tick: u64,
    state: TcpState,
    dest: u16,
}

/// A sequence of connection-table operations (create, packets in both directions, time
/// passing with bounded and full expiry passes) against a model: the live connections, their
/// states and every real server's active/inactive counts agree after each step.
pub fn conn_table(data: &[u8]) {
    let mut b = Bytes::new(data);
    let mut t = Timeouts::default();
    t.secs[TcpState::SynRecv as usize] = 3;
    t.secs[TcpState::Close as usize] = 1;
    t.secs[TcpState::Established as usize] = 700;
    let cap = 8 + b.u8() as u32 % 40;
    let mut s = ConnShard::new(&ShardConfig {
        capacity: cap,
        timeouts: t,
        lport_range: (5000, 5019),
        ..ShardConfig::default()
    });
    s.set_service(0, &[0, 1, 2], &[xvs::conn::SlotSpec { weight: 1, ..Default::default() }; 3]);
    s.start_clock(0);
    s.set_local_addrs(&[0xC613_0001, 0xC613_0002]);
    let mut now: u64 = 0;
    let mut model: HashMap<u8, M> = HashMap::new();
    let modes = [FwdMode::Nat, FwdMode::FullNat, FwdMode::Dr, FwdMode::Tun];
    let tick = |ms: u64| ms / TICK_MS;
    let key = |flow: u8| ConnKey {
        saddr: 0xC612_0000 + flow as u32 % 64,
        daddr: 0xC612_0064,
        sport: 1000 + flow as u16,
        dport: 80,
        proto: 6,
    };
    let mut steps = 0;
    while !b.is_empty() && steps < 500 {
        steps += 1;
        match b.u8() % 3 {
            0 => {
                let (flow, mode, dest) = (b.u8() % 64, b.u8() as usize % 4, b.u8() as u16 % 3);
                let k = key(flow);
                if let Some(i) = s.lookup_in(&k, s.hash(&k)) {
                    if s.is_expired(i, now) {
                        s.remove(i);
                        model.remove(&flow);
                    } else {
                        continue;
                    }
                }
                let n = NewConn {
                    key: k,
                    daddr: 0xC613_0000 + dest as u32,
                    dport: 8080,
                    mode: modes[mode],
                    laddr: 0xC613_0001,
                    svc: 0,
                    dest,
                    template: NONE,
                };
                let evicted = s.stats.evicted_embryonic;
                match s.create(&n, now) {
                    Ok(i) => {
                        if s.stats.evicted_embryonic > evicted {
                            // The model forgets the one evicted: the one no longer found.
                            model.retain(|f, _| s.lookup_in(&key(*f), s.hash(&key(*f))).is_some() || *f == flow);
                        }
                        let dir = if mode < 2 { Dir::Input } else { Dir::InputOnly };
                        s.on_packet(i, dir, Some(xvs::wire::tcp::SYN), now);
                        model.insert(flow, M { expires_tick: tick(now) + 300, state: TcpState::SynRecv, dest });
                    }
                    Err(_) => assert!(
                        s.len() == cap || modes[mode] == FwdMode::FullNat,
                        "refused with room: {} of {cap}",
                        s.len()
                    ),
                }
            }
            1 => {
                let (flow, flags, reply) =
                    (b.u8() % 64, [0x02, 0x10, 0x11, 0x04, 0][b.u8() as usize % 5], b.u8() & 1 == 1);
                let k = key(flow);
                let Some(i) = s.lookup_in(&k, s.hash(&k)) else { continue };
                if s.is_expired(i, now) {
                    s.remove(i);
                    model.remove(&flow);
                    continue;
                }
                let m = model.get_mut(&flow).expect("the model knows every live connection");
                let c = *s.conn(i);
                let dir = match (c.mode(), reply) {
                    (FwdMode::Nat | FwdMode::FullNat, false) => Dir::Input,
                    (FwdMode::Nat | FwdMode::FullNat, true) => Dir::Output,
                    _ => Dir::InputOnly,
                };
                let st = s.on_packet(i, dir, Some(flags), now);
                m.state = xvs::conn::next_state(m.state, dir, flags);
                assert_eq!(st, m.state as u8);
                let mut secs = t.secs[m.state as usize] as u64;
                if m.state == TcpState::TimeWait && c.mode() == FwdMode::FullNat {
                    secs = secs.max(xvs::conn::lports::SERVER_TIME_WAIT_SECS as u64);
                }
                m.expires_tick = tick(now) + secs * 100;
            }
            _ => {
                // Up to 5 s a step (510 ticks of the wheel to walk): SYN_RECV and CLOSE time out
                // within a step or two, ESTABLISHED over a long run.
                now += b.u8() as u64 * 20;
                s.expire(now, 1 + b.u8() as usize);
                s.expire(now, usize::MAX);
                model.retain(|_, m| m.expires_tick > tick(now));
                assert_eq!(s.len() as usize, model.len(), "live connections at {now} ms");
            }
        }
        let (mut act, mut inact) = ([0u32; 3], [0u32; 3]);
        for m in model.values() {
            if m.state == TcpState::Established {
                act[m.dest as usize] += 1
            } else {
                inact[m.dest as usize] += 1
            }
        }
        for d in 0..3 {
            assert_eq!(s.loads(0)[d].active, act[d], "active of {d}");
            assert_eq!(s.loads(0)[d].inactive, inact[d], "inactive of {d}");
        }
    }
}

/// The control protocol: any bytes as a request line; one that parses is carried out as the
/// director does for what needs no running workers (an ipvsadm command parsed and applied to
/// a table, a restore), and a reply or request survives a JSON round trip.
pub fn control_request(data: &[u8]) {
    use xvs::control::protocol::{Reply, Request};
    let Ok(req) = serde_json::from_slice::<Request>(data) else { return };
    let again: Request = serde_json::from_str(&serde_json::to_string(&req).expect("serialise")).expect("round trip");
    assert_eq!(format!("{req:?}"), format!("{again:?}"));
    let mut services = Vec::new();
    match &req {
        Request::Ipvsadm { args } => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Ok(cmd) = xvs::ipvsadm::parse_command(&args) {
                let _ = xvs::ipvsadm::apply(&mut services, &cmd);
            }
        }
        Request::Restore { text } => {
            let _ = xvs::ipvsadm::services_from_rules(text);
        }
        _ => {}
    }
    let r = Reply::Failed { code: 2, message: String::from_utf8_lossy(data).into_owned() };
    let back: Reply = serde_json::from_str(&serde_json::to_string(&r).expect("serialise")).expect("round trip");
    assert_eq!(r, back);
}

/// ipvsadm command lines (NUL-separated words): a parsed command applied to a table built
/// by earlier lines; the table saved (`-S`) and read back is the same table. (The same rules:
/// their order may differ, since ipvsadm's address comparison, which `-S` follows, is not a
/// total order and its sort then depends on the order it was given; the fuzzer found it.)
pub fn ipvsadm_lines(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut services = Vec::new();
    for line in text.split('\n').take(64) {
        let args: Vec<&str> = line.split(['\0', ' ']).filter(|a| !a.is_empty()).collect();
        if let Ok(cmd) = xvs::ipvsadm::parse_command(&args) {
            let _ = xvs::ipvsadm::apply(&mut services, &cmd);
        }
    }
    let saved = xvs::ipvsadm::save_rules(&services);
    let back = xvs::ipvsadm::services_from_rules(&saved).unwrap_or_else(|e| panic!("{e}: {saved}"));
    let lines = |t: &str| {
        let mut v: Vec<String> = t.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(lines(&xvs::ipvsadm::save_rules(&back)), lines(&saved), "save, restore, save");
}

/// config.json: anything parses to a config or an error naming a field; a config that
/// parses compiles to tables.
pub fn config_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text) {
        Ok(cfg) => {
            let _ = xvs::control::tables_for(&cfg, None);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// keepalived.conf import: anything converts or is refused; what converts is a config.json
/// that parses, or whose error names a field.
pub fn keepalived(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(imported) = xvs::config::keepalived::convert(&text, &["eth0".into(), "eth1".into()]) {
        if let Err(e) = Config::parse(&imported.json) {
            assert!(!e.to_string().is_empty());
        }
    }
}

/// A target's body.
pub type Target = fn(&[u8]);

/// A sync backup's input from the network: any bytes decode or are refused without a
/// panic; what decodes encodes back to the same connections; and installing them into a
/// backup's pipeline, then running their next packets, never breaks it. Inputs with bit 0 of
/// their first byte set get a well-formed header, so the connections behind it are reached.
pub fn sync_decode(data: &[u8]) {
    use xvs::control::sync::message::{decode, Encoder};
    use xvs::dataplane::pipeline::SyncLink;
    let mut d = data.to_vec();
    if d.len() >= 8 && d[0] & 1 == 1 {
        let n = d.len().min(65_535) as u16;
        d.truncate(n as usize);
        d[0] = 0;
        d[2..4].copy_from_slice(&n.to_be_bytes());
        d[5] = 1;
        d[6] = 0;
        d[7] = 0;
    }
    let Ok(got) = decode(&d) else { return };
    assert!(got.conns.len() + got.skipped.len() <= 255);
    let norm = |c: &xvs::model::SyncConn| {
        let mut c = *c;
        c.flags &= !xvs::model::sync_flags::HASHED;
        if c.lport == 0 {
            c.laddr = 0;
        }
        c
    };
    let mut e = Encoder::new(got.syncid, 65_535);
    for c in &got.conns {
        assert!(e.push(c), "255 connections of at most 44 bytes fit a datagram");
    }
    if let Some(again) = e.take() {
        let back = decode(&again).expect("xvs's own encoding decodes");
        let want: Vec<_> = got.conns.iter().map(norm).collect();
        assert_eq!(back.conns, want, "decode(encode(x)) == x");
    }
    // One worker, or worker 0 of two (messages it does not own are refused as NotMine).
    let mut p = pipeline(1 + (data.len() % 2) as u8);
    let link = SyncLink::default();
    for (i, c) in got.conns.iter().enumerate() {
        p.install_synced(c, &link, i as u64);
    }
    assert!(p.shard.len() <= p.shard.capacity());
    // The connections' next packets: a client segment for each (whatever was installed).
    for c in got.conns.iter().take(BURST) {
        let f = client_segment(c);
        let mut buf = vec![0u8; 2048];
        let at = xvs::dataplane::HEADROOM;
        buf[at..at + f.len()].copy_from_slice(&f);
        let mut frame = xvs::dataplane::Frame::new(&mut buf, at, f.len());
        let _ = p.process(&mut frame, 0, 100);
    }
}

/// A TCP ACK (or UDP datagram) from a synced connection's client to its VIP, checksums right.
fn client_segment(c: &xvs::model::SyncConn) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&MACS[0]);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&[0x08, 0x00]);
    let l4_len = if c.proto == 6 { 20 } else { 8 };
    let total = (20 + l4_len) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, c.proto, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&c.caddr.to_be_bytes());
    ip.extend_from_slice(&c.vaddr.to_be_bytes());
    let ck = !fold(sum16(&ip));
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    let mut l4 = vec![0u8; l4_len];
    l4[0..2].copy_from_slice(&c.cport.to_be_bytes());
    l4[2..4].copy_from_slice(&c.vport.to_be_bytes());
    if c.proto == 6 {
        l4[12] = 0x50;
        l4[13] = 0x10;
        l4[14] = 0xff;
    } else {
        l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    }
    let mut pseudo = Vec::with_capacity(12 + l4.len());
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, c.proto]);
    pseudo.extend_from_slice(&(l4_len as u16).to_be_bytes());
    pseudo.extend_from_slice(&l4);
    let ck = !fold(sum16(&pseudo));
    let at = if c.proto == 6 { 16 } else { 6 };
    l4[at..at + 2].copy_from_slice(&ck.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

/// The targets by name (what `tools/fuzz` and the corpus test walk).
pub const TARGETS: &[(&str, Target)] = &[
    ("pipeline_burst", pipeline_burst),
    ("conn_table", conn_table),
    ("control_request", control_request),
    ("ipvsadm_lines", ipvsadm_lines),
    ("config_json", config_json),
    ("keepalived", keepalived),
    ("sync_decode", sync_decode),
];
