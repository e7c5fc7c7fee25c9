import type { LbEntryView, ServiceView } from '../../api/types';
import { Command, UsageError } from '../context';
import { proto, table } from '../table';

/** Cilium's columns: ID, Frontend, Service Type, Backend ("1 => addr (active)"); plus whose port it is. */
export const serviceList: Command = async (ctx) => {
  const services = await ctx.api<ServiceView[]>('GET', '/v1/service');
  ctx.print(services, () =>
    table(
      ['ID', 'Frontend', 'Service Type', 'Backend', 'Source'],
      services.map((s) => [
        String(s.id),
        `${s.frontend}/${s.protocol}`,
        s.type,
        s.backends.map((b, i) => `${i + 1} => ${b.address}/${s.protocol} (active)`).join(', '),
        [
          s.name ? `name ${s.name}` : '',
          s.published ? `${s.published} (${s.container ?? `endpoint ${s.endpointId}`})` : '',
          s.selector
            ? `selector ${Object.entries(s.selector)
                .map(([k, v]) => `${k}=${v}`)
                .join(',')} port ${s.targetPort}`
            : '',
        ]
          .filter(Boolean)
          .join('; '),
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

/**
 * Cilium's `service update --id N --frontend IP:PORT --backends IP:PORT,...`;
 * or, for backends that follow containers, `--selector k=v[,k=v] --backend-port N` (`--port` too);
 * `--name NAME` for policy's toServices.
 */
export const serviceUpdate: Command = async (ctx) => {
  const [id] = ctx.flag(['--id']);
  const [frontend] = ctx.flag(['--frontend']);
  const backends = ctx
    .flag(['--backends'])
    .flatMap((b) => b.split(','))
    .filter(Boolean);
  const [selector] = ctx.flag(['--selector']);
  const [port] = ctx.flag(['--backend-port', '--port']);
  const [protocol = 'tcp'] = ctx.flag(['--protocol']);
  const [name] = ctx.flag(['--name']);
  if (!id || !frontend) throw new UsageError('service update needs --id N and --frontend ADDRESS:PORT');
  if (backends.length > 0 === (selector !== undefined))
    throw new UsageError('service update takes --backends ADDRESS:PORT,... or --selector KEY=VALUE[,...] --backend-port N');
  const body = {
    frontend,
    protocol,
    ...(name !== undefined ? { name } : {}),
    ...(selector !== undefined
      ? {
          selector: Object.fromEntries(
            selector.split(',').map((kv) => {
              const [k, ...v] = kv.split('=');
              if (!k || v.length === 0) throw new UsageError(`--selector "${selector}": KEY=VALUE[,KEY=VALUE]`);
              return [k, v.join('=')];
            }),
          ),
          targetPort: Number(port),
        }
      : { backends }),
  };
  const s = await ctx.api<ServiceView>('PUT', `/v1/service/${encodeURIComponent(id)}`, body);
  ctx.print(s, () => `Service ${s.id} ${s.frontend}/${s.protocol}: ${s.backends.length} backend${s.backends.length === 1 ? '' : 's'}\n`);
  return 0;
};

export const serviceDelete: Command = async (ctx) => {
  const [id] = ctx.positional();
  if (!id) throw new UsageError('service delete needs a service ID');
  const r = await ctx.api<{ deleted: number }>('DELETE', `/v1/service/${encodeURIComponent(id)}`);
  ctx.print(r, () => `Service ${r.deleted} deleted\n`);
  return 0;
};
