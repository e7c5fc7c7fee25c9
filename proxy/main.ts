/**
 * The L7 proxy: its own process (the agent forks it, proxy/supervisor.ts),
 * so that no flood of requests stalls the agent. The endpoint programs hand
 * it the connections of L7-policed ports (bpf/lib/proxy.h); it judges each
 * HTTP request against the destination's rules, answers a denied one 403
 * and forwards an allowed one from the client's own address, marked with
 * the client's identity so that the destination's program admits it.
 */
import { createServer, Agent, IncomingHttpHeaders, IncomingMessage, ServerResponse, request as httpRequest, ClientRequestArgs } from 'http';
import { Socket, isIPv4 } from 'net';
import { Duplex } from 'stream';
import { lookup } from '../policy/resolve';
import { CompiledHttpRule, compileHttpRule, httpRuleMatches } from '../policy/http-match';
import { AccessRecord, ProxyEndpoint, ProxyMessage, ProxySnapshot } from './snapshot';
import { transparentListener, upstreamSocket } from './transparent-socket';

const MARK_MAGIC_FROM_PROXY = 0x0a00;
const ID_WORLD = 2;
const IPPROTO_TCP = 6;

/** What a connection was for: fixed when it is accepted. */
interface Flow {
  src: string;
  srcPort: number;
  srcIdentity: number;
  dst: string;
  dstPort: number;
  endpoint: ProxyEndpoint;
  /** Upstream connections of this client connection, one at a time: the server sees one connection per client connection. */
  upstream: Agent;
}

