//! `xvs replay`: a capture through the real worker pipeline, the output capture and summary.

mod common;
use common::*;
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
    for (ms, f) in frames {
        w.write_packet(&PcapPacket::new(Duration::from_millis(*ms), f.len() as u32, f)).unwrap();
    }
}

fn read_pcap(path: &Path) -> Vec<(Duration, Vec<u8>)> {
    let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        out.push((p.timestamp, p.data.into_owned()));
    }
    out
}

fn xvs(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_xvs")).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `xvs replay --config CFG --input IN --output OUT`.
fn replay(cfg: &Path, input: &Path, output: &Path) -> (i32, String, String) {
    xvs(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
}

#[test]
fn replay_writes_what_the_director_transmits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, config_json("")).unwrap();
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    let frames = vec![
        (1000, tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, SYN, 64, &[])),
        (1001, tcp_frame(RS1_MAC, DIR_R_MAC, RS1, CLIENT, 8080, 40000, SYNACK, 64, &[])),
        (1002, tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, ACK, 64, b"GET /")),
        (1003, tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40001, 80, ACK, 64, &[])),
        (1004, vec![0u8; 10]),
        (1005, udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 5000, 53, 64, b"q")),
        // 400 s later the UDP connection (300 s) has expired: a new one is scheduled.
        (401_005, udp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 5000, 53, 64, b"q")),
        (401_006, tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, [198, 18, 0, 1], 40000, 22, SYN, 64, &[])),
    ];
    write_pcap(&input, &frames);
    let (rc, out, err) = replay(&cfg, &input, &output);
    assert_eq!(rc, 0, "stderr: {err}");
    assert!(out.contains("replay: 8 frames in, 5 forwarded, 2 dropped, 1 passed to kernel"), "{out}");
    assert!(out.contains("dropped eth_truncated"), "{out}");
    assert!(out.contains("dropped no_conn"), "{out}");
    assert!(out.contains("passed not_service"), "{out}");
    assert!(out.contains("connections: 3 created"), "{out}");
    let got = read_pcap(&output);
    assert_eq!(got.len(), 5);
    assert_eq!(got[0].1, tcp_frame(DIR_R_MAC, RS1_MAC, CLIENT, RS1, 40000, 8080, SYN, 63, &[]));
    assert_eq!(got[1].1, tcp_frame(DIR_C_MAC, CLIENT_MAC, VIP, CLIENT, 80, 40000, SYNACK, 63, &[]));
    assert_eq!(got[0].0, Duration::from_millis(1000), "stamped with the input's capture time");
    assert_eq!(got[4].0, Duration::from_millis(401_005));
    for (_, f) in &got {
        assert_checksums(f);
    }
}

#[test]
fn replay_with_ipvsadm_rules_uses_kernel_list_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, config_json("")).unwrap();
    let rules = dir.path().join("rules");
    std::fs::write(
        &rules,
        "# saved with ipvsadm -S -n\n-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.19.0.11:8080 -m -w 1\n-a -t 198.18.0.100:80 -r 198.19.0.12:8080 -m -w 1\n",
    )
    .unwrap();
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    write_pcap(&input, &[(0, tcp_frame(CLIENT_MAC, DIR_C_MAC, CLIENT, VIP, 40000, 80, SYN, 64, &[]))]);
    let (rc, out, err) = xvs(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--ipvsadm-rules",
        rules.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert_eq!(rc, 0, "stderr: {err}");
    assert!(out.contains("1 forwarded"), "{out}");
    let got = read_pcap(&output);
    // IPVS inserts each new real server at the head: the last added (RS2) is picked first.
    assert_eq!(got[0].1, tcp_frame(DIR_R_MAC, RS2_MAC, CLIENT, RS2, 40000, 8080, SYN, 63, &[]));
}

