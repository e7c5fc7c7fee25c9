import { Cidr, contains, formatCidr, lastAddress, parseCidr } from '../net/address';
import type { KnownIdentity } from '../identity/cidr';
import { RESERVED } from '../identity/reserved';
import { EgressRule, Entity, HttpRule, IngressRule, PortRule, Rule, Selector, ServiceRef, ruleLabels } from './rule';
import { isEmpty, matches } from './selector';
import { HttpRequestView, compileHttpRule, httpRuleMatches } from './http-match';
import { protocolNumber } from '../net/protocol';

export type EnforcementMode = 'default' | 'always' | 'never';
export type Dir = 'ingress' | 'egress';

export interface Allow {
  identity: number; // 0: any identity
  port: number; // 0: any port
  proto: number; // 0: any protocol
  dir: Dir;
  /** The requests allowed, judged by the proxy; none: every byte allowed at L4. */
  http?: HttpRule[];
}

export interface EndpointPolicy {
  ingressEnforced: boolean;
  egressEnforced: boolean;
  allows: Allow[];
}

const isWorld = (i: KnownIdentity) => i.labels.includes('reserved:world');

/**
 * A named service as toServices sees it: its selector (its backends are the
 * endpoints it selects), or the identities of the endpoints holding its
 * given backends' addresses.
 */
export interface ServicePeers {
  name: string;
  selector?: Record<string, string>;
  identities: number[];
}

/**
 * Turns rules into per-endpoint allow entries over the identities known now.
 * Selector results are memoised for the life of one resolver, which is built
 * afresh whenever rules or identities change.
 */
export class PolicyResolver {
  private readonly selected = new Map<string, number[]>();
  /** CIDR identities by family, sorted by base address: a prefix's contents are a contiguous run. */
  private readonly byBase: Record<4 | 6, KnownIdentity[]>;

  constructor(
    private readonly rules: Rule[],
    private readonly identities: KnownIdentity[],
    private readonly mode: EnforcementMode,
    private readonly services: ServicePeers[] = [],
  ) {
    const cidrs = identities.filter((i) => i.cidr).sort((a, b) => (a.cidr!.base < b.cidr!.base ? -1 : a.cidr!.base > b.cidr!.base ? 1 : 0));
    this.byBase = { 4: cidrs.filter((i) => i.cidr!.family === 4), 6: cidrs.filter((i) => i.cidr!.family === 6) };
  }

  forEndpoint(labels: string[]): EndpointPolicy {
    const rules = this.rules.filter((r) => matches(r.endpointSelector, labels));
    const ingressEnforced = this.mode === 'always' || (this.mode === 'default' && rules.some((r) => r.ingress !== undefined));
    const egressEnforced = this.mode === 'always' || (this.mode === 'default' && rules.some((r) => r.egress !== undefined));
    const allows = new Map<string, Allow>();
    // Rules add up: HTTP patterns of one entry join; an entry any rule allows at L4 alone needs no proxy.
    const add = (a: Allow) => {
      const key = `${a.identity}/${a.port}/${a.proto}/${a.dir}`;
      const have = allows.get(key);
      if (!have) allows.set(key, a);
      else if (have.http && a.http) allows.set(key, { ...have, http: [...have.http, ...a.http] });
      else if (have.http) allows.set(key, a);
    };
    const ingressRequires = rules.flatMap((r) => (r.ingress ?? []).flatMap((i) => i.fromRequires ?? []));
    const egressRequires = rules.flatMap((r) => (r.egress ?? []).flatMap((e) => e.toRequires ?? []));
    for (const r of rules) {
      if (ingressEnforced) for (const i of r.ingress ?? []) this.expand(ingressPeers(i), i.toPorts, ingressRequires, 'ingress', add);
      if (egressEnforced) for (const e of r.egress ?? []) this.expand(egressPeers(e), e.toPorts, egressRequires, 'egress', add);
    }
    return { ingressEnforced, egressEnforced, allows: [...allows.values()] };
  }

