/**
 * The datapath's constants, as bpf/lib/common.h defines them (ID_ is
 * identity/reserved.ts, protocols are the kernel's: net/protocol.ts). Each
 * member is the C name without its prefix, in camelCase:
 * test/unit/bpf-constants.test.ts holds the two to each other.
 */

/** DIR_*: from the endpoint's point of view. */
export const DIR = { ingress: 1, egress: 2 } as const;
export type Direction = keyof typeof DIR;
export const directionOf = (n: number): Direction => (n === DIR.ingress ? 'ingress' : 'egress');

/** EP_F_*: endpoint_info.flags. */
export const EP_FLAGS = { ingressEnforce: 1, egressEnforce: 2, notReady: 4 } as const;

/** CT_F_*: ct_value.flags. */
export const CT_FLAGS = { established: 1, txClosing: 2, rxClosing: 4, reset: 8, denied: 16, proxyUpstream: 32 } as const;

/** NAT_F_*: nat_entry.flags. */
export const NAT_FLAGS = { closing: 1, hairpin: 2 } as const;

/** LB_CT_*: nat_key.dir in cilium_lb_ct. */
export const LB_CT = { service: 1, reply: 2 } as const;

/** EVENT_*: event.type. */
export const EVENT = { drop: 1, policyVerdict: 2, trace: 3 } as const;

/** REASON_*: the verdict of events and metrics. */
export const REASON = {
  forwarded: 0,
  policyDenied: 1,
  invalidSmac: 2,
  invalidSip: 3,
  unknownEndpoint: 4,
  unsupportedL3: 5,
  notReady: 6,
  invalidPacket: 7,
  noRelatedConnection: 8,
  fragNotFound: 9,
  natNoPort: 10,
  noBackend: 11,
  proxyUnavailable: 12,
  proxyUnsupported: 13,
} as const;

/** What monitor, metrics and the CLI call each reason (Cilium's wording where it has one). */
export const REASON_NAMES: Record<number, string> = {
  [REASON.forwarded]: 'Forwarded',
  [REASON.policyDenied]: 'Policy denied',
  [REASON.invalidSmac]: 'Invalid source mac',
  [REASON.invalidSip]: 'Invalid source ip',
  [REASON.unknownEndpoint]: 'Unknown endpoint',
  [REASON.unsupportedL3]: 'Unsupported L3 protocol',
  [REASON.notReady]: 'Endpoint not ready (identity unknown)',
  [REASON.invalidPacket]: 'Invalid packet',
  [REASON.noRelatedConnection]: 'No connection for ICMP error',
  [REASON.fragNotFound]: 'Fragment not found',
  [REASON.natNoPort]: 'No masquerade port available',
  [REASON.noBackend]: 'Service backend not found',
  [REASON.proxyUnavailable]: 'Proxy redirection failed (no L7 proxy listening)',
  [REASON.proxyUnsupported]: 'L7 policy on a path the proxy cannot be reached from',
};
