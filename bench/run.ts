import { execFileSync } from 'child_process';
import { writeFileSync } from 'fs';
import { cpus, totalmem } from 'os';
import { resolve } from 'path';
import { TestAgent } from '../test/harness/agent';
import { TestDockerd, buildBusyboxImage } from '../test/harness/dockerd';
import { dockerRunBench, dockerRunReport } from './docker-run';

const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const DRIVER = 'cilium-bench';

function machine(): string {
  const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  return [
    `- Date: ${new Date().toISOString()}`,
    `- Kernel: ${sh('uname', ['-r'])}; ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}); ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
    `- dockerd: ${sh('dockerd', ['--version'])}; node ${process.version}`,
  ].join('\n');
}

/** Runs every benchmark side by side with its baselines and rewrites bench/RESULTS.md. */
async function main(): Promise<void> {
  const d = new TestDockerd();
  const agent = new TestAgent(DRIVER, ['--ipv4-range=10.214.0.0/16', '--ipv6-range=f00d::d6:0:0/96', `--docker-host=${d.host}`]);
  try {
    await d.start();
    await buildBusyboxImage(d, 'bbox:latest');
    await agent.start();
    await d.ok(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, 'bench-cilium']);
    await d.ok(['network', 'create', '-d', 'bridge', 'bench-bridge']);
    process.stderr.write(`docker run --rm: ${RUNS} runs per network...\n`);
    const runs = await dockerRunBench(d, 'bbox:latest', ['none', 'bench-bridge', 'bench-cilium'], RUNS);
    const report = [
      '# Benchmark results',
      '',
      'Written by `npm run bench`; every figure of one table comes from the same run, interleaved with its baselines.',
      '',
      '## Machine',
      machine(),
      '',
      '## Endpoint setup: `docker run --rm bbox true`',
      dockerRunReport(runs, { none: '--net none', 'bench-bridge': 'bridge', 'bench-cilium': 'cilium' }, { ratio: 1.05, of: 'bench-cilium', to: 'bench-bridge' }),
      '',
    ].join('\n');
    writeFileSync(resolve(__dirname, '../../bench/RESULTS.md'), report);
    process.stdout.write(report);
  } finally {
    await d.docker(['network', 'rm', 'bench-cilium', 'bench-bridge']);
    await agent.destroy();
    await d.destroy();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exit(1);
});
