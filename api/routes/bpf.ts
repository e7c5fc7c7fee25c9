import { Router } from 'express';
import { ctState, monotonicSeconds } from '../../datapath/bpf/maps';
import { formatAddress } from '../../net/address';
import { ApiDeps, Views } from '../deps';
import { findEndpoint } from '../http';
import type { BpfEndpointEntry, BpfPolicyEntry, CtEntryView, CtFlushed, IpcacheEntry, NatEntryView } from '../types';

/** The pinned maps as the datapath sees them: `cilium bpf ...`. */
export function bpfRoutes(d: ApiDeps, views: Views): Router {
  const r = Router();
  r.get('/v1/bpf/policy/:id', (req, res) => {
    const ep = findEndpoint(d.endpoints, req.params.id);
    const entries = d.dp.maps.policy.entries().filter((e) => e.epId === ep.id);
    res.json(
      entries.map((e) => ({
        ...e,
        packets: e.packets.toString(),
        bytes: e.bytes.toString(),
        labels: e.identity === 0 ? ['reserved:all'] : views.labelsOf(e.identity),
      })) satisfies BpfPolicyEntry[],
    );
  });
  r.get('/v1/bpf/ipcache', (_req, res) => {
    res.json(
      d.dp.maps.ipcache.entries().map((e) => ({
        prefix: `${formatAddress(e.family, e.value)}/${e.bits}`,
        identity: e.identity,
        labels: views.labelsOf(e.identity),
      })) satisfies IpcacheEntry[],
    );
  });
  r.get('/v1/bpf/ct', (_req, res) => {
    const now = monotonicSeconds();
    res.json(
      d.dp.maps.ct
        .entries()
        .filter((e) => e.expires >= now)
        .map((e) => ({
          ...e,
          packets: e.packets.toString(),
          bytes: e.bytes.toString(),
          state: ctState(e),
          remainingSeconds: e.expires - now,
        })) satisfies CtEntryView[],
    );
  });
  r.delete('/v1/bpf/ct', (_req, res) => {
    const flushed = d.dp.maps.ct.flush();
    d.log.info(`conntrack flushed: ${flushed} entries`);
    res.json({ flushed } satisfies CtFlushed);
  });
  r.get('/v1/bpf/nat', (_req, res) => {
    const now = monotonicSeconds();
    res.json(
      d.dp.maps.snat
        .entries()
        .filter((e) => e.expires >= now)
        .map((e) => ({ ...e, remainingSeconds: e.expires - now })) satisfies NatEntryView[],
    );
  });
  r.get('/v1/bpf/endpoint', (_req, res) => {
    res.json(d.dp.maps.endpoints.entries() satisfies BpfEndpointEntry[]);
  });
  return r;
}
