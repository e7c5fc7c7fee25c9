import { KVStore, Op, listJSON, putJSON } from '../store/kvstore';
import { Cidr, Family, contains, formatAddress, formatCidr, hostPrefix, lastAddress, overlaps, parseAddress, parseCidr, size } from '../net/address';
import { failpoint } from '../failpoint/failpoint';
import { Owner, Pool } from './pool';

export const GATEWAY_OPTION = 'com.docker.network.gateway';
const ADDRESS_TYPE_OPTION = 'RequestAddressType';
export const DEFAULT_POOL_ID: Record<Family, string> = { 4: 'cilium-host-v4', 6: 'cilium-host-v6' };

/** The host-scope ranges this agent owns; networks without --subnet share them. */
export interface HostRanges {
  4?: { range: Cidr; router: bigint };
  6?: { range: Cidr; router: bigint };
  /** Addresses of the host itself: never handed to a container even if inside a range. */
  hostAddresses: Array<{ family: Family; value: bigint }>;
}

interface PoolRecord {
  id: string;
  cidr: string;
  range: string;
  createdAt?: string;
}
interface AddressRecord {
  pool: string;
  address: string;
  owner: Owner;
  at: string;
}

export interface PoolRequest {
  pool: string;
  subPool: string;
  v6: boolean;
}
export interface PoolAnswer {
  poolId: string;
  pool: string;
  data: Record<string, string>;
}

const poolKey = (id: string) => `ipam/pool/${id}`;
const addrPrefix = (pool: string) => `ipam/addr/${pool}/`;
const addrKey = (pool: string, address: string) => `${addrPrefix(pool)}${address}`;

/**
 * Host-scope IPAM. Every change is written to the store before the call
 * resolves, and every reservation is made in memory before the first await,
 * so neither concurrency nor a kill -9 can hand one address out twice.
 */
export class Ipam {
  private readonly pools = new Map<string, Pool>();
  private readonly poolCreated = new Map<string, number>();

  private constructor(
    private readonly store: KVStore,
    private readonly host: HostRanges,
  ) {}

  static async load(store: KVStore, host: HostRanges): Promise<Ipam> {
    const ipam = new Ipam(store, host);
    for (const family of [4, 6] as const) {
      const h = host[family];
      if (!h) continue;
      const reserved = [h.range.base, h.router, ...ipam.hostAddressesIn(h.range)];
      if (family === 4) reserved.push(lastAddress(h.range));
      ipam.pools.set(DEFAULT_POOL_ID[family], new Pool(DEFAULT_POOL_ID[family], h.range, h.range, reserved));
    }
    for (const rec of await listJSON<PoolRecord>(store, 'ipam/pool/')) {
      ipam.pools.set(rec.id, ipam.subnetPool(rec.id, parseCidr(rec.cidr), parseCidr(rec.range)));
      ipam.poolCreated.set(rec.id, rec.createdAt ? Date.parse(rec.createdAt) : 0);
    }
    for (const rec of await listJSON<AddressRecord>(store, 'ipam/addr/')) {
      const pool = ipam.pools.get(rec.pool);
      // An address of a range this agent no longer owns (flags changed) stays
      // on disk untouched, so that going back to the old flags loses nothing.
      if (pool) pool.restore(parseAddress(rec.address).value, rec.owner, Date.parse(rec.at));
    }
    return ipam;
  }

  getDefaultAddressSpaces() {
    return { LocalDefaultAddressSpace: 'CiliumLocal', GlobalDefaultAddressSpace: 'CiliumGlobal' };
  }

