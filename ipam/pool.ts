import { Cidr, Family, contains, formatAddress, formatCidr, lastAddress, size } from './cidr';

export type Owner = 'gateway' | 'endpoint';

/**
 * One address pool in memory: which addresses are taken and by what.
 * Pure and synchronous, so a reservation is made before any await and two
 * concurrent requests can never pick the same address.
 */
export class Pool {
  private readonly taken = new Map<bigint, Owner>();
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
          this.taken.set(candidate, owner);
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
    if (holder !== undefined) throw new Error(`address ${text} is already in use (${holder}) in pool ${formatCidr(this.cidr)}`);
    this.taken.set(value, owner);
  }

  /** Restores an allocation read back from the store. */
  restore(value: bigint, owner: Owner): void {
    this.taken.set(value, owner);
    if (contains(this.range, this.family, value) && value > this.cursor) this.cursor = value;
  }

  /** @returns the owner the address had, undefined when it was free. */
  release(value: bigint): Owner | undefined {
    const owner = this.taken.get(value);
    this.taken.delete(value);
    return owner;
  }

  ownerOf(value: bigint): Owner | undefined {
    return this.taken.get(value);
  }

  isReserved(value: bigint): boolean {
    return this.reserved.has(value);
  }

  allocations(): Array<{ address: string; owner: Owner }> {
    return [...this.taken].map(([v, owner]) => ({ address: formatAddress(this.family, v), owner }));
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
