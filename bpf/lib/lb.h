/*
 * Service translation: a packet to a frontend (a published port on a host
 * address, or a service's virtual address and port) gets a backend's
 * address and port as its destination,
 * and the backend's replies get the frontend back as their source. Both are
 * done per packet at the first program the packet meets: a device's ingress
 * for clients beyond the host, an endpoint's egress for containers. The
 * host's own sockets are translated once, when they connect (sock.h).
 */
#ifndef CILIUM_LB_H
#define CILIUM_LB_H

#include "common.h"
#include "identity.h"
#include "maps.h"
#include "nat.h"

#define LB_NONE 0
#define LB_TRANSLATED 1

/*
 * The source a backend sees when it is its own client (it reached its own
 * service and was picked): with its own address as source, the packet
 * would come back to it as a martian. Cilium's --loopback-ipv4.
 */
#define LB_HAIRPIN_V4 0xa9fe2a01 /* 169.254.42.1 */

static __always_inline int addr_equal(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* 127.0.0.0/8 (v4-mapped) or ::1. Compared word by word: a constant array would land in .rodata, the agent's settings. */
static __always_inline int addr_is_loopback(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;

	if (w[0] || w[1])
		return 0;
	if (w[2] == bpf_htonl(0xffff))
		return a[12] == 127;
	return !w[2] && w[3] == bpf_htonl(1);
}

/*
 * The frontend a connection to addr:port is for: its exact address, or, for
 * a host address (loopback included, which only the host's own sockets
 * use), the every-host-address frontend of that family. addr_identity: the
 * address's identity when the caller has it already (0: looked up here,
 * when needed).
 */
static __always_inline struct lb_svc_value *lb_frontend(const __u8 *addr, __be16 port, __u8 proto, __u8 family, __u32 addr_identity,
							struct lb_svc_key *k)
{
	struct lb_svc_value *v;

	__builtin_memcpy(k->addr, addr, 16);
	k->port = port;
	k->proto = proto;
	k->slot = 0;
	v = bpf_map_lookup_elem(&cilium_lb_svc, k);
	if (v)
		return v;
	if (!addr_identity)
		addr_identity = ipcache_identity(addr);
	if (addr_identity != ID_HOST && !addr_is_loopback(addr))
		return NULL;
	__builtin_memset(k->addr, 0, 16);
	if (family == 4) {
		k->addr[10] = 0xff;
		k->addr[11] = 0xff;
	}
	return bpf_map_lookup_elem(&cilium_lb_svc, k);
}

/* murmur3's finaliser: every input bit moves every output bit. */
static __always_inline __u32 hash_mix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* A flow's hash for Maglev: its 5-tuple, to the frontend. */
static __always_inline __u32 flow_hash(const struct flow *f)
{
	const __u32 *s = (const __u32 *)f->saddr, *d = (const __u32 *)f->daddr;
	__u32 h = f->proto;

#pragma unroll
	for (int i = 0; i < 4; i++)
		h = hash_mix(h ^ s[i]) ^ d[i];
	return hash_mix(h ^ (((__u32)f->sport << 16) | f->dport));
}

/*
 * One of the frontend's backends (k: its slot-0 key; count: its backends):
 * the hash's entry of its Maglev table, or, picking at random, its slot
 * 1 + hash % count.
 */
static __always_inline struct lb_backend *lb_pick(struct lb_svc_key *k, __u16 count, __u32 hash, __u32 *id)
{
	__u32 size = datapath_config.maglev_table_size;
	struct lb_maglev_chunk *chunk;
	struct lb_svc_value *slot;
	__u32 entry;

	if (!count)
		return NULL;
	if (size) {
		entry = hash % size;
		k->slot = entry / LB_MAGLEV_CHUNK;
		chunk = bpf_map_lookup_elem(&cilium_lb_maglev, k);
		if (!chunk)
			return NULL;
		*id = chunk->backend_ids[entry & (LB_MAGLEV_CHUNK - 1)];
	} else {
		k->slot = 1 + hash % count;
		slot = bpf_map_lookup_elem(&cilium_lb_svc, k);
		if (!slot)
			return NULL;
		*id = slot->backend_id;
	}
	return bpf_map_lookup_elem(&cilium_lb_backend, id);
}

/*
 * Translates the destination of a packet to a service: the backend its flow
 * already has, or one picked now (by Maglev, else at random), remembering
 * both directions. Returns LB_NONE when it is not for a service (f
 * unchanged), LB_TRANSLATED when it was (f now has the backend), or a
 * REASON_ to drop it with (negated). Not inlined: its keys and entries
 * would not fit beside the callers' own in one 512-byte stack.
 */
static __attribute__((noinline)) int lb_dnat(struct __sk_buff *skb, struct flow *f, __u32 l4_off, __u8 icmp_type, __u32 dst_identity)
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
	svc = lb_frontend(f->daddr, f->dport, f->proto, f->family, dst_identity, &sk);
	if (!svc) {
		/*
		 * A connection opened straight to a backend, on the ports of a
		 * service connection it just closed: its replies are no longer the
		 * service's (each one would refresh the translation, and the
		 * client would never see its SYN answered).
		 */
		if (f->proto == IPPROTO_TCP && (f->tcp_flags & (TCP_F_SYN | TCP_F_ACK)) == TCP_F_SYN) {
			rk.dir = LB_CT_REPLY;
			flow_reverse(f, &rk.tuple);
			bpf_map_delete_elem(&cilium_lb_ct, &rk);
		}
		return LB_NONE;
	}
	nat_key_of(&k, f, LB_CT_SERVICE);
	e = bpf_map_lookup_elem(&cilium_lb_ct, &k);
	if (e && e->expires >= now) {
		nat_refresh(e, f, now);
		__builtin_memcpy(&to, e, sizeof(to));
	} else {
		be = lb_pick(&sk, svc->count, datapath_config.maglev_table_size ? flow_hash(f) : bpf_get_prandom_u32(), &id);
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
		if (f->family == 4 && addr_equal(be->addr, f->saddr)) {
			v4_mapped(rk.tuple.daddr, bpf_htonl(LB_HAIRPIN_V4));
			front.flags = NAT_F_HAIRPIN;
		}
		if (bpf_map_update_elem(&cilium_lb_ct, &rk, &front, BPF_ANY) ||
		    bpf_map_update_elem(&cilium_lb_ct, &k, &to, BPF_ANY))
			return -REASON_NO_BACKEND;
	}
	if (nat_rewrite(skb, f, l4_off, 0, to.addr, to.port, icmp_type) < 0)
		return -REASON_INVALID_PACKET;
	__builtin_memcpy(f->daddr, to.addr, 16);
	f->dport = to.port;
	/* Its own backend (IPv6 has no such source yet: the connection fails). */
	if (f->family == 4 && addr_equal(f->daddr, f->saddr)) {
		v4_mapped(rk.tuple.daddr, bpf_htonl(LB_HAIRPIN_V4));
		if (nat_rewrite(skb, f, l4_off, 1, rk.tuple.daddr, f->sport, icmp_type) < 0)
			return -REASON_INVALID_PACKET;
		__builtin_memcpy(f->saddr, rk.tuple.daddr, 16);
	}
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
