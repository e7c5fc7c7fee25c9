import type { EndpointView } from '../../api/types';
import { Command, UsageError } from '../context';
import { table } from '../table';

const onOff = (b: boolean) => (b ? 'Enabled' : 'Disabled');
const l7Ports = (ports: string[]) => (ports.length ? ` (L7 ${ports.join(',')})` : '');

export const endpointList: Command = async (ctx) => {
  const eps = await ctx.api<EndpointView[]>('GET', '/v1/endpoint');
  ctx.print(eps, () =>
    table(
      ['ENDPOINT', 'POLICY (ingress)', 'POLICY (egress)', 'IDENTITY', 'LABELS (source:key[=value])', 'IPv6', 'IPv4', 'STATUS'],
      eps.map((e) => [
        String(e.id),
        onOff(e.policy.ingressEnforced) + l7Ports(e.policy.l7Ingress),
        onOff(e.policy.egressEnforced) + l7Ports(e.policy.l7Egress),
        String(e.identity),
        e.labels.join(' ') || (e.state === 'ready' ? '(no labels)' : 'reserved:init'),
        e.ipv6 ?? '',
        e.ipv4 ?? '',
        e.state,
      ]),
    ),
  );
  return 0;
};

export const endpointGet: Command = async (ctx) => {
  const [key] = ctx.positional();
  if (!key) throw new UsageError('endpoint get needs an endpoint ID or container name');
  const ep = await ctx.api<EndpointView>('GET', `/v1/endpoint/${encodeURIComponent(key)}`);
  process.stdout.write(`${JSON.stringify(ep, null, 2)}\n`);
  return 0;
};

/** Labels for an endpoint no container owns (wired through the plugin protocol by hand). */
export const endpointLabels: Command = async (ctx) => {
  const [key, ...labels] = ctx.positional();
  if (!key || labels.length === 0) throw new UsageError('endpoint labels needs an endpoint ID and at least one key=value label');
  const ep = await ctx.api<EndpointView>('PUT', `/v1/endpoint/${encodeURIComponent(key)}/labels`, { labels });
  ctx.print(ep, () => `Endpoint ${ep.id}: identity ${ep.identity} (${ep.labels.join(' ')})\n`);
  return 0;
};
