// SPDX-License-Identifier: (MIT OR Apache-2.0)
// xvs steering program: redirects to the queue's AF_XDP socket only the frames the director
// must handle, and passes everything else (ARP, ICMP to the host, SSH, ...) to the kernel.
//
// Director frames are:
//   - TCP/UDP to a virtual service (VIP:port, or VIP with a port-0 service);
//   - any IPv4 fragment to a VIP (the director counts and drops them: the kernel, which holds
//     the VIP, must not answer for a service);
//   - NAT replies: TCP/UDP from a NAT real server's (addr, port) (port 0: any port) to an
//     address that is not the director's own (replies to the director's own connections,
//     such as health checks, are the kernel's);
//   - FULLNAT replies: TCP/UDP to a director local address on a port in its local-port range.
// Frames with one 802.1Q tag are judged by what they carry, as untagged ones (the workers take
// the tag out and tag what they send for the VLAN it leaves on).
// The control plane fills the maps and updates them at runtime.
#include "common.h"

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

/* The IPv4 header of an Ethernet frame, untagged or with one 802.1Q tag, with at least a
 * fixed IPv4 header; else NULL. */
static __always_inline struct iphdr *ipv4_header_vlan(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return 0;
	void *l3 = eth + 1;
	__be16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_tag *v = l3;
		if ((void *)(v + 1) > end)
			return 0;
		proto = v->proto;
		l3 = v + 1;
	}
	if (proto != bpf_htons(ETH_P_IP))
		return 0;
	struct iphdr *ip = l3;
	if ((void *)(ip + 1) > end)
		return 0;
	return ip;
}

struct l4_key {
	__u32 addr;   /* network order */
	__u16 port;   /* network order; 0 = any */
	__u8 proto;
	__u8 pad;
};

struct dst_info {
	__u8 vip;     /* 1: a live service's VIP */
	__u8 pad;
	__u16 lo;     /* FULLNAT local-port range, host order, inclusive; lo > hi: none */
	__u16 hi;
};

static __always_inline int in_lports(struct dst_info *di, __u16 port)
{
	__u16 p = bpf_ntohs(port);
	return p >= di->lo && p <= di->hi;
}

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct l4_key);
	__type(value, __u8);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct l4_key);
	__type(value, __u8);
} nat_dests SEC(".maps");

/* Destination addresses that may be the director's: a live service's VIP and a FULLNAT local
 * address (with its local-port range). The services map is read only for frames to a VIP. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	/* Not preallocated: an element replaced or deleted is freed only after the programs
	 * reading it are done (RCU), never handed to another address under them. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536 + 256);
	__type(key, __u32);
	__type(value, struct dst_info);
} dst_addrs SEC(".maps");

/* Addresses of NAT real servers (any port): their replies' later fragments carry no ports, and
 * a frame from any other address is no NAT reply without a look at nat_dests. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} nat_addrs SEC(".maps");

/* The director's own addresses. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} hosts SEC(".maps");

/* A bitmap of every address above (VIPs, FULLNAT local addresses, NAT real servers), one bit
 * by a multiplicative hash of the address: a frame whose destination and source bits are both
 * clear is for none of them, and costs this one array lookup (which the JIT inlines) before it
 * goes to the kernel. A bit set by another address only sends the frame on to the exact maps. */
#define FILTER_BITS 65536
struct addr_filter {
	__u64 w[FILTER_BITS / 64];
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct addr_filter);
} addr_filter SEC(".maps");

/* The address's bit (network-order address as loaded; `filter_bit` in steer.rs). */
static __always_inline int filter_has(struct addr_filter *f, __u32 addr)
{
	__u32 b = (addr * 0x9E3779B1u) >> 16;
	return (f->w[b / 64] >> (b % 64)) & 1;
}

/* Settings the control plane writes: bit 0 = ICMP errors about connections go to the workers
 * (director.icmp_relay; 0, before the first sync, leaves them to the kernel); bit 1 = hold:
 * director frames whose queue has no socket are dropped instead of passed (while xvs starts,
 * and across a hitless restart, the kernel, which holds the VIP, must not answer a
 * connection's segments with a reset: dropped, they are retransmitted to the next run). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} settings SEC(".maps");

/* counters: 0 redirected, 1 passed */

static __always_inline int redirect(struct xdp_md *ctx)
{
	count(0, 0);
	/* No socket on this queue: the kernel gets the frame (XDP_PASS as the default), or
	 * nobody while holding. */
	__u32 zero = 0;
	__u32 *set = bpf_map_lookup_elem(&settings, &zero);
	__u64 fallback = (set && (*set & 2)) ? XDP_DROP : XDP_PASS;
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, fallback);
}

static __always_inline int has(void *map, __u32 addr, __u16 port, __u8 proto)
{
	struct l4_key k = { .addr = addr, .port = port, .proto = proto, .pad = 0 };
	if (bpf_map_lookup_elem(map, &k))
		return 1;
	k.port = 0;
	return bpf_map_lookup_elem(map, &k) != 0;
}

