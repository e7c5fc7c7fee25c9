import { Family, formatAddress } from '../../net/address';
import { IPPROTO } from '../../net/protocol';
import { addressBytes, macBytes } from '../rtnl';
import { CT_FLAGS, DIR, Direction, NAT_FLAGS, directionOf } from './constants';
import { Layout, FieldList, bytes, scalar, struct } from './layout';
import { MapStore, possibleCpus } from './map';

/**
 * Every pinned map's key and value, member for member as bpf/lib/maps.h
 * declares them, and the typed views the agent reads and writes them
 * through. Addresses are 16 bytes; IPv4 is held as ::ffff:a.b.c.d.
 */

export const FLOW = struct('struct flow', [
  ['saddr', bytes(16)],
  ['daddr', bytes(16)],
  ['sport', 'be16'],
  ['dport', 'be16'],
  ['proto', 'u8'],
  ['family', 'u8'],
  ['tcp_flags', 'u8'],
  ['pad', 'u8'],
]);
const ENDPOINT_INFO = struct('struct endpoint_info', [
  ['ep_id', 'u32'],
  ['flags', 'u32'],
  ['identity', 'u32'],
  ['owner', 'u32'],
  ['mac', bytes(6)],
  ['pad', bytes(2)],
  ['ipv4', bytes(4)],
  ['ipv6', bytes(16)],
  ['host_mac', bytes(6)],
  ['pad2', bytes(2)],
  ['policy_gen', 'u32'],
]);
const IPCACHE_KEY = struct('struct ipcache_key', [
  ['prefixlen', 'u32'],
  ['addr', bytes(16)],
]);
const IPCACHE_VALUE = struct('struct ipcache_value', [
  ['identity', 'u32'],
  ['owner', 'u32'],
]);
const POLICY_KEY = struct('struct policy_key', [
  ['ep_id', 'u32'],
  ['identity', 'u32'],
  ['dport', 'be16'],
  ['proto', 'u8'],
  ['dir', 'u8'],
]);
const POLICY_VALUE = struct('struct policy_value', [
  ['packets', 'u64'],
  ['bytes', 'u64'],
  ['proxy_port', 'u16'],
  ['pad', bytes(6)],
]);
const COUNTERS = (cName: string) =>
  struct(cName, [
    ['packets', 'u64'],
    ['bytes', 'u64'],
  ]);
const CT_KEY = struct('struct ct_key', [
  ['flow', FLOW],
  ['owner', 'u32'],
  ['dir', 'u32'],
]);
export const CT_VALUE = struct('struct ct_value', [
  ['packets', 'u64'],
  ['bytes', 'u64'],
  ['peer_identity', 'u32'],
  ['expires', 'u32'],
  ['ep_ifindex', 'u32'],
  ['policy_gen', 'u32'],
  ['flags', 'u8'],
  ['pad', 'u8'],
  ['proxy_port', 'u16'],
  ['pad2', bytes(4)],
]);
const FRAG_KEY = struct('struct frag_key', [
  ['saddr', bytes(16)],
  ['daddr', bytes(16)],
  ['id', 'u32'],
  ['proto', 'u8'],
  ['pad', bytes(3)],
]);
const FRAG_PORTS = struct('struct frag_ports', [
  ['sport', 'be16'],
  ['dport', 'be16'],
]);
const EP_ADDR_VALUE = struct('struct ep_addr_value', [
  ['ifindex', 'u32'],
  ['mac', bytes(6)],
  ['host_mac', bytes(6)],
]);
const METRICS_KEY = struct('struct metrics_key', [
  ['reason', 'u8'],
  ['dir', 'u8'],
  ['pad', 'u16'],
]);
const EVENTS_BUDGET = struct('struct events_budget', [
  ['last_ns', 'u64'],
  ['tokens', 'u64'],
]);
const NAT_KEY = struct('struct nat_key', [
  ['tuple', FLOW],
  ['dir', 'u8'],
  ['pad', bytes(3)],
]);
const NAT_ENTRY = struct('struct nat_entry', [
  ['addr', bytes(16)],
  ['port', 'be16'],
  ['flags', 'u8'],
  ['pad', 'u8'],
  ['expires', 'u32'],
]);
const NAT_DEVICE = struct('struct nat_device', [
  ['ipv4', bytes(4)],
  ['ipv6', bytes(16)],
]);
const LB_SVC_KEY = struct('struct lb_svc_key', [
  ['addr', bytes(16)],
  ['port', 'be16'],
  ['proto', 'u8'],
  ['pad', 'u8'],
  ['slot', 'u16'],
  ['pad2', bytes(2)],
]);
const LB_SVC_VALUE = struct('struct lb_svc_value', [
  ['backend_id', 'u32'],
  ['count', 'u16'],
  ['pad', bytes(2)],
]);
const LB_BACKEND = struct('struct lb_backend', [
  ['addr', bytes(16)],
  ['port', 'be16'],
  ['proto', 'u8'],
  ['pad', 'u8'],
]);
/** bpf/lib/maps.h LB_MAGLEV_CHUNK: the backend IDs of one chunk of a Maglev table. */
export const MAGLEV_CHUNK = 256;
const LB_MAGLEV_CHUNK = struct('struct lb_maglev_chunk', [['backend_ids', bytes(4 * MAGLEV_CHUNK)]]);
const U32_KEY = scalar('__u32', 'key', 'u32');
const U32_VALUE = scalar('__u32', 'value', 'u32');
/** .rodata: the agent's settings, fixed at load (bpf/lib/maps.h). */
export const DATAPATH_CONFIG = struct('struct datapath_config', [
  ['host_to_endpoint_allowed', 'u32'],
  ['nat_port_min', 'u16'],
  ['nat_port_max', 'u16'],
  ['host_netns_cookie', 'u64'],
  ['maglev_table_size', 'u32'],
  ['pad', 'u32'],
]);
const ADDR_KEY = scalar('__u8[16]', 'addr', bytes(16));

