/**
 * The L7 proxy: its own process (the agent forks it, proxy/supervisor.ts),
 * so that no flood of requests stalls the agent. The endpoint programs hand
 * it the connections of L7-policed ports (bpf/lib/proxy.h); it tells HTTP/2
 * from HTTP/1.x by the connection's first bytes, judges each request against
 * the destination's rules (judge.ts), answers a denied one and forwards an
 * allowed one from the client's own address, marked with the client's
 * identity so that the destination's program admits it.
 */
import { chmodSync, readFileSync, readdirSync, rmSync } from 'fs';
import { Server, Socket } from 'net';
import { removeProxyRouting } from '../datapath/rtnl';
import { batchedReport } from './access-log';
import { receive, send } from './control';
import { Http1 } from './http1';
import { Http2 } from './http2';
import { Flow, Judge } from './judge';
import { AgentMessage, ProxyMessage } from './snapshot';
import { transparentListener } from './transparent-socket';

/** What an HTTP/2 client sends first (RFC 9113 3.4); gRPC and h2c prior knowledge open so. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** A client that sends nothing this long after connecting is let go. */
const FIRST_BYTES_TIMEOUT_MS = 30_000;
/** How long the proxy waits, with the policy it has, for an agent (a restarting one) to connect. */
const ORPHAN_GRACE_MS = 60_000;

/** Reads until the first bytes tell the protocol, puts them back and hands the paused socket on. */
function sniff(sock: Socket, then: (h2: boolean) => void): void {
  let seen = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, H2_PREFACE.length);
    const h2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (h2 && n < H2_PREFACE.length) return;
    sock.removeListener('data', onData);
    sock.removeListener('timeout', silent);
    sock.setTimeout(0);
    sock.pause();
    sock.unshift(seen);
    then(h2);
  };
  // Removed once the protocol is known: the HTTP servers time their sockets themselves.
  const silent = () => sock.destroy();
  sock.on('data', onData);
  sock.on('timeout', silent);
  sock.setTimeout(FIRST_BYTES_TIMEOUT_MS);
}

function flag(name: string): string {
  const i = process.argv.indexOf(name);
  const v = i < 0 ? undefined : process.argv[i + 1];
  if (v === undefined) {
    process.stderr.write('usage: proxy --port PORT --control SOCKET --build ID\n');
    process.exit(2);
  }
  return v;
}

/**
 * The one agent it reports to: the newest to connect. While none is
 * connected it goes on judging with the last policy it was given (its
 * access records are not kept), and ends if none comes within the grace.
 */
class AgentLink {
  private agent: Socket | undefined;
  private orphaned?: NodeJS.Timeout;

  constructor(
    private readonly hello: ProxyMessage,
    private readonly onPolicy: (m: AgentMessage) => void,
    private readonly onOrphaned: () => void,
  ) {
    this.orphan();
  }

  accept(sock: Socket): void {
    this.agent?.destroy();
    this.agent = sock;
    clearTimeout(this.orphaned);
    sock.on('error', () => sock.destroy());
    sock.once('close', () => {
      if (this.agent !== sock) return;
      this.agent = undefined;
      this.orphan();
    });
    receive(sock, (m) => {
      this.onPolicy(m as AgentMessage);
    });
    send(sock, this.hello);
  }

  send(m: ProxyMessage): void {
    if (this.agent) send(this.agent, m);
  }

  private orphan(): void {
    this.orphaned = setTimeout(this.onOrphaned, ORPHAN_GRACE_MS);
  }
}

/** Another agent's proxy on this host: the policy routing is one for all of them. */
function othersRunning(): boolean {
  return readdirSync('/proc').some((pid) => {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) return false;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(__filename);
    } catch {
      return false;
    }
  });
}

async function exit(control: string): Promise<never> {
  rmSync(control, { force: true });
  // The last proxy out removes the routing that takes marked packets to a listener.
  if (!othersRunning()) await Promise.all([removeProxyRouting(4), removeProxyRouting(6)]).catch(() => undefined);
  process.exit(0);
}

function main(): void {
  const port = Number(flag('--port'));
  const control = flag('--control');
  const build = flag('--build');
  if (!(port > 0 && port < 65536)) {
    process.stderr.write(`proxy: --port must be a port number, got ${port}\n`);
    process.exit(2);
  }
  const judge = new Judge();
  const link = new AgentLink(
    { type: 'hello', pid: process.pid, port, build },
    (m) => {
      judge.update(m.snapshot);
    },
    () => void exit(control),
  );
  const report = batchedReport((m) => {
    link.send(m);
  });
  const h1 = new Http1(judge, report);
  const h2 = new Http2(judge, report);
  process.on('SIGTERM', () => void exit(control));
  const accept = (sock: Socket) => {
    sock.on('error', () => sock.destroy());
    // A connection whose original destination is no local endpoint is closed.
    const flow: Flow | undefined = judge.flowOf(sock);
    if (!flow) {
      sock.destroy();
      return;
    }
    sniff(sock, (isH2) => {
      if (isH2) h2.adopt(sock, flow);
      else h1.adopt(sock, flow);
    });
  };
  let listening = 0;
  for (const family of [4, 6] as const) {
    // Half-open: a client may end its side after its last request and still read the answers.
    new Server({ allowHalfOpen: true }, accept).listen({ fd: transparentListener(family, port) }, () => {
      if (++listening < 2) return;
      // Agents find it on its control socket once it can serve: a stale socket file is its own earlier one.
      rmSync(control, { force: true });
      new Server((sock) => {
        link.accept(sock);
      }).listen(control, () => {
        chmodSync(control, 0o600);
      });
    });
  }
}

main();
