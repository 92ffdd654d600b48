// SPDX-License-Identifier: (MIT OR Apache-2.0)
// Benchmark programs: a counting packet sink (`xvs-bench sink`) that drops IPv4 UDP, TCP and
// IP-in-IP frames and counts them, and an XDP_TX reflector; everything else (ARP above all) goes to the kernel.
#include "common.h"

/* counters: 0 frames the sink dropped, 1 frames the reflector sent back */

SEC("xdp")
int xvs_sink(struct xdp_md *ctx)
{
	struct iphdr *ip = ipv4_header(ctx);
	/* UDP, TCP (SYN floods) and IP-in-IP (what a TUN director sends). */
	if (!ip || (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_IPIP))
		return XDP_PASS;
	return count(0, XDP_DROP);
}

/* The veth's XDP_TX ceiling (`xvs-bench reflect-xdp`): IPv4 UDP frames go back out of the
 * interface they came in on, MACs swapped, counted in counter 1; the rest to the kernel. */
SEC("xdp")
int xvs_reflect(struct xdp_md *ctx)
{
	struct iphdr *ip = ipv4_header(ctx);
	if (!ip || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	struct ethhdr *eth = (void *)(long)ctx->data;
	unsigned char tmp[ETH_ALEN];
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return count(1, XDP_TX);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