export interface MapLayout {
  key: Layout<FieldList>;
  value: Layout<FieldList>;
}
/** A ring buffer has neither key nor value. */
export const RINGBUF = 'ringbuf';

/** Bytes of a map's key and value (0 and 0 for a ring buffer), as libbpf reports them. */
export function sizesOf(l: MapLayout | typeof RINGBUF): { key: number; value: number } {
  return l === RINGBUF ? { key: 0, value: 0 } : { key: l.key.size, value: l.value.size };
}

/**
 * Every pinned map (per CPU values are per CPU): the codecs below write
 * exactly these, and the loader refuses an object whose maps disagree in
 * size or, through its BTF, in any member's place.
 */
export const MAP_LAYOUTS = {
  cilium_lxc: { key: U32_KEY, value: ENDPOINT_INFO },
  cilium_ipcache: { key: IPCACHE_KEY, value: IPCACHE_VALUE },
  cilium_policy: { key: POLICY_KEY, value: POLICY_VALUE },
  cilium_ct: { key: CT_KEY, value: CT_VALUE },
  cilium_frag: { key: FRAG_KEY, value: FRAG_PORTS },
  cilium_ep_addr: { key: ADDR_KEY, value: EP_ADDR_VALUE },
  cilium_events: RINGBUF,
  cilium_metrics: { key: METRICS_KEY, value: COUNTERS('struct metrics_value') },
  cilium_snat: { key: NAT_KEY, value: NAT_ENTRY },
  cilium_nat_dev: { key: U32_KEY, value: NAT_DEVICE },
  cilium_nat_exclude: { key: IPCACHE_KEY, value: U32_VALUE },
  cilium_lb_svc: { key: LB_SVC_KEY, value: LB_SVC_VALUE },
  cilium_lb_backend: { key: U32_KEY, value: LB_BACKEND },
  cilium_lb_ct: { key: NAT_KEY, value: NAT_ENTRY },
  cilium_lb_maglev: { key: LB_SVC_KEY, value: LB_MAGLEV_CHUNK },
  cilium_lb_sock: {
    key: struct('struct lb_sock_key', [
      ['cookie', 'u64'],
      ['addr', bytes(16)],
      ['port', 'be16'],
      ['proto', 'u8'],
      ['pad', bytes(5)],
    ]),
    value: struct('struct lb_sock_frontend', [
      ['addr', bytes(16)],
      ['port', 'be16'],
      ['pad', bytes(2)],
    ]),
  },
} as const satisfies Record<string, MapLayout | typeof RINGBUF>;
export type MapName = keyof typeof MAP_LAYOUTS;
/** Maps only the programs use (not pinned, no codec), checked all the same. */
export const PROGRAM_MAP_LAYOUTS = {
  cilium_events_budget: { key: U32_KEY, value: EVENTS_BUDGET },
  cilium_ct_scratch: {
    key: U32_KEY,
    value: struct('struct ct_scratch', [
      ['key', CT_KEY],
      ['value', CT_VALUE],
      ['quoted', FLOW],
    ]),
  },
} as const satisfies Record<string, MapLayout>;

