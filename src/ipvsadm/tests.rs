//! The ipvsadm language against ipvsadm 1.31's behaviour.

use super::apply::*;
use super::parse::*;
use super::*;
use crate::model::*;
use proptest::prelude::*;
use std::cmp::Ordering;
use std::net::Ipv4Addr;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn tcp(a: &str, port: u16) -> ServiceKey {
    ServiceKey { proto: Proto::Tcp, addr: ip(a), port }
}

fn udp(a: &str, port: u16) -> ServiceKey {
    ServiceKey { proto: Proto::Udp, addr: ip(a), port }
}

fn p(line: &str) -> Result<Command, RuleError> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    parse_command(&toks)
}

fn err(line: &str) -> String {
    match p(line) {
        Ok(c) => panic!("{line:?} parsed as {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn code(line: &str) -> i32 {
    p(line).unwrap_err().exit_code()
}

fn svc_opts(line: &str) -> (ServiceKey, ServiceOpts) {
    match p(line).unwrap() {
        Command::AddService(k, o) | Command::EditService(k, o) => (k, o),
        c => panic!("{c:?}"),
    }
}

fn srv_opts(line: &str) -> (ServiceKey, ServerOpts) {
    match p(line).unwrap() {
        Command::AddServer(k, o) | Command::EditServer(k, o) => (k, o),
        c => panic!("{c:?}"),
    }
}

fn list(line: &str) -> ListOpts {
    match p(line).unwrap() {
        Command::List(o) => o,
        c => panic!("{c:?}"),
    }
}

// --- commands -------------------------------------------------------------------------

#[test]
fn add_service_basic() {
    assert_eq!(
        p("-A -t 10.0.0.1:80 -s rr").unwrap(),
        Command::AddService(
            tcp("10.0.0.1", 80),
            ServiceOpts { scheduler: Some(SchedKind::Rr), persistent: None, netmask: None, flags: None }
        )
    );
    assert_eq!(
        p("--add-service --udp-service 10.0.0.1:53 --scheduler sh").unwrap(),
        Command::AddService(udp("10.0.0.1", 53), ServiceOpts { scheduler: Some(SchedKind::Sh), ..Default::default() })
    );
}

#[test]
fn add_service_default_scheduler_is_wlc() {
    let (_, o) = svc_opts("-A -t 10.0.0.1:80");
    assert_eq!(o.scheduler, Some(SchedKind::Wlc));
    // `-s ""`: ipvsadm falls back to the default too.
    match parse_command(&["-A", "-t", "10.0.0.1:80", "-s", ""]).unwrap() {
        Command::AddService(_, o) => assert_eq!(o.scheduler, Some(SchedKind::Wlc)),
        c => panic!("{c:?}"),
    }
    assert_eq!(err("-A -t 10.0.0.1:80 -s"), "-s: missing argument");
}

#[test]
fn all_schedulers_parse() {
    for k in SchedKind::ALL {
        let (_, o) = svc_opts(&format!("-A -t 10.0.0.1:80 -s {}", k.name()));
        assert_eq!(o.scheduler, Some(k));
    }
}

#[test]
fn edit_service_only_given_fields() {
    assert_eq!(
        p("-E -t 10.0.0.1:80 -p 100").unwrap(),
        Command::EditService(
            tcp("10.0.0.1", 80),
            ServiceOpts { scheduler: None, persistent: Some(100), netmask: None, flags: None }
        )
    );
    let (_, o) = svc_opts("--edit-service -t 10.0.0.1:80 -s mh");
    assert_eq!(o.scheduler, Some(SchedKind::Mh));
}

#[test]
fn delete_service() {
    assert_eq!(p("-D -t 10.0.0.1:80").unwrap(), Command::DeleteService(tcp("10.0.0.1", 80)));
    assert_eq!(p("--delete-service -u 10.0.0.1:53").unwrap(), Command::DeleteService(udp("10.0.0.1", 53)));
    assert_eq!(err("-D"), "You need to supply the 'service-address' option for the 'delete-service' command");
}

#[test]
fn clear_restore_save() {
    assert_eq!(p("-C").unwrap(), Command::Clear);
    assert_eq!(p("--clear").unwrap(), Command::Clear);
    assert_eq!(p("-R").unwrap(), Command::Restore);
    assert_eq!(p("--restore").unwrap(), Command::Restore);
    assert_eq!(p("-S").unwrap(), Command::Save { numeric: false });
    assert_eq!(p("-S -n").unwrap(), Command::Save { numeric: true });
    assert_eq!(p("-Sn").unwrap(), Command::Save { numeric: true });
    assert_eq!(p("--save --numeric").unwrap(), Command::Save { numeric: true });
    assert_eq!(err("-C -n"), "Illegal 'numeric' option with the 'flush' command");
    assert_eq!(err("-R -n"), "Illegal 'numeric' option with the 'restore' command");
    assert_eq!(err("-S --stats"), "Illegal 'stats' option with the 'save' command");
    assert_eq!(err("-S --nosort"), "Illegal 'nosort' option with the 'save' command");
}

#[test]
fn add_server_defaults() {
    assert_eq!(
        p("-a -t 10.0.0.1:80 -r 192.168.10.1").unwrap(),
        Command::AddServer(
            tcp("10.0.0.1", 80),
            ServerOpts {
                addr: ip("192.168.10.1"),
                port: Some(80),
                mode: Some(FwdMode::Dr),
                weight: Some(1),
                u_threshold: Some(0),
                l_threshold: Some(0),
            }
        )
    );
}

#[test]
fn add_server_all_options() {
    let (k, o) = srv_opts(
        "--add-server --tcp-service 10.0.0.1:80 --real-server 192.168.10.1:8080 \
         --masquerading --weight 5 --u-threshold 100 --l-threshold 50",
    );
    assert_eq!(k, tcp("10.0.0.1", 80));
    assert_eq!(
        o,
        ServerOpts {
            addr: ip("192.168.10.1"),
            port: Some(8080),
            mode: Some(FwdMode::Nat),
            weight: Some(5),
            u_threshold: Some(100),
            l_threshold: Some(50),
        }
    );
    let (_, o) = srv_opts("-a -t 10.0.0.1:80 -r 192.168.10.1:8080 -w3 -x10 -y5 -m");
    assert_eq!(o.weight, Some(3));
    assert_eq!(o.u_threshold, Some(10));
    assert_eq!(o.l_threshold, Some(5));
}

#[test]
fn forwarding_methods_and_port_forcing() {
    let cases = [
        ("-g", FwdMode::Dr, 80),
        ("--gatewaying", FwdMode::Dr, 80),
        ("-i", FwdMode::Tun, 80),
        ("--ipip", FwdMode::Tun, 80),
        ("-m", FwdMode::Nat, 8080),
        ("--masquerading", FwdMode::Nat, 8080),
        ("-j", FwdMode::FullNat, 8080),
        ("--fullnat", FwdMode::FullNat, 8080),
        ("", FwdMode::Dr, 80),
    ];
    for (flag, mode, port) in cases {
        let (_, o) = srv_opts(&format!("-a -t 10.0.0.1:80 -r 192.168.10.1:8080 {flag}"));
        assert_eq!(o.mode, Some(mode), "{flag}");
        assert_eq!(o.port, Some(port), "{flag}");
    }
    // No port on -r: the service port.
    let (_, o) = srv_opts("-a -t 10.0.0.1:80 -r 192.168.10.1 -m");
    assert_eq!(o.port, Some(80));
    // -r before -t still takes the service port.
    let (_, o) = srv_opts("-a -r 192.168.10.1 -t 10.0.0.1:80 -m");
    assert_eq!(o.port, Some(80));
}

#[test]
fn edit_server_only_given_fields() {
    assert_eq!(
        p("-e -t 10.0.0.1:80 -r 192.168.10.1:8080 -w 7").unwrap(),
        Command::EditServer(
            tcp("10.0.0.1", 80),
            ServerOpts {
                addr: ip("192.168.10.1"),
                port: Some(8080),
                mode: None,
                weight: Some(7),
                u_threshold: None,
                l_threshold: None,
            }
        )
    );
    let (_, o) = srv_opts("--edit-server -t 10.0.0.1:80 -r 192.168.10.1:8080 -i");
    assert_eq!(o.port, Some(80));
    assert_eq!(o.mode, Some(FwdMode::Tun));
    assert_eq!(err("-e -t 10.0.0.1:80"), "You need to supply the 'real-server' option for the 'edit-server' command");
}

#[test]
fn delete_server() {
    assert_eq!(
        p("-d -t 10.0.0.1:80 -r 192.168.10.1").unwrap(),
        Command::DeleteServer(tcp("10.0.0.1", 80), ip("192.168.10.1"), 80)
    );
    assert_eq!(
        p("--delete-server -t 10.0.0.1:80 -r 192.168.10.1:8080").unwrap(),
        Command::DeleteServer(tcp("10.0.0.1", 80), ip("192.168.10.1"), 8080)
    );
    assert_eq!(
        err("-d -t 10.0.0.1:80 -r 192.168.10.1 -w 1"),
        "Illegal 'weight' option with the 'delete-server' command"
    );
    assert_eq!(
        err("-d -t 10.0.0.1:80 -r 192.168.10.1 -m"),
        "Illegal 'forwarding-method' option with the 'delete-server' command"
    );
    assert_eq!(err("-d -t 10.0.0.1:80"), "You need to supply the 'real-server' option for the 'delete-server' command");
}

#[test]
fn list_variants() {
    assert_eq!(p("").unwrap(), Command::List(ListOpts::default()));
    assert_eq!(list("-L"), ListOpts::default());
    assert_eq!(list("-l"), ListOpts::default());
    assert_eq!(list("--list"), ListOpts::default());
    let n = ListOpts { numeric: true, ..Default::default() };
    assert_eq!(list("-L -n"), n);
    assert_eq!(list("-Ln"), n);
    assert_eq!(list("-ln"), n);
    assert_eq!(list("--list --numeric"), n);
    assert_eq!(list("-Ln --sort"), n);
    let o = list("-Ln --stats --exact");
    assert!(o.numeric && o.stats && o.exact && !o.rate);
    let o = list("-L -X --rate");
    assert!(o.exact && o.rate);
    let o = list("-Lnc");
    assert!(o.numeric && o.connections);
    let o = list("-L --connection");
    assert!(o.connections);
    let o = list("-L --timeout");
    assert!(o.timeout);
    let o = list("-L --thresholds --persistent-conn --nosort");
    assert!(o.thresholds && o.persistent_conn && o.nosort);
    let o = list("-Ln -t 10.0.0.1:80");
    assert_eq!(o.service, Some(tcp("10.0.0.1", 80)));
    assert!(o.numeric);
}

#[test]
fn list_conflicts() {
    assert_eq!(
        err("-L -c -t 10.0.0.1:80"),
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(
        err("-L --timeout -c"),
        "The option 'timeout' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(err("-L -c --stats"), "options conflicts in the list command");
    assert_eq!(err("-L --timeout --rate"), "options conflicts in the list command");
    assert_eq!(err("-L --timeout --persistent-conn"), "options conflicts in the list command");
    assert_eq!(code("-L -c --stats"), 2);
    assert_eq!(err("-L -s rr"), "Illegal 'scheduler' option with the 'list' command");
}

#[test]
fn zero() {
    assert_eq!(p("-Z").unwrap(), Command::Zero(None));
    assert_eq!(p("--zero -t 10.0.0.1:80").unwrap(), Command::Zero(Some(tcp("10.0.0.1", 80))));
    assert_eq!(err("-Z -n"), "Illegal 'numeric' option with the 'zero' command");
}

#[test]
fn set_timeouts() {
    assert_eq!(p("--set 900 120 300").unwrap(), Command::SetTimeouts { tcp: 900, tcpfin: 120, udp: 300 });
    assert_eq!(p("--set 0 0 0").unwrap(), Command::SetTimeouts { tcp: 0, tcpfin: 0, udp: 0 });
    assert_eq!(err("--set 1 2"), "--set option requires 3 timeout values");
    assert_eq!(err("--set"), "--set option requires 3 timeout values");
    assert_eq!(err("--set 1 2 3 4"), "unexpected argument 4");
    assert_eq!(err("--set a 2 3"), "invalid timeout value `a' specified");
    assert_eq!(err("--set 1 2 2678401"), "invalid timeout value `2678401' specified");
    assert_eq!(code("--set 1 2"), 2);
    assert_eq!(err("--set 1 2 3 -n"), "Illegal 'numeric' option with the 'set' command");
}

#[test]
fn help_and_version() {
    assert_eq!(p("-h").unwrap(), Command::Help);
    assert_eq!(p("--help").unwrap(), Command::Help);
    assert_eq!(p("-h whatever --bogus").unwrap(), Command::Help);
    assert_eq!(p("-v").unwrap(), Command::Version);
    assert_eq!(p("--version").unwrap(), Command::Version);
    assert_eq!(err("-L -h"), "multiple commands specified");
}

// --- options --------------------------------------------------------------------------

#[test]
fn persistent_timeout() {
    assert_eq!(svc_opts("-A -t 10.0.0.1:80 -p").1.persistent, Some(360));
    assert_eq!(
        svc_opts("-A -t 10.0.0.1:80 -p -s rr").1,
        ServiceOpts {
            scheduler: Some(SchedKind::Rr),
            persistent: Some(DEFAULT_PERSISTENCE_TIMEOUT),
            netmask: None,
            flags: None,
        }
    );
    assert_eq!(svc_opts("-A -t 10.0.0.1:80 -p 100").1.persistent, Some(100));
    assert_eq!(svc_opts("-A -t 10.0.0.1:80 -p300").1.persistent, Some(300));
    assert_eq!(svc_opts("-A -t 10.0.0.1:80 --persistent=200").1.persistent, Some(200));
    assert_eq!(svc_opts("-A -t 10.0.0.1:80 --persistent 200").1.persistent, Some(200));
    assert_eq!(svc_opts("-A -t 10.0.0.1:80 --persistent --scheduler sh").1.persistent, Some(360));
    assert_eq!(svc_opts("-A -t 10.0.0.1:80 -p 2678400").1.persistent, Some(MAX_PERSISTENCE_TIMEOUT));
    assert_eq!(svc_opts("-A -t 10.0.0.1:80 -p 1").1.persistent, Some(1));
    assert_eq!(err("-A -t 10.0.0.1:80 -p 0"), "invalid timeout value `0' specified");
    assert_eq!(err("-A -t 10.0.0.1:80 -p 2678401"), "invalid timeout value `2678401' specified");
    assert_eq!(err("-A -t 10.0.0.1:80 -p foo"), "invalid timeout value `foo' specified");
    assert_eq!(code("-A -t 10.0.0.1:80 -p foo"), 2);
}

#[test]
fn netmask() {
    let (_, o) = svc_opts("-A -t 10.0.0.1:80 -p -M 255.255.255.0");
    assert_eq!(o.netmask, Some(ip("255.255.255.0")));
    let (_, o) = svc_opts("-A -t 10.0.0.1:80 -p --netmask 0.0.0.0");
    assert_eq!(o.netmask, Some(ip("0.0.0.0")));
    let (_, o) = svc_opts("-A -t 10.0.0.1:80 -p -M 255.255.255.255");
    assert_eq!(o.netmask, Some(Ipv4Addr::BROADCAST));
    for bad in ["255.0.255.0", "0.255.255.255", "255.255.255.1", "24", "foo", ""] {
        assert_eq!(
            p(&format!("-A -t 10.0.0.1:80 -p -M {bad}")).map_err(|e| e.to_string()).unwrap_err(),
            if bad.is_empty() {
                "-M: missing argument".to_string()
            } else {
                "illegal virtual server persistent mask specified".to_string()
            },
            "{bad}"
        );
    }
}

#[test]
fn sched_flags() {
    let (_, o) = svc_opts("-A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port");
    assert_eq!(o.flags, Some(SchedFlags { fallback: true, port: true }));
    let (_, o) = svc_opts("-A -t 10.0.0.1:80 -s mh --sched-flags mh-port");
    assert_eq!(o.flags, Some(SchedFlags { fallback: false, port: true }));
    let (_, o) = svc_opts("-A -t 10.0.0.1:80 -s mh -b flag-1,flag-3");
    assert_eq!(o.flags, Some(SchedFlags { fallback: true, port: false }));
    let (_, o) = svc_opts("-A -t 10.0.0.1:80 -s rr -b flag-2");
    assert_eq!(o.flags, Some(SchedFlags { fallback: false, port: true }));
    assert_eq!(err("-A -t 10.0.0.1:80 -s rr -b sh-fallback"), "incompatible scheduler flag `sh-fallback'");
    assert_eq!(err("-A -t 10.0.0.1:80 -s sh -b mh-port"), "incompatible scheduler flag `mh-port'");
    assert_eq!(err("-A -t 10.0.0.1:80 -s mh -b sh-port"), "incompatible scheduler flag `sh-port'");
    // Without -s the default wlc is checked, like ipvsadm.
    assert_eq!(err("-A -t 10.0.0.1:80 -b sh-port"), "incompatible scheduler flag `sh-port'");
    assert_eq!(err("-A -t 10.0.0.1:80 -s sh -b sh-bogus"), "invalid scheduler flag `sh-bogus'");
    assert_eq!(err("-A -t 10.0.0.1:80 -s sh -b ,"), "invalid scheduler flag `,'");
    assert_eq!(code("-A -t 10.0.0.1:80 -s sh -b x"), 2);
    // -E without -s: checked against the existing service when applied.
    let (_, o) = svc_opts("-E -t 10.0.0.1:80 -b sh-port");
    assert_eq!(o.flags, Some(SchedFlags { fallback: false, port: true }));
    assert_eq!(err("-E -t 10.0.0.1:80 -s rr -b sh-port"), "incompatible scheduler flag `sh-port'");
}

#[test]
fn scheduler_errors() {
    assert_eq!(err("-A -t 10.0.0.1:80 -s wr"), "Scheduler or persistence engine not found");
    assert_eq!(code("-A -t 10.0.0.1:80 -s wr"), 1);
    for s in ["lblc", "lblcr", "fo", "ovf"] {
        let e = p(&format!("-A -t 10.0.0.1:80 -s {s}")).unwrap_err();
        assert!(matches!(e, RuleError::SchedulerNotImplemented(_)));
        assert!(e.to_string().starts_with("Scheduler or persistence engine not found"));
        assert!(e.to_string().contains(s));
        assert_eq!(e.exit_code(), 1);
    }
}

#[test]
fn weight_and_thresholds() {
    assert_eq!(srv_opts("-a -t 10.0.0.1:80 -r 1.2.3.4 -w 0").1.weight, Some(0));
    assert_eq!(srv_opts("-a -t 10.0.0.1:80 -r 1.2.3.4 -w 65535").1.weight, Some(65535));
    assert_eq!(srv_opts("-a -t 10.0.0.1:80 -r 1.2.3.4 --weight=+7").1.weight, Some(7));
    for bad in ["65536", "-1", "abc", "1x", "99999999999999999999999"] {
        assert_eq!(err(&format!("-a -t 10.0.0.1:80 -r 1.2.3.4 -w {bad}")), "illegal weight specified", "{bad}");
    }
    assert_eq!(code("-a -t 10.0.0.1:80 -r 1.2.3.4 -w -1"), 2);
    assert_eq!(srv_opts("-a -t 10.0.0.1:80 -r 1.2.3.4 -x 2147483647").1.u_threshold, Some(i32::MAX as u32));
    assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 -x 2147483648"), "illegal u_threshold specified");
    assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 -y -5"), "illegal l_threshold specified");
}

#[test]
fn service_addresses() {
    let (k, _) = svc_opts("-A -t 10.0.0.1:http");
    assert_eq!(k.port, 80);
    let (k, _) = svc_opts("-A -t 10.0.0.1:https");
    assert_eq!(k.port, 443);
    let (k, _) = svc_opts("-A -u 10.0.0.1:domain");
    assert_eq!(k, udp("10.0.0.1", 53));
    let (k, _) = svc_opts("-A -t 10.0.0.1:65535");
    assert_eq!(k.port, 65535);
    let (k, _) = svc_opts("--add-service --tcp-service=10.0.0.1:22");
    assert_eq!(k.port, 22);
    for bad in [
        "10.0.0",
        "10.0.0.1:",
        "10.0.0.1:65536",
        "10.0.0.1:nosuchport",
        "80",
        "host.example:80",
        "256.0.0.1:80",
        "10.0.0.1:80:90",
    ] {
        assert_eq!(err(&format!("-A -t {bad}")), "illegal virtual server address[:port] specified", "{bad}");
    }
    assert_eq!(code("-A -t 10.0.0"), 2);
    for bad in ["10.0.0", "1.2.3.4:x", "1.2.3.4:-5"] {
        assert_eq!(
            err(&format!("-a -t 10.0.0.1:80 -r {bad}")),
            "illegal real server address[:port] specified",
            "{bad}"
        );
    }
}

#[test]
fn unsupported_services() {
    for (line, what) in [
        ("-A -f 1 -s rr", "-f"),
        ("-A --fwmark-service 1", "--fwmark-service"),
        ("-A --sctp-service 10.0.0.1:80", "--sctp-service"),
        ("-A -t [2001:db8::1]:80", "[2001:db8::1]:80"),
        ("-A -t 2001:db8::1", "2001:db8::1"),
        ("-A -t 10.0.0.1:80 -6", "-6"),
    ] {
        assert_eq!(err(line), format!("xvs supports IPv4 TCP and UDP services only: '{what}'"), "{line}");
        assert_eq!(code(line), 2);
    }
    assert_eq!(err("-a -t 10.0.0.1:80 -r [::1]:80"), "xvs supports IPv4 real servers only: '[::1]:80'");
}

#[test]
fn unsupported_options_after_legality() {
    let e = p("-A -t 10.0.0.1:80 --ops").unwrap_err();
    assert!(matches!(e, RuleError::UnsupportedOption(ref s) if s == "--ops"), "{e:?}");
    assert_eq!(e.to_string(), "xvs does not support the '--ops' option");
    let e = p("-A -u 10.0.0.1:53 -o").unwrap_err();
    assert!(matches!(e, RuleError::UnsupportedOption(_)), "{e:?}");
    assert!(e.to_string().contains("--ops"));
    assert!(matches!(p("-A -t 10.0.0.1:80 --pe sip").unwrap_err(), RuleError::UnsupportedOption(_)));
    assert!(matches!(
        p("-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-type gre").unwrap_err(),
        RuleError::UnsupportedTunnel(_)
    ));
    // ipvsadm's legality errors come first.
    assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 --ops"), "Illegal 'ops' option with the 'add-server' command");
    assert_eq!(err("-A -t 10.0.0.1:80 --tun-type gre"), "Illegal 'tun-type' option with the 'add-service' command");
    assert_eq!(err("-A -t 10.0.0.1:80 --ops --ops"), "multiple 'ops' options specified");
}

// --- legality and grammar errors ------------------------------------------------------

#[test]
fn required_and_illegal_options() {
    assert_eq!(err("-a -t 10.0.0.1:80"), "You need to supply the 'real-server' option for the 'add-server' command");
    assert_eq!(err("-A -t 10.0.0.1:80 -w 3"), "Illegal 'weight' option with the 'add-service' command");
    assert_eq!(err("-A -s rr"), "You need to supply the 'service-address' option for the 'add-service' command");
    // Checked in ipvsadm's option order: scheduler (3) before real-server (6).
    assert_eq!(err("-a -t 10.0.0.1:80 -s rr"), "Illegal 'scheduler' option with the 'add-server' command");
    assert_eq!(err("-A -t 10.0.0.1:80 -r 1.2.3.4"), "Illegal 'real-server' option with the 'add-service' command");
    assert_eq!(err("-E -t 10.0.0.1:80 -m"), "Illegal 'forwarding-method' option with the 'edit-service' command");
    assert_eq!(err("-D -t 10.0.0.1:80 -s rr"), "Illegal 'scheduler' option with the 'delete-service' command");
    assert_eq!(code("-a -t 10.0.0.1:80"), 2);
}

#[test]
fn zero_port_service() {
    assert_eq!(err("-A -t 10.0.0.1 -s rr"), "Zero port specified for non-persistent service");
    assert_eq!(err("-E -t 10.0.0.1:0"), "Zero port specified for non-persistent service");
    assert_eq!(code("-A -t 10.0.0.1"), 2);
    let (k, o) = svc_opts("-A -t 10.0.0.1 -s rr -p");
    assert_eq!(k.port, 0);
    assert_eq!(o.persistent, Some(360));
    // Fine for the commands that do not create a service.
    assert_eq!(p("-D -t 10.0.0.1").unwrap(), Command::DeleteService(tcp("10.0.0.1", 0)));
}

#[test]
fn multiple_commands_and_options() {
    assert_eq!(err("-A -a -t 10.0.0.1:80"), "multiple commands specified");
    assert_eq!(err("-A -t 10.0.0.1:80 -E"), "multiple commands specified");
    assert_eq!(err("-AE"), "multiple commands specified");
    assert_eq!(err("-L --set"), "multiple commands specified");
    assert_eq!(code("-A -a"), 2);
    assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 -w 1 -w 2"), "multiple 'weight' options specified");
    assert_eq!(err("-A -t 10.0.0.1:80 -u 10.0.0.1:80"), "multiple 'service-address' options specified");
    assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 -g -m"), "multiple 'forwarding-method' options specified");
    assert_eq!(err("-A -t 10.0.0.1:80 -p -p 10"), "multiple 'persistent' options specified");
    assert_eq!(err("-Lnn"), "multiple 'numeric' options specified");
    assert_eq!(err("-A -t 10.0.0.1:80 -s rr --scheduler wrr"), "multiple 'scheduler' options specified");
    // --sort is a no-op and may repeat.
    assert!(p("-L --sort --sort").is_ok());
}

#[test]
fn no_command_and_popt_errors() {
    assert_eq!(err("-t 10.0.0.1:80 -A"), TRY_HELP);
    assert_eq!(code("-t 10.0.0.1:80 -A"), 255);
    assert_eq!(err("foo"), TRY_HELP);
    assert_eq!(code("foo"), 255);
    assert_eq!(err("-nL"), TRY_HELP);
    assert_eq!(err("# a comment"), TRY_HELP);
    assert_eq!(err("-A --bogus"), "--bogus: unknown option");
    assert_eq!(code("-A --bogus"), 255);
    assert_eq!(err("-Lq"), "-Lq: unknown option");
    assert_eq!(err("-A -t"), "-t: missing argument");
    assert_eq!(code("-A -t"), 255);
    assert_eq!(err("-a -t 10.0.0.1:80 --weight"), "--weight: missing argument");
    assert_eq!(err("-L --numeric=1"), "--numeric: option does not take an argument");
    assert_eq!(code("-L --numeric=1"), 255);
    assert!(p("-A -t 10.0.0.1:80 -x").unwrap_err().is_usage_error());
}

#[test]
fn positional_arguments() {
    assert_eq!(err("-A -t 10.0.0.1:80 extra"), "unexpected argument extra");
    assert_eq!(err("extra -C"), "unexpected argument extra");
    assert_eq!(err("-C -- -n"), "unexpected argument -n");
    assert_eq!(err("-C -"), "unexpected argument -");
    assert_eq!(p("--set -- 1 2 3").unwrap(), Command::SetTimeouts { tcp: 1, tcpfin: 2, udp: 3 });
    // popt permutes: the timeouts may come anywhere after the command.
    assert_eq!(p("--set 1 2 3").unwrap(), Command::SetTimeouts { tcp: 1, tcpfin: 2, udp: 3 });
}

#[test]
fn exit_codes() {
    assert_eq!(RuleError::ServiceExists.exit_code(), 1);
    assert_eq!(RuleError::NoSuchService.exit_code(), 1);
    assert_eq!(RuleError::ServiceNotDefined.exit_code(), 1);
    assert_eq!(RuleError::DestinationExists.exit_code(), 1);
    assert_eq!(RuleError::NoSuchDestination.exit_code(), 1);
    assert_eq!(RuleError::SchedulerNotFound.exit_code(), 1);
    assert_eq!(RuleError::IllegalWeight.exit_code(), 2);
    assert_eq!(RuleError::MultipleCommands.exit_code(), 2);
    assert_eq!(RuleError::NoCommand.exit_code(), 255);
    assert_eq!(RuleError::NestedRestore.exit_code(), 255);
    let l = RuleError::Line { line: 3, source: Box::new(RuleError::ServiceExists) };
    assert_eq!(l.exit_code(), 1);
    assert_eq!(l.to_string(), "line 3: Service already exists");
}

#[test]
fn kernel_error_messages() {
    let msgs = [
        (RuleError::ServiceExists, "Service already exists"),
        (RuleError::SchedulerNotFound, "Scheduler or persistence engine not found"),
        (RuleError::NoSuchService, "No such service"),
        (RuleError::ServiceNotDefined, "Service not defined"),
        (RuleError::DestinationExists, "Destination already exists"),
        (RuleError::NoSuchDestination, "No such destination"),
    ];
    for (e, m) in msgs {
        assert_eq!(e.to_string(), m);
    }
}

// --- apply ----------------------------------------------------------------------------

fn run(lines: &[&str]) -> Result<Vec<VirtualService>, RuleError> {
    let mut v = Vec::new();
    for l in lines {
        apply(&mut v, &p(l)?)?;
    }
    Ok(v)
}

fn run_err(lines: &[&str]) -> String {
    run(lines).unwrap_err().to_string()
}

#[test]
fn apply_add_service() {
    let v = run(&["-A -t 10.0.0.1:80"]).unwrap();
    assert_eq!(v.len(), 1);
    let s = &v[0];
    assert_eq!(s.proto, Proto::Tcp);
    assert_eq!(s.vip, ip("10.0.0.1"));
    assert_eq!(s.port, 80);
    assert_eq!(s.scheduler, SchedKind::Wlc);
    assert_eq!(s.persistence, None);
    assert_eq!(s.flags, SchedFlags::default());
    assert_eq!(s.mh_table_size, crate::model::MH_DEFAULT_TABLE_SIZE);
    assert!(s.servers.is_empty());

    let v = run(&["-A -u 10.0.0.1:53 -s sh -p -b sh-port"]).unwrap();
    assert_eq!(v[0].persistence, Some(Persistence { timeout_s: 360, netmask: Ipv4Addr::BROADCAST }));
    assert_eq!(v[0].flags, SchedFlags { fallback: false, port: true });

    let v = run(&["-A -t 10.0.0.1:80 -s rr -p 60 -M 255.255.0.0"]).unwrap();
    assert_eq!(v[0].persistence, Some(Persistence { timeout_s: 60, netmask: ip("255.255.0.0") }));
    // -M without -p: not persistent.
    let v = run(&["-A -t 10.0.0.1:80 -M 255.255.0.0"]).unwrap();
    assert_eq!(v[0].persistence, None);
    // flag-1 with rr is accepted and ignored.
    let v = run(&["-A -t 10.0.0.1:80 -s rr -b flag-1"]).unwrap();
    assert_eq!(v[0].flags, SchedFlags::default());

    assert_eq!(run_err(&["-A -t 10.0.0.1:80", "-A -t 10.0.0.1:80 -s rr"]), "Service already exists");
    // Same address and port, other protocol: a different service.
    assert_eq!(run(&["-A -t 10.0.0.1:80", "-A -u 10.0.0.1:80"]).unwrap().len(), 2);
}

#[test]
fn apply_edit_service() {
    assert_eq!(run_err(&["-E -t 10.0.0.1:80 -s rr"]), "No such service");
    let v =
        run(&["-A -t 10.0.0.1:80 -s sh -p 100 -M 255.255.255.0 -b sh-fallback", "-E -t 10.0.0.1:80 -p 200"]).unwrap();
    assert_eq!(v[0].scheduler, SchedKind::Sh);
    assert_eq!(v[0].persistence, Some(Persistence { timeout_s: 200, netmask: ip("255.255.255.0") }));
    assert_eq!(v[0].flags, SchedFlags { fallback: true, port: false });

    let v = run(&[
        "-A -t 10.0.0.1:80 -s sh -p 100 -b sh-fallback",
        "-E -t 10.0.0.1:80 -M 255.255.0.0",
        "-E -t 10.0.0.1:80 -s mh",
    ])
    .unwrap();
    assert_eq!(v[0].scheduler, SchedKind::Mh);
    assert_eq!(v[0].persistence.unwrap().netmask, ip("255.255.0.0"));
    assert_eq!(v[0].flags, SchedFlags { fallback: true, port: false });

    let v = run(&["-A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port", "-E -t 10.0.0.1:80 -s rr"]).unwrap();
    assert_eq!(v[0].scheduler, SchedKind::Rr);
    assert_eq!(v[0].flags, SchedFlags::default(), "flags dropped for rr");

    let v = run(&["-A -t 10.0.0.1:80 -s sh", "-E -t 10.0.0.1:80 -b sh-port"]).unwrap();
    assert_eq!(v[0].flags, SchedFlags { fallback: false, port: true });

    let v = run(&["-A -t 10.0.0.1:80 -s rr", "-E -t 10.0.0.1:80 -p"]).unwrap();
    assert_eq!(v[0].scheduler, SchedKind::Rr);
    assert_eq!(v[0].persistence, Some(Persistence { timeout_s: 360, netmask: Ipv4Addr::BROADCAST }));
}

#[test]
fn apply_delete_and_clear() {
    assert_eq!(run_err(&["-D -t 10.0.0.1:80"]), "No such service");
    let v =
        run(&["-A -t 10.0.0.1:80", "-A -t 10.0.0.2:80", "-a -t 10.0.0.1:80 -r 1.1.1.1", "-D -t 10.0.0.1:80"]).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].vip, ip("10.0.0.2"));
    let v = run(&["-A -t 10.0.0.1:80", "-A -t 10.0.0.2:80", "-C"]).unwrap();
    assert!(v.is_empty());
}

#[test]
fn apply_add_server() {
    assert_eq!(run_err(&["-a -t 10.0.0.1:80 -r 1.1.1.1"]), "Service not defined");
    let v = run(&[
        "-A -t 10.0.0.1:80 -s rr",
        "-a -t 10.0.0.1:80 -r 1.1.1.1",
        "-a -t 10.0.0.1:80 -r 1.1.1.2:8080 -m -w 3 -x 10 -y 5",
        "-a -t 10.0.0.1:80 -r 1.1.1.3:9999 -i",
    ])
    .unwrap();
    let s = &v[0].servers;
    // Head insertion: newest first.
    assert_eq!(s.iter().map(|d| d.addr).collect::<Vec<_>>(), vec![ip("1.1.1.3"), ip("1.1.1.2"), ip("1.1.1.1")]);
    assert_eq!(
        s[2],
        RealServer { addr: ip("1.1.1.1"), port: 80, weight: 1, mode: FwdMode::Dr, u_threshold: 0, l_threshold: 0 }
    );
    assert_eq!(
        s[1],
        RealServer { addr: ip("1.1.1.2"), port: 8080, weight: 3, mode: FwdMode::Nat, u_threshold: 10, l_threshold: 5 }
    );
    assert_eq!(s[0].port, 80, "-i forces the service port");
    assert_eq!(s[0].mode, FwdMode::Tun);

    assert_eq!(
        run_err(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1", "-a -t 10.0.0.1:80 -r 1.1.1.1:8080 -w 5"]),
        "Destination already exists",
        "-g forces port 80, so this is the same destination"
    );
    // Same address, other port (NAT): a different destination.
    let v =
        run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1", "-a -t 10.0.0.1:80 -r 1.1.1.1:8080 -m"]).unwrap();
    assert_eq!(v[0].servers.len(), 2);
    // The kernel refuses l > u, even with u = 0.
    let e = run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1 -x 5 -y 6"]).unwrap_err();
    assert_eq!(e, RuleError::ThresholdRange { l: 6, u: 5 });
    assert_eq!(e.exit_code(), 1);
    assert!(run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1 -y 6"]).is_err());
    assert!(run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1 -x 6 -y 6"]).is_ok());
}

#[test]
fn apply_edit_server() {
    assert_eq!(run_err(&["-e -t 10.0.0.1:80 -r 1.1.1.1"]), "Service not defined");
    assert_eq!(run_err(&["-A -t 10.0.0.1:80", "-e -t 10.0.0.1:80 -r 1.1.1.1"]), "No such destination");
    let v = run(&[
        "-A -t 10.0.0.1:80",
        "-a -t 10.0.0.1:80 -r 1.1.1.1:8080 -m -w 3 -x 10 -y 5",
        "-e -t 10.0.0.1:80 -r 1.1.1.1:8080 -w 9",
    ])
    .unwrap();
    assert_eq!(
        v[0].servers[0],
        RealServer { addr: ip("1.1.1.1"), port: 8080, weight: 9, mode: FwdMode::Nat, u_threshold: 10, l_threshold: 5 }
    );
    let v = run(&[
        "-A -t 10.0.0.1:80",
        "-a -t 10.0.0.1:80 -r 1.1.1.1:8080 -m",
        "-e -t 10.0.0.1:80 -r 1.1.1.1:8080 -j -x 100",
    ])
    .unwrap();
    assert_eq!(v[0].servers[0].mode, FwdMode::FullNat);
    assert_eq!(v[0].servers[0].u_threshold, 100);
    assert_eq!(v[0].servers[0].weight, 1);
    // -g forces the service port: the NAT dest on 8080 is not found.
    assert_eq!(
        run_err(
            &["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1:8080 -m", "-e -t 10.0.0.1:80 -r 1.1.1.1:8080 -g",]
        ),
        "No such destination"
    );
    assert_eq!(
        run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1 -x 10", "-e -t 10.0.0.1:80 -r 1.1.1.1 -y 11",])
            .unwrap_err(),
        RuleError::ThresholdRange { l: 11, u: 10 }
    );
}

#[test]
fn apply_delete_server() {
    assert_eq!(run_err(&["-d -t 10.0.0.1:80 -r 1.1.1.1"]), "Service not defined");
    assert_eq!(run_err(&["-A -t 10.0.0.1:80", "-d -t 10.0.0.1:80 -r 1.1.1.1"]), "No such destination");
    let v = run(&[
        "-A -t 10.0.0.1:80",
        "-a -t 10.0.0.1:80 -r 1.1.1.1",
        "-a -t 10.0.0.1:80 -r 1.1.1.2:8080 -m",
        "-d -t 10.0.0.1:80 -r 1.1.1.2:8080",
        "-d -t 10.0.0.1:80 -r 1.1.1.1",
    ])
    .unwrap();
    assert!(v[0].servers.is_empty());
}

#[test]
fn apply_other_commands_are_noops() {
    let mut v = run(&["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 1.1.1.1"]).unwrap();
    let before = v.clone();
    for l in ["-L -n", "-S -n", "-Z", "-Z -t 10.0.0.9:80", "--set 1 2 3", "-h", "-v", "-R"] {
        apply(&mut v, &p(l).unwrap()).unwrap();
    }
    assert_eq!(v, before);
}

// --- restore format -------------------------------------------------------------------

#[test]
fn restore_format() {
    let text = "# saved by ipvsadm-save\n\
                \n\
                ipvsadm -A -t 10.0.0.1:80 -s rr\r\n\
                \t  \r\n\
                -a\t-t 10.0.0.1:80   -r 1.1.1.1:80 -g -w 2   # trailing comment\r\n\
                ipvsadm ipvsadm -a -t 10.0.0.1:80 -r 1.1.1.2 ipvsadm\n\
                #-A -t 10.0.0.9:80\n";
    let cmds = parse_rules(text).unwrap();
    assert_eq!(cmds.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![3, 5, 6]);
    assert!(matches!(cmds[0].1, Command::AddService(_, _)));
    let v = services_from_rules(text).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].scheduler, SchedKind::Rr);
    assert_eq!(v[0].servers.len(), 2);
    assert_eq!(v[0].servers[0].addr, ip("1.1.1.2"));
    assert_eq!(v[0].servers[1].weight, 2);
    assert!(parse_rules("").unwrap().is_empty());
    assert!(parse_rules("\n\n# only comments\r\n").unwrap().is_empty());
    assert!(services_from_rules("ipvsadm\n").unwrap().is_empty());
}

#[test]
fn restore_errors_carry_line_numbers() {
    let e = parse_rules("-A -t 10.0.0.1:80\n\n-a -t 10.0.0.1:80 -r 1.1.1.1 -w 70000\n").unwrap_err();
    assert_eq!(e, RuleError::Line { line: 3, source: Box::new(RuleError::IllegalWeight) });
    assert_eq!(e.to_string(), "line 3: illegal weight specified");
    assert_eq!(e.exit_code(), 2);

    let e = parse_rules("-C\n-R\n").unwrap_err();
    assert_eq!(e, RuleError::Line { line: 2, source: Box::new(RuleError::NestedRestore) });
    assert_eq!(e.exit_code(), 255);
    assert!(parse_rules("ipvsadm --restore").is_err());

    let e = services_from_rules("-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n").unwrap_err();
    assert_eq!(e.to_string(), "line 2: Service already exists");
    assert_eq!(e.exit_code(), 1);
    let e = services_from_rules("-a -t 10.0.0.1:80 -r 1.1.1.1\n").unwrap_err();
    assert_eq!(e.to_string(), "line 1: Service not defined");
    let e = services_from_rules("bogus\n").unwrap_err();
    assert_eq!(e.exit_code(), 255);
}

// --- save format ----------------------------------------------------------------------

const SAVE_EXAMPLE: &str = "\
-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 192.168.10.1:80 -g -w 1
-a -t 10.0.0.1:80 -r 192.168.10.2:80 -g -w 3
-A -u 10.0.0.1:53 -s sh -p 360 -M 255.255.255.0 -b sh-fallback,sh-port
-a -u 10.0.0.1:53 -r 192.168.10.3:53 -m -w 0
";

#[test]
fn save_matches_ipvsadm_example() {
    let mut tcp_svc = VirtualService::new(Proto::Tcp, ip("10.0.0.1"), 80, SchedKind::Wlc);
    let dest =
        |a: &str, port, weight, mode| RealServer { addr: ip(a), port, weight, mode, u_threshold: 0, l_threshold: 0 };
    // Kernel list order (newest first) is not the saved order.
    tcp_svc.servers = vec![dest("192.168.10.2", 80, 3, FwdMode::Dr), dest("192.168.10.1", 80, 1, FwdMode::Dr)];
    let mut udp_svc = VirtualService::new(Proto::Udp, ip("10.0.0.1"), 53, SchedKind::Sh);
    udp_svc.flags = SchedFlags { fallback: true, port: true };
    udp_svc.persistence = Some(Persistence { timeout_s: 360, netmask: ip("255.255.255.0") });
    udp_svc.servers = vec![dest("192.168.10.3", 53, 0, FwdMode::Nat)];
    // UDP first in the table: the sort puts TCP (6) first.
    let table = vec![udp_svc, tcp_svc];
    assert_eq!(save_rules(&table), SAVE_EXAMPLE);
    // And back.
    let back = services_from_rules(SAVE_EXAMPLE).unwrap();
    assert_eq!(save_rules(&back), SAVE_EXAMPLE);
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].servers[0].addr, ip("192.168.10.2"), "head insertion");
    assert_eq!(save_rules(&[]), "");
}

#[test]
fn save_other_forms() {
    let v = services_from_rules(
        "-A -t 10.0.0.1:0 -s mh -p 100 -b mh-port\n\
         -a -t 10.0.0.1:0 -r 1.1.1.1:8080 -j -w 2 -x 10 -y 5\n\
         -a -t 10.0.0.1:0 -r 1.1.1.2 -i\n\
         -A -u 10.0.0.2:53 -s rr -p 50 -M 255.255.255.255\n\
         -A -t 10.0.0.3:80 -s mh\n",
    )
    .unwrap();
    assert_eq!(
        save_rules(&v),
        "-A -t 10.0.0.1:0 -s mh -p 100 -b mh-port\n\
         -a -t 10.0.0.1:0 -r 1.1.1.1:8080 -j -w 2\n\
         -a -t 10.0.0.1:0 -r 1.1.1.2:0 -i -w 1 --tun-type ipip\n\
         -A -t 10.0.0.3:80 -s mh\n\
         -A -u 10.0.0.2:53 -s rr -p 50\n"
    );
}

#[test]
fn sort_quirk() {
    assert_eq!(cmp_ipv4_ipvsadm(ip("10.0.0.1"), ip("192.168.0.1")), Ordering::Greater);
    assert_eq!(cmp_ipv4_ipvsadm(ip("10.0.0.1"), ip("10.0.0.2")), Ordering::Less);
    assert_eq!(cmp_ipv4_ipvsadm(ip("10.0.0.1"), ip("10.0.0.1")), Ordering::Equal);
    let v = services_from_rules(
        "-A -t 10.0.0.1:80\n\
         -A -t 192.168.0.1:80\n\
         -A -t 10.0.0.1:79\n\
         -a -t 10.0.0.1:80 -r 10.0.0.5:80\n\
         -a -t 10.0.0.1:80 -r 192.168.0.5:80\n\
         -a -t 10.0.0.1:80 -r 10.0.0.4:8080 -m\n\
         -a -t 10.0.0.1:80 -r 10.0.0.4:81 -m\n",
    )
    .unwrap();
    assert_eq!(
        save_rules(&v),
        "-A -t 192.168.0.1:80 -s wlc\n\
         -A -t 10.0.0.1:79 -s wlc\n\
         -A -t 10.0.0.1:80 -s wlc\n\
         -a -t 10.0.0.1:80 -r 192.168.0.5:80 -g -w 1\n\
         -a -t 10.0.0.1:80 -r 10.0.0.4:81 -m -w 1\n\
         -a -t 10.0.0.1:80 -r 10.0.0.4:8080 -m -w 1\n\
         -a -t 10.0.0.1:80 -r 10.0.0.5:80 -g -w 1\n"
    );
}

#[test]
fn sort_never_panics_on_cyclic_addresses() {
    // 0.0.0.0 > 128.0.0.1 > ... the quirk is not transitive.
    let addrs = ["0.0.0.0", "128.0.0.1", "255.0.0.0", "64.0.0.0", "192.0.0.0", "1.0.0.0"];
    let mut svc = VirtualService::new(Proto::Tcp, ip("1.1.1.1"), 80, SchedKind::Rr);
    let mut table = Vec::new();
    for a in addrs {
        table.push(VirtualService::new(Proto::Tcp, ip(a), 80, SchedKind::Rr));
        svc.servers.push(RealServer {
            addr: ip(a),
            port: 80,
            weight: 1,
            mode: FwdMode::Dr,
            u_threshold: 0,
            l_threshold: 0,
        });
    }
    assert_eq!(sorted_services(&table).len(), addrs.len());
    assert_eq!(sorted_servers(&svc).len(), addrs.len());
}

fn normalized(mut v: Vec<VirtualService>) -> Vec<VirtualService> {
    for s in &mut v {
        s.servers.sort_by_key(|d| (u32::from(d.addr), d.port));
    }
    v.sort_by_key(|s| (s.proto.number(), u32::from(s.vip), s.port));
    v
}

#[test]
fn round_trip_example() {
    let v = services_from_rules(SAVE_EXAMPLE).unwrap();
    let again = services_from_rules(&save_rules(&v)).unwrap();
    assert_eq!(normalized(again), normalized(v));
}

// --- property tests -------------------------------------------------------------------

fn arb_table() -> impl Strategy<Value = Vec<VirtualService>> {
    let server = (any::<u32>(), any::<u16>(), 0u32..=65535, 0usize..4);
    let service = (
        any::<bool>(),
        any::<u32>(),
        any::<u16>(),
        0usize..SchedKind::ALL.len(),
        proptest::option::of((1u32..=MAX_PERSISTENCE_TIMEOUT, 0u32..=32)),
        any::<(bool, bool)>(),
        proptest::collection::vec(server, 0..6),
    );
    proptest::collection::vec(service, 0..6).prop_map(|raw| {
        let mut out: Vec<VirtualService> = Vec::new();
        for (is_tcp, vip, port, sched, persist, (fallback, fport), servers) in raw {
            let proto = if is_tcp { Proto::Tcp } else { Proto::Udp };
            let sched = SchedKind::ALL[sched];
            let port = if port == 0 && persist.is_none() { 1 } else { port };
            let mut svc = VirtualService::new(proto, Ipv4Addr::from(vip), port, sched);
            svc.persistence = persist.map(|(t, bits)| Persistence {
                timeout_s: t,
                netmask: Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0)),
            });
            svc.flags = effective_flags(sched, SchedFlags { fallback, port: fport });
            for (addr, dport, weight, mode) in servers {
                let mode = [FwdMode::Dr, FwdMode::Tun, FwdMode::Nat, FwdMode::FullNat][mode];
                let dport = if matches!(mode, FwdMode::Dr | FwdMode::Tun) { port } else { dport };
                let addr = Ipv4Addr::from(addr);
                if svc.servers.iter().any(|d| d.addr == addr && d.port == dport) {
                    continue;
                }
                svc.servers.push(RealServer { addr, port: dport, weight, mode, u_threshold: 0, l_threshold: 0 });
            }
            if !out.iter().any(|s| ServiceKey::of(s) == ServiceKey::of(&svc)) {
                out.push(svc);
            }
        }
        out
    })
}

