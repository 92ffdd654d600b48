//! The XDP steering program (`bpf/steer.bpf.c`, built by `build.rs`) and its maps.
//!
//! One program object per interface (each has its own XSKMAP of queue -> socket). The control
//! plane fills the maps from the tables snapshot ([`SteerSet`]) and re-syncs them at runtime:
//! only frames the director must handle reach the sockets; ARP, ICMP to the host, SSH and the
//! rest go to the kernel.

use crate::dataplane::tables::Tables;
use crate::model::FwdMode;
use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder, Xdp, XdpFlags};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsFd;

static STEER_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/steer.bpf.o"));
static DECAP_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ipip_decap.bpf.o"));
static SINK_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sink.bpf.o"));

/// Errors loading, attaching or updating the XDP program.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    #[error("interface {iface}: {msg}")]
    Iface { iface: String, msg: String },
    #[error("loading the XDP program: {0}")]
    Load(String),
    #[error("attaching the XDP program to {iface}: native mode: {native}; generic mode: {generic}")]
    Attach { iface: String, native: String, generic: String },
    #[error("updating BPF map {map} on {iface}: {msg}")]
    Map { iface: String, map: &'static str, msg: String },
    #[error(
        "interface {iface} already runs XDP program {id} ({name}), which is not xvs's: refusing to replace it \
         (detach it, or start with --force)"
    )]
    Occupied { iface: String, id: u32, name: String },
}

/// The XDP programs attached to `ifindex` (native and generic mode), as (id, name).
fn attached_programs(ifindex: i32, xdp: &Xdp<'_>) -> Vec<(u32, String)> {
    let mut ids: Vec<u32> = [XdpFlags::DRV_MODE, XdpFlags::SKB_MODE]
        .into_iter()
        .filter_map(|f| xdp.query_id(ifindex, f).ok())
        .filter(|&id| id != 0)
        .collect();
    ids.dedup();
    if ids.is_empty() {
        return Vec::new();
    }
    let names: Vec<(u32, String)> = libbpf_rs::query::ProgInfoIter::default()
        .filter(|p| ids.contains(&p.id))
        .map(|p| (p.id, p.name.to_string_lossy().into_owned()))
        .collect();
    ids.into_iter()
        .map(|id| (id, names.iter().find(|(i, _)| *i == id).map_or_else(|| "?".to_string(), |(_, n)| n.clone())))
        .collect()
}

/// How the program runs on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (native XDP).
    Native,
    /// On the generic (SKB) path, when the driver has no XDP support.
    Generic,
}

impl XdpMode {
    pub fn name(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }
    fn flags(self) -> XdpFlags {
        match self {
            XdpMode::Native => XdpFlags::DRV_MODE,
            XdpMode::Generic => XdpFlags::SKB_MODE,
        }
    }
}

/// The interface's index.
pub fn ifindex(iface: &str) -> Result<i32, SteerError> {
    let path = format!("/sys/class/net/{iface}/ifindex");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| SteerError::Iface { iface: iface.into(), msg: format!("no such interface ({path}: {e})") })?;
    text.trim().parse().map_err(|_| SteerError::Iface { iface: iface.into(), msg: format!("bad ifindex {text:?}") })
}

/// How many receive queues an interface has (every one needs a socket).
pub fn rx_queues(iface: &str) -> Result<u32, SteerError> {
    let path = format!("/sys/class/net/{iface}/queues");
    let dir =
        std::fs::read_dir(&path).map_err(|e| SteerError::Iface { iface: iface.into(), msg: format!("{path}: {e}") })?;
    let n = dir.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count();
    Ok(n.max(1) as u32)
}

/// A program attached to one interface.
struct Attached {
    iface: String,
    ifindex: i32,
    mode: XdpMode,
    obj: Object,
    prog: &'static str,
}

/// Map `map` of a loaded object; `label` names the object in errors (its interface).
fn obj_map<'a>(obj: &'a Object, label: &str, map: &'static str) -> Result<libbpf_rs::Map<'a>, SteerError> {
    obj.maps().find(|m| m.name() == map).ok_or_else(|| SteerError::Map {
        iface: label.to_string(),
        map,
        msg: "missing from the object".into(),
    })
}