export function addr16(family: Family, value: bigint): Buffer {
  return family === 6 ? addressBytes(6, value) : Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), addressBytes(4, value)]);
}

/** The reverse of addr16: the family and text form of a 16-byte address. */
export function fromAddr16(b: Buffer): { family: Family; value: bigint } {
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  const bytes = mapped ? b.subarray(12, 16) : b;
  return { family: mapped ? 4 : 6, value: BigInt(`0x${bytes.toString('hex') || '0'}`) };
}

const formatMac = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
const u32 = (key: number) => U32_KEY.encode({ key });

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

export class EndpointMap {
  constructor(readonly map: MapStore) {}

  set(ifindex: number, e: EndpointInfo): void {
    const v = ENDPOINT_INFO.encode({
      ep_id: e.epId,
      flags: e.flags,
      identity: e.identity,
      owner: e.owner,
      mac: macBytes(e.mac),
      host_mac: macBytes(e.hostMac),
      policy_gen: e.policyGen,
      ...(e.ipv4 !== undefined ? { ipv4: addressBytes(4, e.ipv4) } : {}),
      ...(e.ipv6 !== undefined ? { ipv6: addressBytes(6, e.ipv6) } : {}),
    });
    this.map.update(u32(ifindex), v);
  }

  get(ifindex: number): { epId: number; flags: number; identity: number } | undefined {
    const v = this.map.lookup(u32(ifindex));
    if (!v) return undefined;
    const e = ENDPOINT_INFO.decode(v);
    return { epId: e.ep_id, flags: e.flags, identity: e.identity };
  }

  delete(ifindex: number): boolean {
    return this.map.delete(u32(ifindex));
  }

  entries(): Array<{ ifindex: number; epId: number; flags: number; identity: number; owner: number; mac: string; policyGen: number }> {
    return this.map.entries().map(([k, v]) => {
      const e = ENDPOINT_INFO.decode(v);
      return {
        ifindex: U32_KEY.decode(k).key,
        epId: e.ep_id,
        flags: e.flags,
        identity: e.identity,
        owner: e.owner,
        mac: formatMac(e.mac),
        policyGen: e.policy_gen,
      };
    });
  }
}

/** An LPM key's prefix length counts over the 16 bytes: IPv4 sits under ::ffff:0:0/96. */
const V4_MAPPED_BITS = 96;

export class IpcacheMap {
  constructor(readonly map: MapStore) {}

  /** prefix bits are those of the family (32 for a host IPv4); owner names the container holding an endpoint address. */
  set(family: Family, value: bigint, bits: number, identity: number, owner = 0): void {
    this.map.update(ipcacheKey(family, value, bits), IPCACHE_VALUE.encode({ identity, owner }));
  }

  delete(family: Family, value: bigint, bits: number): boolean {
    return this.map.delete(ipcacheKey(family, value, bits));
  }

  entries(): Array<{ family: Family; value: bigint; bits: number; identity: number }> {
    return this.map.entries().map(([k, v]) => {
      const key = IPCACHE_KEY.decode(k);
      const a = fromAddr16(key.addr);
      return { ...a, bits: a.family === 4 ? key.prefixlen - V4_MAPPED_BITS : key.prefixlen, identity: IPCACHE_VALUE.decode(v).identity };
    });
  }
}

function ipcacheKey(family: Family, value: bigint, bits: number): Buffer {
  return IPCACHE_KEY.encode({ prefixlen: family === 4 ? bits + V4_MAPPED_BITS : bits, addr: addr16(family, value) });
}

export interface PolicyKey {
  epId: number;
  identity: number;
  port: number;
  proto: number;
  dir: Direction;
}

const BPF_NOEXIST = 1;

export class PolicyMap {
  constructor(readonly map: MapStore) {}

  static key(p: PolicyKey): Buffer {
    return POLICY_KEY.encode({ ep_id: p.epId, identity: p.identity, dport: p.port, proto: p.proto, dir: DIR[p.dir] });
  }

  static parse(k: Buffer): PolicyKey {
    const p = POLICY_KEY.decode(k);
    return { epId: p.ep_id, identity: p.identity, port: p.dport, proto: p.proto, dir: directionOf(p.dir) };
  }

