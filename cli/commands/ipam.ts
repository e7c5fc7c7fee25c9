import type { Pool } from '../../api/types';
import { Command } from '../context';
import { table } from '../table';

export const ipam: Command = async (ctx) => {
  const pools = await ctx.api<Pool[]>('GET', '/v1/ipam');
  ctx.print(pools, () =>
    [
      table(
        ['POOL', 'CIDR', 'RANGE', 'USED', 'FREE'],
        pools.map((p) => [p.id, p.cidr, p.range, String(BigInt(p.capacity) - BigInt(p.free)), p.free]),
      ),
      table(
        ['ADDRESS', 'POOL', 'OWNER'],
        pools.flatMap((p) => p.allocations.map((a) => [a.address, p.id, a.owner])),
      ),
    ].join('\n'),
  );
  return 0;
};
