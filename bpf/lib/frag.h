/* Fragments: later fragments carry no L4 header, so they take their first fragment's ports. */
#ifndef CILIUM_FRAG_H
#define CILIUM_FRAG_H

#include "maps.h"

static __always_inline void frag_key_of(struct frag_key *k, const struct flow *f, __u32 id)
{
	__builtin_memcpy(k->saddr, f->saddr, 16);
	__builtin_memcpy(k->daddr, f->daddr, 16);
	k->id = id;
	k->proto = f->proto;
}

/* The first fragment of a datagram (offset 0, more to come): remember its ports. */
static __always_inline void frag_ports_store(const struct flow *f, __u32 id)
{
	struct frag_key k = {};
	struct frag_ports p = { .sport = f->sport, .dport = f->dport };

	frag_key_of(&k, f, id);
	bpf_map_update_elem(&cilium_frag, &k, &p, BPF_ANY);
}

/*
 * A later fragment: its datagram's ports, so L4 policy and conntrack see it as
 * the first. Returns 0 when the first fragment was not seen (it is dropped:
 * matching it on addresses alone would let port rules be bypassed).
 */
static __always_inline int frag_ports_lookup(struct flow *f, __u32 id)
{
	struct frag_key k = {};
	struct frag_ports *p;

	frag_key_of(&k, f, id);
	p = bpf_map_lookup_elem(&cilium_frag, &k);
	if (!p)
		return 0;
	f->sport = p->sport;
	f->dport = p->dport;
	return 1;
}

#endif