  /**
   * Adds an allow entry, or moves an existing one to another proxy port
   * (0: none); an entry that stays keeps its counters.
   */
  allow(p: PolicyKey, proxyPort = 0): void {
    const fresh = POLICY_VALUE.encode({ packets: 0n, bytes: 0n, proxy_port: proxyPort, pad: Buffer.alloc(6) });
    try {
      this.map.update(PolicyMap.key(p), fresh, BPF_NOEXIST);
    } catch (err) {
      if (!/EEXIST/.test((err as Error).message)) throw err;
      const have = this.map.lookup(PolicyMap.key(p));
      if (have && POLICY_VALUE.decode(have).proxy_port !== proxyPort) this.map.update(PolicyMap.key(p), fresh, 0);
    }
  }

  revoke(p: PolicyKey): void {
    this.map.delete(PolicyMap.key(p));
  }

  entries(): Array<PolicyKey & { packets: bigint; bytes: bigint; proxyPort: number }> {
    return this.map.entries().map(([k, v]) => {
      const { packets, bytes, proxy_port } = POLICY_VALUE.decode(v);
      return { ...PolicyMap.parse(k), packets, bytes, proxyPort: proxy_port };
    });
  }
}

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

/** Where the collector reads in place, over batches of thousands of entries. */
const CT_EXPIRES = CT_VALUE.offset('expires');
const CT_OWNER = CT_KEY.offset('owner');

export class CtMap {
  constructor(readonly map: MapStore) {}

