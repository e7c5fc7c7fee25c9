import { Family, formatAddress } from '../../net/address';
import { addressBytes, macBytes } from '../rtnl';
import { MapStore, possibleCpus } from './map';
import { IPPROTO } from '../../net/protocol';

/**
 * Typed views of the pinned maps, byte for byte as bpf/lib/maps.h declares
 * them. Addresses are 16 bytes; IPv4 is held as ::ffff:a.b.c.d.
 */

export const DIR = { ingress: 1, egress: 2 } as const;
export type Direction = keyof typeof DIR;
export const EP_FLAGS = { ingressEnforce: 1, egressEnforce: 2, notReady: 4 } as const;

export function addr16(family: Family, value: bigint): Buffer {
  return family === 6 ? addressBytes(6, value) : Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), addressBytes(4, value)]);
}

/** The reverse of addr16: the family and text form of a 16-byte address. */
export function fromAddr16(b: Buffer): { family: Family; value: bigint } {
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  const bytes = mapped ? b.subarray(12, 16) : b;
  return { family: mapped ? 4 : 6, value: BigInt(`0x${bytes.toString('hex') || '0'}`) };
}

export interface EndpointInfo {
  epId: number;
  flags: number;
  identity: number;
  /** The container (sandbox) the endpoint belongs to; 0 until joined. */
  owner: number;
  mac: string;
  hostMac: string;
  ipv4?: bigint;
  ipv6?: bigint;
  /** Bumped when the endpoint's policy allows less: its tracked connections are checked again. */
  policyGen: number;
}

export const ENDPOINT_INFO_SIZE = 56;

/**
 * Bytes of each pinned map's key and value as bpf/lib/maps.h declares them
 * (per CPU for per-CPU maps; a ring buffer has neither): the codecs below
 * write exactly these, and the loader refuses an object that disagrees.
 */
export const MAP_LAYOUTS = {
  cilium_lxc: { key: 4, value: ENDPOINT_INFO_SIZE },
  cilium_ipcache: { key: 20, value: 8 },
  cilium_policy: { key: 12, value: 16 },
  cilium_ct: { key: 48, value: 40 },
  cilium_frag: { key: 40, value: 4 },
  cilium_ep_addr: { key: 16, value: 16 },
  cilium_events: { key: 0, value: 0 },
  cilium_metrics: { key: 4, value: 16 },
} as const;
export type MapName = keyof typeof MAP_LAYOUTS;
/** Maps only the programs use (not pinned, no codec), checked all the same. */
export const PROGRAM_MAP_LAYOUTS = {
  cilium_events_budget: { key: 4, value: 16 },
} as const;

export class EndpointMap {
  constructor(readonly map: MapStore) {}

  set(ifindex: number, e: EndpointInfo): void {
    const v = Buffer.alloc(ENDPOINT_INFO_SIZE);
    v.writeUInt32LE(e.epId, 0);
    v.writeUInt32LE(e.flags, 4);
    v.writeUInt32LE(e.identity, 8);
    v.writeUInt32LE(e.owner, 12);
    macBytes(e.mac).copy(v, 16);
    if (e.ipv4 !== undefined) addressBytes(4, e.ipv4).copy(v, 24);
    if (e.ipv6 !== undefined) addressBytes(6, e.ipv6).copy(v, 28);
    macBytes(e.hostMac).copy(v, 44);
    v.writeUInt32LE(e.policyGen >>> 0, 52);
    this.map.update(u32(ifindex), v);
  }

  get(ifindex: number): { epId: number; flags: number; identity: number } | undefined {
    const v = this.map.lookup(u32(ifindex));
    return v && { epId: v.readUInt32LE(0), flags: v.readUInt32LE(4), identity: v.readUInt32LE(8) };
  }

  delete(ifindex: number): boolean {
    return this.map.delete(u32(ifindex));
  }

  entries(): Array<{ ifindex: number; epId: number; flags: number; identity: number; owner: number; mac: string; policyGen: number }> {
    return this.map.entries().map(([k, v]) => ({
      ifindex: k.readUInt32LE(0),
      epId: v.readUInt32LE(0),
      flags: v.readUInt32LE(4),
      identity: v.readUInt32LE(8),
      owner: v.readUInt32LE(12),
      mac: [...v.subarray(16, 22)].map((b) => b.toString(16).padStart(2, '0')).join(':'),
      policyGen: v.readUInt32LE(52),
    }));
  }
}

