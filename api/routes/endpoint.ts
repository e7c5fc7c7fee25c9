import { Router } from 'express';
import { fromUser } from '../../labels/labels';
import { ApiDeps, Views } from '../deps';
import { HttpError, findEndpoint } from '../http';
import type { EndpointView, IdentityView, Pool } from '../types';

/** Endpoints, their networks and addresses, and the identities they hold. */
export function endpointRoutes(d: ApiDeps, views: Views): Router {
  const r = Router();
  r.get('/v1/endpoint', (_req, res) => {
    res.json(d.endpoints.list().map((e) => views.endpoint(e)) satisfies EndpointView[]);
  });
  r.get('/v1/endpoint/:id', (req, res) => {
    res.json(views.endpoint(findEndpoint(d.endpoints, req.params.id)) satisfies EndpointView);
  });
  r.put('/v1/endpoint/:id/labels', async (req, res) => {
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
      res.json(views.endpoint(await d.manager.setLabels(ep.dockerEndpointId, labels)) satisfies EndpointView);
    } catch (err) {
      throw new HttpError(409, (err as Error).message);
    }
  });
  r.get('/v1/network', (_req, res) => {
    res.json(d.networks.list());
  });
  r.get('/v1/ipam', (_req, res) => {
    res.json(d.ipam.snapshot() satisfies Pool[]);
  });
  const identityView = (i: { id: number; labels: string[] }): IdentityView => ({ id: i.id, labels: i.labels, users: d.identities.users(i.id) });
  r.get('/v1/identity', (_req, res) => {
    res.json(views.known().map(identityView));
  });
  r.get('/v1/identity/:id', (req, res) => {
    const i = views.known().find((x) => String(x.id) === req.params.id);
    if (!i) throw new HttpError(404, `identity ${req.params.id} not found`);
    res.json(identityView(i));
  });
  return r;
}
