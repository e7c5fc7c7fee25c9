/* Datapath events to the agent through the ring buffer, and verdict metrics. */
#ifndef CILIUM_EVENTS_H
#define CILIUM_EVENTS_H

#include "maps.h"

struct event {
	__u8 type;
	__u8 reason;
	__u8 dir;
	__u8 pad;
	__u32 ep_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 len;
	__u32 ifindex;
	struct flow flow;
};

static __always_inline void count(__u8 reason, __u8 dir, __u32 len)
{
	struct metrics_key k = { .reason = reason, .dir = dir };
	struct metrics_value *v = bpf_map_lookup_elem(&cilium_metrics, &k);

	if (v) {
		v->packets++;
		v->bytes += len;
	} else {
		struct metrics_value init = { .packets = 1, .bytes = len };
		bpf_map_update_elem(&cilium_metrics, &k, &init, BPF_NOEXIST);
	}
}

/*
 * A flood of denied packets must not become a flood of events: the agent
 * decodes each one on its only thread. Each CPU reports at most
 * EVENTS_PER_SEC a second (bursts up to EVENTS_BURST); verdicts and the
 * metrics counters are unaffected.
 */
#define EVENTS_PER_SEC 1000
#define EVENTS_BURST 1000
#define NS_PER_EVENT (1000000000ULL / EVENTS_PER_SEC)

static __always_inline int events_allowed(void)
{
	__u32 zero = 0;
	struct events_budget *b = bpf_map_lookup_elem(&cilium_events_budget, &zero);
	__u64 now, earned;

	if (!b)
		return 1;
	now = bpf_ktime_get_ns();
	earned = (now - b->last_ns) / NS_PER_EVENT;
	if (earned) {
		b->tokens = b->tokens + earned > EVENTS_BURST ? EVENTS_BURST : b->tokens + earned;
		b->last_ns = now;
	}
	if (!b->tokens)
		return 0;
	b->tokens--;
	return 1;
}

static __always_inline void emit(struct __sk_buff *skb, __u8 type, __u8 reason, __u8 dir, __u32 ep_id,
				 __u32 src_id, __u32 dst_id, const struct flow *f)
{
	struct event *e;

	if (!events_allowed())
		return;
	e = bpf_ringbuf_reserve(&cilium_events, sizeof(*e), 0);
	if (!e)
		return; /* monitor lagging: the verdict stands, only its report is lost */
	e->type = type;
	e->reason = reason;
	e->dir = dir;
	e->pad = 0;
	e->ep_id = ep_id;
	e->src_identity = src_id;
	e->dst_identity = dst_id;
	e->len = skb->len;
	e->ifindex = skb->ifindex;
	__builtin_memcpy(&e->flow, f, sizeof(*f));
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int drop(struct __sk_buff *skb, __u8 reason, __u8 dir, __u32 ep_id, __u32 src_id,
				__u32 dst_id, const struct flow *f)
{
	count(reason, dir, skb->len);
	emit(skb, EVENT_DROP, reason, dir, ep_id, src_id, dst_id, f);
	return TC_ACT_SHOT;
}

#endif
