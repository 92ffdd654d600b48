//! `xvs import-keepalived`: keepalived.conf's `virtual_server` blocks as config.json.
//!
//! Converted: `virtual_server IP PORT` with `lb_algo`, `lb_kind` (NAT, DR, TUN), `protocol`,
//! `persistence_timeout`, `persistence_granularity`, `delay_loop`, `virtualhost`, and each
//! `real_server IP PORT` with `weight`, `inhibit_on_failure`, `uthreshold`, `lthreshold` and a
//! `TCP_CHECK` or `HTTP_GET` (`connect_timeout`, `connect_port`, `retry`/`nb_get_retry`,
//! `url { path, status_code }`, `virtualhost`). keepalived marks a server up after one good
//! check and down after `retry` failures: rise 1, fall = retry.
//!
//! Everything else is reported, never silently dropped: other blocks (`vrrp_instance`,
//! `global_defs`, ...), `fwmark` and `group` services, unknown schedulers, other checkers
//! (`SSL_GET`, `MISC_CHECK`, ...) and unknown keywords. The result is validated as a config
//! before it is printed.

use serde_json::{json, Map, Value};

/// The converted config and what was left out.
#[derive(Debug)]
pub struct Imported {
    /// config.json text.
    pub json: String,
    /// One line per thing not converted, with its line number.
    pub skipped: Vec<String>,
}

/// Import errors (the input is not usable at all).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {msg}")]
    Syntax { line: usize, msg: String },
    #[error("the converted config does not validate: {0}")]
    Invalid(#[from] crate::config::ConfigError),
}

#[derive(Debug)]
struct Node {
    line: usize,
    words: Vec<String>,
    block: Option<Vec<Node>>,
}

impl Node {
    fn key(&self) -> &str {
        self.words.first().map_or("", |s| s.as_str())
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(|s| s.as_str())
    }
    fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

fn parse(text: &str) -> Result<Vec<Node>, ImportError> {
    let mut stack: Vec<(Node, Vec<Node>)> = Vec::new();
    let mut top = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let body = raw.split(['#', '!']).next().unwrap_or("");
        let mut words = Vec::new();
        for tok in body.replace('{', " { ").replace('}', " } ").split_whitespace() {
            match tok {
                "{" => {
                    let node = Node { line, words: std::mem::take(&mut words), block: None };
                    stack.push((node, Vec::new()));
                }
                "}" => {
                    let Some((mut node, kids)) = stack.pop() else {
                        return Err(ImportError::Syntax { line, msg: "'}' without an open block".into() });
                    };
                    if !words.is_empty() {
                        let w = Node { line, words: std::mem::take(&mut words), block: None };
                        // A statement before '}' on the same line belongs to the block.
                        let mut kids = kids;
                        kids.push(w);
                        node.block = Some(kids);
                    } else {
                        node.block = Some(kids);
                    }
                    match stack.last_mut() {
                        Some((_, k)) => k.push(node),
                        None => top.push(node),
                    }
                }
                w => words.push(w.to_string()),
            }
        }
        if !words.is_empty() {
            let node = Node { line, words, block: None };
            match stack.last_mut() {
                Some((_, k)) => k.push(node),
                None => top.push(node),
            }
        }
    }
    if let Some((node, _)) = stack.last() {
        return Err(ImportError::Syntax { line: node.line, msg: format!("block '{}' is not closed", node.key()) });
    }
    Ok(top)
}

fn num(n: &Node, i: usize, skipped: &mut Vec<String>) -> Option<u64> {
    let v = n.arg(i).and_then(|s| s.parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e12);
    if v.is_none() {
        skipped.push(format!("line {}: '{}' needs a number", n.line, n.words.join(" ")));
    }
    v.map(|v| v as u64)
}

/// Converts keepalived.conf text. `ifaces` names the director interfaces of the generated
/// config (keepalived.conf does not say which they are).
pub fn convert(text: &str, ifaces: &[String]) -> Result<Imported, ImportError> {
    let mut skipped = Vec::new();
    let mut services = Vec::new();
    for node in parse(text)? {
        match node.key() {
            "virtual_server" if node.block.is_some() => {
                if let Some(s) = service(&node, &mut skipped) {
                    services.push(s);
                }
            }
            other => skipped.push(format!("line {}: '{other}' block (only virtual_server is converted)", node.line)),
        }
    }
    let interfaces: Vec<Value> = ifaces.iter().map(|i| json!({ "name": i })).collect();
    let cfg = json!({ "director": { "interfaces": interfaces }, "services": services });
    let text = serde_json::to_string_pretty(&cfg).unwrap_or_default();
    crate::config::Config::parse(&text)?;
    Ok(Imported { json: text, skipped })
}

