import { contains, parseCidr } from '../net/address';
import { ENTITIES, Rule } from './rule';

type Json = unknown;

class Invalid extends Error {}

/**
 * Checks a list of rules strictly: an unknown field is an error (a typo must
 * not silently widen or narrow a policy). The message names the rule and the
 * field at fault; nothing is imported unless every rule is valid.
 */
export function validateRules(input: Json): Rule[] {
  const rules = Array.isArray(input) ? input : [input];
  if (rules.length === 0) throw new Error('the policy holds no rules');
  rules.forEach((r, i) => {
    try {
      rule(r);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      throw new Error(`rule ${i}${ruleName(r)}: ${err.message}`);
    }
  });
  return rules as Rule[];
}

function ruleName(r: Json): string {
  const labels = typeof r === 'object' && r !== null ? (r as { labels?: unknown }).labels : undefined;
  if (!Array.isArray(labels) || labels.length === 0) return '';
  const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
  return ` (${labels
    .map((l: unknown) => {
      const { key, value } = (typeof l === 'object' && l !== null ? l : {}) as { key?: unknown; value?: unknown };
      return `${text(key)}${value ? `=${text(value)}` : ''}`;
    })
    .join(',')})`;
}

function fail(path: string, msg: string): never {
  throw new Invalid(`${path}: ${msg}`);
}

function object(v: Json, path: string, allowed: string[]): Record<string, Json> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(path, `must be an object, got ${JSON.stringify(v)}`);
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) fail(`${path}.${k}`, `unknown field (expected one of ${allowed.join(', ')})`);
  }
  return v as Record<string, Json>;
}

function list(v: Json, path: string, each: (x: Json, p: string) => void): void {
  if (v === undefined) return;
  if (!Array.isArray(v)) fail(path, `must be a list, got ${JSON.stringify(v)}`);
  v.forEach((x, i) => {
    each(x, `${path}[${i}]`);
  });
}

