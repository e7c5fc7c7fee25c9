import type { Allow } from '../policy/resolve';

/**
 * What the agent tells the proxy (proxy/main.ts) whenever policy or
 * endpoints change: the ready endpoints with the entries of their policy
 * (those with HTTP rules are the proxied ones), who each local address is,
 * and the prefixes of CIDR identities (the ipcache's other entries; the
 * host's own addresses the proxy knows itself). The proxy decides from this alone.
 */
export interface ProxySnapshot {
  endpoints: ProxyEndpoint[];
  cidrs: Array<{ cidr: string; identity: number }>;
}

export interface ProxyEndpoint {
  id: number;
  identity: number;
  /** Canonical text addresses (IPv4 dotted, IPv6 compressed). */
  addresses: string[];
  ingressEnforced: boolean;
  egressEnforced: boolean;
  /** The endpoint's allow entries, both directions, in the resolver's form. */
  allows: Allow[];
}

/**
 * Messages from the proxy to the agent, on its control socket (proxy/control.ts):
 * a hello to each agent that connects (the proxy listens for them only once
 * its own listeners are up), then access records.
 */
export type ProxyMessage = { type: 'hello'; pid: number; port: number; build: string } | { type: 'access'; records: AccessTuple[] };

/** Messages from the agent to the proxy. */
export type AgentMessage = { type: 'policy'; snapshot: ProxySnapshot };

/** One judged request, for the monitor and metrics. */
export interface AccessRecord {
  /** Whose L7 rules redirected the connection: the destination's ingress, or else the source's egress. */
  direction: 'ingress' | 'egress';
  verdict: 'forwarded' | 'denied' | 'error';
  /** Status sent to the client. */
  status: number;
  /** As Hubble names it: HTTP/1.0, HTTP/1.1 or HTTP/2. */
  protocol: string;
  method: string;
  url: string;
  host: string;
  src: string;
  srcPort: number;
  srcIdentity: number;
  dst: string;
  dstPort: number;
  dstIdentity: number;
  /** The endpoint of that direction's policy. */
  endpoint: number;
  /** Time the proxy took before the request went upstream (or was answered), in seconds. */
  proxySeconds: number;
}

/** The record's fields in the order an access message carries them: arrays parse in a third of an object's time. */
const FIELDS = [
  'direction',
  'verdict',
  'status',
  'protocol',
  'method',
  'url',
  'host',
  'src',
  'srcPort',
  'srcIdentity',
  'dst',
  'dstPort',
  'dstIdentity',
  'endpoint',
  'proxySeconds',
] as const satisfies ReadonlyArray<keyof AccessRecord>;

export type AccessTuple = Array<AccessRecord[keyof AccessRecord]>;

export function toTuple(r: AccessRecord): AccessTuple {
  return FIELDS.map((k) => r[k]);
}

export function fromTuple(t: AccessTuple): AccessRecord {
  const r: Record<string, unknown> = {};
  FIELDS.forEach((k, i) => (r[k] = t[i]));
  return r as unknown as AccessRecord;
}
