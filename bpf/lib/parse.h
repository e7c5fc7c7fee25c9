/* Packet parsing into a flow: bounds-checked direct packet access. */
#ifndef CILIUM_PARSE_H
#define CILIUM_PARSE_H

#include "common.h"

#define PARSE_OK 0
#define PARSE_NOT_IP 1
#define PARSE_DROP -1
#define IPV6_MAX_EXT_HEADERS 4

/* ICMPv6 neighbour discovery and router messages: never subject to policy. */
static __always_inline int icmp6_is_nd(__u8 type)
{
	return type >= 133 && type <= 137;
}

static __always_inline int icmp4_is_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

static __always_inline int icmp6_is_error(__u8 type)
{
	return type >= 1 && type <= 4;
}

static __always_inline void v4_mapped(__u8 *dst, __be32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

/* Fills ports (or ICMP id and type) from the L4 header at l4; ports stay 0 when absent. */
static __always_inline int parse_l4(void *l4, void *end, struct flow *f, __u8 *icmp_type)
{
	if (f->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end)
			return PARSE_DROP;
		f->sport = th->source;
		f->dport = th->dest;
		f->tcp_flags = ((__u8 *)th)[13];
	} else if (f->proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > end)
			return PARSE_DROP;
		f->sport = uh->source;
		f->dport = uh->dest;
	} else if (f->proto == IPPROTO_ICMP || f->proto == IPPROTO_ICMPV6) {
		struct icmphdr *ih = l4;
		if ((void *)((__u8 *)ih + 8) > end)
			return PARSE_DROP;
		*icmp_type = ih->type;
		/* Echo request and reply share the identifier: it serves as both ports. */
		f->sport = ih->un.echo.id;
		f->dport = ih->un.echo.id;
	}
	return PARSE_OK;
}

/*
 * Parses Ethernet + IPv4/IPv6 + L4. Returns PARSE_NOT_IP for non-IP frames,
 * with *eth_proto set; *icmp_type is 0xff unless the packet is ICMP.
 */
static __always_inline int parse_flow(struct __sk_buff *skb, struct flow *f, __u16 *eth_proto, __u8 *icmp_type)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	*icmp_type = 0xff;
	if ((void *)(eth + 1) > end)
		return PARSE_DROP;
	*eth_proto = bpf_ntohs(eth->h_proto);
	if (*eth_proto == ETH_P_IP) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return PARSE_DROP;
		f->family = 4;
		f->proto = ip->protocol;
		v4_mapped(f->saddr, ip->saddr);
		v4_mapped(f->daddr, ip->daddr);
		/* Later fragments carry no L4 header: they match port-less policy only. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return PARSE_OK;
		return parse_l4((__u8 *)ip + ip->ihl * 4, end, f, icmp_type);
	}
	if (*eth_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		__u8 *l4;
		if ((void *)(ip6 + 1) > end)
			return PARSE_DROP;
		f->family = 6;
		f->proto = ip6->nexthdr;
		__builtin_memcpy(f->saddr, &ip6->saddr, 16);
		__builtin_memcpy(f->daddr, &ip6->daddr, 16);
		l4 = (__u8 *)(ip6 + 1);
		/* Skip extension headers (MLD reports carry hop-by-hop) to reach the L4 header. */
#pragma unroll
		for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
			if (f->proto == IPPROTO_FRAGMENT) {
				if (l4 + 8 > (__u8 *)end)
					return PARSE_DROP;
				f->proto = l4[0];
				/* Later fragments carry no L4 header: port-less policy only. */
				if ((l4[2] << 8 | l4[3]) & 0xfff8)
					return PARSE_OK;
				l4 += 8;
			} else if (f->proto == IPPROTO_HOPOPTS || f->proto == IPPROTO_ROUTING || f->proto == IPPROTO_DSTOPTS) {
				if (l4 + 2 > (__u8 *)end)
					return PARSE_DROP;
				f->proto = l4[0];
				l4 += (l4[1] + 1) * 8;
			}
		}
		if (f->proto == IPPROTO_HOPOPTS || f->proto == IPPROTO_ROUTING || f->proto == IPPROTO_DSTOPTS ||
		    f->proto == IPPROTO_FRAGMENT)
			return PARSE_DROP; /* more extension headers than we walk: refuse rather than guess */
		return parse_l4(l4, end, f, icmp_type);
	}
	return PARSE_NOT_IP;
}

static __always_inline void flow_reverse(const struct flow *in, struct flow *out)
{
	__builtin_memcpy(out->saddr, in->daddr, 16);
	__builtin_memcpy(out->daddr, in->saddr, 16);
	out->sport = in->dport;
	out->dport = in->sport;
	out->proto = in->proto;
	out->family = in->family;
	out->tcp_flags = 0;
	out->pad = 0;
}

#endif