function str(v: Json, path: string): string {
  if (typeof v !== 'string') fail(path, `must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function rule(v: Json): void {
  const r = object(v, 'rule', ['endpointSelector', 'ingress', 'egress', 'labels', 'description']);
  if (r.endpointSelector === undefined) fail('endpointSelector', 'is required (use {} to select every endpoint)');
  selector(r.endpointSelector, 'endpointSelector');
  list(r.ingress, 'ingress', (x, p) => {
    peerRule(x, p, 'from');
  });
  list(r.egress, 'egress', (x, p) => {
    peerRule(x, p, 'to');
  });
  list(r.labels, 'labels', (x, p) => {
    const l = object(x, p, ['key', 'value', 'source']);
    str(l.key, `${p}.key`);
    if (l.value !== undefined) str(l.value, `${p}.value`);
    if (l.source !== undefined) str(l.source, `${p}.source`);
  });
  if (r.description !== undefined) str(r.description, 'description');
}

function peerRule(v: Json, path: string, dir: 'from' | 'to'): void {
  const fields = [`${dir}Endpoints`, `${dir}Requires`, `${dir}CIDR`, `${dir}CIDRSet`, `${dir}Entities`, ...(dir === 'to' ? ['toServices'] : []), 'toPorts'];
  const r = object(v, path, fields);
  list(r.toServices, `${path}.toServices`, (x, p) => {
    const ref = object(x, p, ['k8sService', 'k8sServiceSelector']);
    if (ref.k8sServiceSelector !== undefined)
      fail(`${p}.k8sServiceSelector`, 'services here carry no labels to select: name the service (k8sService.serviceName, cilium service update --name)');
    if (ref.k8sService === undefined) fail(p, 'needs k8sService: {"serviceName": NAME}');
    const svc = object(ref.k8sService, `${p}.k8sService`, ['serviceName', 'namespace']);
    str(svc.serviceName, `${p}.k8sService.serviceName`);
    if (svc.namespace !== undefined && str(svc.namespace, `${p}.k8sService.namespace`) !== 'default')
      fail(`${p}.k8sService.namespace`, `Docker services live in no namespace: leave it out or use "default", got ${JSON.stringify(svc.namespace)}`);
  });
  list(r[`${dir}Endpoints`], `${path}.${dir}Endpoints`, selector);
  list(r[`${dir}Requires`], `${path}.${dir}Requires`, selector);
  list(r[`${dir}CIDR`], `${path}.${dir}CIDR`, (x, p) => cidr(x, p));
  list(r[`${dir}CIDRSet`], `${path}.${dir}CIDRSet`, (x, p) => {
    const s = object(x, p, ['cidr', 'except']);
    const outer = cidr(s.cidr, `${p}.cidr`);
    list(s.except, `${p}.except`, (e, q) => {
      const inner = cidr(e, q);
      if (inner.family !== outer.family || inner.bits < outer.bits || !contains(outer, inner.family, inner.base))
        fail(q, `${str(e, q)} is not inside ${str(s.cidr, `${p}.cidr`)}`);
    });
  });
  list(r[`${dir}Entities`], `${path}.${dir}Entities`, (x, p) => {
    if (!(ENTITIES as readonly string[]).includes(str(x, p))) fail(p, `unknown entity "${String(x)}" (expected one of ${ENTITIES.join(', ')})`);
  });
  list(r.toPorts, `${path}.toPorts`, (x, p) => {
    const pr = object(x, p, ['ports', 'rules']);
    list(pr.ports, `${p}.ports`, (y, q) => {
      const pp = object(y, q, ['port', 'protocol']);
      const port = str(pp.port, `${q}.port`);
      if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) fail(`${q}.port`, `"${port}" is not a port number (1-65535)`);
      if (pp.protocol !== undefined && !['TCP', 'UDP', 'ANY', ''].includes(str(pp.protocol, `${q}.protocol`).toUpperCase())) {
        fail(`${q}.protocol`, `${JSON.stringify(pp.protocol)} is not TCP, UDP or ANY`);
      }
    });
    if (pr.rules !== undefined) l7Rules(pr.rules, `${p}.rules`, pr.ports);
  });
}

/** HTTP rules, for named TCP ports (a request is only HTTP over TCP). */
function l7Rules(v: Json, path: string, ports: Json): void {
  const r = object(v, path, ['http', 'kafka', 'dns', 'l7proto', 'l7']);
  for (const k of ['kafka', 'dns', 'l7proto', 'l7']) if (r[k] !== undefined) fail(`${path}.${k}`, `${k} rules are not supported yet (only http)`);
  if (!Array.isArray(ports) || ports.length === 0) fail(path, 'L7 rules need the ports they apply to (toPorts[].ports)');
  for (const [i, p] of (ports as Array<{ port: string; protocol?: string }>).entries()) {
    const proto = (p.protocol ?? '').toUpperCase();
    if (proto === 'UDP') fail(`${path.replace(/\.rules$/, '')}.ports[${i}].protocol`, 'HTTP rules need TCP, got UDP');
  }
  list(r.http, `${path}.http`, (x, p) => {
    const h = object(x, p, ['method', 'path', 'host', 'headers']);
    for (const f of ['method', 'path', 'host'] as const) if (h[f] !== undefined) regex(h[f], `${p}.${f}`);
    list(h.headers, `${p}.headers`, (y, q) => {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*:.*)?$/.test(str(y, q))) fail(q, `${JSON.stringify(y)} is not "Name" or "Name: value"`);
    });
  });
}

function regex(v: Json, path: string): void {
  try {
    new RegExp(str(v, path));
  } catch (err) {
    if (err instanceof Invalid) throw err;
    fail(path, `not a regular expression: ${(err as Error).message}`);
  }
}

function selector(v: Json, path: string): void {
  const s = object(v, path, ['matchLabels', 'matchExpressions']);
  if (s.matchLabels !== undefined) {
    const m = object(s.matchLabels, `${path}.matchLabels`, Object.keys(s.matchLabels as object));
    for (const [k, val] of Object.entries(m)) str(val, `${path}.matchLabels.${k}`);
  }
  list(s.matchExpressions, `${path}.matchExpressions`, (x, p) => {
    const e = object(x, p, ['key', 'operator', 'values']);
    str(e.key, `${p}.key`);
    const op = str(e.operator, `${p}.operator`);
    if (!['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(op)) fail(`${p}.operator`, `"${op}" is not In, NotIn, Exists or DoesNotExist`);
    list(e.values, `${p}.values`, (y, q) => str(y, q));
    if ((op === 'In' || op === 'NotIn') && !Array.isArray(e.values)) fail(`${p}.values`, `is required with ${op}`);
  });
}

function cidr(v: Json, path: string) {
  try {
    return parseCidr(str(v, path));
  } catch (err) {
    if (err instanceof Invalid) throw err;
    return fail(path, (err as Error).message);
  }
}
