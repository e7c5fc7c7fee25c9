import { ChildProcess, spawn } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { httpUnix } from '../test/harness/agent';
import { TestDockerd } from '../test/harness/dockerd';
import { must, run, waitFor } from '../test/harness/exec';
import { containerPair } from './datapath';

/** The origin's ports: 8000 with an L4 rule only, 8001 with an HTTP rule (through the proxy). */
export const L7_PORTS = { direct: 8000, proxied: 8001, nginx: 8002 } as const;

/** The rules of this section: the client may reach the origin on both ports, and the host (nginx) on the direct one. */
export const l7Rules = [
  {
    labels: [{ key: 'name', value: 'bench-l7' }],
    endpointSelector: { matchLabels: { role: 'l7-server' } },
    ingress: [
      {
        fromEndpoints: [{ matchLabels: { role: 'l7-client' } }],
        toPorts: [
          { ports: [{ port: String(L7_PORTS.direct), protocol: 'TCP' }] },
          { ports: [{ port: String(L7_PORTS.proxied), protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/.*' }] } },
        ],
      },
      { fromEntities: ['host'], toPorts: [{ ports: [{ port: String(L7_PORTS.direct), protocol: 'TCP' }] }] },
    ],
  },
];

/** What wrk reports of one run. */
export interface WrkResult {
  requests: number;
  rps: number;
  p50us: number;
  p99us: number;
  /** Socket errors and non-2xx/3xx answers: a request that did not get through. */
  failed: number;
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1000, s: 1e6 };

export function parseWrk(out: string): WrkResult {
  const lat = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)$`, 'm').exec(out);
    if (!m) throw new Error(`wrk printed no ${p}th percentile:\n${out}`);
    return Number(m[1]) * UNIT_US[m[2]!]!;
  };
  const requests = /^\s+(\d+) requests in /m.exec(out);
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  if (!requests || !rps) throw new Error(`wrk printed no totals:\n${out}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const failed = (sock ? sock.slice(1).reduce((a, x) => a + Number(x), 0) : 0) + Number(non2xx?.[1] ?? 0);
  return { requests: Number(requests[1]), rps: Number(rps[1]), p50us: lat('50'), p99us: lat('99'), failed };
}

/** An nginx of its own (one process, no daemon), in a namespace, pinned to a CPU. */
function nginx(dir: string, name: string, netns: string, cpu: number, server: string): { proc: ChildProcess; stop: () => Promise<void> } {
  const conf = join(dir, `${name}.conf`);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${name}-${t};`).join(' ');
  writeFileSync(
    conf,
    `daemon off; master_process off; pid ${dir}/${name}.pid; error_log ${dir}/${name}.err warn;
events { worker_connections 4096; }
http { access_log off; ${temp} keepalive_requests 1000000;
${server}
}
`,
  );
  const proc = spawn('nsenter', [`--net=${netns}`, 'taskset', '-c', String(cpu), 'nginx', '-p', dir, '-c', conf], { stdio: 'ignore' });
  const done = new Promise<void>((r) => {
    proc.once('exit', () => {
      r();
    });
  });
  return {
    proc,
    stop: async () => {
      proc.kill();
      await done;
    },
  };
}

export interface L7Setup {
  /** wrk's namespace (the client container's). */
  client: string;
  urls: Record<'direct' | 'proxy' | 'nginx', string>;
  cleanup: () => Promise<void>;
}

/**
 * An origin (nginx answering a short 200) in a container, a client
 * container for wrk, and nginx as a reverse proxy on the host, in the
 * proxy's place; ours and nginx pinned to the same CPU (the same core
 * budget), wrk and the origin to the other.
 */
export async function l7Setup(d: TestDockerd, net: string, proxy: { pid: number; log: string }, cpus: { load: number; proxy: number }): Promise<L7Setup> {
  const proxyLog = () => (existsSync(proxy.log) ? readFileSync(proxy.log, 'utf8').trim().split('\n').slice(-5).join(' | ') : 'none');
  const dir = mkdtempSync('/tmp/bench-l7-');
  const undo: Array<() => unknown> = [
    () => {
      rmSync(dir, { recursive: true, force: true });
    },
  ];
  const cleanup = async () => {
    for (const u of undo.reverse()) await u();
  };
  try {
    const pair = await containerPair(d, net, 'l7', ['role=l7-server', 'role=l7-client']);
    undo.push(() => d.docker(['rm', '-f', 'l7-server', 'l7-client']));
    const origin = nginx(
      dir,
      'origin',
      pair.server,
      cpus.load,
      `server { listen ${L7_PORTS.direct} backlog=4096; listen ${L7_PORTS.proxied} backlog=4096; location / { return 200 "ok\\n"; } }`,
    );
    undo.push(origin.stop);
    // The host address the client reaches the host by: its default gateway, which the agent puts on the host.
    const gw = /default via (\S+)/.exec(await must('nsenter', [`--net=${pair.client}`, 'ip', '-4', 'route', 'show', 'default']))?.[1];
    if (!gw) throw new Error('the client container has no default route');
    const rp = nginx(
      dir,
      'reverse-proxy',
      `/proc/${process.pid}/ns/net`,
      cpus.proxy,
      `upstream origin { server ${pair.address}:${L7_PORTS.direct}; keepalive 64; }
server { listen ${gw}:${L7_PORTS.nginx} backlog=4096; location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } }`,
    );
    undo.push(rp.stop);
    await must('taskset', ['-a', '-c', '-p', String(cpus.proxy), String(proxy.pid)]);
    const urls = {
      direct: `http://${pair.address}:${L7_PORTS.direct}/`,
      proxy: `http://${pair.address}:${L7_PORTS.proxied}/`,
      nginx: `http://${gw}:${L7_PORTS.nginx}/`,
    };
    for (const u of Object.values(urls)) {
      let last = '';
      const answered = async () => {
        const r = await run('nsenter', [`--net=${pair.client}`, 'curl', '-sS', '--max-time', '2', u]);
        last = `curl exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`;
        return r.stdout === 'ok\n';
      };
      await waitFor(`${u} to answer`, answered, 20_000, 200).catch((err: unknown) => {
        throw new Error(`${(err as Error).message} (${last}; the proxy's log: ${proxyLog()})`);
      });
    }
    return { client: pair.client, urls, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** One wrk run from the client's namespace, on the load CPU. */
export async function wrk(s: L7Setup, url: string, cpu: number, connections: number, seconds: number): Promise<WrkResult> {
  const out = await must('nsenter', [`--net=${s.client}`, 'taskset', '-c', String(cpu), 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', url], {
    timeoutMs: (seconds + 30) * 1000,
  });
  return parseWrk(out);
}

/** The agent's API answer times (ms) while fn runs: its endpoint list (`cilium endpoint list`), every 100 ms. */
export async function apiLatencyDuring<T>(apiSocket: string, fn: () => Promise<T>): Promise<{ result: T; ms: number[] }> {
  const ms: number[] = [];
  const flooding = { on: true };
  const poll = (async () => {
    while (flooding.on) {
      const t0 = process.hrtime.bigint();
      const a = await httpUnix(apiSocket, 'GET', '/v1/endpoint');
      if (a.status !== 200) throw new Error(`the agent's API answered ${a.status} during the flood`);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    return { result: await fn(), ms };
  } finally {
    flooding.on = false;
    await poll;
  }
}
