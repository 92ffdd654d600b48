//! `xvs-pktgen`: xvs's load generator and sink, on xvs's own AF_XDP port.
//!
//! - `send`: UDP of any size (64-1518 bytes on the wire, or IMIX), TCP SYN floods from
//!   address and port ranges (in order or random), established TCP flows (a SYN, then ACKs
//!   with data), or a mix of established flows and new connections; an optional 802.1Q tag;
//!   flat out or at a target rate; for a duration or a count; several threads on several
//!   queues, pinned. A line a second, a summary, `--json`. `--pcap FILE` writes the frames to
//!   a capture instead of sending them.
//! - `sink`: counts what arrives for the given (proto, address, port) tuples on an interface
//!   (its own XDP program steers them to an AF_XDP socket), per destination and per source,
//!   with loss and reordering from the sequence numbers `send` writes into payloads and
//!   latency percentiles from its send times (when both run on one host).

#![deny(unsafe_code)]

mod frames;
mod pace;
mod sink;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use frames::{Generator, Profile, Range, Size, Spec};
use pace::Pacer;
use serde::Serialize;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xvs::dataplane::io::xsk::{UmemFrames, XskPort, XskSizes};
use xvs::dataplane::xdp::steer::{SteerSet, Steering};
use xvs::dataplane::{Desc, FrameStore, Frames, Port, BURST};
use xvs::wire::MacAddr;

#[derive(Parser)]
#[command(name = "xvs-pktgen", about = "xvs's packet generator and sink (AF_XDP)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate frames (AF_XDP on --iface, or into --pcap).
    Send(SendArgs),
    /// Count frames arriving for --match tuples on --iface.
    Sink(SinkArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProfileArg {
    Udp,
    Syn,
    Established,
    Mix,
}

#[derive(Args, Debug)]
struct SendArgs {
    /// Interface to send on (not needed with --pcap).
    #[arg(long)]
    iface: Option<String>,
    /// Write the frames to this capture instead of sending them.
    #[arg(long)]
    pcap: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t = ProfileArg::Udp)]
    profile: ProfileArg,
    /// Frame size on the wire, FCS included (64..1518), or `imix` (7:4:1 of 64, 570, 1518).
    #[arg(long, default_value = "64")]
    size: String,
    /// Destination MAC (the director's, or the next hop's).
    #[arg(long)]
    dst_mac: String,
    /// Source MAC (default: the interface's; 02:00:00:00:00:02 with --pcap alone).
    #[arg(long)]
    src_mac: Option<String>,
    /// Source addresses: A, A-B or A/len.
    #[arg(long, default_value = "198.18.0.2")]
    src: String,
    /// Source ports: P or P-Q.
    #[arg(long, default_value = "10000-10999")]
    sport: String,
    #[arg(long)]
    dst: Ipv4Addr,
    #[arg(long, default_value_t = 9000)]
    dport: u16,
    /// Flows used (default: every source of the ranges); with --profile mix, the established
    /// ones (new connections come from the other sources).
    #[arg(long)]
    flows: Option<u64>,
    /// Sources in random order within the ranges (seeded by --seed).
    #[arg(long)]
    random: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// --profile mix: percent of frames that open a new connection.
    #[arg(long, default_value_t = 10)]
    new_pct: u8,
    /// 802.1Q VLAN id to tag every frame with.
    #[arg(long)]
    vlan: Option<u16>,
    #[arg(long, default_value_t = 64)]
    ttl: u8,
    /// Frames a second in all (default: as fast as the rings take them).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds to send (default 10 unless --count is given).
    #[arg(long)]
    duration: Option<f64>,
    /// Frames to send in all.
    #[arg(long)]
    count: Option<u64>,
    /// Sender threads, thread i on queue i % --queues.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// Cores to pin the threads to, in order (e.g. 0,2).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Print the summary as JSON on stdout (the live lines go to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct SinkArgs {
    #[arg(long)]
    iface: String,
    /// What to count: PROTO:ADDR:PORT (port 0: any), e.g. udp:198.19.0.11:9000; repeatable.
    #[arg(long = "match", required = true)]
    matches: Vec<String>,
    /// Rx queues to bind (one socket each).
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// Seconds to count (default: until --count frames or SIGINT).
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many frames.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds without a frame, once one came.
    #[arg(long, default_value_t = 2.0)]
    idle: f64,
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    match Cli::parse().cmd {
        Cmd::Send(a) => send(a),
        Cmd::Sink(a) => run_sink(a),
    }
}