const VOCAB: &[&str] = &[
    "-A",
    "-E",
    "-D",
    "-C",
    "-R",
    "-S",
    "-a",
    "-e",
    "-d",
    "-L",
    "-l",
    "-Z",
    "--set",
    "-h",
    "-v",
    "-t",
    "-u",
    "-f",
    "-6",
    "-s",
    "-p",
    "-M",
    "-b",
    "-r",
    "-g",
    "-i",
    "-m",
    "-j",
    "-w",
    "-x",
    "-y",
    "-n",
    "-c",
    "-X",
    "-o",
    "--stats",
    "--rate",
    "--exact",
    "--thresholds",
    "--persistent-conn",
    "--nosort",
    "--sort",
    "--timeout",
    "--daemon",
    "--ops",
    "--pe",
    "--tun-type",
    "--start-daemon",
    "--sctp-service",
    "10.0.0.1:80",
    "10.0.0.1",
    "10.0.0.1:0",
    "192.168.1.1:8080",
    "rr",
    "sh",
    "mh",
    "wlc",
    "lblc",
    "sh-fallback,sh-port",
    "mh-port",
    "flag-1",
    "360",
    "0",
    "65536",
    "-1",
    "2147483648",
    "255.255.255.0",
    "255.0.255.0",
    "1.2.3.4:http",
    "[::1]:80",
    "::1",
    "--",
    "-",
    "=",
    "--weight=3",
    "--persistent=",
    "--numeric=x",
    "-Lnc",
    "-p300",
    "-w3",
    "ipvsadm",
    "#",
    "é",
    "-é",
    "--é",
    "-Aé",
];