/// A failed operation on map `map` of the object for `label`, as a [`SteerError`].
fn map_err<'a>(label: &'a str, map: &'static str) -> impl Fn(libbpf_rs::Error) -> SteerError + Copy + 'a {
    move |e| SteerError::Map { iface: label.to_string(), map, msg: e.to_string() }
}

/// Writes `value` under `key` in map `map` of a loaded object.
fn obj_update(obj: &Object, label: &str, map: &'static str, key: &[u8], value: &[u8]) -> Result<(), SteerError> {
    obj_map(obj, label, map)?.update(key, value, MapFlags::ANY).map_err(map_err(label, map))
}

/// Makes `map` hold exactly `want` (keys to a fixed value per key). An entry already holding
/// its value is not written again: a hash map update replaces the element, and the kernel may
/// hand the old one to the next update at once, under a program still reading it (a
/// `dst_addrs` entry read as another address's); it also saves a syscall an entry a sync.
fn obj_sync(obj: &Object, label: &str, map: &'static str, want: &[(Vec<u8>, Vec<u8>)]) -> Result<(), SteerError> {
    let m = obj_map(obj, label, map)?;
    let err = map_err(label, map);
    let keep: BTreeSet<&[u8]> = want.iter().map(|(k, _)| k.as_slice()).collect();
    let stale: Vec<Vec<u8>> = m.keys().filter(|k| !keep.contains(k.as_slice())).collect();
    for k in stale {
        m.delete(&k).map_err(err)?;
    }
    for (k, v) in want {
        if m.lookup(k, MapFlags::ANY).map_err(err)?.as_deref() != Some(v.as_slice()) {
            m.update(k, v, MapFlags::ANY).map_err(err)?;
        }
    }
    Ok(())
}

/// Makes every map of a steering object match `maps` ([`map_contents`]). The address filter
/// first takes the union of its old and new bits (a new address's frames reach the exact
/// maps as soon as they hold it, and none that stays ever loses its bit), and its exact new
/// value last.
fn sync_steering(obj: &Object, label: &str, maps: &[(&'static str, MapEntries)]) -> Result<(), SteerError> {
    let filter = maps.iter().find(|(m, _)| *m == "addr_filter").and_then(|(_, e)| e.first());
    if let Some((key, new)) = filter {
        let old = obj_map(obj, label, "addr_filter")?
            .lookup(key, MapFlags::ANY)
            .map_err(map_err(label, "addr_filter"))?
            .unwrap_or_default();
        let union: Vec<u8> = new.iter().enumerate().map(|(i, b)| b | old.get(i).copied().unwrap_or(0)).collect();
        obj_update(obj, label, "addr_filter", key, &union)?;
    }
    for (map, want) in maps {
        obj_sync(obj, label, map, want)?;
    }
    Ok(())
}

/// Sums per-CPU u64 counter `idx` of an object's `counters` map.
fn obj_counter(obj: &Object, idx: u32) -> u64 {
    let Ok(m) = obj_map(obj, "", "counters") else { return 0 };
    match m.lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY) {
        Ok(Some(per_cpu)) => {
            per_cpu.iter().filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes)).sum()
        }
        _ => 0,
    }
}

impl Attached {
    /// Loads `prog` and attaches it to `iface`. A program already there is replaced when it
    /// is this same program (a run that crashed left it) or when `force` is set; any other is
    /// refused, naming it.
    /// `settings`: written to the `settings` map before the program is attached (it replaces
    /// its predecessor at once, holding from the first frame).
    fn load_and_attach(
        obj: &[u8],
        prog: &'static str,
        iface: &str,
        force: bool,
        settings: Option<u32>,
    ) -> Result<Attached, SteerError> {
        let ifindex = ifindex(iface)?;
        let open = ObjectBuilder::default().open_memory(obj).map_err(|e| SteerError::Load(e.to_string()))?;
        let obj = open.load().map_err(|e| SteerError::Load(e.to_string()))?;
        if let Some(v) = settings {
            obj_update(&obj, iface, "settings", &0u32.to_ne_bytes(), &v.to_ne_bytes())?;
        }
        let mut errs = Vec::new();
        let mut mode = None;
        {
            let p = obj
                .progs()
                .find(|p| p.name() == prog)
                .ok_or_else(|| SteerError::Load(format!("program {prog} missing from the object")))?;
            let xdp = Xdp::new(p.as_fd());
            for (id, name) in attached_programs(ifindex, &xdp) {
                if name == prog {
                    tracing::info!("{iface}: replacing XDP program {id} ({name}) left by an earlier run");
                } else if force {
                    tracing::warn!("{iface}: replacing XDP program {id} ({name}) (--force)");
                } else {
                    return Err(SteerError::Occupied { iface: iface.to_string(), id, name });
                }
            }
            for m in [XdpMode::Native, XdpMode::Generic] {
                match xdp.attach(ifindex, m.flags()) {
                    Ok(()) => {
                        mode = Some(m);
                        break;
                    }
                    Err(e) => errs.push(e.to_string()),
                }
            }
        }
        match mode {
            Some(mode) => Ok(Attached { iface: iface.to_string(), ifindex, mode, obj, prog }),
            None => Err(SteerError::Attach {
                iface: iface.to_string(),
                native: errs.first().cloned().unwrap_or_default(),
                generic: errs.get(1).cloned().unwrap_or_default(),
            }),
        }
    }

