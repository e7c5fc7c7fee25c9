/*
 * Connect-time service translation for the host's own sockets (cgroup
 * sock_addr hooks on the cgroup v2 root): a socket that connects, or sends
 * a datagram, to a frontend is given a backend's address before any packet
 * exists, so its packets go to the backend untranslated and nothing is kept
 * per packet; getpeername and recvmsg give the frontend back. The hooks see
 * the sockets of every namespace; only the agent's own (the host's) are
 * translated here, containers' packets are translated at their veth (lb.h),
 * and a client in another namespace reaching a host address is translated
 * where its packets enter (cil_from_netdev).
 */
#ifndef CILIUM_SOCK_H
#define CILIUM_SOCK_H

#include <asm-generic/errno.h>
#include "common.h"
#include "maps.h"
#include "parse.h"
#include "lb.h"

/* What a sock_addr program returns: go on, or fail the call (with the errno bpf_set_retval gave). */
#define SOCK_ALLOW 1
#define SOCK_REJECT 0

static __always_inline int addr_is_v4_mapped(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;

	return !w[0] && !w[1] && w[2] == bpf_htonl(0xffff);
}

/* The socket's address argument, IPv4 as ::ffff:a.b.c.d. */
static __always_inline void sock_addr_get(const struct bpf_sock_addr *ctx, int v6, __u8 *addr)
{
	__u32 *w = (__u32 *)addr;

	if (!v6) {
		v4_mapped(addr, ctx->user_ip4);
		return;
	}
	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
}

static __always_inline void sock_addr_set(struct bpf_sock_addr *ctx, int v6, const __u8 *addr, __be16 port)
{
	const __u32 *w = (const __u32 *)addr;

	if (!v6) {
		ctx->user_ip4 = w[3];
	} else {
		ctx->user_ip6[0] = w[0];
		ctx->user_ip6[1] = w[1];
		ctx->user_ip6[2] = w[2];
		ctx->user_ip6[3] = w[3];
	}
	ctx->user_port = port;
}

/*
 * connect and sendmsg: a frontend's address becomes a backend's. A
 * connection picks its backend at random (with Maglev, by the socket's
 * cookie: no port is bound yet to make a 5-tuple of); each datagram of an
 * unconnected socket, by the socket's cookie, so one socket keeps talking
 * to one backend while the set is unchanged. A frontend without a usable backend
 * fails the call with ECONNREFUSED, as a connection to a closed port would.
 */
static __always_inline int sock_to_backend(struct bpf_sock_addr *ctx, int v6, int by_socket)
{
	struct lb_sock_frontend front = {};
	struct lb_sock_key rk = {};
	struct lb_svc_key k = {};
	struct lb_svc_value *svc;
	struct lb_backend *be;
	__u8 proto = ctx->protocol;
	__be16 port = ctx->user_port;
	__u8 addr[16];
	__u64 cookie;
	__u32 id;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return SOCK_ALLOW;
	if (bpf_get_netns_cookie(ctx) != datapath_config.host_netns_cookie)
		return SOCK_ALLOW;
	sock_addr_get(ctx, v6, addr);
	svc = lb_frontend(addr, port, proto, addr_is_v4_mapped(addr) ? 4 : 6, 0, &k);
	if (!svc)
		return SOCK_ALLOW;
	cookie = bpf_get_socket_cookie(ctx);
	be = lb_pick(&k, svc->count, by_socket || datapath_config.maglev_table_size ? (__u32)cookie : bpf_get_prandom_u32(), &id);
	/* an IPv4 socket cannot be sent to an IPv6 backend */
	if (!be || (!v6 && !addr_is_v4_mapped(be->addr))) {
		bpf_set_retval(-ECONNREFUSED);
		return SOCK_REJECT;
	}
	rk.cookie = cookie;
	__builtin_memcpy(rk.addr, be->addr, 16);
	rk.port = be->port;
	rk.proto = proto;
	__builtin_memcpy(front.addr, addr, 16);
	front.port = port;
	/* Without the entry only getpeername and recvmsg show the backend: the connection still works. */
	bpf_map_update_elem(&cilium_lb_sock, &rk, &front, BPF_ANY);
	sock_addr_set(ctx, v6, be->addr, be->port);
	return SOCK_ALLOW;
}

/* getpeername and recvmsg: the backend a translated socket talks to shows as the frontend it asked for. */
static __always_inline int sock_to_frontend(struct bpf_sock_addr *ctx, int v6)
{
	struct lb_sock_frontend *front;
	struct lb_sock_key rk = {};

	rk.cookie = bpf_get_socket_cookie(ctx);
	sock_addr_get(ctx, v6, rk.addr);
	rk.port = ctx->user_port;
	rk.proto = ctx->protocol;
	front = bpf_map_lookup_elem(&cilium_lb_sock, &rk);
	if (front)
		sock_addr_set(ctx, v6, front->addr, front->port);
	return SOCK_ALLOW;
}

#endif