/* ICMP errors (unreachable, time exceeded, parameter problem) about a connection's packets go
 * to the workers, which relay them; everything else ICMP (pings, errors about the host's own
 * traffic) is the kernel's. The quoted packet tells: from a service (VIP:vport, an error about
 * what a client was sent), to a NAT server (about what it was sent), or from a FULLNAT local
 * port (about what a FULLNAT server was sent). */
static __always_inline int steer_icmp(struct xdp_md *ctx, struct iphdr *ip, void *end)
{
	__u32 zero = 0;
	__u32 *set = bpf_map_lookup_elem(&settings, &zero);
	if (!set || !(*set & 1))
		return count(1, XDP_PASS);
	__u8 *icmp = (void *)ip + ip->ihl * 4;
	if ((void *)(icmp + 8 + sizeof(struct iphdr)) > end)
		return count(1, XDP_PASS);
	if (icmp[0] != 3 && icmp[0] != 11 && icmp[0] != 12)
		return count(1, XDP_PASS);
	struct iphdr *q = (void *)(icmp + 8);
	if (q->ihl < 5 || (q->protocol != IPPROTO_TCP && q->protocol != IPPROTO_UDP))
		return count(1, XDP_PASS);
	__u16 *qp = (void *)q + q->ihl * 4;
	/* 8 bytes of the quoted transport header, as the workers need. */
	if ((void *)(qp + 4) > end)
		return count(1, XDP_PASS);
	__u32 qs = q->saddr, qd = q->daddr;
	struct dst_info *qi = bpf_map_lookup_elem(&dst_addrs, &qs);
	if (qi) {
		/* From a service (what a client was sent), or from a FULLNAT local port. */
		if (qi->vip && has(&services, qs, qp[0], q->protocol))
			return redirect(ctx);
		if (in_lports(qi, qp[0]))
			return redirect(ctx);
	}
	/* About what a NAT server was sent, unless the host sent it (health checks). */
	if (bpf_map_lookup_elem(&nat_addrs, &qd) && has(&nat_dests, qd, qp[1], q->protocol) &&
	    !bpf_map_lookup_elem(&hosts, &qs))
		return redirect(ctx);
	return count(1, XDP_PASS);
}

SEC("xdp")
int xvs_steer(struct xdp_md *ctx)
{
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *ip = ipv4_header_vlan(ctx);
	if (!ip || ip->version != 4 || ip->ihl < 5)
		return count(1, XDP_PASS);
	if (ip->frag_off & bpf_htons(0x3fff)) {
		__u32 d = ip->daddr, sa = ip->saddr;
		struct dst_info *di = bpf_map_lookup_elem(&dst_addrs, &d);
		if (di && di->vip)
			return redirect(ctx);
		/* A later fragment has no ports: a NAT server's TCP/UDP to an address not the
		 * host's (a reply) goes to the workers, which follow its first fragment's decision.
		 * Later fragments to the DIP stay the kernel's (the host's own traffic uses it too). A
		 * first fragment has its ports: the rules below decide it. */
		if (ip->frag_off & bpf_htons(0x1fff)) {
			if ((ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) &&
			    bpf_map_lookup_elem(&nat_addrs, &sa) && !bpf_map_lookup_elem(&hosts, &d))
				return redirect(ctx);
			return count(1, XDP_PASS);
		}
	}
	if (ip->protocol == IPPROTO_ICMP)
		return steer_icmp(ctx, ip, end);
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return count(1, XDP_PASS);
	/* Source and destination ports sit at the same offsets in TCP and UDP. */
	__u16 *ports = (void *)ip + ip->ihl * 4;
	if ((void *)(ports + 2) > end)
		return count(1, XDP_PASS);
	__u16 sport = ports[0], dport = ports[1];
	__u32 d = ip->daddr, sa = ip->saddr, zero = 0;
	struct addr_filter *f = bpf_map_lookup_elem(&addr_filter, &zero);
	if (!f)
		return count(1, XDP_PASS);
	if (filter_has(f, d)) {
		/* A service's own port first: most of the director's frames, one lookup. */
		struct l4_key k = { .addr = d, .port = dport, .proto = ip->protocol, .pad = 0 };
		if (bpf_map_lookup_elem(&services, &k))
			return redirect(ctx);
		struct dst_info *di = bpf_map_lookup_elem(&dst_addrs, &d);
		if (di) {
			/* A port-0 service of this VIP, or a FULLNAT local port. */
			k.port = 0;
			if (di->vip && bpf_map_lookup_elem(&services, &k))
				return redirect(ctx);
			if (in_lports(di, dport))
				return redirect(ctx);
		}
	}
	/* A NAT server's reply, unless it is to the director itself. */
	if (filter_has(f, sa) && bpf_map_lookup_elem(&nat_addrs, &sa) &&
	    has(&nat_dests, sa, sport, ip->protocol) && !bpf_map_lookup_elem(&hosts, &d))
		return redirect(ctx);
	return count(1, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