  async requestPool(req: PoolRequest): Promise<PoolAnswer> {
    if (req.pool === '') {
      if (req.subPool !== '') throw new Error('a sub-pool (--ip-range) needs a pool (--subnet)');
      return this.defaultPool(req.v6 ? 6 : 4);
    }
    const cidr = parseCidr(req.pool);
    const range = req.subPool === '' ? cidr : parseCidr(req.subPool);
    if (range.family !== cidr.family || range.bits < cidr.bits || !contains(cidr, range.family, range.base)) {
      throw new Error(`--ip-range ${req.subPool} is not inside --subnet ${req.pool}`);
    }
    this.checkOverlap(cidr);
    const id = `subnet-${formatCidr(cidr)}`;
    const pool = this.subnetPool(id, cidr, range);
    const createdAt = new Date(); // one instant for memory and disk: a restart must see the same pool
    this.pools.set(id, pool);
    this.poolCreated.set(id, createdAt.getTime());
    try {
      await this.store.batch([
        putJSON(poolKey(id), { id, cidr: formatCidr(cidr), range: formatCidr(range), createdAt: createdAt.toISOString() } satisfies PoolRecord),
      ]);
    } catch (err) {
      this.pools.delete(id);
      this.poolCreated.delete(id);
      throw err;
    }
    return { poolId: id, pool: formatCidr(cidr), data: {} };
  }

  async releasePool(poolId: string): Promise<void> {
    const pool = this.pools.get(poolId);
    // The host pools are shared by every network without --subnet and live as long as the agent.
    if (!pool || this.isDefault(poolId)) return;
    const ops: Op[] = [{ type: 'del', key: poolKey(poolId) }];
    for (const a of pool.allocations()) ops.push({ type: 'del', key: addrKey(poolId, a.address) });
    await this.store.batch(ops);
    this.pools.delete(poolId);
    this.poolCreated.delete(poolId);
  }

  /** Releases an endpoint's address from whichever pool holds it; false when none does. */
  async releaseEndpointAddress(address: string): Promise<boolean> {
    const { value } = parseAddress(address);
    const pool = [...this.pools.values()].find((p) => p.ownerOf(value) === 'endpoint');
    return pool ? this.releaseAddress(pool.id, address) : false;
  }

  /** @returns the address with its pool's length: /32 and /128 on the host range, the subnet's on a --subnet pool. */
  async requestAddress(poolId: string, address: string, options: Record<string, string> | null): Promise<string> {
    const pool = this.mustPool(poolId);
    const owner: Owner = options?.[ADDRESS_TYPE_OPTION] === GATEWAY_OPTION ? 'gateway' : 'endpoint';
    if (owner === 'gateway' && this.isDefault(poolId)) {
      // Networks on the host range all use the router address as their gateway.
      return hostPrefix(pool.family, this.host[pool.family]!.router);
    }
    let value: bigint;
    if (address === '') {
      value = pool.allocate(owner);
    } else {
      const parsed = parseAddress(address);
      if (parsed.family !== pool.family) throw new Error(`address ${address} is not IPv${pool.family} like pool ${poolId}`);
      value = parsed.value;
      pool.claim(value, owner);
    }
    const text = formatAddress(pool.family, value);
    failpoint('ipam-reserved');
    try {
      await this.store.batch([putJSON(addrKey(poolId, text), { pool: poolId, address: text, owner, at: new Date().toISOString() } satisfies AddressRecord)]);
    } catch (err) {
      pool.release(value);
      throw err;
    }
    failpoint('ipam-persisted');
    // A --subnet pool answers the subnet's length, as Docker's own IPAM: a bridge (or
    // macvlan) network using this IPAM needs its gateway on-link. The host range is
    // routed, not a link: /32 and /128 there.
    return this.isDefault(poolId) ? hostPrefix(pool.family, value) : `${text}/${pool.cidr.bits}`;
  }

  /** Idempotent: the engine only logs release errors, so a second release is a no-op. */
  async releaseAddress(poolId: string, address: string): Promise<boolean> {
    const pool = this.mustPool(poolId);
    const { family, value } = parseAddress(address);
    if (family !== pool.family) throw new Error(`address ${address} is not IPv${pool.family} like pool ${poolId}`);
    const text = formatAddress(family, value);
    // Every host-range network names the router as its gateway and releases it on removal; it stays.
    if (this.isDefault(poolId) && value === this.host[family]?.router) return true;
    const owner = pool.release(value);
    if (owner === undefined) return false;
    failpoint('ipam-releasing');
    try {
      await this.store.batch([{ type: 'del', key: addrKey(poolId, text) }]);
    } catch (err) {
      pool.restore(value, owner);
      throw err;
    }
    failpoint('ipam-released');
    return true;
  }

  routerAddress(family: Family): string | undefined {
    const h = this.host[family];
    return h ? formatAddress(family, h.router) : undefined;
  }

