import { Socket, isIPv4 } from 'net';
import { CompiledHttpRule, HttpRequestView, compileHttpRule, httpRuleMatches } from '../policy/http-match';
import { lookup } from '../policy/resolve';
import { ProxyEndpoint, ProxySnapshot } from './snapshot';
import { upstreamSocket } from './transparent-socket';

const MARK_MAGIC_FROM_PROXY = 0x0a00;
const ID_WORLD = 2;
const IPPROTO_TCP = 6;

/** What a client connection is for: fixed when it is accepted, the same for every request on it. */
export interface Flow {
  src: string;
  srcPort: number;
  srcIdentity: number;
  dst: string;
  dstPort: number;
  endpoint: ProxyEndpoint;
}

const unmapped = (a: string) => (a.startsWith('::ffff:') && isIPv4(a.slice(7)) ? a.slice(7) : a);

/** The policy the proxy enforces, from the agent's latest snapshot, and the decisions it takes from it. */
export class Judge {
  private byAddress = new Map<string, ProxyEndpoint>();
  private readonly compiled = new WeakMap<object, CompiledHttpRule[]>();

  update(s: ProxySnapshot): void {
    const m = new Map<string, ProxyEndpoint>();
    for (const ep of s.endpoints) for (const a of ep.addresses) m.set(a, ep);
    this.byAddress = m;
  }

  /** A connection the datapath handed over; undefined if its original destination is no local endpoint. */
  flowOf(sock: Socket): Flow | undefined {
    const dst = unmapped(sock.localAddress ?? '');
    const src = unmapped(sock.remoteAddress ?? '');
    const endpoint = this.byAddress.get(dst);
    if (!endpoint || !sock.localPort) return undefined;
    return { src, srcPort: sock.remotePort ?? 0, srcIdentity: this.byAddress.get(src)?.identity ?? ID_WORLD, dst, dstPort: sock.localPort, endpoint };
  }

  /** Whether the destination's policy, as it is now, lets this client make this request. */
  allows(f: Flow, req: HttpRequestView): boolean {
    if (!f.endpoint.ingressEnforced) return true;
    const hit = lookup(f.endpoint.ingress, f.srcIdentity, f.dstPort, IPPROTO_TCP, 'ingress');
    if (!hit) return false;
    if (!hit.http) return true;
    let rules = this.compiled.get(hit.http);
    if (!rules) this.compiled.set(hit.http, (rules = hit.http.map(compileHttpRule)));
    return rules.some((r) => httpRuleMatches(r, req));
  }
}

/** A connection to the flow's destination from the client's own address, marked with its identity: the destination's program admits it as the client. */
export function connectUpstream(f: Flow): Socket {
  const s = new Socket({ fd: upstreamSocket(f.src, (f.srcIdentity << 16) | MARK_MAGIC_FROM_PROXY), readable: true, writable: true });
  return s.connect(f.dstPort, f.dst);
}