    fn update(&self, map: &'static str, key: &[u8], value: &[u8]) -> Result<(), SteerError> {
        obj_update(&self.obj, &self.iface, map, key, value)
    }

    /// Sums a per-CPU u64 counter.
    fn counter(&self, idx: u32) -> u64 {
        obj_counter(&self.obj, idx)
    }

    fn detach(&self) -> Result<(), SteerError> {
        let p = self.obj.progs().find(|p| p.name() == self.prog).ok_or_else(|| SteerError::Load("program".into()))?;
        Xdp::new(p.as_fd())
            .detach(self.ifindex, self.mode.flags())
            .map_err(|e| SteerError::Iface { iface: self.iface.clone(), msg: format!("detaching XDP: {e}") })
    }
}

/// What the steering program must redirect, compiled from a tables snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SteerSet {
    /// (proto, VIP, port) of every service (port 0: all ports).
    pub services: BTreeSet<(u8, u32, u16)>,
    pub vips: BTreeSet<u32>,
    /// (proto, addr, port) of every NAT real server (port 0: any).
    pub nat_dests: BTreeSet<(u8, u32, u16)>,
    /// Local addresses with FULLNAT real servers behind them, and the local-port range.
    pub local: BTreeSet<(u32, u16, u16)>,
    /// The director's own addresses (NAT-server traffic to them is the kernel's).
    pub hosts: BTreeSet<u32>,
    /// ICMP errors about connections go to the workers (`director.icmp_relay`).
    pub icmp_relay: bool,
}

impl SteerSet {
    pub fn from_tables(t: &Tables) -> SteerSet {
        let mut s = SteerSet::default();
        let mut fullnat = false;
        // Deleted services and servers (tombstoned slots) are the kernel's again, except the
        // replies of servers that are or were NAT: their connections may still be running.
        for svc in &t.services {
            if svc.live {
                s.services.insert((svc.proto, svc.vip, svc.vport));
                s.vips.insert(svc.vip);
            }
            for d in &svc.dests {
                if d.was_nat {
                    s.nat_dests.insert((svc.proto, d.addr, d.port));
                }
                // A deleted FULLNAT server keeps its mode: its connections' replies still come.
                if d.mode == FwdMode::FullNat {
                    fullnat = true;
                }
            }
        }
        if fullnat {
            for &a in t.local_addrs.iter().filter(|a| **a != 0) {
                s.local.insert((a, t.lport_range.0, t.lport_range.1));
            }
        }
        s.hosts.extend(t.local_ips.iter().copied());
        s.hosts.insert(t.dip);
        s.hosts.extend(t.local_addrs.iter().copied());
        s.icmp_relay = !t.icmp_to_kernel;
        s
    }
}

fn l4_key(proto: u8, addr: u32, port: u16) -> Vec<u8> {
    let mut k = Vec::with_capacity(8);
    k.extend_from_slice(&addr.to_be_bytes());
    k.extend_from_slice(&port.to_be_bytes());
    k.extend_from_slice(&[proto, 0]);
    k
}

