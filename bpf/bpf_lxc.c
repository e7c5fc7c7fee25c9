/*
 * Programs for the host side of an endpoint's veth (tc clsact):
 *   cil_from_container on ingress: what the container sends (its egress),
 *   cil_to_container on egress: what the container receives (its ingress);
 * for the host's devices:
 *   cil_from_netdev on ingress: replies to masqueraded flows and packets to
 *   published ports, into their endpoint;
 * and for the host's sockets (cgroup v2 root), cil_sock{4,6}_*: services
 *   translated at connect/sendmsg, shown untranslated to getpeername/recvmsg.
 * Compiled once at build time and loaded once per agent; each endpoint's
 * values live in cilium_lxc keyed by the veth's ifindex, so creating an
 * endpoint or changing policy is a map update, never a compile or a load.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/events.h"
#include "lib/policy.h"
#include "lib/conntrack.h"
#include "lib/identity.h"
#include "lib/nat.h"
#include "lib/route.h"
#include "lib/lb.h"
#include "lib/sock.h"
#include "lib/proxy.h"

struct arp_eth_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
};

/*
 * Answers the container's ARP requests with the host side's MAC, as the
 * gateway for every address: the host kernel never sees them, so it keeps no
 * neighbour entry per container (its table overflows at gc_thresh3, 1,024 by
 * default, and containers past that cannot reach their gateway).
 */
static __always_inline int arp_respond(struct __sk_buff *skb, const struct endpoint_info *ep)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct arp_eth_ipv4 *arp = (void *)(eth + 1);
	__u8 target[4];

	if ((void *)(arp + 1) > end)
		return TC_ACT_SHOT;
	__builtin_memcpy(target, arp->tpa, 4);
	__builtin_memcpy(arp->tha, arp->sha, 6);
	__builtin_memcpy(arp->tpa, arp->spa, 4);
	__builtin_memcpy(arp->sha, ep->host_mac, 6);
	__builtin_memcpy(arp->spa, target, 4);
	arp->op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, ep->host_mac, 6);
	return bpf_redirect(skb->ifindex, 0); /* out of the host side: back to the container */
}

static __always_inline int same(const __u8 *a, const __u8 *b, int n)
{
#pragma unroll
	for (int i = 0; i < 16; i++)
		if (i < n && a[i] != b[i])
			return 0;
	return 1;
}

static __always_inline int is_zero(const __u8 *a, int n)
{
#pragma unroll
	for (int i = 0; i < 16; i++)
		if (i < n && a[i])
			return 0;
	return 1;
}

