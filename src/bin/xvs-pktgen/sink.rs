//! The sink's accounting: frames per destination and per source, loss and reordering from
//! the generator's sequence numbers (per sender stream), latency percentiles from its send
//! times (when both ends share a host clock).

use crate::frames::read_marker;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Latency histogram: 16 buckets per power of two of nanoseconds (6% resolution).
const SUB: u32 = 16;
const BUCKETS: usize = 64 * SUB as usize;

#[derive(Default)]
struct Stream {
    /// Highest sequence number seen (low 56 bits), frames received, frames that came after a
    /// higher one.
    max: Option<u64>,
    received: u64,
    reordered: u64,
}

pub struct Counts {
    pub frames: u64,
    pub bytes: u64,
    pub unmarked: u64,
    per_dst: HashMap<u32, u64>,
    per_src: HashMap<u32, u64>,
    streams: HashMap<u8, Stream>,
    latency: Vec<u64>,
    latency_n: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Summary {
    pub frames: u64,
    pub bytes: u64,
    /// Frames without the generator's marker (a SYN, a frame too small for one).
    pub unmarked: u64,
    /// Marked frames missing between the first and the highest sequence number seen, per
    /// sender stream, summed; frames that arrived after a later one.
    pub lost: u64,
    pub reordered: u64,
    pub per_destination: BTreeMap<String, u64>,
    pub per_source: BTreeMap<String, u64>,
    /// Latency percentiles in microseconds (None without marked frames).
    pub latency_us: Option<BTreeMap<String, f64>>,
}

fn bucket(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros();
    let mant = (ns >> (exp - 4)) as u32 & (SUB - 1);
    (((exp - 3) * SUB + mant) as usize).min(BUCKETS - 1)
}

/// The lower bound of a bucket, in ns.
fn bucket_floor(b: usize) -> u64 {
    let b = b as u32;
    if b < SUB {
        return b as u64;
    }
    let exp = b / SUB + 3;
    let mant = (b % SUB) as u64;
    (SUB as u64 + mant) << (exp - 4)
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            frames: 0,
            bytes: 0,
            unmarked: 0,
            per_dst: HashMap::new(),
            per_src: HashMap::new(),
            streams: HashMap::new(),
            latency: vec![0; BUCKETS],
            latency_n: 0,
        }
    }
}

impl Counts {
    /// Counts one received frame at `now_ns` (the generator's clock, if on this host).
    pub fn add(&mut self, f: &[u8], now_ns: u64) {
        self.frames += 1;
        self.bytes += f.len() as u64;
        if let Some((src, dst)) = addrs(f) {
            *self.per_src.entry(src).or_default() += 1;
            *self.per_dst.entry(dst).or_default() += 1;
        }
        let Some((seq, ts)) = read_marker(f) else {
            self.unmarked += 1;
            return;
        };
        let st = self.streams.entry((seq >> 56) as u8).or_default();
        let s = seq & ((1 << 56) - 1);
        st.received += 1;
        match st.max {
            Some(m) if s < m => st.reordered += 1,
            _ => st.max = Some(s),
        }
        if now_ns >= ts {
            self.latency[bucket(now_ns - ts)] += 1;
            self.latency_n += 1;
        }
    }

    pub fn summary(&self) -> Summary {
        let ip = |a: &u32| std::net::Ipv4Addr::from(*a).to_string();
        let lost = self.streams.values().map(|s| s.max.map_or(0, |m| (m + 1).saturating_sub(s.received))).sum();
        let latency_us = (self.latency_n > 0).then(|| {
            let mut out = BTreeMap::new();
            for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0)] {
                let want = ((self.latency_n as f64 * q).ceil() as u64).max(1);
                let mut seen = 0;
                for (b, &c) in self.latency.iter().enumerate() {
                    seen += c;
                    if seen >= want {
                        out.insert(name.to_string(), bucket_floor(b) as f64 / 1000.0);
                        break;
                    }
                }
            }
            out
        });
        Summary {
            frames: self.frames,
            bytes: self.bytes,
            unmarked: self.unmarked,
            lost,
            reordered: self.streams.values().map(|s| s.reordered).sum(),
            per_destination: self.per_dst.iter().map(|(a, n)| (ip(a), *n)).collect(),
            per_source: self.per_src.iter().map(|(a, n)| (ip(a), *n)).collect(),
            latency_us,
        }
    }
}

/// The IPv4 source and destination of a frame (one 802.1Q tag allowed).
fn addrs(f: &[u8]) -> Option<(u32, u32)> {
    let o = if f.get(12..14)? == [0x81, 0x00] { 16 } else { 12 };
    if f.get(o..o + 2)? != [0x08, 0x00] {
        return None;
    }
    let ip = f.get(o + 2..o + 22)?;
    Some((u32::from_be_bytes(ip[12..16].try_into().ok()?), u32::from_be_bytes(ip[16..20].try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{Generator, Profile, Range, Size};

    fn frames(n: u64, stream: u8) -> Vec<Vec<u8>> {
        let mut spec = crate::frames::tests::spec(Profile::Udp, Size::Fixed(64));
        spec.src = Range::addrs("198.18.1.1-198.18.1.4").unwrap();
        spec.sport = Range::ports("1000").unwrap();
        spec.dport = 9000;
        spec.flows = 4;
        let mut g = Generator::new(spec, stream, 1);
        let mut buf = [0u8; 2048];
        (0..n)
            .map(|i| {
                let (len, _) = g.next(&mut buf, 1_000_000 + i * 1000);
                buf[..len].to_vec()
            })
            .collect()
    }

    #[test]
    fn counts_loss_reordering_sources_and_latency() {
        let mut c = Counts::default();
        let mut f = frames(100, 1);
        f.swap(10, 11); // one reordered
        f.remove(50); // one lost
        f.remove(60); // another
        for (i, fr) in f.iter().enumerate() {
            // Each arrives 5 us after it was sent (send times are 1 us apart).
            let _ = i;
            let sent = read_marker(fr).unwrap().1;
            c.add(fr, sent + 5_000);
        }
        let s = c.summary();
        assert_eq!(s.frames, 98);
        assert_eq!(s.lost, 2);
        assert_eq!(s.reordered, 1);
        assert_eq!(s.per_destination["198.18.0.100"], 98);
        assert_eq!(s.per_source.len(), 4);
        assert_eq!(s.per_source.values().sum::<u64>(), 98);
        let l = s.latency_us.unwrap();
        assert!((4.6..=5.0).contains(&l["p50"]), "{l:?}");
        assert!((4.6..=5.0).contains(&l["max"]), "{l:?}");
    }

    #[test]
    fn streams_are_counted_apart_and_unmarked_frames_apart() {
        let mut c = Counts::default();
        for fr in frames(10, 0).iter().chain(frames(20, 1).iter()) {
            c.add(fr, 0);
        }
        c.add(&[0u8; 60], 0);
        let s = c.summary();
        assert_eq!((s.frames, s.lost, s.reordered, s.unmarked), (31, 0, 0, 1));
        assert!(s.latency_us.is_none(), "send times after now: no latency");
    }

    #[test]
    fn histogram_buckets_are_ordered_and_within_a_sixteenth() {
        let mut last = 0;
        for ns in [0u64, 1, 15, 16, 17, 100, 1_000, 12_345, 1_000_000, 123_456_789, u64::MAX / 2] {
            let b = bucket(ns);
            assert!(b >= last);
            last = b;
            let floor = bucket_floor(b);
            assert!(floor <= ns && (ns - floor) as f64 <= ns as f64 / 16.0 + 1.0, "{ns}: floor {floor}");
        }
    }
}
