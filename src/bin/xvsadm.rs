//! `xvsadm`: ipvsadm's command line for a running `xvs run`, over its control socket
//! (`XVS_SOCKET`, default `/run/xvs/xvs.sock`). Commands are parsed here with ipvsadm 1.31's
//! messages and exit codes, and checked again by the director, which applies a change to a copy
//! of its tables and installs it only if the whole result is valid.
#![deny(unsafe_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::exit;
use xvs::control::{self, Reply, Request};
use xvs::ipvsadm::{self, Command, TRY_HELP};

const VERSION: &str = "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)";

fn usage() -> String {
    let lines = [
        "-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]",
        "-D virtual-service",
        "-C",
        "-R",
        "-S [-n]",
        "-a|e virtual-service -r server-address [options]",
        "-d virtual-service -r server-address",
        "-L|l [virtual-service] [options]",
        "-Z [virtual-service]",
        "--set tcp tcpfin udp",
        "--workers                (xvs: datapath counters per worker)",
        "-h",
    ];
    let mut s = format!("{VERSION}\nUsage:\n");
    for l in lines {
        s.push_str(&format!("  xvsadm {l}\n"));
    }
    s.push_str("\nForwarding: -g (gatewaying, DR), -i (ipip, TUN), -m (masquerading, NAT), -j (FULLNAT, xvs)\n");
    s
}

fn socket() -> PathBuf {
    std::env::var_os("XVS_SOCKET").map(PathBuf::from).unwrap_or_else(|| xvs::config::DEFAULT_CONTROL_SOCKET.into())
}

fn fail(code: i32, message: &str) -> ! {
    if !message.is_empty() {
        eprintln!("{message}");
    }
    exit(code)
}

fn call(req: &Request) -> Reply {
    match control::call(&socket(), req) {
        Ok(Reply::Failed { code, message }) => fail(code, &message),
        Ok(r) => r,
        Err(e) => fail(2, &format!("xvsadm: {e}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // xvs's own listing: the datapath counters per worker (rx, tx, drops by reason, handoffs,
    // AF_XDP ring counters and wakeups).
    if args == ["--workers"] {
        if let Reply::Text { text } = call(&Request::Workers) {
            print!("{text}");
        }
        return;
    }
    let refs: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let cmd = match ipvsadm::parse_command(&refs) {
        Ok(c) => c,
        Err(e) if e.is_usage_error() => {
            let m = e.to_string();
            if m != TRY_HELP {
                eprintln!("{m}");
            }
            fail(e.exit_code(), TRY_HELP)
        }
        Err(e) => fail(e.exit_code(), &e.to_string()),
    };
    match cmd {
        Command::Help => print!("{}", usage()),
        Command::Version => println!("{VERSION}"),
        Command::List(opts) if opts.connections => {
            if let Reply::Connections { mut entries, total } = call(&Request::Connections) {
                if (entries.len() as u64) < total {
                    eprintln!("xvsadm: listing {} of {total} entries (the rest are not shown)", entries.len());
                }
                if let Some(k) = &opts.service {
                    entries.retain(|e| e.virt == (k.addr, k.port) && e.proto == k.proto.number());
                }
                entries.sort_by_key(|e| (e.proto, e.virt, e.client, e.template));
                print!("{}", ipvsadm::list_conns(&entries));
            }
        }
        Command::List(opts) if opts.daemon => {
            if let Reply::Text { text } = call(&Request::Daemons) {
                print!("{text}");
            }
        }
        Command::StartDaemon(spec) => {
            call(&Request::StartDaemon { spec });
        }
        Command::StopDaemon(role) => {
            call(&Request::StopDaemon { role });
        }
        Command::List(opts) if opts.timeout => {
            if let Reply::Timeouts { tcp, tcpfin, udp } = call(&Request::Timeouts) {
                print!("{}", ipvsadm::timeouts_line(tcp, tcpfin, udp));
            }
        }
        Command::List(opts) => {
            if let Reply::Services { size, services } = call(&Request::List) {
                match ipvsadm::list(&services, size, &opts) {
                    Ok(text) => print!("{text}"),
                    Err(e) => fail(e.exit_code(), &e.to_string()),
                }
            }
        }
        Command::Save { .. } => {
            if let Reply::Text { text } = call(&Request::Save) {
                print!("{text}");
            }
        }
        Command::Restore => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                fail(2, &format!("xvsadm: reading the rules: {e}"));
            }
            call(&Request::Restore { text });
        }
        _ => {
            call(&Request::Ipvsadm { args });
        }
    }
}
