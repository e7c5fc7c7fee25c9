import type { LbEntryView, ServiceView } from '../../api/types';
import { Command } from '../context';
import { proto, table } from '../table';

/** Cilium's columns: ID, Frontend, Service Type, Backend ("1 => addr (active)"); plus whose port it is. */
export const serviceList: Command = async (ctx) => {
  const services = await ctx.api<ServiceView[]>('GET', '/v1/service');
  ctx.print(services, () =>
    table(
      ['ID', 'Frontend', 'Service Type', 'Backend', 'Published'],
      services.map((s) => [
        String(s.id),
        `${s.frontend}/${s.protocol}`,
        s.type,
        s.backends.map((b, i) => `${i + 1} => ${b.address}/${s.protocol} (active)`).join(', '),
        `${s.published} (${s.container ?? `endpoint ${s.endpointId}`})`,
      ]),
    ),
  );
  return 0;
};

export const bpfLbList: Command = async (ctx) => {
  const entries = await ctx.api<LbEntryView[]>('GET', '/v1/bpf/lb');
  ctx.print(entries, () =>
    table(
      ['SERVICE ADDRESS', 'BACKEND ADDRESS (ID) (SLOT)'],
      entries
        .sort((a, b) => a.frontend.localeCompare(b.frontend))
        .map((e) => [
          `${e.frontend}/${proto(e.protocol)}`,
          e.backends.map((b) => `${b.address ?? 'missing'} (${b.id}) (${b.slot})`).join(', ') || '(no backend)',
        ]),
    ),
  );
  return 0;
};
