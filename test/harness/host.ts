import { listLinks, listRoutes } from '../../datapath/rtnl';
import { contains, familyBits, parseCidr } from '../../net/address';

/** What a leak check counts on the host: endpoint veths, and host routes (not address prefixes) into a range. */
export async function lxcLinks(): Promise<string[]> {
  return (await listLinks()).map((l) => l.name).filter((n) => /^lxc[0-9a-f]{12}$/.test(n));
}

export async function routesInto(range: string): Promise<number> {
  const c = parseCidr(range);
  const routes = await listRoutes(c.family);
  return routes.filter((r) => r.protocol !== 'KERNEL' && r.bits === familyBits(c.family) && contains(c, c.family, BigInt(`0x${r.dst.toString('hex')}`))).length;
}
