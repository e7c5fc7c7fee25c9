import { randomBytes } from 'crypto';
import { TestAgent, httpUnix } from './agent';
import { must } from './exec';

/** One namespace wired to the agent as libnetwork would wire a container. */
export interface BareEndpoint {
  ns: string;
  endpointId: string;
  address: string; // IPv4, no prefix length
}

const POOL = { AddressSpace: 'CiliumLocal', Pool: '', SubPool: '', V6: false };

/**
 * Endpoints without containers: network namespaces wired through the
 * plugin's own protocol (RequestAddress, CreateEndpoint, Join, then moving
 * the peer in, as the engine does) and labelled through the agent's API.
 * A thousand of them take seconds where a thousand containers take minutes.
 */
export class BareEndpoints {
  readonly all: BareEndpoint[] = [];
  /** Every namespace made, wired or not: a creation that fails half way leaves none behind. */
  private readonly namespaces: string[] = [];
  private poolId = '';

  constructor(
    private readonly agent: TestAgent,
    private readonly networkId: string,
    private readonly prefix: string,
  ) {}

  async create(n: number, labels: string[], concurrency = 8): Promise<BareEndpoint[]> {
    this.poolId = (await this.call<{ PoolID: string }>('IpamDriver.RequestPool', POOL)).PoolID;
    const start = this.all.length;
    const batch = Array.from({ length: n }, (_, i) => `${this.prefix}${start + i}`);
    await must('ip', ['-batch', '-'], { input: Buffer.from(batch.map((ns) => `netns add ${ns}\n`).join('')) });
    this.namespaces.push(...batch);
    const made: BareEndpoint[] = [];
    for (let i = 0; i < batch.length; i += concurrency) {
      made.push(...(await Promise.all(batch.slice(i, i + concurrency).map((ns) => this.wire(ns, labels)))));
    }
    this.all.push(...made);
    return made;
  }

  /** Leave, DeleteEndpoint and ReleaseAddress for each, then the namespaces go. */
  async destroy(): Promise<void> {
    try {
      for (const e of this.all) {
        const ids = { NetworkID: this.networkId, EndpointID: e.endpointId };
        await this.call('NetworkDriver.Leave', ids);
        await this.call('NetworkDriver.DeleteEndpoint', ids);
        await this.call('IpamDriver.ReleaseAddress', { PoolID: this.poolId, Address: e.address });
      }
    } finally {
      if (this.namespaces.length) await must('ip', ['-batch', '-'], { input: Buffer.from(this.namespaces.map((ns) => `netns del ${ns}\n`).join('')) });
      this.all.length = 0;
      this.namespaces.length = 0;
    }
  }

  private async wire(ns: string, labels: string[]): Promise<BareEndpoint> {
    const endpointId = randomBytes(32).toString('hex');
    const address = (await this.call<{ Address: string }>('IpamDriver.RequestAddress', { PoolID: this.poolId, Address: '', Options: {} })).Address;
    const ids = { NetworkID: this.networkId, EndpointID: endpointId };
    await this.call('NetworkDriver.CreateEndpoint', { ...ids, Interface: { Address: address, AddressIPv6: '', MacAddress: '' }, Options: {} });
    const join = await this.call<{ InterfaceName: { SrcName: string }; Gateway: string }>('NetworkDriver.Join', {
      ...ids,
      SandboxKey: `/run/netns/${ns}`,
      Options: {},
    });
    const dev = join.InterfaceName.SrcName;
    await must('ip', ['link', 'set', dev, 'netns', ns]);
    const inside = [
      `link set lo up`,
      `link set ${dev} up`,
      `addr add ${address} dev ${dev}`,
      `route add ${join.Gateway} dev ${dev}`,
      `route add default via ${join.Gateway}`,
    ];
    await must('ip', ['-n', ns, '-batch', '-'], { input: Buffer.from(inside.map((l) => `${l}\n`).join('')) });
    const labelled = await httpUnix(this.agent.apiSocket, 'PUT', `/v1/endpoint/${endpointId}/labels`, JSON.stringify({ labels }));
    if (labelled.status !== 200) throw new Error(`labelling ${ns}: ${JSON.stringify(labelled.body)}`);
    return { ns, endpointId, address: address.split('/')[0]! };
  }

  private async call<T = unknown>(method: string, body: object): Promise<T> {
    const a = await this.agent.plugin(method, body);
    if (a.status !== 200) throw new Error(`${method}: ${JSON.stringify(a.body)}`);
    return a.body as T;
  }
}
