//! End to end: `xvs run` on veths in network namespaces, real TCP through it.
//!
//! Each test builds its own topology with `tools/netns-topo` (a client, the director, a
//! switch and three real servers running `tools/httpd.py`; addresses from 198.18.0.0/15 only)
//! and removes it when done, even on failure. Tests run one at a time (they share the CPU
//! with a busy-polling director). The HA tests build two directors with keepalived
//! (`tools/netns-ha-topo`), the scale-out test two directors behind a BIRD router
//! (`tools/netns-ecmp-topo`). Needs root, iproute2, ethtool, curl, socat, tcpdump, python3,
//! keepalived and bird2 (`tools/setup-deps` installs them).

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

/// Where iproute2's `ip` is (absolute: a test may put another `ip` first on xvs's PATH).
fn ip_binary() -> PathBuf {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("iproute2's ip")
}

fn require_root() {
    let uid = Command::new("id").arg("-u").output().expect("id");
    assert_eq!(String::from_utf8_lossy(&uid.stdout).trim(), "0", "the namespace tests need root");
}

/// A topology; removed on drop.
struct Topo {
    prefix: String,
    /// The script that built it (and takes it down).
    script: &'static str,
}

impl Topo {
    fn up(prefix: &str, queues: u32) -> Topo {
        Topo::up_with("tools/netns-topo", prefix, &[&queues.to_string()])
    }

    /// Two directors (namespaces `d1`, `d2`) between the client and two real servers
    /// (`tools/netns-ha-topo`).
    fn up_ha(prefix: &str) -> Topo {
        Topo::up_with("tools/netns-ha-topo", prefix, &[])
    }

    fn up_with(script: &'static str, prefix: &str, args: &[&str]) -> Topo {
        require_root();
        let t = Topo { prefix: prefix.to_string(), script };
        let st = Command::new(repo().join(script))
            .arg("up")
            .arg(prefix)
            .args(args)
            .env("XVS", xvs())
            .status()
            .expect("topology script");
        assert!(st.success(), "{script} up {prefix} failed");
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
        let _ = Command::new(repo().join(self.script)).args(["down", &self.prefix]).status();
    }
}

/// A running `xvs run`; SIGTERM on drop.
struct Director {
    child: Option<Child>,
    log: PathBuf,
}

impl Director {
    fn start(t: &Topo, config: &Path) -> Director {
        Director::start_with(t, config, &[], &[])
    }

    /// Starts `xvs run` with `path` prepended to its PATH (to catch programs it runs).
    fn start_with_path(t: &Topo, config: &Path, path: &Path) -> Director {
        let path = format!("{}:{}", path.display(), std::env::var("PATH").unwrap_or_default());
        Director::start_with(t, config, &[("PATH", &path)], &[])
    }

    /// Starts `xvs run` with more environment and arguments.
    fn start_with(t: &Topo, config: &Path, env: &[(&str, &str)], args: &[&str]) -> Director {
        Director::start_in(t, "d", config, env, args)
    }

    /// Starts `xvs run` in namespace `which` (the HA topology's `d1` and `d2`).
    fn start_in(t: &Topo, which: &str, config: &Path, env: &[(&str, &str)], args: &[&str]) -> Director {
        let log = std::env::temp_dir().join(format!("xvs-e2e-{}-{which}.log", t.prefix));
        let f = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(ip_binary());
        cmd.envs(env.iter().copied());
        let child = cmd
            .args(["netns", "exec", &t.ns(which), xvs(), "run", "--config"])
            .arg(config)
            .args(args)
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

/// `text` with the number after the first `key` replaced by `value`.
fn with_number_after(text: &str, key: &str, value: &str) -> String {
    let at = text.find(key).expect("key") + key.len();
    let end = at + text[at..].find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
    format!("{}{value}{}", &text[..at], &text[end..])
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
    // Log lines carry a time, level and target before the message.
    out.lines()
        .filter_map(|l| l.find("worker ").map(|i| &l[i..]))
        .filter(|l| l.contains(" rx ") && l.contains(" lost"))
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

    // NAT, wrr 3:2:1, built as the kernel builds it (`-A`, then `-a` of r3, r2, r1, each
    // followed by `dest_changed`: cw stays 1): one pass over all, then the weighted round.
    let nat: Vec<String> = (0..6).map(|_| t.name_at(80)).collect();
    assert_eq!(nat, ["r1", "r2", "r3", "r1", "r1", "r2"], "NAT wrr sequence");
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

    // Idle, the director sleeps: under 5% of a core over two seconds (all its threads), and
    // the next connection is served at once.
    let pid = d.child.as_ref().expect("running").id();
    let cpu_ticks = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let fields: Vec<u64> =
            stat.rsplit(')').next().unwrap_or("").split_whitespace().filter_map(|f| f.parse().ok()).collect();
        // After the command: state is not a number, so utime and stime are the 12th and 13th.
        fields[10] + fields[11]
    };
    std::thread::sleep(Duration::from_millis(200));
    let (t0, c0) = (Instant::now(), cpu_ticks());
    std::thread::sleep(Duration::from_secs(2));
    let (busy, wall) = ((cpu_ticks() - c0) as f64 / 100.0, t0.elapsed().as_secs_f64());
    eprintln!("idle director: {:.1}% of a core", 100.0 * busy / wall);
    assert!(busy / wall < 0.05, "idle director used {:.1}% of a core", 100.0 * busy / wall);
    let start = Instant::now();
    assert!(t.name_at(80).starts_with('r'));
    assert!(start.elapsed() < Duration::from_millis(500), "woke in {:?}", start.elapsed());

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
        // Bounded: a setup that is wrongly accepted must fail the test, not hang it.
        let out = Command::new("ip")
            .args(["netns", "exec", &t.ns("d"), "timeout", "20", xvs(), "run", "--config"])
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
    // FULLNAT local ports the kernel could hand out to the host's own connections.
    let (ok, err) = run(config(1).replace("[10000, 32767]", "[20000, 59999]"));
    assert!(!ok && err.contains("director.local_ports: 20000-59999 overlaps the kernel's ephemeral ports"), "{err}");
    let (ok, err) = run(config(1).replace("[10000, 32767]", "[500, 9000]"));
    assert!(!ok && err.contains("includes privileged ports (below 1024)"), "{err}");
    // A worker pinned to a core this machine does not have.
    let (ok, err) = run(config(1).replacen("\"workers\": 1", "\"workers\": 1, \"cores\": [4095]", 1));
    assert!(!ok && err.contains("director.cores: core 4095 is not online"), "{err}");
    // A connection table beyond what a worker's table can index (2^23 - 1; the check that
    // the tables fit this machine's memory is `control::host`'s, with its figures).
    let cfg = config(1);
    assert!(cfg.contains("\"max_per_worker\": "), "config.json sets conn.max_per_worker");
    let huge = with_number_after(&cfg, "\"max_per_worker\": ", "1073741824");
    let (ok, err) = run(huge);
    assert!(!ok && err.contains("conn.max_per_worker: 1073741824 is out of range (16..=8388607)"), "{err}");
    let (_, link) = t.exec("d", &["ip", "link", "show"]);
    assert!(!link.contains("xdp"), "nothing attached after a refused start:\n{link}");
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

// ---------------------------------------------------------------- operations (issue 4)

/// `socat TCP-LISTEN` on a real server: each connection is greeted with the server's name,
/// then echoed. Killed on drop.
struct EchoServer(Child);

impl EchoServer {
    fn start(t: &Topo, server: u32, port: u16) -> EchoServer {
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns(&format!("r{server}")), "socat"])
            .arg(format!("TCP-LISTEN:{port},fork,reuseaddr"))
            .arg(format!("SYSTEM:echo r{server}; exec cat"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat listener");
        // Ready when it answers (bounded).
        let deadline = Instant::now() + Duration::from_secs(5);
        let addr = format!("TCP:198.19.0.1{server}:{port}");
        loop {
            let (ok, out) = t.exec(&format!("r{server}"), &["socat", "-t", "1", "-T", "2", "-", &addr]);
            if ok && out.starts_with(&format!("r{server}")) {
                break;
            }
            assert!(Instant::now() < deadline, "echo server r{server}:{port} not up");
            std::thread::sleep(Duration::from_millis(20));
        }
        EchoServer(child)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A long-lived TCP connection from the client (`socat - TCP:VIP:port`).
struct LongConn {
    child: Child,
    tx: std::process::ChildStdin,
    rx: std::sync::mpsc::Receiver<String>,
    server: String,
}

impl LongConn {
    fn open(t: &Topo, port: u16) -> LongConn {
        use std::io::BufRead;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &t.ns("c"), "socat", "-", &format!("TCP:{VIP}:{port},connect-timeout=3")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat client");
        let tx = child.stdin.take().expect("stdin");
        let out = child.stdout.take().expect("stdout");
        let (ltx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(l) = line else { break };
                if ltx.send(l).is_err() {
                    break;
                }
            }
        });
        let server = rx.recv_timeout(Duration::from_secs(5)).expect("greeting from the real server");
        LongConn { child, tx, rx, server }
    }

    /// Sends a line; what comes back within 3 s.
    fn echo(&mut self, msg: &str) -> Option<String> {
        use std::io::Write;
        self.tx.write_all(format!("{msg}\n").as_bytes()).ok()?;
        self.tx.flush().ok()?;
        self.rx.recv_timeout(Duration::from_secs(3)).ok()
    }
}

impl Drop for LongConn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The greeting of a new connection to the VIP (which real server it reached).
fn new_conn(t: &Topo, port: u16) -> String {
    let (_, out) = t.exec("c", &["socat", "-t", "2", "-T", "3", "-", &format!("TCP:{VIP}:{port},connect-timeout=3")]);
    out.lines().next().unwrap_or("").to_string()
}

fn ops_config(sock: &Path, services: &str, extra: &str) -> String {
    format!(
        r#"{{
  "director": {{ "interfaces": [{{ "name": "xvs-c" }}, {{ "name": "xvs-r" }}], "dip": "198.19.0.1",
                "local_ports": [10000, 32767], "workers": 1 }},
  "control": {{ "socket": "{}" }},{extra}
  "services": [{services}]
}}"#,
        sock.display()
    )
}

fn echo_service(port: u16, mode: &str, servers: &[(u32, u32)], extra: &str) -> String {
    let rs: Vec<String> = servers
        .iter()
        .map(|(i, w)| format!(r#"{{ "addr": "198.19.0.1{i}", "port": 7000, "mode": "{mode}", "weight": {w} }}"#))
        .collect();
    format!(
        r#"{{ "proto": "tcp", "vip": "{VIP}", "port": {port}, "scheduler": "rr",{extra} "real_servers": [{}] }}"#,
        rs.join(", ")
    )
}

fn xvsadm(sock: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xvsadm")).args(args).env("XVS_SOCKET", sock).output().expect("xvsadm");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn long_lived_connections_survive_100_reconfigurations_and_reloads() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xe7", 1);
    let _echo: Vec<EchoServer> = (1..=3).map(|i| EchoServer::start(&t, i, 7000)).collect();
    let sock = std::env::temp_dir().join("xvs-e2e-xe7.sock");
    let file = |variant: u32| {
        let w = variant % 3 + 1;
        let fullnat: Vec<(u32, u32)> =
            if variant.is_multiple_of(2) { vec![(1, 1), (2, w), (3, 1)] } else { vec![(1, w), (2, 1)] };
        let services = [echo_service(7000, "nat", &[(1, 1), (2, 1)], ""), echo_service(7001, "fullnat", &fullnat, "")];
        ops_config(&sock, &services.join(",\n"), "")
    };
    let d = t.director(&file(1));
    let config = std::env::temp_dir().join("xvs-e2e-xe7.json");
    let adm = |args: &[&str]| xvsadm(&sock, args);

    // Two long-lived connections per service: rr puts them on r1 and r2.
    let mut conns: Vec<(u16, LongConn)> =
        [7000, 7000, 7001, 7001].iter().map(|&p| (p, LongConn::open(&t, p))).collect();
    let servers: Vec<String> = conns.iter().map(|(_, c)| c.server.clone()).collect();
    assert_eq!(servers, ["r1", "r2", "r1", "r2"]);

    let v = format!("{VIP}:7000");
    let f = format!("{VIP}:7001");
    for i in 0..100u32 {
        let w = (i % 4).to_string();
        let (what, ok) = match i % 5 {
            0 => ("add r3", adm(&["-a", "-t", &v, "-r", "198.19.0.13:7000", "-m", "-w", "2"])),
            1 => ("weight r1 (0 = draining)", adm(&["-e", "-t", &v, "-r", "198.19.0.11:7000", "-m", "-w", &w])),
            2 => ("delete r3", adm(&["-d", "-t", &v, "-r", "198.19.0.13:7000"])),
            3 => ("weight r2 fullnat", adm(&["-e", "-t", &f, "-r", "198.19.0.12:7000", "-j", "-w", &w])),
            _ => {
                std::fs::write(&config, file(i / 5)).expect("config");
                if (i / 5) % 2 == 1 {
                    // SIGHUP: done when the director logs it.
                    let before = d.output().matches("SIGHUP: reloaded").count();
                    let pid = d.child.as_ref().expect("running").id().to_string();
                    let st = Command::new("kill").args(["-HUP", &pid]).status().expect("kill");
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while d.output().matches("SIGHUP: reloaded").count() == before {
                        assert!(Instant::now() < deadline, "SIGHUP not applied:\n{}", d.output());
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    ("SIGHUP", (st.code(), String::new(), String::new()))
                } else {
                    let out =
                        Command::new(xvs()).args(["reload"]).env("XVS_SOCKET", &sock).output().expect("xvs reload");
                    (
                        "xvs reload",
                        (out.status.code(), String::new(), String::from_utf8_lossy(&out.stderr).into_owned()),
                    )
                }
            }
        };
        assert_eq!(ok.0, Some(0), "change {i} ({what}): {}", ok.2);
        for (k, (_, c)) in conns.iter_mut().enumerate() {
            let msg = format!("change {i} conn {k}");
            assert_eq!(
                c.echo(&msg).as_deref(),
                Some(msg.as_str()),
                "change {i} ({what}): connection {k} to {}",
                c.server
            );
        }
    }
    assert!(d.output().matches("tables changed").count() >= 100, "{}", d.output());

    // A removed server's new connections stop at once.
    assert_eq!(adm(&["-a", "-t", &v, "-r", "198.19.0.13:7000", "-m"]).0, Some(0));
    let reached: Vec<String> = (0..3).map(|_| new_conn(&t, 7000)).collect();
    assert!(reached.contains(&"r3".to_string()), "{reached:?}");
    assert_eq!(adm(&["-d", "-t", &v, "-r", "198.19.0.13:7000"]).0, Some(0));
    for _ in 0..6 {
        let s = new_conn(&t, 7000);
        assert!(s == "r1" || s == "r2", "after -d r3, a new connection reached '{s}'");
    }

    // Listings: connections, counters and -Z, rates, timeouts and --set.
    let (_, conns_out, _) = adm(&["-L", "-n", "-c"]);
    assert!(
        conns_out.starts_with(
            "IPVS connection entries\npro expire state       source             virtual            destination\n"
        ),
        "{conns_out}"
    );
    assert!(
        conns_out.lines().filter(|l| l.contains("ESTABLISHED") && l.contains(&format!("{VIP}:7001"))).count() >= 2,
        "{conns_out}"
    );
    let (_, stats, _) = adm(&["-L", "-n", "--stats", "-t", &v]);
    let conns_of = |text: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with("TCP  "))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(conns_of(&stats) >= 10, "{stats}");
    assert_eq!(adm(&["-Z", "-t", &v]).0, Some(0));
    assert_eq!(conns_of(&adm(&["-L", "-n", "--stats", "-t", &v]).1), 0);
    assert!(conns_of(&adm(&["-L", "-n", "--stats", "-t", &f]).1) >= 2, "-Z of one service leaves the other");
    let (code, _, err) = adm(&["-Z", "-t", &format!("{VIP}:7999")]);
    assert_eq!((code, err.trim()), (Some(1), "No such service"));
    let (code, rate, _) = adm(&["-L", "-n", "--rate"]);
    assert_eq!(code, Some(0));
    assert!(
        rate.contains("Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n"),
        "{rate}"
    );
    // The estimator's rates move while the long-lived connections talk (2 s samples).
    let in_pps = |text: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(&format!("TCP  {f}"))).unwrap_or("");
        line.split_whitespace().nth(3).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    let started = Instant::now();
    while in_pps(&adm(&["-L", "-n", "--rate"]).1) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "no rate after 10 s: {}", adm(&["-L", "-n", "--rate"]).1);
        for (_, c) in conns.iter_mut().skip(2) {
            assert_eq!(c.echo("rate").as_deref(), Some("rate"));
        }
    }
    assert_eq!(adm(&["-L", "--timeout"]).1, "Timeout (tcp tcpfin udp): 900 120 300\n");
    assert_eq!(adm(&["--set", "1000", "0", "30"]).0, Some(0));
    assert_eq!(adm(&["-L", "--timeout"]).1, "Timeout (tcp tcpfin udp): 1000 120 30\n");

    let (code, workers, _) = adm(&["--workers"]);
    assert_eq!(code, Some(0));
    assert!(
        workers.starts_with("xdp: ") && workers.contains("worker 0: rx ") && workers.contains(" 0 lost"),
        "{workers}"
    );
    assert!(workers.contains("  ring 1: rx_dropped "), "{workers}");

    // Another user cannot reach the socket (mode 0600, owned by the director's user).
    let other = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_xvsadm"), "-Ln"])
        .env("XVS_SOCKET", &sock)
        .output()
        .expect("setpriv");
    assert_eq!(other.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&other.stderr).contains("Permission denied"), "{other:?}");

    // Malformed and random requests on the control socket: answered with an error, never a
    // crash, never a change.
    let before = adm(&["-S", "-n"]).1;
    fuzz_control_socket(&sock);
    assert_eq!(adm(&["-S", "-n"]).1, before, "malformed requests changed the tables");
    for (k, (_, c)) in conns.iter_mut().enumerate() {
        assert_eq!(c.echo("after fuzz").as_deref(), Some("after fuzz"), "connection {k}");
    }
    // A reload of a bad file, or of one that changes what needs a restart: refused whole.
    std::fs::write(&config, file(1).replace("\"rr\"", "\"nosuch\"")).expect("config");
    let out = Command::new(xvs()).arg("reload").env("XVS_SOCKET", &sock).output().expect("xvs reload");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("services[0].scheduler: 'nosuch' is not a scheduler"));
    std::fs::write(&config, file(1).replace("\"workers\": 1", "\"workers\": 2")).expect("config");
    let out = Command::new(xvs()).arg("reload").env("XVS_SOCKET", &sock).output().expect("xvs reload");
    assert!(String::from_utf8_lossy(&out.stderr).contains("director.workers: changed; restart xvs"), "{out:?}");
    assert_eq!(adm(&["-S", "-n"]).1, before, "refused reloads changed the tables");
    drop(conns);
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
    assert!(out.contains(" 0 lost"), "{out}");
}

