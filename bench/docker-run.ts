import { TestDockerd } from '../test/harness/dockerd';
import { must } from '../test/harness/exec';
import { Summary, row, summarize } from './stats';

/**
 * Endpoint setup as a user feels it: `docker run --rm IMAGE true`, on each
 * network, interleaved round by round so machine noise hits all alike.
 */
export async function dockerRunBench(d: TestDockerd, image: string, networks: string[], runs: number): Promise<Map<string, Summary>> {
  const samples = new Map(networks.map((n) => [n, [] as number[]]));
  const once = async (net: string) => {
    const t0 = process.hrtime.bigint();
    await must('docker', ['-H', d.host, 'run', '--rm', '--net', net, image, 'true'], { timeoutMs: 60_000 });
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  for (const n of networks) for (let i = 0; i < 3; i++) await once(n); // warm caches
  for (let i = 0; i < runs; i++) for (const n of networks) samples.get(n)!.push(await once(n));
  return new Map([...samples].map(([n, xs]) => [n, summarize(xs)]));
}

export function dockerRunReport(results: Map<string, Summary>, labels: Record<string, string>, goal: { ratio: number; of: string; to: string }): string {
  const lines = ['| network | runs | min | median | max |', '|---|---|---|---|---|'];
  for (const [n, s] of results) lines.push(row(labels[n] ?? n, s));
  const a = results.get(goal.of)!.median;
  const b = results.get(goal.to)!.median;
  const ratio = a / b;
  lines.push('');
  for (const [n, s] of results) if (n !== goal.to) lines.push(`- ${labels[n] ?? n} / ${labels[goal.to] ?? goal.to} (medians): **${(s.median / b).toFixed(3)}**`);
  lines.push(`- Goal ${labels[goal.of]} / ${labels[goal.to]} <= ${goal.ratio}: **${ratio <= goal.ratio ? 'met' : 'not met'}** (${ratio.toFixed(3)})`);
  return lines.join('\n');
}
