import { Router } from 'express';
import { ApiDeps } from '../deps';
import { HttpError } from '../http';
import { internalIP } from '../../node/registry';
import type { KvEntryView, NodeView } from '../types';

/** The cluster this host is part of: its nodes, and the kvstore read as it is (`cilium kvstore get`). */
export function clusterRoutes(d: ApiDeps): Router {
  const r = Router();
  const cluster = () => {
    if (!d.cluster) throw new HttpError(404, 'this agent has no kvstore: it runs without --kvstore etcd, on this host alone');
    return d.cluster;
  };
  r.get('/v1/cluster/nodes', (_req, res) => {
    const c = cluster();
    res.json(
      c.nodes.list().map((n, i): NodeView => ({
        name: n.Name,
        cluster: n.Cluster,
        ipv4: internalIP(n) ?? '',
        ...(n.IPv4AllocCIDR ? { ipv4AllocCIDR: n.IPv4AllocCIDR } : {}),
        ...(n.IPv6AllocCIDR ? { ipv6AllocCIDR: n.IPv6AllocCIDR } : {}),
        self: i === 0,
      })),
    );
  });
  r.get('/v1/kvstore', async (req, res) => {
    const c = cluster();
    const key = typeof req.query.key === 'string' ? req.query.key : '';
    if (!key) throw new HttpError(400, 'key is required (a key, or a prefix with recursive=true)');
    if (req.query.recursive === 'true') {
      res.json((await c.kv.list(key)).map(([k, v]): KvEntryView => ({ key: k, value: v })));
      return;
    }
    const value = await c.kv.get(key);
    if (value === undefined) throw new HttpError(404, `no key ${key} in the kvstore`);
    res.json([{ key, value }] satisfies KvEntryView[]);
  });
  return r;
}