/// Random bytes, broken JSON, requests of the wrong shape and random ipvsadm words that do
/// not parse: each gets an error reply (or none, for a request that never ends a line).
fn fuzz_control_socket(sock: &Path) {
    use rand::{Rng, SeedableRng};
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(4);
    let words = [
        "-A",
        "-E",
        "-D",
        "-a",
        "-e",
        "-d",
        "-t",
        "-u",
        "-r",
        "-s",
        "-w",
        "-p",
        "-M",
        "-x",
        "-y",
        "-m",
        "-g",
        "-i",
        "-j",
        "wlc",
        "rr",
        "nosuch",
        "198.18.0.100:7000",
        "198.18.0.100",
        "198.19.0.11:7000",
        "300",
        "-1",
        "70000",
        "255.255.255.0",
        "",
        "--set",
        "-Z",
        "-C",
        "-R",
        "x:y",
        "[::1]:80",
    ];
    let send = |line: &[u8]| -> String {
        let mut s = UnixStream::connect(sock).expect("control socket");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let _ = s.write_all(line);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut r = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut r);
        r
    };
    let mut sent = 0;
    for i in 0..300 {
        let line: Vec<u8> = match i % 4 {
            0 => (0..rng.gen_range(0..200)).map(|_| rng.gen::<u8>()).chain([b'\n']).collect(),
            1 => {
                let good = br#"{"Ipvsadm":{"args":["-a","-t","198.18.0.100:7000","-r","198.19.0.13:7000"]}}"#;
                let cut = rng.gen_range(0..good.len() - 1);
                good[..cut].iter().copied().chain([b'\n']).collect()
            }
            2 => {
                let shapes = [
                    r#"{"Restore":{"text":5}}"#,
                    r#"{"List":1}"#,
                    r#"["Ipvsadm"]"#,
                    r#"{"Nope":{}}"#,
                    "null",
                    r#"{"Ipvsadm":{"args":null}}"#,
                ];
                format!("{}\n", shapes[rng.gen_range(0..shapes.len())]).into_bytes()
            }
            _ => {
                let args: Vec<&str> = (0..rng.gen_range(0..8)).map(|_| words[rng.gen_range(0..words.len())]).collect();
                // Only commands that do not parse (those that do are real changes).
                if xvs::ipvsadm::parse_command(&args).is_ok() {
                    continue;
                }
                format!("{}\n", serde_json::json!({ "Ipvsadm": { "args": args } })).into_bytes()
            }
        };
        let reply = send(&line);
        assert!(reply.contains("\"Failed\""), "request {:?} got {reply:?}", String::from_utf8_lossy(&line));
        sent += 1;
    }
    assert!(sent > 250);
}

#[test]
fn health_checks_take_a_failed_server_out_and_bring_it_back() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xe8", 1);
    let mut echo: Vec<Option<EchoServer>> = (1..=3).map(|i| Some(EchoServer::start(&t, i, 7000))).collect();
    let sock = std::env::temp_dir().join("xvs-e2e-xe8.sock");
    // TCP checks every 300 ms; down after 2 failures, up after 2 successes. The FULLNAT
    // service checks over HTTP (the topology's httpd on 8080) and inhibits on failure.
    let tcp = r#" "health_check": { "kind": "tcp", "interval_ms": 300, "timeout_ms": 200, "rise": 2, "fall": 2 },"#;
    let http = r#" "inhibit_on_failure": true, "health_check": { "kind": "http", "port": 8080, "path": "/name", "status": 200, "interval_ms": 300, "timeout_ms": 200, "rise": 2, "fall": 2 },"#;
    let services = [
        echo_service(7000, "nat", &[(1, 1), (2, 1), (3, 1)], tcp),
        echo_service(7001, "fullnat", &[(1, 1), (2, 1)], http),
    ];
    let metrics = r#"
  "metrics": { "listen": "127.0.0.1:9190" },"#;
    let d = t.director(&ops_config(&sock, &services.join(",\n"), metrics));
    let (interval, fall, rise) = (Duration::from_millis(300), 2u32, 2u32);
    let scrape = || t.exec("d", &["curl", "-s", "-f", "-m", "5", "http://127.0.0.1:9190/metrics"]).1;
    // Pages are cached for a second: the first page rendered after `since` that holds `want`.
    let scrape_until = |want: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let m = scrape();
            if want(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "metrics never showed what was expected:\n{m}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let up_line = r#"xvs_server_up{proto="tcp",vip="198.18.0.100",port="7000",server="198.19.0.12:7000"}"#;
    assert!(scrape().contains(&format!("{up_line} 1")), "{}", scrape());
    let all: Vec<String> = (0..6).map(|_| new_conn(&t, 7000)).collect();
    assert_eq!(counts(&all).len(), 3, "every server gets connections: {all:?}");

    // Stop r2's listener: within interval x fall + 1 s no new connection goes to it.
    let stopped = Instant::now();
    echo[1] = None;
    let limit = interval * fall + Duration::from_secs(1);
    while !d.output().contains("health: 198.19.0.12:7000 of -t 198.18.0.100:7000 is down") {
        assert!(stopped.elapsed() < limit, "r2 not taken out within {limit:?}:\n{}", d.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..6 {
        let s = new_conn(&t, 7000);
        assert!(s == "r1" || s == "r3", "a new connection reached '{s}' while r2 is down");
    }
    let listing = xvsadm(&sock, &["-Ln", "-t", &format!("{VIP}:7000")]).1;
    assert!(!listing.contains("198.19.0.12"), "a failed server leaves the table: {listing}");
    let saved = xvsadm(&sock, &["-S", "-n"]).1;
    assert!(
        saved.contains("-a -t 198.18.0.100:7000 -r 198.19.0.12:7000 -m -w 1\n"),
        "-S saves what was configured: {saved}"
    );
    let m = scrape_until(&|m: &str| m.contains(&format!("{up_line} 0")));
    assert!(m.contains("xvs_server_health_transitions_total{proto=\"tcp\",vip=\"198.18.0.100\",port=\"7000\",server=\"198.19.0.12:7000\"} 1"), "{m}");
    assert!(m.contains("xvs_worker_rx_frames_total{worker=\"0\"}"), "{m}");
    assert!(
        m.contains("xvs_server_rate_cps{proto=\"tcp\",vip=\"198.18.0.100\",port=\"7000\",server=\"198.19.0.11:7000\"}"),
        "{m}"
    );
    assert!(m.contains("xvs_worker_dropped_frames_total{worker=\"0\",reason=\"no_neighbour\"} 0"), "{m}");

    // Start it again: within interval x rise + 1 s it receives connections.
    echo[1] = Some(EchoServer::start(&t, 2, 7000));
    let started = Instant::now();
    let limit = interval * rise + Duration::from_secs(1);
    while !d.output().contains("health: 198.19.0.12:7000 of -t 198.18.0.100:7000 is up") {
        assert!(started.elapsed() < limit, "r2 not back within {limit:?}:\n{}", d.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    let back: Vec<String> = (0..6).map(|_| new_conn(&t, 7000)).collect();
    assert!(back.contains(&"r2".to_string()), "r2 gets connections again: {back:?}");

    // HTTP check with inhibit_on_failure: r1's httpd stops, r1 stays listed with weight 0.
    let pids = Command::new("ip").args(["netns", "pids", &t.ns("r1")]).output().expect("ip netns pids").stdout;
    let httpd: Vec<String> = String::from_utf8_lossy(&pids)
        .split_whitespace()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("httpd.py"))
        })
        .map(String::from)
        .collect();
    assert_eq!(httpd.len(), 1, "r1's httpd");
    assert!(Command::new("kill").arg(&httpd[0]).status().expect("kill").success());
    let stopped = Instant::now();
    while !d.output().contains("health: 198.19.0.11:7000 of -t 198.18.0.100:7001 is down") {
        assert!(stopped.elapsed() < Duration::from_secs(5), "HTTP check did not fail:\n{}", d.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    let listing = xvsadm(&sock, &["-Ln", "-t", &format!("{VIP}:7001")]).1;
    assert!(listing.contains("  -> 198.19.0.11:7000             FullNat 0      "), "{listing}");
    for _ in 0..4 {
        assert_eq!(new_conn(&t, 7001), "r2", "weight 0 while inhibited");
    }
    drop(echo);
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
}

/// A raw control-socket client that sends `request` (nothing if empty) and then neither
/// reads nor closes.
fn stalled_client(sock: &Path, request: &str) -> std::os::unix::net::UnixStream {
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::connect(sock).expect("connect to the control socket");
    if !request.is_empty() {
        s.write_all(request.as_bytes()).expect("send");
    }
    s
}

/// `xvsadm -R` with `rules` on its standard input.
fn restore(sock: &Path, rules: &str) {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_xvsadm"))
        .arg("-R")
        .env("XVS_SOCKET", sock)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xvsadm -R");
    c.stdin.take().expect("stdin").write_all(rules.as_bytes()).expect("rules");
    let out = c.wait_with_output().expect("xvsadm -R");
    assert!(out.status.success(), "xvsadm -R: {}", String::from_utf8_lossy(&out.stderr));
}

/// How long `xvsadm ARGS` takes, asserting it succeeds.
fn timed_xvsadm(sock: &Path, args: &[&str]) -> (Duration, String) {
    let t0 = Instant::now();
    let (code, out, err) = xvsadm(sock, args);
    assert_eq!(code, Some(0), "xvsadm {args:?}: {err}");
    (t0.elapsed(), out)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn a_stalled_control_client_delays_no_other() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xe9", 1);
    let sock = std::env::temp_dir().join("xvs-e2e-xe9.sock");
    let d = t.director(&ops_config(&sock, &echo_service(7000, "nat", &[(1, 1)], ""), ""));
    // 3000 services: a listing of about a megabyte, far more than a socket buffer holds.
    let mut rules = String::new();
    for i in 0..3000u32 {
        let vip = format!("198.18.{}.{}:{}", 1 + i / 250 / 200, 1 + (i / 200) % 250, 1000 + i % 200);
        rules.push_str(&format!("-A -t {vip} -s rr\n-a -t {vip} -r 198.19.0.11:80 -m -w 1\n"));
    }
    restore(&sock, &rules);
    let (alone, listing) = timed_xvsadm(&sock, &["-Ln"]);
    assert!(listing.contains("TCP  198.18.1.1:1000 rr"), "{}", &listing[..listing.len().min(2000)]);
    // One client asks for that listing and never reads it; twenty connect and say nothing.
    let hog = stalled_client(&sock, "\"List\"\n");
    let silent: Vec<_> = (0..20).map(|_| stalled_client(&sock, "")).collect();
    let mut times = Vec::new();
    for _ in 0..5 {
        let (took, out) = timed_xvsadm(&sock, &["-Ln"]);
        assert!(out.contains("198.19.0.11:80"), "a whole listing");
        assert!(took < Duration::from_secs(1), "xvsadm -Ln took {took:?} with stalled clients");
        times.push(took);
    }
    let (t_stats, _) = timed_xvsadm(&sock, &["-Ln", "--stats", "-t", &format!("{VIP}:7000")]);
    eprintln!(
        "xvsadm -Ln with 3000 services: {alone:?} alone, median {:?} beside 21 stalled clients; --stats {t_stats:?}",
        median(times)
    );
    // The director ends each stalled client at its deadline (5 s to send, 10 s to read).
    let deadline = Instant::now() + Duration::from_secs(15);
    for mut s in silent.into_iter().chain([hog]) {
        use std::io::Read;
        s.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))))
            .expect("timeout");
        let mut buf = vec![0u8; 1 << 16];
        // The hog may get part of its listing first; then the director closes it.
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("a stalled client was not closed by the director: {e}"),
            }
        }
    }
    assert!(xvsadm(&sock, &["-Ln"]).0 == Some(0), "still serving");
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
}

