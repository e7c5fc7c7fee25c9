/**
 * Hostile requests for the plugin and API sockets. Every generated request is
 * one that must not change state: garbage, malformed or mis-typed bodies,
 * valid shapes with one field corrupted, and out-of-order calls on things that
 * do not exist. A seeded generator makes a failure reproducible.
 */
/**
 * A real network and endpoints on the fuzzed agent. Requests name them only
 * where another part of the same request is bad by construction (an address
 * the IPAM never handed out, a sandbox key that is no path, an unknown
 * endpoint), so CreateEndpoint/Join/Leave get past their ID checks and still
 * may change nothing.
 */
export interface FuzzTargets {
  networkId: string;
  endpointIds: string[];
  /** "a.b.c.d/32" held by those endpoints */
  heldAddresses: string[];
  /** in the agent's range, never handed out */
  freeAddress: string;
}

export interface FuzzRequest {
  method: string;
  path: string;
  body?: string;
}

export class Rng {
  constructor(private s: number) {}
  next(): number {
    // xorshift32
    this.s ^= this.s << 13;
    this.s ^= this.s >>> 17;
    this.s ^= this.s << 5;
    return (this.s >>> 0) / 2 ** 32;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

export const PLUGIN_ROUTES = [
  'Plugin.Activate',
  'NetworkDriver.GetCapabilities',
  'NetworkDriver.CreateNetwork',
  'NetworkDriver.DeleteNetwork',
  'NetworkDriver.AllocateNetwork',
  'NetworkDriver.FreeNetwork',
  'NetworkDriver.CreateEndpoint',
  'NetworkDriver.DeleteEndpoint',
  'NetworkDriver.EndpointOperInfo',
  'NetworkDriver.Join',
  'NetworkDriver.Leave',
  'NetworkDriver.DiscoverNew',
  'NetworkDriver.DiscoverDelete',
  'NetworkDriver.ProgramExternalConnectivity',
  'NetworkDriver.RevokeExternalConnectivity',
  'IpamDriver.GetCapabilities',
  'IpamDriver.GetDefaultAddressSpaces',
  'IpamDriver.RequestPool',
  'IpamDriver.ReleasePool',
  'IpamDriver.RequestAddress',
  'IpamDriver.ReleaseAddress',
] as const;

function garbageValue(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 2 ? 6 : 8)) {
    case 0:
      return null;
    case 1:
      return r.int(2) === 0;
    case 2:
      return r.pick([0, -1, 1e308, 2 ** 53, NaN, 65536, 3.5]);
    case 3:
      return randomString(r);
    case 4:
      return r.pick(['', '../../etc/passwd', '10.0.0.300/24', '::/129', 'f00d::zz', '$(reboot)', '; rm -rf /', 'a'.repeat(300), '\u0000', '0.0.0.0/0']);
    case 5:
      return r.pick(['cilium-host-v4', 'cilium-host-v6', 'subnet-10.1.0.0/16']);
    case 6:
      return Array.from({ length: r.int(4) }, () => garbageValue(r, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: r.int(4) }, () => [randomString(r), garbageValue(r, depth + 1)]));
  }
}

function randomString(r: Rng): string {
  const chars = 'abcdefABCDEF0123456789-_./:%{}"\\ \n';
  return Array.from({ length: r.int(20) }, () => chars[r.int(chars.length)]).join('');
}

const ID = (r: Rng) => Array.from({ length: 64 }, () => '0123456789abcdef'[r.int(16)]).join('');

/** A well-formed request for the route, with one required part corrupted so it must fail or be a no-op. */
function corrupted(r: Rng, route: (typeof PLUGIN_ROUTES)[number], t: FuzzTargets): unknown {
  const junk = () => garbageValue(r);
  const net = () => (r.int(2) ? t.networkId : ID(r));
  const notAPath = () => r.pick(['', 'netns/x', 'run/netns/a', 42, null, ['/run/netns/x'], { path: '/x' }]);
  switch (route) {
    case 'NetworkDriver.CreateNetwork':
      return {
        NetworkID: r.int(2) ? ID(r) : junk(),
        Options: junk(),
        IPv4Data: r.pick([junk(), [{ Pool: junk(), Gateway: 'not-an-ip' }], []]),
        IPv6Data: r.pick([junk(), []]),
      };
    case 'NetworkDriver.CreateEndpoint':
      // A new endpoint ID with an address this IPAM did not hand out, or one another endpoint holds.
      return {
        NetworkID: net(),
        EndpointID: r.int(4) ? ID(r) : junk(),
        Interface: r.pick([junk(), { Address: t.freeAddress }, { Address: r.pick(t.heldAddresses) }, { Address: junk(), MacAddress: junk() }]),
      };
    case 'NetworkDriver.Join':
      // A real endpoint with a sandbox key that is no path, or an unknown endpoint.
      return r.int(2)
        ? { NetworkID: net(), EndpointID: r.pick(t.endpointIds), SandboxKey: notAPath(), Options: junk() }
        : { NetworkID: net(), EndpointID: ID(r), SandboxKey: r.pick(['/run/netns/fuzz', notAPath()]), Options: junk() };
    case 'NetworkDriver.EndpointOperInfo':
      return { NetworkID: net(), EndpointID: r.pick([...t.endpointIds, ID(r), junk()]) };
    case 'IpamDriver.RequestPool':
      return { AddressSpace: junk(), Pool: r.pick(['10.0.0.300/24', '::/129', 'x', '10.1.2.3/8', junk()]), SubPool: junk(), V6: junk() };
    case 'IpamDriver.RequestAddress':
      return {
        PoolID: r.pick(['no-such-pool', ID(r), 'cilium-host-v4']),
        Address: r.pick(['999.1.1.1', 'f00d::zz', 'x', '10.2.0.0/16', ...t.heldAddresses.map((a) => a.split('/')[0]!)]),
        Options: junk(),
      };
    case 'IpamDriver.ReleaseAddress':
      return {
        PoolID: r.pick(['no-such-pool', 'cilium-host-v4', 'cilium-host-v6', junk()]),
        Address: r.pick([t.freeAddress.split('/')[0]!, 'f00d::d5:0:9', 'x', junk()]),
      };
    default:
      // Deletes, leaves and queries of endpoints and pools that do not exist (on the real network too): errors or no-ops.
      return {
        NetworkID: route === 'NetworkDriver.DeleteNetwork' || r.int(2) ? ID(r) : t.networkId,
        EndpointID: r.int(2) ? ID(r) : junk(),
        PoolID: r.pick(['no-such-pool', junk()]),
        Options: junk(),
      };
  }
}

