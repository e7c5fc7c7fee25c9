import express, { NextFunction, Request, Response } from 'express';
import { EndpointRegistry } from '../endpoint/registry';
import { Endpoint } from '../endpoint/endpoint';
import { Ipam } from '../ipam/ipam';
import { NetworkRegistry } from '../plugin/networks';

export interface ApiDeps {
  version: string;
  startedAt: Date;
  endpoints: EndpointRegistry;
  networks: NetworkRegistry;
  ipam: Ipam;
  stateDir: string;
  pluginSocket: string;
}

/** The agent's JSON REST API (Cilium's /v1 shapes) that the cilium CLI talks to. */
export function apiApp(d: ApiDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '1mb' }));

  app.get('/v1/healthz', (_req, res) => {
    res.json({
      version: d.version,
      uptimeSeconds: Math.round((Date.now() - d.startedAt.getTime()) / 1000),
      stateDir: d.stateDir,
      pluginSocket: d.pluginSocket,
      endpoints: countBy(d.endpoints.list(), (e) => e.state),
      networks: d.networks.list().length,
      ipam: d.ipam.snapshot().map(({ allocations: _a, ...pool }) => pool),
    });
  });
  app.get('/v1/endpoint', (_req, res) => {
    res.json(d.endpoints.list());
  });
  app.get('/v1/endpoint/:id', (req, res) => {
    const ep = findEndpoint(d.endpoints, String(req.params.id));
    if (!ep) {
      res.status(404).json({ error: `endpoint ${req.params.id} not found` });
      return;
    }
    res.json(ep);
  });
  app.get('/v1/network', (_req, res) => {
    res.json(d.networks.list());
  });
  app.get('/v1/ipam', (_req, res) => {
    res.json(d.ipam.snapshot());
  });
  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: `no such API route: ${req.method} ${req.path}` });
  });
  app.use((err: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    res.status(err.status && err.status < 500 ? err.status : 500).json({ error: err.message });
  });
  return app;
}

/** An endpoint by numeric ID or by Docker endpoint ID (or a unique prefix of one). */
function findEndpoint(reg: EndpointRegistry, key: string): Endpoint | undefined {
  if (/^\d+$/.test(key)) return reg.byId(Number(key));
  const matches = reg.list().filter((e) => e.dockerEndpointId.startsWith(key));
  return matches.length === 1 ? matches[0] : undefined;
}

function countBy<T>(items: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}
