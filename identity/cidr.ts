import { Cidr, formatCidr, parseCidr } from '../net/address';
import { IdentityAllocator } from './allocator';
import { MIN_CIDR_IDENTITY } from './reserved';

/** An identity policy can name: its labels, and for a CIDR identity the prefix the ipcache maps to it. */
export interface KnownIdentity {
  id: number;
  labels: string[];
  cidr?: Cidr;
}

/**
 * The identities of the CIDR prefixes that rules name (`cidr:<prefix>` and
 * `reserved:world`), local to this host as Cilium's are. The numbers live in
 * the pinned ipcache, so they survive a restart of the agent.
 */
export class CidrIdentities {
  private readonly ids = new Map<string, number>();

  /** From the ipcache the datapath kept: every entry at or above MIN_CIDR_IDENTITY is one. */
  constructor(ipcache: Array<{ family: 4 | 6; value: bigint; bits: number; identity: number }>) {
    for (const e of ipcache) if (e.identity >= MIN_CIDR_IDENTITY) this.ids.set(formatCidr({ family: e.family, base: e.value, bits: e.bits }), e.identity);
  }

  /** Gives every wanted prefix an identity; returns the prefixes no longer wanted (forgotten here). */
  assign(wanted: Iterable<string>): string[] {
    const want = new Set(wanted);
    const stale = [...this.ids.keys()].filter((p) => !want.has(p));
    for (const p of stale) this.ids.delete(p);
    let next = Math.max(MIN_CIDR_IDENTITY - 1, ...this.ids.values()) + 1;
    for (const p of want) if (!this.ids.has(p)) this.ids.set(p, next++);
    return stale;
  }

  /** prefix -> identity */
  entries(): Array<[Cidr, number]> {
    return [...this.ids].map(([p, id]) => [parseCidr(p), id]);
  }

  list(): KnownIdentity[] {
    return [...this.ids].map(([p, id]) => ({ id, labels: [`cidr:${p}`, 'reserved:world'], cidr: parseCidr(p) })).sort((a, b) => a.id - b.id);
  }
}

/** Every identity there is now: the label sets endpoints hold, then the CIDR ones. */
export function knownIdentities(labelled: IdentityAllocator, cidrs: CidrIdentities): KnownIdentity[] {
  return [...labelled.list(), ...cidrs.list()];
}
