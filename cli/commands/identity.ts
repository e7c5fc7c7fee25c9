import type { IdentityView } from '../../api/types';
import { Command, UsageError } from '../context';
import { table } from '../table';

export const identityList: Command = async (ctx) => {
  const ids = await ctx.api<IdentityView[]>('GET', '/v1/identity');
  ctx.print(ids, () =>
    table(
      ['ID', 'LABELS'],
      ids.map((i) => [String(i.id), i.labels.join(' ')]),
    ),
  );
  return 0;
};

export const identityGet: Command = async (ctx) => {
  const [id] = ctx.positional();
  if (!id || !/^\d+$/.test(id)) throw new UsageError('identity get needs a numeric identity');
  const i = await ctx.api<IdentityView>('GET', `/v1/identity/${id}`);
  ctx.print(i, () => table(['ID', 'LABELS', 'LOCAL USERS'], [[String(i.id), i.labels.join(' '), String(i.users)]]));
  return 0;
};
