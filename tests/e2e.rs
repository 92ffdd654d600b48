//! End to end: `xvs run` on veths in network namespaces, real TCP through it.
//!
//! Each test builds its own topology with `tools/netns-topo` (a client, the director, a
//! switch and three real servers running `tools/httpd.py`; addresses from 198.18.0.0/15 only)
//! and removes it when done, even on failure. Tests run one at a time (they share the CPU
//! with a busy-polling director). Needs root, iproute2, ethtool, curl and python3
//! (`tools/setup-deps` installs them).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const VIP: &str = "198.18.0.100";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn xvs() -> &'static str {
    env!("CARGO_BIN_EXE_xvs")
}

fn require_root() {
    let uid = Command::new("id").arg("-u").output().expect("id");
    assert_eq!(String::from_utf8_lossy(&uid.stdout).trim(), "0", "the namespace tests need root");
}

/// A topology; removed on drop.
struct Topo {
    prefix: String,
}

impl Topo {
    fn up(prefix: &str, queues: u32) -> Topo {
        require_root();
        let t = Topo { prefix: prefix.to_string() };
        let st = Command::new(repo().join("tools/netns-topo"))
            .args(["up", prefix, &queues.to_string()])
            .env("XVS", xvs())
            .status()
            .expect("tools/netns-topo");
        assert!(st.success(), "tools/netns-topo up {prefix} failed");
        t
    }

    fn ns(&self, which: &str) -> String {
        format!("{}-{which}", self.prefix)
    }

    /// Runs a command in namespace `which`; (success, stdout).
    fn exec(&self, which: &str, args: &[&str]) -> (bool, String) {
        let out =
            Command::new("ip").args(["netns", "exec", &self.ns(which)]).args(args).output().expect("ip netns exec");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// GET `url` from the client; the body, or None.
    fn curl(&self, url: &str) -> Option<String> {
        let (ok, body) = self.exec("c", &["curl", "-s", "-f", "-m", "5", url]);
        ok.then_some(body)
    }

    fn name_at(&self, port: u16) -> String {
        self.curl(&format!("http://{VIP}:{port}/name"))
            .unwrap_or_else(|| panic!("no answer from {VIP}:{port}"))
            .trim()
            .to_string()
    }

    /// The director starts with `config` (written to a file).
    fn director(&self, config: &str) -> Director {
        let path = std::env::temp_dir().join(format!("xvs-e2e-{}.json", self.prefix));
        std::fs::write(&path, config).expect("write config");
        Director::start(self, &path)
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tools/netns-topo")).args(["down", &self.prefix]).status();
    }
}

/// A running `xvs run`; SIGTERM on drop.
struct Director {
    child: Option<Child>,
    log: PathBuf,
}

impl Director {
    fn start(t: &Topo, config: &Path) -> Director {
        let log = std::env::temp_dir().join(format!("xvs-e2e-{}.log", t.prefix));
        let f = std::fs::File::create(&log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns("d"), xvs(), "run", "--config"])
            .arg(config)
            .stdout(f.try_clone().expect("log"))
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .expect("start xvs run");
        let mut d = Director { child: Some(child), log };
        // Ready when it says so (sockets bound, programs attached), or fail with its output.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !d.output().contains("director up") {
            if let Some(st) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("xvs run exited ({st}) before it was up:\n{}", d.output());
            }
            assert!(Instant::now() < deadline, "xvs run not up within 20 s:\n{}", d.output());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, wait (bounded) and return (exit success, output).
    fn stop(mut self) -> (bool, String) {
        let ok = self.terminate();
        (ok, self.output())
    }

    fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else { return false };
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The repository's config.json with another worker count.
fn config(workers: u32) -> String {
    let text = std::fs::read_to_string(repo().join("config.json")).expect("config.json");
    text.replace("\"workers\": 1", &format!("\"workers\": {workers}"))
}

fn counts(names: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

/// The per-worker summary lines printed at shutdown: (handoff out, handoff in, lost).
fn worker_lines(out: &str) -> Vec<(u64, u64, i64)> {
    out.lines()
        .filter(|l| l.starts_with("worker ") && l.contains(" rx "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let after = |k: &str| w.iter().position(|x| *x == k).map(|i| w[i + 1]).unwrap_or("?");
            let hout = w.iter().position(|x| *x == "handoff").map(|i| w[i + 2]).unwrap_or("?");
            (
                hout.parse().expect("handoff out"),
                after("in").parse().expect("handoff in"),
                w[w.len() - 2].parse().expect("lost"),
            )
        })
        .collect()
}

fn expected_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + 3) % 251) as u8).collect()
}

