/* Identity-based L3/L4 policy: the ipcache and the policy map. */
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

/* Whether no policy applies to this new connection (not enforced, or the host's by configuration). */
static __always_inline int policy_exempt(const struct endpoint_info *ep, __u32 peer, __u8 dir)
{
	__u32 flag = dir == DIR_INGRESS ? EP_F_INGRESS_ENFORCE : EP_F_EGRESS_ENFORCE;

	return (dir == DIR_INGRESS && peer == ID_HOST && datapath_config.host_to_endpoint_allowed) || !(ep->flags & flag);
}

/*
 * The verdict the endpoint's policy gives a connection's first packet f from
 * peer: -1 denied, else the proxy port its L7 rules go through (0: none).
 */
static __always_inline int policy_verdict(const struct endpoint_info *ep, __u32 peer, const struct flow *f, __u8 dir)
{
	struct policy_value *pv;

	if (ep->flags & EP_F_NOT_READY)
		return -1;
	if (policy_exempt(ep, peer, dir))
		return 0;
	pv = policy_lookup(ep->ep_id, peer, f, dir);
	return pv ? pv->proxy_port : -1;
}

#endif
