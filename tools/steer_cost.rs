//! What the steering program costs a frame, by kind of frame: the kernel runs it
//! (`BPF_PROG_TEST_RUN`, `repeat` times a measurement) with maps as a director with 1,000
//! services, 4,000 NAT real servers and a FULLNAT local address holds them, and reports its
//! own average time a run. Root.
//!
//! `cargo run --release --example steer-cost [REPEAT] [ROUNDS]` (defaults 1000000, 5): each
//! kind's median over the rounds, in ns a frame, and whether it was redirected.

use etherparse::PacketBuilder;
use xvs::dataplane::xdp::steer::{SteerProbe, SteerSet};

fn ip(a: [u8; 4]) -> u32 {
    u32::from_be_bytes(a)
}

fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1, 64240)
        .ack(1);
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 6]).expect("frame");
    v
}

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(src, dst, 64).udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 18]).expect("frame");
    v
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let repeat: u32 = args.get(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let rounds: usize = args.get(2).map_or(Ok(5), |a| a.parse())?;
    let mut set = SteerSet::default();
    for i in 0..1000u32 {
        let vip = ip([198, 18, 1 + (i / 250) as u8, (i % 250) as u8]);
        set.services.insert((6, vip, 80));
        set.vips.insert(vip);
    }
    for i in 0..4000u32 {
        set.nat_dests.insert((6, ip([198, 19, 10 + (i / 250) as u8, (i % 250) as u8]), 8080));
    }
    let dip = [198, 19, 0, 1];
    set.local.insert((ip(dip), 20000, 29999));
    set.hosts.insert(ip(dip));
    set.icmp_relay = true;
    let mut probe = SteerProbe::load(&set)?;
    let kinds = [
        ("host traffic (TCP, not the director's)", tcp([198, 18, 200, 1], [198, 18, 200, 2], 40000, 22)),
        ("host traffic (UDP to the DIP)", udp([198, 18, 200, 1], dip, 40000, 53)),
        ("TCP to a service", tcp([198, 18, 200, 1], [198, 18, 1, 7], 40000, 80)),
        ("a NAT server's reply", tcp([198, 19, 10, 7], [198, 18, 200, 1], 8080, 40000)),
        ("a FULLNAT reply (local port)", tcp([198, 19, 10, 7], dip, 8080, 25000)),
    ];
    for (what, frame) in kinds {
        let mut ns = Vec::new();
        let mut redirected = false;
        for _ in 0..rounds {
            let (r, took) = probe.run(&frame, repeat)?;
            redirected = r;
            ns.push(took.as_nanos() as u64);
        }
        ns.sort_unstable();
        println!(
            "{what}: {} ns a frame (median of {rounds}; {}-{}), {}",
            ns[rounds / 2],
            ns[0],
            ns[rounds - 1],
            if redirected { "redirected" } else { "passed" }
        );
    }
    Ok(())
}
