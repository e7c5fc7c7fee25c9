import { readdirSync } from 'fs';
import { LINKS_DIR, PINNED_MAPS } from '../../datapath/bpf/loader';
import { listLinks, listRoutes } from '../../datapath/rtnl';
import { addr16, fromAddr16 } from '../../datapath/bpf/maps';
import { familyBits, formatAddress } from '../../net/address';
import { TestAgent } from './agent';
import { TestDockerd } from './dockerd';

export interface Leaks {
  /** running containers */
  containers: number;
  /** an address held by two running containers */
  duplicates: number;
  /** IPAM says allocated, no running container has it */
  unownedAddresses: number;
  /** the agent has an endpoint no running container uses */
  endpointsWithoutContainer: number;
  /** a veth tagged as this agent's that no endpoint owns */
  orphanLinks: number;
  /** a veth pair of our naming (lxc…/tmp…) with both ends in the host namespace and no tag: an agent died creating it */
  untaggedPairs: number;
  /** a route through one of this agent's veths to an address no running container has */
  orphanRoutes: number;
  /** a file under the agent's BPF root that is not one of its maps */
  orphanPins: number;
}

interface Inspect {
  NetworkSettings: { Networks: Record<string, { EndpointID: string; IPAddress: string; GlobalIPv6Address: string }> };
}

/** Counts what a crash could have left behind, from Docker, the agent and the kernel independently. */
export async function countLeaks(d: TestDockerd, agent: TestAgent): Promise<Leaks> {
  if (agent.pid) await agent.settled();
  const ids = (await d.docker(['ps', '-q'])).stdout.split('\n').filter(Boolean);
  const inspected = ids.length ? (JSON.parse(await d.ok(['inspect', ...ids])) as Inspect[]) : [];
  const nets = inspected.flatMap((c) => Object.values(c.NetworkSettings.Networks));
  const addresses = nets.flatMap((n) => [n.IPAddress, n.GlobalIPv6Address]).filter(Boolean);
  const endpointIds = new Set(nets.map((n) => n.EndpointID));
  const pools = await agent.api<Array<{ allocations: Array<{ address: string; owner: string }> }>>('/v1/ipam');
  const endpoints = await agent.api<Array<{ dockerEndpointId: string; ifName: string }>>('/v1/endpoint');
  const ifNames = new Set(endpoints.map((e) => e.ifName));
  const held = new Set(addresses);
  const canonical = (family: 4 | 6, raw: Buffer) => {
    const a = fromAddr16(family === 4 ? addr16(4, BigInt(`0x${raw.toString('hex')}`)) : raw);
    return formatAddress(a.family, a.value);
  };
  const links = await listLinks();
  const ours = new Set(links.filter((l) => l.alias === agent.tag).map((l) => l.index));
  let orphanRoutes = 0;
  for (const family of [4, 6] as const) {
    for (const r of await listRoutes(family)) {
      if (ours.has(r.oif) && r.protocol === 'STATIC' && r.bits === familyBits(family) && !held.has(canonical(family, r.dst))) orphanRoutes++;
    }
  }
  let orphanPins = 0;
  try {
    orphanPins = readdirSync(agent.bpfRoot).filter((f) => !PINNED_MAPS.includes(f) && f !== LINKS_DIR).length;
  } catch {
    /* no BPF root: nothing pinned */
  }
  return {
    containers: ids.length,
    duplicates: addresses.length - new Set(addresses).size,
    unownedAddresses: pools.flatMap((p) => p.allocations).filter((a) => a.owner === 'endpoint' && !held.has(a.address)).length,
    endpointsWithoutContainer: endpoints.filter((e) => !endpointIds.has(e.dockerEndpointId)).length,
    orphanLinks: links.filter((l) => l.alias === agent.tag && !ifNames.has(l.name)).length,
    untaggedPairs: untaggedPairs(links),
    orphanRoutes,
    orphanPins,
  };
}

export function untaggedPairs(links: Array<{ name: string; alias: string }>): number {
  const names = new Set(links.map((l) => l.name));
  return links.filter((l) => !l.alias && /^lxc[0-9a-f]{12}$/.test(l.name) && names.has(`tmp${l.name.slice(3)}`)).length;
}

export const NO_LEAKS = { duplicates: 0, unownedAddresses: 0, endpointsWithoutContainer: 0, orphanLinks: 0, untaggedPairs: 0, orphanRoutes: 0, orphanPins: 0 };

export function leakFree(l: Leaks): Omit<Leaks, 'containers'> {
  const { containers: _c, ...rest } = l;
  return rest;
}
