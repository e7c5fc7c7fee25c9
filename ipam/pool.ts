import { Cidr, Family, contains, formatAddress, formatCidr, lastAddress, size } from '../net/address';

export type Owner = 'gateway' | 'endpoint';

interface Held {
  owner: Owner;
  /** When it was handed out (ms since the epoch): reconciliation leaves young allocations alone. */
  at: number;
}

/**
 * One address pool in memory: which addresses are taken and by what.
 * Pure and synchronous, so a reservation is made before any await and two
 * concurrent requests can never pick the same address.
 */
export class Pool {
  private readonly taken = new Map<bigint, Held>();
  private readonly reserved: Set<bigint>;
  private cursor: bigint;

  /**
   * @param cidr the whole pool (what --subnet names)
   * @param range where free-choice allocations come from (--ip-range, else cidr)
   * @param reserved addresses never handed out (network base, router, host's own)
   */
  constructor(
    readonly id: string,
    readonly cidr: Cidr,
    readonly range: Cidr,
    reserved: bigint[],
  ) {
    this.reserved = new Set(reserved);
    this.cursor = range.base;
  }

  get family(): Family {
    return this.cidr.family;
  }

  /** Takes the next free address of the range, moving round so a just-freed address is reused last. */
  allocate(owner: Owner): bigint {
    const first = this.range.base;
    const last = lastAddress(this.range);
    const span = last - first + 1n;
    if (this.free() > 0n) {
      for (let i = 0n; i < span; i++) {
        const candidate = first + ((this.cursor - first + 1n + i) % span);
        if (!this.taken.has(candidate) && !this.reserved.has(candidate)) {
          this.taken.set(candidate, { owner, at: Date.now() });
          this.cursor = candidate;
          return candidate;
        }
      }
    }
    throw new Error(
      `no free address in pool ${formatCidr(this.range)} (${this.usedInRange()} of ${this.capacity()} in use): ` +
        'remove unused containers or use a network with a larger --subnet/--ip-range',
    );
  }

  /** Takes one named address (docker run --ip, --gateway). */
  claim(value: bigint, owner: Owner): void {
    const text = formatAddress(this.family, value);
    if (!contains(this.cidr, this.family, value)) {
      throw new Error(`address ${text} is outside pool ${formatCidr(this.cidr)}`);
    }
    if (this.reserved.has(value)) throw new Error(`address ${text} is reserved in pool ${formatCidr(this.cidr)}`);
    const holder = this.taken.get(value);
    if (holder !== undefined) throw new Error(`address ${text} is already in use (${holder.owner}) in pool ${formatCidr(this.cidr)}`);
    this.taken.set(value, { owner, at: Date.now() });
  }

  /** Restores an allocation read back from the store (or one whose removal failed). */
  restore(value: bigint, owner: Owner, at = Date.now()): void {
    this.taken.set(value, { owner, at });
    if (contains(this.range, this.family, value) && value > this.cursor) this.cursor = value;
  }

  /** @returns the owner the address had, undefined when it was free. */
  release(value: bigint): Owner | undefined {
    const held = this.taken.get(value);
    this.taken.delete(value);
    return held?.owner;
  }

  ownerOf(value: bigint): Owner | undefined {
    return this.taken.get(value)?.owner;
  }

  isReserved(value: bigint): boolean {
    return this.reserved.has(value);
  }

  allocations(): Array<{ address: string; owner: Owner; at: number }> {
    return [...this.taken].map(([v, h]) => ({ address: formatAddress(this.family, v), owner: h.owner, at: h.at }));
  }

  /** Addresses of the range that can still be handed out. */
  free(): bigint {
    return this.capacity() - this.usedInRange();
  }

  capacity(): bigint {
    let n = size(this.range);
    for (const r of this.reserved) if (contains(this.range, this.family, r)) n--;
    return n;
  }

  private usedInRange(): bigint {
    let n = 0n;
    for (const v of this.taken.keys()) if (contains(this.range, this.family, v) && !this.reserved.has(v)) n++;
    return n;
  }
}
