import { createRtNetlink, FlagsNew, RtNetlinkSocket } from 'netlink';
import { Family } from '../net/address';

/**
 * The rtnetlink calls the datapath needs, on one socket, with no process
 * spawned per operation. The `netlink` package encodes the fixed headers; the
 * nested IFLA_LINKINFO that describes a veth pair is encoded here.
 */

const AF = { 4: 2, 6: 10 } as const;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFINFOMSG_LEN = 16;
const NLA_F_NESTED = 1 << 15;
const CREATE = FlagsNew.CREATE | FlagsNew.EXCL;
const TIMEOUT_MS = 5000;

export class NetlinkError extends Error {
  constructor(
    readonly op: string,
    readonly code: string,
  ) {
    super(`${op}: ${code}`);
  }
}

let socket: RtNetlinkSocket | undefined;
let dumpSocket: RtNetlinkSocket | undefined;
let dumps: Promise<unknown> = Promise.resolve();

/** Runs one request, turning "Request rejected: EEXIST" into a NetlinkError with its errno name. */
async function call<T>(op: string, fn: (s: RtNetlinkSocket) => Promise<T>): Promise<T> {
  socket ??= createRtNetlink();
  return request(op, socket, fn);
}

/**
 * Dumps (multipart answers) on a socket of their own, one at a time: the
 * netlink package cannot tell a dump's parts from answers to requests sent
 * meanwhile on the same socket ("Multipart message not terminated properly").
 */
function dump<T>(op: string, fn: (s: RtNetlinkSocket) => Promise<T>): Promise<T> {
  dumpSocket ??= createRtNetlink();
  const s = dumpSocket;
  const run = dumps.then(() => request(op, s, fn));
  dumps = run.catch(() => undefined);
  return run;
}

async function request<T>(op: string, s: RtNetlinkSocket, fn: (s: RtNetlinkSocket) => Promise<T>): Promise<T> {
  try {
    return await fn(s);
  } catch (err) {
    const m = /Request rejected: (\w+)/.exec((err as Error).message);
    throw new NetlinkError(op, m?.[1] ?? (err as Error).message);
  }
}

function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

const cstring = (s: string) => Buffer.from(`${s}\0`);

export function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

export function addressBytes(family: Family, value: bigint): Buffer {
  const n = family === 4 ? 4 : 16;
  const b = Buffer.alloc(n);
  for (let i = n - 1, v = value; i >= 0; i--, v >>= 8n) b[i] = Number(v & 0xffn);
  return b;
}

export interface VethSpec {
  name: string;
  mac: string;
  peerName: string;
  peerMac: string;
}

/** Creates a veth pair in the current namespace; fails with EEXIST if the name is taken. */
export async function createVeth(spec: VethSpec): Promise<void> {
  const peerInfo = Buffer.concat([Buffer.alloc(IFINFOMSG_LEN), attr(IFLA_IFNAME, cstring(spec.peerName)), attr(IFLA_ADDRESS, macBytes(spec.peerMac))]);
  const linkinfo = Buffer.concat([attr(IFLA_INFO_KIND, cstring('veth')), attr(IFLA_INFO_DATA | NLA_F_NESTED, attr(VETH_INFO_PEER | NLA_F_NESTED, peerInfo))]);
  await call(`create veth ${spec.name}`, (s) =>
    s.newLink({}, { ifname: spec.name, address: macBytes(spec.mac), linkinfo }, { flags: CREATE, timeout: TIMEOUT_MS }),
  );
}

/** @returns the interface index, or undefined when no such link exists. */
export async function linkIndex(name: string): Promise<number | undefined> {
  try {
    const [link] = await call(`get link ${name}`, (s) => s.getLink({}, { ifname: name }, { timeout: TIMEOUT_MS }));
    return link?.data.index;
  } catch (err) {
    if (err instanceof NetlinkError && err.code === 'ENODEV') return undefined;
    throw err;
  }
}

export interface HostLink {
  name: string;
  index: number;
  /** IFLA_IFALIAS: what marks a veth as one agent's */
  alias: string;
}

export async function listLinks(): Promise<HostLink[]> {
  const links = await dump('list links', (s) => s.getLinks(undefined, undefined, { timeout: TIMEOUT_MS }));
  return links.map((l) => ({ name: l.attrs.ifname ?? '', index: l.data.index ?? 0, alias: l.attrs.ifalias ?? '' }));
}