#[test]
fn replay_reports_bad_inputs_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, config_json("").replace(r#""mtu": 1500"#, r#""mtu": 100"#)).unwrap();
    let (rc, _, err) =
        xvs(&["replay", "--config", cfg.to_str().unwrap(), "--input", "/nonexistent.pcap", "--output", "/tmp/x.pcap"]);
    assert_eq!(rc, 1);
    assert!(err.contains("director.mtu: 100 is out of range (576..=1778)"), "{err}");
    // Jumbo frames do not fit one AF_XDP frame: refused with the reason.
    std::fs::write(&cfg, config_json("").replace(r#""mtu": 1500"#, r#""mtu": 9000"#)).unwrap();
    let (rc, _, err) =
        xvs(&["replay", "--config", cfg.to_str().unwrap(), "--input", "/nonexistent.pcap", "--output", "/tmp/x.pcap"]);
    assert_eq!(rc, 1);
    assert!(err.contains("director.mtu: 9000 does not fit one AF_XDP frame: at most 1778"), "{err}");
    // VLAN ids and subnets are checked, naming the field.
    let bad = [
        (
            r#""interface": "xvs-r"}"#,
            r#""interface": "xvs-r", "vlan": 4095}"#,
            "neighbours[1].vlan: 4095 is out of range (1..=4094)",
        ),
        (
            r#""neighbours""#,
            r#""connected": [{"subnet": "198.18.0.0/33", "interface": "xvs-c"}], "neighbours""#,
            "connected[0].subnet: '198.18.0.0/33' is not a subnet (a.b.c.d/len)",
        ),
        (
            r#""neighbours""#,
            r#""connected": [{"subnet": "198.18.0.0/24", "interface": "eth9"}], "neighbours""#,
            "connected[0].interface",
        ),
    ];
    for (from, to, want) in bad {
        std::fs::write(&cfg, config_json("").replacen(from, to, 1)).unwrap();
        let (rc, _, err) = xvs(&[
            "replay",
            "--config",
            cfg.to_str().unwrap(),
            "--input",
            "/nonexistent.pcap",
            "--output",
            "/tmp/x.pcap",
        ]);
        assert_eq!(rc, 1);
        assert!(err.contains(want), "{err}");
    }
    std::fs::write(&cfg, config_json("")).unwrap();
    let (rc, _, err) =
        xvs(&["replay", "--config", cfg.to_str().unwrap(), "--input", "/nonexistent.pcap", "--output", "/tmp/x.pcap"]);
    assert_eq!(rc, 1);
    assert!(err.contains("/nonexistent.pcap"), "{err}");
    let notpcap = dir.path().join("not.pcap");
    std::fs::write(&notpcap, b"hello, this is not a capture file at all").unwrap();
    let (rc, _, err) = xvs(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        notpcap.to_str().unwrap(),
        "--output",
        dir.path().join("o.pcap").to_str().unwrap(),
    ]);
    assert_eq!(rc, 1);
    assert!(err.contains("not a pcap file"), "{err}");
    let rules = dir.path().join("rules");
    std::fs::write(&rules, "-A -t 198.18.0.100:80 -s nope\n").unwrap();
    let (rc, _, err) = xvs(&["check", "--config", cfg.to_str().unwrap(), "--ipvsadm-rules", rules.to_str().unwrap()]);
    assert_eq!(rc, 1);
    assert!(err.contains("line 1") && err.contains("Scheduler or persistence engine not found"), "{err}");
}

/// `xvs-pktgen send --pcap` as `xvs replay`'s input: a SYN flood from 1000 sources into the
/// demo config's NAT service comes out as 1000 SYNs to its real servers, 3:2:1 as wrr weighs.
#[test]
fn a_pktgen_capture_replays_through_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("flood.pcap"), dir.path().join("out.pcap"));
    let o = Command::new(env!("CARGO_BIN_EXE_xvs-pktgen"))
        .args(["send", "--pcap"])
        .arg(&input)
        .args(["--profile", "syn", "--dst-mac", "02:00:00:00:00:01", "--dst", "198.18.0.100", "--dport", "80"])
        .args(["--src", "198.18.0.2", "--sport", "20000-20999", "--count", "1000", "--rate", "100000"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sent = read_pcap(&input);
    assert_eq!(sent.len(), 1000);
    // Timestamps follow the rate: 10 us apart.
    assert_eq!(sent[999].0 - sent[0].0, Duration::from_micros(9990));
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/replay-demo.json");
    let (code, out, err) = replay(&cfg, &input, &output);
    assert_eq!(code, 0, "{out}{err}");
    let got = read_pcap(&output);
    assert_eq!(got.len(), 1000, "{out}");
    let mut per_server = std::collections::BTreeMap::new();
    for (_, f) in &got {
        assert_checksums(f);
        *per_server.entry(f[30..34].to_vec()).or_insert(0) += 1;
    }
    assert_eq!(per_server.values().copied().collect::<Vec<_>>(), [500, 333, 167], "{per_server:?}");
}
