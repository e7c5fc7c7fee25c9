/**
 * Real HTTP/2, gRPC and WebSocket peers for the L7 tests, run in a
 * container's network namespace (nsenter -n): the busybox image has no
 * node. `serve` answers on 8080 (HTTP/1.1 and WebSocket echo, the ws
 * library), 8081 (h2c, Node's http2) and 50051 (gRPC, @grpc/grpc-js) and
 * prints one line per request with the client's address; the client
 * commands print one JSON line with what they got.
 */
import { loadPackageDefinition, Server, ServerCredentials, credentials, status, ServiceError, ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { createServer as createH1, request as httpRequest } from 'http';
import { connect as h2connect, createServer as createH2 } from 'http2';
import { join } from 'path';
import { WebSocket, WebSocketServer } from 'ws';

export const PORTS = { http1: 8080, h2c: 8081, grpc: 50051 } as const;

interface Message {
  text: string;
}
type Unary = (m: Message, cb: (err: ServiceError | null, r?: Message) => void) => void;
interface EchoClient {
  Say: Unary;
  Secret: Unary;
  close(): void;
}
interface EchoPackage {
  demo: { Echo: { new (address: string, creds: ReturnType<typeof credentials.createInsecure>): EchoClient; service: never } };
}

const echo = () => loadPackageDefinition(loadSync(join(__dirname, '../../../test/harness/echo.proto'))) as unknown as EchoPackage;
const log = (...parts: Array<string | number | undefined>) => process.stdout.write(`${parts.join(' ')}\n`);
const result = (r: object) => process.stdout.write(`${JSON.stringify(r)}\n`);

async function serve(): Promise<void> {
  const h1 = createH1((req, res) => {
    log('h1', req.socket.remoteAddress, req.url);
    let bytes = 0;
    req.on('data', (d: Buffer) => (bytes += d.length));
    req.on('end', () => res.end(req.method === 'POST' ? `h1 ${req.url} ${bytes} bytes\n` : `h1 ${req.url}\n`));
  });
  const wss = new WebSocketServer({ server: h1 });
  wss.on('connection', (ws, req) => {
    log('ws', req.socket.remoteAddress, req.url);
    ws.on('message', (data: Buffer) => {
      ws.send(`echo ${data.toString()}`);
    });
  });
  const h2 = createH2();
  h2.on('stream', (stream, headers) => {
    log('h2', stream.session?.socket.remoteAddress, headers[':path']);
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end(`h2 ${headers[':path']}\n`);
  });
  const grpc = new Server();
  const answer = (name: string) => (call: ServerUnaryCall<Message, Message>, cb: sendUnaryData<Message>) => {
    log('grpc', call.getPeer(), `/demo.Echo/${name}`);
    cb(null, { text: `${name}: ${call.request.text}` });
  };
  grpc.addService(echo().demo.Echo.service, { Say: answer('Say'), Secret: answer('Secret') });
  await Promise.all([
    new Promise<void>((r) => h1.listen(PORTS.http1, '::', r)),
    new Promise<void>((r) => h2.listen(PORTS.h2c, '::', r)),
    new Promise<void>((resolve, reject) => {
      grpc.bindAsync(`[::]:${PORTS.grpc}`, ServerCredentials.createInsecure(), (err) => {
        if (err) reject(err);
        else resolve();
      });
    }),
  ]);
  log('ready');
}

/** One WebSocket exchange: the echo of the message, or the status the upgrade got. */
function wsClient(url: string, message: string): void {
  const ws = new WebSocket(url);
  ws.on('open', () => {
    ws.send(message);
  });
  ws.on('message', (data: Buffer) => {
    result({ echo: data.toString() });
    ws.close();
  });
  ws.on('unexpected-response', (_req, res) => {
    result({ status: res.statusCode });
    process.exit(0);
  });
  ws.on('error', (err: Error) => {
    result({ error: err.message });
  });
}

/** One h2c request with prior knowledge: the status and body. */
function h2Client(origin: string, path: string): void {
  const s = h2connect(origin);
  s.on('error', (err: Error) => {
    result({ error: err.message });
  });
  const r = s.request({ ':path': path });
  let status = 0;
  let body = '';
  r.on('response', (h) => (status = Number(h[':status'])));
  r.on('data', (d: Buffer) => (body += String(d)));
  r.on('end', () => {
    result({ status, body });
    s.close();
  });
  r.end();
}

/** A POST of KIB kibibytes in 1 KiB chunks (chunked transfer coding): the status and body. */
function postClient(url: string, kib: number): void {
  const req = httpRequest(url, { method: 'POST' }, (res) => {
    let body = '';
    res.on('data', (d: Buffer) => (body += d.toString()));
    res.on('end', () => {
      result({ status: res.statusCode, body });
    });
  });
  req.on('error', (err) => {
    result({ error: err.message });
  });
  const chunk = Buffer.alloc(1024, 'x');
  for (let i = 0; i < kib; i++) req.write(chunk);
  req.end();
}

/** One unary gRPC call: its reply, or the status code and message it failed with. */
function grpcClient(address: string, method: 'Say' | 'Secret'): void {
  const c = new (echo().demo.Echo)(address, credentials.createInsecure());
  c[method]({ text: 'hi' }, (err, reply) => {
    result(err ? { code: err.code, codeName: status[err.code], details: err.details } : { reply: reply?.text });
    c.close();
  });
}

function main(): void {
  const [cmd, a, b] = process.argv.slice(2);
  if (cmd === 'serve') void serve();
  else if (cmd === 'ws' && a && b) wsClient(a, b);
  else if (cmd === 'h2' && a && b) h2Client(a, b);
  else if (cmd === 'post' && a && Number(b) > 0) postClient(a, Number(b));
  else if (cmd === 'grpc' && a && (b === 'Say' || b === 'Secret')) grpcClient(a, b);
  else {
    process.stderr.write('usage: l7-peers serve | ws URL MESSAGE | h2 ORIGIN PATH | post URL KIB | grpc HOST:PORT Say|Secret\n');
    process.exit(2);
  }
}

if (require.main === module) main();