fn service(vs: &Node, skipped: &mut Vec<String>) -> Option<Value> {
    let (Some(ip), Some(port)) = (vs.arg(1), vs.arg(2)) else {
        skipped.push(format!(
            "line {}: 'virtual_server {}' (fwmark and group services are not converted)",
            vs.line,
            vs.words[1..].join(" ")
        ));
        return None;
    };
    if ip == "fwmark" || ip == "group" || ip.parse::<std::net::Ipv4Addr>().is_err() {
        skipped
            .push(format!("line {}: 'virtual_server {ip} {port}' (only IPv4 address services are converted)", vs.line));
        return None;
    }
    let Ok(port) = port.parse::<u16>() else {
        skipped.push(format!("line {}: virtual_server port '{port}' is not a number", vs.line));
        return None;
    };
    let mut s = Map::new();
    s.insert("proto".into(), json!("tcp"));
    s.insert("vip".into(), json!(ip));
    s.insert("port".into(), json!(port));
    let mut kind = "nat".to_string();
    let mut delay_loop = 60u64;
    let mut vhost: Option<String> = None;
    let mut inhibited = 0usize;
    for n in vs.children() {
        match n.key() {
            "lb_algo" | "lvs_sched" => match n.arg(1) {
                Some(a @ ("rr" | "wrr" | "lc" | "wlc" | "sed" | "nq" | "sh" | "dh" | "mh")) => {
                    s.insert("scheduler".into(), json!(a));
                }
                other => {
                    skipped.push(format!(
                        "line {}: virtual_server {ip}:{port}: scheduler '{}' is not one of xvs's (rr wrr lc wlc sed nq sh dh mh): service skipped",
                        n.line,
                        other.unwrap_or("")
                    ));
                    return None;
                }
            },
            "lb_kind" | "lvs_method" => match n.arg(1).map(|k| k.to_ascii_uppercase()).as_deref() {
                Some("NAT") => kind = "nat".into(),
                Some("DR") => kind = "dr".into(),
                Some("TUN") => kind = "tun".into(),
                other => {
                    skipped.push(format!(
                        "line {}: virtual_server {ip}:{port}: lb_kind '{}' is not NAT, DR or TUN: service skipped",
                        n.line,
                        other.unwrap_or("")
                    ));
                    return None;
                }
            },
            "protocol" => match n.arg(1).map(|p| p.to_ascii_uppercase()).as_deref() {
                Some("TCP") => {
                    s.insert("proto".into(), json!("tcp"));
                }
                Some("UDP") => {
                    s.insert("proto".into(), json!("udp"));
                }
                other => {
                    skipped.push(format!(
                        "line {}: virtual_server {ip}:{port}: protocol '{}' is not TCP or UDP: service skipped",
                        n.line,
                        other.unwrap_or("")
                    ));
                    return None;
                }
            },
            "persistence_timeout" => {
                if let Some(t) = num(n, 1, skipped) {
                    s.insert("persistence_timeout".into(), json!(t));
                }
            }
            "persistence_granularity" => {
                if let Some(m) = n.arg(1) {
                    s.insert("persistence_netmask".into(), json!(m));
                }
            }
            "delay_loop" => delay_loop = num(n, 1, skipped).unwrap_or(60).clamp(1, 3600),
            "virtualhost" => vhost = n.arg(1).map(String::from),
            "real_server" => {}
            other => skipped.push(format!("line {}: virtual_server {ip}:{port}: '{other}'", n.line)),
        }
    }
    let mut servers = Vec::new();
    for rs in vs.children().iter().filter(|n| n.key() == "real_server") {
        let (Some(addr), Some(rport)) = (rs.arg(1), rs.arg(2).and_then(|p| p.parse::<u16>().ok())) else {
            skipped.push(format!("line {}: real_server needs an address and a port", rs.line));
            continue;
        };
        let mut r = Map::new();
        r.insert("addr".into(), json!(addr));
        if kind == "nat" {
            r.insert("port".into(), json!(rport));
        } else if rport != port {
            skipped.push(format!(
                "line {}: real_server {addr} port {rport}: {} servers get the service port {port}",
                rs.line,
                kind.to_uppercase()
            ));
        }
        r.insert("mode".into(), json!(kind));
        for n in rs.children() {
            match n.key() {
                "weight" => {
                    if let Some(w) = num(n, 1, skipped) {
                        r.insert("weight".into(), json!(w));
                    }
                }
                "uthreshold" => {
                    if let Some(w) = num(n, 1, skipped) {
                        r.insert("u_threshold".into(), json!(w));
                    }
                }
                "lthreshold" => {
                    if let Some(w) = num(n, 1, skipped) {
                        r.insert("l_threshold".into(), json!(w));
                    }
                }
                "inhibit_on_failure" => inhibited += 1,
                "TCP_CHECK" | "HTTP_GET" => {
                    if r.contains_key("health_check") {
                        skipped.push(format!("line {}: real_server {addr}: a second checker", n.line));
                        continue;
                    }
                    r.insert("health_check".into(), check(n, delay_loop, vhost.as_deref(), skipped));
                }
                other if other.ends_with("_CHECK") || other.ends_with("_GET") => {
                    skipped.push(format!(
                        "line {}: real_server {addr}: checker {other} (TCP_CHECK and HTTP_GET are converted)",
                        n.line
                    ));
                }
                other => skipped.push(format!("line {}: real_server {addr}: '{other}'", n.line)),
            }
        }
        servers.push(Value::Object(r));
    }
    if inhibited > 0 {
        if inhibited < servers.len() {
            skipped.push(format!(
                "line {}: virtual_server {ip}:{port}: inhibit_on_failure on some real servers only; xvs applies it to the whole service",
                vs.line
            ));
        }
        s.insert("inhibit_on_failure".into(), json!(true));
    }
    s.insert("real_servers".into(), Value::Array(servers));
    Some(Value::Object(s))
}

