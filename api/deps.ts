import { Logger } from 'winston';
import { ConntrackGc } from '../conntrack/gc';
import { BpfDatapath } from '../datapath/bpf/loader';
import { Endpoint } from '../endpoint/endpoint';
import { EndpointManager } from '../endpoint/manager';
import { PolicySync } from '../endpoint/policy-sync';
import { Dir, protoName } from '../policy/resolve';
import { EndpointRegistry } from '../endpoint/registry';
import { IdentityAllocator } from '../identity/allocator';
import { CidrIdentities, KnownIdentity, knownIdentities } from '../identity/cidr';
import { Ipam } from '../ipam/ipam';
import { Hooks } from '../metrics/metrics';
import { EventLog, LoggedEvent } from '../monitor/event-log';
import { NetworkManager } from '../network/manager';
import { PolicyRepository } from '../policy/repository';
import { Reconciler } from '../reconcile/reconciler';
import type { LoadBalancer } from '../service/load-balancer';
import type { PublishedPorts } from '../service/published-ports';
import type { UserServices } from '../service/user-services';
import type { EtcdStore } from '../kvstore/etcd';
import type { NodeRegistry } from '../node/registry';
import type { NativeRoutes } from '../node/routes';
import type { EndpointView, EventView, Health } from './types';

/** What the API reads and asks: the owners of each piece of state. */
export interface ApiDeps {
  version: string;
  startedAt: Date;
  endpoints: EndpointRegistry;
  manager: EndpointManager;
  networks: NetworkManager;
  ipam: Ipam;
  identities: IdentityAllocator;
  cidrIdentities: CidrIdentities;
  repo: PolicyRepository;
  sync: PolicySync;
  events: EventLog;
  dp: BpfDatapath;
  log: Logger;
  reconciler: Reconciler;
  conntrack: ConntrackGc;
  published: PublishedPorts;
  userServices: UserServices;
  lb: LoadBalancer;
  stateDir: string;
  pluginSocket: string;
  hooks?: Pick<Hooks, 'apiCall'>;
  /** With --kvstore etcd. */
  cluster?: { name: string; kv: EtcdStore; nodes: NodeRegistry; routes: NativeRoutes };
  health: {
    docker: () => Promise<string>;
    store: () => Promise<string>;
    recentErrors: Array<{ time: string; level: string; message: string }>;
    faults: Record<string, number>;
    /** Veths of deleted endpoints the kernel is still removing. */
    linksPendingRemoval: () => number;
    bpfRoot: string;
    dockerHost: string;
    masquerading: () => Health['masquerading'];
    loadBalancing: Omit<Health['loadBalancing'], 'services'>;
  };
}

/** How several routes present endpoints, identities and events. */
export class Views {
  constructor(private readonly d: ApiDeps) {}

  known(): KnownIdentity[] {
    return knownIdentities(this.d.identities, this.d.cidrIdentities);
  }

  labelsOf(id: number): string[] {
    return this.d.identities.get(id)?.labels ?? this.known().find((i) => i.id === id)?.labels ?? [];
  }

  endpoint(e: Endpoint): EndpointView {
    const p = this.d.sync.policyOf(e.id);
    const l7 = (dir: Dir) => [...new Set((p?.allows ?? []).filter((a) => a.http && a.dir === dir).map((a) => `${a.port}/${protoName(a.proto)}`))].sort();
    return {
      ...e,
      policy: {
        ingressEnforced: p?.ingressEnforced ?? false,
        egressEnforced: p?.egressEnforced ?? false,
        allows: p?.allows.length ?? 0,
        l7Ingress: l7('ingress'),
        l7Egress: l7('egress'),
      },
    };
  }

  event(e: LoggedEvent): EventView {
    const nameOf = (ip: string) => this.d.endpoints.list().find((x) => x.ipv4 === ip || x.ipv6 === ip)?.containerName;
    const endpointName = this.d.endpoints.byId(e.endpoint)?.containerName;
    const srcName = nameOf(e.src);
    const dstName = nameOf(e.dst);
    return {
      ...e,
      srcLabels: this.labelsOf(e.srcIdentity),
      dstLabels: this.labelsOf(e.dstIdentity),
      ...(srcName === undefined ? {} : { srcName }),
      ...(dstName === undefined ? {} : { dstName }),
      ...(endpointName === undefined ? {} : { endpointName }),
    };
  }
}
