//! `xvs-bench`: the load-test tools of `tools/bench-xdp`, built on xvs's own AF_XDP port
//! (no unsafe code here):
//! - `gen`: an AF_XDP packet generator: 64-byte UDP frames (60 bytes plus the FCS a NIC
//!   would add) over `--flows` source ports, sent as fast as the ring takes them;
//! - `reflect`: the veth's ceiling, a minimal AF_XDP reflector: steering program, socket,
//!   rx burst, swap the MACs, tx burst back out of the same interface;
//! - `sink`: an XDP program that counts and drops UDP, TCP and IP-in-IP; prints packets per
//!   second;
//! - `reflect-xdp`: the veth's XDP_TX ceiling (an XDP program that sends UDP back out).

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use xvs::dataplane::io::xsk::{UmemFrames, XskPort, XskSizes};
use xvs::dataplane::xdp::steer::{SteerSet, Steering};
use xvs::dataplane::{Desc, FrameStore, Frames, Port, BURST};
use xvs::wire::MacAddr;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Gen {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        dst_mac: String,
        #[arg(long)]
        src: Ipv4Addr,
        #[arg(long)]
        dst: Ipv4Addr,
        #[arg(long, default_value_t = 9000)]
        dport: u16,
        #[arg(long, default_value_t = 1024)]
        flows: u16,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    Reflect {
        #[arg(long)]
        iface: String,
        /// Redirect UDP to this address and port to the socket.
        #[arg(long)]
        dst: Ipv4Addr,
        #[arg(long, default_value_t = 9000)]
        dport: u16,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    Sink {
        #[arg(long)]
        iface: String,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// The veth's XDP_TX ceiling: UDP back out of `iface`, MACs swapped, in the driver.
    ReflectXdp {
        #[arg(long)]
        iface: String,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Gen { iface, dst_mac, src, dst, dport, flows, seconds } => {
            let dst_mac: MacAddr =
                dst_mac.parse().map_err(|_| anyhow::anyhow!("--dst-mac: '{dst_mac}' is not a MAC"))?;
            gen(&iface, dst_mac, src, dst, dport, flows, seconds)
        }
        Cmd::Reflect { iface, dst, dport, seconds } => reflect(&iface, dst, dport, seconds),
        Cmd::Sink { iface, seconds } => sink(&iface, seconds),
        Cmd::ReflectXdp { iface, seconds } => {
            let r = xvs::dataplane::xdp::steer::Sink::attach_reflector(&iface)?;
            std::thread::sleep(Duration::from_secs_f64(seconds));
            println!("reflect-xdp: {} frames", r.count());
            Ok(())
        }
    }
}

fn frame(src_mac: MacAddr, dst_mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let payload = [0u8; 18];
    let b = etherparse::PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).expect("building a frame");
    out
}

fn gen(
    iface: &str,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dport: u16,
    flows: u16,
    seconds: f64,
) -> Result<()> {
    let (src_mac, _, _) = xvs::control::resolve::interface(iface)?;
    let frames_data: Vec<Vec<u8>> =
        (0..flows.max(1)).map(|i| frame(src_mac, dst_mac, src, dst, 10000 + i, dport)).collect();
    let sizes = XskSizes { frames: 8192, ..XskSizes::default() };
    let mut umem = UmemFrames::new(&sizes)?;
    let mut port = XskPort::open(&mut umem, iface, 0, &sizes, BURST as u32)?;
    let mut descs = [Desc::default(); BURST];
    let (mut sent, mut next) = (0u64, 0usize);
    let start = Instant::now();
    let end = Duration::from_secs_f64(seconds);
    while start.elapsed() < end {
        let mut n = 0;
        while n < BURST {
            let Some(d) = umem.load(&frames_data[next]) else { break };
            descs[n] = d;
            n += 1;
            next = (next + 1) % frames_data.len();
        }
        let took = port.tx_burst(&mut umem, &descs[..n]);
        for d in &descs[took..n] {
            umem.free(d.idx);
        }
        sent += took as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("gen: {sent} frames in {secs:.1} s: {:.3} Mpps offered", sent as f64 / secs / 1e6);
    Ok(())
}

fn reflect(iface: &str, dst: Ipv4Addr, dport: u16, seconds: f64) -> Result<()> {
    let steering = Steering::attach(&[iface.to_string()], true)?;
    let mut set = SteerSet::default();
    set.services.insert((17, u32::from(dst), dport));
    steering.sync(&set)?;
    let sizes = XskSizes::default();
    let mut umem = UmemFrames::new(&sizes)?;
    let mut port = XskPort::open(&mut umem, iface, 0, &sizes, sizes.frames / 2)?;
    steering.register_socket(0, 0, port.fd())?;
    let mut descs = [Desc::default(); BURST];
    let mut reflected = 0u64;
    let start = Instant::now();
    let end = Duration::from_secs_f64(seconds);
    while start.elapsed() < end {
        let n = port.rx_burst(&mut umem, &mut descs);
        if n == 0 {
            port.idle();
        }
        for d in &descs[..n] {
            let mut f = umem.frame(d);
            let b = f.data_mut();
            if b.len() >= 12 {
                let mut tmp = [0u8; 6];
                tmp.copy_from_slice(&b[0..6]);
                b.copy_within(6..12, 0);
                b[6..12].copy_from_slice(&tmp);
            }
        }
        let took = port.tx_burst(&mut umem, &descs[..n]);
        for d in &descs[took..n] {
            umem.free(d.idx);
        }
        reflected += took as u64;
    }
    println!("reflect: {reflected} frames");
    steering.detach().context("detaching")?;
    Ok(())
}

fn sink(iface: &str, seconds: f64) -> Result<()> {
    let s = xvs::dataplane::xdp::steer::Sink::attach(iface)?;
    let start = Instant::now();
    let mut last = s.count();
    while start.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_secs(1));
        let c = s.count();
        println!("sink: {:.3} Mpps", (c - last) as f64 / 1e6);
        last = c;
    }
    Ok(())
}