fn arb_tokens() -> impl Strategy<Value = Vec<String>> {
    let tok = prop_oneof![
        3 => proptest::sample::select(VOCAB).prop_map(String::from),
        1 => ".{0,10}",
        1 => "-[A-Za-z0-9]{1,4}",
    ];
    proptest::collection::vec(tok, 0..12)
}

proptest! {
    #[test]
    fn prop_parse_never_panics(tokens in arb_tokens()) {
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let mut table = Vec::new();
        match parse_command(&refs) {
            Ok(cmd) => {
                let _ = apply(&mut table, &cmd);
                let _ = apply(&mut table, &cmd);
            }
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                prop_assert!([1, 2, 255].contains(&e.exit_code()));
            }
        }
        let text = tokens.join(" ");
        let _ = parse_rules(&text);
        let _ = services_from_rules(&text.replace('#', "\n"));
    }

    #[test]
    fn prop_random_rules_never_panic(lines in proptest::collection::vec(arb_tokens(), 0..8)) {
        let text: Vec<String> = lines.iter().map(|l| l.join(" ")).collect();
        let text = text.join("\n");
        if let Ok(v) = services_from_rules(&text) {
            let saved = save_rules(&v);
            // Whatever was built can be saved and restored.
            let back = services_from_rules(&saved);
            prop_assert!(back.is_ok(), "{saved}: {back:?}");
        }
    }

    #[test]
    fn prop_save_round_trip(table in arb_table()) {
        let saved = save_rules(&table);
        let back = services_from_rules(&saved);
        prop_assert!(back.is_ok(), "{}: {:?}", saved, back);
        prop_assert_eq!(normalized(back.unwrap()), normalized(table));
    }
}

