import { Router } from 'express';
import { LoggedEvent } from '../../monitor/event-log';
import { ApiDeps, Views } from '../deps';
import { queryText } from '../http';
import type { EventView } from '../types';

export function eventRoutes(d: ApiDeps, views: Views): Router {
  const r = Router();
  r.get('/v1/events', (req, res) => {
    const since = Number(req.query.since ?? 0);
    const type = queryText(req.query.type) || undefined;
    res.json(
      d.events
        .since(since)
        .filter((e) => !type || e.type === type)
        .map((e) => views.event(e)) satisfies EventView[],
    );
  });
  // A live stream of datapath events, one JSON object a line; a heartbeat line keeps idle streams honest.
  r.get('/v1/monitor', (req, res) => {
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
      if ((types.length === 0 || types.includes(e.type)) && related(e)) res.write(`${JSON.stringify(views.event(e))}\n`);
    });
    const beat = setInterval(() => res.write(`${JSON.stringify({ type: 'heartbeat' })}\n`), 5000);
    res.on('close', () => {
      stop();
      clearInterval(beat);
    });
  });
  return r;
}
