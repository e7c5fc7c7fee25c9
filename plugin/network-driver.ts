import { Logger } from 'winston';
import { Family, parseAddress } from '../net/address';
import { Ipam } from '../ipam/ipam';
import { EndpointManager } from '../endpoint/manager';
import { Network, NetworkFamily, NetworkManager } from '../network/manager';
import type { PublishedPorts } from '../service/published-ports';
import { parsePortMap } from '../service/port-mapping';
import { Body, asBody, id, optionalArray, optionalObject, optionalString, stringMap } from './validate';

const CONNECTED = 1;

/**
 * libnetwork's NetworkDriver.* calls. Creates, deletes, leaves and releases
 * are idempotent because the engine only logs their errors and never retries.
 */
export class NetworkDriver {
  constructor(
    private readonly networks: NetworkManager,
    private readonly endpoints: EndpointManager,
    private readonly ipam: Ipam,
    private readonly published: Pick<PublishedPorts, 'publish' | 'unpublish'>,
    private readonly log: Logger,
  ) {}

  getCapabilities() {
    return { Scope: 'local', ConnectivityScope: 'local' };
  }

  async createNetwork(raw: unknown) {
    const b = asBody(raw);
    const networkId = id(b, 'NetworkID');
    const v4 = optionalArray(b, 'IPv4Data');
    const v6 = optionalArray(b, 'IPv6Data');
    if (v4.length > 1 || v6.length > 1) throw new Error('a cilium network takes at most one --subnet per address family');
    if (v4.length === 0 && v6.length === 0) throw new Error('the network has no IPv4 or IPv6 pool');
    if (this.networks.get(networkId)) return {};
    const ipv4 = v4[0] && this.networkFamily(4, v4[0]);
    const ipv6 = v6[0] && this.networkFamily(6, v6[0]);
    const network: Network = { id: networkId, ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}), createdAt: new Date().toISOString() };
    await this.networks.add(network);
    this.log.info(`network ${networkId.slice(0, 12)} created`, { network: networkId, ipv4, ipv6 });
    return {};
  }

  async deleteNetwork(raw: unknown) {
    const networkId = id(asBody(raw), 'NetworkID');
    if (!(await this.networks.remove(networkId))) return {};
    this.log.info(`network ${networkId.slice(0, 12)} deleted`, { network: networkId });
    return {};
  }

  createEndpoint(raw: unknown) {
    const b = asBody(raw);
    const networkId = id(b, 'NetworkID');
    const endpointId = id(b, 'EndpointID');
    const iface = optionalObject(b, 'Interface');
    const ipv4 = optionalString(iface, 'Address');
    const ipv6 = optionalString(iface, 'AddressIPv6');
    const mac = optionalString(iface, 'MacAddress');
    const network = this.mustNetwork(networkId);
    if (!ipv4 && !ipv6) throw new Error('the endpoint has no address: the network must use --ipam-driver cilium');
    if (mac && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw new Error(`Interface.MacAddress "${mac}" is not a MAC address`);
    // Only addresses our IPAM gave out for this network: an endpoint never takes over another's ipcache entry.
    for (const [a, fam] of [
      [ipv4, network.ipv4],
      [ipv6, network.ipv6],
    ] as const) {
      if (!a) continue;
      const bareAddress = a.split('/')[0]!;
      const problem = fam ? this.ipam.endpointAddressProblem(fam.pool, bareAddress) : `the network has no IPv${a.includes(':') ? 6 : 4} pool`;
      if (problem) throw new Error(`address ${bareAddress} refused: ${problem}`);
      const holder = this.endpoints
        .list()
        .find((e) => e.dockerEndpointId !== endpointId && (e.ipv4?.split('/')[0] === bareAddress || e.ipv6?.split('/')[0] === bareAddress));
      if (holder) throw new Error(`address ${bareAddress} refused: endpoint ${holder.id} (${holder.dockerEndpointId.slice(0, 12)}) already has it`);
    }
    const ep = this.endpoints.create({
      dockerEndpointId: endpointId,
      dockerNetworkId: networkId,
      ...(ipv4 ? { ipv4 } : {}),
      ...(ipv6 ? { ipv6 } : {}),
      ...(mac ? { mac: mac.toLowerCase() } : {}),
    });
    // Echoing fields the engine filled makes it fail ("driver modified interface"): only the MAC we chose.
    return mac ? {} : { Interface: { MacAddress: ep.mac } };
  }

  async deleteEndpoint(raw: unknown) {
    const b = asBody(raw);
    id(b, 'NetworkID');
    await this.endpoints.delete(id(b, 'EndpointID'));
    return {};
  }

  async endpointOperInfo(raw: unknown) {
    const b = asBody(raw);
    id(b, 'NetworkID');
    const ep = await this.endpoints.settled(id(b, 'EndpointID'));
    if (!ep) throw new Error(`endpoint ${String(b.EndpointID)} does not exist on this host`);
    return { Value: { id: ep.id, ifName: ep.ifName, state: ep.state, ipv4: ep.ipv4 ?? '', ipv6: ep.ipv6 ?? '' } };
  }

  async join(raw: unknown) {
    const b = asBody(raw);
    const network = this.mustNetwork(id(b, 'NetworkID'));
    const endpointId = id(b, 'EndpointID');
    const sandboxKey = optionalString(b, 'SandboxKey');
    if (!sandboxKey.startsWith('/')) throw new Error(`SandboxKey must be a network namespace path, got "${sandboxKey}"`);
    const ep = await this.endpoints.join(endpointId, sandboxKey);
    const answer: Body = { InterfaceName: { SrcName: ep.peerName, DstPrefix: 'eth' }, DisableGatewayService: false };
    if (network.ipv4 && ep.ipv4) {
      answer.Gateway = network.ipv4.gateway;
      // A second attachment to the same gateway in one container would clash
      // with the first one's route (EEXIST); the first route serves both.
      if (!this.sandboxRoutesTo(sandboxKey, network.ipv4.gateway, endpointId)) {
        answer.StaticRoutes = [{ Destination: `${network.ipv4.gateway}/32`, RouteType: CONNECTED }];
      }
    }
    if (ep.ipv6) answer.GatewayIPv6 = this.endpoints.ipv6Gateway(ep);
    return answer;
  }

  async leave(raw: unknown) {
    const b = asBody(raw);
    id(b, 'NetworkID');
    await this.endpoints.leave(id(b, 'EndpointID'));
    return {};
  }

  /**
   * Publishes the container's ports (-p, -P: com.docker.network.portmap) on
   * this host, after Join. All or nothing: a port already in use fails
   * `docker run` with the engine's own wording.
   */
  async programExternalConnectivity(raw: unknown) {
    const b = asBody(raw);
    this.mustNetwork(id(b, 'NetworkID'));
    const options = optionalObject(b, 'Options');
    await this.published.publish(id(b, 'EndpointID'), parsePortMap(options['com.docker.network.portmap']));
    return {};
  }

  async revokeExternalConnectivity(raw: unknown) {
    const b = asBody(raw);
    id(b, 'NetworkID');
    await this.published.unpublish(id(b, 'EndpointID'));
    return {};
  }

  ok(raw: unknown) {
    asBody(raw);
    return {};
  }

  private networkFamily(family: Family, data: Body): NetworkFamily {
    const pool = optionalString(data, 'Pool');
    const gateway = optionalString(data, 'Gateway').split('/')[0]!;
    stringMap(data, 'AuxAddresses');
    if (gateway === '') {
      if (family === 4) throw new Error(`IPv4Data has no Gateway`);
      return { pool, gateway: '', ownGateway: false };
    }
    if (parseAddress(gateway).family !== family) throw new Error(`IPv${family}Data.Gateway "${gateway}" is not an IPv${family} address`);
    return { pool, gateway, ownGateway: family === 4 && gateway !== this.ipam.routerAddress(4) };
  }

  private sandboxRoutesTo(sandboxKey: string, gateway: string, self: string): boolean {
    return this.endpoints
      .list()
      .some(
        (e) =>
          e.dockerEndpointId !== self && e.sandboxKey === sandboxKey && e.state === 'ready' && this.networks.get(e.dockerNetworkId)?.ipv4?.gateway === gateway,
      );
  }

  private mustNetwork(networkId: string): Network {
    const n = this.networks.get(networkId);
    if (!n) {
      throw new Error(`network ${networkId} is not known to this cilium agent (created before its state dir was wiped?): remove and re-create the network`);
    }
    return n;
  }
}