#[test]
fn metrics_scrapes_slow_neither_the_worker_nor_xvsadm() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xea", 1);
    let sock = std::env::temp_dir().join("xvs-e2e-xea.sock");
    let metrics = r#"
  "metrics": { "listen": "127.0.0.1:9191" },"#;
    let d = t.director(&ops_config(&sock, &echo_service(7000, "nat", &[(1, 1)], ""), metrics));
    let ns_cmd = |ns: &str, args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &t.ns(ns)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in namespace")
    };
    // A sink on r1 and a client streaming into it through the director for the whole test.
    let mut sink = ns_cmd("r1", &["socat", "-u", "TCP-LISTEN:7000,reuseaddr", "OPEN:/dev/null"]);
    std::thread::sleep(Duration::from_millis(200));
    let mut stream = ns_cmd("c", &["timeout", "40", "socat", "-u", "OPEN:/dev/zero", &format!("TCP:{VIP}:7000")]);
    let rx_frames = || -> u64 {
        let out = xvsadm(&sock, &["--workers"]).1;
        let line = out.lines().find(|l| l.starts_with("worker 0:")).unwrap_or_else(|| panic!("{out}")).to_string();
        let w: Vec<&str> = line.split_whitespace().collect();
        w[w.iter().position(|x| *x == "rx").expect("rx") + 1].parse().expect("rx count")
    };
    // Wait until the stream flows (a counter moves), bounded.
    let start = rx_frames();
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx_frames() < start + 1000 {
        assert!(Instant::now() < deadline, "no traffic through the director:\n{}", d.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    // One phase: the worker's frame rate and xvsadm's latency over `secs`.
    let phase = |secs: u64| {
        let (f0, t0) = (rx_frames(), Instant::now());
        let mut lat = Vec::new();
        while t0.elapsed() < Duration::from_secs(secs) {
            lat.push(timed_xvsadm(&sock, &["-Ln", "--stats"]).0);
            std::thread::sleep(Duration::from_millis(200));
        }
        let rate = (rx_frames() - f0) as f64 / t0.elapsed().as_secs_f64();
        (rate, median(lat))
    };
    let (quiet_rate, quiet_lat) = phase(10);
    // 100 scrapes a second for 10 s, from one process in the director's namespace.
    let scraper = ns_cmd(
        "d",
        &[
            "python3",
            "-c",
            "import time, urllib.request\n\
             ok = 0; end = time.time() + 10\n\
             while time.time() < end:\n\
             \x20   t = time.time()\n\
             \x20   ok += urllib.request.urlopen('http://127.0.0.1:9191/metrics', timeout=2).status == 200\n\
             \x20   time.sleep(max(0, 0.01 - (time.time() - t)))\n\
             print(ok)",
        ],
    );
    let (busy_rate, busy_lat) = phase(10);
    let out = scraper.wait_with_output().expect("scraper");
    let scrapes: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    let _ = stream.kill();
    let _ = stream.wait();
    let _ = sink.kill();
    let _ = sink.wait();
    eprintln!(
        "worker rx {quiet_rate:.0} frames/s without scrapes, {busy_rate:.0} with {scrapes} scrapes in 10 s; \
         xvsadm -Ln --stats median {quiet_lat:?} without, {busy_lat:?} with"
    );
    assert!(scrapes >= 800, "only {scrapes} scrapes answered in 10 s");
    // Scrapes read the workers' boards and a page cached for a second: neither the worker nor
    // xvsadm may slow down much (bounds wide enough for this shared 2-core VM).
    assert!(busy_rate >= quiet_rate * 0.6, "worker {quiet_rate:.0} -> {busy_rate:.0} frames/s under scrapes");
    assert!(busy_lat < quiet_lat * 3 + Duration::from_millis(100), "xvsadm {quiet_lat:?} -> {busy_lat:?}");
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
}

#[test]
fn a_real_servers_new_mac_is_followed_at_once_without_forking() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xeb", 1);
    // An `ip` first on xvs's PATH that records being run: xvs must never run it.
    let bin = std::env::temp_dir().join("xvs-e2e-xeb-bin");
    let _ = std::fs::remove_dir_all(&bin);
    std::fs::create_dir_all(&bin).expect("bin dir");
    let marker = bin.join("ran");
    let fake = bin.join("ip");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" >> {}\nexec {} \"$@\"\n", marker.display(), ip_binary().display()),
    )
    .expect("fake ip");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let path = std::env::temp_dir().join("xvs-e2e-xeb.json");
    std::fs::write(&path, config(1)).expect("config");
    let d = Director::start_with_path(&t, &path, &bin);
    // NAT wrr 3:2:1: r1 answers the first connection.
    assert_eq!(t.name_at(80), "r1");
    let changes = |out: &str| out.matches("next hops changed").count();
    let before = changes(&d.output());
    // r1 takes a new MAC and announces it (arp_notify: a gratuitous ARP on the change).
    assert!(t.exec("r1", &["sysctl", "-qw", "net.ipv4.conf.eth0.arp_notify=1"]).0);
    let changed = Instant::now();
    assert!(t.exec("r1", &["ip", "link", "set", "eth0", "address", "02:00:00:00:99:11"]).0);
    while changes(&d.output()) == before {
        assert!(changed.elapsed() < Duration::from_secs(1), "the new MAC was not followed within 1 s:\n{}", d.output());
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = changed.elapsed();
    // Its connections reach it at the new MAC (wrr sends the 1st, 2nd and 4th of 6 to r1).
    let names: Vec<String> = (0..6).map(|_| t.name_at(80)).collect();
    assert_eq!(names.iter().filter(|n| *n == "r1").count(), 3, "{names:?}");
    eprintln!("new MAC followed after {took:?}");
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
    assert!(!marker.exists(), "xvs ran ip: {}", std::fs::read_to_string(&marker).unwrap_or_default());
    let _ = std::fs::remove_dir_all(&bin);
}

#[test]
fn systemd_hears_ready_then_the_watchdog_then_stopping() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xec", 1);
    let notify = std::env::temp_dir().join("xvs-e2e-xec.notify");
    let _ = std::fs::remove_file(&notify);
    let listen = std::os::unix::net::UnixDatagram::bind(&notify).expect("notify socket");
    listen.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let sock = std::env::temp_dir().join("xvs-e2e-xec.sock");
    let path = std::env::temp_dir().join("xvs-e2e-xec.json");
    std::fs::write(&path, ops_config(&sock, &echo_service(7000, "nat", &[(1, 1)], ""), "")).expect("config");
    let notify_s = notify.display().to_string();
    let d = Director::start_with(&t, &path, &[("NOTIFY_SOCKET", &notify_s), ("WATCHDOG_USEC", "400000")], &[]);
    let mut buf = [0u8; 256];
    let mut next = || {
        let n = listen.recv(&mut buf).expect("a message from the director");
        String::from_utf8_lossy(&buf[..n]).trim().to_string()
    };
    assert_eq!(next(), "READY=1");
    // Ready means ready: the control socket answers at once.
    assert_eq!(xvsadm(&sock, &["-Ln"]).0, Some(0));
    // The watchdog every WATCHDOG_USEC / 2.
    let t0 = Instant::now();
    for _ in 0..4 {
        assert_eq!(next(), "WATCHDOG=1");
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1500), "4 watchdog pings took {took:?}");
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
    let mut last = next();
    while last == "WATCHDOG=1" {
        last = next();
    }
    assert_eq!(last, "STOPPING=1");
    let _ = std::fs::remove_file(&notify);
}

#[test]
fn another_xdp_program_is_replaced_only_with_force() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xed", 1);
    // Another XDP program on the director's client-side interface (xvs's own decapsulator
    // stands in for another tool's).
    assert!(t.exec("d", &[xvs(), "decap", "--iface", "xvs-c", "--local", "198.18.0.1"]).0);
    let path = std::env::temp_dir().join("xvs-e2e-xed.json");
    std::fs::write(&path, config(1)).expect("config");
    let out = Command::new("ip")
        .args(["netns", "exec", &t.ns("d"), xvs(), "run", "--config"])
        .arg(&path)
        .output()
        .expect("xvs run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("interface xvs-c already runs XDP program")
            && err.contains("(xvs_ipip_decap)")
            && err.contains("--force"),
        "{err}"
    );
    let link = t.exec("d", &["ip", "link", "show", "xvs-c"]).1;
    assert!(link.contains("xdp"), "the other program is still attached: {link}");
    // With --force it is replaced, and the director serves.
    let d = Director::start_with(&t, &path, &[], &["--force"]);
    assert!(d.output().contains("replacing XDP program"), "{}", d.output());
    assert_eq!(t.name_at(80), "r1");
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
    assert!(!t.exec("d", &["ip", "link", "show", "xvs-c"]).1.contains("xdp"), "detached at exit");
}

/// A namespace of the test's own beside a topology (removed on drop).
struct ExtraNs(String);

impl Drop for ExtraNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn two_hundred_servers_that_drop_syns_are_all_down_in_time() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xef", 1);
    // Namespace z on the servers' switch holds 198.19.64.0/24 but can send nothing back to
    // the director (a blackhole route): every SYN of a check goes unanswered.
    let z = ExtraNs(t.ns("z"));
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().expect("ip").success(), "ip {args:?}");
    ip(&["netns", "add", &z.0]);
    ip(&["link", "add", "sz", "netns", &t.ns("s"), "type", "veth", "peer", "name", "z0", "netns", &z.0]);
    assert!(t.exec("s", &["ip", "link", "set", "sz", "master", "br0"]).0);
    assert!(t.exec("s", &["ip", "link", "set", "sz", "up"]).0);
    let zx = |args: &[&str]| {
        let st = Command::new("ip").args(["netns", "exec", &z.0]).args(args).status().expect("ip netns exec");
        assert!(st.success(), "{args:?}");
    };
    zx(&["ip", "link", "set", "lo", "up"]);
    zx(&["ip", "addr", "add", "198.19.0.20/24", "dev", "z0"]);
    zx(&["ip", "link", "set", "z0", "up"]);
    zx(&["ip", "addr", "add", "198.19.64.1/24", "dev", "lo"]);
    zx(&["ip", "route", "add", "blackhole", "198.19.0.1/32"]);
    assert!(t.exec("d", &["ip", "route", "add", "198.19.64.0/24", "via", "198.19.0.20"]).0);
    let servers: Vec<String> =
        (1..=200).map(|i| format!(r#"{{ "addr": "198.19.64.{i}", "port": 80, "mode": "nat" }}"#)).collect();
    let (interval, timeout, fall) = (Duration::from_secs(1), Duration::from_secs(3), 2u32);
    let service = format!(
        r#"{{ "proto": "tcp", "vip": "{VIP}", "port": 7000, "scheduler": "rr",
             "health_check": {{ "kind": "tcp", "interval_ms": {}, "timeout_ms": {}, "rise": 1, "fall": {fall} }},
             "real_servers": [{}] }}"#,
        interval.as_millis(),
        timeout.as_millis(),
        servers.join(", ")
    );
    let sock = std::env::temp_dir().join("xvs-e2e-xef.sock");
    let d = t.director(&ops_config(&sock, &service, ""));
    // The checks start just before "director up" is logged.
    let started = Instant::now();
    let bound = interval * fall + timeout + Duration::from_secs(1);
    let down = |out: &str| out.matches(" is down (").count();
    while down(&d.output()) < 200 {
        assert!(
            started.elapsed() < bound,
            "{} of 200 down after {:?} (bound {bound:?}):\n{}",
            down(&d.output()),
            started.elapsed(),
            d.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    eprintln!("200 silent servers down {took:?} after the director was up (bound {bound:?})");
    assert!(d.output().contains("connect: timeout after 3000 ms"), "{}", d.output());
    // Out of scheduling, and the control plane answers at once.
    let (quick, listing) = timed_xvsadm(&sock, &["-Ln", "-t", &format!("{VIP}:7000")]);
    assert!(!listing.contains("198.19.64."), "{listing}");
    assert!(quick < Duration::from_secs(1), "{quick:?}");
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
    drop(z);
}

#[test]
fn fragmented_udp_datagrams_arrive_whole_through_nat_and_dr() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xeg", 1);
    // UDP echo servers on r1: for NAT on its own address, for DR on the VIP (held on lo), so
    // that DR replies leave from the VIP.
    let echo = |bind: &str| {
        let code = format!(
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(({bind:?}, {}))\n\
             while True:\n    d, a = s.recvfrom(65535)\n    s.sendto(d, a)\n",
            if bind == VIP { 7101 } else { 7100 }
        );
        Command::new("ip")
            .args(["netns", "exec", &t.ns("r1"), "python3", "-c", &code])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("udp echo")
    };
    let mut servers = [echo("0.0.0.0"), echo(VIP)];
    let svc = |port: u16, mode: &str| {
        format!(
            r#"{{ "proto": "udp", "vip": "{VIP}", "port": {port}, "scheduler": "rr",
                 "real_servers": [{{ "addr": "198.19.0.11", "port": {port}, "mode": "{mode}" }}] }}"#
        )
    };
    let sock = std::env::temp_dir().join("xvs-e2e-xeg.sock");
    let d = t.director(&ops_config(&sock, &[svc(7100, "nat"), svc(7101, "dr")].join(", "), ""));
    // 4000 bytes in one datagram: three fragments each way (the links' MTU is 1500).
    let client = format!(
        "import socket, sys\ndata = bytes((i * 7) % 251 for i in range(4000))\n\
         for port in (7100, 7101):\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.settimeout(1)\n\
         \x20   for attempt in range(10):\n        s.sendto(data, ({VIP:?}, port))\n        try:\n\
         \x20           got, _ = s.recvfrom(65535)\n            break\n        except socket.timeout:\n\
         \x20           got = b''\n    print(port, len(got), got == data)\n"
    );
    let (ok, out) = t.exec("c", &["python3", "-c", &client]);
    for s in servers.iter_mut() {
        let _ = s.kill();
        let _ = s.wait();
    }
    assert!(ok, "{out}\n{}", d.output());
    assert!(out.contains("7100 4000 True"), "NAT: {out}\n{}", d.output());
    assert!(out.contains("7101 4000 True"), "DR: {out}\n{}", d.output());
    // The director followed the fragments itself: NAT request and reply, DR request.
    let workers = xvsadm(&sock, &["--workers"]).1;
    let line = workers.lines().find(|l| l.contains("fragments:")).unwrap_or_else(|| panic!("{workers}"));
    let n: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(n[0] >= 3 && n[1] >= 6, "{line}");
    let (ok, log) = d.stop();
    assert!(ok, "{log}");
}

