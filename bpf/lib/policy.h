/* Identity-based L3/L4 policy lookup and connection tracking. */
#ifndef CILIUM_POLICY_H
#define CILIUM_POLICY_H

#include "maps.h"

static __always_inline struct ipcache_value *ipcache_lookup(const __u8 *addr)
{
	struct ipcache_key k = { .prefixlen = 128 };

	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&cilium_ipcache, &k);
}

static __always_inline __u32 ipcache_identity(const __u8 *addr)
{
	struct ipcache_value *v = ipcache_lookup(addr);

	return v ? v->identity : ID_WORLD;
}

static __always_inline struct policy_value *policy_try(__u32 ep_id, __u32 id, __u16 dport, __u8 proto, __u8 dir)
{
	struct policy_key k = { .ep_id = ep_id, .identity = id, .dport = dport, .proto = proto, .dir = dir };

	return bpf_map_lookup_elem(&cilium_policy, &k);
}

/*
 * Most specific first: identity+port+proto, identity+port+any proto,
 * identity (all ports), then the same for any identity.
 */
static __always_inline struct policy_value *policy_lookup(__u32 ep_id, __u32 id, const struct flow *f, __u8 dir)
{
	struct policy_value *v;
	__u16 port = f->dport;

	if (f->proto == IPPROTO_ICMP || f->proto == IPPROTO_ICMPV6)
		port = 0; /* ICMP has no ports: only L3 rules allow it */
	if (port) {
		if ((v = policy_try(ep_id, id, port, f->proto, dir)))
			return v;
		if ((v = policy_try(ep_id, id, port, 0, dir)))
			return v;
	}
	if ((v = policy_try(ep_id, id, 0, 0, dir)))
		return v;
	if (port) {
		if ((v = policy_try(ep_id, 0, port, f->proto, dir)))
			return v;
		if ((v = policy_try(ep_id, 0, port, 0, dir)))
			return v;
	}
	return policy_try(ep_id, 0, 0, 0, dir);
}

static __always_inline void ct_key_of(struct ct_key *k, const struct flow *f, __u32 owner, __u32 dir)
{
	__builtin_memcpy(&k->flow, f, sizeof(*f));
	k->flow.tcp_flags = 0;
	k->owner = owner;
	k->dir = dir;
}

/* True when the packet belongs to a connection this container already allowed, either way. */
static __always_inline int ct_known(const struct flow *f, __u32 owner, __u8 dir, __u32 len)
{
	struct ct_key k = {};
	struct ct_value *v;
	struct flow rev = {};

	ct_key_of(&k, f, owner, dir);
	v = bpf_map_lookup_elem(&cilium_ct, &k);
	if (!v) {
		flow_reverse(f, &rev);
		ct_key_of(&k, &rev, owner, dir == DIR_INGRESS ? DIR_EGRESS : DIR_INGRESS);
		v = bpf_map_lookup_elem(&cilium_ct, &k);
	}
	if (!v)
		return 0;
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
	return 1;
}

static __always_inline void ct_create(const struct flow *f, __u32 owner, __u8 dir, __u32 peer, __u32 len)
{
	struct ct_key k = {};
	struct ct_value v = { .packets = 1, .bytes = len, .peer_identity = peer };

	ct_key_of(&k, f, owner, dir);
	bpf_map_update_elem(&cilium_ct, &k, &v, BPF_ANY);
}

#endif
