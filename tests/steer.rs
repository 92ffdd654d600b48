//! The steering program's decisions, frame by frame: the kernel runs the program itself
//! (`BPF_PROG_TEST_RUN`, through [`SteerProbe`]) on each frame of a table, with its maps
//! filled from a steering set, and the test reads where the frame went (the director's
//! sockets or the kernel). No interface and no traffic: needs root for the BPF calls only.

mod common;

use common::*;
use xvs::dataplane::xdp::steer::{SteerProbe, SteerSet};

const VIP: [u8; 4] = [198, 18, 0, 100];
/// A UDP service on all ports.
const VIP_ANY: [u8; 4] = [198, 18, 0, 101];
const CLIENT: [u8; 4] = [198, 18, 7, 7];
const NAT_RS: [u8; 4] = [198, 19, 0, 11];
const DR_RS: [u8; 4] = [198, 19, 0, 12];
/// A NAT server of any port (UDP).
const NAT_ANY: [u8; 4] = [198, 19, 0, 13];
/// A VIP that is a FULLNAT local address too.
const VIP_LOCAL: [u8; 4] = [198, 18, 0, 102];
/// The DIP, also the FULLNAT local address.
const DIP: [u8; 4] = [198, 19, 0, 1];
const OTHER: [u8; 4] = [198, 18, 9, 9];
const M1: [u8; 6] = [2, 0, 0, 0, 0, 1];
const M2: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn ip(a: [u8; 4]) -> u32 {
    u32::from_be_bytes(a)
}

pub fn set() -> SteerSet {
    let mut s = SteerSet::default();
    s.services.insert((6, ip(VIP), 80));
    s.services.insert((17, ip(VIP_ANY), 0));
    s.vips.extend([ip(VIP), ip(VIP_ANY)]);
    s.services.insert((6, ip(VIP_LOCAL), 443));
    s.vips.insert(ip(VIP_LOCAL));
    s.nat_dests.insert((6, ip(NAT_RS), 8080));
    s.nat_dests.insert((17, ip(NAT_ANY), 0));
    s.local.insert((ip(DIP), 20000, 29999));
    s.local.insert((ip(VIP_LOCAL), 20000, 29999));
    s.hosts.insert(ip(DIP));
    s.icmp_relay = true;
    s
}

fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    tcp_frame(M1, M2, src, dst, sport, dport, ACK, 64, b"x")
}

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    udp_frame(M1, M2, src, dst, sport, dport, 64, b"x")
}

/// An ICMP "fragmentation needed" to `dst` quoting `quoted` (a frame: its IP packet).
fn icmp_about(dst: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    frag_needed(M1, M2, OTHER, dst, 1280, &quoted[14..])
}

fn vlan(f: &[u8]) -> Vec<u8> {
    let mut v = f[..12].to_vec();
    v.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    v.extend_from_slice(&f[12..]);
    v
}

/// (what, frame, redirected to the director).
pub fn table() -> Vec<(&'static str, Vec<u8>, bool)> {
    let big = udp_frame(M1, M2, CLIENT, VIP_ANY, 5000, 53, 64, &[0u8; 200]);
    let from_nat = tcp(NAT_RS, CLIENT, 8080, 40000);
    let from_nat_big = tcp_frame(M1, M2, NAT_RS, CLIENT, 8080, 40000, ACK, 64, &[0u8; 200]);
    let mut arp = vec![0u8; 42];
    arp[..6].copy_from_slice(&[0xff; 6]);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    vec![
        ("TCP to a service", tcp(CLIENT, VIP, 40000, 80), true),
        ("TCP to the VIP on a port with no service", tcp(CLIENT, VIP, 40000, 22), false),
        ("UDP to a port-0 service, any port", udp(CLIENT, VIP_ANY, 5000, 53), true),
        ("TCP to a UDP port-0 service's VIP", tcp(CLIENT, VIP_ANY, 5000, 53), false),
        ("a NAT server's reply to a client", from_nat.clone(), true),
        ("a NAT server's reply, tagged", vlan(&from_nat), true),
        ("a NAT server's traffic to the director itself", tcp(NAT_RS, DIP, 8080, 40000), false),
        ("a NAT server's other port", tcp(NAT_RS, CLIENT, 22, 40000), false),
        ("a DR server's traffic", tcp(DR_RS, CLIENT, 80, 40000), false),
        ("a FULLNAT reply to a local port", tcp(NAT_RS, DIP, 8080, 25000), true),
        ("a FULLNAT reply to the range's first port", tcp(NAT_RS, DIP, 8080, 20000), true),
        ("a FULLNAT reply to the range's last port", udp(NAT_RS, DIP, 8080, 29999), true),
        ("a FULLNAT reply to a VIP that is a local address too", tcp(NAT_RS, VIP_LOCAL, 8080, 25000), true),
        ("TCP to the service of a VIP that is a local address too", tcp(CLIENT, VIP_LOCAL, 40000, 443), true),
        ("a VIP that is a local address, another port", tcp(CLIENT, VIP_LOCAL, 40000, 444), false),
        ("a UDP reply from a NAT server of any port", udp(NAT_ANY, CLIENT, 5353, 40000), true),
        ("TCP from a UDP-only NAT server", tcp(NAT_ANY, CLIENT, 5353, 40000), false),
        (
            "a first fragment to a local port",
            {
                let f = tcp_frame(M1, M2, NAT_RS, DIP, 8080, 25000, ACK, 64, &[0u8; 200]);
                fragments(&f, 11, 64)[0].clone()
            },
            true,
        ),
        ("an address whose filter bit a VIP set, in no map", tcp(OTHER, colliding(VIP), 1234, 80), false),
        ("the DIP below the local-port range", tcp(OTHER, DIP, 1234, 19999), false),
        ("the DIP above the local-port range", udp(OTHER, DIP, 1234, 30000), false),
        ("host traffic", tcp(OTHER, CLIENT, 1234, 22), false),
        ("host traffic, tagged", vlan(&tcp(OTHER, CLIENT, 1234, 22)), false),
        ("a first fragment to a service", fragments(&big, 7, 64)[0].clone(), true),
        ("a later fragment to a VIP", fragments(&big, 7, 64)[1].clone(), true),
        ("a NAT server's later fragment", fragments(&from_nat_big, 9, 64)[1].clone(), true),
        (
            "a NAT server's later fragment to the director",
            {
                let f = tcp_frame(M1, M2, NAT_RS, DIP, 8080, 40000, ACK, 64, &[0u8; 200]);
                fragments(&f, 9, 64)[1].clone()
            },
            false,
        ),
        (
            "someone else's later fragment",
            {
                let f = tcp_frame(M1, M2, OTHER, CLIENT, 1, 2, ACK, 64, &[0u8; 200]);
                fragments(&f, 9, 64)[1].clone()
            },
            false,
        ),
        ("frag-needed about a service's reply", icmp_about(VIP, &tcp(VIP, CLIENT, 80, 40000)), true),
        ("frag-needed about what a NAT server was sent", icmp_about(DIP, &tcp(CLIENT, NAT_RS, 40000, 8080)), true),
        ("frag-needed about a FULLNAT local port's packet", icmp_about(DIP, &tcp(DIP, NAT_RS, 25000, 8080)), true),
        ("frag-needed about a port-0 service's reply", icmp_about(VIP_ANY, &udp(VIP_ANY, CLIENT, 53, 5000)), true),
        ("frag-needed about the VIP's port with no service", icmp_about(VIP, &tcp(VIP, CLIENT, 22, 40000)), false),
        ("frag-needed about the host's own traffic", icmp_about(DIP, &tcp(DIP, OTHER, 22, 40000)), false),
        ("ARP", arp, false),
    ]
}