#[test]
fn path_mtu_discovery_works_through_the_director() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xeh", 1);
    // A client behind the client namespace, which routes to it over a 1280-byte link and
    // answers bigger packets with ICMP "fragmentation needed" (to their source, the VIP).
    let cl = ExtraNs(t.ns("cl"));
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().expect("ip").success(), "ip {args:?}");
    ip(&["netns", "add", &cl.0]);
    ip(&["link", "add", "cr", "netns", &t.ns("c"), "type", "veth", "peer", "name", "eth0", "netns", &cl.0]);
    for args in [
        &["ip", "addr", "add", "198.18.10.1/24", "dev", "cr"][..],
        &["ip", "link", "set", "cr", "mtu", "1280", "up"],
        &["sysctl", "-qw", "net.ipv4.ip_forward=1"],
    ] {
        assert!(t.exec("c", args).0, "{args:?}");
    }
    let clx = |args: &[&str]| {
        let st = Command::new("ip").args(["netns", "exec", &cl.0]).args(args).status().expect("ip netns exec");
        assert!(st.success(), "{args:?}");
    };
    clx(&["ip", "link", "set", "lo", "up"]);
    clx(&["ip", "addr", "add", "198.18.10.2/24", "dev", "eth0"]);
    clx(&["ip", "link", "set", "eth0", "up"]);
    clx(&["ip", "route", "add", "default", "via", "198.18.10.1"]);
    clx(&["ethtool", "-K", "eth0", "tx", "off"]);
    // First without the relay (the errors left to the kernel, as before xvs relayed them):
    // the servers never learn the path's MTU and the transfer stalls. (First, because a
    // server that learned it keeps it for minutes.)
    let d = t.director(&config(1).replace("\"workers\": 1", "\"workers\": 1, \"icmp_relay\": false"));
    let out = Command::new("ip")
        .args(["netns", "exec", &cl.0, "curl", "-s", "-f", "-m", "4"])
        .arg(format!("http://{VIP}:80/bytes/1000000"))
        .output()
        .expect("curl");
    assert!(
        !out.status.success() && out.stdout.len() < 1_000_000,
        "without the relay the transfer should stall: {} bytes\n{}",
        out.stdout.len(),
        d.output()
    );
    let (ok, log) = d.stop();
    assert!(ok, "{log}");
    let d = t.director(&config(1));
    let want = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        expected_bytes(1_000_000).hash(&mut h);
        h.finish()
    };
    // 1 MB through NAT (port 80) and DR (port 8082): the servers' 1500-byte segments do not
    // fit the client's last link; the relayed "fragmentation needed" lowers their path MTU.
    for port in [80u16, 8082] {
        let out = Command::new("ip")
            .args(["netns", "exec", &cl.0, "curl", "-s", "-f", "-m", "20"])
            .arg(format!("http://{VIP}:{port}/bytes/1000000"))
            .output()
            .expect("curl");
        let got = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            out.stdout.hash(&mut h);
            h.finish()
        };
        assert!(
            out.status.success() && out.stdout.len() == 1_000_000 && got == want,
            "port {port}: {} bytes, curl {:?}\n{}",
            out.stdout.len(),
            out.status,
            d.output()
        );
    }
    let (ok, log) = d.stop();
    assert!(ok, "{log}");
    // It was the relay: the director passed the router's errors on to the servers.
    let line = log.lines().find(|l| l.contains("errors relayed")).unwrap_or_else(|| panic!("no relay:\n{log}"));
    let relayed: u64 = line.split_whitespace().find_map(|w| w.parse().ok()).unwrap_or(0);
    assert!(relayed >= 2, "{line}");
    drop(cl);
}

/// `tcpdump` in namespace `ns` on `iface` for `filter`, started once it says it listens.
struct Capture(Child);

impl Capture {
    fn start(ns: &str, iface: &str, filter: &str) -> Capture {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "tcpdump", "-n", "-l", "-i", iface])
            .args(filter.split(' '))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        let mut err = child.stderr.take().expect("stderr");
        let mut seen = Vec::new();
        let mut b = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("listening on") {
            match err.read(&mut b) {
                Ok(0) | Err(_) => panic!("tcpdump in {ns} did not start: {}", String::from_utf8_lossy(&seen)),
                Ok(n) => seen.extend_from_slice(&b[..n]),
            }
        }
        Capture(child)
    }

    /// Stops it; the packets it printed.
    fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let mut out = String::new();
        if let Some(mut o) = self.0.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let _ = self.0.wait();
        out.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
    }
}

/// A client that speaks through raw frames on `c0`: one UDP datagram to VIP:port tagged for
/// VLAN `vlan`, to the director's MAC; prints the VLAN tag and payload of each answer (the
/// kernel hands a received tag over as packet metadata).
const VLAN_CLIENT: &str = r#"
import socket, struct, sys
dmac = bytes.fromhex(sys.argv[1].replace(':', ''))
smac = bytes.fromhex(open('/sys/class/net/c0/address').read().strip().replace(':', ''))
src, dst, port, vlan = socket.inet_aton(sys.argv[2]), socket.inet_aton(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(('c0', 0))
s.setsockopt(263, 8, 1)  # SOL_PACKET, PACKET_AUXDATA
s.settimeout(0.3)
payload = b'tagged hello'
udp = struct.pack('!HHHH', 40000, port, 8 + len(payload), 0) + payload
ip = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 7, 0, 64, 17, 0, src, dst))
c = sum(struct.unpack('!10H', ip))
c = (c & 0xffff) + (c >> 16)
c = (c & 0xffff) + (c >> 16)
ip[10:12] = struct.pack('!H', ~c & 0xffff)
frame = dmac + smac + struct.pack('!HH', 0x8100, vlan) + b'\x08\x00' + bytes(ip) + udp
for attempt in range(10):
    s.send(frame)
    try:
        while True:
            data, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(20))
            if addr[2] == 4:  # our own frame going out
                continue
            tci = None
            for level, ty, d in anc:
                if level == 263 and ty == 8:
                    status, _, _, _, _, vtci, _ = struct.unpack('IIIHHHH', d[:20])
                    if status & 0x10:
                        tci = vtci
            off = 14
            if data[12:14] == b'\x81\x00':
                tci, off = struct.unpack('!H', data[14:16])[0], 18
            if data[off - 2:off] != b'\x08\x00' or data[off + 9] != 17 or data[off + 12:off + 16] != dst:
                continue
            print('answer vlan', None if tci is None else tci & 0xfff, data[off + 28:].rstrip(b'\0').decode())
            sys.exit(0)
    except socket.timeout:
        pass
print('no answer')
"#;

#[test]
fn vlans_on_link_clients_and_unresolved_servers_behind_a_gateway() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xev", 1);
    let run = |ns: &str, args: &[&str]| {
        let st = Command::new("ip").args(["netns", "exec", ns]).args(args).status().expect("ip netns exec");
        assert!(st.success(), "{ns}: {args:?}");
    };
    let (c, d, s) = (t.ns("c"), t.ns("d"), t.ns("s"));
    // A client on the servers' switch, on a subnet of the director's server-side interface:
    // the director's default gateway (the client namespace, which does not forward) is
    // elsewhere, so only a reply sent to this client's own MAC reaches it.
    let cl = ExtraNs(t.ns("cl"));
    assert!(Command::new("ip").args(["netns", "add", &cl.0]).status().expect("ip").success());
    run(&s, &["ip", "link", "add", "s9", "type", "veth", "peer", "name", "eth0", "netns", &cl.0]);
    run(&s, &["ip", "link", "set", "s9", "master", "br0"]);
    run(&s, &["ip", "link", "set", "s9", "up"]);
    run(&cl.0, &["ip", "link", "set", "lo", "up"]);
    run(&cl.0, &["ip", "addr", "add", "198.18.5.2/24", "dev", "eth0"]);
    run(&cl.0, &["ip", "link", "set", "eth0", "up"]);
    run(&cl.0, &["ip", "route", "add", "default", "via", "198.18.5.1"]);
    run(&cl.0, &["ethtool", "-K", "eth0", "tx", "off"]);
    run(&d, &["ip", "addr", "add", "198.18.5.1/24", "dev", "xvs-r"]);
    // A real server behind a router that does not exist: its next hop never resolves.
    run(&d, &["ip", "route", "add", "198.18.30.0/24", "via", "198.19.0.14"]);
    // A UDP echo server on r1 for the tagged client.
    let code = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 7100))\n\
                while True:\n    d, a = s.recvfrom(65535)\n    s.sendto(d, a)\n";
    let mut echo = Command::new("ip")
        .args(["netns", "exec", &t.ns("r1"), "python3", "-c", code])
        .stdin(Stdio::null())
        .spawn()
        .expect("udp echo");
    // The tagged client 198.18.20.2 is on VLAN 100 of xvs-c. (This kernel has no 802.1Q
    // devices, so the director is told where it is instead of reading a VLAN device.)
    let c0_mac = t.exec("c", &["cat", "/sys/class/net/c0/address"]).1.trim().to_string();
    let dir_mac = t.exec("d", &["cat", "/sys/class/net/xvs-c/address"]).1.trim().to_string();
    let sock = std::env::temp_dir().join("xvs-e2e-xev.sock");
    let services = r#"{ "proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr",
             "real_servers": [{ "addr": "198.19.0.11", "port": 8080, "mode": "nat" },
                              { "addr": "198.19.0.12", "port": 8080, "mode": "nat" }] },
        { "proto": "tcp", "vip": "198.18.0.100", "port": 90, "scheduler": "rr",
             "real_servers": [{ "addr": "198.18.30.5", "port": 80, "mode": "nat" }] },
        { "proto": "udp", "vip": "198.18.0.100", "port": 5300, "scheduler": "rr",
             "real_servers": [{ "addr": "198.19.0.11", "port": 7100, "mode": "nat" }] }"#;
    let extra =
        format!(r#" "neighbours": [{{ "ip": "198.18.20.2", "mac": "{c0_mac}", "interface": "xvs-c", "vlan": 100 }}],"#);
    let dir = t.director(&ops_config(&sock, services, &extra));
    let curl = |ns: &str, port: u16| {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "curl", "-s", "-f", "-m", "3"])
            .arg(format!("http://{VIP}:{port}/name"))
            .output()
            .expect("curl");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    // A tagged datagram is steered, served, and answered tagged for the client's VLAN.
    let (ok, out) = t.exec("c", &["python3", "-c", VLAN_CLIENT, &dir_mac, "198.18.20.2", VIP, "5300", "100"]);
    let _ = echo.kill();
    let _ = echo.wait();
    assert!(ok && out.contains("answer vlan 100 tagged hello"), "{out}\n{}", dir.output());
    // The on-link client gets its replies directly.
    for _ in 0..4 {
        let name = curl(&cl.0, 80).unwrap_or_else(|| panic!("no answer to the on-link client\n{}", dir.output()));
        assert!(name.starts_with('r'), "{name}");
    }
    // The unresolved server: nothing reaches the switch or the gateway for it.
    let sw = Capture::start(&s, "br0", "host 198.18.30.5");
    let gw = Capture::start(&c, "c0", "host 198.18.30.5");
    assert_eq!(curl(&cl.0, 90), None, "nobody serves port 90");
    let (sw, gw) = (sw.stop(), gw.stop());
    assert!(sw.is_empty() && gw.is_empty(), "frames for the unresolved server: switch {sw:?}, gateway {gw:?}");
    // A real server's neighbour entry gone STALE: the kernel would re-validate it only when
    // it sends there, which it never does for the director's traffic. The director makes it
    // probe (the entry leaves STALE within a refresh or two).
    let state = || {
        let (_, out) = t.exec("d", &["ip", "neigh", "show", "198.19.0.12", "dev", "xvs-r"]);
        out.split_whitespace().last().unwrap_or("").to_string()
    };
    let mac12 = t.exec("r2", &["cat", "/sys/class/net/eth0/address"]).1.trim().to_string();
    // (The change notification alone makes the director look at once, so it may be probing
    // already when we first look.)
    run(&d, &["ip", "neigh", "replace", "198.19.0.12", "lladdr", &mac12, "dev", "xvs-r", "nud", "stale"]);
    let start = Instant::now();
    while state() == "STALE" && start.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(state(), "STALE", "the director had the kernel probe its stale neighbour");
    let (ok, log) = dir.stop();
    assert!(ok, "{log}");
    assert!(log.contains("no_neighbour"), "the drops are counted:\n{log}");
    drop(cl);
}

/// `xvs-pktgen`, as a child that is killed on drop.
struct Pktgen(Option<Child>);

