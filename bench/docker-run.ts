import { TestDockerd } from '../test/harness/dockerd';
import { must } from '../test/harness/exec';
import { pairedRatio, row, summarize } from './stats';

/**
 * Endpoint setup as a user feels it: `docker run --rm IMAGE true`, on each
 * network, interleaved round by round so machine noise hits all alike.
 * @returns each network's samples, in round order
 */
export async function dockerRunBench(d: TestDockerd, image: string, networks: string[], runs: number): Promise<Map<string, number[]>> {
  const samples = new Map(networks.map((n) => [n, [] as number[]]));
  const once = async (net: string) => {
    const t0 = process.hrtime.bigint();
    await must('docker', ['-H', d.host, 'run', '--rm', '--net', net, image, 'true'], { timeoutMs: 60_000 });
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  for (const n of networks) for (let i = 0; i < 3; i++) await once(n); // warm caches
  for (let i = 0; i < runs; i++) for (const n of networks) samples.get(n)!.push(await once(n));
  return samples;
}

/** The table, and each network's ratio to the baseline (median of per-round ratios). */
export function dockerRunReport(
  samples: Map<string, number[]>,
  labels: Record<string, string>,
  baseline: string,
): { text: string; ratios: Map<string, number> } {
  const lines = ['| network | runs | min | median | max |', '|---|---|---|---|---|'];
  for (const [n, xs] of samples) lines.push(row(labels[n] ?? n, summarize(xs)));
  lines.push('');
  const base = samples.get(baseline)!;
  const ratios = new Map<string, number>();
  for (const [n, xs] of samples) {
    if (n === baseline) continue;
    ratios.set(n, pairedRatio(xs, base));
    lines.push(
      `- ${labels[n] ?? n} / ${labels[baseline] ?? baseline}: **${ratios.get(n)!.toFixed(3)}** (median of per-round ratios; ratio of medians ${(summarize(xs).median / summarize(base).median).toFixed(3)})`,
    );
  }
  return { text: lines.join('\n'), ratios };
}