/// A map's (key, value) entries, as bytes.
type MapEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// What each of the steering program's maps holds for `set`: (map, [(key, value)]), laid out
/// as the C structs are.
fn map_contents(set: &SteerSet) -> Vec<(&'static str, MapEntries)> {
    let one = vec![1u8];
    let services: Vec<_> = set.services.iter().map(|&(p, a, port)| (l4_key(p, a, port), one.clone())).collect();
    let nat: Vec<_> = set.nat_dests.iter().map(|&(p, a, port)| (l4_key(p, a, port), one.clone())).collect();
    // struct dst_info: vip (u8), pad, the local-port range lo..=hi (host order; lo > hi: none).
    let mut dst: BTreeMap<u32, [u8; 6]> = BTreeMap::new();
    // Every service's address is a VIP, whether or not the set lists it in `vips` too (a
    // set built by hand, as the pktgen sink's, may hold services only).
    for a in set.vips.iter().copied().chain(set.services.iter().map(|&(_, a, _)| a)) {
        dst.entry(a).or_insert(NO_LPORTS)[0] = 1;
    }
    for &(a, lo, hi) in &set.local {
        let v = dst.entry(a).or_insert(NO_LPORTS);
        v[2..4].copy_from_slice(&lo.to_ne_bytes());
        v[4..6].copy_from_slice(&hi.to_ne_bytes());
    }
    let dst_addrs: Vec<_> = dst.iter().map(|(a, v)| (a.to_be_bytes().to_vec(), v.to_vec())).collect();
    let hosts: Vec<_> = set.hosts.iter().map(|a| (a.to_be_bytes().to_vec(), one.clone())).collect();
    let addrs: BTreeSet<u32> = set.nat_dests.iter().map(|&(_, a, _)| a).collect();
    let nat_addrs: Vec<_> = addrs.iter().map(|a| (a.to_be_bytes().to_vec(), one.clone())).collect();
    let mut words = vec![0u64; FILTER_BITS / 64];
    for a in dst.keys().chain(addrs.iter()) {
        let b = filter_bit(*a);
        words[b / 64] |= 1 << (b % 64);
    }
    let filter: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    // The maps a lookup is gated by (the filter, nat_addrs, dst_addrs) after the maps they
    // gate, so that an address added opens onto its complete entries. (An address that stays
    // keeps its filter bit through the rewrite: the update copies the same bytes over it.)
    vec![
        ("hosts", hosts),
        ("services", services),
        ("nat_dests", nat),
        ("nat_addrs", nat_addrs),
        ("dst_addrs", dst_addrs),
        ("addr_filter", vec![(0u32.to_ne_bytes().to_vec(), filter)]),
    ]
}

/// Bits of the steering program's address filter (`FILTER_BITS` in steer.bpf.c).
const FILTER_BITS: usize = 65536;

/// The filter bit of address `addr` (host order, as the tables hold it), as the program
/// computes it from the address it loads from the frame: the network-order bytes read as a
/// native u32, times a constant, its top 16 bits (bit `b % 64` of u64 word `b / 64`).
fn filter_bit(addr: u32) -> usize {
    (u32::from_ne_bytes(addr.to_be_bytes()).wrapping_mul(0x9E37_79B1) >> 16) as usize
}

/// A `dst_info` that is no VIP and has no local-port range (lo 1 > hi 0).
const NO_LPORTS: [u8; 6] = {
    let lo = 1u16.to_ne_bytes();
    [0, 0, lo[0], lo[1], 0, 0]
};

/// The steering program loaded but attached nowhere, its maps filled from a [`SteerSet`]: the
/// kernel runs it on a frame (`BPF_PROG_TEST_RUN`) and says where the frame would go and how
/// long the program took. For tests and `examples/steer-cost`; needs root.
pub struct SteerProbe {
    obj: Object,
}

impl SteerProbe {
    pub fn load(set: &SteerSet) -> Result<SteerProbe, SteerError> {
        let open = ObjectBuilder::default().open_memory(STEER_OBJ).map_err(|e| SteerError::Load(e.to_string()))?;
        let obj = open.load().map_err(|e| SteerError::Load(e.to_string()))?;
        let v: u32 = if set.icmp_relay { SET_ICMP_RELAY } else { 0 };
        obj_update(&obj, "probe", "settings", &0u32.to_ne_bytes(), &v.to_ne_bytes())?;
        let mut p = SteerProbe { obj };
        p.sync(set)?;
        Ok(p)
    }

    /// Makes the maps match `set` as [`Steering::sync`] does on a running director (the ICMP
    /// relay setting apart, fixed at load).
    pub fn sync(&mut self, set: &SteerSet) -> Result<(), SteerError> {
        sync_steering(&self.obj, "probe", &map_contents(set))
    }