  static decode(k: Buffer, v: Buffer): CtEntry {
    const key = CT_KEY.decode(k);
    const value = CT_VALUE.decode(v);
    const src = fromAddr16(key.flow.saddr);
    const dst = fromAddr16(key.flow.daddr);
    return {
      src: formatAddress(src.family, src.value),
      dst: formatAddress(dst.family, dst.value),
      sport: key.flow.sport,
      dport: key.flow.dport,
      proto: key.flow.proto,
      owner: key.owner,
      dir: directionOf(key.dir),
      packets: value.packets,
      bytes: value.bytes,
      peerIdentity: value.peer_identity,
      expires: value.expires,
      flags: value.flags,
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
        if (v.readUInt32LE(CT_EXPIRES) < now) {
          dead.push(k);
          r.expired++;
        } else if (keep && !keep.has(k.readUInt32LE(CT_OWNER))) {
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

const METRICS_VALUE = MAP_LAYOUTS.cilium_metrics.value;

export class MetricsMap {
  private readonly cpus = possibleCpus();

  constructor(readonly map: MapStore) {}

  /** Totals over CPUs, by reason and direction. */
  read(): Array<{ reason: number; dir: Direction; packets: bigint; bytes: bigint }> {
    return this.map.keys().map((k) => {
      const v = this.map.lookup(k) ?? Buffer.alloc(METRICS_VALUE.size * this.cpus);
      let packets = 0n;
      let bytes = 0n;
      for (let c = 0; c < this.cpus; c++) {
        const onCpu = METRICS_VALUE.decode(v, c * METRICS_VALUE.size);
        packets += onCpu.packets;
        bytes += onCpu.bytes;
      }
      const key = METRICS_KEY.decode(k);
      return { reason: key.reason, dir: directionOf(key.dir), packets, bytes };
    });
  }
}

/** Endpoint address -> its veth, the container's MAC and the host side's: for direct local delivery. */
export class EndpointAddressMap {
  constructor(readonly map: MapStore) {}

  set(family: Family, value: bigint, to: { ifindex: number; mac: string; hostMac: string }): void {
    this.map.update(addr16(family, value), EP_ADDR_VALUE.encode({ ifindex: to.ifindex, mac: macBytes(to.mac), host_mac: macBytes(to.hostMac) }));
  }

  delete(family: Family, value: bigint): boolean {
    return this.map.delete(addr16(family, value));
  }

  entries(): Array<{ address: string; ifindex: number }> {
    return this.map.entries().map(([k, v]) => {
      const a = fromAddr16(ADDR_KEY.decode(k).addr);
      return { address: formatAddress(a.family, a.value), ifindex: EP_ADDR_VALUE.decode(v).ifindex };
    });
  }
}

export interface NatEntry {
  /** "egress": as the endpoint sent it, to the address it leaves with; "ingress": the reply as it arrives, to the endpoint. */
  dir: Direction;
  proto: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  /** Where it is translated to. */
  to: string;
  toPort: number;
  closing: boolean;
  expires: number;
}

/** Translations, both directions of each flow: masquerade's (nat.h) and services' (lb.h; dir is then LB_CT_*). */
export class NatMap {
  constructor(readonly map: MapStore) {}

  entries(): NatEntry[] {
    return [...this.map.batches()].flat().map(([k, v]) => {
      const key = NAT_KEY.decode(k);
      const e = NAT_ENTRY.decode(v);
      const text = (b: Buffer) => {
        const a = fromAddr16(b);
        return formatAddress(a.family, a.value);
      };
      return {
        dir: directionOf(key.dir),
        proto: key.tuple.proto,
        src: text(key.tuple.saddr),
        sport: key.tuple.sport,
        dst: text(key.tuple.daddr),
        dport: key.tuple.dport,
        to: text(e.addr),
        toPort: e.port,
        closing: (e.flags & NAT_FLAGS.closing) !== 0,
        expires: e.expires,
      };
    });
  }

  /** Removes translations past their lifetime, in batches with the event loop free in between. */
  async collect(now: number): Promise<{ scanned: number; expired: number }> {
    const r = { scanned: 0, expired: 0 };
    for (const batch of this.map.batches()) {
      const dead = batch.filter(([, v]) => v.readUInt32LE(NAT_EXPIRES) < now).map(([k]) => k);
      r.scanned += batch.length;
      if (dead.length) r.expired += this.map.deleteMany(dead);
      await new Promise((resolve) => setImmediate(resolve));
    }
    return r;
  }
}
const NAT_EXPIRES = NAT_ENTRY.offset('expires');

/** Devices endpoint traffic is masqueraded through, with the addresses it takes there. */
export class NatDeviceMap {
  constructor(readonly map: MapStore) {}

  set(ifindex: number, to: { ipv4?: bigint; ipv6?: bigint }): void {
    this.map.update(
      u32(ifindex),
      NAT_DEVICE.encode({
        ...(to.ipv4 !== undefined ? { ipv4: addressBytes(4, to.ipv4) } : {}),
        ...(to.ipv6 !== undefined ? { ipv6: addressBytes(6, to.ipv6) } : {}),
      }),
    );
  }

  delete(ifindex: number): boolean {
    return this.map.delete(u32(ifindex));
  }

  ifindexes(): number[] {
    return this.map.keys().map((k) => U32_KEY.decode(k).key);
  }
}

/** Destination prefixes never masqueraded. */
export class NatExcludeMap {
  constructor(readonly map: MapStore) {}

  set(family: Family, value: bigint, bits: number): void {
    this.map.update(ipcacheKey(family, value, bits), U32_VALUE.encode({ value: 1 }));
  }

  /** Exactly these prefixes, nothing else. */
  replaceAll(prefixes: Array<{ family: Family; base: bigint; bits: number }>): void {
    const want = new Set(prefixes.map((p) => ipcacheKey(p.family, p.base, p.bits).toString('hex')));
    for (const k of this.map.keys()) if (!want.has(k.toString('hex'))) this.map.delete(k);
    for (const p of prefixes) this.set(p.family, p.base, p.bits);
  }
}

/** A service's frontend: an address (undefined: every host address of the family), port and protocol. */
export interface Frontend {
  family: Family;
  address?: bigint;
  port: number;
  proto: number;
}

export interface Backend {
  family: Family;
  address: bigint;
  port: number;
  proto: number;
}

const frontendAddr = (f: Frontend) => addr16(f.family, f.address ?? 0n).fill(0, 0, f.family === 6 && f.address === undefined ? 16 : 0);
const svcKey = (f: Frontend, slot: number) => LB_SVC_KEY.encode({ addr: frontendAddr(f), port: f.port, proto: f.proto, slot });

/** Frontends -> backend slots (bpf/lib/lb.h): slot 0 the count, slots 1..count the backend IDs. */
export class LbServiceMap {
  constructor(readonly map: MapStore) {}

  /**
   * The frontend's backends become these: the slots first, then the count,
   * so a packet never meets a count that names a slot not yet written.
   */
  set(f: Frontend, backendIds: number[]): void {
    const before = this.count(f);
    backendIds.forEach((id, i) => {
      this.map.update(svcKey(f, i + 1), LB_SVC_VALUE.encode({ backend_id: id }));
    });
    this.map.update(svcKey(f, 0), LB_SVC_VALUE.encode({ count: backendIds.length }));
    for (let slot = backendIds.length + 1; slot <= before; slot++) this.map.delete(svcKey(f, slot));
  }

  delete(f: Frontend): boolean {
    const before = this.count(f);
    const had = this.map.delete(svcKey(f, 0));
    for (let slot = 1; slot <= before; slot++) this.map.delete(svcKey(f, slot));
    return had;
  }

  entries(): Array<{ frontend: Frontend; backendIds: number[] }> {
    const slots = new Map<string, { frontend: Frontend; ids: Map<number, number>; count: number }>();
    for (const [k, v] of this.map.entries()) {
      const key = LB_SVC_KEY.decode(k);
      const a = fromAddr16(key.addr);
      const family: Family = key.addr.every((b) => b === 0) ? 6 : a.family;
      const frontend: Frontend = { family, ...(a.value !== 0n ? { address: a.value } : {}), port: key.port, proto: key.proto };
      const id = `${family}/${a.value}/${key.port}/${key.proto}`;
      const s = slots.get(id) ?? { frontend, ids: new Map(), count: 0 };
      const value = LB_SVC_VALUE.decode(v);
      if (key.slot === 0) s.count = value.count;
      else s.ids.set(key.slot, value.backend_id);
      slots.set(id, s);
    }
    return [...slots.values()].map((s) => ({
      frontend: s.frontend,
      backendIds: Array.from({ length: s.count }, (_, i) => s.ids.get(i + 1) ?? 0),
    }));
  }

  private count(f: Frontend): number {
    const v = this.map.lookup(svcKey(f, 0));
    return v ? LB_SVC_VALUE.decode(v).count : 0;
  }
}

/** Frontends -> their Maglev tables of backend IDs, in chunks of MAGLEV_CHUNK (bpf/lib/maps.h). */
export class LbMaglevMap {
  constructor(readonly map: MapStore) {}

  /** The frontend's table becomes this one (its length the table size). */
  set(f: Frontend, table: number[]): void {
    const chunks = Math.ceil(table.length / MAGLEV_CHUNK);
    for (let c = 0; c < chunks; c++) {
      const ids = Buffer.alloc(4 * MAGLEV_CHUNK);
      table.slice(c * MAGLEV_CHUNK, (c + 1) * MAGLEV_CHUNK).forEach((id, i) => ids.writeUInt32LE(id, 4 * i));
      this.map.update(svcKey(f, c), LB_MAGLEV_CHUNK.encode({ backend_ids: ids }));
    }
  }

  /** Every chunk of the frontend's table (a table size of up to chunks * MAGLEV_CHUNK). */
  delete(f: Frontend, chunks: number): void {
    for (let c = 0; c < chunks; c++) this.deleteChunk(f, c);
  }

  deleteChunk(f: Frontend, chunk: number): void {
    this.map.delete(svcKey(f, chunk));
  }

  /** Each table's frontend and chunks, as the map holds them. */
  entries(): Array<{ frontend: Frontend; chunk: number; backendIds: number[] }> {
    return this.map.entries().map(([k, v]) => {
      const key = LB_SVC_KEY.decode(k);
      const a = fromAddr16(key.addr);
      const family: Family = key.addr.every((b) => b === 0) ? 6 : a.family;
      const ids = LB_MAGLEV_CHUNK.decode(v).backend_ids;
      return {
        frontend: { family, ...(a.value !== 0n ? { address: a.value } : {}), port: key.port, proto: key.proto },
        chunk: key.slot,
        backendIds: Array.from({ length: MAGLEV_CHUNK }, (_, i) => ids.readUInt32LE(4 * i)),
      };
    });
  }
}

/** Backend ID -> address, port and protocol. */
export class LbBackendMap {
  constructor(readonly map: MapStore) {}

  set(id: number, b: Backend): void {
    this.map.update(u32(id), LB_BACKEND.encode({ addr: addr16(b.family, b.address), port: b.port, proto: b.proto }));
  }

  delete(id: number): boolean {
    return this.map.delete(u32(id));
  }

  entries(): Array<{ id: number; backend: Backend }> {
    return this.map.entries().map(([k, v]) => {
      const b = LB_BACKEND.decode(v);
      const a = fromAddr16(b.addr);
      return { id: U32_KEY.decode(k).key, backend: { family: a.family, address: a.value, port: b.port, proto: b.proto } };
    });
  }
}
