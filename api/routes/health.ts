import { Router } from 'express';
import { existsSync } from 'fs';
import { PINNED_MAPS } from '../../datapath/bpf/loader';
import { ApiDeps } from '../deps';
import type { Health } from '../types';

export function healthRoutes(d: ApiDeps): Router {
  const r = Router();
  r.get('/v1/healthz', async (_req, res) => {
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
      masquerading: d.health.masquerading(),
      loadBalancing: { services: d.lb.list().length, ...d.health.loadBalancing },
      recentErrors: d.health.recentErrors,
      faults: d.health.faults,
      ...(d.cluster
        ? {
            cluster: {
              name: d.cluster.name,
              node: d.cluster.nodes.self.Name,
              kvstore: d.cluster.kv.status(),
              nodes: d.cluster.nodes.list().length,
              routing: 'native' as const,
              routes: d.cluster.routes.list(),
            },
          }
        : {}),
    } satisfies Health);
  });
  r.get('/v1/reconcile', (_req, res) => {
    res.json(d.reconciler.last ?? null);
  });
  r.post('/v1/reconcile', async (_req, res) => {
    res.json(await d.reconciler.run('api'));
  });
  return r;
}

function countBy<T>(items: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}
