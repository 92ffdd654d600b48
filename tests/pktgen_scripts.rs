//! The kernel pktgen script (`tools/pktgen/pktgen.sh`). This kernel has no pktgen
//! (CONFIG_NET_PKTGEN), so the script is held to its syntax (`bash -n`) and to what its dry run
//! would write into /proc/net/pktgen.

use std::process::Command;

fn script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/pktgen/pktgen.sh")
}

fn dry(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("bash")
        .arg(script())
        .args(["-i", "eth1", "-d", "198.18.0.100", "-m", "02:00:00:00:00:01"])
        .args(args)
        .arg("--dry-run")
        .output()
        .expect("bash");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_script_parses() {
    let st = Command::new("bash").arg("-n").arg(script()).status().expect("bash -n");
    assert!(st.success());
}

#[test]
fn a_dry_run_writes_every_profile_setting_per_thread() {
    let (ok, out, err) = dry(&[
        "-s",
        "198.18.1.0-198.18.1.255",
        "-p",
        "1024-2047",
        "-z",
        "128",
        "-r",
        "300000",
        "-t",
        "3",
        "-f",
        "2",
        "-R",
        "-v",
        "42",
        "-n",
        "5000",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"/proc/net/pktgen/pgctrl: reset"));
    assert_eq!(lines.last(), Some(&"/proc/net/pktgen/pgctrl: start"));
    for t in 0..3 {
        let cpu = 2 + t;
        assert!(lines.contains(&format!("/proc/net/pktgen/kpktgend_{cpu}: add_device eth1@{t}").as_str()), "{out}");
        let d = format!("/proc/net/pktgen/eth1@{t}");
        for want in [
            "count 5000",
            "pkt_size 124",
            "dst_mac 02:00:00:00:00:01",
            "dst 198.18.0.100",
            "udp_dst_min 9000",
            "src_min 198.18.1.0",
            "src_max 198.18.1.255",
            "udp_src_min 1024",
            "udp_src_max 2047",
            "flag IPSRC_RND",
            "flag UDPSRC_RND",
            "flag UDPCSUM",
            "vlan_id 42",
            "ratep 100000",
        ] {
            assert!(lines.contains(&format!("{d}: {want}").as_str()), "{d}: {want} missing:\n{out}");
        }
    }
    let (ok, out, _) = dry(&["-z", "imix"]);
    assert!(ok);
    assert!(out.contains("eth1@0: imix_weights 60,7 566,4 1514,1"), "{out}");
    assert!(!out.contains("pkt_size"), "{out}");
}

#[test]
fn bad_values_are_refused_with_the_option_named() {
    for (args, want) in [
        (&["-z", "40"][..], "-z: '40'"),
        (&["-s", "198.18.0.999x"][..], "-s: '198.18.0.999x'"),
        (&["-p", "9-1"][..], "-p: '9-1'"),
        (&["-v", "5000"][..], "-v: '5000'"),
        (&["-r", "fast"][..], "-r: 'fast'"),
        (&["--bogus"][..], "unknown option '--bogus'"),
    ] {
        let (ok, out, err) = dry(args);
        assert!(!ok && out.is_empty(), "{args:?} accepted: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
