import { spawn } from 'child_process';
import { resolve } from 'path';
import { TestDockerd } from '../test/harness/dockerd';
import { must, run } from '../test/harness/exec';

export const TCP_RR = resolve(__dirname, '../../bench/tcp_rr');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Two network namespaces that talk over some datapath: what a measurement needs. */
export interface Pair {
  server: string; // netns path
  client: string;
  address: string; // the server's IPv4
}

/**
 * Which CPU each side runs on: [server, client]. Pinning both to one CPU
 * measures the datapath; on this VM a wake-up across CPUs costs ~90 µs (an
 * IPI and an idle exit), which would otherwise decide every round trip.
 */
export type Cpus = [number, number];
const pinned = (cpu: number, args: string[]) => ['taskset', '-c', String(cpu), ...args];

function background(ns: string, args: string[]) {
  const p = spawn('nsenter', [`--net=${ns}`, ...args], { stdio: 'ignore' });
  const done = new Promise<void>((r) =>
    p.once('exit', () => {
      r();
    }),
  );
  return {
    stop: async () => {
      p.kill();
      await done;
    },
  };
}

/** Until a server listens on the port in the namespace: a loaded machine may take longer than any fixed pause to start one. */
async function listening(ns: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await run('nsenter', [`--net=${ns}`, 'ss', '-Hltn', `sport = :${port}`])).stdout.trim()) return;
    await sleep(100);
  }
  throw new Error(`no server listening on port ${port} after 10 s`);
}

/** iperf3 TCP throughput, client to server, in Gbit/s (the first second, slow start, left out). */
export async function throughput(p: Pair, cpus: Cpus, seconds = 2): Promise<number> {
  const srv = background(p.server, pinned(cpus[0], ['iperf3', '-s', '-1', '-p', '5201']));
  try {
    await listening(p.server, 5201);
    const out = await must(
      'nsenter',
      [`--net=${p.client}`, ...pinned(cpus[1], ['iperf3', '-c', p.address, '-p', '5201', '-t', String(seconds), '-O', '1', '-J'])],
      { timeoutMs: 60_000 },
    );
    const r = JSON.parse(out) as { error?: string; end: { sum_received?: { bits_per_second: number } } };
    if (!r.end.sum_received) throw new Error(`iperf3 to ${p.address}: ${r.error ?? 'no result'}`);
    return r.end.sum_received.bits_per_second / 1e9;
  } finally {
    await srv.stop();
  }
}

/** tcp_rr's server mode in the server's namespace, its client in the client's; the client's median, in microseconds. */
async function tcpRr(p: Pair, cpus: Cpus, server: string, client: string, port: string, n: number): Promise<number> {
  const srv = background(p.server, pinned(cpus[0], [TCP_RR, server, port]));
  try {
    await listening(p.server, Number(port));
    const r = await run('nsenter', [`--net=${p.client}`, ...pinned(cpus[1], [TCP_RR, client, p.address, port, String(n)])], { timeoutMs: 120_000 });
    if (r.code !== 0)
      throw new Error(`tcp_rr ${client} ${p.address}:${port} failed (${r.code}): ${r.stderr.trim() || 'no output (timed out?)'}\n${await sockets(p)}`);
    return Number(r.stdout.trim().split(' ')[0]);
  } finally {
    await srv.stop();
  }
}

/** Both sides' TCP sockets with their state and timers: what a hung measurement was waiting for. */
async function sockets(p: Pair): Promise<string> {
  const ss = async (ns: string) => (await run('nsenter', [`--net=${ns}`, 'ss', '-tanoi'])).stdout.trim();
  return `server's sockets:\n${await ss(p.server)}\nclient's sockets:\n${await ss(p.client)}`;
}

/** Median TCP request/response round trip in microseconds (bench/tcp_rr). */
export const latency = (p: Pair, cpus: Cpus, n = 20_000): Promise<number> => tcpRr(p, cpus, 'server', 'client', '7000', n);

