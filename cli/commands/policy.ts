import type { EndpointView, PolicyChange, PolicyDeleted, PolicyList, Trace } from '../../api/types';
import { readFileSync } from 'fs';
import { validateRules } from '../../policy/validate';
import { Command, Ctx, UsageError } from '../context';

function readRules(file: string | undefined): unknown {
  if (!file) throw new UsageError('give a policy file (or - for standard input)');
  const name = file === '-' ? 'standard input' : file;
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${name}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${name} is not JSON: ${(err as Error).message}`);
  }
}

export const policyImport: Command = async (ctx) => {
  const r = await ctx.api<PolicyChange>('PUT', '/v1/policy', readRules(ctx.positional()[0]));
  ctx.print(r, () => `Revision: ${r.revision}\n`);
  return 0;
};

/** Checks a file without an agent and without importing anything. */
export const policyValidate: Command = (ctx) => {
  const rules = validateRules(readRules(ctx.positional()[0]));
  ctx.print({ valid: true, rules: rules.length }, () => `Valid: ${rules.length} rule(s)\n`);
  return Promise.resolve(0);
};

export const policyGet: Command = async (ctx) => {
  const r = await ctx.api<PolicyList>('GET', `/v1/policy?labels=${encodeURIComponent(ctx.positional().join(','))}`);
  ctx.print(r, () => `${JSON.stringify(r.rules, null, 2)}\nRevision: ${r.revision}\n`);
  return 0;
};

export const policyDelete: Command = async (ctx) => {
  const labels = ctx.positional();
  if (!ctx.has('--all') && labels.length === 0) throw new UsageError('policy delete needs labels of the rules to delete, or --all');
  const r = await ctx.api<PolicyDeleted>('DELETE', '/v1/policy', ctx.has('--all') ? { all: true } : { labels });
  ctx.print(r, () => `Deleted ${r.deleted} rule(s)\nRevision: ${r.revision}\n`);
  return 0;
};

/** -s/-d take labels ("id=app2", "k=v,k2=v2", repeatable) or a container name. */
async function side(ctx: Ctx, values: string[], flag: string): Promise<string[]> {
  if (values.length === 0) throw new UsageError(`policy trace needs ${flag}`);
  if (values.length === 1 && !values[0]!.includes('=') && !values[0]!.includes(':')) {
    const ep = await ctx.api<EndpointView>('GET', `/v1/endpoint/${encodeURIComponent(values[0]!)}`).catch(() => undefined);
    if (!ep) throw new Error(`${flag} ${values[0]}: no container or endpoint by that name (give labels as key=value)`);
    return ep.labels;
  }
  return values.flatMap((v) => v.split(/[ ,]+/)).filter(Boolean);
}

export const policyTrace: Command = async (ctx) => {
  const from = await side(ctx, ctx.flag(['-s', '--src']), '-s');
  const to = await side(ctx, ctx.flag(['-d', '--dst']), '-d');
  const [dport = '0', protocol = 'TCP'] = (ctx.flag(['--dport'])[0] ?? '0').split('/');
  if (!/^\d+$/.test(dport) || Number(dport) > 65535) throw new UsageError(`--dport ${dport}: not a port`);
  const [method] = ctx.flag(['--http-method']);
  const [path] = ctx.flag(['--http-path']);
  if ((method === undefined) !== (path === undefined)) throw new UsageError('an HTTP request needs both --http-method and --http-path');
  const http = method === undefined ? {} : { http: { method, path, headers: ctx.flag(['--http-header']) } };
  const r = await ctx.api<Trace>('POST', '/v1/policy/resolve', {
    from,
    to,
    dport: Number(dport),
    protocol,
    ...http,
  });
  ctx.print(r, () => {
    const id = (n: number) => (n < 0 ? 'no identity yet' : `identity ${n}`);
    return [
      `Tracing From: [${from.join(', ')}] (${id(r.srcIdentity)}) => To: [${to.join(', ')}] (${id(r.dstIdentity)}) Ports: [${dport === '0' ? 'any' : `${dport}/${protocol.toUpperCase()}`}]`,
      '',
      ...r.steps,
      '',
      `Final verdict: ${r.verdict}`,
      '',
    ].join('\n');
  });
  return 0;
};