impl Drop for Pktgen {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The generator on the client sends 10,000 marked UDP datagrams from 100 source ports
/// through the director (DR) to r1, where the sink (its own XDP program and AF_XDP socket)
/// counts them: every one arrives, none lost or reordered, with latency percentiles.
#[test]
fn pktgen_frames_through_the_director_are_all_counted_by_the_sink() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xei", 1);
    let pktgen = env!("CARGO_BIN_EXE_xvs-pktgen");
    let sock = std::env::temp_dir().join("xvs-e2e-xei.sock");
    let svc = format!(
        r#"{{ "proto": "udp", "vip": "{VIP}", "port": 9000, "scheduler": "rr",
             "real_servers": [{{ "addr": "198.19.0.11", "mode": "dr" }}] }}"#
    );
    // The director learns r1's MAC from the kernel's neighbour table at start.
    assert!(t.exec("d", &["ping", "-c", "1", "-W", "2", "198.19.0.11"]).0, "r1 answers a ping");
    let d = t.director(&ops_config(&sock, &svc, ""));
    let n = 10_000;
    let mut sink = Command::new(ip_binary())
        .args(["netns", "exec", &t.ns("r1"), pktgen, "sink", "--iface", "eth0", "--json"])
        .args(["--match", &format!("udp:{VIP}:9000"), "--count", &n.to_string(), "--duration", "30", "--idle", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the sink");
    // Ready when it says it counts (program attached, socket bound).
    let mut err = sink.stderr.take().expect("sink stderr");
    let mut said = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&said).contains("sink: counting") {
        let mut b = [0u8; 256];
        let k = err.read(&mut b).unwrap_or(0);
        assert!(k > 0 && Instant::now() < deadline, "the sink did not start: {}", String::from_utf8_lossy(&said));
        said.extend_from_slice(&b[..k]);
    }
    let sink = Pktgen(Some(sink));
    let (_, mac) = t.exec("d", &["cat", "/sys/class/net/xvs-c/address"]);
    let out = Command::new(ip_binary())
        .args(["netns", "exec", &t.ns("c"), pktgen, "send", "--iface", "c0", "--dst-mac", mac.trim()])
        .args(["--dst", VIP, "--dport", "9000", "--src", "198.18.0.2", "--sport", "20000-20099"])
        .args(["--count", &n.to_string(), "--rate", "20000", "--json"])
        .output()
        .expect("run the generator");
    assert!(out.status.success(), "generator: {}", String::from_utf8_lossy(&out.stderr));
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).expect("generator JSON");
    assert_eq!(sent["frames"], n, "{sent}");
    // The rate asked (20 kpps) within 2%, over the run.
    let pps = sent["pps"].as_f64().expect("pps");
    assert!((pps - 20_000.0).abs() / 20_000.0 < 0.02, "rate {pps} pps");
    let mut sink = sink;
    let mut child = sink.0.take().expect("sink");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("sink wait").is_none() {
        assert!(Instant::now() < deadline, "the sink did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdout = String::new();
    child.stdout.take().expect("sink stdout").read_to_string(&mut stdout).expect("sink output");
    let got: serde_json::Value = serde_json::from_str(&stdout).expect("sink JSON");
    assert_eq!(got["frames"], n, "sink: {got}\ndirector: {}", d.output());
    assert_eq!(got["lost"], 0, "{got}");
    assert_eq!(got["reordered"], 0, "{got}");
    assert_eq!(got["per_source"]["198.18.0.2"], n, "{got}");
    assert_eq!(got["per_destination"][VIP], n, "DR keeps the VIP as destination: {got}");
    assert!(got["latency_us"]["p50"].as_f64().is_some_and(|l| l > 0.0), "{got}");
    drop(d);
    let _ = std::fs::remove_file(&sock);
}

/// One run of `tools/http_close_load.py` from the client: short HTTP connections to
/// VIP:`port` at `rate` a second for `secs`, from `addrs`; its JSON summary.
fn http_close_load(t: &Topo, port: u16, rate: u32, secs: u32, addrs: &[String]) -> serde_json::Value {
    let script = repo().join("tools/http_close_load.py");
    let url = format!("http://{VIP}:{port}/name");
    let (rate, secs) = (rate.to_string(), secs.to_string());
    let mut args = vec!["timeout", "600", "python3", script.to_str().expect("path"), &url, &rate, &secs];
    args.extend(addrs.iter().map(String::as_str));
    let (ok, out) = t.exec("c", &args);
    assert!(ok, "the HTTP client ran: {out}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn fullnat_serves_short_http_connections_for_minutes_and_across_a_restart() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xek", 1);
    // 16 client addresses; a second FULLNAT local address on the director.
    let clients: Vec<String> = (21..37).map(|i| format!("198.18.0.{i}")).collect();
    for c in &clients {
        assert!(t.exec("c", &["ip", "addr", "add", &format!("{c}/24"), "dev", "c0"]).0);
    }
    assert!(t.exec("d", &["ip", "addr", "add", "198.19.0.2/24", "dev", "xvs-r"]).0);
    // 2 addresses x 500 ports = 1,000 tuples towards each of the 3 real servers, TIME_WAIT
    // 60 s: 16 new connections a second per server sustained, 11 across a restart (see the
    // start-up line). The client makes 27 a second (9 per server): the walks go round the
    // range in the 2 minutes, so tuples are reused, and the restart comes when the last
    // minute's tuples (which the real servers hold in TIME_WAIT) include the range's start:
    // a director that began its walks there again would see their SYNs dropped.
    let cfg = config(1)
        .replace(
            r#""local_ports": [10000, 32767]"#,
            r#""local_addrs": ["198.19.0.1", "198.19.0.2"], "local_ports": [10000, 10499]"#,
        )
        .replace(r#""tcp_close": 10"#, r#""tcp_close": 10, "tcp_time_wait": 60"#)
        .replace(r#""port": 81, "scheduler": "rr","#, r#""port": 81, "scheduler": "rr", "toa": true,"#);
    assert!(cfg.contains("\"toa\": true") && cfg.contains("10499") && cfg.contains("tcp_time_wait"), "{cfg}");
    let path = std::env::temp_dir().join("xvs-e2e-xek.json");
    std::fs::write(&path, &cfg).expect("config");
    let d = Director::start(&t, &path);
    let log = d.output();
    assert!(
        log.contains("FULLNAT: 2 local address(es) x 500 ports = 1000 connections at once to each of 3 real servers"),
        "{log}"
    );

    // TOA: the SYNs real server r1 receives name the client (a capture, decoded by the
    // independent decoder in tools/).
    let pcap = std::env::temp_dir().join("xvs-e2e-toa.pcap");
    let (mut dump, _err) =
        start_pcap(&t.ns("r1"), "eth0", &["-c", "2"], "tcp dst port 8080 and tcp[13] & 2 != 0", &pcap);
    for _ in 0..6 {
        let (ok, _) = t.exec(
            "c",
            &["curl", "-s", "-f", "-m", "5", "--interface", "198.18.0.21", &format!("http://{VIP}:81/name")],
        );
        assert!(ok, "a request through FULLNAT with TOA");
    }
    assert!(dump.wait().expect("tcpdump").success(), "tcpdump saw two SYNs at r1");
    let decoder = std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(|p| p.parent())
        .expect("target")
        .join("examples/toa-decode");
    let out = Command::new(&decoder).arg(&pcap).args(["--expect", "198.18.0.21"]).output().unwrap_or_else(|e| {
        panic!("{}: {e} (build it first: cargo build --example toa-decode; tools/test does)", decoder.display())
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("2 segments with TOA; 2 of 2 SYNs"), "{text}");
    assert!(text.lines().next().unwrap_or("").contains("> 198.19.0.11:8080 [S] toa 198.18.0.21:"), "{text}");
    let _ = std::fs::remove_file(&pcap);

    // Two minutes of short connections, then a restart and two minutes more.
    let (rate, secs) = (27, 120);
    let mut d = Some(d);
    for round in ["first run", "after a restart"] {
        let r = http_close_load(&t, 81, rate, secs, &clients);
        eprintln!("{round}: {r}");
        let total = r["sent"].as_u64().unwrap_or(0);
        assert!(total as f64 >= 0.99 * (rate * secs) as f64, "{round}: {r}");
        assert_eq!(r["failed"].as_u64(), Some(0), "{round}: {r}");
        assert_eq!(r["ok"].as_u64(), Some(total), "{round}: {r}");
        // A SYN the real server drops (PAWS on a tuple it holds in TIME_WAIT) costs the client
        // a second or more. A director that begins its walks at the range's start again after
        // the restart had 29 such of 3,232 (max 4.1 s); this one none. At most 0.1% (a
        // loaded CI machine).
        assert!(r["slow"].as_u64().unwrap_or(u64::MAX) * 1000 <= total, "{round}: {r}");
        for s in ["r1", "r2", "r3"] {
            assert!(r["names"][s].as_u64().unwrap_or(0) * 4 >= total, "{round}: every server serves: {r}");
        }
        let (ok, out) = d.take().expect("running").stop();
        assert!(ok, "{out}");
        assert!(!out.contains("no_local_port"), "{round}: no connection refused for want of a port:\n{out}");
        if round == "first run" {
            // Right away, as `systemctl restart` does: the real servers still hold the last
            // minute's tuples in TIME_WAIT.
            d = Some(Director::start(&t, &path));
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Whether `ip link` in the director's namespace shows an XDP program on `iface`.
fn xdp_attached(t: &Topo, iface: &str) -> bool {
    t.exec("d", &["ip", "link", "show", iface]).1.contains("xdp")
}

/// Waits until `f` holds (bounded).
fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

#[test]
fn a_worker_that_panics_takes_the_director_down_with_the_reason() {
    // Chosen: a panicked worker is not restarted in place (its shard, rings and UMEM are in an
    // unknown state); the process detaches its programs and exits non-zero naming the worker
    // and the panic, and systemd (Restart=always) starts a new one.
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xel", 1);
    let path = std::env::temp_dir().join("xvs-e2e-xel.json");
    std::fs::write(&path, config(1)).expect("config");
    let mut d = Director::start_with(&t, &path, &[("XVS_TEST_WORKER_PANIC_MS", "1500")], &[]);
    let mut child = d.child.take().expect("running");
    let status = {
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            assert!(t0.elapsed() < Duration::from_secs(15), "still running after the panic:\n{}", d.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let out = d.output();
    assert!(!status.success(), "exits non-zero: {status}\n{out}");
    assert!(out.contains("worker 0 panicked: injected fault (XVS_TEST_WORKER_PANIC_MS)"), "{out}");
    assert!(out.contains("XDP programs detached"), "{out}");
    assert!(!xdp_attached(&t, "xvs-c") && !xdp_attached(&t, "xvs-r"), "nothing left attached");
    // The host's own traffic is the kernel's again; a new director serves at once.
    let d2 = Director::start(&t, &path);
    assert!(t.name_at(80).starts_with('r'));
    assert!(d2.stop().0);
}

#[test]
fn a_link_down_and_up_and_a_corrupted_reload_keep_established_connections() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xem", 1);
    let _echo: Vec<EchoServer> = (1..=2).map(|i| EchoServer::start(&t, i, 7000)).collect();
    let sock = std::env::temp_dir().join("xvs-e2e-xem.sock");
    let services =
        [echo_service(7000, "nat", &[(1, 1), (2, 1)], ""), echo_service(7001, "fullnat", &[(1, 1), (2, 1)], "")];
    let text = ops_config(&sock, &services.join(",\n"), "");
    let path = std::env::temp_dir().join("xvs-e2e-xem.json");
    std::fs::write(&path, &text).expect("config");
    let d = Director::start(&t, &path);
    let mut conns: Vec<LongConn> = [7000, 7000, 7001, 7001].iter().map(|&p| LongConn::open(&t, p)).collect();
    for c in conns.iter_mut() {
        assert_eq!(c.echo("before").as_deref(), Some("before"));
    }
    // The real servers' side goes down for 2 s (echoes sent meanwhile wait in TCP's
    // retransmissions), then up: every connection carries on, on its server.
    for iface in ["xvs-r", "xvs-c"] {
        assert!(t.exec("d", &["ip", "link", "set", iface, "down"]).0);
        std::thread::sleep(Duration::from_secs(2));
        assert!(t.exec("d", &["ip", "link", "set", iface, "up"]).0);
        let back = wait_for("a new connection after the link came up", Duration::from_secs(15), || {
            new_conn(&t, 7000).starts_with('r')
        });
        eprintln!("{iface} down 2 s: new connections again {back:?} after it came up");
        for (k, c) in conns.iter_mut().enumerate() {
            // TCP retransmits with back-off: allow it a few tries.
            let ok = (0..5).any(|_| c.echo(&format!("after {iface}")).as_deref() == Some(&format!("after {iface}")));
            assert!(ok, "connection {k} after {iface} went down and up:\n{}", d.output());
        }
    }
    // A corrupted file (cut short while being written) is refused naming where it breaks;
    // the running tables stay, and so do the connections.
    let before = xvsadm(&sock, &["-S", "-n"]).1;
    std::fs::write(&path, &text[..text.len() / 2]).expect("config");
    let out = Command::new(xvs()).arg("reload").env("XVS_SOCKET", &sock).output().expect("xvs reload");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("line") && err.contains("column"), "the error says where the file breaks: {err}");
    assert_eq!(xvsadm(&sock, &["-S", "-n"]).1, before, "a refused reload changed the tables");
    for c in conns.iter_mut() {
        assert_eq!(c.echo("after reload").as_deref(), Some("after reload"));
    }
    let (ok, log) = d.stop();
    assert!(ok, "{log}");
}

#[test]
fn after_sigkill_the_kernel_answers_the_vip_until_a_restart_takes_over() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xen", 1);
    let path = std::env::temp_dir().join("xvs-e2e-xen.json");
    std::fs::write(&path, config(1)).expect("config");
    let mut d = Director::start(&t, &path);
    assert!(t.name_at(81).starts_with('r'));
    let mut child = d.child.take().expect("running");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    // The steering program stays attached with no socket behind it: frames for the VIP go
    // to the kernel (the program's fallback), which holds the VIP here and, with no listener
    // on the port, answers a SYN with a reset at once: clients fail fast, nothing hangs.
    assert!(xdp_attached(&t, "xvs-c"), "the program outlives the process");
    let t0 = Instant::now();
    let (ok, _) = t.exec("c", &["curl", "-s", "-f", "-m", "5", &format!("http://{VIP}:81/name")]);
    let refused = t0.elapsed();
    assert!(!ok, "nothing serves the VIP after SIGKILL");
    assert!(refused < Duration::from_secs(2), "refused at once, not timed out: {refused:?}");
    eprintln!("after SIGKILL: a new connection refused in {refused:?}");
    // A restart replaces its own stale program (no --force) and serves again.
    let d2 = Director::start(&t, &path);
    assert!(d2.output().contains("xvs_steer") || xdp_attached(&t, "xvs-c"));
    assert!(t.name_at(81).starts_with('r'));
    assert!(t.name_at(80).starts_with('r'));
    let (ok, out) = d2.stop();
    assert!(ok, "{out}");
}

/// A real server's weight as `xvsadm -L -n` lists it.
fn weight_of(sock: &Path, server: &str) -> Option<String> {
    let list = xvsadm(sock, &["-L", "-n"]).1;
    let line = list.lines().find(|l| l.split_whitespace().nth(1) == Some(server))?;
    line.split_whitespace().nth(3).map(str::to_string)
}

#[test]
fn a_real_servers_link_down_mid_connection_is_ridden_out_with_inhibit() {
    // A real server's link goes down for 3 s. Its health check (every 300 ms, fall 2)
    // quiesces it (inhibit_on_failure: weight 0): new connections go to the other server at
    // once, while its established connection waits in TCP's retransmissions and carries on
    // when the link is back. (Without inhibit, a failed server is deleted and its
    // connections expire at their next packet, IPVS's expire_nodest_conn.)
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xeo", 1);
    let _echo: Vec<EchoServer> = (1..=2).map(|i| EchoServer::start(&t, i, 7000)).collect();
    let sock = std::env::temp_dir().join("xvs-e2e-xeo.sock");
    let check = r#" "health_check": { "kind": "tcp", "interval_ms": 300, "timeout_ms": 200, "rise": 1, "fall": 2 }, "inhibit_on_failure": true,"#;
    let text = ops_config(&sock, &echo_service(7000, "nat", &[(1, 1), (2, 1)], check), "");
    let d = t.director(&text);
    let mut a = LongConn::open(&t, 7000);
    let mut b = LongConn::open(&t, 7000);
    let (on_r1, _other) = if a.server == "r1" { (&mut a, &mut b) } else { (&mut b, &mut a) };
    assert_eq!(on_r1.echo("hello").as_deref(), Some("hello"));
    assert!(t.exec("s", &["ip", "link", "set", "s1", "down"]).0);
    let quiesced = wait_for("r1 quiesced by its check", Duration::from_secs(5), || {
        weight_of(&sock, "198.19.0.11:7000").as_deref() == Some("0")
    });
    for _ in 0..6 {
        assert_eq!(new_conn(&t, 7000), "r2", "new connections avoid the server that is down");
    }
    std::thread::sleep(Duration::from_secs(3).saturating_sub(quiesced));
    assert!(t.exec("s", &["ip", "link", "set", "s1", "up"]).0);
    let ok = (0..5).any(|_| on_r1.echo("still here").as_deref() == Some("still here"));
    assert!(ok, "the connection to r1 carries on after its link came back:\n{}", d.output());
    wait_for("r1 back in service", Duration::from_secs(5), || {
        weight_of(&sock, "198.19.0.11:7000").as_deref() == Some("1")
    });
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
}

// ---------------------------------------------------------------- floods and soak (issue 13)

/// Resident memory of process `pid` in kB (`VmRSS`).
fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The number after `key` in the first line of `text` that has it (`conns 12` -> 12).
fn number_after(text: &str, key: &str) -> Option<u64> {
    let w: Vec<&str> = text.split_whitespace().collect();
    w.iter().position(|x| *x == key).and_then(|i| w.get(i + 1)).and_then(|v| v.trim_end_matches(',').parse().ok())
}

/// A metric's value summed over its series (`name{...} v` lines, or `name v`).
fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Long-lived echo connections exercised in turn on a thread until stopped: echoes, those
/// lost (no answer within 3 s, or a wrong one), those slower than 1 s, the slowest.
struct Echoes {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(Vec<LongConn>, EchoTally)>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct EchoTally {
    echoes: u64,
    lost: u64,
    slow: u64,
    slowest: Duration,
}

impl Echoes {
    fn start(mut conns: Vec<LongConn>) -> Echoes {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut t = EchoTally::default();
            let mut k = 0u64;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, c) in conns.iter_mut().enumerate() {
                    let msg = format!("echo {i} {k}");
                    let t0 = Instant::now();
                    let back = c.echo(&msg);
                    let took = t0.elapsed();
                    t.echoes += 1;
                    if back.as_deref() != Some(msg.as_str()) {
                        t.lost += 1;
                    } else if took > Duration::from_secs(1) {
                        t.slow += 1;
                    }
                    t.slowest = t.slowest.max(took);
                }
                k += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (conns, t)
        });
        Echoes { stop, thread: Some(thread) }
    }

    fn finish(mut self) -> (Vec<LongConn>, EchoTally) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().expect("running").join().expect("the echo thread")
    }
}

/// The director's worker 0 counters as `xvsadm --workers` prints them.
fn worker0(sock: &Path) -> String {
    xvsadm(sock, &["--workers"]).1
}

#[test]
fn a_spoofed_syn_flood_from_a_million_sources_leaves_established_and_new_connections_served() {
    // The flood: SYNs from 2^20 distinct (address, port) sources of 198.18.128.0/17 at a
    // rate the director forwards in full on this VM (XVS_FLOOD_PPS, default 20,000 a second;
    // past what the director keeps up with, its rx ring drops frames of every flow alike and
    // no table policy can help the established ones), against a shard of 65,536 entries.
    // Meanwhile 100 established connections echo in turn and new connections are opened.
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xep", 1);
    let _echo: Vec<EchoServer> = (1..=2).map(|i| EchoServer::start(&t, i, 7000)).collect();
    let sock = std::env::temp_dir().join("xvs-e2e-xep.sock");
    let extra = r#"
  "metrics": { "listen": "127.0.0.1:9191" }, "conn": { "max_per_worker": 65536 },"#;
    let d = t.director(&ops_config(&sock, &echo_service(7000, "nat", &[(1, 1), (2, 1)], ""), extra));
    let pid = d.child.as_ref().expect("running").id();
    let conns: Vec<LongConn> = (0..100).map(|_| LongConn::open(&t, 7000)).collect();
    let on: Vec<String> = conns.iter().map(|c| c.server.clone()).collect();
    assert_eq!(counts(&on).len(), 2, "both servers hold connections: {:?}", counts(&on));
    let echoes = Echoes::start(conns);

    let pps: u64 = std::env::var("XVS_FLOOD_PPS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let sources = 1u64 << 20; // 32,768 addresses x 32 ports
    let frames = sources;
    let (_, mac) = t.exec("d", &["cat", "/sys/class/net/xvs-c/address"]);
    let pktgen = env!("CARGO_BIN_EXE_xvs-pktgen");
    let flood = Command::new(ip_binary())
        .args(["netns", "exec", &t.ns("c"), pktgen, "send", "--iface", "c0", "--dst-mac", mac.trim()])
        .args(["--profile", "syn", "--dst", VIP, "--dport", "7000", "--src", "198.18.128.0/17", "--sport", "1024-1055"])
        .args(["--count", &frames.to_string(), "--rate", &pps.to_string(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the flood");
    let mut flood = Pktgen(Some(flood));
    let scrape = || t.exec("d", &["curl", "-s", "-f", "-m", "5", "http://127.0.0.1:9191/metrics"]).1;
    let started = Instant::now();
    let rss0 = rss_kb(pid);
    let mut series = vec!["t_s,connections,rss_mb,evicted_embryonic,new_conn_ms".to_string()];
    let (mut opened, mut failed, mut slowest_new) = (0u32, Vec::new(), Duration::ZERO);
    let mut rss_full: Option<u64> = None; // once the table is full
    let mut rss_max = 0u64;
    let mut max_conns = 0u64;
    let mut sample = |failed: &mut Vec<String>, during: bool| {
        let t0 = Instant::now();
        let s = new_conn(&t, 7000);
        let took = t0.elapsed();
        opened += 1;
        if s != "r1" && s != "r2" {
            failed.push(format!("{:.1} s: '{s}'", started.elapsed().as_secs_f64()));
        }
        slowest_new = slowest_new.max(took);
        let w = worker0(&sock);
        let c = number_after(&w, "conns").unwrap_or(0);
        let rss = rss_kb(pid);
        max_conns = max_conns.max(c);
        if during && c >= 60_000 && rss_full.is_none() {
            rss_full = Some(rss);
        }
        if rss_full.is_some() {
            rss_max = rss_max.max(rss);
        }
        let ev = metric_sum(&scrape(), "xvs_worker_evicted_embryonic_total");
        series.push(format!(
            "{:.1},{c},{:.1},{ev},{}",
            started.elapsed().as_secs_f64(),
            rss as f64 / 1024.0,
            took.as_millis()
        ));
    };
    let child = flood.0.as_mut().expect("flood");
    let deadline = Instant::now() + Duration::from_secs(frames / pps + 60);
    while child.try_wait().expect("flood wait").is_none() {
        assert!(Instant::now() < deadline, "the flood did not finish");
        sample(&mut failed, true);
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut out = String::new();
    child.stdout.take().expect("flood stdout").read_to_string(&mut out).expect("flood output");
    let sent: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let flood_s = started.elapsed();
    // Right after the flood: new connections at once.
    for _ in 0..10 {
        sample(&mut failed, false);
    }
    let (conns, tally) = echoes.finish();
    let w = worker0(&sock);
    let m = scrape();
    let evicted = metric_sum(&m, "xvs_worker_evicted_embryonic_total");
    let refused = metric_sum(&m, "xvs_worker_dropped_frames_total{worker=\"0\",reason=\"table_full\"}");
    let csv_dir = repo().join("target/flood");
    let _ = std::fs::create_dir_all(&csv_dir);
    let _ = std::fs::write(csv_dir.join("flood.csv"), series.join("\n") + "\n");
    eprintln!(
        "SYN flood: {} frames from {sources} sources at {:.0} a second asked {pps} ({:.1} s); 100 conns: {tally:?}; \
         new connections: {opened}, failed {}, slowest {slowest_new:?}; conns at most {max_conns}; evicted {evicted}, \
         refused {refused}; RSS {rss0} kB before, {:?} when full, {rss_max} at most\n{w}",
        sent["frames"],
        sent["pps"].as_f64().unwrap_or(0.0),
        flood_s.as_secs_f64(),
        failed.len(),
        rss_full
    );
    assert_eq!(sent["frames"].as_u64(), Some(frames), "{sent}");
    let got_pps = sent["pps"].as_f64().unwrap_or(0.0);
    assert!(got_pps > pps as f64 * 0.9, "the flood ran at {got_pps} a second, {pps} asked");
    assert_eq!((tally.lost, tally.slow), (0, 0), "established echoes lost or slower than 1 s: {tally:?}");
    assert!(tally.echoes >= 1000, "the echo connections were exercised: {tally:?}");
    assert!(failed.is_empty(), "new connections refused during or after the flood: {failed:?}");
    assert!(max_conns >= 60_000, "the flood filled the table: {max_conns}");
    assert!(evicted > 100_000.0, "half-open entries were evicted for new ones: {evicted}");
    let full = rss_full.expect("the table filled");
    assert!(rss_max as f64 <= full as f64 * 1.05, "memory grew under the flood: {full} kB -> {rss_max} kB");
    // Every connection still reaches the server it had.
    let mut conns = conns;
    for c in conns.iter_mut() {
        assert_eq!(c.echo("after").as_deref(), Some("after"), "a connection to {} broke", c.server);
    }
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
    let lost: Vec<i64> = worker_lines(&out).iter().map(|l| l.2).collect();
    assert_eq!(lost, vec![0], "every UMEM frame accounted for: {out}");
    let _ = std::fs::remove_file(&sock);
}

/// The highest histogram bucket (its upper bound, in µs) that gained a round between two
/// pages: the longest loop round of the interval, to a bucket.
fn longest_round_us(before: &str, after: &str) -> f64 {
    let buckets = |page: &str| -> Vec<(f64, f64)> {
        page.lines()
            .filter(|l| l.starts_with("xvs_worker_loop_round_seconds_bucket{"))
            .filter_map(|l| {
                let le = l.split("le=\"").nth(1)?.split('"').next()?;
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                Some((le, l.rsplit(' ').next()?.parse().ok()?))
            })
            .collect()
    };
    let (a, b) = (buckets(before), buckets(after));
    // Cumulative buckets: the lowest bound whose count grew as much as the total did.
    let total = |v: &[(f64, f64)]| v.iter().map(|x| x.1).fold(0.0, f64::max);
    let grew = total(&b) - total(&a);
    if grew <= 0.0 {
        return 0.0;
    }
    b.iter()
        .filter(|(le, n)| n - a.iter().find(|x| x.0 == *le).map_or(0.0, |x| x.1) >= grew)
        .map(|(le, _)| le * 1e6)
        .fold(f64::INFINITY, f64::min)
}

/// Keeps the calling thread, and every process and thread it starts, off one core until
/// dropped: the soak's generator, servers and tools stay off the worker's core, as an
/// operator keeps other work off a poll-mode forwarder's cores.
struct OffCore(nix::sched::CpuSet);

impl OffCore {
    fn new(core: usize, online: &[usize]) -> OffCore {
        let me = nix::unistd::Pid::from_raw(0);
        let before = nix::sched::sched_getaffinity(me).expect("sched_getaffinity");
        let rest: Vec<usize> = online.iter().copied().filter(|&c| c != core).collect();
        xvs::control::host::confine_thread(&rest).expect("confining the test");
        OffCore(before)
    }
}

impl Drop for OffCore {
    fn drop(&mut self) {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &self.0);
    }
}

/// (thread name, the cores it may run on) for every thread of `pid`.
fn thread_cores(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks").flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_string();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let cores = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        out.push((comm, cores));
    }
    out
}

/// The time the hypervisor took from `core` so far (/proc/stat's steal, in ms): a stall no
/// scheduler inside the VM can see or prevent.
fn steal_ms(core: usize) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{core}");
    let ticks: f64 = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        .and_then(|l| l.split_whitespace().nth(8)?.parse().ok())
        .unwrap_or(0.0);
    ticks * 10.0 // USER_HZ is 100
}

/// The longest gap a thread alone on `core` sees between two clock reads in `secs`: what the
/// machine itself takes from a busy loop that does nothing (the floor under any loop round).
fn clock_gap_floor(core: usize, secs: f64) -> Duration {
    std::thread::spawn(move || {
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id: core });
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let (mut last, mut worst) = (Instant::now(), Duration::ZERO);
        while last < end {
            let t = Instant::now();
            worst = worst.max(t - last);
            last = t;
        }
        worst
    })
    .join()
    .expect("the clock probe")
}

#[test]
fn soak_mixed_traffic_reconfiguration_and_health_flaps() {
    // `tools/soak` runs this for 10 minutes (XVS_SOAK_SECS=600, release build); CI for 20 s
    // (a smoke: a looser loop round bound, see below).
    // Traffic from xvs-pktgen to a NAT mh service (established flows and 10% new
    // connections, XVS_SOAK_PPS a second, and every 12 s a 2 s SYN flood burst at 5 times
    // that from 2^20 sources), 20 long-lived echo connections on another service; every 2 s a
    // reconfiguration (xvsadm edits, SIGHUP reloads); r3's link down and up every 10 s (its
    // health check takes it out and back). Asserted: no UMEM frame lost, no echo lost or slow,
    // resident memory flat after the first burst, the longest loop round <= 10 ms, no
    // error logged.
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let secs: u64 = std::env::var("XVS_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let pps: u64 = std::env::var("XVS_SOAK_PPS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    // The worker alone on the last core; everything else (this test, the generator, the
    // servers, the director's other threads) on the rest.
    let online = xvs::control::host::online_cores().expect("online cores");
    // XVS_SOAK_SHARED=1: no pinning, everything shares every core (for comparison).
    let shared = std::env::var("XVS_SOAK_SHARED").is_ok_and(|v| v == "1");
    let worker_core = (online.len() > 1 && !shared).then(|| online[online.len() - 1]);
    let _off = worker_core.map(|c| OffCore::new(c, &online));
    let floor = clock_gap_floor(worker_core.unwrap_or(0), 2.0);
    let t = Topo::up("xeq", 1);
    let _echo: Vec<EchoServer> = (1..=2).map(|i| EchoServer::start(&t, i, 7000)).collect();
    let sock = std::env::temp_dir().join("xvs-e2e-xeq.sock");
    let config = std::env::temp_dir().join("xvs-e2e-xeq.json");
    let check = r#" "health_check": { "kind": "http", "port": 8080, "path": "/name", "interval_ms": 300, "timeout_ms": 200, "rise": 2, "fall": 2 },"#;
    let file = |variant: u64| {
        let w = (variant % 3 + 1) as u32;
        let web: Vec<String> = (1..=3)
            .map(|i| {
                format!(
                    r#"{{ "addr": "198.19.0.1{i}", "port": 8080, "mode": "nat", "weight": {} }}"#,
                    if i == 2 { w } else { 1 }
                )
            })
            .collect();
        let web = format!(
            r#"{{ "proto": "tcp", "vip": "{VIP}", "port": 8080, "scheduler": "mh", "sched_flags": ["mh-port"],{check} "real_servers": [{}] }}"#,
            web.join(", ")
        );
        let echo = echo_service(7000, "nat", &[(1, 1), (2, w)], "");
        let extra = r#"
  "metrics": { "listen": "127.0.0.1:9192" }, "conn": { "max_per_worker": 262144 },"#;
        let cfg = ops_config(&sock, &[echo, web].join(",\n"), extra);
        match worker_core {
            Some(c) => cfg.replacen(r#""workers": 1"#, &format!(r#""workers": 1, "cores": [{c}]"#), 1),
            None => cfg,
        }
    };
    std::fs::write(&config, file(0)).expect("config");
    let d = Director::start(&t, &config);
    let pid = d.child.as_ref().expect("running").id();
    if let Some(c) = worker_core {
        // The worker on its core, every other thread of the director off it.
        let threads = thread_cores(pid);
        let rest: Vec<usize> = online.iter().copied().filter(|&x| x != c).collect();
        for (name, cores) in &threads {
            let want = if name == "xvs-worker-0" { vec![c] } else { rest.clone() };
            let cores = xvs::control::host::parse_cpu_list(cores);
            assert_eq!(cores, Some(want), "thread {name} of the director: {threads:?}");
        }
        assert!(threads.iter().any(|t| t.0 == "xvs-worker-0"), "{threads:?}");
    }
    let echoes = Echoes::start((0..20).map(|_| LongConn::open(&t, 7000)).collect());
    let scrape = || t.exec("d", &["curl", "-s", "-f", "-m", "5", "http://127.0.0.1:9192/metrics"]).1;

    // The traffic: mix for 10 s, a SYN burst for 2 s, over and over, on a thread.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (_, mac) = t.exec("d", &["cat", "/sys/class/net/xvs-c/address"]);
    let mac = mac.trim().to_string();
    let ns_c = t.ns("c");
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let pktgen = env!("CARGO_BIN_EXE_xvs-pktgen");
            let (mut frames, mut bursts, mut runs) = (0u64, 0u64, 0u64);
            let t0 = Instant::now();
            let mut k = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let left = (secs as f64 - t0.elapsed().as_secs_f64()).max(0.0);
                if left < 0.5 {
                    break;
                }
                let burst = k % 2 == 1;
                let mut cmd = Command::new(ip_binary());
                cmd.args(["netns", "exec", &ns_c, pktgen, "send", "--iface", "c0", "--dst-mac", &mac, "--dst", VIP]);
                cmd.args(["--dport", "8080", "--json"]);
                if burst {
                    cmd.args([
                        "--profile",
                        "syn",
                        "--src",
                        "198.18.128.0/17",
                        "--sport",
                        "1024-1055",
                        "--seed",
                        &k.to_string(),
                    ]);
                    cmd.args([
                        "--random",
                        "--rate",
                        &(pps * 5).to_string(),
                        "--duration",
                        &format!("{:.1}", left.min(2.0)),
                    ]);
                } else {
                    cmd.args([
                        "--profile",
                        "mix",
                        "--new-pct",
                        "10",
                        "--src",
                        "198.18.64.0/20",
                        "--sport",
                        "10000-10015",
                    ]);
                    cmd.args([
                        "--flows",
                        "20000",
                        "--rate",
                        &pps.to_string(),
                        "--duration",
                        &format!("{:.1}", left.min(10.0)),
                    ]);
                }
                let out = cmd.stderr(Stdio::null()).output().expect("xvs-pktgen");
                assert!(out.status.success(), "xvs-pktgen failed");
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("pktgen JSON");
                frames += v["frames"].as_u64().unwrap_or(0);
                bursts += burst as u64;
                runs += 1;
                k += 1;
            }
            (frames, bursts, runs)
        })
    };

    let started = Instant::now();
    let mut series = vec!["t_s,rss_mb,connections,rx_kpps,longest_round_us,frames_lost,steal_ms".to_string()];
    let steal_core = worker_core.unwrap_or(0);
    let (steal_start, mut last_steal, mut worst_steal) = (steal_ms(steal_core), steal_ms(steal_core), 0.0f64);
    let (mut page, mut last_rx, mut last_t) = (scrape(), 0.0, 0.0);
    let (mut rss_ref, mut rss_max, mut worst_round, mut lost_max) = (None::<u64>, 0u64, 0.0f64, 0f64);
    let (mut reconfigs, mut flaps) = (0u64, 0u64);
    let mut r3_down = false;
    for tick in 1..=secs {
        // One tick a second (the work of a tick counted in it).
        let due = started + Duration::from_secs(tick);
        if tick % 2 == 0 {
            if tick % 4 == 0 {
                std::fs::write(&config, file(tick)).expect("config");
                let before = d.output().matches("SIGHUP: reloaded").count();
                let st = Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("kill");
                assert!(st.success());
                wait_for("the SIGHUP reload", Duration::from_secs(5), || {
                    d.output().matches("SIGHUP: reloaded").count() > before
                });
            } else {
                let w = (tick % 5).to_string();
                let (code, _, err) =
                    xvsadm(&sock, &["-e", "-t", &format!("{VIP}:8080"), "-r", "198.19.0.11:8080", "-m", "-w", &w]);
                assert_eq!(code, Some(0), "{err}");
            }
            reconfigs += 1;
        }
        if tick % 10 == 5 {
            r3_down = !r3_down;
            assert!(t.exec("s", &["ip", "link", "set", "s3", if r3_down { "down" } else { "up" }]).0);
            flaps += 1;
        }
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        // Metrics pages are cached for a second: a fresh one every other second.
        if tick % 2 == 1 {
            continue;
        }
        let now = scrape();
        let el = started.elapsed().as_secs_f64();
        let rx = metric_sum(&now, "xvs_worker_rx_frames_total");
        let lost = metric_sum(&now, "xvs_worker_frames_lost");
        let round = longest_round_us(&page, &now);
        let conns = metric_sum(&now, "xvs_worker_connections");
        let rss = rss_kb(pid);
        // Memory is judged after the first SYN burst has filled what it fills (14 s).
        if el >= 14.0 {
            rss_ref.get_or_insert(rss);
            rss_max = rss_max.max(rss);
        }
        worst_round = worst_round.max(round);
        lost_max = lost_max.max(lost.abs());
        let steal = steal_ms(steal_core);
        worst_steal = worst_steal.max(steal - last_steal);
        series.push(format!(
            "{el:.1},{:.1},{conns},{:.1},{round},{lost},{}",
            rss as f64 / 1024.0,
            (rx - last_rx) / (el - last_t).max(0.001) / 1000.0,
            steal - last_steal
        ));
        last_steal = steal;
        (page, last_rx, last_t) = (now, rx, el);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (frames, bursts, runs) = traffic.join().expect("the traffic thread");
    if r3_down {
        assert!(t.exec("s", &["ip", "link", "set", "s3", "up"]).0);
    }
    let (_conns, tally) = echoes.finish();
    let m = scrape();
    let max_round = metric_sum(&m, "xvs_worker_loop_round_max_seconds");
    let dir = repo().join("target/soak");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("soak.csv"), series.join("\n") + "\n");
    let (ok, out) = d.stop();
    let errors: Vec<&str> = out.lines().filter(|l| l.contains(" ERROR ")).collect();
    let rounds = metric_sum(&m, "xvs_worker_loop_round_seconds_count");
    eprintln!(
        "soak {secs} s: {frames} frames sent in {runs} runs ({bursts} SYN bursts), {reconfigs} reconfigurations, \
         {flaps} flaps; echoes {tally:?}; RSS {rss_ref:?} kB after the first burst, {rss_max} at most; \
         loop rounds {rounds}, longest {:.0} us (the histogram's worst interval bucket {worst_round} us); \
         frames lost at most {lost_max}; {} errors logged; the worker's core {steal_core}: {:.0} ms stolen by the \
         hypervisor ({worst_steal:.0} ms at most in 2 s), a clock-only loop's longest gap there {:.0} us before the run",
        max_round * 1e6,
        errors.len(),
        steal_ms(steal_core) - steal_start,
        floor.as_secs_f64() * 1e6
    );
    assert!(ok, "{out}");
    assert!(errors.is_empty(), "errors logged: {errors:?}");
    assert_eq!(lost_max, 0.0, "UMEM frames lost during the run");
    let lost: Vec<i64> = worker_lines(&out).iter().map(|l| l.2).collect();
    assert_eq!(lost, vec![0], "every UMEM frame accounted for at the end: {out}");
    assert_eq!((tally.lost, tally.slow), (0, 0), "echoes lost or slower than 1 s: {tally:?}");
    assert!(bursts >= 1 && reconfigs >= secs / 2 - 1 && flaps >= 1, "the run did what it says");
    // tools/soak (a release build, asked for a duration) holds the issue's 10 ms; CI's debug
    // build on a shared 2-core machine, 50 ms: its worker is preempted by the traffic's own
    // processes (seen: 8.6 ms here with a fuzzer on the other core).
    let bound = if std::env::var("XVS_SOAK_SECS").is_ok() { 0.010 } else { 0.050 };
    assert!(max_round > 0.0 && max_round <= bound, "the longest loop round {max_round} s (bound {bound} s)");
    let (r0, r1) = (rss_ref.expect("sampled"), rss_max);
    assert!(r1 as f64 <= r0 as f64 * 1.05, "resident memory grew: {r0} kB -> {r1} kB");
    let _ = std::fs::remove_file(&sock);
}

// ------------------------------------------------------------------------------------------
// HA: two directors with keepalived (VRRP version 3) and IPVS's connection sync
// ------------------------------------------------------------------------------------------

/// One director of the HA pair: its config (NAT on 7000, FULLNAT on 7001, DR on 7002, rr over
/// both real servers; FULLNAT from the floating 198.19.0.1), `xvs run`, and keepalived.
struct HaNode {
    name: &'static str,
    sock: PathBuf,
    health: PathBuf,
    director: Option<Director>,
    keepalived: Option<Child>,
}

const HA_SERVICES: &str = r#"
    {"proto": "tcp", "vip": "198.18.0.100", "port": 7000, "scheduler": "rr",
     "real_servers": [{"addr": "198.19.0.11", "mode": "nat"}, {"addr": "198.19.0.12", "mode": "nat"}]},
    {"proto": "tcp", "vip": "198.18.0.100", "port": 7001, "scheduler": "rr",
     "real_servers": [{"addr": "198.19.0.11", "mode": "fullnat"}, {"addr": "198.19.0.12", "mode": "fullnat"}]},
    {"proto": "tcp", "vip": "198.18.0.100", "port": 7002, "scheduler": "rr",
     "real_servers": [{"addr": "198.19.0.11", "mode": "dr"}, {"addr": "198.19.0.12", "mode": "dr"}]}"#;

impl HaNode {
    /// Starts `xvs run` in `name` (d1 or d2) and keepalived with `priority`; `sync`: the
    /// notify script switches the sync daemons (else keepalived moves the addresses only).
    fn start(t: &Topo, name: &'static str, priority: u32, sync: bool) -> HaNode {
        let tmp = std::env::temp_dir();
        let sock = tmp.join(format!("xvs-e2e-{}-{name}.sock", t.prefix));
        let health = tmp.join(format!("xvs-e2e-{}-{name}.health", t.prefix));
        let _ = std::fs::remove_file(&health);
        let _ = std::fs::remove_file(tmp.join(format!("xvs-e2e-{}-{name}-notify.log", t.prefix)));
        let dip = if name == "d1" { "198.19.0.2" } else { "198.19.0.3" };
        let cfg = format!(
            r#"{{
  "director": {{ "interfaces": [{{ "name": "xvs-c" }}, {{ "name": "xvs-r" }}], "dip": "{dip}",
                "local_addrs": ["198.19.0.1"], "local_ports": [10000, 32767], "workers": 1,
                "health_file": "{}" }},
  "control": {{ "socket": "{}" }},
  "services": [{HA_SERVICES}]
}}"#,
            health.display(),
            sock.display()
        );
        let path = tmp.join(format!("xvs-e2e-{}-{name}.json", t.prefix));
        std::fs::write(&path, cfg).expect("config");
        let director = Director::start_in(t, name, &path, &[], &[]);
        let conf = tmp.join(format!("xvs-e2e-{}-{name}-keepalived.conf", t.prefix));
        let xvsadm = if sync { env!("CARGO_BIN_EXE_xvsadm") } else { "/bin/true" };
        let out = Command::new(repo().join("tools/ha/render"))
            .args([name, &priority.to_string(), &health.display().to_string(), xvsadm])
            .arg(&sock)
            .args(["xvs-r", "7"])
            .output()
            .expect("tools/ha/render");
        assert!(out.status.success(), "render: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(&conf, &out.stdout).expect("keepalived.conf");
        let log = std::fs::File::create(tmp.join(format!("xvs-e2e-{}-{name}-keepalived.log", t.prefix))).expect("log");
        let pid = |k: &str| tmp.join(format!("xvs-e2e-{}-{name}-{k}.pid", t.prefix)).display().to_string();
        let keepalived = Command::new(ip_binary())
            .args(["netns", "exec", &t.ns(name), "keepalived", "--dont-fork", "--log-console", "--vrrp", "-f"])
            .arg(&conf)
            .args(["-p", &pid("keepalived"), "-r", &pid("vrrp")])
            .env("XVS_NOTIFY_LOG", tmp.join(format!("xvs-e2e-{}-{name}-notify.log", t.prefix)))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("keepalived (apt-get install keepalived)");
        HaNode { name, sock, health, director: Some(director), keepalived: Some(keepalived) }
    }

    fn adm(&self, args: &[&str]) -> String {
        xvsadm(&self.sock, args).1
    }

    fn holds_vip(&self, t: &Topo) -> bool {
        t.exec(self.name, &["ip", "-4", "-o", "addr", "show", "dev", "xvs-c"]).1.contains("198.18.0.100/32")
    }

    /// SIGKILL keepalived and xvs: a crash, nothing cleaned up.
    fn kill(&mut self) {
        if let Some(mut k) = self.keepalived.take() {
            let _ = k.kill();
            let _ = k.wait();
        }
        if let Some(mut d) = self.director.take() {
            if let Some(mut c) = d.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for HaNode {
    fn drop(&mut self) {
        if let Some(mut k) = self.keepalived.take() {
            let _ = Command::new("kill").args(["-TERM", &k.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while k.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = k.kill();
            let _ = k.wait();
        }
    }
}

/// tcpdump writing `filter`'s packets on `iface` in `ns` to `path` (with `more` options),
/// once it listens; with its stderr, kept open until it is stopped.
fn start_pcap(ns: &str, iface: &str, more: &[&str], filter: &str, path: &Path) -> (Child, std::process::ChildStderr) {
    let _ = std::fs::remove_file(path);
    let mut dump = Command::new("ip")
        .args(["netns", "exec", ns, "timeout", "60", "tcpdump", "--immediate-mode", "-i", iface, "-U"])
        .args(more)
        .arg("-w")
        .arg(path)
        .arg(filter)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    let mut err = dump.stderr.take().expect("stderr");
    let (mut seen, mut b) = (Vec::new(), [0u8; 256]);
    while !String::from_utf8_lossy(&seen).contains("listening on") {
        match err.read(&mut b) {
            Ok(0) | Err(_) => panic!("tcpdump did not start: {}", String::from_utf8_lossy(&seen)),
            Ok(n) => seen.extend_from_slice(&b[..n]),
        }
    }
    (dump, err)
}

/// Stops the capture and runs the sync decoder (`tools/sync_decode.rs`) on it with `args`;
/// its output (it must succeed).
fn stop_pcap((mut dump, _err): (Child, std::process::ChildStderr), path: &Path, args: &[&str]) -> String {
    let _ = Command::new("kill").args(["-INT", &dump.id().to_string()]).status();
    let _ = dump.wait();
    let decoder = std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(|p| p.parent())
        .expect("target")
        .join("examples/sync-decode");
    let out = Command::new(&decoder).arg(path).args(args).output().unwrap_or_else(|e| {
        panic!("{}: {e} (build it first: cargo build --example sync-decode; tools/test does)", decoder.display())
    });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(path);
    text
}

/// A new connection's greeting through the VIP, with a short connect timeout.
fn quick_conn(t: &Topo, port: u16) -> Option<String> {
    let (_, out) = t.exec("c", &["socat", "-t", "1", "-T", "1", "-", &format!("TCP:{VIP}:{port},connect-timeout=0.3")]);
    out.lines().next().filter(|l| l.starts_with('r')).map(str::to_string)
}

/// The pair up: d1 master (VIP, sync master when `sync`), d2 backup, long-lived
/// connections open through NAT, FULLNAT and DR, each echoing once.
fn ha_pair(t: &Topo, sync: bool, before_conns: &mut dyn FnMut()) -> (HaNode, HaNode, Vec<(u16, LongConn)>) {
    let d1 = HaNode::start(t, "d1", 150, sync);
    // d1 first, so that it wins the first election whatever the timing.
    wait_for("d1 master (holds the VIP)", Duration::from_secs(10), || d1.holds_vip(t));
    let d2 = HaNode::start(t, "d2", 100, sync);
    if sync {
        wait_for("d1's master sync daemon", Duration::from_secs(10), || {
            d1.adm(&["-L", "--daemon"]).contains("master sync daemon (mcast=xvs-r, syncid=7")
        });
        wait_for("d2's backup sync daemon", Duration::from_secs(10), || {
            d2.adm(&["-L", "--daemon"]).contains("backup sync daemon (mcast=xvs-r, syncid=7")
        });
    } else {
        // d2's keepalived settled as backup (its notify ran).
        let log = std::env::temp_dir().join(format!("xvs-e2e-{}-d2-notify.log", t.prefix));
        wait_for("d2's keepalived in BACKUP", Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("BACKUP"))
        });
    }
    assert!(!d2.holds_vip(t), "d2 stays backup");
    before_conns();
    let mut conns = Vec::new();
    for port in [7000u16, 7001, 7002] {
        let mut c = LongConn::open(t, port);
        assert_eq!(c.echo(&format!("before {port}")).as_deref(), Some(format!("before {port}").as_str()));
        conns.push((port, c));
    }
    (d1, d2, conns)
}

#[test]
fn keepalived_failover_keeps_synced_nat_fullnat_and_dr_connections_on_their_servers() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up_ha("xer");
    let _echo: Vec<EchoServer> =
        (1..=2).flat_map(|i| [7000u16, 7001, 7002].map(|p| (i, p))).map(|(i, p)| EchoServer::start(&t, i, p)).collect();
    // The sync traffic captured on the server-side switch, once both directors are up.
    let pcap = std::env::temp_dir().join("xvs-e2e-xer-sync.pcap");
    let mut dump = None;
    let (mut d1, d2, mut conns) =
        ha_pair(&t, true, &mut || dump = Some(start_pcap(&t.ns("s"), "br0", &[], "udp dst port 8848", &pcap)));
    let dump = dump.expect("capture started");
    // The backup holds the master's connections (synced at their third packet, sent within
    // a second), with the same real servers.
    let listing = |n: &HaNode| {
        let out = n.adm(&["-L", "-n", "-c"]);
        let mut v: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("TCP") && l.contains("ESTABLISHED"))
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.len() >= 6).then(|| format!("{} {} {}", w[3], w[4], w[5]))
            })
            .collect();
        v.sort();
        v
    };
    wait_for("the backup has the 3 connections", Duration::from_secs(5), || listing(&d2).len() == 3);
    assert_eq!(listing(&d2), listing(&d1), "same clients, VIPs and real servers on both");
    let sync_line = d2.adm(&["--workers"]);
    assert!(number_after(&sync_line, "created").unwrap_or(0) >= 3, "{sync_line}");
    // What d2 received, as captured on its link, decodes with the independent decoder:
    // version 1, syncid 7, the three connections, FULLNAT's with its local tuple.
    let text = stop_pcap(dump, &pcap, &["--expect-conns", "3", "--strict"]);
    assert!(text.contains("198.19.0.2 -> 224.0.0.81 ttl 1: syncid 7"), "{text}");
    for port in [7000, 7001, 7002] {
        assert!(
            text.contains("TCP ESTABLISHED 198.18.0.2:") && text.contains(&format!("198.18.0.100:{port}")),
            "{text}"
        );
    }
    assert!(text.contains("fullnat-local 198.19.0.1:"), "{text}");
    assert!(text.contains("DROUTE") && text.contains("MASQ"), "{text}");
    for (port, c) in conns.iter_mut() {
        assert!(c.echo(&format!("still {port}")).is_some());
    }

    // The master crashes: keepalived and xvs SIGKILLed, its cables pulled.
    let t0 = Instant::now();
    d1.kill();
    let st = Command::new(repo().join("tools/netns-ha-topo")).args(["cable", &t.prefix, "d1", "down"]).status();
    assert!(st.is_ok_and(|s| s.success()));
    // New connections work again once d2 holds the VIP, serves, and announced it.
    while quick_conn(&t, 7000).is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no new connection within 10 s of the failover");
    }
    let gap = t0.elapsed();
    println!("failover: new connections again after {} ms", gap.as_millis());
    assert!(d2.holds_vip(&t));
    wait_for("d2 takes over as sync master", Duration::from_secs(5), || {
        d2.adm(&["-L", "--daemon"]).contains("master sync daemon")
    });
    // With VRRP version 3 and 200 ms adverts keepalived declares the master dead after about
    // 0.7 s (measured ~380 ms to new connections here, printed above); the bound is the
    // issue's 3 s for a loaded CI machine.
    assert!(gap < Duration::from_secs(3), "failover gap {gap:?}");
    // Every long-lived connection keeps echoing, on its server (another server's kernel
    // would answer with a reset).
    for (port, c) in conns.iter_mut() {
        for i in 0..3 {
            let msg = format!("after {port} {i}");
            assert_eq!(c.echo(&msg).as_deref(), Some(msg.as_str()), "port {port} after the failover");
        }
    }
    let conns_on_d2 = d2.adm(&["-L", "-n", "-c"]);
    assert!(conns_on_d2.lines().filter(|l| l.contains("ESTABLISHED")).count() >= 3, "{conns_on_d2}");
    drop(d2);
}