#[test]
fn tun_type_ipip_is_ipvsadm_131s_and_others_are_refused_clearly() {
    // What ipvsadm 1.31 saves for a tunnelling server loads unchanged.
    let saved = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.19.0.11:80 -i -w 1 --tun-type ipip\n";
    let v = services_from_rules(saved).unwrap();
    assert_eq!(v[0].servers[0].mode, FwdMode::Tun);
    assert_eq!(save_rules(&v), saved, "-S prints it back the same");
    match p("-e -t 198.18.0.100:80 -r 198.19.0.11 -i --tun-type ipip -w 3").unwrap() {
        Command::EditServer(_, o) => assert_eq!((o.mode, o.weight), (Some(FwdMode::Tun), Some(3))),
        c => panic!("{c:?}"),
    }
    // ipvsadm's own messages (exit 2).
    let e = p("-a -t 198.18.0.100:80 -r 198.19.0.11 -i --tun-type vxlan").unwrap_err();
    assert_eq!((e.to_string().as_str(), e.exit_code()), ("illegal tunnel type specified", 2));
    let e = p("-a -t 198.18.0.100:80 -r 198.19.0.11 -m --tun-type ipip").unwrap_err();
    assert_eq!(e.to_string(), "Tunnel options conflict with forward method");
    // gue and gre are ipvsadm's but not xvs's.
    for t in ["gue", "gre"] {
        let e = p(&format!("-a -t 198.18.0.100:80 -r 198.19.0.11 -i --tun-type {t}")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains(&format!("--tun-type {t} is not supported")), "{e}");
    }
}

