import { setSysctl } from '../datapath/sysctl';
import { must } from '../test/harness/exec';

interface ProgStats {
  name?: string;
  run_time_ns?: number;
  run_cnt?: number;
}

async function ours(): Promise<{ ns: number; runs: number }> {
  const progs = JSON.parse(await must('bpftool', ['prog', 'show', '-j'])) as ProgStats[];
  const cil = progs.filter((p) => p.name?.startsWith('cil_'));
  return { ns: cil.reduce((a, p) => a + (p.run_time_ns ?? 0), 0), runs: cil.reduce((a, p) => a + (p.run_cnt ?? 0), 0) };
}

/**
 * What the endpoint programs cost per run, as the kernel measures it
 * (kernel.bpf_stats_enabled), over the packets fn sends. Stats are on only
 * meanwhile: they add a clock read to every run.
 */
export async function bpfCost(fn: () => Promise<unknown>): Promise<{ nsPerRun: number; runs: number }> {
  await setSysctl('kernel.bpf_stats_enabled', '1');
  try {
    const before = await ours();
    await fn();
    const after = await ours();
    if (after.runs === before.runs) throw new Error('the endpoint programs did not run: nothing to measure');
    return { nsPerRun: (after.ns - before.ns) / (after.runs - before.runs), runs: after.runs - before.runs };
  } finally {
    await setSysctl('kernel.bpf_stats_enabled', '0');
  }
}