/// An address of 198.18.0.0/15, in no map, whose bit in the program's address filter is
/// `a`'s (the filter's hash, restated: the network-order address as a native u32, times
/// 0x9E3779B1, its top 16 bits).
fn colliding(a: [u8; 4]) -> [u8; 4] {
    let bit = |a: [u8; 4]| u32::from_ne_bytes(a).wrapping_mul(0x9E37_79B1) >> 16;
    (1..=u16::MAX)
        .map(|n| [198, 18 + (n >> 15) as u8 % 2, (n >> 8) as u8 & 0x7f, n as u8])
        .find(|&b| b != a && b[2] > 100 && bit(b) == bit(a))
        .expect("an address sharing the bit")
}

fn require_root() {
    let uid = std::process::Command::new("id").arg("-u").output().expect("id");
    assert_eq!(String::from_utf8_lossy(&uid.stdout).trim(), "0", "the BPF tests need root");
}

#[test]
fn the_steering_program_sends_the_director_its_frames_and_the_kernel_the_rest() {
    require_root();
    let mut probe = SteerProbe::load(&set()).expect("load the steering program");
    let mut wrong = Vec::new();
    for (what, frame, want) in table() {
        let (got, _) = probe.run(&frame, 1).expect("test run");
        if got != want {
            wrong.push(format!("{what}: {} (want {})", dir(got), dir(want)));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // ICMP errors stay the kernel's while the relay is off.
    let mut off = set();
    off.icmp_relay = false;
    let mut probe = SteerProbe::load(&off).expect("load");
    let (_, err, _) = table().into_iter().find(|(w, _, _)| w.starts_with("frag-needed about a service")).expect("row");
    assert!(!probe.run(&err, 1).expect("run").0, "relay off: the kernel's");
}

#[test]
fn services_are_steered_without_their_vips_listed_and_after_a_resync() {
    require_root();
    // A set of services only (as the pktgen sink builds it).
    let mut only = set();
    only.vips.clear();
    let mut probe = SteerProbe::load(&only).expect("load");
    let to_service = tcp(CLIENT, VIP, 40000, 80);
    let to_any = udp(CLIENT, VIP_ANY, 5000, 53);
    assert!(probe.run(&to_service, 1).expect("run").0, "a service's port");
    assert!(probe.run(&to_any, 1).expect("run").0, "a port-0 service");
    // The service removed, then back: its frames go to the kernel, then to the director.
    let mut without = set();
    without.services.remove(&(6, ip(VIP), 80));
    without.vips.remove(&ip(VIP));
    probe.sync(&without).expect("sync");
    assert!(!probe.run(&to_service, 1).expect("run").0, "removed");
    assert!(probe.run(&to_any, 1).expect("run").0, "the other service stays");
    probe.sync(&set()).expect("sync");
    assert!(probe.run(&to_service, 1).expect("run").0, "added again");
    assert!(probe.run(&tcp(NAT_RS, DIP, 8080, 25000), 1).expect("run").0, "local ports stay");
}

fn dir(redirected: bool) -> &'static str {
    if redirected {
        "director"
    } else {
        "kernel"
    }
}
