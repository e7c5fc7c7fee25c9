/*
 * Program for the host side of an endpoint's veth (tc clsact).
 * Compiled once at build time; per-endpoint values arrive through read-only
 * globals and maps, so creating an endpoint never runs the compiler.
 * The foundation passes traffic untouched; identity-based policy builds on it.
 */
#include "lib/common.h"

SEC("tc")
int cil_from_container(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
