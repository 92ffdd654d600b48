// SPDX-License-Identifier: (MIT OR Apache-2.0)
// IP-in-IP decapsulation for real servers whose kernel has no ipip module (`xvs decap`).
// Accepts what a Linux ipip tunnel accepts from the director: an outer IPv4 header (no
// fragment, protocol 4, valid header checksum) addressed to a local address set in `local`
// and an inner IPv4 packet; strips the outer header and hands the inner packet to the kernel.
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} local SEC(".maps");

/* counters: 0 decapsulated, 1 bad outer header (dropped) */

static __always_inline __u16 csum_ok(struct iphdr *ip, void *end)
{
	__u32 sum = 0;
	__u16 *w = (__u16 *)ip;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

SEC("xdp")
int xvs_ipip_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *outer = ipv4_header(ctx);
	if (!outer || outer->protocol != IPPROTO_IPIP)
		return XDP_PASS;
	__u32 d = outer->daddr;
	if (!bpf_map_lookup_elem(&local, &d))
		return XDP_PASS;
	/* Options in the outer header are not produced by the director. */
	if (outer->version != 4 || outer->ihl != 5 || (outer->frag_off & bpf_htons(0x3fff)) ||
	    !csum_ok(outer, end))
		return count(1, XDP_DROP);
	struct iphdr *inner = outer + 1;
	if ((void *)(inner + 1) > end || inner->version != 4)
		return count(1, XDP_DROP);
	struct ethhdr copy = *eth;
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct iphdr)))
		return count(1, XDP_DROP);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return count(1, XDP_DROP);
	*eth = copy;
	return count(0, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
