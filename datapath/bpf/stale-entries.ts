import { familyBits, formatAddress, parseAddress } from '../../net/address';
import { MIN_CIDR_IDENTITY, MIN_USER_IDENTITY, RESERVED } from '../../identity/reserved';
import type { Maps } from './loader';

/** What the endpoint owner holds now: entries of anything else are left from a crash or a missed call. */
export interface LiveEndpoints {
  list(): Array<{ id: number; ifIndex: number; ipv4?: string; ipv6?: string }>;
  /** An endpoint ID taken by a setup under way (its entries precede its record). */
  isSettingUp(epId: number): boolean;
  /** Whether some setup is under way (its addresses may precede its record). */
  creating(): boolean;
}

/**
 * One sweep per map of the entries no live endpoint owns, each to run
 * against a fresh look at the owner: the caller frees the event loop in
 * between. Each answers how many entries it removed. CIDR identities, the
 * host's and reserved entries are not endpoints' and are never touched here,
 * nor other hosts' endpoints (remote).
 */
export function staleEntrySweeps(maps: Maps, live: LiveEndpoints, remote: () => Set<string> = () => new Set()): Array<() => number> {
  const addresses = () => new Set(live.list().flatMap((e) => [e.ipv4, e.ipv6].filter(Boolean)));
  return [
    () => {
      const ifindexes = new Set(live.list().map((e) => e.ifIndex));
      return maps.endpoints.entries().filter((e) => !ifindexes.has(e.ifindex) && !live.isSettingUp(e.epId) && maps.endpoints.delete(e.ifindex)).length;
    },
    () => {
      const ids = new Set(live.list().map((e) => e.id));
      const stale = maps.policy.entries().filter((p) => !ids.has(p.epId) && !live.isSettingUp(p.epId));
      for (const p of stale) maps.policy.revoke(p);
      return stale.length;
    },
    () => {
      const held = new Set([...addresses(), ...remote()]);
      return maps.ipcache.entries().filter((e) => {
        const endpointIdentity = e.identity === RESERVED.init || (e.identity >= MIN_USER_IDENTITY && e.identity < MIN_CIDR_IDENTITY);
        const host = e.bits === familyBits(e.family);
        return endpointIdentity && host && !held.has(formatAddress(e.family, e.value)) && !live.creating() && maps.ipcache.delete(e.family, e.value, e.bits);
      }).length;
    },
    () => {
      const held = addresses();
      return maps.addresses.entries().filter((a) => {
        if (held.has(a.address) || live.creating()) return false;
        const p = parseAddress(a.address);
        return maps.addresses.delete(p.family, p.value);
      }).length;
    },
  ];
}