/** One plugin request: a route (sometimes an unknown one) and a hostile body. */
export function pluginRequest(r: Rng, t: FuzzTargets): FuzzRequest {
  const route = r.int(20) === 0 ? `NetworkDriver.${encodeURIComponent(randomString(r))}` : r.pick(PLUGIN_ROUTES);
  const path = `/${route}`;
  switch (r.int(6)) {
    case 0:
      return { method: 'POST', path, body: randomString(r) };
    case 1:
      return { method: 'POST', path, body: JSON.stringify(corrupted(r, route as (typeof PLUGIN_ROUTES)[number], t)).slice(0, 1 + r.int(80)) }; // truncated
    case 2:
      return { method: 'POST', path, body: JSON.stringify(garbageValue(r)) };
    case 3:
      return { method: r.pick(['GET', 'PUT', 'DELETE']), path, body: '{}' };
    default:
      return { method: 'POST', path, body: JSON.stringify(corrupted(r, route as (typeof PLUGIN_ROUTES)[number], t)) };
  }
}

/** One API request: read-only routes with odd parameters, and writes that must be refused. */
export function apiRequest(r: Rng, t: FuzzTargets): FuzzRequest {
  const bad = () =>
    JSON.stringify(
      r.pick([garbageValue(r), [{ endpointSelector: garbageValue(r), ingress: garbageValue(r) }], [{ ingress: [] }], [{ endpointSelector: {}, bogus: 1 }]]),
    );
  switch (r.int(10)) {
    case 0:
      return {
        method: 'GET',
        path: r.pick(['/v1/endpoint/', '/v1/identity/', '/v1/bpf/policy/']) + encodeURIComponent(r.int(3) ? randomString(r) : r.pick(t.endpointIds)),
      };
    case 9:
      return {
        method: 'PUT',
        path: `/v1/endpoint/${r.int(3) ? r.pick(t.endpointIds) : encodeURIComponent(randomString(r))}/labels`,
        body: JSON.stringify({ labels: r.pick([{ x: garbageValue(r) }, 'id=x', 7, ['id=x', 7], [null], [{ id: 'x' }]]) }),
      };
    case 1:
      return { method: 'GET', path: `/v1/events?since=${encodeURIComponent(randomString(r))}&type=${encodeURIComponent(randomString(r))}` };
    case 2:
      return { method: 'GET', path: `/v1/policy?labels=${encodeURIComponent(randomString(r))}` };
    case 3:
      return { method: 'PUT', path: '/v1/policy', body: bad() };
    case 4:
      return { method: 'PUT', path: '/v1/policy', body: randomString(r) };
    case 5:
      return { method: 'DELETE', path: '/v1/policy', body: JSON.stringify(r.pick([{}, { labels: garbageValue(r) }, garbageValue(r)])) };
    case 6:
      return {
        method: 'POST',
        path: '/v1/policy/resolve',
        body: JSON.stringify(
          r.pick([garbageValue(r), { from: garbageValue(r), to: [], dport: garbageValue(r) }, { from: ['a=b'], to: ['c=d'], dport: 80, protocol: 'SCTP' }]),
        ),
      };
    case 7:
      return { method: r.pick(['GET', 'POST', 'PATCH']), path: `/v1/${encodeURIComponent(randomString(r))}`, body: randomString(r) };
    default:
      return {
        method: 'GET',
        path: r.pick(['/v1/healthz', '/v1/endpoint', '/v1/identity', '/v1/ipam', '/v1/network', '/v1/bpf/ipcache', '/v1/bpf/ct', '/v1/bpf/endpoint']),
      };
  }
}

/** Bytes that are not (quite) HTTP: broken request lines, bad headers, binary. */
export function rawGarbage(r: Rng): Buffer {
  switch (r.int(4)) {
    case 0:
      return Buffer.from(Array.from({ length: 1 + r.int(200) }, () => r.int(256)));
    case 1:
      return Buffer.from(`POST /IpamDriver.RequestPool HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}`);
    case 2:
      return Buffer.from(`${randomString(r)} / HTTP/9.9\r\n\r\n`);
    default:
      return Buffer.from(`GET /v1/healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzzz\r\n`);
  }
}
