/* Packet parsing into a flow: bounds-checked direct packet access. */
#ifndef CILIUM_PARSE_H
#define CILIUM_PARSE_H

#include "common.h"
#include "frag.h"

#define PARSE_OK 0
#define PARSE_NOT_IP 1
#define PARSE_DROP -1
#define PARSE_FRAG_NOT_FOUND -2
#define IPV6_MAX_EXT_HEADERS 4
/* Enough for Ethernet, IPv4 with options or IPv6 with two extension headers, and TCP's flags. */
#define PULL_LEN 128

#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

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

static __always_inline int icmp_is_error(const struct flow *f, __u8 type)
{
	return (f->proto == IPPROTO_ICMP && icmp4_is_error(type)) || (f->proto == IPPROTO_ICMPV6 && icmp6_is_error(type));
}

static __always_inline int icmp_is_echo_reply(const struct flow *f, __u8 type)
{
	return (f->proto == IPPROTO_ICMP && type == ICMP_ECHOREPLY) ||
	       (f->proto == IPPROTO_ICMPV6 && type == ICMPV6_ECHO_REPLY);
}

static __always_inline void v4_mapped(__u8 *dst, __be32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

/*
 * ICMP has no ports. An echo request is keyed (id, 0) and its reply (0, id),
 * so a reply reversed is its request and nothing else: a request from the
 * other side never matches a request this side sent.
 */
static __always_inline void icmp_ports(struct flow *f, __u8 type, __be16 id)
{
	int v4 = f->proto == IPPROTO_ICMP;

	f->sport = 0;
	f->dport = 0;
	if (type == (v4 ? ICMP_ECHO : ICMPV6_ECHO_REQUEST))
		f->sport = id;
	else if (type == (v4 ? ICMP_ECHOREPLY : ICMPV6_ECHO_REPLY))
		f->dport = id;
}

/* Fills ports (ICMP: see icmp_ports) from the L4 header at l4; ports stay 0 when absent. */
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
		struct icmp_hdr *ih = l4;
		if ((void *)(ih + 1) > end)
			return PARSE_DROP;
		*icmp_type = ih->type;
		icmp_ports(f, ih->type, ih->id);
	}
	return PARSE_OK;
}

/*
 * Parses Ethernet + IPv4/IPv6 + L4. Returns PARSE_NOT_IP for non-IP frames,
 * with *eth_proto set; *icmp_type is 0xff unless the packet is ICMP; *l4_off
 * is the L4 header's offset from the start of the frame. A function of its
 * own (a BPF subprogram): parse_flow_pulled calls it twice, and inlined twice
 * it would not fit the 512-byte stack.
 */
static __attribute__((noinline)) int parse_flow(struct __sk_buff *skb, struct flow *f, __u16 *eth_proto,
						 __u8 *icmp_type, __u32 *l4_off)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	int r;

	*icmp_type = 0xff;
	if ((void *)(eth + 1) > end)
		return PARSE_DROP;
	*eth_proto = bpf_ntohs(eth->h_proto);
	if (*eth_proto == ETH_P_IP) {
		struct iphdr *ip = (void *)(eth + 1);
		__u16 frag;
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return PARSE_DROP;
		f->family = 4;
		f->proto = ip->protocol;
		v4_mapped(f->saddr, ip->saddr);
		v4_mapped(f->daddr, ip->daddr);
		frag = bpf_ntohs(ip->frag_off);
		*l4_off = ETH_HLEN + ip->ihl * 4;
		if (frag & 0x1fff) /* a later fragment: its first one's ports */
			return frag_ports_lookup(f, bpf_ntohs(ip->id)) ? PARSE_OK : PARSE_FRAG_NOT_FOUND;
		r = parse_l4((__u8 *)ip + ip->ihl * 4, end, f, icmp_type);
		if (r == PARSE_OK && (frag & 0x2000))
			frag_ports_store(f, bpf_ntohs(ip->id));
		return r;
	}
	if (*eth_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		__u32 frag_id = 0;
		int first_frag = 0;
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
				__builtin_memcpy(&frag_id, l4 + 4, 4);
				if ((l4[2] << 8 | l4[3]) & 0xfff8) {
					*l4_off = l4 + 8 - (__u8 *)data;
					return frag_ports_lookup(f, frag_id) ? PARSE_OK : PARSE_FRAG_NOT_FOUND;
				}
				first_frag = l4[3] & 1;
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
		*l4_off = l4 - (__u8 *)data;
		r = parse_l4(l4, end, f, icmp_type);
		if (r == PARSE_OK && first_frag)
			frag_ports_store(f, frag_id);
		return r;
	}
	return PARSE_NOT_IP;
}

/*
 * The flow an ICMP error quotes (the packet it reports on, as it was sent),
 * read from the message's payload at l4_off + 8. Returns 0 when unreadable.
 */
static __always_inline int parse_quoted_flow(struct __sk_buff *skb, const struct flow *outer, __u32 l4_off,
					     struct flow *q)
{
	__u32 off = l4_off + 8;
	__u8 l4[8];

	q->family = outer->family;
	if (outer->family == 4) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0 || ip.ihl < 5)
			return 0;
		q->proto = ip.protocol;
		v4_mapped(q->saddr, ip.saddr);
		v4_mapped(q->daddr, ip.daddr);
		off += ip.ihl * 4;
	} else {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) < 0)
			return 0;
		q->proto = ip6.nexthdr;
		__builtin_memcpy(q->saddr, &ip6.saddr, 16);
		__builtin_memcpy(q->daddr, &ip6.daddr, 16);
		off += sizeof(ip6);
	}
	/* RFC 792 and 4443 quote at least the first 8 bytes of the L4 header. */
	if (bpf_skb_load_bytes(skb, off, l4, sizeof(l4)) < 0)
		return 0;
	if (q->proto == IPPROTO_TCP || q->proto == IPPROTO_UDP) {
		__builtin_memcpy(&q->sport, l4, 2);
		__builtin_memcpy(&q->dport, l4 + 2, 2);
		return 1;
	}
	if (q->proto == IPPROTO_ICMP || q->proto == IPPROTO_ICMPV6) {
		__be16 id;
		__builtin_memcpy(&id, l4 + 4, 2);
		icmp_ports(q, l4[0], id);
		return 1;
	}
	return 0;
}

/*
 * parse_flow, and when the headers run past the linear area (a paged skb),
 * once more after pulling them in: such a packet is parsed, not dropped.
 * Invalidates packet pointers taken before.
 */
static __always_inline int parse_flow_pulled(struct __sk_buff *skb, struct flow *f, __u16 *eth_proto,
					     __u8 *icmp_type, __u32 *l4_off)
{
	int r = parse_flow(skb, f, eth_proto, icmp_type, l4_off);
	__u32 want = skb->len < PULL_LEN ? skb->len : PULL_LEN;

	if (r != PARSE_DROP || (long)skb->data_end - (long)skb->data >= (long)want)
		return r;
	if (bpf_skb_pull_data(skb, want) < 0)
		return r;
	__builtin_memset(f, 0, sizeof(*f));
	return parse_flow(skb, f, eth_proto, icmp_type, l4_off);
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
