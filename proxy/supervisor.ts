import { ChildProcess, fork } from 'child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync } from 'fs';
import { Socket, connect } from 'net';
import { join } from 'path';
import { Logger } from 'winston';
import { addProxyRouting } from '../datapath/rtnl';
import { receive, send } from './control';
import { AccessRecord, AgentMessage, ProxyMessage, ProxySnapshot, fromTuple } from './snapshot';

const RESTART_DELAY_MS = 1000;
const START_TIMEOUT_MS = 10_000;
const HELLO_TIMEOUT_MS = 2000;
const STOP_TIMEOUT_MS = 5000;
const MAIN = join(__dirname, 'main.js');

/** Which build of the proxy runs: its module's mtime, which every build rewrites. */
const build = () => String(statSync(MAIN).mtimeMs);

const paths = (stateDir: string) => ({ control: join(stateDir, 'proxy.sock'), pid: join(stateDir, 'proxy.pid'), log: join(stateDir, 'proxy.log') });

const gone = (pid: number) => {
  try {
    // a zombie (its parent, an agent that died, not waiting for it) is gone too
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
};

/** Ends the proxy an agent's state dir names, if it is still one: SIGTERM, then SIGKILL after 5 s. */
export async function stopProxyOf(stateDir: string): Promise<void> {
  const file = paths(stateDir).pid;
  const pid = existsSync(file) ? Number(readFileSync(file, 'utf8')) : 0;
  if (!(pid > 0) || gone(pid) || !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(MAIN)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (!gone(pid)) {
    if (Date.now() > deadline) process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Channel {
  sock: Socket;
  hello: Extract<ProxyMessage, { type: 'hello' }>;
}

/**
 * The agent's side of the L7 proxy: installs the policy routing that takes
 * marked packets to it, runs it as a process of its own that outlives the
 * agent (a restarted agent finds it on its control socket and adopts it, so
 * enforcement goes on meanwhile), keeps it told of the current policy and
 * starts another if it dies. While none runs the datapath finds no listener
 * and drops L7-policed traffic with its reason.
 */
export class ProxySupervisor {
  private channel: Channel | undefined;
  private snapshot?: ProxySnapshot;
  private stopping = false;
  private restartTimer?: NodeJS.Timeout;
  private readonly files: ReturnType<typeof paths>;

  constructor(
    readonly port: number,
    private readonly stateDir: string,
    private readonly log: Logger,
    private readonly onAccess: (records: AccessRecord[]) => void,
  ) {
    this.files = paths(stateDir);
  }

  start(): Promise<void> {
    return this.adoptOrLaunch();
  }

  /** The latest policy, sent now and again to every proxy adopted or started. */
  update(s: ProxySnapshot): void {
    this.snapshot = s;
    if (this.channel) send(this.channel.sock, { type: 'policy', snapshot: s } satisfies AgentMessage);
  }

  /** The agent stopping: its proxy goes on with the policy it has, for the next agent to adopt (it ends by itself if none comes). */
  stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.channel?.sock.end();
    return Promise.resolve();
  }

  private async adoptOrLaunch(): Promise<void> {
    await addProxyRouting(4);
    await addProxyRouting(6);
    const found = await this.connect().catch(() => undefined);
    if (found && found.hello.build === build() && found.hello.port === this.port) {
      this.attach(found, 'adopted');
      return;
    }
    if (found) {
      this.log.info(`replacing the L7 proxy (pid ${found.hello.pid}): ${found.hello.port === this.port ? 'an older build' : `port ${found.hello.port}`}`);
      found.sock.destroy();
    }
    // one that no longer answers would still hold the port
    await stopProxyOf(this.stateDir);
    await this.launch();
  }

  private async launch(): Promise<void> {
    const out = openSync(this.files.log, 'a');
    let child: ChildProcess;
    try {
      child = fork(join(__dirname, 'main.js'), ['--port', String(this.port), '--control', this.files.control, '--build', build()], {
        detached: true,
        stdio: ['ignore', out, out, 'ipc'],
      });
    } finally {
      closeSync(out);
    }
    // Not a child that ends with the agent: its channel is the control socket.
    child.disconnect();
    child.unref();
    if (child.pid) writeFileSync(this.files.pid, String(child.pid));
    let exited: string | undefined;
    child.once('exit', (code, signal) => {
      exited = String(code ?? signal);
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const found = await this.connect().catch(() => undefined);
      if (found) {
        this.attach(found, 'started');
        return;
      }
      const tail = () => (existsSync(this.files.log) ? readFileSync(this.files.log, 'utf8').trim().split('\n').slice(-3).join(' | ') : '');
      if (exited !== undefined) throw new Error(`L7 proxy exited (${exited}) while starting: ${tail()}`);
      if (Date.now() > deadline) throw new Error(`L7 proxy did not start within ${START_TIMEOUT_MS / 1000} s: ${tail()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The proxy's control socket, and its hello. */
  private connect(): Promise<Channel> {
    return new Promise((resolve, reject) => {
      const sock = connect(this.files.control);
      const fail = (err: Error) => {
        sock.destroy();
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new Error('no hello from the L7 proxy'));
      }, HELLO_TIMEOUT_MS);
      sock.once('error', fail);
      let hello: Channel['hello'] | undefined;
      receive(sock, (msg) => {
        const m = msg as ProxyMessage;
        if (hello) {
          if (m.type === 'access') this.onAccess(m.records.map(fromTuple));
        } else if (m.type === 'hello') {
          clearTimeout(timer);
          sock.removeListener('error', fail);
          resolve({ sock, hello: (hello = m) });
        }
      });
    });
  }

  private restartSoon(): void {
    this.restartTimer = setTimeout(() => {
      this.adoptOrLaunch().catch((err: unknown) => {
        this.log.error(`${(err as Error).message}; trying again in ${RESTART_DELAY_MS} ms`);
        if (!this.stopping) this.restartSoon();
      });
    }, RESTART_DELAY_MS);
  }

  private attach(c: Channel, how: 'adopted' | 'started'): void {
    this.channel = c;
    c.sock.on('error', () => c.sock.destroy());
    c.sock.once('close', () => {
      if (this.channel === c) this.channel = undefined;
      if (this.stopping) return;
      this.log.error(`L7 proxy (pid ${c.hello.pid}) gone; starting one in ${RESTART_DELAY_MS} ms`);
      this.restartSoon();
    });
    if (this.snapshot) send(c.sock, { type: 'policy', snapshot: this.snapshot } satisfies AgentMessage);
    this.log.info(`L7 proxy ${how}: listening on port ${c.hello.port} (pid ${c.hello.pid})`);
  }
}
