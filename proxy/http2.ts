import {
  ClientHttp2Session,
  Http2Server,
  Http2Session,
  IncomingHttpHeaders,
  OutgoingHttpHeaders,
  ServerHttp2Stream,
  connect as h2connect,
  constants,
  createServer,
} from 'http2';
import { Socket, isIPv6 } from 'net';
import { Report, RequestRecord } from './access-log';
import { Flow, Judge, connectUpstream } from './judge';

/** HTTP/2 forbids connection-specific headers (RFC 9113 8.2.2); `te: trailers` is the one allowed value of te. */
const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings'];

const DENIED_BODY = 'Access denied\n';
/** gRPC's status codes (grpc/doc/statuscodes.md). */
const GRPC_PERMISSION_DENIED = '7';
const GRPC_UNAVAILABLE = '14';

const isGrpc = (h: IncomingHttpHeaders) => (h['content-type'] ?? '').startsWith('application/grpc');

/** Request headers without pseudo-headers, with :authority as host, as the HTTP rules read them. */
function ruleHeaders(h: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (!k.startsWith(':')) out[k] = v;
  if (h[':authority'] !== undefined && out.host === undefined) out.host = h[':authority'];
  return out;
}

function forwardable(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (!CONNECTION_SPECIFIC.includes(k) && (k !== 'te' || v === 'trailers')) out[k] = v;
  return out;
}

interface Connection {
  flow: Flow;
  /** One upstream session per client session: the server sees one connection per client connection. */
  upstream?: ClientHttp2Session;
}

/**
 * HTTP/2 cleartext (prior knowledge, as gRPC speaks it), parsed by Node's
 * nghttp2: every stream is a request judged on its own. A denied gRPC call
 * is answered as gRPC answers one, status 7 PERMISSION_DENIED in the
 * trailers-only form; any other denied request gets 403.
 */
export class Http2 {
  private readonly server: Http2Server;
  private readonly conns = new WeakMap<Http2Session, Connection>();
  private pending: Flow | undefined;

  constructor(
    private readonly judge: Judge,
    private readonly report: Report,
  ) {
    this.server = createServer();
    this.server.on('session', (session: Http2Session) => {
      const flow = this.pending;
      this.pending = undefined;
      if (!flow) {
        session.destroy();
        return;
      }
      const c: Connection = { flow };
      this.conns.set(session, c);
      session.once('close', () => c.upstream?.close());
      session.on('error', () => {
        session.destroy();
      });
    });
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      this.stream(stream, headers);
    });
  }

  /**
   * A client connection that opened with HTTP/2's preface (put back on it).
   * Node makes the session while 'connection' is emitted, and reads what is
   * buffered on the socket itself: the socket must stay paused here.
   */
  adopt(sock: Socket, flow: Flow): void {
    this.pending = flow;
    this.server.emit('connection', sock);
    this.pending = undefined;
  }

  private upstreamOf(c: Connection): ClientHttp2Session {
    if (c.upstream && !c.upstream.closed && !c.upstream.destroyed) return c.upstream;
    const f = c.flow;
    const authority = `http://${isIPv6(f.dst) ? `[${f.dst}]` : f.dst}:${f.dstPort}`;
    const s = h2connect(authority, { createConnection: () => connectUpstream(f) });
    s.on('error', () => {
      s.destroy();
    });
    return (c.upstream = s);
  }

  private stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const c = this.conns.get(stream.session as Http2Session);
    if (!c) {
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const method = headers[':method'] ?? '';
    const url = headers[':path'] ?? '/';
    const rec = new RequestRecord(this.report, c.flow, { protocol: 'HTTP/2', method, url, host: headers[':authority'] ?? headers.host ?? '' });
    stream.on('error', () => stream.destroy());
    const grpc = isGrpc(headers);
    if (!this.judge.allows(c.flow, { method, url, headers: ruleHeaders(headers) })) {
      stream.resume();
      if (grpc)
        stream.respond(
          { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': GRPC_PERMISSION_DENIED, 'grpc-message': 'Access denied' },
          { endStream: true },
        );
      else {
        stream.respond({ ':status': 403, 'content-type': 'text/plain', 'content-length': DENIED_BODY.length });
        stream.end(DENIED_BODY);
      }
      rec.finish('denied', 403);
      return;
    }
    const up = this.upstreamOf(c).request(forwardable(headers));
    rec.sent();
    let trailers: OutgoingHttpHeaders | undefined;
    up.on('response', (h, flags) => {
      const status = h[':status'] ?? 0;
      rec.finish('forwarded', status);
      if (stream.destroyed) return;
      const out = forwardable(h);
      if (flags & constants.NGHTTP2_FLAG_END_STREAM) {
        stream.respond(out, { endStream: true });
        return;
      }
      stream.respond(out, { waitForTrailers: true });
      stream.on('wantTrailers', () => {
        stream.sendTrailers(trailers ?? {});
      });
      up.pipe(stream);
    });
    up.on('trailers', (t: IncomingHttpHeaders) => {
      trailers = forwardable(t);
    });
    up.on('error', (err: Error) => {
      if (stream.headersSent) {
        stream.close(constants.NGHTTP2_INTERNAL_ERROR);
        return;
      }
      rec.finish('error', 503);
      if (grpc)
        stream.respond(
          { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': GRPC_UNAVAILABLE, 'grpc-message': `upstream connect error: ${err.message}` },
          { endStream: true },
        );
      else {
        stream.respond({ ':status': 503, 'content-type': 'text/plain' });
        stream.end(`upstream connect error: ${err.message}\n`);
      }
    });
    stream.on('close', () => {
      if (!up.closed) up.close(constants.NGHTTP2_CANCEL);
    });
    stream.pipe(up);
  }
}
