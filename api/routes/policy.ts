import { Router } from 'express';
import { protocolNumber } from '../../net/protocol';
import { PolicyNotApplied } from '../../policy/repository';
import { PolicyResolver } from '../../policy/resolve';
import type { HttpRequestView } from '../../policy/http-match';
import { ApiDeps, Views } from '../deps';
import { HttpError, queryText, userLabels } from '../http';
import type { PolicyChange, PolicyDeleted, PolicyList, Trace } from '../types';

export function policyRoutes(d: ApiDeps, views: Views): Router {
  const r = Router();
  r.get('/v1/policy', (req, res) => {
    const labels = queryText(req.query.labels).split(',').filter(Boolean);
    res.json({ revision: d.repo.revision, rules: d.repo.select(labels) } satisfies PolicyList);
  });
  // The repository announces each change to the regenerator and rolls back one it could not apply.
  // Other errors of an import are the rules' (400); of a delete, the agent's (500).
  const change = async <T>(what: () => Promise<T>, otherStatus: 400 | 500): Promise<T> => {
    try {
      return await what();
    } catch (err) {
      if (err instanceof PolicyNotApplied) d.log.error(`${err.what} rolled back: the datapath update failed: ${err.why}`);
      throw new HttpError(err instanceof PolicyNotApplied ? 500 : otherStatus, (err as Error).message);
    }
  };
  r.put('/v1/policy', async (req, res) => {
    const revision = await change(() => d.repo.import(req.body), 400);
    d.log.info(`policy imported, revision ${revision}`);
    res.json({ revision } satisfies PolicyChange);
  });
  r.delete('/v1/policy', async (req, res) => {
    const body = (req.body ?? {}) as { labels?: unknown; all?: unknown };
    const labels = Array.isArray(body.labels) ? body.labels.map(String) : [];
    if (labels.length === 0 && body.all !== true) throw new HttpError(400, 'give labels of the rules to delete, or all: true');
    res.json((await change(() => d.repo.delete(labels), 500)) satisfies PolicyDeleted);
  });
  r.post('/v1/policy/resolve', (req, res) => {
    const b = (req.body ?? {}) as { from?: unknown; to?: unknown; dport?: unknown; protocol?: unknown; http?: unknown };
    if (!Array.isArray(b.from) || !Array.isArray(b.to)) throw new HttpError(400, 'from and to must be lists of labels');
    const from = userLabels(b.from.map(String));
    const to = userLabels(b.to.map(String));
    const port = Number(b.dport ?? 0);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new HttpError(400, `dport ${String(b.dport)} is not a port`);
    const protocol = b.protocol ?? 'TCP';
    const proto = typeof protocol === 'string' ? protocolNumber(protocol) : undefined;
    if (proto === undefined)
      throw new HttpError(400, `protocol ${typeof protocol === 'string' ? protocol : JSON.stringify(protocol)} is not TCP, UDP, ICMP or ANY`);
    // Label sets with no identity yet get provisional numbers, so a trace works before any container exists.
    const known = views.known();
    const idOf = (labels: string[], provisional: number) => known.find((i) => JSON.stringify(i.labels) === JSON.stringify(labels))?.id ?? provisional;
    const srcId = idOf(from, -1);
    const dstId = idOf(to, -2);
    const extra = [srcId < 0 ? { id: srcId, labels: from } : undefined, dstId < 0 ? { id: dstId, labels: to } : undefined].filter((x) => x !== undefined);
    const resolver = new PolicyResolver(d.repo.rules, [...known, ...extra], 'default');
    const trace = resolver.trace(from, to, srcId, dstId, port, proto, traceRequest(b.http));
    res.json({ verdict: trace.allowed ? 'ALLOWED' : 'DENIED', steps: trace.steps, srcIdentity: srcId, dstIdentity: dstId } satisfies Trace);
  });
  return r;
}

/** The request a trace asks the L7 rules about: {method, path, headers: ["Name: value"]}, or none. */
function traceRequest(v: unknown): HttpRequestView | undefined {
  if (v === undefined) return undefined;
  const h = (typeof v === 'object' && v !== null ? v : {}) as { method?: unknown; path?: unknown; headers?: unknown };
  if (typeof h.method !== 'string' || typeof h.path !== 'string' || !h.path.startsWith('/'))
    throw new HttpError(400, 'http needs method and path (starting with /), as strings');
  if (h.headers !== undefined && !(Array.isArray(h.headers) && h.headers.every((x) => typeof x === 'string' && x.includes(':'))))
    throw new HttpError(400, 'http.headers must be a list of "Name: value" strings');
  const headers: Record<string, string> = {};
  for (const x of (h.headers ?? []) as string[]) headers[x.slice(0, x.indexOf(':')).trim().toLowerCase()] = x.slice(x.indexOf(':') + 1).trim();
  return { method: h.method, url: h.path, headers };
}