fn check(c: &Node, delay_loop: u64, vhost: Option<&str>, skipped: &mut Vec<String>) -> Value {
    let mut h = Map::new();
    h.insert("kind".into(), json!(if c.key() == "HTTP_GET" { "http" } else { "tcp" }));
    h.insert("interval_ms".into(), json!(delay_loop * 1000));
    let mut timeout = 5u64.min(delay_loop);
    let mut fall = 1;
    let mut host = vhost.map(String::from);
    let mut urls = 0;
    for n in c.children() {
        match n.key() {
            "connect_timeout" => timeout = num(n, 1, skipped).unwrap_or(5).clamp(1, delay_loop),
            "connect_port" => {
                if let Some(p) = num(n, 1, skipped) {
                    h.insert("port".into(), json!(p));
                }
            }
            "retry" | "nb_get_retry" => fall = num(n, 1, skipped).unwrap_or(1).max(1),
            "delay_before_retry" => skipped.push(format!(
                "line {}: delay_before_retry (xvs checks every interval_ms; fall counts failures)",
                n.line
            )),
            "virtualhost" => host = n.arg(1).map(String::from),
            "url" if c.key() == "HTTP_GET" => {
                urls += 1;
                if urls > 1 {
                    skipped.push(format!("line {}: a second url (xvs checks one)", n.line));
                    continue;
                }
                for u in n.children() {
                    match u.key() {
                        "path" => {
                            if let Some(p) = u.arg(1) {
                                h.insert("path".into(), json!(p));
                            }
                        }
                        "status_code" => {
                            if let Some(v) = num(u, 1, skipped) {
                                h.insert("status".into(), json!(v));
                            }
                        }
                        other => {
                            skipped.push(format!("line {}: url '{other}' (path and status_code are converted)", u.line))
                        }
                    }
                }
            }
            other => skipped.push(format!("line {}: {} '{other}'", n.line, c.key())),
        }
    }
    if c.key() == "HTTP_GET" {
        if let Some(hst) = host {
            h.insert("host".into(), json!(hst));
        }
    }
    h.insert("timeout_ms".into(), json!(timeout * 1000));
    h.insert("rise".into(), json!(1));
    h.insert("fall".into(), json!(fall));
    Value::Object(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::CheckKind;
    use crate::model::{FwdMode, SchedKind};

    const SAMPLE: &str = r#"
! Configuration File for keepalived
global_defs {
   router_id LVS_A
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        198.18.0.100
    }
}
virtual_server 198.18.0.100 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind NAT
    persistence_timeout 300
    persistence_granularity 255.255.255.0
    protocol TCP
    real_server 198.19.0.11 8080 {
        weight 3
        inhibit_on_failure
        HTTP_GET {
            url {
              path /health
              status_code 200
            }
            connect_timeout 3
            retry 3
            delay_before_retry 3
        }
    }
    real_server 198.19.0.12 8080 {
        weight 1
        TCP_CHECK {
            connect_timeout 2
            connect_port 8081
        }
    }
}
virtual_server 198.18.0.100 53 {
    lb_algo rr
    lb_kind DR
    protocol UDP
    real_server 198.19.0.13 53 {
        MISC_CHECK {
            misc_path "/bin/true"
        }
    }
}
virtual_server fwmark 1 {
    lb_algo rr
}
virtual_server 198.18.0.100 443 {
    lb_algo lblcr
}
"#;

    #[test]
    fn converts_virtual_servers_and_reports_what_it_skips() {
        let out = convert(SAMPLE, &["eth0".into()]).unwrap();
        let cfg = Config::parse(&out.json).unwrap();
        assert_eq!(cfg.services.len(), 2, "{}", out.json);
        let web = &cfg.services[0];
        assert_eq!((web.port, web.scheduler), (80, SchedKind::Wrr));
        assert_eq!(web.persistence.unwrap().timeout_s, 300);
        assert_eq!(web.persistence.unwrap().netmask, "255.255.255.0".parse::<std::net::Ipv4Addr>().unwrap());
        assert_eq!(web.servers.len(), 2);
        assert_eq!((web.servers[0].port, web.servers[0].weight, web.servers[0].mode), (8080, 3, FwdMode::Nat));
        let h = &cfg.health[0];
        assert!(h.inhibit_on_failure);
        let (_, _, http) = &h.servers[0];
        assert_eq!(http.kind, CheckKind::Http { path: "/health".into(), status: 200, host: None });
        assert_eq!((http.interval.as_millis(), http.timeout.as_millis(), http.rise, http.fall), (6000, 3000, 1, 3));
        let (addr, _, tcp) = &h.servers[1];
        assert_eq!((addr.to_string(), &tcp.kind, tcp.port), ("198.19.0.12".into(), &CheckKind::Tcp, Some(8081)));
        let dns = &cfg.services[1];
        assert_eq!((dns.proto.name(), dns.servers[0].mode, dns.servers[0].port), ("udp", FwdMode::Dr, 53));
        let skipped = out.skipped.join("\n");
        for what in
            ["'global_defs' block", "'vrrp_instance' block", "delay_before_retry", "MISC_CHECK", "fwmark", "'lblcr'"]
        {
            assert!(skipped.contains(what), "{what} not reported in:\n{skipped}");
        }
    }

    #[test]
    fn broken_files_are_errors_with_a_line() {
        let e = convert("virtual_server 198.18.0.100 80 {\n lb_algo rr\n", &["eth0".into()]).unwrap_err();
        assert_eq!(e.to_string(), "line 1: block 'virtual_server' is not closed");
        // Numbers keepalived would never take are reported, not overflowed.
        let out = convert("virtual_server 198.18.0.100 80 {\n delay_loop 1e300\n real_server 198.19.0.1 80 {\n weight inf\n TCP_CHECK {\n connect_timeout 1e17\n }\n }\n}\n", &["eth0".into()]).unwrap();
        assert!(out.skipped.iter().any(|s| s.contains("'delay_loop 1e300' needs a number")), "{:?}", out.skipped);
        assert!(out.skipped.iter().any(|s| s.contains("'weight inf' needs a number")), "{:?}", out.skipped);
        let e = convert("}\n", &["eth0".into()]).unwrap_err();
        assert_eq!(e.to_string(), "line 1: '}' without an open block");
        let e = convert(
            "virtual_server 198.18.0.100 80 {\n real_server 198.19.0.1 80 {\n weight 99999\n}\n}\n",
            &["eth0".into()],
        )
        .unwrap_err();
        assert!(e.to_string().contains("weight: 99999 is out of range"), "{e}");
    }
}
