/*
 * Masquerade: endpoint traffic leaving the host through one of the agent's
 * devices takes that device's address and a port of its own (source NAT),
 * and the replies are translated back at the device's ingress. Both ways
 * the packet goes around the host's routing and netfilter (Docker's FORWARD
 * policy of DROP does not apply), as Cilium's BPF masquerading does.
 */
#ifndef CILIUM_NAT_H
#define CILIUM_NAT_H

#include "conntrack.h"
#include "maps.h"
#include "parse.h"
#include "route.h"

#define NAT_TRIES 32

/*
 * A translation lives as long as its connection: refreshed by each packet
 * either way, short once a TCP connection starts closing (and from then on),
 * so that closed connections give their ports back soon.
 */
static __always_inline void nat_refresh(struct nat_entry *e, const struct flow *f, __u32 now)
{
	__u32 life = CT_LIFETIME_NONTCP;

	if (f->proto == IPPROTO_TCP) {
		if (f->tcp_flags & (TCP_F_FIN | TCP_F_RST))
			e->flags |= NAT_F_CLOSING;
		if (e->flags & NAT_F_CLOSING)
			life = CT_LIFETIME_CLOSE;
		else
			life = (f->tcp_flags & (TCP_F_SYN | TCP_F_ACK)) == TCP_F_SYN ? CT_LIFETIME_SYN : CT_LIFETIME_TCP;
	}
	e->expires = now + life;
}

static __always_inline void nat_key_of(struct nat_key *k, const struct flow *f, __u8 dir)
{
	__builtin_memcpy(&k->tuple, f, sizeof(*f));
	k->tuple.tcp_flags = 0;
	k->tuple.pad = 0;
	k->dir = dir;
}

/* The cluster's own ranges and --masquerade-exclude (cilium_nat_exclude): never masqueraded. */
static __always_inline int nat_excluded(const struct flow *f)
{
	struct ipcache_key k = { .prefixlen = 128 };

	__builtin_memcpy(k.addr, f->daddr, 16);
	return bpf_map_lookup_elem(&cilium_nat_exclude, &k) != 0;
}

/*
 * Whether a packet leaving through the device with ifindex is masqueraded,
 * and with which address (16 bytes, IPv4 mapped): not through devices the
 * agent does not masquerade on (or, with --enable-masquerade=false, any).
 */
static __always_inline int nat_source_for(const struct flow *f, __u32 ifindex, __u8 *out)
{
	struct nat_device *dev = bpf_map_lookup_elem(&cilium_nat_dev, &ifindex);

	if (!dev)
		return 0;
	if (f->family == 4) {
		if (!dev->ipv4[0] && !dev->ipv4[1] && !dev->ipv4[2] && !dev->ipv4[3])
			return 0;
		v4_mapped(out, *(__be32 *)dev->ipv4);
		return 1;
	}
	__builtin_memcpy(out, dev->ipv6, 16);
	return out[0] != 0;
}

/*
 * The translated source port (ICMP echo: identifier) of an outgoing flow,
 * its translation found or made: a free port of the range for this remote
 * address, port and protocol, claimed by inserting the reply direction's
 * entry first. Returns 0 when every port tried is taken.
 */
