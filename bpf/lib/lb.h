/*
 * Service translation: a packet to a frontend (a published port on a host
 * address, or a service's virtual address and port) gets a backend's
 * address and port as its destination,
 * and the backend's replies get the frontend back as their source. Both are
 * done per packet at the first program the packet meets: a device's ingress
 * for clients beyond the host, an endpoint's egress for containers. The
 * host's own clients go through the agent's port proxy (service/host-proxy.ts).
 */
#ifndef CILIUM_LB_H
#define CILIUM_LB_H

#include "common.h"
#include "identity.h"
#include "maps.h"
#include "nat.h"

#define LB_NONE 0
#define LB_TRANSLATED 1

/* The frontend a packet is for: its exact address, or every host address if it is one. */
static __always_inline struct lb_svc_value *lb_frontend(const struct flow *f, struct lb_svc_key *k)
{
	struct lb_svc_value *v;

	__builtin_memcpy(k->addr, f->daddr, 16);
	k->port = f->dport;
	k->proto = f->proto;
	k->slot = 0;
	v = bpf_map_lookup_elem(&cilium_lb_svc, k);
	if (v || ipcache_identity(f->daddr) != ID_HOST)
		return v;
	__builtin_memset(k->addr, 0, 16);
	if (f->family == 4) {
		k->addr[10] = 0xff;
		k->addr[11] = 0xff;
	}
	return bpf_map_lookup_elem(&cilium_lb_svc, k);
}

/*
 * Translates the destination of a packet to a service: the backend its flow
 * already has, or one picked now (at random among the slots), remembering
 * both directions. Returns LB_NONE when it is not for a service (f
 * unchanged), LB_TRANSLATED when it was (f now has the backend), or a
 * REASON_ to drop it with (negated). Not inlined: its keys and entries
 * would not fit beside the callers' own in one 512-byte stack.
 */
static __attribute__((noinline)) int lb_dnat(struct __sk_buff *skb, struct flow *f, __u32 l4_off, __u8 icmp_type)
{
	struct nat_key k = {}, rk = {};
	struct nat_entry *e, to = {}, front = {};
	struct lb_svc_key sk = {};
	struct lb_svc_value *svc;
	struct lb_backend *be;
	__u32 now = ct_now();
	__u32 id;

	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return LB_NONE;
	/* The frontend first: traffic to no service pays one lookup. */
	svc = lb_frontend(f, &sk);
	if (!svc)
		return LB_NONE;
	nat_key_of(&k, f, LB_CT_SERVICE);
	e = bpf_map_lookup_elem(&cilium_lb_ct, &k);
	if (e && e->expires >= now) {
		nat_refresh(e, f, now);
		__builtin_memcpy(&to, e, sizeof(to));
	} else {
		if (!svc->count)
			return -REASON_NO_BACKEND;
		sk.slot = 1 + bpf_get_prandom_u32() % svc->count;
		svc = bpf_map_lookup_elem(&cilium_lb_svc, &sk);
		if (!svc)
			return -REASON_NO_BACKEND;
		id = svc->backend_id;
		be = bpf_map_lookup_elem(&cilium_lb_backend, &id);
		if (!be)
			return -REASON_NO_BACKEND;
		__builtin_memcpy(to.addr, be->addr, 16);
		to.port = be->port;
		nat_refresh(&to, f, now);
		/* the reply as the backend sends it */
		rk.dir = LB_CT_REPLY;
		rk.tuple.family = f->family;
		rk.tuple.proto = f->proto;
		__builtin_memcpy(rk.tuple.saddr, be->addr, 16);
		__builtin_memcpy(rk.tuple.daddr, f->saddr, 16);
		rk.tuple.sport = be->port;
		rk.tuple.dport = f->sport;
		__builtin_memcpy(front.addr, f->daddr, 16);
		front.port = f->dport;
		front.expires = to.expires;
		if (bpf_map_update_elem(&cilium_lb_ct, &rk, &front, BPF_ANY) ||
		    bpf_map_update_elem(&cilium_lb_ct, &k, &to, BPF_ANY))
			return -REASON_NO_BACKEND;
	}
	if (nat_rewrite(skb, f, l4_off, 0, to.addr, to.port, icmp_type) < 0)
		return -REASON_INVALID_PACKET;
	__builtin_memcpy(f->daddr, to.addr, 16);
	f->dport = to.port;
	return LB_TRANSLATED;
}

/*
 * A backend's reply to a translated flow: the frontend it must come from,
 * copied into front (the rewrite waits until policy has passed the packet
 * as the backend sent it). Returns 0 when the packet is no such reply.
 * Not inlined, for the endpoint program's stack.
 */
static __attribute__((noinline)) int lb_reply(const struct flow *f, struct nat_entry *front)
{
	struct nat_key k = {};
	struct nat_entry *e;
	__u32 now = ct_now();

	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return 0;
	nat_key_of(&k, f, LB_CT_REPLY);
	e = bpf_map_lookup_elem(&cilium_lb_ct, &k);
	if (!e || e->expires < now)
		return 0;
	nat_refresh(e, f, now);
	__builtin_memcpy(front, e, sizeof(*front));
	return 1;
}

/* Gives a reply its frontend as source (f follows). */
static __always_inline int lb_rewrite_reply(struct __sk_buff *skb, struct flow *f, __u32 l4_off, __u8 icmp_type,
					    const struct nat_entry *front)
{
	if (nat_rewrite(skb, f, l4_off, 1, front->addr, front->port, icmp_type) < 0)
		return -1;
	__builtin_memcpy(f->saddr, front->addr, 16);
	f->sport = front->port;
	return 0;
}

#endif
