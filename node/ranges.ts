import { Logger } from 'winston';
import { EtcdStore } from '../kvstore/etcd';
import { rangeKey } from '../kvstore/keys';
import { Cidr, formatCidr, parseCidr } from '../net/address';
import { KVStore, getJSON, putJSON } from '../store/kvstore';

const LOCAL_KEY = 'node/v1/ranges';

export interface HostRanges {
  ipv4Range: Cidr;
  ipv6Range?: Cidr;
}

/**
 * Makes this host's ranges its own in the cluster before any address is
 * handed out: each range key is created once (compare-and-set) and names its
 * node, so two hosts never allocate from one range. A range named by a flag
 * must be free or already this node's; otherwise the one this host had (kept
 * in its own store), else the default 10.N.0.0/16, else the next N no one holds.
 * Claims are not leased: a host down for a while keeps its addresses.
 */
export async function claimRanges(
  kv: EtcdStore,
  local: KVStore,
  cluster: { name: string; nodeName: string },
  want: HostRanges & { rangesGiven: { 4: boolean; 6: boolean } },
  log: Logger,
): Promise<HostRanges> {
  const before = await getJSON<{ ipv4?: string; ipv6?: string }>(local, LOCAL_KEY);
  const claim = async (c: Cidr): Promise<string | undefined> => {
    const key = rangeKey(cluster.name, formatCidr(c));
    if (await kv.create(key, cluster.nodeName)) return undefined;
    const holder = await kv.get(key);
    return holder === cluster.nodeName ? undefined : (holder ?? 'a node that just left');
  };
  const strict = async (c: Cidr, why: string): Promise<Cidr> => {
    const holder = await claim(c);
    if (holder) throw new Error(`${why} ${formatCidr(c)} is already node ${holder}'s in cluster ${cluster.name}`);
    return c;
  };

  let ipv4Range: Cidr;
  if (want.rangesGiven[4]) ipv4Range = await strict(want.ipv4Range, '--ipv4-range');
  else if (before?.ipv4) ipv4Range = await strict(parseCidr(before.ipv4), "this host's range");
  else ipv4Range = await firstFree(want.ipv4Range, claim);
  if (formatCidr(ipv4Range) !== formatCidr(want.ipv4Range))
    log.info(`range ${formatCidr(want.ipv4Range)} is another node's: this host takes ${formatCidr(ipv4Range)}`);

  let ipv6Range: Cidr | undefined;
  if (want.ipv6Range) {
    const c = !want.rangesGiven[6] && before?.ipv6 ? parseCidr(before.ipv6) : want.ipv6Range;
    ipv6Range = await strict(c, want.rangesGiven[6] ? '--ipv6-range' : 'the IPv6 range');
  }
  await local.batch([putJSON(LOCAL_KEY, { ipv4: formatCidr(ipv4Range), ...(ipv6Range ? { ipv6: formatCidr(ipv6Range) } : {}) })]);
  return { ipv4Range, ...(ipv6Range ? { ipv6Range } : {}) };
}

/** The default, else the next ranges of its size inside 10.0.0.0/8 (wrapping), until one is free. */
async function firstFree(start: Cidr, claim: (c: Cidr) => Promise<string | undefined>): Promise<Cidr> {
  const ten = parseCidr('10.0.0.0/8');
  const size = 1n << BigInt(32 - start.bits);
  const inTen = start.bits >= 8 && start.base >> 24n === 10n;
  const count = inTen ? Number((1n << 24n) / size) : 1;
  const first = inTen ? (start.base - ten.base) / size : 0n;
  for (let i = 0; i < Math.min(count, 4096); i++) {
    const c: Cidr = inTen ? { family: 4, base: ten.base + ((first + BigInt(i)) % BigInt(count)) * size, bits: start.bits } : start;
    if ((await claim(c)) === undefined) return c;
  }
  throw new Error(`no free range of /${start.bits} left in the cluster (give one with --ipv4-range)`);
}