  hostRange(family: Family): string | undefined {
    const h = this.host[family];
    return h ? formatCidr(h.range) : undefined;
  }

  /** What the API and CLI show. */
  snapshot() {
    return [...this.pools.values()].map((p) => ({
      id: p.id,
      family: p.family,
      cidr: formatCidr(p.cidr),
      range: formatCidr(p.range),
      capacity: p.capacity().toString(),
      free: p.free().toString(),
      createdAt: this.poolCreated.get(p.id) ?? 0,
      allocations: p.allocations(),
    }));
  }

  /**
   * Why address may not be an endpoint's on a network whose pool Docker
   * stored as networkPool ("0.0.0.0/0" and "::/0" for the host range), or
   * undefined when this IPAM handed it out to an endpoint there.
   */
  endpointAddressProblem(networkPool: string, address: string): string | undefined {
    let parsed: { family: Family; value: bigint };
    try {
      parsed = parseAddress(address);
    } catch (err) {
      return (err as Error).message;
    }
    const pool =
      networkPool === '0.0.0.0/0' || networkPool === '::/0' ? this.pools.get(DEFAULT_POOL_ID[parsed.family]) : this.pools.get(`subnet-${networkPool}`);
    if (!pool || pool.family !== parsed.family) return `the network has no IPv${parsed.family} pool of this agent's`;
    if (!contains(pool.cidr, parsed.family, parsed.value)) return `it is outside the network's pool ${formatCidr(pool.cidr)}`;
    const owner = pool.ownerOf(parsed.value);
    if (owner === undefined) return `this agent's IPAM did not hand it out (was the network created with --ipam-driver cilium?)`;
    if (owner !== 'endpoint') return `it is the network's ${owner}, not an endpoint address`;
    return undefined;
  }

  isAllocated(poolId: string, address: string): boolean {
    const pool = this.pools.get(poolId);
    return pool !== undefined && pool.ownerOf(parseAddress(address).value) !== undefined;
  }

  private defaultPool(family: Family): PoolAnswer {
    const h = this.host[family];
    if (!h) {
      throw new Error(
        family === 6
          ? 'IPv6 is disabled on this agent: start cilium-agent with --enable-ipv6, or give the network an IPv6 --subnet'
          : 'this agent has no IPv4 range: start cilium-agent with --ipv4-range, or give the network a --subnet',
      );
    }
    // Answering the whole address space with an explicit gateway keeps the
    // engine from checking the pool against host routes; that check loops
    // forever once our own /32 routes sit inside the range.
    return {
      poolId: DEFAULT_POOL_ID[family],
      pool: family === 4 ? '0.0.0.0/0' : '::/0',
      data: { [GATEWAY_OPTION]: hostPrefix(family, h.router) },
    };
  }

  private subnetPool(id: string, cidr: Cidr, range: Cidr): Pool {
    const reserved = [cidr.base, ...this.hostAddressesIn(cidr)];
    if (cidr.family === 4 && size(cidr) > 2n) reserved.push(lastAddress(cidr));
    return new Pool(id, cidr, range, reserved);
  }

  private checkOverlap(cidr: Cidr): void {
    for (const pool of this.pools.values()) {
      if (!overlaps(pool.cidr, cidr)) continue;
      const what = this.isDefault(pool.id)
        ? `this agent's host range ${formatCidr(pool.cidr)} (used by networks created without --subnet)`
        : `--subnet ${formatCidr(pool.cidr)} of another network`;
      throw new Error(`--subnet ${formatCidr(cidr)} overlaps ${what}: choose a subnet that overlaps no other`);
    }
  }

  private hostAddressesIn(c: Cidr): bigint[] {
    return this.host.hostAddresses.filter((a) => contains(c, a.family, a.value)).map((a) => a.value);
  }

  private isDefault(poolId: string): boolean {
    return poolId === DEFAULT_POOL_ID[4] || poolId === DEFAULT_POOL_ID[6];
  }

  private mustPool(poolId: string): Pool {
    const pool = this.pools.get(poolId);
    if (!pool) throw new Error(`pool "${poolId}" does not exist (was the network removed, or the agent's state dir wiped?)`);
    return pool;
  }
}
