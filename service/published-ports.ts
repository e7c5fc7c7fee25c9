import { Logger } from 'winston';
import type { Endpoint } from '../endpoint/endpoint';
import type { EndpointRegistry } from '../endpoint/registry';
import { Family, parseAddress } from '../net/address';
import { KVStore, listJSON, putJSON } from '../store/kvstore';
import { HostPortProxy } from './host-proxy';
import { LoadBalancer, Service } from './load-balancer';
import { PortMapping, PublishedPort, formatPublishedPort, frontendsOf, protoNumber } from './port-mapping';

const key = (dockerEndpointId: string) => `published/${dockerEndpointId}`;

/** What is stored per endpoint: its ports as published (-P and ranges resolved to the port held). */
export interface Publication {
  dockerEndpointId: string;
  ports: PublishedPort[];
}

export interface PublishedService extends Service {
  dockerEndpointId: string;
  port: PublishedPort;
}

type Endpoints = Pick<EndpointRegistry, 'byDockerEndpoint' | 'onRemoving'>;

/** The container's address of a family, bare. */
function addressOf(ep: Endpoint, family: Family): string | undefined {
  return (family === 4 ? ep.ipv4 : ep.ipv6)?.split('/')[0];
}

/**
 * The one owner of published ports (-p): each endpoint's publication,
 * stored before its service is written so that a restarted agent restores
 * it, the host port held (HostPortProxy), and one service per frontend in
 * the load balancer. A publication ends when the engine revokes it or its
 * endpoint is removed (also when reconciliation removes an endpoint whose
 * container went while the agent was down).
 */