  /**
   * Would traffic from src labels reach dst labels on this port (and, given
   * a request, would the L7 proxy pass it)? Each step says why.
   */
  trace(
    src: string[],
    dst: string[],
    srcIdentity: number,
    dstIdentity: number,
    port: number,
    proto: number,
    request?: HttpRequestView,
  ): { allowed: boolean; steps: string[] } {
    const steps: string[] = [];
    const check = (labels: string[], peer: number, dir: Dir): boolean => {
      const rules = this.rules.filter((r) => matches(r.endpointSelector, labels));
      const who = labels.join(' ') || '(no labels)';
      steps.push(
        `${dir === 'egress' ? 'Egress from' : 'Ingress to'} ${who}: ${rules.length} rule(s) select it${rules.length ? ': ' + rules.map(describe).join('; ') : ''}`,
      );
      const pol = this.forEndpoint(labels);
      const enforced = dir === 'ingress' ? pol.ingressEnforced : pol.egressEnforced;
      if (!enforced) {
        steps.push(`  ${dir} is not enforced (${this.mode === 'never' ? 'enforcement mode never' : 'no selecting rule has an ' + dir + ' section'}): ALLOWED`);
        return true;
      }
      const hit = lookup(pol.allows, peer, port, proto, dir);
      steps.push(
        hit
          ? `  allowed by entry identity=${hit.identity || 'any'} port=${hit.port || 'any'} proto=${protoName(hit.proto)}: ALLOWED${
              hit.http ? `, each request only if it matches one of: ${hit.http.map(describeHttp).join('; ')} (the L7 proxy answers others 403)` : ''
            }`
          : `  no entry allows identity ${peer} to port ${port || 'any'}/${protoName(proto)}: DENIED`,
      );
      if (!hit?.http || !request) return hit !== undefined;
      const i = hit.http.findIndex((h) => httpRuleMatches(compileHttpRule(h), request));
      steps.push(
        i >= 0
          ? `  ${request.method} ${request.url} matches ${describeHttp(hit.http[i]!)}: ALLOWED`
          : `  ${request.method} ${request.url} matches none of them: DENIED (403 Access denied)`,
      );
      return i >= 0;
    };
    const allowed = check(src, dstIdentity, 'egress') && check(dst, srcIdentity, 'ingress');
    return { allowed, steps };
  }

  private expand(peers: Peers, toPorts: PortRule[] | undefined, requires: Selector[], dir: Dir, add: (a: Allow) => void): void {
    let ids = this.peerIdentities(peers);
    if (ids.length === 0 && !peers.any) return;
    if (peers.any) ids = [0];
    if (requires.length > 0) {
      const universe = ids.includes(0) ? this.identities.map((i) => i.id) : ids;
      ids = universe.filter((id) => {
        const ident = this.identities.find((i) => i.id === id);
        return ident !== undefined && requires.every((s) => matches(s, ident.labels));
      });
    }
    for (const identity of ids) for (const p of portsOf(toPorts)) add({ identity, ...p, dir });
  }

  private peerIdentities(p: Peers): number[] {
    const out = new Set<number>();
    for (const s of p.endpoints) for (const id of this.select(s)) out.add(id);
    for (const e of p.entities) for (const id of this.entity(e)) out.add(id);
    for (const c of p.cidrs) for (const id of this.cidrIdentities(c.cidr, c.except)) out.add(id);
    for (const name of p.services) for (const id of this.service(name)) out.add(id);
    return [...out];
  }

  /** A service's backends, as Cilium turns toServices into toEndpoints; no such service: nobody (fail closed). */
  private service(name: string): number[] {
    const s = this.services.find((x) => x.name === name);
    if (!s) return [];
    return s.selector ? this.select({ matchLabels: s.selector }) : s.identities;
  }

  private select(s: Selector): number[] {
    const key = JSON.stringify(s);
    let ids = this.selected.get(key);
    if (!ids) {
      // Endpoint selectors never pick the world or CIDR prefixes; an empty one picks every endpoint identity.
      ids = this.identities.filter((i) => !isWorld(i) && (isEmpty(s) || matches(s, i.labels))).map((i) => i.id);
      this.selected.set(key, ids);
    }
    return ids;
  }

  private entity(e: Entity): number[] {
    switch (e) {
      case 'all':
        return [0];
      case 'world':
        return this.identities.filter(isWorld).map((i) => i.id);
      case 'cluster':
        return this.identities.filter((i) => !isWorld(i)).map((i) => i.id);
      default:
        return [RESERVED[e]];
    }
  }

  /** The prefix's identity and every more specific one inside it, except those inside an except prefix. */
  private cidrIdentities(cidr: string, except: string[]): number[] {
    const outer = parseCidr(cidr);
    const holes = except.map(parseCidr);
    const within = (inner: Cidr, c: Cidr) => inner.bits >= c.bits && contains(c, inner.family, inner.base);
    const sorted = this.byBase[outer.family];
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]!.cidr!.base < outer.base) lo = mid + 1;
      else hi = mid;
    }
    const out: number[] = [];
    for (let i = lo; i < sorted.length && sorted[i]!.cidr!.base <= lastAddress(outer); i++) {
      const c = sorted[i]!.cidr!;
      if (within(c, outer) && !holes.some((h) => within(c, h))) out.push(sorted[i]!.id);
    }
    return out;
  }
}