#[test]
fn every_mode_serves_real_tcp_with_ipvs_scheduling() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xe1", 1);
    let d = t.director(&config(1));

    // NAT, wrr 3:2:1: IPVS's wrr sequence over one round of 6 is r1 r1 r2 r1 r2 r3.
    let nat: Vec<String> = (0..6).map(|_| t.name_at(80)).collect();
    assert_eq!(nat, ["r1", "r1", "r2", "r1", "r2", "r3"], "NAT wrr sequence");
    // FULLNAT and TUN, rr: r1 r2 r3 in turn.
    for port in [81, 8083] {
        let got: Vec<String> = (0..6).map(|_| t.name_at(port)).collect();
        assert_eq!(got, ["r1", "r2", "r3", "r1", "r2", "r3"], "rr sequence on port {port}");
    }
    // DR with persistence (-p 300, /24): every connection of this client goes to one server.
    let dr: Vec<String> = (0..6).map(|_| t.name_at(8082)).collect();
    assert_eq!(counts(&dr).len(), 1, "DR persistence: {dr:?}");

    // Bytes come back intact through every mode (many segments, both directions).
    for port in [80, 81, 8082, 8083] {
        let n = 300_000;
        let (ok, _) =
            t.exec("c", &["sh", "-c", &format!("curl -s -f -m 10 -o /tmp/xvs-e2e-body http://{VIP}:{port}/bytes/{n}")]);
        assert!(ok, "download through port {port}");
        let mut body = Vec::new();
        std::fs::File::open("/tmp/xvs-e2e-body").and_then(|mut f| f.read_to_end(&mut body)).expect("body");
        assert!(body == expected_bytes(n), "port {port}: {} bytes, content differs", body.len());
    }
    let _ = std::fs::remove_file("/tmp/xvs-e2e-body");

    let (ok, out) = d.stop();
    assert!(ok, "xvs run exits cleanly:\n{out}");
    assert!(out.contains("-> 198.19.0.13:8080 nat weight 1: 1 conns"), "NAT counters:\n{out}");
    for (_, _, lost) in worker_lines(&out) {
        assert_eq!(lost, 0, "no UMEM frame is lost:\n{out}");
    }
}

#[test]
fn host_traffic_keeps_working_and_shutdown_detaches() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xe2", 1);
    // The director host's own TCP service, on its own address.
    let mut host_srv = Command::new("ip")
        .args(["netns", "exec", &t.ns("d"), "python3"])
        .arg(repo().join("tools/httpd.py"))
        .args(["director", "9000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("host server");
    let d = t.director(&config(1));
    let (ok, link) = t.exec("d", &["ip", "link", "show"]);
    assert!(ok && link.matches("xdp").count() >= 2, "programs attached:\n{link}");

    // ARP for the director's address and the VIP, ping, and the host's own TCP service.
    let (ok, _) = t.exec("c", &["ping", "-c", "2", "-i", "0.2", "-W", "2", "198.18.0.1"]);
    assert!(ok, "ping to the director's own address");
    let (ok, _) = t.exec("c", &["ping", "-c", "1", "-W", "2", VIP]);
    assert!(ok, "ping to the VIP (held by the director's kernel)");
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        if let Some(b) = t.curl("http://198.18.0.1:9000/name") {
            break b;
        }
        assert!(Instant::now() < deadline, "host TCP service unreachable while xvs runs");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(body.trim(), "director");
    let (_, neigh) = t.exec("c", &["ip", "neigh", "show", VIP]);
    assert!(!neigh.contains("INCOMPLETE") && neigh.contains("lladdr"), "the VIP resolves: {neigh}");
    assert_eq!(t.name_at(81), "r1", "and the director forwards");

    let (ok, out) = d.stop();
    let _ = host_srv.kill();
    let _ = host_srv.wait();
    assert!(ok, "clean exit after SIGTERM:\n{out}");
    assert!(out.contains("XDP programs detached"), "{out}");
    let (_, link) = t.exec("d", &["ip", "link", "show"]);
    assert!(!link.contains("xdp"), "no XDP program left after SIGTERM:\n{link}");
    // Nothing left bound: the same queues bind again at once (and a fresh rr starts over).
    let d = t.director(&config(1));
    assert_eq!(t.name_at(81), "r1");
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
}

#[test]
fn two_queues_two_workers_hand_replies_to_the_owner() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xe3", 2);
    let d = t.director(&config(2));
    // Many connections: the client's kernel spreads them over both queues by flow hash, the
    // real servers' replies land on either queue, and every one must complete.
    for port in [80, 81] {
        let names: Vec<String> = (0..24).map(|_| t.name_at(port)).collect();
        let c = counts(&names);
        assert_eq!(c.values().sum::<usize>(), 24);
        assert!(c.len() >= 2, "port {port} spreads over servers: {c:?}");
    }
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
    let w = worker_lines(&out);
    assert_eq!(w.len(), 2, "{out}");
    let (hout, hin): (u64, u64) = w.iter().fold((0, 0), |(a, b), x| (a + x.0, b + x.1));
    assert!(hout > 0, "some frames reached a worker that does not own them:\n{out}");
    assert_eq!(hout, hin, "every handed-off frame arrived:\n{out}");
    assert!(w.iter().all(|x| x.2 == 0), "no frame lost:\n{out}");
    assert!(out.contains("xvs-c queue 1") && out.contains("-> worker 1"), "{out}");
}

