import { ChildProcess, fork } from 'child_process';
import { join } from 'path';
import { Logger } from 'winston';
import { addProxyRouting, removeProxyRouting } from '../datapath/rtnl';
import { AccessRecord, ProxyMessage, ProxySnapshot } from './snapshot';

const RESTART_DELAY_MS = 1000;
const START_TIMEOUT_MS = 10_000;

/**
 * The agent's side of the L7 proxy: installs the policy routing that takes
 * marked packets to it, runs it as a child process, keeps it told of the
 * current policy and restarts it if it dies. While it is down the datapath
 * finds no listener and drops L7-policed traffic with its reason.
 */
export class ProxySupervisor {
  private child: ChildProcess | undefined;
  private snapshot?: ProxySnapshot;
  private stopping = false;
  private restartTimer?: NodeJS.Timeout;

  constructor(
    readonly port: number,
    private readonly log: Logger,
    private readonly onAccess: (r: AccessRecord) => void,
  ) {}

  async start(): Promise<void> {
    await addProxyRouting(4);
    await addProxyRouting(6);
    await this.launch();
  }

  /** The latest policy, sent now and again to every restarted proxy. */
  update(s: ProxySnapshot): void {
    this.snapshot = s;
    this.child?.send(s);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await exited;
    }
    await removeProxyRouting(4);
    await removeProxyRouting(6);
  }

  private launch(): Promise<void> {
    const child = fork(join(__dirname, 'main.js'), ['--port', String(this.port)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`L7 proxy did not start within ${START_TIMEOUT_MS / 1000} s: ${stderr.trim()}`));
      }, START_TIMEOUT_MS);
      child.on('message', (m: ProxyMessage) => {
        if (m.type === 'ready') {
          clearTimeout(timer);
          if (this.snapshot) child.send(this.snapshot);
          this.log.info(`L7 proxy listening on port ${m.port} (pid ${child.pid})`);
          resolve();
        } else for (const r of m.records) this.onAccess(r);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.child === child) this.child = undefined;
        reject(new Error(`L7 proxy exited (${code ?? signal}) while starting: ${stderr.trim()}`));
        if (this.stopping) return;
        this.log.error(`L7 proxy exited (${code ?? signal}): ${stderr.trim().split('\n').slice(-3).join(' | ')}; restarting in ${RESTART_DELAY_MS} ms`);
        this.restartTimer = setTimeout(() => {
          this.launch().catch((err: unknown) => this.log.error((err as Error).message));
        }, RESTART_DELAY_MS);
      });
    });
  }
}
