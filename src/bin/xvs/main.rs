//! `xvs`: the director's command line.
#![deny(unsafe_code)]

mod report;
mod run;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use xvs::config::Config;
use xvs::dataplane::{PcapPort, Pipeline, Poll, Worker};

#[derive(Parser)]
#[command(name = "xvs", version, about = "A user-space poll-mode L4 load-balancing director (LVS/IPVS semantics)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the director on the configured interfaces until SIGINT/SIGTERM (needs root).
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Replace an XDP program of another tool already attached to a director interface
        /// (without it, such an interface is refused; xvs's own program, left by a run that
        /// crashed, is always replaced).
        #[arg(long)]
        force: bool,
    },
    /// Decapsulate IP-in-IP (TUN mode) with an XDP program on a real server whose kernel has
    /// no ipip module. The program stays attached after xvs exits.
    Decap {
        /// The real server's interface facing the director.
        #[arg(long)]
        iface: String,
        /// The real server's own address(es): outer destinations to accept.
        #[arg(long = "local", required_unless_present = "detach")]
        local: Vec<std::net::Ipv4Addr>,
        /// Remove the XDP program from the interface instead.
        #[arg(long)]
        detach: bool,
    },
    /// Run a capture through the director's worker pipeline and write what it would transmit.
    Replay {
        /// config.json (interfaces, neighbours, timeouts, services).
        #[arg(long)]
        config: PathBuf,
        /// Input capture (pcap, Ethernet).
        #[arg(long)]
        input: PathBuf,
        /// Output capture: the frames the director would transmit.
        #[arg(long)]
        output: PathBuf,
        /// Take the services from `ipvsadm -S -n` rules instead of config.json's.
        #[arg(long, value_name = "FILE")]
        ipvsadm_rules: Option<PathBuf>,
    },
    /// Ask the running director to re-read its config file (as SIGHUP does). Services,
    /// health checks, timeouts and neighbours change live; a file that changes what needs a
    /// restart (interfaces, workers, ...) is refused whole and nothing changes.
    Reload {
        /// The director's control socket.
        #[arg(long, env = "XVS_SOCKET", default_value = xvs::config::DEFAULT_CONTROL_SOCKET)]
        socket: PathBuf,
    },
    /// Convert keepalived.conf's virtual_server blocks into config.json's services (printed
    /// as JSON on stdout; what is skipped is reported on stderr).
    ImportKeepalived {
        /// keepalived.conf
        file: PathBuf,
        /// Director interfaces for the generated config (default: xvs-c, xvs-r).
        #[arg(long = "iface", value_name = "NAME")]
        ifaces: Vec<String>,
    },
    /// Validate a config file and print its services.
    Check {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_name = "FILE")]
        ipvsadm_rules: Option<PathBuf>,
    },
}

fn load(config: &Path, rules: &Option<PathBuf>) -> Result<Config> {
    let mut cfg = Config::load(config).with_context(|| format!("invalid config {}", config.display()))?;
    if let Some(r) = rules {
        let text = std::fs::read_to_string(r).with_context(|| format!("reading {}", r.display()))?;
        let services = xvs::ipvsadm::services_from_rules(&text).with_context(|| format!("{}", r.display()))?;
        cfg = cfg.with_services(services).with_context(|| format!("{}", r.display()))?;
    }
    Ok(cfg)
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("XVS_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = real_main() {
        eprintln!("xvs: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Run { config, force } => run::run(&config, force),
        Cmd::Decap { iface, local, detach } => {
            if detach {
                xvs::dataplane::xdp::steer::detach_any(&iface)?;
                println!("xvs decap: XDP detached from {iface}");
            } else {
                let mode = xvs::dataplane::xdp::steer::attach_decap(&iface, &local)?;
                println!("xvs decap: IP-in-IP decapsulation on {iface} ({} XDP)", mode.name());
            }
            Ok(())
        }
        Cmd::Reload { socket } => match xvs::control::call(&socket, &xvs::control::Request::Reload)? {
            xvs::control::Reply::Done => {
                println!("xvs: reloaded");
                Ok(())
            }
            xvs::control::Reply::Failed { message, .. } => bail!("reload refused, nothing changed: {message}"),
            other => bail!("unexpected reply {other:?}"),
        },
        Cmd::ImportKeepalived { file, ifaces } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let ifaces = if ifaces.is_empty() { vec!["xvs-c".into(), "xvs-r".into()] } else { ifaces };
            let out =
                xvs::config::keepalived::convert(&text, &ifaces).with_context(|| format!("{}", file.display()))?;
            for w in &out.skipped {
                eprintln!("xvs import-keepalived: skipped {w}");
            }
            println!("{}", out.json);
            Ok(())
        }
        Cmd::Check { config, ipvsadm_rules } => {
            let cfg = load(&config, &ipvsadm_rules)?;
            println!(
                "config OK: {} interface(s), {} service(s), {} worker(s)",
                cfg.interfaces.len(),
                cfg.services.len(),
                cfg.workers
            );
            print!("{}", xvs::ipvsadm::save_rules(&cfg.services));
            Ok(())
        }
        Cmd::Replay { config, input, output, ipvsadm_rules } => replay(load(&config, &ipvsadm_rules)?, &input, &output),
    }
}

fn replay(cfg: Config, input: &Path, output: &Path) -> Result<()> {
    cfg.require_addresses()?;
    // One worker, the capture's clock: the same pipeline and loop as the daemon.
    let mut tables = xvs::control::tables_for(&cfg, None)?;
    tables.workers = 1;
    let pipeline = Pipeline::new(Arc::new(tables), 0);
    let port = PcapPort::open(input, output)?;
    let mut w = Worker::new(0, pipeline, vec![port], xvs::dataplane::FramePool::new(1024), None);
    w.share_port(0);
    match w.run() {
        Poll::Finished => {}
        other => bail!("replay stopped early: {other:?}"),
    }
    let port = w.ports.pop().context("replay port")?;
    let (rx, read_errors) = (port.rx_count, port.read_errors);
    port.finish()?;
    let s = &w.pipeline.stats;
    println!(
        "replay: {rx} frames in, {} forwarded, {} dropped, {} passed to kernel{}",
        s.tx_frames,
        s.total_drops(),
        s.total_passes(),
        if read_errors > 0 {
            format!(" ({read_errors} unreadable record(s) at the end of the capture)")
        } else {
            String::new()
        }
    );
    println!("  forwarded                {:>10}", s.tx_frames);
    if s.icmp_frag_needed > 0 {
        println!("    icmp_frag_needed       {:>10}", s.icmp_frag_needed);
    }
    if s.toa_added + s.toa_no_room > 0 {
        println!("    toa_added              {:>10}", s.toa_added);
        println!("    toa_no_room            {:>10}", s.toa_no_room);
    }
    report::print_reasons(s);
    let sh = &w.pipeline.shard;
    println!(
        "connections: {} created, {} persistence templates, {} live at the end of the capture",
        sh.stats.created,
        sh.stats.templates_created,
        sh.len()
    );
    print!("{}", report::services_text(&cfg, w.pipeline.tables(), |id| s.dests.get(id).copied().unwrap_or_default()));
    Ok(())
}
