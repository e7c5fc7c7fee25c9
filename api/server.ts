import express, { NextFunction, Request, Response } from 'express';
import { ApiDeps, Views } from './deps';
import { HttpError } from './http';
import { bpfRoutes } from './routes/bpf';
import { clusterRoutes } from './routes/cluster';
import { endpointRoutes } from './routes/endpoint';
import { eventRoutes } from './routes/events';
import { healthRoutes } from './routes/health';
import { policyRoutes } from './routes/policy';
import { serviceRoutes } from './routes/service';

export type { ApiDeps } from './deps';

/** The agent's JSON REST API (Cilium's /v1 shapes) that the cilium CLI talks to: one router per noun. */
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
  const views = new Views(d);
  app.use(healthRoutes(d), endpointRoutes(d, views), policyRoutes(d, views), eventRoutes(d, views), bpfRoutes(d, views), serviceRoutes(d), clusterRoutes(d));
  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: `no such API route: ${req.method} ${req.path}` });
  });
  app.use((err: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
    const status = err instanceof HttpError ? err.status : err.status && err.status < 500 ? err.status : 500;
    res.status(status).json({ error: err.type === 'entity.parse.failed' ? `malformed JSON: ${err.message}` : err.message });
  });
  return app;
}
