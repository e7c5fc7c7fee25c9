import { Family, familyBits } from '../net/address';
import { addAddress, createVeth, deleteAddress, linkIndex, setUp } from './rtnl';
import { setSysctl, sysctlExists } from './sysctl';

/**
 * The host side of every endpoint's default route: the router addresses live
 * on cilium_host (one end of a veth pair, since this kernel has no dummy
 * driver). Containers ARP for their gateway on their own veth and the host
 * answers because the address is local.
 */
export const HOST_DEVICE = 'cilium_host';
const NET_DEVICE = 'cilium_net';

export interface RouterAddress {
  family: Family;
  value: bigint;
}

/** Idempotent: run at every agent start, and for each --subnet gateway. */
export async function ensureHostRouter(addresses: RouterAddress[], ipv6: boolean): Promise<number> {
  let index = await linkIndex(HOST_DEVICE);
  if (index === undefined) {
    await createVeth({ name: HOST_DEVICE, mac: '0a:c1:00:00:00:01', peerName: NET_DEVICE, peerMac: '0a:c1:00:00:00:02' });
    index = (await linkIndex(HOST_DEVICE))!;
  }
  await setUp(index);
  await setUp((await linkIndex(NET_DEVICE))!);
  for (const a of addresses) await addAddress(index, a.family, a.value, familyBits(a.family));
  await setSysctl('net.ipv4.ip_forward', '1');
  // Per-interface IPv6 forwarding (kernel >= 6.17) avoids flipping the host-wide
  // switch, which would stop the host itself from accepting router adverts.
  if (ipv6 && !(await sysctlExists('net.ipv6.conf.lo.force_forwarding'))) {
    await setSysctl('net.ipv6.conf.all.forwarding', '1');
  }
  return index;
}

export async function addRouterAddress(a: RouterAddress): Promise<void> {
  const index = await linkIndex(HOST_DEVICE);
  if (index === undefined) throw new Error(`${HOST_DEVICE} is missing: restart cilium-agent to recreate it`);
  await addAddress(index, a.family, a.value, familyBits(a.family));
}

export async function removeRouterAddress(a: RouterAddress): Promise<void> {
  const index = await linkIndex(HOST_DEVICE);
  if (index !== undefined) await deleteAddress(index, a.family, a.value, familyBits(a.family));
}
