/* What the host's router does to a packet it forwards, for the paths that go around it. */
#ifndef CILIUM_ROUTE_H
#define CILIUM_ROUTE_H

#include "parse.h"

/*
 * One hop less (TTL / hop limit, with the IPv4 checksum). Returns 0 when the
 * packet must rather go to the stack, which answers Time Exceeded.
 */
static __always_inline int hop_decrement(struct __sk_buff *skb, const struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (f->family == 4) {
		struct iphdr *ip = data + ETH_HLEN;
		__u16 old, new;

		if ((void *)(ip + 1) > end || ip->ttl <= 1)
			return 0;
		old = *(__u16 *)&ip->ttl;
		ip->ttl--;
		new = *(__u16 *)&ip->ttl;
		return bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old, new, 2) == 0;
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > end || ip6->hop_limit <= 1)
			return 0;
		ip6->hop_limit--;
		return 1;
	}
}

/*
 * The device the host's routes send f out of (bpf_redirect_neigh resolves
 * the next hop's MAC itself). Returns 0 when there is none to go around
 * the stack with.
 */
static __always_inline int fib_egress(struct __sk_buff *skb, const struct flow *f, __u32 *ifindex)
{
	struct bpf_fib_lookup fib = { .ifindex = skb->ifindex };
	int rc;

	if (f->family == 4) {
		fib.family = 2; /* AF_INET */
		fib.ipv4_src = *(__be32 *)(f->saddr + 12);
		fib.ipv4_dst = *(__be32 *)(f->daddr + 12);
	} else {
		fib.family = 10; /* AF_INET6 */
		__builtin_memcpy(fib.ipv6_src, f->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, f->daddr, 16);
	}
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return 0;
	*ifindex = fib.ifindex;
	return 1;
}

#endif