/** Headers of one hop (RFC 9110 7.6.1): each side of the proxy has its own connection. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const named = (headers.connection ?? '').split(',').map((h) => h.trim().toLowerCase());
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.includes(k) && !named.includes(k)) out[k] = v;
  return out;
}

const unmapped = (a: string) => (a.startsWith('::ffff:') && isIPv4(a.slice(7)) ? a.slice(7) : a);

class Proxy {
  private byAddress = new Map<string, ProxyEndpoint>();
  private readonly compiled = new WeakMap<object, CompiledHttpRule[]>();
  private readonly flows = new WeakMap<Duplex, Flow>();

  update(s: ProxySnapshot): void {
    const m = new Map<string, ProxyEndpoint>();
    for (const ep of s.endpoints) for (const a of ep.addresses) m.set(a, ep);
    this.byAddress = m;
  }

  /** A connection the datapath handed over: its original destination must be a local endpoint, else it is closed. */
  accept(sock: Socket): void {
    const dst = unmapped(sock.localAddress ?? '');
    const src = unmapped(sock.remoteAddress ?? '');
    const endpoint = this.byAddress.get(dst);
    if (!endpoint || !sock.localPort) {
      sock.destroy();
      return;
    }
    const srcIdentity = this.byAddress.get(src)?.identity ?? ID_WORLD;
    const flow: Flow = {
      src,
      srcPort: sock.remotePort ?? 0,
      srcIdentity,
      dst,
      dstPort: sock.localPort,
      endpoint,
      upstream: this.upstreamAgent(src, srcIdentity),
    };
    this.flows.set(sock, flow);
    sock.once('close', () => {
      flow.upstream.destroy();
    });
  }

  private upstreamAgent(src: string, identity: number): Agent {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agent.createConnection = (opts: ClientRequestArgs) => {
      const s = new Socket({ fd: upstreamSocket(src, (identity << 16) | MARK_MAGIC_FROM_PROXY), readable: true, writable: true });
      return s.connect(Number(opts.port), String(opts.host));
    };
    return agent;
  }

  /** The rules the destination's policy gives this client on this port; undefined: L4 allows it all. */
  private rulesFor(f: Flow): CompiledHttpRule[] | undefined | 'denied' {
    if (!f.endpoint.ingressEnforced) return undefined;
    const hit = lookup(f.endpoint.ingress, f.srcIdentity, f.dstPort, IPPROTO_TCP, 'ingress');
    if (!hit) return 'denied';
    if (!hit.http) return undefined;
    let c = this.compiled.get(hit.http);
    if (!c) this.compiled.set(hit.http, (c = hit.http.map(compileHttpRule)));
    return c;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const t0 = process.hrtime.bigint();
    const f = this.flows.get(req.socket);
    if (!f) {
      res.destroy();
      return;
    }
    const rules = this.rulesFor(f);
    const view = { method: req.method ?? '', url: req.url ?? '/', headers: req.headers };
    const allowed = rules !== 'denied' && (rules === undefined || rules.some((r) => httpRuleMatches(r, view)));
    const elapsed = () => Number(process.hrtime.bigint() - t0) / 1e9;
    // One record a request, once its answer is known: the proxy's own time is up to the moment it went upstream.
    const log = (verdict: AccessRecord['verdict'], status: number, proxySeconds: number) => {
      report({
        verdict,
        status,
        method: view.method,
        url: view.url,
        host: req.headers.host ?? '',
        src: f.src,
        srcPort: f.srcPort,
        srcIdentity: f.srcIdentity,
        dst: f.dst,
        dstPort: f.dstPort,
        dstIdentity: f.endpoint.identity,
        endpoint: f.endpoint.id,
        proxySeconds,
      });
    };
    if (!allowed) {
      req.resume();
      res.writeHead(403, { 'content-type': 'text/plain', 'content-length': '14' });
      res.end('Access denied\n');
      log('denied', 403, elapsed());
      return;
    }
    const up = httpRequest({
      host: f.dst,
      port: f.dstPort,
      method: req.method,
      path: req.url,
      headers: endToEnd(req.headers),
      setHost: false,
      agent: f.upstream,
    });
    let sent = 0;
    up.once('socket', () => {
      sent = elapsed();
    });
    up.on('response', (r) => {
      log('forwarded', r.statusCode ?? 0, sent);
      res.writeHead(r.statusCode ?? 502, r.statusMessage, endToEnd(r.headers));
      r.pipe(res);
    });
    up.on('error', (err) => {
      if (!res.headersSent) log('error', 503, sent || elapsed());
      if (res.headersSent) res.destroy(err);
      else {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end(`upstream connect error: ${err.message}\n`);
      }
    });
    req.pipe(up);
  }
}

function send(m: ProxyMessage): void {
  if (process.send) process.send(m);
}

/** Access records go to the agent in batches, at most ten messages a second whatever the request rate. */
const ACCESS_BATCH_MS = 100;
let batch: AccessRecord[] = [];
function report(r: AccessRecord): void {
  if (batch.push(r) > 1) return;
  setTimeout(() => {
    send({ type: 'access', records: batch });
    batch = [];
  }, ACCESS_BATCH_MS);
}

function main(): void {
  const i = process.argv.indexOf('--port');
  const port = Number(process.argv[i + 1]);
  if (i < 0 || !(port > 0 && port < 65536)) {
    process.stderr.write('usage: proxy --port PORT\n');
    process.exit(2);
  }
  const proxy = new Proxy();
  process.on('message', (m: ProxySnapshot) => {
    proxy.update(m);
  });
  // The agent is the proxy's reason to be: it goes with its channel (the datapath then drops, fail closed).
  process.on('disconnect', () => process.exit(0));
  let listening = 0;
  for (const family of [4, 6] as const) {
    const server = createServer({ keepAlive: true }, (req, res) => {
      proxy.handle(req, res);
    });
    server.on('connection', (s: Socket) => {
      proxy.accept(s);
    });
    server.on('clientError', (_err, s: Duplex) => {
      if (s.writable) s.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      else s.destroy();
    });
    server.listen({ fd: transparentListener(family, port) }, () => {
      if (++listening === 2) send({ type: 'ready', port });
    });
  }
}

main();