static __always_inline int nat_port_for(const struct flow *f, const __u8 *to, __be16 *port, __u32 now)
{
	struct nat_key fwd = {}, rev = {};
	struct nat_entry *e, back = {}, there = {};
	/* The agent sets the range beside the host's ephemeral ports, so no local socket takes these. */
	__u32 min = datapath_config.nat_port_min;
	__u32 range = datapath_config.nat_port_max - min + 1;
	__u32 start = bpf_get_prandom_u32();

	/* The reply as it will arrive: from the remote, to our address and port. */
	rev.dir = DIR_INGRESS;
	rev.tuple.family = f->family;
	rev.tuple.proto = f->proto;
	__builtin_memcpy(rev.tuple.saddr, f->daddr, 16);
	__builtin_memcpy(rev.tuple.daddr, to, 16);
	rev.tuple.sport = f->dport;

	nat_key_of(&fwd, f, DIR_EGRESS);
	e = bpf_map_lookup_elem(&cilium_snat, &fwd);
	if (e) {
		nat_refresh(e, f, now);
		*port = e->port;
		rev.tuple.dport = e->port;
		e = bpf_map_lookup_elem(&cilium_snat, &rev);
		if (e)
			nat_refresh(e, f, now);
		return 1;
	}
	__builtin_memcpy(back.addr, f->saddr, 16);
	back.port = f->sport;
	nat_refresh(&back, f, now);
	for (int i = 0; i < NAT_TRIES; i++) {
		rev.tuple.dport = bpf_htons(min + (start + i) % range);
		if (bpf_map_update_elem(&cilium_snat, &rev, &back, BPF_NOEXIST)) {
			e = bpf_map_lookup_elem(&cilium_snat, &rev);
			if (!e || e->expires >= now)
				continue;
			/* a translation past its lifetime: the port is free again */
			if (bpf_map_update_elem(&cilium_snat, &rev, &back, BPF_ANY))
				continue;
		}
		__builtin_memcpy(there.addr, to, 16);
		there.port = rev.tuple.dport;
		there.flags = back.flags;
		there.expires = back.expires;
		if (bpf_map_update_elem(&cilium_snat, &fwd, &there, BPF_ANY)) {
			bpf_map_delete_elem(&cilium_snat, &rev);
			return 0;
		}
		*port = rev.tuple.dport;
		return 1;
	}
	return 0;
}

/* Offsets of the L4 checksum and of the port (ICMP echo: identifier) a translation rewrites. */
static __always_inline int l4_csum_off(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return offsetof(struct tcphdr, check);
	case IPPROTO_UDP:
		return offsetof(struct udphdr, check);
	default:
		return 2; /* ICMP and ICMPv6 */
	}
}

/*
 * A fragment after the first: it carries no L4 header, so only its address is
 * translated (the first fragment's L4 checksum already covers the change).
 * IPv6: a fragment header right after the fixed header, as senders put it.
 */
static __always_inline int later_fragment(struct __sk_buff *skb, const struct flow *f)
{
	__be16 off;
	__u8 next;

	if (f->family == 4)
		return bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, frag_off), &off, 2) == 0 &&
		       (bpf_ntohs(off) & 0x1fff);
	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, nexthdr), &next, 1) < 0 || next != IPPROTO_FRAGMENT)
		return 0;
	return bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(struct ipv6hdr) + 2, &off, 2) == 0 && (bpf_ntohs(off) & 0xfff8);
}

/*
 * Rewrites the source (egress) or destination (ingress) address and port of
 * the packet, with every checksum that covers them. ICMPv4's checksum covers
 * no pseudo header; UDP over IPv4 may carry none (zero), which stays zero.
 */
static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct flow *f, __u32 l4_off, int source,
				       const __u8 *addr, __be16 port, __u8 icmp_type)
{
	__u32 csum = l4_off + l4_csum_off(f->proto);
	__u64 mangled = f->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__be16 old_port = source ? f->sport : f->dport;
	__u32 port_off = l4_off + (source ? 0 : 2);
	int l4 = !later_fragment(skb, f);

	if (f->proto == IPPROTO_ICMP || f->proto == IPPROTO_ICMPV6)
		port_off = l4_off + offsetof(struct icmp_hdr, id);
	if (f->family == 4) {
		__be32 old = *(__be32 *)((source ? f->saddr : f->daddr) + 12);
		__be32 new = *(__be32 *)(addr + 12);
		__u32 at = ETH_HLEN + (source ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr));

		if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old, new, 4) < 0)
			return -1;
		if (l4 && f->proto != IPPROTO_ICMP &&
		    bpf_l4_csum_replace(skb, csum, old, new, BPF_F_PSEUDO_HDR | mangled | 4) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, at, &new, 4, 0) < 0)
			return -1;
	} else {
		__u32 at = ETH_HLEN + (source ? offsetof(struct ipv6hdr, saddr) : offsetof(struct ipv6hdr, daddr));
		__s64 diff = bpf_csum_diff((__be32 *)(source ? f->saddr : f->daddr), 16, (__be32 *)addr, 16, 0);

		if (diff < 0 || (l4 && bpf_l4_csum_replace(skb, csum, 0, diff, BPF_F_PSEUDO_HDR | mangled) < 0))
			return -1;
		if (bpf_skb_store_bytes(skb, at, addr, 16, 0) < 0)
			return -1;
	}
	if (!l4 || old_port == port)
		return 0;
	if (bpf_l4_csum_replace(skb, csum, old_port, port, mangled | 2) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, port_off, &port, 2, 0);
}

