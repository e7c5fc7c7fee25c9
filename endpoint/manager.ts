import { Logger } from 'winston';
import { parseAddress } from '../ipam/cidr';
import { EndpointAddress, linkLocalFromMac, linkNames, setupEndpointLink, teardownEndpointLink } from '../datapath/endpoint-link';
import { BpfDatapath } from '../datapath/bpf/loader';
import { unprogramEndpoint } from '../datapath/bpf/endpoint-program';
import { linkIndex } from '../datapath/rtnl';
import { IdentityAllocator } from '../identity/allocator';
import { MIN_USER_IDENTITY, RESERVED } from '../identity/reserved';
import { ContainerInfo } from '../labels/container-resolver';
import { failpoint } from '../failpoint/failpoint';
import { Hooks } from '../metrics/metrics';
import { Endpoint } from './endpoint';
import { PolicySync } from './policy-sync';
import { EndpointRegistry } from './registry';

export interface CreateRequest {
  dockerEndpointId: string;
  dockerNetworkId: string;
  /** "a.b.c.d/32" as IPAM answered it, or undefined */
  ipv4?: string;
  ipv6?: string;
  /** A MAC the user chose (docker run --mac-address), else one is derived. */
  mac?: string;
}

/** Where the manager asks for a joined endpoint's container to be found. */
export interface ContainerLookup {
  watch(dockerEndpointId: string, networkId: string): void;
  unwatch(dockerEndpointId: string): void;
}

/**
 * The endpoint lifecycle. An endpoint is enforced from the moment its veth
 * exists: first fail-closed under the init identity, then under the identity
 * of its container's labels once the container is known.
 */
export class EndpointManager {
  constructor(
    readonly registry: EndpointRegistry,
    private readonly dp: BpfDatapath,
    private readonly identities: IdentityAllocator,
    readonly policy: PolicySync,
    private readonly lookup: ContainerLookup,
    private readonly log: Logger,
    /** Alias on every veth this agent creates: what marks a link as ours. */
    readonly tag: string,
    private readonly hooks?: Pick<Hooks, 'endpointCreated' | 'endpointReady'>,
  ) {}

  /** Host-side names of veths being created now: not orphans, whatever the registry says yet. */
  readonly inFlight = new Set<string>();

  async create(req: CreateRequest): Promise<Endpoint> {
    const existing = this.registry.byDockerEndpoint(req.dockerEndpointId);
    if (existing) return existing;
    const t0 = process.hrtime.bigint();
    const names = linkNames(req.dockerEndpointId);
    const peerMac = req.mac ?? names.peerMac;
    const id = this.registry.reserveId();
    this.inFlight.add(names.hostName);
    try {
      const ifIndex = await setupEndpointLink({ ...names, peerMac }, [req.ipv4, req.ipv6].filter((a): a is string => !!a).map(toAddress), this.tag);
      failpoint('endpoint-link-created');
      const ep: Endpoint = {
        id,
        dockerEndpointId: req.dockerEndpointId,
        dockerNetworkId: req.dockerNetworkId,
        ifName: names.hostName,
        peerName: names.peerName,
        ifIndex,
        mac: peerMac,
        hostMac: names.hostMac,
        ...(req.ipv4 ? { ipv4: bare(req.ipv4) } : {}),
        ...(req.ipv6 ? { ipv6: bare(req.ipv6) } : {}),
        labels: [],
        identity: RESERVED.init,
        state: 'waiting-for-identity',
        createdAt: new Date().toISOString(),
      };
      try {
        // The programs are attached before the engine can move the peer into the container.
        this.policy.program(ep);
        this.dp.attach(ifIndex, true);
        await this.registry.save(ep);
      } catch (err) {
        unprogramEndpoint(this.dp, ep);
        await teardownEndpointLink(names.hostName);
        throw err;
      }
      this.hooks?.endpointCreated(Number(process.hrtime.bigint() - t0) / 1e9);
      this.log.info(`endpoint ${id} created`, { endpoint: id, ifName: ep.ifName, ipv4: ep.ipv4, ipv6: ep.ipv6 });
      return ep;
    } finally {
      this.registry.unreserveId(id);
      this.inFlight.delete(names.hostName);
    }
  }

