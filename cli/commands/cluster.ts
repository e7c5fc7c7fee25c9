import type { KvEntryView, NodeView } from '../../api/types';
import { Command, UsageError } from '../context';
import { table } from '../table';

export const nodeList: Command = async (ctx) => {
  const nodes = await ctx.api<NodeView[]>('GET', '/v1/cluster/nodes');
  ctx.print(nodes, () =>
    table(
      ['Name', 'IPv4 Address', 'Endpoint CIDR', 'IPv6 Endpoint CIDR'],
      nodes.map((n) => [`${n.cluster}/${n.name}${n.self ? ' (this node)' : ''}`, n.ipv4, n.ipv4AllocCIDR ?? '', n.ipv6AllocCIDR ?? '']),
    ),
  );
  return 0;
};

/** As Cilium prints it: `key => value`, one a line. */
export const kvstoreGet: Command = async (ctx) => {
  const [key] = ctx.positional();
  if (!key) throw new UsageError('kvstore get needs a KEY (or a prefix with --recursive)');
  const q = `key=${encodeURIComponent(key)}${ctx.has('--recursive') ? '&recursive=true' : ''}`;
  const entries = await ctx.api<KvEntryView[]>('GET', `/v1/kvstore?${q}`);
  ctx.print(entries, () => entries.map((e) => `${e.key} => ${e.value}\n`).join(''));
  return 0;
};