/// The spec `send` builds from its arguments, every bad value named.
fn spec_of(a: &SendArgs, src_mac: MacAddr) -> Result<Spec> {
    let bad = |what: &str, e: String| anyhow::anyhow!("--{what}: {e}");
    let src = Range::addrs(&a.src).map_err(|e| bad("src", e))?;
    let sport = Range::ports(&a.sport).map_err(|e| bad("sport", e))?;
    let size = Size::parse(&a.size).map_err(|e| bad("size", e))?;
    let dst_mac: MacAddr = a.dst_mac.parse().map_err(|_| bad("dst-mac", format!("'{}' is not a MAC", a.dst_mac)))?;
    if a.new_pct > 100 {
        bail!("--new-pct: {} is more than 100", a.new_pct);
    }
    if let Some(v) = a.vlan {
        if v == 0 || v > 4094 {
            bail!("--vlan: {v} is not a VLAN id (1..4094)");
        }
    }
    if let Some(r) = a.rate {
        if !(r > 0.0 && r.is_finite()) {
            bail!("--rate: {r} is not a positive rate");
        }
    }
    if a.threads == 0 || a.threads > 64 {
        bail!("--threads: {} (1..64)", a.threads);
    }
    // One AF_XDP socket a queue (each thread has its own UMEM).
    if a.pcap.is_none() && a.threads as u32 > a.queues {
        bail!("--threads: {} threads need as many --queues (given {}): one socket a queue", a.threads, a.queues);
    }
    let sources = src.count as u64 * sport.count as u64;
    let profile = match a.profile {
        ProfileArg::Udp => Profile::Udp,
        ProfileArg::Syn => Profile::Syn,
        ProfileArg::Established => Profile::Established,
        ProfileArg::Mix => Profile::Mix { new_pct: a.new_pct },
    };
    let flows = match (a.flows, profile) {
        (Some(0), _) => bail!("--flows: 0"),
        (Some(f), _) if f > sources => {
            bail!("--flows: {f} is more than the {sources} sources of --src {} and --sport {}", a.src, a.sport)
        }
        (Some(f), Profile::Mix { .. }) if f == sources => {
            bail!("--flows: {f} leaves no sources for new connections (mix); widen --src or --sport")
        }
        (Some(f), _) => f,
        (None, Profile::Mix { .. }) => (sources / 2).max(1),
        (None, _) => sources,
    };
    Ok(Spec {
        profile,
        size,
        src_mac,
        dst_mac,
        src,
        sport,
        dst: a.dst,
        dport: a.dport,
        flows,
        random: a.random,
        seed: a.seed,
        vlan: a.vlan,
        ttl: a.ttl,
    })
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// What a sender thread reports, live and at the end.
#[derive(Default)]
struct Live {
    sent: AtomicU64,
    bytes: AtomicU64,
    /// Frames the tx ring had no room for (retried).
    ring_full: AtomicU64,
}

#[derive(Serialize, Default)]
struct SendSummary {
    frames: u64,
    bytes: u64,
    seconds: f64,
    pps: f64,
    /// Wire bit rate (FCS included, preamble and gap not).
    mbit_s: f64,
    ring_full: u64,
    threads: usize,
    /// Kernel ring counters per thread (AF_XDP), when it gives them.
    wakeups: Vec<u64>,
    tx_invalid_descs: Vec<u64>,
}

fn send(a: SendArgs) -> Result<()> {
    let src_mac = match (&a.src_mac, &a.iface) {
        (Some(m), _) => m.parse().map_err(|_| anyhow::anyhow!("--src-mac: '{m}' is not a MAC"))?,
        (None, Some(i)) => xvs::control::resolve::interface(i).with_context(|| format!("--iface {i}"))?.0,
        (None, None) => MacAddr([2, 0, 0, 0, 0, 2]),
    };
    let spec = spec_of(&a, src_mac)?;
    let duration = match (a.duration, a.count) {
        (Some(d), _) if !(d > 0.0 && d.is_finite()) => bail!("--duration: {d} is not a positive time"),
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    if let Some(path) = &a.pcap {
        return write_pcap(&a, spec, path, duration);
    }
    let Some(iface) = a.iface.clone() else { bail!("--iface or --pcap is needed") };
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    let lives: Vec<Arc<Live>> = (0..a.threads).map(|_| Arc::new(Live::default())).collect();
    let mut handles = Vec::new();
    let start = Instant::now();
    for (t, live) in lives.iter().enumerate() {
        let (spec, iface, live, stop) = (spec.clone(), iface.clone(), live.clone(), stop.clone());
        let queue = t as u32 % a.queues.max(1);
        let core = a.cores.get(t).copied();
        let rate = a.rate.map(|r| r / a.threads as f64);
        // The count split between the threads, the first ones taking the remainder.
        let count = a.count.map(|c| c / a.threads as u64 + u64::from((t as u64) < c % a.threads as u64));
        let threads = a.threads;
        handles.push(std::thread::spawn(move || -> Result<(u64, u64, f64)> {
            if let Some(c) = core {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                    bail!("--cores: cannot pin thread {t} to core {c}");
                }
            }
            sender(spec, t as u8, threads, &iface, queue, rate, count, duration, &live, &stop)
        }));
    }
    // A line a second while they run.
    let mut last = (0u64, 0u64, 0u64);
    let mut tick = start + Duration::from_secs(1);
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        if Instant::now() >= tick {
            let sum = |f: fn(&Live) -> &AtomicU64| lives.iter().map(|l| f(l).load(Relaxed)).sum::<u64>();
            let now = (sum(|l| &l.sent), sum(|l| &l.bytes), sum(|l| &l.ring_full));
            eprintln!(
                "{:>4.0} s: {:.3} Mpps, {:.1} Mbit/s, ring full {}",
                start.elapsed().as_secs_f64(),
                (now.0 - last.0) as f64 / 1e6,
                (now.1 - last.1) as f64 * 8.0 / 1e6,
                now.2 - last.2
            );
            last = now;
            tick += Duration::from_secs(1);
        }
    }
    let mut summary = SendSummary { threads: a.threads, ..Default::default() };
    for h in handles {
        let (wakeups, invalid, secs) = h.join().map_err(|_| anyhow::anyhow!("a sender thread panicked"))??;
        summary.wakeups.push(wakeups);
        summary.tx_invalid_descs.push(invalid);
        // The sending time: from a thread's first frame to its last (its socket's setup and
        // the final drain left out), the longest thread's.
        summary.seconds = summary.seconds.max(secs);
    }
    summary.frames = lives.iter().map(|l| l.sent.load(Relaxed)).sum();
    summary.bytes = lives.iter().map(|l| l.bytes.load(Relaxed)).sum();
    summary.ring_full = lives.iter().map(|l| l.ring_full.load(Relaxed)).sum();
    summary.pps = summary.frames as f64 / summary.seconds;
    summary.mbit_s = summary.bytes as f64 * 8.0 / summary.seconds / 1e6;
    report(&summary, a.json)
}