  async join(dockerEndpointId: string, sandboxKey: string): Promise<Endpoint> {
    const ep = this.must(dockerEndpointId);
    const joined: Endpoint = { ...ep, sandboxKey };
    await this.registry.save(joined);
    failpoint('endpoint-joined');
    this.policy.program(joined); // now it knows its container: its owner number
    if (joined.state !== 'waiting-for-identity') return joined;
    // docker network connect of a container we already serve: its container
    // and labels are known, so it is enforced under its identity at once.
    const sibling = this.registry.list().find((e) => e.sandboxKey === sandboxKey && e.state === 'ready' && e.containerId);
    if (sibling) {
      await this.assignContainer(dockerEndpointId, { containerId: sibling.containerId!, name: sibling.containerName ?? '', labels: sibling.labels });
      return this.must(dockerEndpointId);
    }
    this.lookup.watch(joined.dockerEndpointId, joined.dockerNetworkId);
    return joined;
  }

  /** The container and its labels are known: give the endpoint its identity and policy. */
  async assignContainer(dockerEndpointId: string, info: ContainerInfo): Promise<void> {
    const ep = this.registry.byDockerEndpoint(dockerEndpointId);
    if (!ep) return;
    const identity = await this.identities.acquire(info.labels);
    if (!this.registry.byDockerEndpoint(dockerEndpointId)) {
      this.identities.release(identity.id); // deleted while we allocated
      return;
    }
    if (ep.identity >= MIN_USER_IDENTITY) this.identities.release(ep.identity);
    const ready: Endpoint = { ...ep, containerId: info.containerId, containerName: info.name, labels: info.labels, identity: identity.id, state: 'ready' };
    await this.registry.save(ready);
    this.policy.regenerate();
    this.hooks?.endpointReady((Date.now() - Date.parse(ep.createdAt)) / 1000);
    this.log.info(`endpoint ${ep.id} has identity ${identity.id}`, { endpoint: ep.id, container: info.name, labels: info.labels, identity: identity.id });
  }

  /** Idempotent: the engine only logs a failure here. */
  async leave(dockerEndpointId: string): Promise<void> {
    const ep = this.registry.byDockerEndpoint(dockerEndpointId);
    if (!ep || ep.state === 'disconnected') return;
    this.lookup.unwatch(dockerEndpointId);
    await this.registry.save({ ...ep, state: 'disconnected' });
  }

  /** Idempotent: removes the veth pair (and so its routes and programs), its maps entries, and the endpoint. */
  async delete(dockerEndpointId: string): Promise<void> {
    const ep = this.registry.byDockerEndpoint(dockerEndpointId);
    if (!ep) return;
    this.lookup.unwatch(dockerEndpointId);
    await teardownEndpointLink(ep.ifName);
    unprogramEndpoint(this.dp, ep);
    this.policy.forget(ep.id);
    await this.registry.remove(ep);
    if (ep.identity >= MIN_USER_IDENTITY) this.identities.release(ep.identity);
    this.log.info(`endpoint ${ep.id} deleted`, { endpoint: ep.id, ifName: ep.ifName });
  }

  /**
   * After an agent restart: re-attach this agent's programs (the old ones kept
   * enforcing meanwhile), take back identity references, resume lookups.
   */
  async restore(): Promise<void> {
    for (const ep of this.registry.list()) {
      const index = await linkIndex(ep.ifName);
      if (index !== ep.ifIndex) {
        this.log.warn(`endpoint ${ep.id}: ${ep.ifName} is gone (left for reconciliation)`, { endpoint: ep.id });
        continue;
      }
      let current = ep;
      if (ep.state === 'ready') {
        const { id } = await this.identities.acquire(ep.labels);
        if (id !== ep.identity) await this.registry.save((current = { ...ep, identity: id }));
      }
      this.policy.program(current);
      this.dp.attach(ep.ifIndex, false);
      if (ep.state === 'waiting-for-identity' && ep.sandboxKey) this.lookup.watch(ep.dockerEndpointId, ep.dockerNetworkId);
    }
    this.policy.regenerate();
    this.identities.sweepUnused();
  }

  /** Looks for the container of an endpoint still waiting for its identity. */
  resolveSoon(ep: Endpoint): void {
    this.lookup.watch(ep.dockerEndpointId, ep.dockerNetworkId);
  }

  ipv6Gateway(ep: Endpoint): string {
    return linkLocalFromMac(ep.hostMac);
  }

  private must(dockerEndpointId: string): Endpoint {
    const ep = this.registry.byDockerEndpoint(dockerEndpointId);
    if (!ep) throw new Error(`endpoint ${dockerEndpointId} does not exist on this host (was it deleted, or the agent's state wiped?)`);
    return ep;
  }
}

function bare(cidr: string): string {
  return cidr.split('/')[0]!;
}

function toAddress(cidr: string): EndpointAddress {
  return parseAddress(bare(cidr));
}