export class PublishedPorts {
  private readonly byEndpoint = new Map<string, Array<{ port: PublishedPort; service: Service }>>();
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly store: KVStore,
    private readonly lb: LoadBalancer,
    private readonly proxy: HostPortProxy,
    private readonly endpoints: Endpoints,
    private readonly log: Logger,
  ) {}

  /**
   * Restores every stored publication whose endpoint still exists (the
   * others are forgotten), holding its ports again and writing its services.
   */
  static async load(store: KVStore, lb: LoadBalancer, proxy: HostPortProxy, endpoints: Endpoints, log: Logger): Promise<PublishedPorts> {
    const pp = new PublishedPorts(store, lb, proxy, endpoints, log);
    const keep: Array<{ ep: Endpoint; port: PublishedPort }> = [];
    for (const pub of await listJSON<Publication>(store, 'published/')) {
      const ep = endpoints.byDockerEndpoint(pub.dockerEndpointId);
      if (!ep) {
        await store.batch([{ type: 'del', key: key(pub.dockerEndpointId) }]);
        continue;
      }
      for (const port of pub.ports) keep.push({ ep, port });
    }
    keep.forEach(({ ep, port }) => {
      const s = pp.serviceSpec(ep, port);
      pp.remember(ep.dockerEndpointId, port, lb.upsert(s.frontend, s.backends));
      pp.proxy.open(port, { address: addressOf(ep, port.family)!, port: port.containerPort }).catch((err: unknown) => {
        log.error(`published port ${formatPublishedPort(port)} of endpoint ${ep.id}: host port not held again: ${(err as Error).message}`);
      });
    });
    endpoints.onRemoving((ep) => {
      if (!pp.forget(ep.dockerEndpointId)) return;
      // the record would only be forgotten at the next start: failing the removal for it is not worth it
      void store.batch([{ type: 'del', key: key(ep.dockerEndpointId) }]).catch(() => undefined);
    });
    return pp;
  }

  /**
   * Publishes an endpoint's ports, all or none: holds each host port (the
   * first free one of a range; any free one for -P, the same in both
   * families), stores the publication, then writes the services.
   */
  publish(dockerEndpointId: string, mappings: PortMapping[]): Promise<PublishedPort[]> {
    return this.serially(async () => {
      const ep = this.endpoints.byDockerEndpoint(dockerEndpointId);
      if (!ep) throw new Error(`endpoint ${dockerEndpointId} does not exist on this host`);
      await this.unpublishNow(dockerEndpointId);
      if (mappings.length === 0) return [];
      const families = ([4, 6] as const).filter((f) => addressOf(ep, f) !== undefined);
      const held: PublishedPort[] = [];
      try {
        for (const m of mappings) held.push(...(await this.hold(ep, m, frontendsOf(m, families))));
        await this.store.batch([putJSON(key(dockerEndpointId), { dockerEndpointId, ports: held } satisfies Publication)]);
      } catch (err) {
        for (const p of held) this.proxy.close(p);
        throw err;
      }
      for (const port of held) {
        const s = this.serviceSpec(ep, port);
        this.remember(dockerEndpointId, port, this.lb.upsert(s.frontend, s.backends));
      }
      if (held.length) this.log.info(`endpoint ${ep.id} published ${held.map(formatPublishedPort).join(', ')}`, { endpoint: ep.id });
      return held;
    });
  }

  unpublish(dockerEndpointId: string): Promise<void> {
    return this.serially(() => this.unpublishNow(dockerEndpointId));
  }

  list(): PublishedService[] {
    return [...this.byEndpoint].flatMap(([dockerEndpointId, ps]) => ps.map((p) => ({ ...p.service, dockerEndpointId, port: p.port })));
  }

  private async unpublishNow(dockerEndpointId: string): Promise<void> {
    if (!this.byEndpoint.has(dockerEndpointId)) return;
    this.forget(dockerEndpointId);
    await this.store.batch([{ type: 'del', key: key(dockerEndpointId) }]);
  }

  /** The services and host ports of an endpoint let go; false when it published none. */
  private forget(dockerEndpointId: string): boolean {
    for (const { port, service } of this.byEndpoint.get(dockerEndpointId) ?? []) {
      this.lb.remove(service.id);
      this.proxy.close(port);
    }
    return this.byEndpoint.delete(dockerEndpointId);
  }

  /** One mapping's host ports: for each candidate port, every frontend or none. */
  private async hold(ep: Endpoint, m: PortMapping, frontends: Array<{ family: Family; hostIp?: string }>): Promise<PublishedPort[]> {
    const candidates = m.hostPort === 0 ? [0, 0, 0] : Array.from({ length: m.hostPortEnd - m.hostPort + 1 }, (_, i) => m.hostPort + i);
    let last: Error | undefined;
    for (const candidate of candidates) {
      const got: PublishedPort[] = [];
      let hostPort = candidate;
      try {
        for (const f of frontends) {
          const p: PublishedPort = { proto: m.proto, family: f.family, ...(f.hostIp ? { hostIp: f.hostIp } : {}), hostPort, containerPort: m.containerPort };
          hostPort = await this.proxy.open(p, { address: addressOf(ep, f.family)!, port: m.containerPort });
          got.push({ ...p, hostPort });
        }
        return got;
      } catch (err) {
        for (const p of got) this.proxy.close(p);
        last = err as Error;
      }
    }
    if (candidates.length > 1 && m.hostPort !== 0) throw new Error(`${last!.message} (every port of ${m.hostPort}-${m.hostPortEnd} is in use)`);
    throw last!;
  }

  private serviceSpec(ep: Endpoint, p: PublishedPort): Omit<Service, 'id'> {
    const proto = protoNumber(p.proto);
    return {
      frontend: { family: p.family, ...(p.hostIp ? { address: parseAddress(p.hostIp).value } : {}), port: p.hostPort, proto },
      backends: [{ family: p.family, address: parseAddress(addressOf(ep, p.family)!).value, port: p.containerPort, proto }],
    };
  }

  private remember(dockerEndpointId: string, port: PublishedPort, service: Service): void {
    const list = this.byEndpoint.get(dockerEndpointId) ?? [];
    list.push({ port, service });
    this.byEndpoint.set(dockerEndpointId, list);
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }
}
