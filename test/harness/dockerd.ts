import { spawn, ChildProcess } from 'child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'fs';
import { join, resolve } from 'path';
import { Result, must, run, waitFor } from './exec';

export interface DockerdOptions {
  /**
   * Run with iptables on (NAT and FORWARD rules for its bridge networks), as
   * every real Docker host does. Only inside a network namespace of the
   * test's own (netns), so the machine's rules are never touched.
   */
  iptables?: boolean;
  /** A network namespace (ip netns) to run in. */
  netns?: string;
}

/**
 * A private dockerd: own data root, exec root, pid file and socket, and
 * either no iptables or its own network namespace, so it never touches the
 * machine's own Docker.
 */
export class TestDockerd {
  readonly dir: string;
  readonly socket: string;
  private proc?: ChildProcess;

  constructor(
    readonly extraArgs: string[] = ['--bridge=none'],
    readonly opts: DockerdOptions = {},
  ) {
    if (opts.iptables && !opts.netns) throw new Error('a test dockerd with iptables on must run in a network namespace of its own');
    this.dir = mkdtempSync('/tmp/cilium-dockerd-');
    this.socket = join(this.dir, 'docker.sock');
  }

  get host(): string {
    return `unix://${this.socket}`;
  }

  get execRoot(): string {
    return join(this.dir, 'exec');
  }

  async start(): Promise<void> {
    const log = openSync(join(this.dir, 'dockerd.log'), 'a');
    // nsenter, not ip netns exec: that remounts /sys, and with it the cgroup mounts dockerd needs.
    const [cmd, ...prefix] = this.opts.netns ? ['nsenter', `--net=/run/netns/${this.opts.netns}`, 'dockerd'] : ['dockerd'];
    this.proc = spawn(
      cmd,
      [
        ...prefix,
        `--iptables=${this.opts.iptables ? 'true' : 'false'}`,
        '--ip6tables=false',
        `--data-root=${join(this.dir, 'data')}`,
        `--exec-root=${this.execRoot}`,
        `--pidfile=${join(this.dir, 'dockerd.pid')}`,
        `-H`,
        this.host,
        '--log-level=warn',
        ...this.extraArgs,
      ],
      { stdio: ['ignore', log, log] },
    );
    await waitFor('dockerd to answer', async () => (await this.docker(['version', '--format', '{{.Server.Version}}'])).code === 0, 60_000, 200).catch(
      (err: unknown) => {
        throw new Error(`${(err as Error).message}\n${this.logTail()}`);
      },
    );
  }

  docker(args: string[], timeoutMs = 90_000): Promise<Result> {
    return run('docker', ['-H', this.host, ...args], { timeoutMs });
  }

  /** docker ... that must succeed; returns trimmed stdout. */
  async ok(args: string[], timeoutMs = 90_000): Promise<string> {
    return (await must('docker', ['-H', this.host, ...args], { timeoutMs })).trim();
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(join(this.dir, 'dockerd.log'), 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    // Read again after the wait: the process may have exited meanwhile.
    if ((proc.exitCode as number | null) === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  }

  /** Stops and removes all its state, unmounting what a hard stop may have left mounted. */
  async destroy(): Promise<void> {
    await this.stop();
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(this.dir))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) await run('umount', ['-l', m]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The offline test image, built by the same script the README's bring-up uses. */
export async function buildBusyboxImage(d: TestDockerd, tag = 'bbox:latest'): Promise<void> {
  await must('env', [`DOCKER_HOST=${d.host}`, 'bash', resolve(__dirname, '../../../scripts/build-image.sh'), tag], { timeoutMs: 120_000 });
}