/** Microseconds per new connection (connect, a byte each way, close: netperf's TCP_CRR), median of n, to port 7200. */
export const connectionCost = (p: Pair, cpus: Cpus, n = 2000): Promise<number> => tcpRr(p, cpus, 'crr-server', 'crr', '7200', n);

/**
 * The limit on this machine: two namespaces routed through the host over
 * veth pairs, exactly like cilium endpoints (/32 addresses, host routes,
 * a gateway address on the host side) but with no BPF program.
 */
export async function plainVeth(): Promise<{ pair: Pair; cleanup: () => Promise<void> }> {
  const ns = ['bench-vs', 'bench-vc'];
  const addr = ['10.217.0.2', '10.217.0.3'];
  const cleanup = async () => {
    for (const [i, n] of ns.entries()) {
      await run('ip', ['netns', 'del', n]);
      await run('ip', ['link', 'del', `bench-v${i}`]);
    }
  };
  await cleanup();
  for (const [i, n] of ns.entries()) {
    const host = `bench-v${i}`;
    for (const cmd of [
      ['ip', 'netns', 'add', n],
      ['ip', 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n],
      ['ip', 'addr', 'add', '10.217.0.1/32', 'dev', host],
      ['ip', 'link', 'set', host, 'up'],
      ['ip', '-n', n, 'link', 'set', 'lo', 'up'],
      ['ip', '-n', n, 'link', 'set', 'eth0', 'up'],
      ['ip', '-n', n, 'addr', 'add', `${addr[i]}/32`, 'dev', 'eth0'],
      ['ip', '-n', n, 'route', 'add', '10.217.0.1', 'dev', 'eth0'],
      ['ip', '-n', n, 'route', 'add', 'default', 'via', '10.217.0.1'],
      ['ip', 'route', 'replace', `${addr[i]}/32`, 'dev', host],
    ])
      await must(cmd[0]!, cmd.slice(1));
  }
  return { pair: { server: '/run/netns/bench-vs', client: '/run/netns/bench-vc', address: addr[0]! }, cleanup };
}

/** Two containers on a Docker network; their namespaces through their PIDs. */
export async function containerPair(d: TestDockerd, net: string, prefix: string, labels: [string, string] = ['role=server', 'role=client']): Promise<Pair> {
  const names = [`${prefix}-server`, `${prefix}-client`];
  for (const [i, n] of names.entries()) await d.ok(['run', '-d', '--name', n, '--net', net, '-l', labels[i]!, 'bbox:latest', 'sleep', '36000']);
  const pid = async (n: string) => d.ok(['inspect', '-f', '{{.State.Pid}}', n]);
  return {
    server: `/proc/${await pid(names[0]!)}/ns/net`,
    client: `/proc/${await pid(names[1]!)}/ns/net`,
    address: await d.ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, names[0]!]),
  };
}

/** N iptables rules that match nothing, in front of a bridge's forwarded traffic (one chain, removed after). */
export async function iptablesRules(bridge: string, n: number): Promise<() => Promise<void>> {
  const remove = async () => {
    await run('iptables', ['-D', 'FORWARD', '-i', bridge, '-j', 'BENCH-SCALE']);
    await run('iptables', ['-F', 'BENCH-SCALE']);
    await run('iptables', ['-X', 'BENCH-SCALE']);
  };
  await remove();
  const rules = Array.from({ length: n }, (_, i) => `-A BENCH-SCALE -s 100.64.${i >> 8}.${i & 255}/32 -j DROP`);
  await must('iptables-restore', ['--noflush'], { input: Buffer.from(`*filter\n:BENCH-SCALE - [0:0]\n${rules.join('\n')}\nCOMMIT\n`) });
  await must('iptables', ['-I', 'FORWARD', '1', '-i', bridge, '-j', 'BENCH-SCALE']);
  return remove;
}

/** N-1 /32 CIDR prefixes (never addressed: they only fill the maps), for a policy of N peers. */
export function scalePrefixes(n: number): string[] {
  return Array.from({ length: Math.max(0, n - 1) }, (_, i) => `100.64.${i >> 8}.${i & 255}/32`);
}
