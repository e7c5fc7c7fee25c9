/* Maps shared by every endpoint program; pinned by the agent under its BPF root. */
#ifndef CILIUM_MAPS_H
#define CILIUM_MAPS_H

#include "common.h"

/* The agent's settings, in .rodata: fixed when it loads the object (datapath/bpf/loader.ts). */
struct datapath_config {
	__u32 host_to_endpoint_allowed; /* the host reaches every endpoint (--allow-localhost=always) */
	__u16 nat_port_min;             /* masquerade ports, host order */
	__u16 nat_port_max;
	__u64 host_netns_cookie; /* the agent's network namespace: the host, whose sockets are translated at connect */
	__u32 maglev_table_size; /* backends picked through each service's Maglev table of this many entries; 0: at random */
	__u32 pad;
};

const volatile struct datapath_config datapath_config = { 1, 61000, 65535, 0, 0, 0 };

/* ifindex of the host-side veth -> endpoint. Written before the program is attached. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct endpoint_info);
} cilium_lxc SEC(".maps");

struct ipcache_key {
	__u32 prefixlen; /* over addr, IPv4 as ::ffff:0:0/96 + n */
	__u8 addr[16];
};

struct ipcache_value {
	__u32 identity;
	__u32 owner; /* for endpoint addresses: the container holding it, else 0 */
};

/* prefix -> security identity: endpoints, the host, CIDR identities. A miss is "world". */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 524288);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
} cilium_ipcache SEC(".maps");

struct policy_key {
	__u32 ep_id;
	__u32 identity; /* 0: any identity */
	__u16 dport;    /* network order; 0: any port */
	__u8 proto;     /* 0: any protocol */
	__u8 dir;
};

struct policy_value {
	__u64 packets;
	__u64 bytes;
	__u16 proxy_port; /* host order; 0: no L7 rules, else their proxy's listener (proxy.h) */
	__u8 pad[6];
};

/* What each endpoint allows, keyed by peer identity and L4 port, with hit counters. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1048576);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
} cilium_policy SEC(".maps");

/*
 * Scoped by container rather than endpoint: a container on two networks may
 * receive a connection on one interface and answer through the other.
 */
struct ct_key {
	struct flow flow;
	__u32 owner;
	__u32 dir;
};

struct ct_value {
	__u64 packets;
	__u64 bytes;
	__u32 peer_identity;
	__u32 expires;    /* CLOCK_MONOTONIC seconds; the entry is dead after it */
	__u32 ep_ifindex; /* the endpoint whose policy allowed it */
	__u32 policy_gen; /* that endpoint's policy generation when last checked */
	__u8 flags;       /* CT_F_* (conntrack.h) */
	__u8 pad;
	__u16 proxy_port; /* host order: the connection goes through the proxy listening there */
	__u8 pad2[4];
};

/*
 * Connections a container's policy allowed, with TCP state and a lifetime:
 * later packets and replies pass while the policy that allowed them stands.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
} cilium_ct SEC(".maps");

/*
 * Room for the conntrack key and entry a verdict builds, and the flow an
 * ICMP error quotes: one BPF stack (512 bytes, shared by the calls on it)
 * cannot hold them beside the rest. Per CPU, not pinned.
 */
struct ct_scratch {
	struct ct_key key;
	struct ct_value value;
	struct flow quoted;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_scratch);
} cilium_ct_scratch SEC(".maps");

struct frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id; /* IPv4's 16-bit or IPv6's 32-bit identification */
	__u8 proto;
	__u8 pad[3];
};

struct frag_ports {
	__u16 sport; /* network order */
	__u16 dport;
};

/* Ports of datagrams in flight as fragments, from their first fragment: later ones carry none. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct frag_key);
	__type(value, struct frag_ports);
} cilium_frag SEC(".maps");

struct ep_addr_value {
	__u32 ifindex;
	__u8 mac[6];      /* the container's */
	__u8 host_mac[6]; /* its host-side veth's: the gateway's MAC as the container sees it */
};

