import { spawn } from 'child_process';
import { resolve } from 'path';
import { TestAgent, httpUnix } from '../test/harness/agent';
import { BareEndpoints } from '../test/harness/bare-endpoints';

export const PROBE = resolve(__dirname, '../../bench/probe');

export interface UpdateReach {
  endpoints: number;
  /** PUT /v1/policy, from sending it to its answer */
  importMs: number;
  /** from sending the PUT until the first and the last endpoint answered the prober */
  firstMs: number;
  medianMs: number;
  lastMs: number;
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
export async function policyUpdateReach(agent: TestAgent, networkId: string, n: number, whileUp: () => void = () => undefined, timeoutMs = 30_000): Promise<UpdateReach> {
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
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    while (!out.includes('probing\n')) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 200)); // some rounds that must go unanswered

    const t0 = process.hrtime.bigint();
    const opened = await put(rule('prober'));
    const importMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (opened.status !== 200) throw new Error(`policy import: ${JSON.stringify(opened.body)}`);
    await exited;

    const answers = out.split('\n').filter((l) => /^\d+\.\d+\.\d+\.\d+ /.test(l)).map((l) => BigInt(l.split(' ')[1]!));
    if (answers.length !== n) throw new Error(`prober reported ${answers.length} of ${n} endpoints`);
    const silent = answers.filter((t) => t < 0n).length;
    if (silent) throw new Error(`${silent} of ${n} endpoints never answered within ${timeoutMs} ms of the import`);
    const early = answers.filter((t) => t < t0).length;
    if (early) throw new Error(`${early} endpoints answered before the rule allowing the prober was sent: the closed rule was not enforced`);
    const ms = answers.map((t) => Number(t - t0) / 1e6).sort((a, b) => a - b);
    return { endpoints: n, importMs, firstMs: ms[0]!, medianMs: ms[Math.floor(n / 2)]!, lastMs: ms[n - 1]! };
  } finally {
    await bare.destroy();
    await httpUnix(agent.apiSocket, 'DELETE', '/v1/policy', JSON.stringify({ labels: ['name=bench-update'] }));
  }
}