#[test]
fn without_connection_sync_a_failover_breaks_established_connections() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up_ha("xes");
    let _echo: Vec<EchoServer> =
        (1..=2).flat_map(|i| [7000u16, 7001, 7002].map(|p| (i, p))).map(|(i, p)| EchoServer::start(&t, i, p)).collect();
    let (mut d1, d2, mut conns) = ha_pair(&t, false, &mut || {});
    // This time the master's xvs stops cleanly (SIGTERM): its health file turns to 1,
    // keepalived's track_file puts d1 in FAULT and d2 takes the VIP.
    let t0 = Instant::now();
    if let Some(d) = d1.director.take() {
        let (ok, out) = d.stop();
        assert!(ok, "xvs stops cleanly:\n{out}");
    }
    assert_eq!(std::fs::read_to_string(&d1.health).unwrap_or_default().trim(), "1");
    wait_for("d2 takes the VIP", Duration::from_secs(5), || d2.holds_vip(&t));
    while quick_conn(&t, 7000).is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no new connection within 10 s");
    }
    println!("failover on a stopped xvs: new connections after {} ms", t0.elapsed().as_millis());
    // d2 never saw the connections: rr needs a SYN, so their next segments are dropped and
    // no echo comes back.
    for (port, c) in conns.iter_mut() {
        assert_eq!(c.echo(&format!("after {port}")), None, "port {port} should break without sync");
    }
    let w = d2.adm(&["--workers"]);
    assert!(w.contains("no_conn"), "{w}");
    drop(d1);
}

