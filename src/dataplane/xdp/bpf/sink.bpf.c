// SPDX-License-Identifier: (MIT OR Apache-2.0)
// A counting packet sink for benchmarks (`xvs-bench sink`): drops IPv4 UDP frames and counts
// them; passes everything else (ARP above all) to the kernel.
#include "common.h"

/* counters: 0 dropped UDP frames */

SEC("xdp")
int xvs_sink(struct xdp_md *ctx)
{
	struct iphdr *ip = ipv4_header(ctx);
	if (!ip || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	return count(0, XDP_DROP);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