/* Link-local (fe80::/10) or unspecified: the sources ND and MLD legitimately use. */
static __always_inline int ipv6_local_source(const __u8 *a)
{
	return (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || is_zero(a, 16);
}

static __always_inline int icmp6_local_control(__u8 type)
{
	return icmp6_is_nd(type) || type == 130 || type == 131 || type == 132 || type == 143;
}

/*
 * The source address is the endpoint's own, or another address of the same
 * container (a container on two networks answers through its default route).
 */
static __always_inline int source_owned(const struct endpoint_info *ep, const __u8 *saddr, const __u8 *own, int n)
{
	struct ipcache_value *v;

	if (!is_zero(own, n) && same(saddr + 16 - n, own, n))
		return 1;
	v = ipcache_lookup(saddr);
	return ep->owner && v && v->owner == ep->owner;
}

/* What enforce_packet() needs beside the packet, endpoint and flow (a subprogram takes five arguments). */
struct enforce_args {
	__u32 ifindex;
	__u32 l4_off;
	__u32 peer;
	__u8 dir;
	__u8 icmp_type;
	__u8 from_proxy; /* the L7 proxy's upstream packet, for the client peer */
	__u8 pad;
};

/*
 * A tracked connection through the proxy: the client's packets go to it;
 * the proxy's own, on to the destination; the destination's replies to
 * them, back to the proxy's socket (also where the destination's own policy
 * has no L7 rules: the client's egress rules sent it through the proxy).
 */
static __always_inline int ct_proxy_verdict(struct ct_value *ct, int reply, int from_proxy)
{
	if (reply)
		return ct->flags & CT_F_PROXY_UPSTREAM ? VERDICT_PROXY_REPLY : TC_ACT_OK;
	if (!ct->proxy_port)
		return TC_ACT_OK;
	if (!from_proxy)
		return VERDICT_PROXY | ct->proxy_port;
	/* the proxy may reuse the client's own source port: one entry serves both connections */
	if (!(ct->flags & CT_F_PROXY_UPSTREAM))
		ct->flags |= CT_F_PROXY_UPSTREAM;
	return TC_ACT_OK;
}

/*
 * Policy for one packet of endpoint ep (whose host veth is ifindex) in one
 * direction, from or to peer. Tracked connections pass while the policy that
 * allowed them stands; ICMP errors pass only for a tracked connection. Not
 * inlined: its keys and entries, once per call site, would not fit beside
 * the rest of the programs in one 512-byte stack.
 */
static __attribute__((noinline)) int enforce_packet(struct __sk_buff *skb, const struct endpoint_info *ep,
						     const struct flow *f, const struct enforce_args *a)
{
	__u32 ifindex = a->ifindex, l4_off = a->l4_off, peer = a->peer;
	__u8 dir = a->dir, icmp_type = a->icmp_type, proxied = a->from_proxy;
	__u32 src = dir == DIR_INGRESS ? peer : ep->identity;
	__u32 dst = dir == DIR_INGRESS ? ep->identity : peer;
	struct policy_value *pv;
	struct ct_scratch *s;
	struct ct_value *ct;
	__u32 now = ct_now(), zero = 0;
	__u16 proxy_port = 0;
	int reply;

	if (ep->flags & EP_F_NOT_READY)
		return drop(skb, REASON_NOT_READY, dir, ep->ep_id, src, dst, f);
	s = bpf_map_lookup_elem(&cilium_ct_scratch, &zero);
	if (!s)
		return drop(skb, REASON_INVALID_PACKET, dir, ep->ep_id, src, dst, f);
	if (icmp_is_error(f, icmp_type)) {
		if (!ct_icmp_related(skb, f, l4_off, ep->owner, dir, now, s))
			return drop(skb, REASON_NO_RELATED_CONNECTION, dir, ep->ep_id, src, dst, f);
		goto pass;
	}
	ct = ct_find(f, ep->owner, dir, &s->key, &reply, now);
	if (ct) {
		if (!ct_still_allowed(ct, &s->key, ep, ifindex)) {
			ct_refresh_denied(ct, now);
			return drop(skb, REASON_POLICY_DENIED, dir, ep->ep_id, src, dst, f);
		}
		if (!ct_is_reopen(ct, f, reply)) {
			ct_update(ct, f, reply, skb->len, now);
			count(REASON_FORWARDED, dir, skb->len);
			return ct_proxy_verdict(ct, reply, proxied);
		}
		bpf_map_delete_elem(&cilium_ct, &s->key);
	}
	if (policy_exempt(ep, peer, dir)) {
		emit(skb, EVENT_TRACE, REASON_FORWARDED, dir, ep->ep_id, src, dst, f);
		goto allow;
	}
	pv = policy_lookup(ep->ep_id, peer, f, dir);
	if (!pv)
		return drop(skb, REASON_POLICY_DENIED, dir, ep->ep_id, src, dst, f);
	__sync_fetch_and_add(&pv->packets, 1);
	__sync_fetch_and_add(&pv->bytes, skb->len);
	proxy_port = pv->proxy_port;
	emit(skb, EVENT_POLICY_VERDICT, REASON_FORWARDED, dir, ep->ep_id, src, dst, f);
allow:
	/* A reply without its request (an echo reply) opens nothing. */
	if (!icmp_is_echo_reply(f, icmp_type))
		ct_create(f, ep->owner, dir, peer, skb->len, ep, ifindex, now, proxy_port, proxied, s);
	count(REASON_FORWARDED, dir, skb->len);
	if (proxy_port && !proxied)
		return VERDICT_PROXY | proxy_port;
	return TC_ACT_OK;
pass:
	count(REASON_FORWARDED, dir, skb->len);
	return TC_ACT_OK;
}

static __always_inline int enforce_as(struct __sk_buff *skb, const struct endpoint_info *ep, __u32 ifindex,
				      const struct flow *f, __u8 dir, __u8 icmp_type, __u32 l4_off, __u32 peer, int from_proxy)
{
	struct enforce_args a = {
		.ifindex = ifindex, .l4_off = l4_off, .peer = peer, .dir = dir, .icmp_type = icmp_type, .from_proxy = from_proxy
	};

	return enforce_packet(skb, ep, f, &a);
}

static __always_inline int enforce(struct __sk_buff *skb, const struct endpoint_info *ep, __u32 ifindex,
				   const struct flow *f, __u8 dir, __u8 icmp_type, __u32 l4_off, __u32 peer)
{
	return enforce_as(skb, ep, ifindex, f, dir, icmp_type, l4_off, peer, 0);
}

/*
 * Carries out a proxy verdict of enforce() (proxy.h): at tc ingress the
 * packet goes to the proxy's socket through the host's stack; where the
 * socket cannot be assigned (tc egress, a translated flow whose replies
 * would bypass their reverse translation) it is dropped, never passed
 * unchecked. TC_ACT_OK and drops pass through.
 */
static __always_inline int proxy_verdict(struct __sk_buff *skb, const struct flow *f, int r, int can_assign,
					 const struct endpoint_info *ep, __u8 dir, __u32 src, __u32 dst)
{
	if (!(r & (VERDICT_PROXY | VERDICT_PROXY_REPLY)))
		return r;
	if (!can_assign)
		return drop(skb, REASON_PROXY_UNSUPPORTED, dir, ep->ep_id, src, dst, f);
	if (r == VERDICT_PROXY_REPLY) {
		skb->mark = MARK_MAGIC_TO_PROXY;
		return TC_ACT_OK;
	}
	if (proxy_assign(skb, f, r & 0xffff) < 0)
		return drop(skb, REASON_PROXY_UNAVAILABLE, dir, ep->ep_id, src, dst, f);
	return TC_ACT_OK;
}

/*
 * Rewrites what the host's router would (MACs, TTL / hop limit), for direct
 * delivery. Returns 1 when the packet should rather take the slow path.
 */
static __always_inline int route_locally(struct __sk_buff *skb, const struct flow *f, const struct ep_addr_value *to)
{
	if (!hop_decrement(skb, f))
		return 1;
	if (bpf_skb_store_bytes(skb, 0, to->mac, 6, 0) < 0 || bpf_skb_store_bytes(skb, 6, to->host_mac, 6, 0) < 0)
		return 1;
	return 0;
}

/*
 * A backend's reply to a client beyond the host: it leaves from the frontend,
 * straight out of the device the route names (around the host's routing,
 * whose reverse-path check would take a host address from a veth for a
 * spoof). With no such route the stack has it. Not inlined, for the
 * endpoint program's stack (its route lookup alone takes 64 bytes).
 */
static __attribute__((noinline)) int lb_answer_out(struct __sk_buff *skb, struct flow *f, __u32 l4_off, __u8 icmp_type,
						 const struct nat_entry *front)
{
	__u32 ifindex;

	if (lb_rewrite_reply(skb, f, l4_off, icmp_type, front) < 0)
		return drop(skb, REASON_INVALID_PACKET, DIR_EGRESS, 0, 0, ID_WORLD, f);
	if (!fib_egress(skb, f, &ifindex) || !hop_decrement(skb, f))
		return TC_ACT_OK;
	return bpf_redirect_neigh(ifindex, 0, 0, 0);
}

/*
 * Traffic for another endpoint on this host: its ingress policy is applied
 * here and the packet goes straight into its namespace (bpf_redirect_peer),
 * skipping the host's routing and netfilter (a FORWARD policy of DROP, as
 * dockerd sets, does not apply). Traffic leaving through a masquerading
 * device is translated and sent out of it likewise (nat.h). Anything else
 * takes the host's route. A backend's reply to a service flow (front) gets
 * its frontend as source only after the peer's policy has seen it as sent,
 * the tuple the peer's connection tracking knows.
 */
static __always_inline int deliver(struct __sk_buff *skb, struct flow *f, __u8 icmp_type, __u32 l4_off, __u32 sender,
				   const struct nat_entry *front, int translated)
{
	struct ep_addr_value *found = bpf_map_lookup_elem(&cilium_ep_addr, f->daddr);
	struct ep_addr_value to;
	struct endpoint_info *peer;
	int r;

	if (!found)
		goto host_stack;
	__builtin_memcpy(&to, found, sizeof(to));
	peer = bpf_map_lookup_elem(&cilium_lxc, &to.ifindex);
	if (!peer)
		goto host_stack;
	r = enforce(skb, peer, to.ifindex, f, DIR_INGRESS, icmp_type, l4_off, sender);
	if (r != TC_ACT_OK)
		return proxy_verdict(skb, f, r, !front && !translated, peer, DIR_INGRESS, sender, peer->identity);
	if (front && lb_rewrite_reply(skb, f, l4_off, icmp_type, front) < 0)
		return drop(skb, REASON_INVALID_PACKET, DIR_INGRESS, peer->ep_id, sender, peer->identity, f);
	if (!route_locally(skb, f, &to))
		return bpf_redirect_peer(to.ifindex, 0);
	return TC_ACT_OK;
host_stack:
	if (front)
		return lb_answer_out(skb, f, l4_off, icmp_type, front);
	r = snat_egress(skb, f, l4_off, icmp_type, sender);
	if (r != NAT_NOT_APPLIED)
		return r;
	mark_source_identity(skb, sender);
	return TC_ACT_OK;
}

/*
 * A backend's reply to itself through its own service (lb.h, LB_HAIRPIN_V4):
 * judged again as the client's ingress, on the tuple both sides tracked
 * (backend -> hairpin source), then given the frontend as source and its
 * own address as destination, and sent back into its namespace. Service
 * flows are TCP or UDP: there is no ICMP type to carry.
 */
static __always_inline int lb_hairpin_reply(struct __sk_buff *skb, const struct endpoint_info *ep, struct flow *f, __u32 l4_off,
					    const struct nat_entry *front)
{
	struct ep_addr_value *self = bpf_map_lookup_elem(&cilium_ep_addr, f->saddr);
	__u32 ifindex = skb->ifindex;
	int r;

	if (!self)
		return drop(skb, REASON_UNKNOWN_ENDPOINT, DIR_INGRESS, ep->ep_id, ep->identity, ep->identity, f);
	r = enforce(skb, ep, ifindex, f, DIR_INGRESS, 0, l4_off, ep->identity);
	if (r != TC_ACT_OK)
		return proxy_verdict(skb, f, r, 0, ep, DIR_INGRESS, ep->identity, ep->identity);
	/* destination first: the backend's address is still the source */
	if (nat_rewrite(skb, f, l4_off, 0, f->saddr, f->dport, 0) < 0)
		return drop(skb, REASON_INVALID_PACKET, DIR_INGRESS, ep->ep_id, ep->identity, ep->identity, f);
	__builtin_memcpy(f->daddr, f->saddr, 16);
	if (lb_rewrite_reply(skb, f, l4_off, 0, front) < 0 || route_locally(skb, f, self))
		return drop(skb, REASON_INVALID_PACKET, DIR_INGRESS, ep->ep_id, ep->identity, ep->identity, f);
	return bpf_redirect_peer(ifindex, 0);
}

SEC("tc")
int cil_from_container(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = bpf_map_lookup_elem(&cilium_lxc, &ifindex);
	void *data, *end;
	struct ethhdr *eth;
	struct flow f = {};
	struct nat_entry front;
	__u16 eth_proto = 0;
	__u32 l4_off = 0, peer;
	__u8 icmp_type;
	int r, is_reply, translated = 0;

	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	if (!ep)
		return drop(skb, REASON_UNKNOWN_ENDPOINT, DIR_EGRESS, 0, 0, 0, &f);
	if ((void *)(eth + 1) > end)
		return drop(skb, REASON_INVALID_PACKET, DIR_EGRESS, ep->ep_id, ep->identity, 0, &f);
	if (!same(eth->h_source, ep->mac, 6))
		return drop(skb, REASON_INVALID_SMAC, DIR_EGRESS, ep->ep_id, ep->identity, 0, &f);

	r = parse_flow_pulled(skb, &f, &eth_proto, &icmp_type, &l4_off);
	if (r == PARSE_DROP)
		return drop(skb, REASON_INVALID_PACKET, DIR_EGRESS, ep->ep_id, ep->identity, 0, &f);
	if (r == PARSE_FRAG_NOT_FOUND)
		return drop(skb, REASON_FRAG_NOT_FOUND, DIR_EGRESS, ep->ep_id, ep->identity, 0, &f);
	if (r == PARSE_NOT_IP) {
		struct arp_eth_ipv4 *arp;

		/* parse_flow may not touch the packet, but the verifier wants fresh pointers. */
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		eth = data;
		if ((void *)(eth + 1) > end)
			return drop(skb, REASON_INVALID_PACKET, DIR_EGRESS, ep->ep_id, ep->identity, 0, &f);
		arp = (void *)(eth + 1);

		if (eth_proto != ETH_P_ARP)
			return drop(skb, REASON_UNSUPPORTED_L3, DIR_EGRESS, ep->ep_id, ep->identity, 0, &f);
		if ((void *)(arp + 1) > end)
			return drop(skb, REASON_INVALID_PACKET, DIR_EGRESS, ep->ep_id, ep->identity, 0, &f);
		/* An ARP probe has no sender address; anything else must be the endpoint's own. */
		if (!is_zero(arp->spa, 4) && !same(arp->spa, ep->ipv4, 4))
			return drop(skb, REASON_INVALID_SIP, DIR_EGRESS, ep->ep_id, ep->identity, 0, &f);
		if (arp->op == bpf_htons(ARPOP_REQUEST) && arp->htype == bpf_htons(ARPHRD_ETHER) &&
		    arp->ptype == bpf_htons(ETH_P_IP) && arp->hlen == 6 && arp->plen == 4 && !is_zero(arp->spa, 4) &&
		    !same(arp->tpa, ep->ipv4, 4))
			return arp_respond(skb, ep);
		return TC_ACT_OK; /* probes and announcements of its own address */
	}

	if (f.family == 4) {
		if (!source_owned(ep, f.saddr, ep->ipv4, 4))
			return drop(skb, REASON_INVALID_SIP, DIR_EGRESS, ep->ep_id, ep->identity, 0, &f);
	} else {
		if (f.proto == IPPROTO_ICMPV6 && icmp6_local_control(icmp_type) && ipv6_local_source(f.saddr))
			return TC_ACT_OK;
		if (!source_owned(ep, f.saddr, ep->ipv6, 16))
			return drop(skb, REASON_INVALID_SIP, DIR_EGRESS, ep->ep_id, ep->identity, 0, &f);
		if (f.proto == IPPROTO_ICMPV6 && icmp6_local_control(icmp_type))
			return TC_ACT_OK;
	}
	/*
	 * A reply from a service's backend, or a request to a service (a
	 * virtual address, or a published port of a host address: hairpin):
	 * policy is decided on the backend, as the packet travels between the
	 * two endpoints.
	 */
	is_reply = lb_reply(&f, &front);
	peer = ipcache_identity(f.daddr);
	if (!is_reply) {
		r = lb_dnat(skb, &f, l4_off, icmp_type, peer);
		if (r < 0)
			return drop(skb, -r, DIR_EGRESS, ep->ep_id, ep->identity, peer, &f);
		translated = r == LB_TRANSLATED;
		if (translated)
			peer = ipcache_identity(f.daddr);
	}
	r = enforce(skb, ep, ifindex, &f, DIR_EGRESS, icmp_type, l4_off, peer);
	if (r != TC_ACT_OK)
		return proxy_verdict(skb, &f, r, !is_reply && !translated, ep, DIR_EGRESS, ep->identity, peer);
	if (is_reply && (front.flags & NAT_F_HAIRPIN))
		return lb_hairpin_reply(skb, ep, &f, l4_off, &front);
	return deliver(skb, &f, icmp_type, l4_off, ep->identity, is_reply ? &front : 0, translated);
}

SEC("tc")
int cil_to_container(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = bpf_map_lookup_elem(&cilium_lxc, &ifindex);
	struct flow f = {};
	__u16 eth_proto = 0;
	__u32 l4_off = 0, peer;
	__u8 icmp_type;
	int r;

	if (!ep)
		return drop(skb, REASON_UNKNOWN_ENDPOINT, DIR_INGRESS, 0, 0, 0, &f);
	r = parse_flow_pulled(skb, &f, &eth_proto, &icmp_type, &l4_off);
	if (r == PARSE_DROP)
		return drop(skb, REASON_INVALID_PACKET, DIR_INGRESS, ep->ep_id, 0, ep->identity, &f);
	if (r == PARSE_FRAG_NOT_FOUND)
		return drop(skb, REASON_FRAG_NOT_FOUND, DIR_INGRESS, ep->ep_id, 0, ep->identity, &f);
	if (r == PARSE_NOT_IP) {
		if (eth_proto == ETH_P_ARP)
			return TC_ACT_OK;
		return drop(skb, REASON_UNSUPPORTED_L3, DIR_INGRESS, ep->ep_id, 0, ep->identity, &f);
	}
	if (f.proto == IPPROTO_ICMPV6 && icmp6_local_control(icmp_type))
		return TC_ACT_OK;
	peer = source_identity(skb, &f);
	r = enforce_as(skb, ep, ifindex, &f, DIR_INGRESS, icmp_type, l4_off, peer, from_proxy(skb));
	return proxy_verdict(skb, &f, r, 0, ep, DIR_INGRESS, peer, ep->identity);
}

/*
 * Ingress of one of the agent's devices: a reply to a masqueraded flow goes
 * back to its endpoint, a packet to a published port to its backend, under
 * that endpoint's ingress policy with the client's own address (the flow's
 * tracked connection admits replies), straight into its namespace.
 * Everything else is the host's and passes untouched.
 */
SEC("tc")
int cil_from_netdev(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct ep_addr_value *found, to;
	struct endpoint_info *ep;
	struct flow f = {};
	__u16 eth_proto = 0;
	__u32 l4_off = 0;
	__u8 icmp_type;
	int r;

	if (!bpf_map_lookup_elem(&cilium_nat_dev, &ifindex))
		return TC_ACT_OK;
	if (parse_flow_pulled(skb, &f, &eth_proto, &icmp_type, &l4_off) != PARSE_OK)
		return TC_ACT_OK;
	if (icmp_is_error(&f, icmp_type))
		r = snat_reverse_icmp_error(skb, &f, l4_off, ct_now());
	else
		r = snat_reverse(skb, &f, l4_off, icmp_type, ct_now());
	if (r == 0) {
		r = lb_dnat(skb, &f, l4_off, icmp_type, 0);
		if (r < 0)
			return drop(skb, -r, DIR_INGRESS, 0, ipcache_identity(f.saddr), 0, &f);
		if (r == LB_NONE)
			return TC_ACT_OK;
	}
	if (r < 0)
		return drop(skb, REASON_INVALID_PACKET, DIR_INGRESS, 0, ID_WORLD, 0, &f);
	found = bpf_map_lookup_elem(&cilium_ep_addr, f.daddr);
	if (!found)
		return drop(skb, REASON_UNKNOWN_ENDPOINT, DIR_INGRESS, 0, ID_WORLD, 0, &f);
	__builtin_memcpy(&to, found, sizeof(to));
	ep = bpf_map_lookup_elem(&cilium_lxc, &to.ifindex);
	if (!ep)
		return drop(skb, REASON_UNKNOWN_ENDPOINT, DIR_INGRESS, 0, ID_WORLD, 0, &f);
	r = enforce(skb, ep, to.ifindex, &f, DIR_INGRESS, icmp_type, l4_off, ipcache_identity(f.saddr));
	if (r != TC_ACT_OK)
		return proxy_verdict(skb, &f, r, 0, ep, DIR_INGRESS, ipcache_identity(f.saddr), ep->identity);
	if (route_locally(skb, &f, &to))
		return drop(skb, REASON_INVALID_PACKET, DIR_INGRESS, ep->ep_id, ID_WORLD, ep->identity, &f);
	return bpf_redirect_peer(to.ifindex, 0);
}

SEC("cgroup/connect4")
int cil_sock4_connect(struct bpf_sock_addr *ctx)
{
	return sock_to_backend(ctx, 0, 0);
}

SEC("cgroup/connect6")
int cil_sock6_connect(struct bpf_sock_addr *ctx)
{
	return sock_to_backend(ctx, 1, 0);
}

SEC("cgroup/sendmsg4")
int cil_sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock_to_backend(ctx, 0, 1);
}

SEC("cgroup/sendmsg6")
int cil_sock6_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock_to_backend(ctx, 1, 1);
}

SEC("cgroup/recvmsg4")
int cil_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return sock_to_frontend(ctx, 0);
}

SEC("cgroup/recvmsg6")
int cil_sock6_recvmsg(struct bpf_sock_addr *ctx)
{
	return sock_to_frontend(ctx, 1);
}

SEC("cgroup/getpeername4")
int cil_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	return sock_to_frontend(ctx, 0);
}

SEC("cgroup/getpeername6")
int cil_sock6_getpeername(struct bpf_sock_addr *ctx)
{
	return sock_to_frontend(ctx, 1);
}

char _license[] SEC("license") = "GPL";