/** Brings a link up; an alias given here tags it (the kernel ignores IFLA_IFALIAS on creation). */
export async function setUp(index: number, alias?: string): Promise<void> {
  await call(`set link ${index} up`, (s) =>
    s.setLink({ index, flags: { up: true }, change: { up: true } }, alias ? { ifalias: alias } : {}, { timeout: TIMEOUT_MS }),
  );
}

/** Deletes a link by name; a link that is already gone is not an error (idempotent teardown). */
export async function deleteLink(name: string): Promise<boolean> {
  const index = await linkIndex(name);
  if (index === undefined) return false;
  try {
    await call(`delete link ${name}`, (s) => s.delLink({ index }, {}, { timeout: TIMEOUT_MS }));
  } catch (err) {
    if (err instanceof NetlinkError && err.code === 'ENODEV') return false;
    throw err;
  }
  return true;
}

/** Adds an address; one that is already there is fine (the host router is set up at every start). */
export async function addAddress(index: number, family: Family, value: bigint, prefixlen: number): Promise<void> {
  const addr = addressBytes(family, value);
  try {
    await call(`add address to link ${index}`, (s) =>
      s.newAddress(
        { family: AF[family], prefixlen, index, flags: family === 6 ? { nodad: true } : {} },
        { local: addr, address: addr },
        { flags: CREATE, timeout: TIMEOUT_MS },
      ),
    );
  } catch (err) {
    if (!(err instanceof NetlinkError && err.code === 'EEXIST')) throw err;
  }
}

/** A directly connected route (scope link) to dst/bits out of oif, replacing any stale one. */
export async function replaceRoute(family: Family, dst: bigint, bits: number, oif: number): Promise<void> {
  await call(`route to ${dst} via ${oif}`, (s) =>
    s.newRoute(
      { family: AF[family], dstLen: bits, table: 254, protocol: 'STATIC', scope: 'LINK', type: 'UNICAST' },
      { dst: addressBytes(family, dst), oif },
      { flags: FlagsNew.CREATE | FlagsNew.REPLACE, timeout: TIMEOUT_MS },
    ),
  );
}

/** A route to dst/bits through a gateway on a directly connected network (another host's range over the underlay). */
export async function replaceGatewayRoute(family: Family, dst: bigint, bits: number, gateway: bigint): Promise<void> {
  await call(`route to ${dst}/${bits} via ${gateway}`, (s) =>
    s.newRoute(
      { family: AF[family], dstLen: bits, table: 254, protocol: 'STATIC', scope: 'UNIVERSE', type: 'UNICAST' },
      { dst: addressBytes(family, dst), gateway: addressBytes(family, gateway) },
      { flags: FlagsNew.CREATE | FlagsNew.REPLACE, timeout: TIMEOUT_MS },
    ),
  );
}

/** Removes the route to dst/bits; one already gone is fine. */
export async function deleteRoute(family: Family, dst: bigint, bits: number): Promise<void> {
  try {
    await call(`delete route to ${dst}/${bits}`, (s) =>
      s.delRoute({ family: AF[family], dstLen: bits, table: 254 }, { dst: addressBytes(family, dst) }, { timeout: TIMEOUT_MS }),
    );
  } catch (err) {
    if (!(err instanceof NetlinkError && err.code === 'ESRCH')) throw err;
  }
}

export interface RouteEntry {
  family: Family;
  dst: Buffer;
  bits: number;
  oif: number;
  /** Who installed it: the kernel for address prefixes, static for ours. */
  protocol: string;
}

export async function listRoutes(family: Family): Promise<RouteEntry[]> {
  const routes = await dump('list routes', (s) => s.getRoutes({ family: AF[family] }, undefined, { timeout: TIMEOUT_MS }));
  return routes
    .filter((r) => r.data.table === 254 && r.attrs.dst !== undefined)
    .map((r) => ({ family, dst: r.attrs.dst!, bits: r.data.dstLen ?? 0, oif: r.attrs.oif ?? 0, protocol: String(r.data.protocol) }));
}

/** Removes an address; one that is already gone is fine. */
export async function deleteAddress(index: number, family: Family, value: bigint, prefixlen: number): Promise<void> {
  const addr = addressBytes(family, value);
  try {
    await call(`delete address from link ${index}`, (s) =>
      s.delAddress({ family: AF[family], prefixlen, index }, { local: addr, address: addr }, { timeout: TIMEOUT_MS }),
    );
  } catch (err) {
    if (!(err instanceof NetlinkError && err.code === 'EADDRNOTAVAIL')) throw err;
  }
}

