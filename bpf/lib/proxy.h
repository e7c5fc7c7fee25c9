/*
 * L7 policy: the connections of a port whose rules look at requests go to
 * this host's proxy (proxy/), transparently. The packet keeps its addresses;
 * bpf_sk_assign hands it to the proxy's listener (IP_TRANSPARENT), whose
 * accepted socket's local address is the original destination, and a mark
 * routes it to the host's local table (ip rule fwmark MARK_MAGIC_TO_PROXY
 * lookup 2004: local 0.0.0.0/0 dev lo). The proxy connects on to the
 * destination from the client's address, marked with the client's identity.
 */
#ifndef CILIUM_PROXY_H
#define CILIUM_PROXY_H

#include "conntrack.h"

/* skb->mark: deliver to a local socket whatever the destination address. */
#define MARK_MAGIC_TO_PROXY 0x0200
/* SO_MARK of the proxy's upstream sockets, the client's identity in the upper 16 bits. */
#define MARK_MAGIC_FROM_PROXY 0x0A00

/*
 * enforce_packet()'s verdicts beyond TC_ACT_OK and a drop: to the proxy
 * listening on the port in the low 16 bits; or a destination's reply to the
 * proxy's upstream connection, for the host's stack.
 */
#define VERDICT_PROXY 0x10000
#define VERDICT_PROXY_REPLY 0x20000

static __always_inline __u32 tuple_of(struct bpf_sock_tuple *t, const struct flow *f)
{
	if (f->family == 4) {
		__builtin_memcpy(&t->ipv4.saddr, f->saddr + 12, 4);
		__builtin_memcpy(&t->ipv4.daddr, f->daddr + 12, 4);
		t->ipv4.sport = f->sport;
		t->ipv4.dport = f->dport;
		return sizeof(t->ipv4);
	}
	__builtin_memcpy(t->ipv6.saddr, f->saddr, 16);
	__builtin_memcpy(t->ipv6.daddr, f->daddr, 16);
	t->ipv6.sport = f->sport;
	t->ipv6.dport = f->dport;
	return sizeof(t->ipv6);
}

/*
 * Gives the packet to the proxy: to the connection it accepted for this
 * tuple, or (a SYN, or none yet) to its listener. A listener found for the
 * tuple itself is someone else's (a host socket on the original port) and
 * is passed over. Returns 0, or -1 when the proxy does not listen.
 */
static __attribute__((noinline)) int proxy_assign(struct __sk_buff *skb, const struct flow *f, __u32 proxy_port)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk = 0;
	__u32 len = tuple_of(&t, f);
	int r;

	if ((f->tcp_flags & (TCP_F_SYN | TCP_F_ACK)) != TCP_F_SYN) {
		sk = bpf_skc_lookup_tcp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
		if (sk && sk->state == BPF_TCP_LISTEN) {
			bpf_sk_release(sk);
			sk = 0;
		}
	}
	if (!sk) {
		if (f->family == 4)
			t.ipv4.dport = bpf_htons(proxy_port);
		else
			t.ipv6.dport = bpf_htons(proxy_port);
		sk = bpf_skc_lookup_tcp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return -1;
		if (sk->state != BPF_TCP_LISTEN) {
			bpf_sk_release(sk);
			return -1;
		}
	}
	r = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (r)
		return -1;
	skb->mark = MARK_MAGIC_TO_PROXY;
	return 0;
}

#endif
