import express, { NextFunction, Request, Response } from 'express';
import { existsSync } from 'fs';
import { Logger } from 'winston';
import { ConntrackGc } from '../conntrack/gc';
import { BpfDatapath, PINNED_MAPS } from '../datapath/bpf/loader';
import { ctState, monotonicSeconds } from '../datapath/bpf/maps';
import { Endpoint } from '../endpoint/endpoint';
import { PolicySync } from '../endpoint/policy-sync';
import { EndpointManager } from '../endpoint/manager';
import { EndpointRegistry } from '../endpoint/registry';
import { IdentityAllocator } from '../identity/allocator';
import { failpoint } from '../failpoint/failpoint';
import { formatAddress } from '../net/address';
import { Ipam } from '../ipam/ipam';
import { fromUser, normalize } from '../labels/labels';
import { EventLog, LoggedEvent } from '../monitor/event-log';
import { Hooks } from '../metrics/metrics';
import { NetworkRegistry } from '../plugin/networks';
import { PolicyRepository } from '../policy/repository';
import { PolicyResolver } from '../policy/resolve';
import { Reconciler } from '../reconcile/reconciler';
import { protocolNumber } from '../net/protocol';

export interface ApiDeps {
  version: string;
  startedAt: Date;
  endpoints: EndpointRegistry;
  manager: EndpointManager;
  networks: NetworkRegistry;
  ipam: Ipam;
  identities: IdentityAllocator;
  repo: PolicyRepository;
  sync: PolicySync;
  events: EventLog;
  dp: BpfDatapath;
  log: Logger;
  reconciler: Reconciler;
  conntrack: ConntrackGc;
  stateDir: string;
  pluginSocket: string;
  hooks?: Pick<Hooks, 'apiCall'>;
  health: {
    docker: () => Promise<string>;
    store: () => Promise<string>;
    recentErrors: Array<{ time: string; level: string; message: string }>;
    faults: Record<string, number>;
    /** Veths of deleted endpoints the kernel is still removing. */
    linksPendingRemoval: () => number;
    bpfRoot: string;
    dockerHost: string;
  };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** "id=app1" means the container label; "reserved:host" and other sources are kept as written. */
export function userLabels(list: string[]): string[] {
  return normalize(list.filter(Boolean).map((l) => (/^[a-z-]+:/.test(l) ? l : `container:${l}`)));
}

/** The agent's JSON REST API (Cilium's /v1 shapes) that the cilium CLI talks to. */
export function apiApp(d: ApiDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use((req, res, next) => {
    const t0 = process.hrtime.bigint();
    res.on('finish', () =>
      d.hooks?.apiCall(
        (req.route as { path?: string } | undefined)?.path ?? 'unmatched',
        req.method,
        res.statusCode,
        Number(process.hrtime.bigint() - t0) / 1e9,
      ),
    );
    next();
  });
  app.use(express.json({ limit: '4mb', type: () => true }));
  const labelsOf = (id: number) => d.identities.get(id)?.labels ?? d.sync.knownIdentities().find((i) => i.id === id)?.labels ?? [];
  const endpointView = (e: Endpoint) => {
    const p = d.sync.policyOf(e.id);
    return { ...e, policy: { ingressEnforced: p?.ingressEnforced ?? false, egressEnforced: p?.egressEnforced ?? false, allows: p?.allows.length ?? 0 } };
  };
  const nameOf = (ip: string) => d.endpoints.list().find((e) => e.ipv4 === ip || e.ipv6 === ip)?.containerName;
  const withLabels = (e: LoggedEvent) => ({
    ...e,
    srcLabels: labelsOf(e.srcIdentity),
    dstLabels: labelsOf(e.dstIdentity),
    srcName: nameOf(e.src),
    dstName: nameOf(e.dst),
    endpointName: d.endpoints.byId(e.endpoint)?.containerName,
  });

  app.get('/v1/healthz', async (_req, res) => {
    const [docker, store] = await Promise.all([d.health.docker(), d.health.store()]);
    res.json({
      version: d.version,
      startedAt: d.startedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - d.startedAt.getTime()) / 1000),
      stateDir: d.stateDir,
      pluginSocket: d.pluginSocket,
      kvstore: { backend: 'leveldb', path: `${d.stateDir}/store`, status: store },
      docker: { host: d.health.dockerHost, status: docker },
      endpoints: countBy(d.endpoints.list(), (e) => e.state),
      linksPendingRemoval: d.health.linksPendingRemoval(),
      networks: d.networks.list().length,
      identities: d.identities.list().length,
      policyRevision: d.repo.revision,
      ipam: d.ipam.snapshot().map(({ allocations: _a, ...pool }) => pool),
      bpfMaps: PINNED_MAPS.map((name) => ({ name, path: `${d.health.bpfRoot}/${name}`, pinned: existsSync(`${d.health.bpfRoot}/${name}`) })),
      conntrack: d.conntrack.stats,
      natRecovery: d.dp.natRecoveryUnavailable ? `unavailable: ${d.dp.natRecoveryUnavailable}` : 'ok',
      recentErrors: d.health.recentErrors,
      faults: d.health.faults,
    });
  });
  app.get('/v1/endpoint', (_req, res) => {
    res.json(d.endpoints.list().map(endpointView));
  });
  app.get('/v1/endpoint/:id', (req, res) => {
    res.json(endpointView(findEndpoint(d.endpoints, req.params.id)));
  });
  app.put('/v1/endpoint/:id/labels', async (req, res) => {
    const ep = findEndpoint(d.endpoints, req.params.id);
    const body = (req.body ?? {}) as { labels?: unknown };
    if (!Array.isArray(body.labels) || !body.labels.every((l) => typeof l === 'string'))
      throw new HttpError(400, 'labels must be an array of "key=value" strings');
    let labels: string[];
    try {
      labels = fromUser(body.labels);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    try {
      res.json(endpointView(await d.manager.setLabels(ep.dockerEndpointId, labels)));
    } catch (err) {
      throw new HttpError(409, (err as Error).message);
    }
  });
  app.get('/v1/network', (_req, res) => {
    res.json(d.networks.list());
  });
  app.get('/v1/ipam', (_req, res) => {
    res.json(d.ipam.snapshot());
  });
  app.get('/v1/identity', (_req, res) => {
    res.json(d.sync.knownIdentities().map((i) => ({ id: i.id, labels: i.labels, users: d.identities.users(i.id) })));
  });
  app.get('/v1/identity/:id', (req, res) => {
    const i = d.sync.knownIdentities().find((x) => String(x.id) === req.params.id);
    if (!i) throw new HttpError(404, `identity ${req.params.id} not found`);
    res.json({ id: i.id, labels: i.labels, users: d.identities.users(i.id) });
  });
  app.get('/v1/policy', (req, res) => {
    const labels = queryText(req.query.labels).split(',').filter(Boolean);
    res.json({ revision: d.repo.revision, rules: d.repo.select(labels) });
  });
  /**
   * A repository change whose datapath update fails is rolled back: the
   * previous rules and revision are put back and the maps rewritten from them.
   */
  const applyOrRollBack = async (before: ReturnType<PolicyRepository['snapshot']>, what: string) => {
    try {
      d.sync.regenerate();
    } catch (err) {
      await d.repo.restore(before);
      try {
        d.sync.regenerate();
      } catch (again) {
        d.log.error(`policy rollback: rewriting the maps for revision ${before.revision} failed too: ${(again as Error).message}`);
      }
      d.log.error(`${what} rolled back: the datapath update failed: ${(err as Error).message}`);
      throw new HttpError(500, `${what} not applied, revision ${before.revision} stays in force: the datapath update failed: ${(err as Error).message}`);
    }
  };
  app.put('/v1/policy', async (req, res) => {
    const before = d.repo.snapshot();
    let revision: number;
    try {
      revision = await d.repo.import(req.body);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    failpoint('policy-persisted');
    await applyOrRollBack(before, 'policy import');
    d.log.info(`policy imported, revision ${revision}`);
    res.json({ revision });
  });
  app.delete('/v1/policy', async (req, res) => {
    const body = (req.body ?? {}) as { labels?: unknown; all?: unknown };
    const labels = Array.isArray(body.labels) ? body.labels.map(String) : [];
    if (labels.length === 0 && body.all !== true) throw new HttpError(400, 'give labels of the rules to delete, or all: true');
    const before = d.repo.snapshot();
    const result = await d.repo.delete(labels);
    await applyOrRollBack(before, 'policy delete');
    res.json(result);
  });
  app.post('/v1/policy/resolve', (req, res) => {
    const b = (req.body ?? {}) as { from?: unknown; to?: unknown; dport?: unknown; protocol?: unknown };
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
    const known = d.sync.knownIdentities();
    const idOf = (labels: string[], provisional: number) => known.find((i) => JSON.stringify(i.labels) === JSON.stringify(labels))?.id ?? provisional;
    const srcId = idOf(from, -1);
    const dstId = idOf(to, -2);
    const extra = [srcId < 0 ? { id: srcId, labels: from } : undefined, dstId < 0 ? { id: dstId, labels: to } : undefined].filter((x) => x !== undefined);
    const resolver = new PolicyResolver(d.repo.rules, [...known, ...extra], 'default');
    const trace = resolver.trace(from, to, srcId, dstId, port, proto);
    res.json({ verdict: trace.allowed ? 'ALLOWED' : 'DENIED', steps: trace.steps, srcIdentity: srcId, dstIdentity: dstId });
  });
  app.get('/v1/events', (req, res) => {
    const since = Number(req.query.since ?? 0);
    const type = queryText(req.query.type) || undefined;
    res.json(
      d.events
        .since(since)
        .filter((e) => !type || e.type === type)
        .map(withLabels),
    );
  });
  app.get('/v1/bpf/policy/:id', (req, res) => {
    const ep = findEndpoint(d.endpoints, req.params.id);
    const entries = d.dp.maps.policy.entries().filter((e) => e.epId === ep.id);
    res.json(
      entries.map((e) => ({
        ...e,
        packets: e.packets.toString(),
        bytes: e.bytes.toString(),
        labels: e.identity === 0 ? ['reserved:all'] : labelsOf(e.identity),
      })),
    );
  });
  app.get('/v1/reconcile', (_req, res) => {
    res.json(d.reconciler.last ?? null);
  });
  app.post('/v1/reconcile', async (_req, res) => {
    res.json(await d.reconciler.run('api'));
  });
  app.get('/v1/bpf/ipcache', (_req, res) => {
    res.json(
      d.dp.maps.ipcache.entries().map((e) => ({ prefix: `${formatAddress(e.family, e.value)}/${e.bits}`, identity: e.identity, labels: labelsOf(e.identity) })),
    );
  });
  app.get('/v1/bpf/ct', (_req, res) => {
    const now = monotonicSeconds();
    res.json(
      d.dp.maps.ct
        .entries()
        .filter((e) => e.expires >= now)
        .map((e) => ({ ...e, packets: e.packets.toString(), bytes: e.bytes.toString(), state: ctState(e), remainingSeconds: e.expires - now })),
    );
  });
  app.delete('/v1/bpf/ct', (_req, res) => {
    const flushed = d.dp.maps.ct.flush();
    d.log.info(`conntrack flushed: ${flushed} entries`);
    res.json({ flushed });
  });
  app.get('/v1/bpf/endpoint', (_req, res) => {
    res.json(d.dp.maps.endpoints.entries());
  });
  // A live stream of datapath events, one JSON object a line; a heartbeat line keeps idle streams honest.
  app.get('/v1/monitor', (req, res) => {
    const types = queryText(req.query.types).split(',').filter(Boolean);
    const endpoint = req.query.endpoint === undefined ? undefined : Number(req.query.endpoint);
    const related = (e: LoggedEvent) => {
      if (endpoint === undefined) return true;
      const ep = d.endpoints.byId(endpoint);
      return e.endpoint === endpoint || (ep !== undefined && [ep.ipv4, ep.ipv6].some((a) => a && (a === e.src || a === e.dst)));
    };
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    res.write(`${JSON.stringify({ type: 'hello', startedAt: d.startedAt.toISOString() })}\n`);
    const stop = d.events.subscribe((e) => {
      if ((types.length === 0 || types.includes(e.type)) && related(e)) res.write(`${JSON.stringify(withLabels(e))}\n`);
    });
    const beat = setInterval(() => res.write(`${JSON.stringify({ type: 'heartbeat' })}\n`), 5000);
    res.on('close', () => {
      stop();
      clearInterval(beat);
    });
  });
  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: `no such API route: ${req.method} ${req.path}` });
  });
  app.use((err: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
    const status = err instanceof HttpError ? err.status : err.status && err.status < 500 ? err.status : 500;
    res.status(status).json({ error: err.type === 'entity.parse.failed' ? `malformed JSON: ${err.message}` : err.message });
  });
  return app;
}

/** An endpoint by numeric ID, container name, or Docker endpoint/container ID prefix. */
function findEndpoint(reg: EndpointRegistry, key: string): Endpoint {
  const all = reg.list();
  const matches = /^\d+$/.test(key)
    ? all.filter((e) => e.id === Number(key))
    : all.filter((e) => e.containerName === key || e.dockerEndpointId.startsWith(key) || (e.containerId?.startsWith(key) ?? false));
  if (matches.length === 1) return matches[0]!;
  throw new HttpError(404, matches.length ? `"${key}" matches ${matches.length} endpoints: be more specific` : `endpoint ${key} not found`);
}

function countBy<T>(items: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}

/** A query parameter as text: repeated ones joined by commas, nested ones (`?a[b]=c`) are no text. */
function queryText(v: unknown): string {
  if (typeof v === 'string') return v;
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v.join(',') : '';
}
