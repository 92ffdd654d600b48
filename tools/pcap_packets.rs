//! Reading a capture for the decoder tools: every packet that parses (Ethernet, Linux cooked
//! or raw IP link types), sliced by etherparse, with its timestamp.

use anyhow::{bail, Context, Result};
use etherparse::SlicedPacket;
use pcap_file::pcap::PcapReader;
use pcap_file::DataLink;

/// Calls `f` with each packet of the capture at `path` that etherparse can slice.
pub fn each(path: &std::path::Path, mut f: impl FnMut(std::time::Duration, &SlicedPacket<'_>)) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut reader = PcapReader::new(file).context("not a pcap capture")?;
    let link = reader.header().datalink;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.context("reading the capture")?;
        let sliced = match link {
            DataLink::ETHERNET => SlicedPacket::from_ethernet(&pkt.data),
            DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(&pkt.data),
            DataLink::RAW | DataLink::IPV4 => SlicedPacket::from_ip(&pkt.data),
            other => bail!("link type {other:?}: only Ethernet, Linux cooked and raw IP captures"),
        };
        if let Ok(p) = sliced {
            f(pkt.timestamp, &p);
        }
    }
    Ok(())
}
