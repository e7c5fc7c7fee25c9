/*
 * Who sent a packet the host's stack hands to an endpoint. Only the host's
 * own stack (a local socket) is the host: what the host merely forwards or
 * NATs (a container of another Docker network masqueraded to a host address,
 * a namespace routed through the host, another machine) is its real source,
 * or the world.
 */
#ifndef CILIUM_IDENTITY_H
#define CILIUM_IDENTITY_H

#include "parse.h"
#include "policy.h"
#include "proxy.h"

/*
 * skb->mark of packets an endpoint program passes to the host's stack: the
 * sender's identity in the upper 16 bits, as Cilium's MARK_MAGIC_IDENTITY.
 * The mark is cleared whenever a packet crosses into another namespace, so no
 * container can set it.
 */
#define MARK_MAGIC_MASK 0x0F00
#define MARK_MAGIC_IDENTITY 0x0F00

/* Sent by the L7 proxy's upstream socket, for the client whose identity the mark carries (proxy.h). */
static __always_inline int from_proxy(const struct __sk_buff *skb)
{
	return (skb->mark & MARK_MAGIC_MASK) == MARK_MAGIC_FROM_PROXY;
}

static __always_inline void mark_source_identity(struct __sk_buff *skb, __u32 identity)
{
	if (identity <= 0xffff)
		skb->mark = identity << 16 | MARK_MAGIC_IDENTITY;
}

#if HAVE_NF_CT_KFUNCS
/* The netfilter conntrack kfuncs (Linux 6.0+), and just the nf_conn fields we read (CO-RE). */
struct bpf_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u8 reserved[2];
};

union nf_inet_addr {
	__u32 all[4];
} __attribute__((preserve_access_index));

struct nf_conntrack_man {
	union nf_inet_addr u3;
} __attribute__((preserve_access_index));

struct nf_conntrack_tuple {
	struct nf_conntrack_man src;
} __attribute__((preserve_access_index));

struct nf_conntrack_tuple_hash {
	struct nf_conntrack_tuple tuple;
} __attribute__((preserve_access_index));

struct nf_conn {
	struct nf_conntrack_tuple_hash tuplehash[2];
} __attribute__((preserve_access_index));

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u32 tuple__sz,
					 struct bpf_ct_opts *opts, __u32 opts__sz) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;

#define NF_CT_OPTS_SZ 12
#define BPF_F_CURRENT_NETNS_ID -1

/*
 * The original source of a connection the host NATed (source-NAT) towards
 * the endpoint: the packet is in the connection's reply tuple reversed.
 * Returns 0 when netfilter tracks no such translation.
 */
static __always_inline int nat_original_source(struct __sk_buff *skb, const struct flow *f, __u8 *orig)
{
	struct bpf_ct_opts opts = { .netns_id = BPF_F_CURRENT_NETNS_ID, .l4proto = f->proto };
	struct bpf_sock_tuple t = {};
	struct nf_conn *ct;
	__u32 size;
	int changed;

	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return 0;
	if (f->family == 4) {
		__builtin_memcpy(&t.ipv4.saddr, f->daddr + 12, 4);
		__builtin_memcpy(&t.ipv4.daddr, f->saddr + 12, 4);
		t.ipv4.sport = f->dport;
		t.ipv4.dport = f->sport;
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, f->daddr, 16);
		__builtin_memcpy(t.ipv6.daddr, f->saddr, 16);
		t.ipv6.sport = f->dport;
		t.ipv6.dport = f->sport;
		size = sizeof(t.ipv6);
	}
	ct = bpf_skb_ct_lookup(skb, &t, size, &opts, NF_CT_OPTS_SZ);
	if (!ct)
		return 0;
	if (f->family == 4) {
		v4_mapped(orig, ct->tuplehash[0].tuple.src.u3.all[0]);
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++) {
			__u32 w = ct->tuplehash[0].tuple.src.u3.all[i];
			__builtin_memcpy(orig + 4 * i, &w, 4);
		}
	}
	bpf_ct_release(ct);
	changed = 0;
#pragma unroll
	for (int i = 0; i < 16; i++)
		changed |= orig[i] != f->saddr[i];
	return changed;
}
#else
static __always_inline int nat_original_source(struct __sk_buff *skb, const struct flow *f, __u8 *orig)
{
	return 0;
}
#endif

/* Sources whose address alone proves nothing once the host forwarded the packet. */
static __always_inline int trusted_only_locally(const struct ipcache_value *v)
{
	return v && (v->identity == ID_HOST || v->owner);
}

/* The identity of the sender of a packet leaving the host's stack towards an endpoint. */
static __always_inline __u32 source_identity(struct __sk_buff *skb, const struct flow *f)
{
	struct ipcache_value *v;
	__u8 orig[16];

	/* an endpoint's packet that took the host's route, or its proxy's (0: an identity too large for the mark, in the ipcache) */
	if (((skb->mark & MARK_MAGIC_MASK) == MARK_MAGIC_IDENTITY || from_proxy(skb)) && skb->mark >> 16)
		return skb->mark >> 16;
	v = ipcache_lookup(f->saddr);
	if (!trusted_only_locally(v))
		return v ? v->identity : ID_WORLD;
	if (skb->sk)
		return v->identity; /* sent by a socket of the host's own stack */
	if (nat_original_source(skb, f, orig)) {
		v = ipcache_lookup(orig);
		if (!trusted_only_locally(v))
			return v ? v->identity : ID_WORLD;
	}
	return ID_WORLD;
}

#endif