    /// Runs the program `repeat` times on `frame`: whether it sends the frame to the
    /// director's sockets (redirected) rather than to the kernel, and the kernel's average
    /// time a run.
    pub fn run(&mut self, frame: &[u8], repeat: u32) -> Result<(bool, std::time::Duration), SteerError> {
        let before = obj_counter(&self.obj, 0);
        let p = self
            .obj
            .progs_mut()
            .find(|p| p.name() == "xvs_steer")
            .ok_or_else(|| SteerError::Load("program xvs_steer missing from the object".into()))?;
        let input = libbpf_rs::ProgramInput { data_in: Some(frame), repeat, ..Default::default() };
        let took = p.test_run(input).map_err(|e| SteerError::Load(format!("test run: {e}")))?.duration;
        Ok((obj_counter(&self.obj, 0) > before, took))
    }
}

/// Settings bit 0: ICMP errors about connections go to the workers.
const SET_ICMP_RELAY: u32 = 1;
/// Settings bit 1: director frames without a socket on their queue are dropped, not passed.
const SET_HOLD: u32 = 2;

/// The steering program on every director interface. Dropping it detaches the programs
/// (except after [`Steering::hand_over`]).
pub struct Steering {
    attached: Vec<Attached>,
    /// The `settings` value the programs hold.
    settings: std::sync::atomic::AtomicU32,
}

impl Steering {
    /// Loads and attaches the program to each interface (native mode, else generic). Another
    /// program already attached is replaced only with `force` (or when it is ours, left by
    /// an earlier run). The programs start holding (see [`Steering::set_hold`]): until the
    /// sockets are registered, director frames are dropped, so that a restart's gap hands
    /// the kernel no segment of a running connection.
    pub fn attach(ifaces: &[String], force: bool) -> Result<Steering, SteerError> {
        let mut s = Steering { attached: Vec::new(), settings: std::sync::atomic::AtomicU32::new(SET_HOLD) };
        for i in ifaces {
            // On error, `s` drops and detaches what was attached so far.
            s.attached.push(Attached::load_and_attach(STEER_OBJ, "xvs_steer", i, force, Some(SET_HOLD))?);
        }
        Ok(s)
    }

    fn write_settings(&self, v: u32) -> Result<(), SteerError> {
        self.settings.store(v, std::sync::atomic::Ordering::Relaxed);
        for a in &self.attached {
            a.update("settings", &0u32.to_ne_bytes(), &v.to_ne_bytes())?;
        }
        Ok(())
    }

    /// Holding: director frames whose queue has no socket are dropped instead of passed to
    /// the kernel (which, holding the VIP, would reset the connection).
    pub fn set_hold(&self, hold: bool) -> Result<(), SteerError> {
        let v = self.settings.load(std::sync::atomic::Ordering::Relaxed);
        self.write_settings(if hold { v | SET_HOLD } else { v & !SET_HOLD })
    }

    pub fn holding(&self) -> bool {
        self.settings.load(std::sync::atomic::Ordering::Relaxed) & SET_HOLD != 0
    }

    /// Leaves the programs attached and holding when this process exits (a hitless
    /// restart: the next run replaces them with its own, holding too, and takes over).
    pub fn hand_over(mut self) -> Result<(), SteerError> {
        self.set_hold(true)?;
        // Dropping the objects closes this process's handles; the kernel keeps the attached
        // programs and their maps.
        self.attached.clear();
        Ok(())
    }

    /// The mode the program runs in on interface `i`.
    pub fn mode(&self, i: usize) -> Option<XdpMode> {
        self.attached.get(i).map(|a| a.mode)
    }

    /// Points queue `queue` of interface `i` at an AF_XDP socket.
    pub fn register_socket(&self, i: usize, queue: u32, fd: i32) -> Result<(), SteerError> {
        let Some(a) = self.attached.get(i) else {
            return Err(SteerError::Iface { iface: format!("#{i}"), msg: "not attached".into() });
        };
        a.update("xsks", &queue.to_ne_bytes(), &fd.to_ne_bytes())
    }

