//! The MACs of clients on the director's own links, learned from their frames.
//!
//! A NAT or FULLNAT reply to a client on a connected subnet must go to the client's own MAC,
//! as the kernel's neighbour resolution would send it, not to the gateway. The kernel never
//! sees these clients (their frames go to the workers), so the worker learns each one's MAC
//! from the frames it sends to a service, on the port and VLAN its subnet is on. A fixed
//! table (no allocation after start): a key hashes to a window of [`WAYS`] slots; a new
//! client takes a free slot of its window, else the one heard from longest ago.
//!
//! Anyone on the link can claim an address by sending frames from it, as with ARP: the
//! director believes the link as the kernel believes ARP.

use crate::wire::MacAddr;

/// Clients remembered per worker.
pub const CAPACITY: usize = 16384;
/// Slots a client may live in.
pub const WAYS: usize = 4;

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// 0: empty (0.0.0.0 is never a client).
    addr: u32,
    mac: MacAddr,
    port: u8,
    vlan: u16,
    /// When a frame from it was last seen (ms).
    seen_ms: u64,
}

/// One worker's learned on-link clients.
pub struct OnLink {
    slots: Box<[Entry]>,
}

impl Default for OnLink {
    fn default() -> Self {
        OnLink { slots: vec![Entry::default(); CAPACITY].into_boxed_slice() }
    }
}

/// Learning an entry again within this time only when something changed: the common frame
/// writes nothing.
const REFRESH_MS: u64 = 1000;

impl OnLink {
    #[inline]
    fn window(addr: u32) -> usize {
        ((addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 50) as usize & (CAPACITY - 1)
    }

    /// Remembers that `addr` is at `mac` on (`port`, `vlan`).
    #[inline]
    pub fn learn(&mut self, addr: u32, mac: MacAddr, port: u8, vlan: u16, now_ms: u64) {
        if addr == 0 {
            return;
        }
        let w = Self::window(addr);
        let mut victim = w;
        for i in 0..WAYS {
            let at = (w + i) & (CAPACITY - 1);
            let e = &self.slots[at];
            if e.addr == addr {
                if e.mac == mac && e.port == port && e.vlan == vlan && now_ms < e.seen_ms + REFRESH_MS {
                    return;
                }
                victim = at;
                break;
            }
            if e.addr == 0 {
                victim = at;
                break;
            }
            if e.seen_ms < self.slots[victim].seen_ms {
                victim = at;
            }
        }
        self.slots[victim] = Entry { addr, mac, port, vlan, seen_ms: now_ms };
    }

    /// The MAC, port and VLAN `addr` was last heard from.
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<(MacAddr, u8, u16)> {
        let w = Self::window(addr);
        (0..WAYS)
            .map(|i| &self.slots[(w + i) & (CAPACITY - 1)])
            .find(|e| e.addr == addr && addr != 0)
            .map(|e| (e.mac, e.port, e.vlan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_learned_moved_and_the_longest_silent_make_room() {
        let mut t = OnLink::default();
        let m = |b: u8| MacAddr([2, 0, 0, 0, 0, b]);
        assert_eq!(t.lookup(0xC612_0502), None);
        t.learn(0xC612_0502, m(1), 1, 0, 10);
        assert_eq!(t.lookup(0xC612_0502), Some((m(1), 1, 0)));
        // A new MAC (a replaced NIC, a failover) is followed at once.
        t.learn(0xC612_0502, m(2), 1, 100, 11);
        assert_eq!(t.lookup(0xC612_0502), Some((m(2), 1, 100)));
        // Many clients: every one learned now is found, at most CAPACITY are kept.
        for a in 1..=(2 * CAPACITY as u32) {
            t.learn(0x0A00_0000 + a, m(3), 0, 0, 1000 + a as u64);
        }
        assert_eq!(t.lookup(0x0A00_0000 + 2 * CAPACITY as u32), Some((m(3), 0, 0)));
        let kept = (1..=(2 * CAPACITY as u32)).filter(|a| t.lookup(0x0A00_0000 + a).is_some()).count();
        assert!(kept <= CAPACITY && kept > CAPACITY / 2, "{kept}");
        t.learn(0, m(4), 0, 0, 5);
        assert_eq!(t.lookup(0), None, "0.0.0.0 is nobody");
    }
}
