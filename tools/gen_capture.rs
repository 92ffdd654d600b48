//! Synthesises a client-side capture for a config: every service gets `--clients` clients,
//! each doing a TCP handshake, a request and a close (UDP: a query and a retry), plus a few
//! frames a director must survive (truncated, bad checksum, ARP, ping, IPv6). Addresses are
//! taken from 198.18.0.0/15 (the benchmarking range). Used by `tools/replay-demo`.
//!
//! cargo run --release --example gen-capture -- --config config.json --out in.pcap

use anyhow::{Context, Result};
use clap::Parser;
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};
use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;
use xvs::config::Config;
use xvs::model::Proto;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 100)]
    clients: u32,
}

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn main() -> Result<()> {
    let a = Args::parse();
    let cfg = Config::load(&a.config)?;
    let dmac = cfg.interfaces[0].mac.unwrap_or_default().0;
    let mut w = PcapWriter::new(File::create(&a.out).with_context(|| a.out.display().to_string())?)?;
    let mut ms = 0u64;
    let mut put = |w: &mut PcapWriter<File>, f: &[u8]| -> Result<()> {
        ms += 1;
        w.write_packet(&PcapPacket::new(Duration::from_millis(ms), f.len() as u32, f))?;
        Ok(())
    };
    let mut n = 0u32;
    for svc in &cfg.services {
        let vip = svc.vip.octets();
        let vport = if svc.port == 0 { 8000 } else { svc.port };
        for c in 0..a.clients {
            n += 1;
            // Clients spread over 198.18.0.0/15, away from the director's own /24s.
            let host = 0xC612_4000u32 + n * 7;
            let src = host.to_be_bytes();
            let sport = 32768 + (n.wrapping_mul(2654435761) >> 17) as u16 % 28000;
            let eth = || PacketBuilder::ethernet2(CLIENT_MAC, dmac).ipv4(src, vip, 64);
            let mut frames: Vec<Vec<u8>> = Vec::new();
            match svc.proto {
                Proto::Tcp => {
                    let mut f = Vec::new();
                    eth().tcp(sport, vport, 1, 64240).syn().write(&mut f, &[])?;
                    frames.push(f);
                    let mut f = Vec::new();
                    eth().tcp(sport, vport, 2, 64240).ack(1).write(&mut f, &[])?;
                    frames.push(f);
                    let mut f = Vec::new();
                    let req = format!("GET /{c} HTTP/1.1\r\nHost: demo\r\n\r\n");
                    eth().tcp(sport, vport, 2, 64240).ack(1).psh().write(&mut f, req.as_bytes())?;
                    frames.push(f);
                    let mut f = Vec::new();
                    eth().tcp(sport, vport, 40, 64240).ack(1).fin().write(&mut f, &[])?;
                    frames.push(f);
                }
                Proto::Udp => {
                    for _ in 0..2 {
                        let mut f = Vec::new();
                        eth().udp(sport, vport).write(&mut f, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")?;
                        frames.push(f);
                    }
                }
            }
            for f in frames {
                put(&mut w, &f)?;
            }
        }
    }
    // Frames a director must survive, each counted under its reason.
    let mut good = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, dmac)
        .ipv4([198, 18, 64, 1], [198, 18, 0, 100], 64)
        .tcp(1, 80, 1, 1)
        .syn()
        .write(&mut good, &[])?;
    put(&mut w, &good[..20])?;
    let mut bad = good.clone();
    bad[24] ^= 0xff;
    put(&mut w, &bad)?;
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    put(&mut w, &arp)?;
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, dmac)
        .ipv4([198, 18, 64, 1], cfg.services.first().map_or([198, 18, 0, 100], |s| s.vip.octets()), 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut ping, b"ping")?;
    put(&mut w, &ping)?;
    let mut v6 = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, dmac)
        .ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .udp(1, 2)
        .write(&mut v6, b"x")?;
    put(&mut w, &v6)?;
    eprintln!("wrote {} ({} clients per service, {} services)", a.out.display(), a.clients, cfg.services.len());
    Ok(())
}