#[test]
fn sync_daemon_commands() {
    use crate::model::{DaemonSpec, SyncRole};
    let spec = |role, ifn: &str, syncid| DaemonSpec { syncid, ..DaemonSpec::new(role, ifn) };
    // ipvsadm's DEF_MCAST_IFN when no interface is given.
    assert_eq!(p("--start-daemon master").unwrap(), Command::StartDaemon(spec(SyncRole::Master, "eth0", 0)));
    assert_eq!(
        p("--start-daemon backup --mcast-interface xvs-r --syncid 7").unwrap(),
        Command::StartDaemon(spec(SyncRole::Backup, "xvs-r", 7))
    );
    let full = p("--start-daemon master --mcast-interface eth1 --syncid 255 --sync-maxlen 1400 \
                  --mcast-group 239.1.2.3 --mcast-port 9000 --mcast-ttl 2")
    .unwrap();
    let Command::StartDaemon(d) = full else { panic!("{full:?}") };
    assert_eq!(
        (d.maxlen, d.group, d.port, d.ttl),
        (Some(1400), Some("239.1.2.3".parse().unwrap()), Some(9000), Some(2))
    );
    assert_eq!(p("--stop-daemon backup").unwrap(), Command::StopDaemon(SyncRole::Backup));
    assert_eq!(p("--stop-daemon master --syncid 3").unwrap(), Command::StopDaemon(SyncRole::Master));
    let Command::List(l) = p("-L --daemon").unwrap() else { panic!() };
    assert!(l.daemon);
    assert_eq!(err("--start-daemon primary"), "illegal start-daemon parameter specified");
    assert_eq!(err("--stop-daemon x"), "illegal stop_daemon parameter specified");
    assert_eq!(err("--start-daemon master --syncid 256"), "illegal syncid specified");
    assert_eq!(err("--start-daemon master --mcast-port 0"), "illegal mcast-port specified");
    assert_eq!(err("--start-daemon master --mcast-ttl 256"), "illegal mcast-ttl specified");
    assert_eq!(err("--start-daemon master --mcast-group 10.0.0.1"), "illegal multicast group specified");
    assert_eq!(err("--start-daemon master --sync-maxlen 10"), "illegal sync-maxlen specified");
    assert_eq!(err("--start-daemon master --mcast-interface abcdefghijklmnop"), "illegal mcast-interface specified");
    assert_eq!(p("--start-daemon master --syncid 256").unwrap_err().exit_code(), 2);
    // The legality table: daemon options belong to --start-daemon.
    assert_eq!(
        err("--stop-daemon master --mcast-interface eth0"),
        "Illegal 'mcast-interface' option with the 'stop-daemon' command"
    );
    assert_eq!(err("-A -t 10.0.0.1:80 --syncid 1"), "Illegal 'syncid' option with the 'add-service' command");
    assert_eq!(
        err("--start-daemon master -t 10.0.0.1:80"),
        "Illegal 'service-address' option with the 'start-daemon' command"
    );
    assert_eq!(err("-L --daemon --stats"), "options conflicts in the list command");
    assert_eq!(
        err("-L --daemon -c"),
        "The option 'daemon' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(err("--start-daemon master --syncid 1 --syncid 2"), "multiple 'syncid' options specified");
}