    /// Makes every interface's maps match `set`.
    pub fn sync(&self, set: &SteerSet) -> Result<(), SteerError> {
        let maps = map_contents(set);
        let hold = self.settings.load(std::sync::atomic::Ordering::Relaxed) & SET_HOLD;
        self.write_settings(if set.icmp_relay { SET_ICMP_RELAY } else { 0 } | hold)?;
        for a in &self.attached {
            sync_steering(&a.obj, &a.iface, &maps)?;
        }
        Ok(())
    }

    /// Frames the programs redirected to sockets and passed to the kernel, over all
    /// interfaces and CPUs.
    pub fn counters(&self) -> (u64, u64) {
        self.attached.iter().fold((0, 0), |(r, p), a| (r + a.counter(0), p + a.counter(1)))
    }

    /// Detaches every program, reporting the first failure.
    pub fn detach(mut self) -> Result<(), SteerError> {
        let mut first = Ok(());
        for a in self.attached.drain(..) {
            if let Err(e) = a.detach() {
                first = first.and(Err(e));
            }
        }
        first
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        for a in self.attached.drain(..) {
            if let Err(e) = a.detach() {
                tracing::warn!("{e}");
            }
        }
    }
}

/// IP-in-IP decapsulation (`bpf/ipip_decap.bpf.c`) on a real server whose kernel has no ipip
/// module: strips the outer header of tunnelled frames to `local` and passes the inner packet
/// to the kernel. The program stays attached after this returns (`xvs decap --detach` or
/// `ip link set dev IFACE xdp off` removes it).
pub fn attach_decap(iface: &str, local: &[std::net::Ipv4Addr]) -> Result<XdpMode, SteerError> {
    let a = Attached::load_and_attach(DECAP_OBJ, "xvs_ipip_decap", iface, true, None)?;
    for ip in local {
        a.update("local", &ip.octets(), &[1])?;
    }
    Ok(a.mode)
}

/// A counting sink (UDP, TCP, IP-in-IP) on `iface` for benchmarks (`bpf/sink.bpf.c`); detached on drop.
pub struct Sink(Attached);

impl Sink {
    pub fn attach(iface: &str) -> Result<Sink, SteerError> {
        Ok(Sink(Attached::load_and_attach(SINK_OBJ, "xvs_sink", iface, true, None)?))
    }
    /// An XDP_TX reflector on `iface` instead (the veth's ceiling without AF_XDP): UDP
    /// frames back out, MACs swapped; [`Sink::count`] counts them.
    pub fn attach_reflector(iface: &str) -> Result<Sink, SteerError> {
        Ok(Sink(Attached::load_and_attach(SINK_OBJ, "xvs_reflect", iface, true, None)?))
    }
    /// Frames dropped (or, a reflector, sent back) so far.
    pub fn count(&self) -> u64 {
        self.0.counter(0) + self.0.counter(1)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.detach();
    }
}