#[test]
fn bad_setups_are_refused_with_the_field_named() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xe4", 1);
    let path = std::env::temp_dir().join("xvs-e2e-bad.json");
    // (exit success, stderr) of `xvs run` with `config`.
    let run = |config: String| {
        std::fs::write(&path, config).expect("write");
        let out = Command::new("ip")
            .args(["netns", "exec", &t.ns("d"), xvs(), "run", "--config"])
            .arg(&path)
            .output()
            .expect("xvs run");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = run(config(2));
    assert!(!ok && err.contains("director.workers") && err.contains("xvs-c, which has 1"), "{err}");
    let (_, link) = t.exec("d", &["ip", "link", "show"]);
    assert!(!link.contains("xdp"), "nothing attached after a refused start:\n{link}");
    let (ok, err) = run(config(1).replace("xvs-r", "nosuch0"));
    assert!(!ok && err.contains("nosuch0"), "{err}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_real_server_resolved_after_start_gets_traffic() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xe5", 1);
    // r3 is unreachable when the director starts: its next hop cannot be resolved.
    assert!(t.exec("r3", &["ip", "link", "set", "eth0", "down"]).0);
    let d = t.director(&config(1));
    assert!(d.output().contains("next hop for 198.19.0.13 unresolved"), "{}", d.output());
    assert!(t.exec("r3", &["ip", "link", "set", "eth0", "up"]).0);
    let _ = t.exec("r3", &["ip", "route", "replace", "default", "via", "198.19.0.1"]);
    // The director re-reads the kernel's neighbour table every 2 s (soliciting what is
    // missing): r3's turn in the rr order starts to answer.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if t.curl(&format!("http://{VIP}:81/name")).is_some_and(|b| b.trim() == "r3") {
            break;
        }
        assert!(Instant::now() < deadline, "r3 never reached:\n{}", d.output());
    }
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
}

