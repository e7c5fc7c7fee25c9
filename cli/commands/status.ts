import { VERSION } from '../../api/version';
import type { Health } from '../../api/types';
import { Command } from '../context';

const ok = (s: string) => (s === 'ok' ? 'Ok' : `Failure: ${s}`);

export const status: Command = async (ctx) => {
  const h = await ctx.api<Health>('GET', '/v1/healthz');
  const verbose = ctx.has('--verbose') || ctx.has('-v');
  ctx.print(h, () => {
    const eps =
      Object.entries(h.endpoints)
        .map(([s, n]) => `${n} ${s}`)
        .join(', ') || 'none';
    const maps = h.bpfMaps.filter((m) => m.pinned).length;
    const c = h.cluster;
    const lines = [
      ...(c
        ? [
            `KVStore:      ${c.kvstore.connected ? 'Ok' : `Failure: ${c.kvstore.lastError ?? 'unreachable'}`}   etcd ${c.kvstore.endpoints.join(',')}${c.kvstore.lease ? ` (lease ${c.kvstore.lease}, TTL ${c.kvstore.leaseTtlSeconds}s)` : ''}`,
            `Host store:   ${ok(h.kvstore.status)}   ${h.kvstore.backend} ${h.kvstore.path}`,
            `Cluster:      ${c.name}, node ${c.node}, ${c.nodes} node${c.nodes === 1 ? '' : 's'} (cilium node list)`,
            `Routing:      Network: Native   ${c.routes.length} route${c.routes.length === 1 ? '' : 's'} to other nodes${c.routes.length ? `: ${c.routes.map((r) => `${r.range} via ${r.via}`).join(', ')}` : ''}`,
          ]
        : [`KVStore:      ${ok(h.kvstore.status)}   ${h.kvstore.backend} ${h.kvstore.path}`]),
      `Docker:       ${ok(h.docker.status)}   ${h.docker.host}`,
      `Cilium:       Ok   ${h.version} (up ${h.uptimeSeconds}s)`,
      `Plugin:       ${h.pluginSocket}`,
      `IPAM:`,
      ...h.ipam.map((p) => `  ${p.id.padEnd(28)} ${p.cidr.padEnd(24)} ${BigInt(p.capacity) - BigInt(p.free)}/${p.capacity} used, ${p.free} free`),
      `Networks:     ${h.networks}`,
      `Endpoints:    ${eps}`,
      `Identities:   ${h.identities}`,
      `Policy:       revision ${h.policyRevision}`,
      `BPF maps:     ${maps}/${h.bpfMaps.length} pinned${
        maps < h.bpfMaps.length
          ? ` (missing: ${h.bpfMaps
              .filter((m) => !m.pinned)
              .map((m) => m.name)
              .join(', ')})`
          : ''
      }`,
      ...(verbose ? h.bpfMaps.map((m) => `  ${m.path}${m.pinned ? '' : '  (missing)'}`) : []),
      `Conntrack:    ${h.conntrack.entries} entries; GC ${h.conntrack.runs} runs, last removed ${h.conntrack.lastExpired} expired + ${h.conntrack.lastOrphaned} orphaned${h.conntrack.lastDurationMs === undefined ? '' : ` in ${h.conntrack.lastDurationMs} ms`}${h.conntrack.failures ? `, ${h.conntrack.failures} failed` : ''}`,
      `Masquerading: ${masquerading(h.masquerading)}`,
      `Services:     ${h.loadBalancing.services}; backends ${h.loadBalancing.algorithm === 'maglev' ? `by Maglev (table of ${h.loadBalancing.maglevTableSize})` : 'at random'}; the host's sockets ${h.loadBalancing.socketLbCgroup ? `translated at connect (cgroup ${h.loadBalancing.socketLbCgroup})` : 'not translated (--bpf-lb-sock=false)'}`,
      `NAT sources:  ${h.natRecovery === 'ok' ? 'Ok   original source of host-NATed traffic' : `Disabled   host-NATed traffic is world (${h.natRecovery})`}`,
      `Faults:       ${
        Object.entries(h.faults)
          .map(([k, n]) => `${n} ${k}`)
          .join(', ') || 'none'
      } (errors survived)`,
      `Last errors:  ${h.recentErrors.length === 0 ? 'none' : ''}`,
      ...(verbose ? h.recentErrors : h.recentErrors.slice(-3)).map((e) => `  ${e.time} ${e.level} ${e.message}`),
    ];
    return `${lines.join('\n')}\n`;
  });
  return h.kvstore.status === 'ok' && (!h.cluster || h.cluster.kvstore.connected) ? 0 : 1;
};

export const version: Command = async (ctx) => {
  const h = await ctx.api<Health>('GET', '/v1/healthz');
  ctx.print({ client: VERSION, daemon: h.version }, () => `Client: ${VERSION}\nDaemon: ${h.version}\n`);
  return 0;
};

/** As Cilium shows it ("BPF   [eth0]   10.0.0.0/8"), with each device's address and the port range. */
function masquerading(m: Health['masquerading']): string {
  if (!m.enabled) return 'Disabled';
  const devices = m.devices.map((d) => [d.name, d.ipv4, d.ipv6].filter(Boolean).join(' ')).join(', ');
  return `BPF   [${devices || 'no device with a global address yet'}]   except to ${m.excluded.join(' ') || 'none'}, ports ${m.ports.min}-${m.ports.max}`;
}
