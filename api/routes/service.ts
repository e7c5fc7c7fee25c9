import { Router } from 'express';
import { Backend, Frontend } from '../../datapath/bpf/maps';
import { formatAddress, formatHostPort } from '../../net/address';
import { IPPROTO } from '../../net/protocol';
import type { Service } from '../../service/load-balancer';
import { formatPublishedPort } from '../../service/port-mapping';
import type { PublishedService } from '../../service/published-ports';
import { validateSpec } from '../../service/user-services';
import { HttpError } from '../http';
import { ApiDeps } from '../deps';
import type { LbEntryView, ServiceView } from '../types';

const frontendText = (f: Frontend) =>
  formatHostPort(f.address === undefined ? (f.family === 4 ? '0.0.0.0' : '::') : formatAddress(f.family, f.address), f.port);
const backendText = (b: Backend) => formatHostPort(formatAddress(b.family, b.address), b.port);

/** Services (`cilium service list`) and the datapath's service map (`cilium bpf lb list`). */
export function serviceRoutes(d: ApiDeps): Router {
  const r = Router();
  const publications = () => new Map(d.published.list().map((p) => [p.id, p]));
  const view = (s: Service, published: Map<number, PublishedService>): ServiceView => {
    const base = {
      id: s.id,
      frontend: frontendText(s.frontend),
      protocol: s.frontend.proto === IPPROTO.UDP ? ('UDP' as const) : ('TCP' as const),
      backends: s.backends.map((b) => ({ id: d.lb.backendId(b) ?? 0, address: backendText(b) })),
    };
    const pub = published.get(s.id);
    if (pub) {
      const ep = d.endpoints.byDockerEndpoint(pub.dockerEndpointId);
      return {
        ...base,
        type: 'HostPort',
        published: formatPublishedPort(pub.port),
        endpointId: ep?.id ?? 0,
        ...(ep?.containerName ? { container: ep.containerName } : {}),
      };
    }
    const spec = d.userServices.get(s.id);
    return {
      ...base,
      type: 'ClusterIP',
      ...(spec?.name ? { name: spec.name } : {}),
      ...(spec?.selector ? { selector: spec.selector, targetPort: spec.targetPort! } : {}),
    };
  };
  r.get('/v1/service', (_req, res) => {
    const published = publications();
    res.json(d.lb.list().map((s) => view(s, published)) satisfies ServiceView[]);
  });
  r.get('/v1/service/:id', (req, res) => {
    const s = d.lb.list().find((x) => x.id === Number(req.params.id));
    if (!s) throw new HttpError(404, `service ${req.params.id} not found`);
    res.json(view(s, publications()));
  });
  r.put('/v1/service/:id', async (req, res) => {
    let spec;
    try {
      spec = validateSpec(Number(req.params.id), (req.body ?? {}) as Record<string, unknown>);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    try {
      res.json(view(await d.userServices.update(spec), new Map()));
    } catch (err) {
      throw new HttpError(409, (err as Error).message);
    }
  });
  r.delete('/v1/service/:id', async (req, res) => {
    const id = Number(req.params.id);
    if (publications().has(id)) throw new HttpError(409, `service ${id} is a published port's: it goes with its container (docker rm)`);
    if (!(await d.userServices.delete(id))) throw new HttpError(404, `service ${req.params.id} not found`);
    res.json({ deleted: id });
  });
  r.get('/v1/bpf/lb', (_req, res) => {
    const backends = new Map(d.dp.maps.lbBackends.entries().map((e) => [e.id, e.backend]));
    res.json(
      d.dp.maps.lbServices.entries().map((e) => ({
        frontend: frontendText(e.frontend),
        protocol: e.frontend.proto,
        backends: e.backendIds.map((id, i) => {
          const b = backends.get(id);
          return { slot: i + 1, id, ...(b ? { address: backendText(b) } : {}) };
        }),
      })) satisfies LbEntryView[],
    );
  });
  return r;
}