/*
 * Endpoint address (16 bytes, IPv4 as ::ffff:a.b.c.d) -> its veth: traffic
 * between local endpoints is delivered straight into the peer's namespace,
 * never through the host's routing and netfilter.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__type(key, __u8[16]);
	__type(value, struct ep_addr_value);
} cilium_ep_addr SEC(".maps");

/* Drops and policy verdicts for the agent's monitor. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} cilium_events SEC(".maps");

/* Each CPU's budget of events (a token bucket): see events_allowed(). Not pinned. */
struct events_budget {
	__u64 last_ns;
	__u64 tokens;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct events_budget);
} cilium_events_budget SEC(".maps");

struct metrics_key {
	__u8 reason;
	__u8 dir;
	__u16 pad;
};

struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

/* Packets and bytes by verdict reason and direction, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 256);
	__type(key, struct metrics_key);
	__type(value, struct metrics_value);
} cilium_metrics SEC(".maps");

struct nat_key {
	struct flow tuple; /* tcp_flags and pad zero */
	__u8 dir;          /* DIR_EGRESS: as the endpoint sent it; DIR_INGRESS: the reply as it arrives */
	__u8 pad[3];
};

struct nat_entry {
	__u8 addr[16]; /* egress: the address it leaves with; ingress: the endpoint's */
	__be16 port;   /* likewise (ICMP echo: the identifier) */
	__u8 flags;    /* NAT_F_* */
	__u8 pad;
	__u32 expires; /* CLOCK_MONOTONIC seconds */
};

/* Masquerade translations, both directions of each flow. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct nat_key);
	__type(value, struct nat_entry);
} cilium_snat SEC(".maps");

struct nat_device {
	__u8 ipv4[4];  /* zero: IPv4 is not masqueraded through it */
	__u8 ipv6[16]; /* likewise */
};

/* ifindex -> the addresses endpoint traffic leaving through that device takes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct nat_device);
} cilium_nat_dev SEC(".maps");

/* Destinations never masqueraded: the native routing CIDRs and --masquerade-exclude. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_key);
	__type(value, __u32);
} cilium_nat_exclude SEC(".maps");

/*
 * Services (published ports for now), Cilium's LB layout: a frontend's slot 0
 * holds its backend count, slots 1..count the backend IDs, so a backend is
 * picked with two lookups whatever the number of services. A frontend
 * address of zeros (IPv4: ::ffff:0.0.0.0) is every host address.
 */
struct lb_svc_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 pad;
	__u16 slot;
	__u8 pad2[2];
};

struct lb_svc_value {
	__u32 backend_id; /* slots 1..count */
	__u16 count;      /* slot 0 */
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_svc_value);
} cilium_lb_svc SEC(".maps");

struct lb_backend {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct lb_backend);
} cilium_lb_backend SEC(".maps");

/*
 * Maglev (--bpf-lb-algorithm=maglev): each service's lookup table of
 * maglev_table_size backend IDs, in chunks keyed by the service's frontend
 * with the chunk's number as slot. A flow's hash picks an entry, so the same
 * flow finds the same backend wherever it is looked up, and a backend's
 * coming or going moves few flows of the others.
 */
#define LB_MAGLEV_CHUNK 256

struct lb_maglev_chunk {
	__u32 backend_ids[LB_MAGLEV_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_maglev_chunk);
} cilium_lb_maglev SEC(".maps");

/*
 * Translated service flows, both ways (nat_key.dir LB_CT_*): the client's
 * packets keep their backend, the backend's replies get the frontend back.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct nat_key);
	__type(value, struct nat_entry);
} cilium_lb_ct SEC(".maps");

/*
 * Sockets of the host translated at connect or sendmsg: a socket (cookie)
 * and the backend it was given -> the frontend it asked for, which
 * getpeername and recvmsg give back. LRU: a closed socket's entry just ages out.
 */
struct lb_sock_key {
	__u64 cookie;
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 pad[5];
};

struct lb_sock_frontend {
	__u8 addr[16];
	__be16 port;
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb_sock_key);
	__type(value, struct lb_sock_frontend);
} cilium_lb_sock SEC(".maps");

#endif
