import { Socket, isIPv4 } from 'net';
import { networkInterfaces } from 'os';
import { Cidr, contains, parseAddress, parseCidr } from '../net/address';
import { CompiledHttpRule, HttpRequestView, compileHttpRule, httpRuleMatches } from '../policy/http-match';
import { Allow, Dir, lookup } from '../policy/resolve';
import { RESERVED } from '../identity/reserved';
import { ProxyEndpoint, ProxySnapshot } from './snapshot';
import { upstreamSocket } from './transparent-socket';

const MARK_MAGIC_FROM_PROXY = 0x0a00;
const IPPROTO_TCP = 6;
/** The mark has 16 bits for the identity; a larger one (a CIDR identity) travels as 0 and the datapath takes it from the ipcache. */
const MARK_IDENTITY_MAX = 0xffff;

/** What a client connection is for: fixed when it is accepted, the same for every request on it. */
export interface Flow {
  src: string;
  srcPort: number;
  srcIdentity: number;
  dst: string;
  dstPort: number;
  dstIdentity: number;
  /** The local endpoints at either end, if they are. */
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  /** For the record: whose L7 rules redirected it (the destination's ingress if it has some for it, else the source's egress). */
  direction: Dir;
  endpoint: number;
}

const unmapped = (a: string) => (a.startsWith('::ffff:') && isIPv4(a.slice(7)) ? a.slice(7) : a);

/** The policy the proxy enforces, from the agent's latest snapshot, and the decisions it takes from it. */
export class Judge {
  private byAddress = new Map<string, ProxyEndpoint>();
  /** Longest prefix first, so the first containing one is the ipcache's answer. */
  private cidrs: Array<{ cidr: Cidr; identity: number }> = [];
  private readonly compiled = new WeakMap<object, CompiledHttpRule[]>();

  update(s: ProxySnapshot): void {
    const m = new Map<string, ProxyEndpoint>();
    for (const ep of s.endpoints) for (const a of ep.addresses) m.set(a, ep);
    this.byAddress = m;
    this.cidrs = s.cidrs.map((c) => ({ cidr: parseCidr(c.cidr), identity: c.identity })).sort((a, b) => b.cidr.bits - a.cidr.bits);
  }

  /** A connection the datapath handed over; undefined if neither end is a local endpoint (nothing redirects those). */
  flowOf(sock: Socket): Flow | undefined {
    const dst = unmapped(sock.localAddress ?? '');
    const src = unmapped(sock.remoteAddress ?? '');
    const destination = this.byAddress.get(dst);
    const source = this.byAddress.get(src);
    if ((!destination && !source) || !sock.localPort) return undefined;
    const srcIdentity = this.identityOf(src);
    const dstPort = sock.localPort;
    const ingress = destination !== undefined && (!source || this.entry(destination, 'ingress', srcIdentity, dstPort)?.http !== undefined);
    return {
      src,
      srcPort: sock.remotePort ?? 0,
      srcIdentity,
      dst,
      dstPort,
      dstIdentity: this.identityOf(dst),
      ...(source ? { source } : {}),
      ...(destination ? { destination } : {}),
      direction: ingress ? 'ingress' : 'egress',
      endpoint: ingress ? destination.id : source!.id,
    };
  }

  /**
   * Whether the policy, as it is now, lets this client make this request: the
   * source's egress rules and the destination's ingress rules must both pass it
   * (the datapath redirects once, at the first side with L7 rules, and admits
   * the proxy's upstream connection at L4 only).
   */
  allows(f: Flow, req: HttpRequestView): boolean {
    return this.sideAllows(f.source, 'egress', f.dstIdentity, f.dstPort, req) && this.sideAllows(f.destination, 'ingress', f.srcIdentity, f.dstPort, req);
  }

  private sideAllows(ep: ProxyEndpoint | undefined, dir: Dir, peer: number, port: number, req: HttpRequestView): boolean {
    if (!ep || !(dir === 'ingress' ? ep.ingressEnforced : ep.egressEnforced)) return true;
    const hit = this.entry(ep, dir, peer, port);
    if (!hit) return false;
    if (!hit.http) return true;
    let rules = this.compiled.get(hit.http);
    if (!rules) this.compiled.set(hit.http, (rules = hit.http.map(compileHttpRule)));
    return rules.some((r) => httpRuleMatches(r, req));
  }

  private entry(ep: ProxyEndpoint, dir: Dir, peer: number, port: number): Allow | undefined {
    return lookup(ep.allows, peer, port, IPPROTO_TCP, dir);
  }

  /** The identity the datapath's ipcache gives an address: an endpoint's, the host's, a CIDR identity's, else world. */
  private identityOf(a: string): number {
    const ep = this.byAddress.get(a);
    if (ep) return ep.identity;
    if (hostAddresses().has(a)) return RESERVED.host;
    const { family, value } = parseAddress(a);
    return this.cidrs.find((c) => contains(c.cidr, family, value))?.identity ?? RESERVED.world;
  }
}

/** The host's own addresses now (they come and go with its devices). */
function hostAddresses(): Set<string> {
  return new Set(
    Object.values(networkInterfaces())
      .flat()
      .flatMap((i) => (i ? [i.address.replace(/%.*$/, '')] : [])),
  );
}

/**
 * The upstream connection. To a local endpoint: from the client's own
 * address, marked with its identity, so the destination's program admits it
 * as the client and the server sees who called. Anywhere else (the host, the
 * world): from the host, as masquerading would have shown the client's own
 * connection, and so that the answers come back to the host at all.
 */
export function connectUpstream(f: Flow): Socket {
  if (!f.destination) return new Socket().connect(f.dstPort, f.dst);
  const mark = ((f.srcIdentity <= MARK_IDENTITY_MAX ? f.srcIdentity : 0) << 16) | MARK_MAGIC_FROM_PROXY;
  const s = new Socket({ fd: upstreamSocket(f.src, mark), readable: true, writable: true });
  return s.connect(f.dstPort, f.dst);
}
