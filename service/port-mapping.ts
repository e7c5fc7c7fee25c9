import { Family, formatAddress, parseAddress } from '../net/address';
import { IPPROTO } from '../net/protocol';

/** What libnetwork names types.PortBinding's and TransportPort's protocol: IANA numbers. */
const PROTOCOLS: Record<number, Proto> = { [IPPROTO.TCP]: 'tcp', [IPPROTO.UDP]: 'udp' };
export type Proto = 'tcp' | 'udp';
/** Its IP protocol number. */
export const protoNumber = (p: Proto): number => (p === 'tcp' ? IPPROTO.TCP : IPPROTO.UDP);

/**
 * One `-p` as the engine hands it to the driver (com.docker.network.portmap):
 * the host address ('' or unspecified: every host address), a host port or
 * range (0: any free one, as -P asks), the container's port.
 */
export interface PortMapping {
  proto: Proto;
  containerPort: number;
  /** undefined: every address of the host, in each family the container has. */
  hostIp?: string;
  hostPort: number;
  hostPortEnd: number;
}

/** One frontend of a publication: the host address (undefined: every host address of the family) and the port held for it. */
export interface PublishedPort {
  proto: Proto;
  family: Family;
  hostIp?: string;
  hostPort: number;
  containerPort: number;
}

function port(b: Record<string, unknown>, field: string, allowZero: boolean): number {
  const v = b[field] ?? 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < (allowZero ? 0 : 1) || v > 65535) {
    throw new Error(`port mapping: ${field} must be a port number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function isAddress(text: string): boolean {
  try {
    parseAddress(text);
    return true;
  } catch {
    return false;
  }
}

/** The engine's port map; a clear error for anything we cannot publish (SCTP, a malformed entry). */
export function parsePortMap(raw: unknown): PortMapping[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new Error('com.docker.network.portmap must be a list of port bindings');
  return raw.map((entry: unknown) => {
    if (typeof entry !== 'object' || entry === null) throw new Error('port mapping: each binding must be an object');
    const b = entry as Record<string, unknown>;
    const proto = PROTOCOLS[b.Proto as number];
    if (!proto) throw new Error(`port mapping: protocol ${String(b.Proto)} cannot be published by the cilium driver (tcp and udp can)`);
    const containerPort = port(b, 'Port', false);
    const hostPort = port(b, 'HostPort', true);
    const end = port(b, 'HostPortEnd', true);
    if (end !== 0 && hostPort !== 0 && end < hostPort) throw new Error(`port mapping: host port range ${hostPort}-${end} is reversed`);
    const hostIp = typeof b.HostIP === 'string' && b.HostIP !== '' ? b.HostIP : undefined;
    if (hostIp !== undefined && !isAddress(hostIp)) throw new Error(`port mapping: HostIP "${hostIp}" is not an IPv4 or IPv6 address`);
    return { proto, containerPort, ...(hostIp ? { hostIp } : {}), hostPort, hostPortEnd: end === 0 ? hostPort : end };
  });
}

/**
 * The frontends a mapping makes for a container with these families: an
 * unspecified host address (none, 0.0.0.0 or ::) is every host address of
 * each family the container has, as the bridge driver binds both.
 */
export function frontendsOf(m: PortMapping, families: Family[]): Array<{ family: Family; hostIp?: string }> {
  if (m.hostIp === undefined) return families.map((family) => ({ family }));
  const a = parseAddress(m.hostIp);
  if (!families.includes(a.family)) throw new Error(`cannot publish on ${m.hostIp}: the container has no IPv${a.family} address`);
  return [a.value === 0n ? { family: a.family } : { family: a.family, hostIp: formatAddress(a.family, a.value) }];
}

/** Docker's way of writing a published port: 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp. */
export function formatPublishedPort(p: PublishedPort): string {
  const ip = p.hostIp ?? (p.family === 4 ? '0.0.0.0' : '::');
  return `${p.family === 6 ? `[${ip}]` : ip}:${p.hostPort}->${p.containerPort}/${p.proto}`;
}
