//! `toa-decode CAPTURE.pcap`: the TOA options (TCP option 254, length 8: client port, client
//! address) in a capture taken on a FULLNAT real server, one line per TCP segment that
//! carries one, then a summary. Written from the option's layout (Alibaba's `toa` module,
//! DPVS), independently of xvs's encoder: headers by etherparse, options walked here.
//!
//! Link types: Ethernet (tcpdump -i eth0), Linux cooked (tcpdump -i any) and raw IP.
//! `--expect A.B.C.D` exits non-zero unless every SYN carries a TOA naming that address.

#[path = "pcap_packets.rs"]
mod pcap_packets;

use anyhow::{bail, Result};
use clap::Parser;
use etherparse::{NetSlice, TransportSlice};
use std::net::Ipv4Addr;

#[derive(Parser)]
#[command(about = "Decode the TOA (client address) options of a FULLNAT real server's capture")]
struct Args {
    /// The capture (pcap).
    capture: std::path::PathBuf,
    /// Fail unless every SYN carries a TOA option naming this client address.
    #[arg(long)]
    expect: Option<Ipv4Addr>,
}

/// A TOA option found in TCP options `opts`: (client address, client port). Errors name a
/// malformed option list (a length that runs past the end, or a TOA of the wrong length).
fn find_toa(opts: &[u8]) -> Result<Option<(Ipv4Addr, u16)>, String> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return Ok(None),
            1 => i += 1,
            kind => {
                let len = *opts.get(i + 1).ok_or(format!("option {kind} at {i}: no length"))? as usize;
                if len < 2 || i + len > opts.len() {
                    return Err(format!("option {kind} at {i}: length {len} past the options' end"));
                }
                if kind == 254 {
                    if len != 8 {
                        return Err(format!("TOA at {i}: length {len}, not 8"));
                    }
                    let o = &opts[i..i + 8];
                    let port = u16::from_be_bytes([o[2], o[3]]);
                    return Ok(Some((Ipv4Addr::new(o[4], o[5], o[6], o[7]), port)));
                }
                i += len;
            }
        }
    }
    Ok(None)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (mut syns, mut syns_with, mut with, mut bad, mut wrong) = (0u64, 0u64, 0u64, 0u64, 0u64);
    pcap_packets::each(&args.capture, |timestamp, p| {
        let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(tcp))) = (&p.net, &p.transport) else { return };
        let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
        let syn = tcp.syn() && !tcp.ack();
        syns += syn as u64;
        let flags = format!(
            "{}{}{}{}",
            if tcp.syn() { "S" } else { "" },
            if tcp.ack() { "." } else { "" },
            if tcp.fin() { "F" } else { "" },
            if tcp.rst() { "R" } else { "" }
        );
        let at = format!("{}.{:06}", timestamp.as_secs(), timestamp.subsec_micros());
        match find_toa(tcp.options()) {
            Ok(Some((addr, port))) => {
                with += 1;
                syns_with += syn as u64;
                if args.expect.is_some_and(|e| e != addr) {
                    wrong += 1;
                }
                println!(
                    "{at} {src}:{} > {dst}:{} [{flags}] toa {addr}:{port}",
                    tcp.source_port(),
                    tcp.destination_port()
                );
            }
            Ok(None) => {}
            Err(e) => {
                bad += 1;
                println!(
                    "{at} {src}:{} > {dst}:{} [{flags}] bad options: {e}",
                    tcp.source_port(),
                    tcp.destination_port()
                );
            }
        }
    })?;
    println!("{with} segments with TOA; {syns_with} of {syns} SYNs; {bad} with malformed options");
    if let Some(e) = args.expect {
        if syns == 0 || syns_with < syns || wrong > 0 || bad > 0 {
            bail!("expected every SYN to carry TOA {e}: {syns_with} of {syns} SYNs did, {wrong} named another address");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::find_toa;
    use std::net::Ipv4Addr;

    #[test]
    fn options_are_walked_to_the_toa() {
        let mss_sack_toa = [2, 4, 5, 0xb4, 1, 1, 4, 2, 254, 8, 0x9c, 0x40, 198, 18, 0, 2];
        assert_eq!(find_toa(&mss_sack_toa), Ok(Some((Ipv4Addr::new(198, 18, 0, 2), 40000))));
        assert_eq!(find_toa(&[2, 4, 5, 0xb4]), Ok(None));
        assert_eq!(find_toa(&[0, 254, 8, 0, 0, 1, 2, 3, 4]), Ok(None), "after the end of the list");
        assert!(find_toa(&[254, 6, 0, 0, 1, 2]).is_err(), "a TOA of the wrong length");
        assert!(find_toa(&[2, 40, 5]).is_err(), "a length past the end");
    }
}
