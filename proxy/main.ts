/**
 * The L7 proxy: its own process (the agent forks it, proxy/supervisor.ts),
 * so that no flood of requests stalls the agent. The endpoint programs hand
 * it the connections of L7-policed ports (bpf/lib/proxy.h); it tells HTTP/2
 * from HTTP/1.x by the connection's first bytes, judges each request against
 * the destination's rules (judge.ts), answers a denied one and forwards an
 * allowed one from the client's own address, marked with the client's
 * identity so that the destination's program admits it.
 */
import { Server, Socket } from 'net';
import { batchedReport } from './access-log';
import { Http1 } from './http1';
import { Http2 } from './http2';
import { Flow, Judge } from './judge';
import { ProxyMessage, ProxySnapshot } from './snapshot';
import { transparentListener } from './transparent-socket';

/** What an HTTP/2 client sends first (RFC 9113 3.4); gRPC and h2c prior knowledge open so. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** A client that sends nothing this long after connecting is let go. */
const FIRST_BYTES_TIMEOUT_MS = 30_000;

/** Reads until the first bytes tell the protocol, puts them back and hands the paused socket on. */
function sniff(sock: Socket, then: (h2: boolean) => void): void {
  let seen = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, H2_PREFACE.length);
    const h2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (h2 && n < H2_PREFACE.length) return;
    sock.removeListener('data', onData);
    sock.setTimeout(0);
    sock.pause();
    sock.unshift(seen);
    then(h2);
  };
  sock.on('data', onData);
  sock.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => sock.destroy());
}

function send(m: ProxyMessage): void {
  if (process.send) process.send(m);
}

function main(): void {
  const i = process.argv.indexOf('--port');
  const port = Number(process.argv[i + 1]);
  if (i < 0 || !(port > 0 && port < 65536)) {
    process.stderr.write('usage: proxy --port PORT\n');
    process.exit(2);
  }
  const judge = new Judge();
  const report = batchedReport(send);
  const h1 = new Http1(judge, report);
  const h2 = new Http2(judge, report);
  process.on('message', (m: ProxySnapshot) => {
    judge.update(m);
  });
  // The agent is the proxy's reason to be: it goes with its channel (the datapath then drops, fail closed).
  process.on('disconnect', () => process.exit(0));
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
    new Server(accept).listen({ fd: transparentListener(family, port) }, () => {
      if (++listening === 2) send({ type: 'ready', port });
    });
  }
}

main();