fn report<T: Serialize>(s: &T, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else {
        let v = serde_json::to_value(s)?;
        for (k, v) in v.as_object().into_iter().flatten() {
            println!("{k}: {v}");
        }
    }
    Ok(())
}

/// One sender thread: its own UMEM and socket, frames generated into a scratch buffer and
/// loaded into free UMEM frames, paced, until the count or the time is reached.
#[allow(clippy::too_many_arguments)]
fn sender(
    spec: Spec,
    stream: u8,
    threads: usize,
    iface: &str,
    queue: u32,
    rate: Option<f64>,
    count: Option<u64>,
    duration: Option<Duration>,
    live: &Live,
    stop: &AtomicBool,
) -> Result<(u64, u64, f64)> {
    let sizes = XskSizes { frames: 8192, ..XskSizes::default() };
    let mut umem = UmemFrames::new(&sizes)?;
    // No fill ring share: this socket only sends.
    let mut port = XskPort::open(&mut umem, iface, queue, &sizes, BURST as u32)?;
    let mut g = Generator::new(spec, stream, threads);
    let mut pacer = Pacer::new(rate, BURST);
    let mut scratch = [0u8; 2048];
    let mut descs = [Desc::default(); BURST];
    let (mut sent, mut bytes, mut full) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    loop {
        let elapsed = start.elapsed();
        if stop.load(Relaxed) || duration.is_some_and(|d| elapsed >= d) || count.is_some_and(|c| sent >= c) {
            break;
        }
        let mut want = pacer.allow(elapsed);
        if let Some(c) = count {
            want = want.min((c - sent) as usize);
        }
        if want == 0 {
            // Ahead of the schedule: sleep when the next frame is far, spin when it is near.
            if let Some(due) = pacer.next_due() {
                let wait = due.saturating_sub(start.elapsed());
                if wait > Duration::from_micros(200) {
                    std::thread::sleep(wait - Duration::from_micros(100));
                } else {
                    std::hint::spin_loop();
                }
            }
            continue;
        }
        let mut n = 0;
        let ts = now_ns();
        while n < want {
            let (len, _) = g.next(&mut scratch, ts);
            let Some(d) = umem.load(&scratch[..len]) else { break };
            descs[n] = d;
            n += 1;
        }
        let took = port.tx_burst(&mut umem, &descs[..n]);
        for d in &descs[took..n] {
            umem.free(d.idx);
        }
        // Frames generated but not taken are not resent: the generator moved on (their
        // sequence numbers are skipped, which a sink counts as lost only if they were sent).
        pacer.unsent(want - took);
        full += (n - took) as u64;
        sent += took as u64;
        bytes += descs[..took].iter().map(|d| d.len as u64 + frames::FCS as u64).sum::<u64>();
        live.sent.store(sent, Relaxed);
        live.bytes.store(bytes, Relaxed);
        live.ring_full.store(full, Relaxed);
    }
    let secs = start.elapsed().as_secs_f64();
    // Let the last frames go out before the socket closes.
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        port.idle();
        if port.held() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let rs = port.ring_stats().unwrap_or_default();
    Ok((rs.wakeups, rs.tx_invalid_descs, secs))
}

