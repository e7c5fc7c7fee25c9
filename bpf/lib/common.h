/* Shared definitions for the endpoint programs. */
#ifndef CILIUM_COMMON_H
#define CILIUM_COMMON_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#endif