/// Removes whatever XDP program is attached to `iface` (both modes).
pub fn detach_any(iface: &str) -> Result<(), SteerError> {
    let ifindex = ifindex(iface)?;
    let open = ObjectBuilder::default().open_memory(DECAP_OBJ).map_err(|e| SteerError::Load(e.to_string()))?;
    let obj = open.load().map_err(|e| SteerError::Load(e.to_string()))?;
    let p = obj.progs().find(|p| p.name() == "xvs_ipip_decap").ok_or_else(|| SteerError::Load("program".into()))?;
    let xdp = Xdp::new(p.as_fd());
    let _ = xdp.detach(ifindex, XdpFlags::DRV_MODE);
    let _ = xdp.detach(ifindex, XdpFlags::SKB_MODE);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::tables::TablesSpec;
    use crate::model::{Proto, RealServer, SchedKind, VirtualService};
    use std::net::Ipv4Addr;

    #[test]
    fn steer_set_holds_services_nat_servers_and_the_fullnat_local_range() {
        let server = |addr: [u8; 4], port, mode| RealServer {
            addr: Ipv4Addr::from(addr),
            port,
            weight: 1,
            mode,
            u_threshold: 0,
            l_threshold: 0,
        };
        let service = |proto, vip: [u8; 4], port, servers| VirtualService {
            servers,
            ..VirtualService::new(proto, Ipv4Addr::from(vip), port, SchedKind::Wlc)
        };
        let spec = TablesSpec {
            services: vec![
                service(
                    Proto::Tcp,
                    [198, 18, 0, 100],
                    80,
                    vec![server([198, 19, 0, 11], 8080, FwdMode::Nat), server([198, 19, 0, 12], 80, FwdMode::Dr)],
                ),
                service(Proto::Udp, [198, 18, 0, 101], 0, vec![server([198, 19, 0, 13], 0, FwdMode::FullNat)]),
            ],
            dip: u32::from_be_bytes([198, 19, 0, 1]),
            lport_range: (20000, 29999),
            ..TablesSpec::default()
        };
        let t = Tables::build(&spec, None).expect("tables");
        let s = SteerSet::from_tables(&t);
        let ip = |a: [u8; 4]| u32::from_be_bytes(a);
        assert_eq!(
            s.services.iter().copied().collect::<Vec<_>>(),
            [(6, ip([198, 18, 0, 100]), 80), (17, ip([198, 18, 0, 101]), 0)]
        );
        assert_eq!(s.vips.len(), 2);
        assert_eq!(
            s.nat_dests.iter().copied().collect::<Vec<_>>(),
            [(6, ip([198, 19, 0, 11]), 8080)],
            "DR servers send no replies through us"
        );
        assert_eq!(s.local.iter().copied().collect::<Vec<_>>(), [(ip([198, 19, 0, 1]), 20000, 29999)]);
        let key = l4_key(6, ip([198, 18, 0, 100]), 80);
        assert_eq!(key, [198, 18, 0, 100, 0, 80, 6, 0], "the C struct l4_key, network order");
    }

    #[test]
    fn map_contents_make_every_service_address_a_vip_and_set_its_filter_bit() {
        let ip = |a: [u8; 4]| u32::from_be_bytes(a);
        let mut set = SteerSet::default();
        // A service whose address `vips` does not list (a set built by hand).
        set.services.insert((17, ip([198, 18, 0, 101]), 0));
        set.vips.insert(ip([198, 18, 0, 100]));
        set.local.insert((ip([198, 18, 0, 100]), 20000, 29999));
        set.nat_dests.insert((6, ip([198, 19, 0, 11]), 8080));
        let maps = map_contents(&set);
        let get = |name: &str| maps.iter().find(|(m, _)| *m == name).map(|(_, e)| e.clone()).expect(name);
        let dst = get("dst_addrs");
        let value = |a: [u8; 4]| dst.iter().find(|(k, _)| k[..] == a).map(|(_, v)| v.clone());
        let (lo, hi) = (20000u16.to_ne_bytes(), 29999u16.to_ne_bytes());
        // struct dst_info: vip, pad, lo, hi.
        assert_eq!(value([198, 18, 0, 100]), Some(vec![1, 0, lo[0], lo[1], hi[0], hi[1]]), "a VIP and a local address");
        let mut vip_only = NO_LPORTS;
        vip_only[0] = 1;
        assert_eq!(value([198, 18, 0, 101]), Some(vip_only.to_vec()), "a service's address, not in vips");
        assert_eq!(dst.len(), 2);
        let filter = get("addr_filter");
        assert_eq!(filter.len(), 1);
        let words: Vec<u64> =
            filter[0].1.chunks(8).map(|c| u64::from_ne_bytes(c.try_into().expect("a word"))).collect();
        assert_eq!(words.len(), FILTER_BITS / 64);
        let has = |a: [u8; 4]| {
            let b = filter_bit(ip(a));
            words[b / 64] >> (b % 64) & 1 == 1
        };
        for a in [[198, 18, 0, 100], [198, 18, 0, 101], [198, 19, 0, 11]] {
            assert!(has(a), "{a:?} has its bit");
        }
        assert_eq!(words.iter().map(|w| w.count_ones()).sum::<u32>(), 3, "and nothing else");
        // The bit as the program computes it: the address's network-order bytes as a native
        // u32, times the constant, its top 16 bits.
        assert_eq!(
            filter_bit(ip([198, 18, 0, 100])),
            (u32::from_ne_bytes([198, 18, 0, 100]).wrapping_mul(0x9E37_79B1) >> 16) as usize
        );
        assert_eq!(get("nat_addrs"), vec![(vec![198, 19, 0, 11], vec![1])]);
        // The gates are written after the maps they gate.
        let order: Vec<&str> = maps.iter().map(|(m, _)| *m).collect();
        assert_eq!(order, ["hosts", "services", "nat_dests", "nat_addrs", "dst_addrs", "addr_filter"]);
    }
}