/// `--pcap`: the frames `send` would send, timestamped by the rate's schedule (1 us apart
/// when unpaced), one thread's worth per stream interleaved as the threads would send them.
fn write_pcap(a: &SendArgs, spec: Spec, path: &std::path::Path, duration: Option<Duration>) -> Result<()> {
    use pcap_file::pcap::{PcapPacket, PcapWriter};
    let step = a.rate.map_or(1e-6, |r| 1.0 / r);
    let Some(count) = a.count.or_else(|| duration.map(|d| (d.as_secs_f64() / step) as u64)) else {
        bail!("--pcap needs --count or --duration");
    };
    if count > 100_000_000 {
        bail!("--pcap: {count} frames is more than 100M; give --count");
    }
    let file = std::fs::File::create(path).with_context(|| format!("--pcap {}", path.display()))?;
    let mut w = PcapWriter::new(std::io::BufWriter::new(file)).context("writing the capture header")?;
    let mut gens: Vec<Generator> = (0..a.threads).map(|t| Generator::new(spec.clone(), t as u8, a.threads)).collect();
    let mut buf = [0u8; 2048];
    let base = now_ns();
    let mut bytes = 0u64;
    for n in 0..count {
        let t = Duration::from_secs_f64(n as f64 * step);
        let (len, _) = gens[(n % a.threads as u64) as usize].next(&mut buf, base + t.as_nanos() as u64);
        let at = Duration::from_nanos(base) + t;
        w.write_packet(&PcapPacket::new(at, len as u32, &buf[..len])).context("writing a frame")?;
        bytes += len as u64 + frames::FCS as u64;
    }
    let secs = count as f64 * step;
    let s = SendSummary {
        frames: count,
        bytes,
        seconds: secs,
        pps: if secs > 0.0 { count as f64 / secs } else { 0.0 },
        mbit_s: if secs > 0.0 { bytes as f64 * 8.0 / secs / 1e6 } else { 0.0 },
        threads: a.threads,
        ..Default::default()
    };
    report(&s, a.json)
}

fn parse_match(m: &str) -> Result<(u8, u32, u16)> {
    let bad = || anyhow::anyhow!("--match: '{m}' is not PROTO:ADDR:PORT (e.g. udp:198.19.0.11:9000)");
    let mut it = m.split(':');
    let (Some(p), Some(a), Some(port), None) = (it.next(), it.next(), it.next(), it.next()) else { return Err(bad()) };
    let proto = match p {
        "udp" => 17,
        "tcp" => 6,
        _ => return Err(bad()),
    };
    let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    Ok((proto, u32::from(addr), port))
}

