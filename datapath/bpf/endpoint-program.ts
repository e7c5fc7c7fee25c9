import { createHash } from 'crypto';
import { Family, familyBits, parseAddress } from '../../net/address';
import type { DatapathMaps } from './loader';
import { EP_FLAGS } from './constants';

/** What the datapath needs to know of one endpoint. */
export interface EndpointDatapathState {
  id: number;
  ifIndex: number;
  mac: string;
  /** The host side's MAC: what the container sees as its gateway's. */
  hostMac: string;
  ipv4?: string;
  ipv6?: string;
  sandboxKey?: string;
  identity: number;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  /** Until the identity is known the endpoint passes nothing (fail closed). */
  ready: boolean;
  /** See EndpointInfo.policyGen. */
  policyGen: number;
}

/** Endpoints in one network namespace belong to one container: they share a non-zero owner number. */
export function ownerOf(sandboxKey: string | undefined): number {
  if (!sandboxKey) return 0;
  return createHash('sha256').update(sandboxKey).digest().readUInt32LE(0) || 1;
}

function addresses(ep: { ipv4?: string; ipv6?: string }): Array<{ family: Family; value: bigint }> {
  return [ep.ipv4, ep.ipv6].filter((a): a is string => !!a).map(parseAddress);
}

/** Writes the endpoint's map entry and its addresses' identity. Idempotent. */
export function programEndpoint(dp: DatapathMaps, ep: EndpointDatapathState): void {
  const flags = (ep.ingressEnforced ? EP_FLAGS.ingressEnforce : 0) | (ep.egressEnforced ? EP_FLAGS.egressEnforce : 0) | (ep.ready ? 0 : EP_FLAGS.notReady);
  const owner = ownerOf(ep.sandboxKey);
  for (const a of addresses(ep)) {
    dp.maps.ipcache.set(a.family, a.value, familyBits(a.family), ep.identity, owner);
    dp.maps.addresses.set(a.family, a.value, { ifindex: ep.ifIndex, mac: ep.mac, hostMac: ep.hostMac });
  }
  dp.maps.endpoints.set(ep.ifIndex, {
    epId: ep.id,
    flags,
    identity: ep.identity,
    owner,
    mac: ep.mac,
    hostMac: ep.hostMac,
    policyGen: ep.policyGen,
    ...(ep.ipv4 ? { ipv4: parseAddress(ep.ipv4).value } : {}),
    ...(ep.ipv6 ? { ipv6: parseAddress(ep.ipv6).value } : {}),
  });
}

/**
 * Removes the endpoint's own map entries (its policy entries go with
 * PolicySync.forget, which knows them). Its conntrack entries are inert
 * (keyed by a container no other endpoint will have) and age out of the LRU
 * or are swept by reconciliation: walking the whole table here would put an
 * O(connections) cost on every container stop. Idempotent.
 */
export function unprogramEndpoint(dp: DatapathMaps, ep: { ifIndex: number; ipv4?: string; ipv6?: string }): void {
  dp.maps.endpoints.delete(ep.ifIndex);
  for (const a of addresses(ep)) {
    dp.maps.addresses.delete(a.family, a.value);
    dp.maps.ipcache.delete(a.family, a.value, familyBits(a.family));
  }
}
