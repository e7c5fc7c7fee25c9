import { Router } from 'express';
import { Backend, Frontend } from '../../datapath/bpf/maps';
import { formatAddress } from '../../net/address';
import { formatPublishedPort } from '../../service/port-mapping';
import { ApiDeps } from '../deps';
import type { LbEntryView, ServiceView } from '../types';

const hostPort = (family: 4 | 6, address: string, port: number) => (family === 6 ? `[${address}]:${port}` : `${address}:${port}`);
const frontendText = (f: Frontend) =>
  hostPort(f.family, f.address === undefined ? (f.family === 4 ? '0.0.0.0' : '::') : formatAddress(f.family, f.address), f.port);
const backendText = (b: Backend) => hostPort(b.family, formatAddress(b.family, b.address), b.port);

/** Services (`cilium service list`) and the datapath's service map (`cilium bpf lb list`). */
export function serviceRoutes(d: ApiDeps): Router {
  const r = Router();
  r.get('/v1/service', (_req, res) => {
    res.json(
      d.published
        .list()
        .sort((a, b) => a.id - b.id)
        .map((s) => {
          const ep = d.endpoints.byDockerEndpoint(s.dockerEndpointId);
          return {
            id: s.id,
            type: 'HostPort',
            frontend: frontendText(s.frontend),
            protocol: s.port.proto === 'tcp' ? 'TCP' : 'UDP',
            backends: s.backends.map((b) => ({ id: d.lb.backendId(b) ?? 0, address: backendText(b) })),
            published: formatPublishedPort(s.port),
            endpointId: ep?.id ?? 0,
            ...(ep?.containerName ? { container: ep.containerName } : {}),
          };
        }) satisfies ServiceView[],
    );
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