#define NAT_NOT_APPLIED -1

/*
 * For an endpoint's packet already allowed by its egress policy: when its
 * route leaves through a masquerading device, translates the source and
 * sends it out of that device (the neighbour subsystem fills in the MACs).
 * NAT_NOT_APPLIED: the packet takes the host's route unchanged. Not
 * inlined: its keys and route lookup would not fit beside the endpoint
 * program's own in one 512-byte stack.
 */
static __attribute__((noinline)) int snat_egress(struct __sk_buff *skb, const struct flow *f, __u32 l4_off, __u8 icmp_type,
				       __u32 sender)
{
	__u32 ifindex;
	__u8 to[16];
	__be16 port;

	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP && !(f->proto == IPPROTO_ICMP && icmp_type == ICMP_ECHO) &&
	    !(f->proto == IPPROTO_ICMPV6 && icmp_type == ICMPV6_ECHO_REQUEST))
		return NAT_NOT_APPLIED;
	/* the exclusions first: cluster destinations pay no route lookup */
	if (nat_excluded(f) || !fib_egress(skb, f, &ifindex) || !nat_source_for(f, ifindex, to))
		return NAT_NOT_APPLIED;
	if (!nat_port_for(f, to, &port, ct_now()))
		return drop(skb, REASON_NAT_NO_PORT, DIR_EGRESS, 0, sender, ID_WORLD, f);
	if (!hop_decrement(skb, f))
		return NAT_NOT_APPLIED; /* the stack answers Time Exceeded */
	if (nat_rewrite(skb, f, l4_off, 1, to, port, icmp_type) < 0)
		return drop(skb, REASON_INVALID_PACKET, DIR_EGRESS, 0, sender, ID_WORLD, f);
	return bpf_redirect_neigh(ifindex, 0, 0, 0);
}

/*
 * A reply to a masqueraded flow, arriving on a device: its destination
 * translated back to the endpoint's address and port. Returns 1 when it was
 * one (f now says where it goes), 0 when the packet is the host's. Not
 * inlined, as the lookups after it are not (the device program's stack).
 */
static __attribute__((noinline)) int snat_reverse(struct __sk_buff *skb, struct flow *f, __u32 l4_off, __u8 icmp_type, __u32 now)
{
	struct nat_key k = {};
	struct nat_entry *e;
	struct nat_entry back;

	nat_key_of(&k, f, DIR_INGRESS);
	e = bpf_map_lookup_elem(&cilium_snat, &k);
	if (!e || e->expires < now)
		return 0;
	nat_refresh(e, f, now);
	__builtin_memcpy(&back, e, sizeof(back));
	/* The other direction's entry lives as long. */
	k.dir = DIR_EGRESS;
	__builtin_memcpy(k.tuple.saddr, back.addr, 16);
	__builtin_memcpy(k.tuple.daddr, f->saddr, 16);
	k.tuple.sport = back.port;
	k.tuple.dport = f->sport;
	e = bpf_map_lookup_elem(&cilium_snat, &k);
	if (e)
		nat_refresh(e, f, now);
	if (nat_rewrite(skb, f, l4_off, 0, back.addr, back.port, icmp_type) < 0)
		return -1;
	__builtin_memcpy(f->daddr, back.addr, 16);
	f->dport = back.port;
	return 1;
}