/** A rule's L4 entries: its ports (any port without), HTTP ones over TCP alone, with their patterns. */
function portsOf(toPorts: PortRule[] | undefined): Array<{ port: number; proto: number; http?: HttpRule[] }> {
  const out = (toPorts ?? []).flatMap((pr) =>
    (pr.ports ?? []).map((p) => {
      const http = pr.rules?.http?.length ? pr.rules.http : undefined;
      const proto = protocolNumber(p.protocol || 'ANY')!;
      return { port: Number(p.port), proto: http && proto === 0 ? IPPROTO_TCP : proto, ...(http ? { http } : {}) };
    }),
  );
  return out.length ? out : [{ port: 0, proto: 0 }];
}

const IPPROTO_TCP = 6;

interface Peers {
  endpoints: Selector[];
  entities: Entity[];
  cidrs: Array<{ cidr: string; except: string[] }>;
  /** toServices: names of services whose backends are the peers. */
  services: string[];
  /** No peer field at all: the rule is about ports, for any peer. */
  any: boolean;
}

function ingressPeers(i: IngressRule): Peers {
  return peers(i.fromEndpoints, i.fromEntities, i.fromCIDR, i.fromCIDRSet, undefined, i.toPorts !== undefined);
}

function egressPeers(e: EgressRule): Peers {
  return peers(e.toEndpoints, e.toEntities, e.toCIDR, e.toCIDRSet, e.toServices, e.toPorts !== undefined);
}

function peers(
  endpoints: Selector[] | undefined,
  entities: string[] | undefined,
  cidr: string[] | undefined,
  cidrSet: Array<{ cidr: string; except?: string[] }> | undefined,
  services: ServiceRef[] | undefined,
  hasPorts: boolean,
): Peers {
  const none = endpoints === undefined && entities === undefined && cidr === undefined && cidrSet === undefined && services === undefined;
  return {
    services: (services ?? []).map((s) => s.k8sService!.serviceName),
    endpoints: endpoints ?? [],
    entities: (entities ?? []) as Entity[],
    cidrs: [...(cidr ?? []).map((c) => ({ cidr: c, except: [] })), ...(cidrSet ?? []).map((c) => ({ cidr: c.cidr, except: c.except ?? [] }))],
    any: none && hasPorts,
  };
}

/** Every CIDR prefix the rules name (with except prefixes), canonical. */
export function rulePrefixes(rules: Rule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    for (const p of [...(r.ingress ?? []), ...(r.egress ?? [])] as Array<IngressRule & EgressRule>) {
      for (const c of [...(p.fromCIDR ?? []), ...(p.toCIDR ?? [])]) out.add(formatCidr(parseCidr(c)));
      for (const s of [...(p.fromCIDRSet ?? []), ...(p.toCIDRSet ?? [])]) {
        out.add(formatCidr(parseCidr(s.cidr)));
        for (const e of s.except ?? []) out.add(formatCidr(parseCidr(e)));
      }
    }
  }
  return [...out].sort();
}

/** The datapath's lookup order, so a trace answers exactly as the kernel would. */
export function lookup(allows: Allow[], identity: number, port: number, proto: number, dir: Dir): Allow | undefined {
  const icmp = proto === 1 || proto === 58;
  const p = icmp ? 0 : port;
  const order: Array<[number, number, number]> = [];
  if (p) order.push([identity, p, proto], [identity, p, 0]);
  order.push([identity, 0, 0]);
  if (p) order.push([0, p, proto], [0, p, 0]);
  order.push([0, 0, 0]);
  for (const [i, po, pr] of order) {
    const hit = allows.find((a) => a.dir === dir && a.identity === i && a.port === po && a.proto === pr);
    if (hit) return hit;
  }
  return undefined;
}

export function protoName(p: number): string {
  return p === 6 ? 'TCP' : p === 17 ? 'UDP' : p === 0 ? 'ANY' : String(p);
}

function describe(r: Rule): string {
  const l = ruleLabels(r);
  return l.length ? l.join(',') : JSON.stringify(r.endpointSelector);
}

export function describeHttp(h: HttpRule): string {
  const parts = [h.method && `method=${h.method}`, h.path && `path=${h.path}`, h.host && `host=${h.host}`, ...(h.headers ?? []).map((x) => `header "${x}"`)];
  return parts.filter(Boolean).join(' ') || 'any request';
}