export interface AddressEntry {
  index: number;
  family: Family;
  value: bigint;
  prefixlen: number;
}

/** Every address of every link in this namespace, up or down (os.networkInterfaces() skips links without carrier). */
export async function listAddresses(): Promise<AddressEntry[]> {
  const msgs = await dump('list addresses', (s) => s.getAddresses(undefined, undefined, { timeout: TIMEOUT_MS }));
  const out: AddressEntry[] = [];
  for (const m of msgs) {
    const family = m.data.family === AF[4] ? 4 : m.data.family === AF[6] ? 6 : undefined;
    const raw = m.attrs.local ?? m.attrs.address;
    if (!family || !raw || m.data.index === undefined) continue;
    out.push({ index: m.data.index, family, value: BigInt(`0x${raw.toString('hex')}`), prefixlen: m.data.prefixlen ?? 0 });
  }
  return out;
}

/*
 * Policy routing for the L7 proxy (bpf/lib/proxy.h): a packet the endpoint
 * programs marked for the proxy is delivered locally, whatever its
 * destination, as Cilium does (fwmark 0x200/0xf00, table 2004, preference 9).
 */
const PROXY_MARK = 0x200;
const PROXY_MARK_MASK = 0xf00;
const PROXY_TABLE = 2004;
const PROXY_RULE_PRIORITY = 9;
const LOOPBACK_INDEX = 1;

/** Installs the rule and the table's local route for one family; what is there already stays. */
export async function addProxyRouting(family: Family): Promise<void> {
  const ignoreExisting = (err: unknown) => {
    if (!(err instanceof NetlinkError && err.code === 'EEXIST')) throw err;
  };
  await call(`proxy route (IPv${family})`, (s) =>
    s.newRoute(
      { family: AF[family], dstLen: 0, table: 252, protocol: 'STATIC', scope: 'HOST', type: 'LOCAL' },
      { table: PROXY_TABLE, oif: LOOPBACK_INDEX },
      { flags: CREATE, timeout: TIMEOUT_MS },
    ),
  ).catch(ignoreExisting);
  if ((await proxyRules(family)) > 0) return;
  await call(`proxy rule (IPv${family})`, (s) =>
    s.newRule(
      { family: AF[family], action: 'toTbl', table: 252 },
      { fwmark: PROXY_MARK, fwmask: PROXY_MARK_MASK, table: PROXY_TABLE, priority: PROXY_RULE_PRIORITY },
      { flags: CREATE, timeout: TIMEOUT_MS },
    ),
  );
}

/** Removes them again (the agent stopping); what is gone already is fine. */
export async function removeProxyRouting(family: Family): Promise<void> {
  for (let n = await proxyRules(family); n > 0; n--)
    await call(`remove proxy rule (IPv${family})`, (s) =>
      s.delRule(
        { family: AF[family], action: 'toTbl', table: 252 },
        { fwmark: PROXY_MARK, fwmask: PROXY_MARK_MASK, table: PROXY_TABLE, priority: PROXY_RULE_PRIORITY },
        { timeout: TIMEOUT_MS },
      ),
    );
  // IPv4 matches the route's scope as added; IPv6 keeps none to match
  const route = {
    family: AF[family],
    dstLen: 0,
    table: 252,
    type: 'LOCAL' as const,
    ...(family === 4 ? { scope: 'HOST' as const, protocol: 'STATIC' as const } : {}),
  };
  await call(`remove proxy route (IPv${family})`, (s) => s.delRoute(route, { table: PROXY_TABLE, oif: LOOPBACK_INDEX }, { timeout: TIMEOUT_MS })).catch(
    (err: unknown) => {
      if (!(err instanceof NetlinkError && (err.code === 'ESRCH' || err.code === 'ENOENT'))) throw err;
    },
  );
}

async function proxyRules(family: Family): Promise<number> {
  const rules = await dump('list rules', (s) => s.getRules({ family: AF[family] }, undefined, { timeout: TIMEOUT_MS }));
  return rules.filter((r) => r.attrs.table === PROXY_TABLE && r.attrs.fwmark === PROXY_MARK && r.attrs.fwmask === PROXY_MARK_MASK).length;
}
