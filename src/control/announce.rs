//! Announcing the VIPs over BGP through BIRD 2 (`"bgp"` in config.json), for several active
//! directors behind a router's ECMP routes.
//!
//! BIRD holds one disabled static protocol per VIP (`protocol static vip_198_18_0_100 {
//! disabled; ipv4; route 198.18.0.100/32 blackhole; }`, see `tools/ha/bird-director.conf`)
//! exported to its BGP uplinks; xvs enables it (`birdc enable`, the route is announced) while
//! it serves the VIP and the VIP has a real server with weight, and disables it (withdrawn)
//! when it stops serving, when the last server goes, and when xvs stops. BIRD's `protocol
//! kernel` must not export the blackhole (the template has none). Nothing here runs on the
//! packet path; `birdc` runs with a bounded wait.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// How long one `birdc` may take before it is killed (and retried at the next check): the
/// control loop waits that long at most per VIP (its watchdog allows 10 s).
const BIRDC_WAIT: Duration = Duration::from_secs(1);

pub use crate::config::Bgp as BgpSpec;

/// What was last told to BIRD, per VIP.
pub struct Announcer {
    spec: BgpSpec,
    announced: BTreeMap<Ipv4Addr, bool>,
}

impl Announcer {
    pub fn new(spec: BgpSpec) -> Announcer {
        Announcer { spec, announced: BTreeMap::new() }
    }

    /// BIRD's protocol for `vip`: the prefix and the address with `_` for dots.
    pub fn protocol(&self, vip: Ipv4Addr) -> String {
        format!("{}{}", self.spec.protocol_prefix, vip.to_string().replace('.', "_"))
    }

    /// Tells BIRD what changed in `wanted` (VIP -> announce), or everything with `force`
    /// (BIRD may have restarted). A failed `birdc` is logged and retried next time.
    pub fn apply(&mut self, wanted: &BTreeMap<Ipv4Addr, bool>, force: bool) {
        // VIPs no longer configured are withdrawn too.
        let gone: Vec<Ipv4Addr> = self.announced.keys().filter(|v| !wanted.contains_key(v)).copied().collect();
        let mut todo: Vec<(Ipv4Addr, bool)> = gone.into_iter().map(|v| (v, false)).collect();
        for (&vip, &on) in wanted {
            if force || self.announced.get(&vip) != Some(&on) {
                todo.push((vip, on));
            }
        }
        for (vip, on) in todo {
            let proto = self.protocol(vip);
            let verb = if on { "enable" } else { "disable" };
            match self.birdc(verb, &proto) {
                Ok(()) => {
                    if self.announced.get(&vip) != Some(&on) {
                        tracing::info!(
                            "bgp: {} {vip} (birdc {verb} {proto})",
                            if on { "announcing" } else { "withdrawing" }
                        );
                    }
                    if wanted.contains_key(&vip) {
                        self.announced.insert(vip, on);
                    } else {
                        self.announced.remove(&vip);
                    }
                }
                Err(e) => {
                    tracing::warn!("bgp: birdc {verb} {proto}: {e} (retried at the next check)");
                    // Not known to be done: the opposite is kept, so the next check retries
                    // and a withdrawal at stop still covers it.
                    self.announced.insert(vip, !on);
                }
            }
        }
    }

    /// Withdraws every VIP (xvs is stopping).
    pub fn withdraw_all(&mut self) {
        let all: BTreeMap<Ipv4Addr, bool> = self.announced.keys().map(|&v| (v, false)).collect();
        self.apply(&all, true);
    }

    /// Each VIP told to BIRD, and whether it is announced.
    pub fn state(&self) -> Vec<(Ipv4Addr, bool)> {
        self.announced.iter().map(|(v, on)| (*v, *on)).collect()
    }

    fn birdc(&self, verb: &str, proto: &str) -> Result<(), String> {
        let mut child = std::process::Command::new(&self.spec.birdc)
            .arg("-s")
            .arg(&self.spec.socket)
            .args([verb, proto])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("running {}: {e}", self.spec.birdc.display()))?;
        let t0 = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if t0.elapsed() < BIRDC_WAIT => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("no answer within {BIRDC_WAIT:?}"));
                }
            }
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        // birdc answers "vip_x: enabled" / "vip_x: already enabled" (or disabled).
        let done = if verb == "enable" { "enabled" } else { "disabled" };
        if text.lines().any(|l| l.starts_with(proto) && l.trim_end().ends_with(done)) {
            Ok(())
        } else {
            Err(text.trim().replace('\n', " / "))
        }
    }
}
