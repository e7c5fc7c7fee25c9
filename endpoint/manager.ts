import { Logger } from 'winston';
import { parseAddress } from '../net/address';
import { EndpointAddress, LinkNames, forwardIPv6, linkLocalFromMac, linkNames, setupEndpointLink, teardownEndpointLink } from '../datapath/endpoint-link';
import { LinkReaper } from '../datapath/link-reaper';
import { BpfDatapath } from '../datapath/bpf/loader';
import { linkIndex } from '../datapath/rtnl';
import { IdentityAllocator } from '../identity/allocator';
import { MIN_USER_IDENTITY, RESERVED } from '../identity/reserved';
import { ContainerInfo } from '../labels/container-resolver';
import { failpoint } from '../failpoint/failpoint';
import { Hooks } from '../metrics/metrics';
import { Endpoint } from './endpoint';
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
    private readonly registry: EndpointRegistry,
    private readonly dp: Pick<BpfDatapath, 'attach' | 'attached'>,
    private readonly identities: IdentityAllocator,
    private readonly lookup: ContainerLookup,
    private readonly log: Logger,
    /** Alias on every veth this agent creates: what marks a link as ours. */
    readonly tag: string,
    private readonly reaper: LinkReaper,
    private readonly hooks?: Pick<Hooks, 'endpointCreated' | 'endpointReady'>,
  ) {}

  /**
   * Endpoints whose veth, routes and programs are being set up, by Docker
   * endpoint ID: CreateEndpoint has answered, Join waits for done. Their host
   * veths are not orphans, whatever the registry says yet.
   */
  private readonly setups = new Map<string, { hostName: string; done: Promise<Endpoint> }>();

  /**
   * Answers with the endpoint's MAC at once and sets up its veth, routes and
   * programs in the background: meanwhile the engine creates the container's
   * network namespace, and Join waits for whatever is left (and reports a
   * failure). Everything the answer depends on is derived, not created.
   */
  create(req: CreateRequest): { mac: string } {
    const existing = this.registry.byDockerEndpoint(req.dockerEndpointId);
    if (existing) return { mac: existing.mac };
    const names = linkNames(req.dockerEndpointId);
    const mac = req.mac ?? names.peerMac;
    if (this.setups.has(req.dockerEndpointId)) return { mac };
    const done = this.setUp(req, names, mac).finally(() => this.setups.delete(req.dockerEndpointId));
    done.catch((err: unknown) =>
      this.log.warn(`endpoint ${req.dockerEndpointId.slice(0, 12)}: setup failed: ${(err as Error).message}`, { dockerEndpoint: req.dockerEndpointId }),
    );
    this.setups.set(req.dockerEndpointId, { hostName: names.hostName, done });
    return { mac };
  }

  /** The endpoint once its setup, if one is under way, has ended (undefined if it failed or never was). */
  async settled(dockerEndpointId: string): Promise<Endpoint | undefined> {
    await this.setups.get(dockerEndpointId)?.done.catch(() => undefined);
    return this.registry.byDockerEndpoint(dockerEndpointId);
  }

  /** Every setup and veth deletion under way has ended (at shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.setups.values()].map((s) => s.done));
    await this.reaper.close();
  }

  /** Whether some endpoint is being set up (its map entries may precede its record). */
  creating(): boolean {
    return this.setups.size > 0;
  }

  /** Links that are ours but not in the registry for a good reason: being created or being deleted. */
  isTransient(ifName: string): boolean {
    return [...this.setups.values()].some((s) => s.hostName === ifName) || this.reaper.has(ifName);
  }

  private async setUp(req: CreateRequest, names: LinkNames, peerMac: string): Promise<Endpoint> {
    const t0 = process.hrtime.bigint();
    const id = this.registry.reserveId();
    try {
      const ifIndex = await setupEndpointLink({ ...names, peerMac }, addressesOf(req), this.tag);
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
        // Recorded, and so written fail-closed into the maps by the regenerator, then the programs
        // attached: both before Join answers, so before the engine moves the peer into the container.
        await this.registry.save(ep);
        this.dp.attach(ifIndex, true);
        failpoint('endpoint-recorded');
      } catch (err) {
        await this.registry.remove(ep); // its map entries go with the record
        await teardownEndpointLink(names.hostName);
        throw err;
      }
      this.hooks?.endpointCreated(Number(process.hrtime.bigint() - t0) / 1e9);
      this.log.info(`endpoint ${id} created`, { endpoint: id, ifName: ep.ifName, ipv4: ep.ipv4, ipv6: ep.ipv6 });
      return ep;
    } finally {
      this.registry.unreserveId(id);
    }
  }

  async join(dockerEndpointId: string, sandboxKey: string): Promise<Endpoint> {
    await this.setups.get(dockerEndpointId)?.done; // its failure is Join's failure
    const ep = this.must(dockerEndpointId);
    const joined: Endpoint = { ...ep, sandboxKey }; // its container's owner number goes into the maps
    await this.registry.save(joined);
    failpoint('endpoint-joined');
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
    await this.assignIdentity(dockerEndpointId, info.labels, { containerId: info.containerId, containerName: info.name });
  }

  /**
   * Labels for an endpoint that no Docker container owns: a namespace wired
   * through the plugin protocol by something other than the engine (a test
   * rig, a benchmark, another orchestrator). A container's endpoint takes its
   * labels from Docker only, so the two sources never fight.
   */
  async setLabels(dockerEndpointId: string, labels: string[]): Promise<Endpoint> {
    const ep = this.must(dockerEndpointId);
    if (ep.containerId) throw new Error(`endpoint ${ep.id} belongs to container ${ep.containerName || ep.containerId}: its labels come from Docker`);
    if (!ep.sandboxKey || ep.state === 'disconnected') throw new Error(`endpoint ${ep.id} is not joined to a network namespace`);
    this.lookup.unwatch(dockerEndpointId);
    await this.assignIdentity(dockerEndpointId, labels, {});
    return this.must(dockerEndpointId);
  }

  private async assignIdentity(dockerEndpointId: string, labels: string[], owner: Pick<Endpoint, 'containerId' | 'containerName'>): Promise<void> {
    const ep = this.registry.byDockerEndpoint(dockerEndpointId);
    if (!ep) return;
    const identity = await this.identities.acquire(labels);
    if (!this.registry.byDockerEndpoint(dockerEndpointId)) {
      this.identities.release(identity.id); // deleted while we allocated
      return;
    }
    if (ep.identity >= MIN_USER_IDENTITY) this.identities.release(ep.identity);
    const ready: Endpoint = { ...ep, ...owner, labels, identity: identity.id, state: 'ready' };
    await this.registry.save(ready); // the regenerator follows: the endpoint is enforced under its identity
    this.hooks?.endpointReady((Date.now() - Date.parse(ep.createdAt)) / 1000);
    this.log.info(`endpoint ${ep.id} has identity ${identity.id}`, { endpoint: ep.id, container: owner.containerName, labels, identity: identity.id });
  }

  /** Idempotent: the engine only logs a failure here. */
  async leave(dockerEndpointId: string): Promise<void> {
    const ep = await this.settled(dockerEndpointId);
    if (!ep || ep.state === 'disconnected') return;
    this.lookup.unwatch(dockerEndpointId);
    await this.registry.save({ ...ep, state: 'disconnected' });
    failpoint('endpoint-left');
  }

  /**
   * Idempotent: removes the endpoint's map entries and record before
   * answering; its veth pair, with its routes and programs, follows in the
   * background. No netlink call here: the engine tears the container's
   * namespace down meanwhile and holds the kernel's rtnl lock for ~20 ms.
   * An address reused before the veth is gone gets its route replaced.
   */
  async delete(dockerEndpointId: string): Promise<void> {
    const ep = await this.settled(dockerEndpointId);
    if (!ep) return;
    this.lookup.unwatch(dockerEndpointId);
    this.reaper.schedule(ep.ifName);
    await this.registry.remove(ep); // the regenerator removes its map entries first
    failpoint('endpoint-deleted');
    if (ep.identity >= MIN_USER_IDENTITY) this.identities.release(ep.identity);
    this.log.info(`endpoint ${ep.id} deleted`, { endpoint: ep.id, ifName: ep.ifName });
  }

  /**
   * After an agent restart: re-attach this agent's programs (the old ones kept
   * enforcing meanwhile, over the pinned maps), take back identity references,
   * resume lookups. The regenerator's first pass rewrites every entry.
   */
  async restore(): Promise<void> {
    for (const ep of this.registry.list()) {
      const index = await linkIndex(ep.ifName);
      if (index !== ep.ifIndex) {
        this.log.warn(`endpoint ${ep.id}: ${ep.ifName} is gone (left for reconciliation)`, { endpoint: ep.id });
        continue;
      }
      if (ep.state === 'ready') {
        const { id } = await this.identities.acquire(ep.labels);
        if (id !== ep.identity) await this.registry.save({ ...ep, identity: id });
      }
      this.dp.attach(ep.ifIndex, false);
      if (ep.ipv6) await forwardIPv6(ep.ifName);
      if (ep.state === 'waiting-for-identity' && ep.sandboxKey) this.lookup.watch(ep.dockerEndpointId, ep.dockerNetworkId);
    }
    this.identities.sweepUnused();
  }

  list(): Endpoint[] {
    return this.registry.list();
  }

  /** An endpoint ID taken by a setup under way: its map entries may precede its record. */
  isSettingUp(epId: number): boolean {
    return this.registry.isReserved(epId);
  }

  /** Attaches this agent's programs again where an endpoint's veth lost them; answers those endpoints. */
  async reattachPrograms(): Promise<Endpoint[]> {
    const repaired: Endpoint[] = [];
    for (const ep of this.registry.list()) {
      if ((await linkIndex(ep.ifName)) !== ep.ifIndex || this.dp.attached(ep.ifIndex)) continue;
      this.dp.attach(ep.ifIndex, false);
      repaired.push(ep);
    }
    return repaired;
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

function addressesOf(e: { ipv4?: string; ipv6?: string }): EndpointAddress[] {
  return [e.ipv4, e.ipv6].filter((a): a is string => !!a).map((a) => parseAddress(bare(a)));
}