export class IpcacheMap {
  constructor(readonly map: MapStore) {}

  /** prefix bits are those of the family (32 for a host IPv4); owner names the container holding an endpoint address. */
  set(family: Family, value: bigint, bits: number, identity: number, owner = 0): void {
    const v = Buffer.alloc(MAP_LAYOUTS.cilium_ipcache.value);
    v.writeUInt32LE(identity, 0);
    v.writeUInt32LE(owner, 4);
    this.map.update(ipcacheKey(family, value, bits), v);
  }

  delete(family: Family, value: bigint, bits: number): boolean {
    return this.map.delete(ipcacheKey(family, value, bits));
  }

  entries(): Array<{ family: Family; value: bigint; bits: number; identity: number }> {
    return this.map.entries().map(([k, v]) => {
      const a = fromAddr16(k.subarray(4, 20));
      const len = k.readUInt32LE(0);
      return { ...a, bits: a.family === 4 ? len - 96 : len, identity: v.readUInt32LE(0) };
    });
  }
}

function ipcacheKey(family: Family, value: bigint, bits: number): Buffer {
  const k = Buffer.alloc(MAP_LAYOUTS.cilium_ipcache.key);
  k.writeUInt32LE(family === 4 ? bits + 96 : bits, 0);
  addr16(family, value).copy(k, 4);
  return k;
}

export interface PolicyKey {
  epId: number;
  identity: number;
  port: number;
  proto: number;
  dir: Direction;
}

export class PolicyMap {
  constructor(readonly map: MapStore) {}

  static key(p: PolicyKey): Buffer {
    const k = Buffer.alloc(MAP_LAYOUTS.cilium_policy.key);
    k.writeUInt32LE(p.epId, 0);
    k.writeUInt32LE(p.identity, 4);
    k.writeUInt16BE(p.port, 8); // network order, as the program compares it
    k.writeUInt8(p.proto, 10);
    k.writeUInt8(DIR[p.dir], 11);
    return k;
  }

  static parse(k: Buffer): PolicyKey {
    return {
      epId: k.readUInt32LE(0),
      identity: k.readUInt32LE(4),
      port: k.readUInt16BE(8),
      proto: k.readUInt8(10),
      dir: k.readUInt8(11) === DIR.ingress ? 'ingress' : 'egress',
    };
  }

  /** Adds an allow entry; an existing one keeps its counters. */
  allow(p: PolicyKey): void {
    try {
      this.map.update(PolicyMap.key(p), Buffer.alloc(MAP_LAYOUTS.cilium_policy.value), 1 /* BPF_NOEXIST */);
    } catch (err) {
      if (!/EEXIST/.test((err as Error).message)) throw err;
    }
  }

  revoke(p: PolicyKey): void {
    this.map.delete(PolicyMap.key(p));
  }

  entries(): Array<PolicyKey & { packets: bigint; bytes: bigint }> {
    return this.map.entries().map(([k, v]) => ({ ...PolicyMap.parse(k), packets: v.readBigUInt64LE(0), bytes: v.readBigUInt64LE(8) }));
  }
}

/** ct_value.flags (bpf/lib/conntrack.h). */
export const CT_FLAGS = { established: 1, txClosing: 2, rxClosing: 4, reset: 8, denied: 16 } as const;

export interface CtEntry {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
  owner: number;
  dir: Direction;
  packets: bigint;
  bytes: bigint;
  peerIdentity: number;
  /** CLOCK_MONOTONIC second after which the entry is dead. */
  expires: number;
  flags: number;
}

/** The kernel's clock for conntrack lifetimes: CLOCK_MONOTONIC seconds, as bpf_ktime_get_ns(). */
export function monotonicSeconds(): number {
  return Number(process.hrtime.bigint() / 1_000_000_000n);
}

