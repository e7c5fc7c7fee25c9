import { spawn } from 'child_process';
import { resolve } from 'path';
import { TestAgent, httpUnix } from '../test/harness/agent';
import { BareEndpoint, BareEndpoints } from '../test/harness/bare-endpoints';
import { run } from '../test/harness/exec';

export const PROBE = resolve(__dirname, '../../bench/probe');

export interface UpdateReach {
  endpoints: number;
  /** PUT /v1/policy, from sending it to its answer */
  importMs: number;
  /** from sending the PUT until the first and the last endpoint answered the prober */
  firstMs: number;
  medianMs: number;
  lastMs: number;
  /** endpoints that never answered before the deadline, with what their state looked like */
  silent: number;
  diagnosis: string;
}

const rule = (from: string) => ({
  labels: [{ key: 'name', value: 'bench-update' }],
  endpointSelector: { matchLabels: { app: 'bare' } },
  ingress: [{ fromEndpoints: [{ matchLabels: { role: from } }] }],
});

/**
 * A rule import that affects every one of N endpoints, timed by probing: N
 * namespaces selected by a rule that lets nobody in, a prober pinging all of
 * them in rounds, then a rule that lets the prober in. Each endpoint enforces
 * the new rule when its first echo reply comes back.
 */
export async function policyUpdateReach(
  agent: TestAgent,
  networkId: string,
  n: number,
  whileUp: () => void = () => undefined,
  timeoutMs = 30_000,
): Promise<UpdateReach> {
  const put = (r: unknown) => httpUnix(agent.apiSocket, 'PUT', '/v1/policy', JSON.stringify([r]));
  const bare = new BareEndpoints(agent, networkId, 'bench-pu');
  try {
    const targets = await bare.create(n, ['app=bare']);
    const [prober] = await bare.create(1, ['role=prober']);
    whileUp();
    const closed = await put(rule('nobody'));
    if (closed.status !== 200) throw new Error(`policy import: ${JSON.stringify(closed.body)}`);

    const proc = spawn('nsenter', [`--net=/run/netns/${prober!.ns}`, PROBE, String(timeoutMs), ...targets.map((t) => t.address)]);
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<void>((r) =>
      proc.once('exit', () => {
        r();
      }),
    );
    while (!out.includes('probing\n')) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 200)); // some rounds that must go unanswered

    const t0 = process.hrtime.bigint();
    const opened = await put(rule('prober'));
    const importMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (opened.status !== 200) throw new Error(`policy import: ${JSON.stringify(opened.body)}`);
    await exited;

    const answers = out
      .split('\n')
      .filter((l) => /^\d+\.\d+\.\d+\.\d+ /.test(l))
      .map((l) => BigInt(l.split(' ')[1]!));
    if (answers.length !== n) throw new Error(`prober reported ${answers.length} of ${n} endpoints`);
    const silent = targets.filter((_, i) => answers[i]! < 0n);
    const diagnosis = silent.length ? await diagnose(agent, silent.slice(0, 3)) : '';
    const early = targets.filter((_, i) => answers[i]! >= 0n && answers[i]! < t0);
    if (early.length) {
      throw new Error(
        `${early.length} endpoints answered before the rule allowing the prober was sent: the closed rule was not enforced\n${await diagnose(agent, early.slice(0, 3))}`,
      );
    }
    const ms = answers
      .filter((t) => t >= 0n)
      .map((t) => Number(t - t0) / 1e6)
      .sort((a, b) => a - b);
    const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? NaN;
    return { endpoints: n, importMs, firstMs: at(0), medianMs: at(0.5), lastMs: silent.length ? Infinity : at(1), silent: silent.length, diagnosis };
  } finally {
    await bare.destroy();
    await httpUnix(agent.apiSocket, 'DELETE', '/v1/policy', JSON.stringify({ labels: ['name=bench-update'] }));
  }
}

/** What a user would look at for an endpoint that does not answer. */
async function diagnose(agent: TestAgent, silent: BareEndpoint[]): Promise<string> {
  const eps =
    await agent.api<Array<{ dockerEndpointId: string; id: number; ifName: string; ifIndex: number; state: string; identity: number }>>('/v1/endpoint');
  const datapath = await agent.api<Array<{ ifindex: number; epId: number; flags: number; identity: number }>>('/v1/bpf/endpoint');
  const out: string[] = [];
  for (const e of silent) {
    const ep = eps.find((x) => x.dockerEndpointId === e.endpointId);
    const inside = await run('ip', ['-n', e.ns, '-4', '-o', 'addr']);
    const neigh = await run('ip', ['-n', e.ns, '-4', 'neigh']);
    const link = ep ? await run('ip', ['-o', 'link', 'show', ep.ifName]) : undefined;
    const entry = ep && datapath.find((d) => d.ifindex === ep.ifIndex);
    out.push(
      `${e.ns} ${e.address}: endpoint ${JSON.stringify(ep)}; datapath ${JSON.stringify(entry ?? 'none')}; inside: ${inside.stdout.trim()} | neigh: ${neigh.stdout.trim()} | host link: ${link?.stdout.trim() ?? 'none'}`,
    );
  }
  return out.join('\n');
}
