//! A connection as the control plane lists it (`ipvsadm -L -c`).

/// One connection or persistence template as `ipvsadm -c` lists it (control path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnEntry {
    pub proto: u8,
    /// [`TcpState`] as u8, or [`UDP_STATE`].
    pub state: u8,
    pub template: bool,
    pub expires_s: u32,
    pub client: (std::net::Ipv4Addr, u16),
    pub virt: (std::net::Ipv4Addr, u16),
    pub dest: (std::net::Ipv4Addr, u16),
}
