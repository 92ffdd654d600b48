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

struct lport_range {
	__u16 lo;     /* host order, inclusive */
	__u16 hi;
};

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
	__type(key, __u32);
	__type(value, __u8);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct l4_key);
	__type(value, __u8);
} nat_dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct lport_range);
} local_addrs SEC(".maps");

/* Addresses of NAT real servers (any port): their replies' later fragments carry no ports. */
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
	if (has(&services, q->saddr, qp[0], q->protocol) || has(&services, q->saddr, 0, q->protocol))
		return redirect(ctx);
	/* About what a NAT server was sent, unless the host sent it (health checks). */
	__u32 qsrc = q->saddr;
	if (has(&nat_dests, q->daddr, qp[1], q->protocol) && !bpf_map_lookup_elem(&hosts, &qsrc))
		return redirect(ctx);
	__u32 qs = q->saddr;
	struct lport_range *r = bpf_map_lookup_elem(&local_addrs, &qs);
	if (r) {
		__u16 p = bpf_ntohs(qp[0]);
		if (p >= r->lo && p <= r->hi)
			return redirect(ctx);
	}
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
		if (bpf_map_lookup_elem(&vips, &d))
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
	if (has(&services, ip->daddr, dport, ip->protocol))
		return redirect(ctx);
	__u32 d = ip->daddr;
	/* The hosts lookup only for frames from a NAT server: other frames do not pay it. */
	if (has(&nat_dests, ip->saddr, sport, ip->protocol) && !bpf_map_lookup_elem(&hosts, &d))
		return redirect(ctx);
	struct lport_range *r = bpf_map_lookup_elem(&local_addrs, &d);
	if (r) {
		__u16 p = bpf_ntohs(dport);
		if (p >= r->lo && p <= r->hi)
			return redirect(ctx);
	}
	return count(1, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
