/*
 * Shared definitions for the endpoint programs. The ID_, DIR_, REASON_,
 * EP_F_, CT_F_ and EVENT_ constants are mirrored in datapath/bpf/constants.ts
 * (test/unit/bpf-constants.test.ts compares the two).
 */
#ifndef CILIUM_COMMON_H
#define CILIUM_COMMON_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/*
 * ARP and ICMP constants, from linux/if_arp.h and linux/icmp.h: both pull in
 * linux/if.h and so glibc's sys/socket.h, which a BPF target cannot use (it
 * asks for gnu/stubs-32.h). BPF code includes self-contained uapi headers and
 * libbpf's only; `make -C bpf check-headers` proves it.
 */
#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMP_FRAG_NEEDED 4 /* code of ICMP_DEST_UNREACH */

/* The first 8 bytes of an ICMP or ICMPv6 message. */
struct icmp_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 seq;
};

/* Reserved identities, as in Cilium. */
#define ID_WORLD 2
#define ID_HOST 1
#define ID_INIT 5

/* Directions, from the endpoint's point of view. */
#define DIR_INGRESS 1
#define DIR_EGRESS 2

/* Drop and verdict reasons carried in events and metrics. */
#define REASON_FORWARDED 0
#define REASON_POLICY_DENIED 1
#define REASON_INVALID_SMAC 2
#define REASON_INVALID_SIP 3
#define REASON_UNKNOWN_ENDPOINT 4
#define REASON_UNSUPPORTED_L3 5
#define REASON_NOT_READY 6
#define REASON_INVALID_PACKET 7
#define REASON_NO_RELATED_CONNECTION 8 /* an ICMP error about no connection in the table */
#define REASON_FRAG_NOT_FOUND 9        /* a later fragment whose first one was not seen */
#define REASON_NAT_NO_PORT 10          /* every masquerade port for that destination is in use */
#define REASON_NO_BACKEND 11           /* a service (published port) without a backend */
#define REASON_PROXY_UNAVAILABLE 12    /* an L7-policed port and no proxy listening: fail closed */
#define REASON_PROXY_UNSUPPORTED 13    /* an L7-policed port reached on a path that cannot redirect */

/* Endpoint flags. */
#define EP_F_INGRESS_ENFORCE 1
#define EP_F_EGRESS_ENFORCE 2
#define EP_F_NOT_READY 4 /* identity not known yet: fail closed */

/* ct_value.flags (conntrack.h). */
#define CT_F_ESTABLISHED 1 /* a packet without SYN was seen */
#define CT_F_TX_CLOSING 2  /* FIN from the side that opened it */
#define CT_F_RX_CLOSING 4  /* FIN from the other side */
#define CT_F_RESET 8
#define CT_F_DENIED 16 /* revoked: the policy that allowed it no longer does */
#define CT_F_PROXY_UPSTREAM 32 /* the proxy's own connection, as the client, to the destination */

/* nat_entry.flags (nat.h). */
#define NAT_F_CLOSING 1 /* the TCP connection saw a FIN or RST: its port is freed soon */
#define NAT_F_HAIRPIN 2 /* an lb_ct reply entry of a backend that is its own client (lb.h) */

/* nat_key.dir in cilium_lb_ct (lb.h). */
#define LB_CT_SERVICE 1 /* client -> frontend, as it arrives: the backend it goes to */
#define LB_CT_REPLY 2   /* backend -> client, as the backend sends it: the frontend it came to */

/* struct event.type (events.h). */
#define EVENT_DROP 1
#define EVENT_POLICY_VERDICT 2
#define EVENT_TRACE 3 /* a new connection allowed without a policy lookup */

/* Every address is held as 16 bytes; IPv4 as ::ffff:a.b.c.d. */
struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* network order */
	__u16 dport; /* network order */
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u8 tcp_flags;
	__u8 pad;
};

struct endpoint_info {
	__u32 ep_id;
	__u32 flags;
	__u32 identity;
	__u32 owner; /* the container (sandbox) it belongs to; 0 until joined */
	__u8 mac[6];
	__u8 pad[2];
	__u8 ipv4[4];
	__u8 ipv6[16];
	__u8 host_mac[6]; /* the host side's: the container's gateway MAC */
	__u8 pad2[2];
	/*
	 * Bumped by the agent whenever the endpoint's policy allows less than it
	 * did: conntrack entries checked under another generation are checked again.
	 */
	__u32 policy_gen;
};

#endif
