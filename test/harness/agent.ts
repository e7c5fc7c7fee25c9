import { spawn, ChildProcess } from 'child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'fs';
import { request } from 'http';
import { basename, join, resolve } from 'path';
import { agentTag } from '../../datapath/endpoint-link';
import { stopProxyOf } from '../../proxy/supervisor';
import { waitFor } from './exec';
import { lxcLinks } from './host';

const AGENT = resolve(__dirname, '../../agent/main.js');

export interface HttpAnswer {
  status: number;
  body: unknown;
}

/** Raw HTTP over a unix socket: what the engine or a hostile client would send. */
export function httpUnix(socketPath: string, method: string, path: string, body?: string | Buffer): Promise<HttpAnswer> {
  return new Promise((resolvePromise, reject) => {
    const headers = body === undefined ? {} : { 'content-length': Buffer.byteLength(body) };
    const req = request({ socketPath, method, path, headers, timeout: 30_000 }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => {
        let parsed: unknown = data;
        try {
          parsed = JSON.parse(data);
        } catch {
          /* keep raw text: the caller asserts on it */
        }
        resolvePromise({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/**
 * A cilium-agent process under test, with its own state dir, API socket and
 * driver name (the plugin socket's file name), so it can run beside one
 * brought up by the README.
 */
export class TestAgent {
  readonly dir = mkdtempSync('/tmp/cilium-agent-');
  readonly apiSocket = join(this.dir, 'api.sock');
  readonly pluginSocket: string;
  private proc?: ChildProcess;

  constructor(
    readonly driver: string,
    private readonly args: string[],
    /** A network namespace (ip netns) to run in. */
    private readonly netns?: string,
  ) {
    this.pluginSocket = `/run/docker/plugins/${driver}.sock`;
  }

  get stateDir(): string {
    return join(this.dir, 'state');
  }

  /** Its own pinned maps, so it never shares enforcement state with another agent. */
  get bpfRoot(): string {
    return `/sys/fs/bpf/${basename(this.dir)}`;
  }

  /** env: added to the agent's environment (e.g. CILIUM_FAILPOINTS for the crash test); extra: flags for this start only. */
  async start(env: Record<string, string> = {}, extra: string[] = []): Promise<void> {
    const log = openSync(join(this.dir, 'agent.out'), 'a');
    const argv = [
      AGENT,
      `--plugin-socket=${this.pluginSocket}`,
      `--api-socket=${this.apiSocket}`,
      `--state-dir=${this.stateDir}`,
      `--bpf-root=${this.bpfRoot}`,
      '--prometheus-serve-addr=',
      // In the machine's own namespace an agent would masquerade through (and hook) the machine's devices:
      // only with devices the test names there.
      ...(this.netns || [...this.args, ...extra].some((a) => a.startsWith('--devices')) ? [] : ['--enable-masquerade=false', '--devices=']),
      ...this.args,
      ...extra,
    ];
    // nsenter switches only the network namespace: /sys (and bpffs in it) stay the host's.
    const [cmd, ...args] = this.netns ? ['nsenter', `--net=/run/netns/${this.netns}`, process.execPath, ...argv] : [process.execPath, ...argv];
    const proc = spawn(cmd, args, { stdio: ['ignore', log, log], env: { ...process.env, ...env } });
    this.proc = proc;
    const died = new Promise<never>((_, reject) =>
      proc.once('exit', (code, signal) => {
        reject(new Error(`agent exited (${code ?? signal}) while starting: ${this.logTail()}`));
      }),
    );
    died.catch(() => undefined); // only start() below cares, and only while it waits
    await Promise.race([
      waitFor('cilium-agent to answer Plugin.Activate', async () => (await this.plugin('Plugin.Activate', '')).status === 200, 20_000),
      died,
    ]);
  }

  /** SIGKILL: no chance to clean up, as in a crash. */
  async kill9(): Promise<void> {
    await this.signal('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  get pid(): number | undefined {
    return this.proc?.exitCode === null && this.proc.signalCode === null ? this.proc.pid : undefined;
  }

  /** Resolves when the agent process ends by itself (a failpoint) or is killed. */
  exited(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise((r) =>
      proc.once('exit', () => {
        r();
      }),
    );
  }

  get tag(): string {
    return agentTag(this.stateDir);
  }

  plugin(method: string, body: string | object): Promise<HttpAnswer> {
    return httpUnix(this.pluginSocket, 'POST', `/${method}`, typeof body === 'string' ? body : JSON.stringify(body));
  }

  /** CreateNetwork over the plugin protocol for a network on the agent's host range, as dockerd sends it; throws unless it is created. */
  async createNetwork(networkId: string, gateway: string): Promise<void> {
    const r = await this.plugin('NetworkDriver.CreateNetwork', {
      NetworkID: networkId,
      Options: {},
      IPv4Data: [{ AddressSpace: 'CiliumLocal', Pool: '0.0.0.0/0', Gateway: `${gateway}/32` }],
      IPv6Data: [],
    });
    if (r.status !== 200) throw new Error(`CreateNetwork ${networkId}: ${r.status} ${JSON.stringify(r.body)}`);
  }

  /** Any API call, its status and body as they come. */
  request(method: string, path: string, body?: string): Promise<HttpAnswer> {
    return httpUnix(this.apiSocket, method, path, body);
  }

  async api<T>(path: string): Promise<T> {
    const a = await httpUnix(this.apiSocket, 'GET', path);
    if (a.status !== 200) throw new Error(`GET ${path}: ${a.status} ${JSON.stringify(a.body)}`);
    return a.body as T;
  }

  /** Waits until the veths of deleted endpoints are gone: the agent removes them after answering. */
  async settled(): Promise<void> {
    await waitFor(
      "deleted endpoints' veths to be removed",
      async () => (await this.api<{ linksPendingRemoval: number }>('/v1/healthz')).linksPendingRemoval === 0,
      10_000,
      20,
    );
  }

  /** What "changes nothing" compares: the answers of these API paths and the host's endpoint veths, once settled. */
  async stateDump(paths: string[]): Promise<string> {
    await this.settled();
    const answers: Record<string, unknown> = {};
    for (const p of paths) answers[p] = await this.api(p);
    return JSON.stringify({ ...answers, links: (await lxcLinks()).length });
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(join(this.dir, 'agent.out'), 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  async destroy(): Promise<void> {
    await this.stop();
    // The L7 proxy outlives its agent, for a restarted one to adopt: it goes with the test's agent.
    await stopProxyOf(this.stateDir);
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.bpfRoot, { recursive: true, force: true });
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(sig);
    await exited;
  }
}
