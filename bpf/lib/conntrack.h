/*
 * Connection tracking per container: TCP state and lifetimes, ICMP errors
 * related to a tracked connection, and revocation when policy changes.
 */
#ifndef CILIUM_CONNTRACK_H
#define CILIUM_CONNTRACK_H

#include "maps.h"
#include "parse.h"
#include "policy.h"

/* Lifetimes in seconds, Cilium's defaults. */
#define CT_LIFETIME_TCP 21600
#define CT_LIFETIME_SYN 60
#define CT_LIFETIME_CLOSE 10
#define CT_LIFETIME_NONTCP 60

#define CT_F_CLOSING (CT_F_TX_CLOSING | CT_F_RX_CLOSING | CT_F_RESET)

#define TCP_F_FIN 0x01
#define TCP_F_SYN 0x02
#define TCP_F_RST 0x04
#define TCP_F_ACK 0x10

static __always_inline __u32 ct_now(void)
{
	return bpf_ktime_get_ns() / 1000000000ULL;
}

static __always_inline void ct_key_of(struct ct_key *k, const struct flow *f, __u32 owner, __u32 dir)
{
	__builtin_memcpy(&k->flow, f, sizeof(*f));
	k->flow.tcp_flags = 0;
	k->owner = owner;
	k->dir = dir;
}

/*
 * The live entry for f in either direction: as opened (f in dir) or as its
 * reply (*reply = 1). *k is left holding the matched key. Expired entries are
 * removed and missed.
 */
static __always_inline struct ct_value *ct_find(const struct flow *f, __u32 owner, __u8 dir, struct ct_key *k,
						int *reply, __u32 now)
{
	struct ct_value *v;
	struct flow rev = {};

	*reply = 0;
	ct_key_of(k, f, owner, dir);
	v = bpf_map_lookup_elem(&cilium_ct, k);
	if (!v) {
		*reply = 1;
		flow_reverse(f, &rev);
		ct_key_of(k, &rev, owner, dir == DIR_INGRESS ? DIR_EGRESS : DIR_INGRESS);
		v = bpf_map_lookup_elem(&cilium_ct, k);
	}
	if (v && v->expires < now) {
		bpf_map_delete_elem(&cilium_ct, k);
		return NULL;
	}
	return v;
}

static __always_inline __u32 ct_lifetime(__u8 proto, __u8 flags)
{
	if (proto != IPPROTO_TCP)
		return CT_LIFETIME_NONTCP;
	if (flags & CT_F_CLOSING)
		return CT_LIFETIME_CLOSE;
	return flags & CT_F_ESTABLISHED ? CT_LIFETIME_TCP : CT_LIFETIME_SYN;
}

static __always_inline __u8 ct_tcp_flags(__u8 flags, __u8 tcp, int reply)
{
	if (tcp & TCP_F_RST)
		flags |= CT_F_RESET;
	else if (tcp & TCP_F_FIN)
		flags |= reply ? CT_F_RX_CLOSING : CT_F_TX_CLOSING;
	if (!(tcp & TCP_F_SYN))
		flags |= CT_F_ESTABLISHED;
	return flags;
}

/* A SYN opening a connection over a closing entry of the same ports: a new connection, decided anew. */
static __always_inline int ct_is_reopen(const struct ct_value *v, const struct flow *f, int reply)
{
	return f->proto == IPPROTO_TCP && !reply && (v->flags & CT_F_CLOSING) &&
	       (f->tcp_flags & (TCP_F_SYN | TCP_F_ACK)) == TCP_F_SYN;
}

/* Counts the packet and moves the entry's state and lifetime on. */
static __always_inline void ct_update(struct ct_value *v, const struct flow *f, int reply, __u32 len, __u32 now)
{
	__u8 flags = v->flags;
	__u32 expires;

	if (f->proto == IPPROTO_TCP)
		flags = ct_tcp_flags(flags, f->tcp_flags, reply);
	if (flags != v->flags)
		v->flags = flags;
	expires = now + ct_lifetime(f->proto, flags);
	if (v->expires != expires)
		v->expires = expires;
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
}

/*
 * Whether the policy that allowed the entry still does: checked again only
 * when the allowing endpoint's policy generation moved. A revoked entry is
 * kept, marked denied, so that neither side can reopen the connection
 * mid-stream while it keeps sending.
 */
static __always_inline int ct_still_allowed(struct ct_value *v, const struct ct_key *k,
					    const struct endpoint_info *cur, __u32 cur_ifindex)
{
	const struct endpoint_info *ep = cur;

	if (v->flags & CT_F_DENIED)
		return 0;
	if (v->ep_ifindex != cur_ifindex) {
		ep = bpf_map_lookup_elem(&cilium_lxc, &v->ep_ifindex);
		if (!ep)
			goto revoked; /* the endpoint that allowed it is gone */
	}
	if (ep->policy_gen == v->policy_gen)
		return 1;
	/* L7 rules added or removed change the path: the connection ends rather than slip past them */
	if (policy_verdict(ep, v->peer_identity, &k->flow, k->dir) != v->proxy_port)
		goto revoked;
	v->policy_gen = ep->policy_gen;
	return 1;
revoked:
	v->flags |= CT_F_DENIED;
	return 0;
}

/* A denied entry lives on while its connection keeps trying. */
static __always_inline void ct_refresh_denied(struct ct_value *v, __u32 now)
{
	v->expires = now + CT_LIFETIME_SYN;
}

/* proxy_port: the proxy the connection goes through (0: none); upstream: it is the proxy's own connection. */
static __always_inline void ct_create(const struct flow *f, __u32 owner, __u8 dir, __u32 peer, __u32 len,
				      const struct endpoint_info *ep, __u32 ifindex, __u32 now, __u16 proxy_port,
				      int upstream, struct ct_scratch *s)
{
	struct ct_value *v = &s->value;

	__builtin_memset(v, 0, sizeof(*v));
	v->packets = 1;
	v->bytes = len;
	v->peer_identity = peer;
	v->ep_ifindex = ifindex;
	v->policy_gen = ep->policy_gen;
	v->proxy_port = proxy_port;
	if (upstream)
		v->flags = CT_F_PROXY_UPSTREAM;
	if (f->proto == IPPROTO_TCP)
		v->flags |= ct_tcp_flags(0, f->tcp_flags, 0);
	v->expires = now + ct_lifetime(f->proto, v->flags);
	ct_key_of(&s->key, f, owner, dir);
	bpf_map_update_elem(&cilium_ct, &s->key, v, BPF_ANY);
}

/*
 * An ICMP error (unreachable, time exceeded, packet too big, parameter
 * problem) arriving in dir reports on a packet that went the other way: it
 * passes only if that packet's connection is tracked and not revoked.
 */
static __always_inline int ct_icmp_related(struct __sk_buff *skb, const struct flow *f, __u32 l4_off, __u32 owner,
					   __u8 dir, __u32 now, struct ct_scratch *s)
{
	struct ct_value *v;
	int reply;

	__builtin_memset(&s->quoted, 0, sizeof(s->quoted));
	if (!parse_quoted_flow(skb, f, l4_off, &s->quoted))
		return 0;
	v = ct_find(&s->quoted, owner, dir == DIR_INGRESS ? DIR_EGRESS : DIR_INGRESS, &s->key, &reply, now);
	return v && !(v->flags & CT_F_DENIED);
}

#endif