/** Connection state as users know it from Cilium's `bpf ct list`. */
export function ctState(e: Pick<CtEntry, 'proto' | 'flags'>): string {
  if (e.flags & CT_FLAGS.denied) return 'DENIED';
  if (e.proto !== IPPROTO.TCP) return 'ACTIVE';
  if (e.flags & CT_FLAGS.reset) return 'RESET';
  if (e.flags & (CT_FLAGS.txClosing | CT_FLAGS.rxClosing)) return 'CLOSING';
  return e.flags & CT_FLAGS.established ? 'ESTABLISHED' : 'SYN_SENT';
}

export class CtMap {
  constructor(readonly map: MapStore) {}

  static decode(k: Buffer, v: Buffer): CtEntry {
    const src = fromAddr16(k.subarray(0, 16));
    const dst = fromAddr16(k.subarray(16, 32));
    return {
      src: formatAddress(src.family, src.value),
      dst: formatAddress(dst.family, dst.value),
      sport: k.readUInt16BE(32),
      dport: k.readUInt16BE(34),
      proto: k.readUInt8(36),
      owner: k.readUInt32LE(40),
      dir: k.readUInt32LE(44) === DIR.ingress ? 'ingress' : 'egress',
      packets: v.readBigUInt64LE(0),
      bytes: v.readBigUInt64LE(8),
      peerIdentity: v.readUInt32LE(16),
      expires: v.readUInt32LE(20),
      flags: v.readUInt8(32),
    };
  }

  /**
   * One pass over the table: removes entries past their lifetime and those of
   * containers not in keep (when given). Reads in batches and yields between
   * them, so a large table never holds the agent's thread for long.
   */
  async collect(now: number, keep?: Set<number>): Promise<{ scanned: number; expired: number; orphaned: number; live: number }> {
    const r = { scanned: 0, expired: 0, orphaned: 0, live: 0 };
    for (const batch of this.map.batches()) {
      const dead: Buffer[] = [];
      for (const [k, v] of batch) {
        r.scanned++;
        if (v.readUInt32LE(20) < now) {
          dead.push(k);
          r.expired++;
        } else if (keep && !keep.has(k.readUInt32LE(40))) {
          dead.push(k);
          r.orphaned++;
        }
      }
      if (dead.length) this.map.deleteMany(dead);
      r.live += batch.length - dead.length;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return r;
  }

  /** Removes every entry: each connection is decided by policy anew at its next packet. */
  flush(): number {
    let n = 0;
    for (const batch of this.map.batches()) n += this.map.deleteMany(batch.map(([k]) => k));
    return n;
  }

  entries(): CtEntry[] {
    return [...this.map.batches()].flat().map(([k, v]) => CtMap.decode(k, v));
  }
}

export class MetricsMap {
  private readonly cpus = possibleCpus();

  constructor(readonly map: MapStore) {}

  /** Totals over CPUs, by reason and direction. */
  read(): Array<{ reason: number; dir: Direction; packets: bigint; bytes: bigint }> {
    return this.map.keys().map((k) => {
      const v = this.map.lookup(k) ?? Buffer.alloc(16 * this.cpus);
      let packets = 0n;
      let bytes = 0n;
      for (let c = 0; c < this.cpus; c++) {
        packets += v.readBigUInt64LE(c * 16);
        bytes += v.readBigUInt64LE(c * 16 + 8);
      }
      return { reason: k.readUInt8(0), dir: k.readUInt8(1) === DIR.ingress ? 'ingress' : 'egress', packets, bytes };
    });
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

/** Endpoint address -> its veth, the container's MAC and the host side's: for direct local delivery. */
export class EndpointAddressMap {
  constructor(readonly map: MapStore) {}

  set(family: Family, value: bigint, to: { ifindex: number; mac: string; hostMac: string }): void {
    const v = Buffer.alloc(MAP_LAYOUTS.cilium_ep_addr.value);
    v.writeUInt32LE(to.ifindex, 0);
    macBytes(to.mac).copy(v, 4);
    macBytes(to.hostMac).copy(v, 10);
    this.map.update(addr16(family, value), v);
  }

  delete(family: Family, value: bigint): boolean {
    return this.map.delete(addr16(family, value));
  }

  entries(): Array<{ address: string; ifindex: number }> {
    return this.map.entries().map(([k, v]) => {
      const a = fromAddr16(k);
      return { address: formatAddress(a.family, a.value), ifindex: v.readUInt32LE(0) };
    });
  }
}