#[test]
fn xvsadm_reconfigures_a_running_director_without_dropping_connections() {
    use std::io::{BufRead, BufReader, Write};
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xe6", 1);
    let sock = std::env::temp_dir().join("xvs-e2e-xe6.sock");
    let conf = config(1).replacen('{', &format!("{{\n  \"control\": {{ \"socket\": \"{}\" }},", sock.display()), 1);
    let d = t.director(&conf);
    let adm = |args: &[&str]| {
        let out =
            Command::new(env!("CARGO_BIN_EXE_xvsadm")).args(args).env("XVS_SOCKET", &sock).output().expect("xvsadm");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let meta = std::fs::metadata(&sock).expect("control socket");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    let (code, out, _) = adm(&["-Ln"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(
            "TCP  198.18.0.100:81 rr\n  -> 198.19.0.11:8080             FullNat 1      0          0         \n"
        ),
        "{out}"
    );

    // One keep-alive connection through FULLNAT, held across every change below.
    let mut client = Command::new("ip")
        .args(["netns", "exec", &t.ns("c"), "python3"])
        .arg(repo().join("tools/keepalive_client.py"))
        .args([VIP, "81"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client");
    let mut tx = client.stdin.take().expect("stdin");
    let mut rx = BufReader::new(client.stdout.take().expect("stdout"));
    let mut ask = || {
        tx.write_all(b"\n").and_then(|_| tx.flush()).expect("client stdin");
        let mut line = String::new();
        rx.read_line(&mut line).expect("client stdout");
        line.trim().to_string()
    };
    let server = ask();
    assert!(server.starts_with('r'), "{server}");
    let other = if server == "r1" { "198.19.0.12" } else { "198.19.0.11" };
    let changes: Vec<Vec<String>> = vec![
        vec!["-e", "-t", "198.18.0.100:81", "-r", &format!("{other}:8080"), "-j", "-w", "5"],
        vec!["-d", "-t", "198.18.0.100:81", "-r", &format!("{other}:8080")],
        vec!["-a", "-t", "198.18.0.100:81", "-r", &format!("{other}:8080"), "-j"],
        vec!["-A", "-t", "198.18.0.100:90", "-s", "wlc"],
        vec!["-a", "-t", "198.18.0.100:90", "-r", "198.19.0.13:8080", "-m"],
        vec!["-E", "-t", "198.18.0.100:81", "-s", "wrr"],
        vec!["-D", "-t", "198.18.0.100:90"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect();
    for round in 0..3 {
        for c in &changes {
            let args: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
            let (code, _, err) = adm(&args);
            assert_eq!(code, Some(0), "{args:?}: {err}");
            assert_eq!(ask(), server, "round {round}, after {args:?}: the connection keeps its server");
        }
    }
    // ipvsadm's errors and exit codes; nothing changes.
    let before = adm(&["-S", "-n"]).1;
    let (code, _, err) = adm(&["-a", "-t", "198.18.0.100:81", "-r", "198.19.0.11:8080", "-j"]);
    assert_eq!((code, err.trim()), (Some(1), "Destination already exists"));
    let (code, _, err) = adm(&["-A", "-t", "198.18.0.100:91", "-s", "nosuch"]);
    assert_eq!((code, err.trim()), (Some(1), "Scheduler or persistence engine not found"));
    let (code, _, err) = adm(&["-d", "-t", "198.18.0.100:99", "-r", "198.19.0.11"]);
    assert_eq!((code, err.trim()), (Some(1), "Service not defined"));
    assert_eq!(adm(&["-S", "-n"]).1, before, "refused commands change nothing");

    // Deleting the connection's own server ends it; new connections avoid the server.
    let ip = format!("198.19.0.1{}:8080", &server[1..]);
    assert_eq!(adm(&["-d", "-t", "198.18.0.100:81", "-r", &ip]).0, Some(0));
    assert!(ask().starts_with("error"), "the connection to a deleted server ends");
    for _ in 0..4 {
        assert_ne!(t.name_at(81), server, "a deleted server gets no new connection");
    }
    // Save, clear, restore: the same table.
    let saved = adm(&["-S", "-n"]).1;
    assert_eq!(adm(&["-C"]).0, Some(0));
    assert_eq!(adm(&["-Ln"]).1.lines().count(), 3, "only the header lines");
    let mut r = Command::new(env!("CARGO_BIN_EXE_xvsadm"))
        .arg("-R")
        .env("XVS_SOCKET", &sock)
        .stdin(Stdio::piped())
        .spawn()
        .expect("xvsadm -R");
    r.stdin.take().expect("stdin").write_all(saved.as_bytes()).expect("rules");
    assert!(r.wait().expect("xvsadm -R").success());
    assert_eq!(adm(&["-S", "-n"]).1, saved);
    assert!(t.curl(&format!("http://{VIP}:80/name")).is_some(), "restored services forward");
    let _ = client.kill();
    let _ = client.wait();
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
    assert!(!sock.exists(), "the socket is removed at exit");
}
