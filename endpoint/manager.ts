import { Logger } from 'winston';
import { Family, parseAddress } from '../ipam/cidr';
import { EndpointAddress, linkLocalFromMac, linkNames, setupEndpointLink, teardownEndpointLink } from '../datapath/endpoint-link';
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

/** The endpoint lifecycle: each step a short story over the datapath and the registry. */
export class EndpointManager {
  constructor(
    readonly registry: EndpointRegistry,
    private readonly log: Logger,
  ) {}

  async create(req: CreateRequest): Promise<Endpoint> {
    const existing = this.registry.byDockerEndpoint(req.dockerEndpointId);
    if (existing) return existing;
    const names = linkNames(req.dockerEndpointId);
    const peerMac = req.mac ?? names.peerMac;
    const addresses = [req.ipv4, req.ipv6].filter((a): a is string => !!a).map(toEndpointAddress);
    const id = this.registry.reserveId();
    try {
      const ifIndex = await setupEndpointLink({ ...names, peerMac }, addresses);
      const ep: Endpoint = {
        id,
        dockerEndpointId: req.dockerEndpointId,
        dockerNetworkId: req.dockerNetworkId,
        ifName: names.hostName,
        peerName: names.peerName,
        ifIndex,
        mac: peerMac,
        hostMac: names.hostMac,
        ...(req.ipv4 ? { ipv4: stripPrefix(req.ipv4) } : {}),
        ...(req.ipv6 ? { ipv6: stripPrefix(req.ipv6) } : {}),
        state: 'creating',
        createdAt: new Date().toISOString(),
      };
      try {
        await this.registry.save(ep);
      } catch (err) {
        await teardownEndpointLink(names.hostName);
        throw err;
      }
      this.log.info(`endpoint ${id} created`, { endpoint: id, ifName: ep.ifName, ipv4: ep.ipv4, ipv6: ep.ipv6 });
      return ep;
    } finally {
      this.registry.unreserveId(id);
    }
  }

  async join(dockerEndpointId: string, sandboxKey: string): Promise<Endpoint> {
    const ep = this.must(dockerEndpointId);
    const joined: Endpoint = { ...ep, sandboxKey, state: 'ready' };
    await this.registry.save(joined);
    return joined;
  }

  /** Idempotent: the engine only logs a failure here. */
  async leave(dockerEndpointId: string): Promise<void> {
    const ep = this.registry.byDockerEndpoint(dockerEndpointId);
    if (!ep || ep.state === 'disconnected') return;
    await this.registry.save({ ...ep, state: 'disconnected' });
  }

  /** Idempotent: removes the veth pair (and so its routes) and forgets the endpoint. */
  async delete(dockerEndpointId: string): Promise<void> {
    const ep = this.registry.byDockerEndpoint(dockerEndpointId);
    if (!ep) return;
    await teardownEndpointLink(ep.ifName);
    await this.registry.remove(ep);
    this.log.info(`endpoint ${ep.id} deleted`, { endpoint: ep.id, ifName: ep.ifName });
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

function stripPrefix(cidr: string): string {
  return cidr.split('/')[0]!;
}

function toEndpointAddress(cidr: string): EndpointAddress {
  const { family, value } = parseAddress(stripPrefix(cidr));
  return { family: family as Family, value };
}
