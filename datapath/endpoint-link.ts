import { createHash } from 'crypto';
import { Family, familyBits } from '../net/address';
import { createVeth, deleteLink, linkIndex, replaceRoute, setUp } from './rtnl';
import { failpoint } from '../failpoint/failpoint';
import { setSysctl, sysctlExists } from './sysctl';

/** The alias an agent tags its veths with, derived from its state dir: what makes a link "ours". */
export function agentTag(stateDir: string): string {
  return `cilium-agent:${createHash('sha256').update(stateDir).digest('hex').slice(0, 12)}`;
}

/** Interface names and MACs of one endpoint, all derived from its Docker endpoint ID. */
export interface LinkNames {
  hostName: string;
  peerName: string;
  hostMac: string;
  peerMac: string;
}

export function linkNames(dockerEndpointId: string): LinkNames {
  const h = createHash('sha256').update(dockerEndpointId).digest('hex');
  // Locally administered unicast MACs (0x02 bit set, 0x01 clear).
  const mac = (tag: string) => `${tag}:${h.slice(12, 22).match(/../g)!.join(':')}`;
  return { hostName: `lxc${h.slice(0, 12)}`, peerName: `tmp${h.slice(0, 12)}`, hostMac: mac('0a'), peerMac: mac('0e') };
}

/** The EUI-64 link-local address the kernel gives an interface with this MAC: the containers' IPv6 gateway. */
export function linkLocalFromMac(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  b[0]! ^= 0x02;
  const words = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | 0xff, (0xfe << 8) | b[3]!, (b[4]! << 8) | b[5]!];
  return `fe80::${words.map((w) => w.toString(16)).join(':')}`;
}

export interface EndpointAddress {
  family: Family;
  value: bigint;
}

/**
 * Creates the endpoint's veth pair and its host routes. A pair left behind by
 * a crash under the same name is replaced. On failure nothing is left behind.
 * The host side carries the agent's tag as its alias, so reconciliation can
 * tell this agent's links from those of another agent on the same host.
 * @returns the host-side interface index
 */
export async function setupEndpointLink(names: LinkNames, addresses: EndpointAddress[], tag: string): Promise<number> {
  await deleteLink(names.hostName);
  await createVeth({ name: names.hostName, mac: names.hostMac, peerName: names.peerName, peerMac: names.peerMac });
  // The kernel takes no alias at creation: until setUp below the pair is recognisable by its names only.
  failpoint('endpoint-veth-created');
  try {
    // DAD would leave the gateway link-local tentative for a second after up.
    await setSysctl(`net.ipv6.conf.${names.hostName}.accept_dad`, '0');
    await forwardIPv6(names.hostName);
    const index = (await linkIndex(names.hostName))!;
    await setUp(index, tag);
    for (const a of addresses) await replaceRoute(a.family, a.value, familyBits(a.family), index);
    return index;
  } catch (err) {
    await deleteLink(names.hostName);
    throw err;
  }
}

/** Removing the host side removes the peer and every route through it. Idempotent. */
export async function teardownEndpointLink(hostName: string): Promise<void> {
  await deleteLink(hostName);
}

/**
 * IPv6 forwarding on a host-side veth: force_forwarding (kernel >= 6.17) lets
 * the stack route for it without the host-wide switch, and the interface's own
 * forwarding flag is what the masquerade path's route lookup (bpf_fib_lookup)
 * asks. Idempotent: also applied to the veths of an earlier version at start.
 */
export async function forwardIPv6(hostName: string): Promise<void> {
  for (const knob of ['force_forwarding', 'forwarding']) {
    if (await sysctlExists(`net.ipv6.conf.${hostName}.${knob}`)) await setSysctl(`net.ipv6.conf.${hostName}.${knob}`, '1');
  }
}