fn run_sink(a: SinkArgs) -> Result<()> {
    let mut set = SteerSet::default();
    for m in &a.matches {
        set.services.insert(parse_match(m)?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    let steering = Steering::attach(std::slice::from_ref(&a.iface), true)?;
    steering.sync(&set)?;
    let sizes = XskSizes::default();
    let mut umem = UmemFrames::new(&sizes)?;
    let queues = a.queues.max(1);
    let mut ports = Vec::new();
    for q in 0..queues {
        let p = XskPort::open(&mut umem, &a.iface, q, &sizes, sizes.frames / 2 / queues)?;
        steering.register_socket(0, q, p.fd())?;
        ports.push(p);
    }
    eprintln!("sink: counting on {} ({} queues)", a.iface, queues);
    let mut counts = sink::Counts::default();
    let mut descs = [Desc::default(); BURST];
    let start = Instant::now();
    let (mut last_frame, mut tick, mut last_n) = (None::<Instant>, start + Duration::from_secs(1), 0u64);
    let fds: Vec<i32> = ports.iter().map(|p| p.fd()).collect();
    loop {
        let now = Instant::now();
        if stop.load(Relaxed)
            || a.duration.is_some_and(|d| now.duration_since(start).as_secs_f64() >= d)
            || a.count.is_some_and(|c| counts.frames >= c)
            || last_frame.is_some_and(|t| now.duration_since(t).as_secs_f64() >= a.idle)
        {
            break;
        }
        let mut got = 0;
        for p in &mut ports {
            let n = p.rx_burst(&mut umem, &mut descs);
            let ts = now_ns();
            for d in &descs[..n] {
                counts.add(umem.bytes(d), ts);
                umem.free(d.idx);
            }
            got += n;
        }
        if got > 0 {
            last_frame = Some(now);
        } else {
            xvs::dataplane::io::xsk::wait_readable(&fds, 10);
        }
        if now >= tick {
            eprintln!(
                "{:>4.0} s: {:.3} Mpps",
                now.duration_since(start).as_secs_f64(),
                (counts.frames - last_n) as f64 / 1e6
            );
            last_n = counts.frames;
            tick += Duration::from_secs(1);
        }
    }
    steering.detach().context("detaching the sink's XDP program")?;
    report(&counts.summary(), a.json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<SendArgs, clap::Error> {
        let mut v = vec!["xvs-pktgen", "send", "--dst-mac", "02:00:00:00:00:01", "--dst", "198.18.0.100"];
        v.extend_from_slice(extra);
        match Cli::try_parse_from(v)?.cmd {
            Cmd::Send(a) => Ok(a),
            Cmd::Sink(_) => unreachable!(),
        }
    }

    fn spec(extra: &[&str]) -> Result<Spec> {
        spec_of(&args(extra)?, MacAddr([2, 0, 0, 0, 0, 2]))
    }

    #[test]
    fn arguments_build_the_spec_asked_for() {
        let s =
            spec(&["--profile", "syn", "--src", "198.18.1.0/24", "--sport", "1024-1027", "--random", "--vlan", "7"])
                .unwrap();
        assert_eq!(s.profile, Profile::Syn);
        assert_eq!(s.sources(), 1024);
        assert_eq!(s.flows, 1024, "every source by default");
        assert!(s.random);
        assert_eq!(s.vlan, Some(7));
        let m = spec(&["--profile", "mix", "--new-pct", "25", "--src", "198.18.1.0/24", "--sport", "1000"]).unwrap();
        assert_eq!(m.profile, Profile::Mix { new_pct: 25 });
        assert_eq!(m.flows, 128, "mix: half the sources established by default");
        assert_eq!(spec(&["--size", "imix"]).unwrap().size, Size::Imix);
    }

    #[test]
    fn bad_arguments_name_the_option_and_the_value() {
        let err = |extra: &[&str]| spec(extra).unwrap_err().to_string();
        assert!(err(&["--size", "40"]).contains("--size: 40"));
        assert!(err(&["--src", "198.18.0.999"]).contains("--src: '198.18.0.999'"));
        assert!(err(&["--sport", "9-1"]).contains("--sport"));
        assert!(err(&["--flows", "5000", "--src", "198.18.0.1", "--sport", "1-10"]).contains("--flows: 5000"));
        assert!(err(&["--vlan", "4095"]).contains("--vlan: 4095"));
        assert!(err(&["--new-pct", "101"]).contains("--new-pct: 101"));
        assert!(err(&["--rate=-5"]).contains("--rate: -5"));
        assert!(err(&["--threads", "0"]).contains("--threads: 0"));
        assert!(
            err(&["--iface", "g0", "--threads", "2"]).contains("--threads: 2 threads need as many --queues (given 1)")
        );
        let mut a = args(&[]).unwrap();
        a.dst_mac = "zz".into();
        assert!(spec_of(&a, MacAddr([0; 6])).unwrap_err().to_string().contains("--dst-mac: 'zz'"));
        assert!(args(&["--profile", "flood"]).is_err(), "clap refuses an unknown profile");
        assert!(parse_match("udp:198.19.0.11:9000").is_ok());
        assert!(parse_match("icmp:198.19.0.11:0").unwrap_err().to_string().contains("'icmp:198.19.0.11:0'"));
    }
}
