import { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse, createServer, request as httpRequest } from 'http';
import { Socket, isIPv6 } from 'net';
import { Duplex } from 'stream';
import { Client } from 'undici';
import { Report, RequestRecord } from './access-log';
import { Flow, Judge, connectUpstream } from './judge';

/**
 * Headers of one hop (RFC 9110 7.6.1): each side of the proxy has its own
 * connection. Expect too: this side's server has answered 100-continue.
 */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect'];

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const named = (headers.connection ?? '').split(',').map((h) => h.trim().toLowerCase());
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.includes(k) && !named.includes(k)) out[k] = v;
  return out;
}

const DENIED_BODY = 'Access denied\n';

interface Connection {
  flow: Flow;
  /** This client connection's own upstream connection (undici: Node's http client costs twice its time per request): the server sees one connection per client connection. */
  upstream?: Client;
}

const hasBody = (req: IncomingMessage) => req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';

/**
 * HTTP/1.x, parsed by Node's own server (llhttp): every request of a
 * keep-alive or pipelined connection is judged on its own; a WebSocket
 * upgrade is judged as its request and then spliced through.
 */
export class Http1 {
  private readonly server: Server;
  private readonly conns = new WeakMap<Duplex, Connection>();

  constructor(
    private readonly judge: Judge,
    private readonly report: Report,
  ) {
    this.server = createServer({ keepAlive: true }, (req, res) => {
      this.request(req, res);
    });
    this.server.on('upgrade', (req: IncomingMessage, sock: Duplex, head: Buffer) => {
      this.upgrade(req, sock, head);
    });
    this.server.on('clientError', (_err, s: Duplex) => {
      if (s.writable) s.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      else s.destroy();
    });
  }

  /** A client connection whose first bytes (put back on it) are not HTTP/2's preface. */
  adopt(sock: Socket, flow: Flow): void {
    const c: Connection = { flow };
    this.conns.set(sock, c);
    sock.once('close', () => {
      void c.upstream?.destroy();
    });
    this.server.emit('connection', sock);
    sock.resume();
  }

  private upstreamOf(c: Connection): Client {
    if (c.upstream && !c.upstream.closed && !c.upstream.destroyed) return c.upstream;
    const f = c.flow;
    const origin = `http://${isIPv6(f.dst) ? `[${f.dst}]` : f.dst}:${f.dstPort}`;
    return (c.upstream = new Client(origin, {
      pipelining: 1,
      connect: (_opts, done) => {
        const s = connectUpstream(f);
        const fail = (err: Error) => {
          done(err, null);
        };
        s.once('error', fail).once('connect', () => {
          s.removeListener('error', fail);
          done(null, s);
        });
      },
    }));
  }

  private record(req: IncomingMessage, f: Flow): RequestRecord {
    return new RequestRecord(this.report, f, {
      protocol: `HTTP/${req.httpVersion}`,
      method: req.method ?? '',
      url: req.url ?? '/',
      host: req.headers.host ?? '',
    });
  }

  private allowed(req: IncomingMessage, f: Flow): boolean {
    return this.judge.allows(f, { method: req.method ?? '', url: req.url ?? '/', headers: req.headers });
  }

  private request(req: IncomingMessage, res: ServerResponse): void {
    const c = this.conns.get(req.socket);
    if (!c) {
      res.destroy();
      return;
    }
    const rec = this.record(req, c.flow);
    if (!this.allowed(req, c.flow)) {
      req.resume();
      res.writeHead(403, { 'content-type': 'text/plain', 'content-length': String(DENIED_BODY.length) });
      res.end(DENIED_BODY);
      rec.finish('denied', 403);
      return;
    }
    const body = hasBody(req);
    if (!body) req.resume();
    this.upstreamOf(c).dispatch(
      { method: req.method ?? 'GET', path: req.url ?? '/', headers: endToEnd(req.headers) as Record<string, string | string[]>, body: body ? req : null },
      {
        onRequestStart: () => {
          rec.sent();
        },
        onResponseStart: (_ctl, status, headers, message) => {
          rec.finish('forwarded', status);
          res.writeHead(status, message ?? '', endToEnd(headers));
        },
        onResponseData: (ctl, chunk) => {
          if (res.write(chunk)) return;
          ctl.pause();
          res.once('drain', () => {
            ctl.resume();
          });
        },
        onResponseEnd: () => {
          res.end();
        },
        onResponseError: (_ctl, err) => {
          if (res.headersSent) {
            res.destroy(err);
            return;
          }
          // Strict parsing (bare LF line ends included) keeps the proxy and the client from reading one response two ways.
          const invalid = err.name === 'HTTPParserError';
          const status = invalid ? 502 : 503;
          rec.finish('error', status);
          res.writeHead(status, { 'content-type': 'text/plain' });
          res.end(`${invalid ? 'upstream sent an invalid response' : 'upstream connect error'}: ${err.message}\n`);
        },
      },
    );
  }

  /**
   * An allowed WebSocket upgrade goes upstream on a connection of its own;
   * once the server answers 101 the two sockets are spliced and the proxy
   * judges nothing more on them (Cilium's HTTP policy ends at the upgrade too).
   */
  private upgrade(req: IncomingMessage, sock: Duplex, head: Buffer): void {
    const c = this.conns.get(sock);
    if (!c) {
      sock.destroy();
      return;
    }
    const rec = this.record(req, c.flow);
    const websocket = (req.headers.upgrade ?? '').toLowerCase() === 'websocket';
    if (!websocket || !this.allowed(req, c.flow)) {
      sock.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${DENIED_BODY.length}\r\nconnection: close\r\n\r\n${DENIED_BODY}`);
      rec.finish('denied', 403);
      return;
    }
    const up = httpRequest({
      host: c.flow.dst,
      port: c.flow.dstPort,
      method: req.method,
      path: req.url,
      headers: req.headers,
      setHost: false,
      createConnection: () => connectUpstream(c.flow),
    });
    up.once('socket', () => {
      rec.sent();
    });
    up.on('upgrade', (r: IncomingMessage, upSock: Socket, upHead: Buffer) => {
      rec.finish('forwarded', 101);
      const lines = [`HTTP/1.1 101 ${r.statusMessage ?? 'Switching Protocols'}`];
      for (let i = 0; i < r.rawHeaders.length; i += 2) lines.push(`${r.rawHeaders[i]}: ${r.rawHeaders[i + 1]}`);
      sock.write(lines.join('\r\n') + '\r\n\r\n');
      if (upHead.length) sock.write(upHead);
      if (head.length) upSock.write(head);
      upSock.pipe(sock).pipe(upSock);
      const close = () => {
        upSock.destroy();
        sock.destroy();
      };
      upSock.on('error', close).on('close', close);
      sock.on('error', close).on('close', close);
    });
    up.on('response', (r) => {
      // The server refused the upgrade: its answer goes back as it is, and this connection ends with it.
      rec.finish('forwarded', r.statusCode ?? 0);
      const lines = [`HTTP/1.1 ${r.statusCode ?? 502} ${r.statusMessage ?? ''}`];
      for (const [k, v] of Object.entries(endToEnd(r.headers))) for (const one of [v].flat()) if (one !== undefined) lines.push(`${k}: ${one}`);
      lines.push('connection: close');
      sock.write(lines.join('\r\n') + '\r\n\r\n');
      r.pipe(sock);
    });
    up.on('error', (err) => {
      rec.finish('error', 503);
      sock.end(`HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nupstream connect error: ${err.message}\n`);
    });
    up.end();
  }
}