#[test]
fn ten_hitless_restarts_keep_long_lived_connections_without_a_reset() {
    // SIGUSR2 with director.handover_file: the table is written there, the steering programs
    // stay attached and hold (director frames without a socket are dropped, never handed to
    // the kernel, which holds the VIP and would reset them); the next run attaches its own
    // program holding too, registers its sockets and takes the table. rr everywhere: only the
    // handed-over table, not a hash, can keep a connection on its server.
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up("xet", 1);
    let _echo: Vec<EchoServer> = (1..=3)
        .flat_map(|i| [7000u16, 7001, 7002, 7003].map(|p| (i, p)))
        .map(|(i, p)| EchoServer::start(&t, i, p))
        .collect();
    let tmp = std::env::temp_dir();
    let sock = tmp.join("xvs-e2e-xet.sock");
    let handover = tmp.join("xvs-e2e-xet.handover");
    let _ = std::fs::remove_file(&handover);
    let services = r#"
    {"proto": "tcp", "vip": "198.18.0.100", "port": 7000, "scheduler": "rr",
     "real_servers": [{"addr": "198.19.0.11", "mode": "nat"}, {"addr": "198.19.0.12", "mode": "nat"}, {"addr": "198.19.0.13", "mode": "nat"}]},
    {"proto": "tcp", "vip": "198.18.0.100", "port": 7001, "scheduler": "rr",
     "real_servers": [{"addr": "198.19.0.11", "mode": "fullnat"}, {"addr": "198.19.0.12", "mode": "fullnat"}, {"addr": "198.19.0.13", "mode": "fullnat"}]},
    {"proto": "tcp", "vip": "198.18.0.100", "port": 7002, "scheduler": "rr",
     "real_servers": [{"addr": "198.19.0.11", "mode": "dr"}, {"addr": "198.19.0.12", "mode": "dr"}, {"addr": "198.19.0.13", "mode": "dr"}]},
    {"proto": "tcp", "vip": "198.18.0.100", "port": 7003, "scheduler": "mh",
     "real_servers": [{"addr": "198.19.0.11", "mode": "dr"}, {"addr": "198.19.0.12", "mode": "dr"}, {"addr": "198.19.0.13", "mode": "dr"}]}"#;
    let cfg = ops_config(&sock, services, "").replacen(
        "\"workers\": 1",
        &format!("\"workers\": 1, \"handover_file\": \"{}\"", handover.display()),
        1,
    );
    let path = tmp.join("xvs-e2e-xet.json");
    std::fs::write(&path, &cfg).expect("config");
    let mut d = Director::start(&t, &path);
    let mut conns: Vec<(u16, LongConn)> = Vec::new();
    for port in [7000u16, 7001, 7002, 7003] {
        for _ in 0..2 {
            let mut c = LongConn::open(&t, port);
            assert!(c.echo("hello").is_some(), "port {port}");
            conns.push((port, c));
        }
    }
    let servers: Vec<String> = conns.iter().map(|(_, c)| c.server.clone()).collect();
    // The director's kernel (which holds the VIP) sends no reset all along.
    let out_rsts = || {
        let snmp = t.exec("d", &["cat", "/proc/net/snmp"]).1;
        let rows: Vec<Vec<&str>> =
            snmp.lines().filter(|l| l.starts_with("Tcp:")).map(|l| l.split_whitespace().collect()).collect();
        let at = rows.first().and_then(|h| h.iter().position(|f| *f == "OutRsts")).expect("OutRsts");
        rows.get(1).and_then(|v| v.get(at)).and_then(|v| v.parse::<u64>().ok()).expect("a count")
    };
    let rsts_before = out_rsts();
    let mut gaps = Vec::new();
    for round in 0..10 {
        let mut child = d.child.take().expect("running");
        let t0 = Instant::now();
        let _ = Command::new("kill").args(["-USR2", &child.id().to_string()]).status();
        let st = child.wait().expect("exits");
        assert!(st.success(), "round {round}: the handover exit is clean:\n{}", d.output());
        assert!(d.output().contains("connections handed over"), "{}", d.output());
        assert!(xdp_attached(&t, "xvs-c") && xdp_attached(&t, "xvs-r"), "round {round}: the programs stay attached");
        d = Director::start(&t, &path);
        let gap = t0.elapsed();
        let took = d.output();
        let line = took.lines().find(|l| l.contains("handover:")).unwrap_or("").to_string();
        assert!(line.contains(&format!("{0} of {0} connections taken over", conns.len())), "round {round}: {line}");
        gaps.push(gap.as_millis());
        for (k, (port, c)) in conns.iter_mut().enumerate() {
            // The segment sent into the gap was dropped and is retransmitted (RTO back-off):
            // a few tries, never a reset (a reset ends socat: no answer at all after it).
            let msg = format!("round {round} conn {k}");
            let ok = (0..4).any(|_| c.echo(&msg).as_deref() == Some(msg.as_str()));
            assert!(ok, "round {round}: connection {k} (port {port}) broke:\n{}", d.output());
        }
    }
    eprintln!("hitless restarts: gaps (SIGUSR2 to the next run up) {gaps:?} ms");
    assert_eq!(out_rsts(), rsts_before, "the director's kernel reset something during the restarts");
    let now: Vec<String> = conns.iter().map(|(_, c)| c.server.clone()).collect();
    assert_eq!(now, servers);
    // New connections are served as before.
    assert!(new_conn(&t, 7000).starts_with('r'));

    // A crash (SIGKILL): no handover, but the programs hold; the next run has no table. mh
    // takes its flows back by the hash; rr cannot (its segments are dropped as no_conn,
    // still never reset by the kernel).
    let mut child = d.child.take().expect("running");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(xdp_attached(&t, "xvs-c"), "the program outlives the process");
    d = Director::start(&t, &path);
    assert!(d.output().contains("handover: no table from a previous run"), "{}", d.output());
    for (k, (port, c)) in conns.iter_mut().enumerate().filter(|(_, (p, _))| *p == 7003) {
        let msg = format!("after the crash {k}");
        let ok = (0..4).any(|_| c.echo(&msg).as_deref() == Some(msg.as_str()));
        assert!(ok, "mh connection {k} (port {port}) lost in the crash:\n{}", d.output());
    }
    let rr = conns.iter_mut().find(|(p, _)| *p == 7000).map(|(_, c)| c).expect("an rr connection");
    assert_eq!(rr.echo("rr after the crash"), None, "an rr connection has no table to come back from");
    assert_eq!(out_rsts(), rsts_before, "the crash made the kernel reset something");
    let (ok, out) = d.stop();
    assert!(ok, "{out}");
    assert!(!xdp_attached(&t, "xvs-c"), "a plain stop detaches the programs");
}

