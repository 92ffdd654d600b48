//! The AF_XDP port's fill ring, on a veth in a namespace this test creates (root; no traffic
//! is sent). The checks run in a child process started with `ip netns exec`, so that the
//! socket binds inside the namespace without this process changing its own.

use std::process::Command;
use xvs::dataplane::io::xsk::{UmemFrames, XskPort, XskSizes};
use xvs::dataplane::io::{Desc, Frames, Port};

const CHILD: &str = "XVS_XSK_TEST_IFACE";

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).status().is_ok_and(|s| s.success())
}

/// A namespace holding a veth pair; removed on drop (its veths go with it).
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.0]);
    }
}

/// The fill ring is topped up by its whole deficit: at bind, and after frames the worker
/// held (a slow tx) come back, in one round, not a burst (32) a round.
#[test]
fn the_fill_ring_is_topped_up_by_its_whole_deficit() {
    if let Ok(iface) = std::env::var(CHILD) {
        return check_fill(&iface);
    }
    let uid = Command::new("id").arg("-u").output().expect("id");
    assert_eq!(String::from_utf8_lossy(&uid.stdout).trim(), "0", "the namespace tests need root");
    let ns = Netns(format!("xvs-xsk-{}", std::process::id()));
    assert!(ip(&["netns", "add", &ns.0]), "netns add {}", ns.0);
    assert!(ip(&["-n", &ns.0, "link", "add", "xk0", "type", "veth", "peer", "name", "xk1"]), "veth");
    assert!(ip(&["-n", &ns.0, "link", "set", "xk0", "up"]) && ip(&["-n", &ns.0, "link", "set", "xk1", "up"]));
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(exe)
        .args(["--exact", "the_fill_ring_is_topped_up_by_its_whole_deficit", "--nocapture", "--test-threads=1"])
        .env(CHILD, "xk0")
        .output()
        .expect("child");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "child run:\n{text}");
}

fn check_fill(iface: &str) {
    let sizes = XskSizes { frames: 4096, ..XskSizes::default() };
    let target = 2048;
    let mut frames = UmemFrames::new(&sizes).expect("umem");
    // The worker holds all but 100 frames (lent to a tx that has not completed, say).
    let held: Vec<Desc> = (0..sizes.frames - 100).map(|_| frames.load(&[0u8; 60]).expect("a free frame")).collect();
    let mut port = XskPort::open(&mut frames, iface, 0, &sizes, target).expect("bind");
    // What was free went to the fill ring at once (up to the target), not one burst of it.
    assert_eq!(port.held(), 100, "frames on the fill ring after bind");
    assert_eq!(frames.free_count(), 0);
    for d in &held {
        frames.free(d.idx);
    }
    // One round (no traffic: nothing is received) tops the ring up to its target.
    let mut out = [Desc::default(); 32];
    assert_eq!(port.rx_burst(&mut frames, &mut out), 0);
    assert_eq!(port.held(), target, "frames on the fill ring after one round");
    assert_eq!(frames.free_count(), sizes.frames - target);
    // At its target, a round adds nothing.
    assert_eq!(port.rx_burst(&mut frames, &mut out), 0);
    assert_eq!(port.held(), target);
}