/*
 * An ICMP error about a masqueraded flow (Path MTU Discovery's "fragmentation
 * needed" or "packet too big", an unreachable port, an expired TTL), arriving
 * on a device: it quotes the packet as it left, from our address and port.
 * The outer destination and the quoted source go back to the endpoint's,
 * with the ICMP checksum (and IPv4's quoted header checksum) that cover
 * them. Returns 1 when it was one (f now says where it goes), 0 when not.
 */
static __attribute__((noinline)) int snat_reverse_icmp_error(struct __sk_buff *skb, struct flow *f, __u32 l4_off, __u32 now)
{
	__u32 quoted = l4_off + 8, icmp_csum = l4_off + 2, q_l4, q_port;
	struct flow q = {}, reply;
	struct nat_key k = {};
	struct nat_entry *e;
	struct nat_entry back;
	__be16 old_port;

	if (!parse_quoted_flow(skb, f, l4_off, &q))
		return 0;
	/* The entry a reply to the quoted packet would meet. */
	flow_reverse(&q, &reply);
	nat_key_of(&k, &reply, DIR_INGRESS);
	e = bpf_map_lookup_elem(&cilium_snat, &k);
	if (!e || e->expires < now)
		return 0;
	__builtin_memcpy(&back, e, sizeof(back));
	old_port = q.sport;
	if (f->family == 4) {
		__be32 dev = *(__be32 *)(f->daddr + 12), orig = *(__be32 *)(back.addr + 12);
		__u8 ihl;
		__sum16 qsum_old, qsum_new;

		if (bpf_skb_load_bytes(skb, quoted, &ihl, 1) < 0)
			return -1;
		q_l4 = quoted + (ihl & 0x0f) * 4;
		/* outer destination: only the IP header's checksum covers it */
		if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), dev, orig, 4) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, daddr), &orig, 4, 0) < 0)
			return -1;
		/* quoted source, its header's checksum, and the ICMP checksum over both */
		if (bpf_skb_load_bytes(skb, quoted + offsetof(struct iphdr, check), &qsum_old, 2) < 0 ||
		    bpf_l3_csum_replace(skb, quoted + offsetof(struct iphdr, check), dev, orig, 4) < 0 ||
		    bpf_skb_load_bytes(skb, quoted + offsetof(struct iphdr, check), &qsum_new, 2) < 0 ||
		    bpf_l4_csum_replace(skb, icmp_csum, dev, orig, 4) < 0 ||
		    bpf_l4_csum_replace(skb, icmp_csum, qsum_old, qsum_new, 2) < 0 ||
		    bpf_skb_store_bytes(skb, quoted + offsetof(struct iphdr, saddr), &orig, 4, 0) < 0)
			return -1;
	} else {
		__s64 outer = bpf_csum_diff((__be32 *)f->daddr, 16, (__be32 *)back.addr, 16, 0);
		__s64 inner = bpf_csum_diff((__be32 *)q.saddr, 16, (__be32 *)back.addr, 16, 0);

		q_l4 = quoted + sizeof(struct ipv6hdr);
		/* ICMPv6's checksum covers the outer destination (pseudo header) and the quoted source alike */
		if (outer < 0 || inner < 0 || bpf_l4_csum_replace(skb, icmp_csum, 0, outer, BPF_F_PSEUDO_HDR) < 0 ||
		    bpf_l4_csum_replace(skb, icmp_csum, 0, inner, 0) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, daddr), back.addr, 16, 0) < 0 ||
		    bpf_skb_store_bytes(skb, quoted + offsetof(struct ipv6hdr, saddr), back.addr, 16, 0) < 0)
			return -1;
	}
	/* the quoted source port (ICMP echo: identifier); the quoted L4 checksum is left as it was, as routers leave it */
	q_port = q_l4 + (q.proto == IPPROTO_ICMP || q.proto == IPPROTO_ICMPV6 ? offsetof(struct icmp_hdr, id) : 0);
	if (old_port != back.port &&
	    (bpf_l4_csum_replace(skb, icmp_csum, old_port, back.port, 2) < 0 ||
	     bpf_skb_store_bytes(skb, q_port, &back.port, 2, 0) < 0))
		return -1;
	__builtin_memcpy(f->daddr, back.addr, 16);
	return 1;
}

#endif