// ------------------------------------------------------------------------------------------
// Scale-out: two active directors behind an ECMP router, VIPs announced over BGP (BIRD 2)
// ------------------------------------------------------------------------------------------

/// A BIRD daemon in a namespace; killed on drop.
struct Bird(Child);

impl Bird {
    fn start(t: &Topo, which: &str, role_args: &[&str]) -> (Bird, PathBuf) {
        let tmp = std::env::temp_dir();
        let conf = tmp.join(format!("xvs-e2e-{}-{which}-bird.conf", t.prefix));
        let sock = tmp.join(format!("xvs-e2e-{}-{which}-bird.ctl", t.prefix));
        let out = Command::new(repo().join("tools/ha/render-bird")).args(role_args).output().expect("render-bird");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(&conf, &out.stdout).expect("bird.conf");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::File::create(tmp.join(format!("xvs-e2e-{}-{which}-bird.log", t.prefix))).expect("log");
        let child = Command::new(ip_binary())
            .args(["netns", "exec", &t.ns(which), "bird", "-f", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(&sock)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("bird (apt-get install bird2)");
        wait_for(&format!("BIRD's socket in {which}"), Duration::from_secs(5), || sock.exists());
        (Bird(child), sock)
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The router's next hops for the VIP.
fn vip_next_hops(t: &Topo) -> Vec<String> {
    let out = t.exec("rt", &["ip", "-4", "route", "show", "198.18.0.100/32"]).1;
    let mut hops: Vec<String> = out
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect();
    hops.sort();
    hops
}

#[test]
fn ecmp_directors_announced_over_bgp_agree_on_servers_and_take_over_a_withdrawn_directors_flows() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topo::up_with("tools/netns-ecmp-topo", "xeu", &[]);
    let _echo: Vec<EchoServer> = (1..=3).map(|i| EchoServer::start(&t, i, 7002)).collect();
    let (_router, _) = Bird::start(&t, "rt", &["router", "198.18.0.1", "198.18.0.11", "198.18.0.12"]);
    let tmp = std::env::temp_dir();
    let mut birds = Vec::new();
    let mut directors = Vec::new();
    let mut socks = Vec::new();
    for (name, addr, dip) in [("d1", "198.18.0.11", "198.19.0.2"), ("d2", "198.18.0.12", "198.19.0.3")] {
        let (bird, bird_sock) = Bird::start(&t, name, &["director", addr, "198.18.0.1", VIP]);
        birds.push(bird);
        let sock = tmp.join(format!("xvs-e2e-xeu-{name}.sock"));
        // mh, the same servers on both: a flow's server follows from the flow alone, so
        // either director picks the same one, SYN or not.
        let cfg = format!(
            r#"{{
  "director": {{ "interfaces": [{{ "name": "xvs-c" }}, {{ "name": "xvs-r" }}], "dip": "{dip}", "workers": 1 }},
  "control": {{ "socket": "{}" }},
  "bgp": {{ "socket": "{}" }},
  "services": [{{"proto": "tcp", "vip": "198.18.0.100", "port": 7002, "scheduler": "mh",
     "real_servers": [{{"addr": "198.19.0.11", "mode": "dr"}}, {{"addr": "198.19.0.12", "mode": "dr"}},
                      {{"addr": "198.19.0.13", "mode": "dr"}}]}}]
}}"#,
            sock.display(),
            bird_sock.display()
        );
        let path = tmp.join(format!("xvs-e2e-xeu-{name}.json"));
        std::fs::write(&path, cfg).expect("config");
        directors.push(Director::start_in(&t, name, &path, &[], &[]));
        socks.push(sock);
    }
    // Both announce: the router has one route with both directors as next hops.
    wait_for("ECMP route via both directors", Duration::from_secs(20), || {
        vip_next_hops(&t) == ["198.18.0.11", "198.18.0.12"]
    });
    assert!(directors[0].output().contains("bgp: announcing 198.18.0.100"), "{}", directors[0].output());
    // Long-lived connections from many source ports spread over both directors.
    let on = |i: usize| xvsadm(&socks[i], &["-L", "-n", "-c"]).1.lines().filter(|l| l.contains("ESTABLISHED")).count();
    let mut conns = Vec::new();
    while conns.len() < 8 || on(0) < 2 || on(1) < 2 {
        assert!(conns.len() < 40, "40 connections and still not spread over both directors: {} / {}", on(0), on(1));
        let mut c = LongConn::open(&t, 7002);
        assert!(c.echo("hello").is_some());
        conns.push(c);
    }
    let (n1, n2) = (on(0), on(1));
    eprintln!("ecmp: {} connections, {n1} through d1, {n2} through d2", conns.len());
    // d1 stops: it withdraws the VIP first, the router's route keeps d2 alone, and d1's flows
    // arrive at d2, which never saw their SYNs: mh schedules them by the hash, to the server
    // d1 had picked (another server would reset them).
    let d1 = directors.remove(0);
    let (ok, out) = d1.stop();
    assert!(ok, "{out}");
    assert!(out.contains("bgp: withdrawing 198.18.0.100"), "{out}");
    wait_for("the route via d2 alone", Duration::from_secs(10), || vip_next_hops(&t) == ["198.18.0.12"]);
    for (k, c) in conns.iter_mut().enumerate() {
        let msg = format!("after d1 left {k}");
        let ok = (0..3).any(|_| c.echo(&msg).as_deref() == Some(msg.as_str()));
        assert!(ok, "connection {k} ({}) lost with d1", c.server);
    }
    assert_eq!(on(1), conns.len(), "every connection is d2's now");
    // New connections go on through d2.
    assert!(new_conn(&t, 7002).starts_with('r'));
    drop(birds);
}
