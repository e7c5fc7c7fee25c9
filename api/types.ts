import type { KvstoreStatus } from '../kvstore/etcd';
/**
 * The agent API's answers, as the CLI (and anyone) reads them. The routes
 * build them with `satisfies`, the CLI imports them type-only, so the two
 * cannot drift apart.
 */
import type { GcStats } from '../conntrack/gc';
import type { CtEntry, NatEntry, PolicyKey } from '../datapath/bpf/maps';
import type { MasqueradeDevice } from '../datapath/devices';
import type { Endpoint } from '../endpoint/endpoint';
import type { Ipam } from '../ipam/ipam';
import type { LoggedEvent } from '../monitor/event-log';
import type { Rule } from '../policy/rule';

export type Pool = ReturnType<Ipam['snapshot']>[number];

export interface Health {
  version: string;
  startedAt: string;
  uptimeSeconds: number;
  stateDir: string;
  pluginSocket: string;
  kvstore: { backend: string; path: string; status: string };
  docker: { host: string; status: string };
  endpoints: Record<string, number>;
  linksPendingRemoval: number;
  networks: number;
  identities: number;
  policyRevision: number;
  ipam: Array<Omit<Pool, 'allocations'>>;
  bpfMaps: Array<{ name: string; path: string; pinned: boolean }>;
  conntrack: GcStats;
  natRecovery: string;
  masquerading: {
    enabled: boolean;
    devices: MasqueradeDevice[];
    ports: { min: number; max: number };
    /** Destinations reached unmasqueraded (native routing CIDRs and --masquerade-exclude). */
    excluded: string[];
  };
  loadBalancing: {
    services: number;
    algorithm: 'random' | 'maglev';
    maglevTableSize?: number;
    /** The cgroup v2 root the socket programs are attached to; undefined: off (--bpf-lb-sock=false). */
    socketLbCgroup?: string;
  };
  recentErrors: Array<{ time: string; level: string; message: string }>;
  faults: Record<string, number>;
  /** With --kvstore etcd: the cluster this host is part of. */
  cluster?: ClusterHealth;
}

export interface ClusterHealth {
  name: string;
  node: string;
  kvstore: KvstoreStatus;
  /** Hosts in the kvstore, this one included. */
  nodes: number;
  routing: 'native';
  /** Other hosts' ranges routed through their addresses. */
  routes: Array<{ range: string; via: string }>;
}

/** `cilium node list`: a host as the kvstore holds it. */
export interface NodeView {
  name: string;
  cluster: string;
  ipv4: string;
  ipv4AllocCIDR?: string;
  ipv6AllocCIDR?: string;
  self: boolean;
}

export interface KvEntryView {
  key: string;
  value: string;
}

/** l7Ingress, l7Egress: the ports whose requests the L7 proxy judges ("80/TCP"), to the endpoint and from it. */
export type EndpointView = Endpoint & {
  policy: { ingressEnforced: boolean; egressEnforced: boolean; allows: number; l7Ingress: string[]; l7Egress: string[] };
};

export interface IdentityView {
  id: number;
  labels: string[];
  /** endpoints holding it */
  users: number;
}

export interface PolicyList {
  revision: number;
  rules: Rule[];
}

export interface PolicyChange {
  revision: number;
}

export interface PolicyDeleted {
  revision: number;
  deleted: number;
}

export interface Trace {
  verdict: 'ALLOWED' | 'DENIED';
  steps: string[];
  srcIdentity: number;
  dstIdentity: number;
}

/** A datapath event with both sides named. */
export type EventView = LoggedEvent & { srcLabels: string[]; dstLabels: string[]; srcName?: string; dstName?: string; endpointName?: string };

/** Counters are decimal strings: they outgrow JSON numbers. */
export type BpfPolicyEntry = PolicyKey & { packets: string; bytes: string; labels: string[] };

export interface IpcacheEntry {
  prefix: string;
  identity: number;
  labels: string[];
}

export type CtEntryView = Omit<CtEntry, 'packets' | 'bytes'> & { packets: string; bytes: string; state: string; remainingSeconds: number };

export type NatEntryView = NatEntry & { remainingSeconds: number };

export interface CtFlushed {
  flushed: number;
}

export interface BpfEndpointEntry {
  ifindex: number;
  epId: number;
  flags: number;
  identity: number;
  owner: number;
  mac: string;
  policyGen: number;
}

/** GET /v1/service: a service with its frontend and backends (published ports are HostPort services, user-defined ones ClusterIP). */
export interface ServiceView {
  id: number;
  /** ClusterIP: what toServices calls it, when it has a name */
  name?: string;
  type: 'HostPort' | 'ClusterIP';
  /** host:port, [::]:port for every address of the family */
  frontend: string;
  protocol: 'TCP' | 'UDP';
  backends: Array<{ id: number; address: string }>;
  /** HostPort: Docker's form of the published port, and whose it is */
  published?: string;
  endpointId?: number;
  container?: string;
  /** ClusterIP with a selector: the labels its backends match, on targetPort */
  selector?: Record<string, string>;
  targetPort?: number;
}

/** GET /v1/bpf/lb: the service map as the datapath holds it. */
export interface LbEntryView {
  frontend: string;
  protocol: number;
  backends: Array<{ slot: number; id: number; address?: string }>;
}
