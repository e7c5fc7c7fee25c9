import { Socket } from 'net';
import { Report, RequestRecord } from './access-log';
import { Http1Parser, MessageHead, ParseError } from './http1-parser';
import { Flow, Judge, connectUpstream } from './judge';

const DENIED_BODY = 'Access denied\n';
/** A client connection idle this long is closed (Envoy's default idle timeout). */
const IDLE_MS = 3_600_000;

function answer(status: string, body: string, close: boolean): string {
  const connection = close ? 'connection: close\r\n' : '';
  return `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${connection}\r\n${body}`;
}

/** Header names lowercased, repeated ones joined, as a rule reads them. */
function headerRecord(raw: string[]): { headers: Record<string, string>; hosts: number } {
  const headers: Record<string, string> = {};
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    const v = raw[i + 1]!;
    if (k === 'host') hosts++;
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  return { headers, hosts };
}

/** Headers of one hop (RFC 9110 7.6.1): each side of the proxy has its own connection, framed its own way. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** The head as it goes on: what was parsed, without one hop's headers (all of them kept for an upgrade), plus this hop's. */
function serializeHead(startLine: string, raw: string[], keepHop: boolean, extra: string): string {
  const named = keepHop
    ? []
    : raw.flatMap((v, i) =>
        i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'connection'
          ? v
              .toLowerCase()
              .split(',')
              .map((t) => t.trim())
          : [],
      );
  let s = `${startLine}\r\n`;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (!keepHop && (HOP_BY_HOP.has(k) || named.includes(k))) continue;
    s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return `${s}${extra}\r\n`;
}

const chunk = (b: Buffer) => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, CRLF]);

/** Client bytes held for the server beyond this pause the client until they go. */
const HELD_LIMIT = 1 << 20;

/** One request of a client connection, in the order they came. */
interface Exchange {
  rec: RequestRecord;
  /** The proxy's own answer (a denial, a malformed request), sent in its turn; none: the server answers. */
  answer?: { text: string; verdict: 'denied' | 'error'; status: number };
  /** Bytes for the server held back until the exchanges ahead of it are answered; none: sent as they come. */
  held?: Array<string | Buffer>;
  /** The upstream connection it went on. */
  via?: Upstream;
  /** The client speaks HTTP/1.0: no chunked answers, keep-alive only if asked. */
  http10: boolean;
  /** A HEAD: its answer has no body. */
  headOnly: boolean;
  /** An allowed WebSocket upgrade: spliced through once the server answers 101. */
  tunnel: boolean;
  /** Nothing follows it on this connection (Connection: close, HTTP/1.0, an upgrade, a refusal that closes). */
  last: boolean;
}

interface Upstream {
  sock: Socket;
  responses: Http1Parser;
  /** The server said it closes after the answer under way. */
  closing: boolean;
}

/**
 * One client connection: each request is parsed by llhttp, judged, and
 * either answered by the proxy or sent on, re-framed from what was parsed,
 * on an upstream connection of this client connection's own; the answer is
 * parsed and re-framed likewise. One request at a time goes upstream (as
 * nginx does): answers keep the requests' order, the proxy's among them, and
 * a server that closes after each answer loses no request.
 */
class Http1Connection {
  private readonly requests: Http1Parser;
  private upstream: Upstream | undefined;
  private readonly queue: Exchange[] = [];
  /** The request being read (its body follows its head), and whether its body is chunked. */
  private reading: Exchange | undefined;
  private chunkedIn = false;
  /** The server's answer to queue[0] has begun, and whether this side chunks its body. */
  private answering = false;
  private chunkedOut = false;
  private informational = false;
  private answersInChunk = 0;
  private closeAfterChunk = false;
  private spliceAfterChunk = false;
  /** The server answered what was not asked: the two sides no longer agree on the stream. */
  private unsolicited = false;
  /** No more requests are read: after a last one, or an upgrade (whose further bytes wait here). */
  private stopped = false;
  private readonly early: Buffer[] = [];
  private heldBytes = 0;
  private readonly paused = new Set<'held' | 'upstream'>();
  private clientDraining = false;
  private clientEnded = false;
  private done = false;

  constructor(
    private readonly client: Socket,
    private readonly flow: Flow,
    private readonly judge: Judge,
    private readonly report: Report,
  ) {
    this.requests = new Http1Parser('request', {
      head: (h) => {
        this.onRequest(h);
        return false;
      },
      body: (b) => {
        this.onRequestBody(b);
      },
      complete: () => {
        this.onRequestEnd();
      },
    });
    // Small heads and bodies go out at once (Nagle's wait would meet the peer's delayed ACK).
    client.setNoDelay(true);
    client.setTimeout(IDLE_MS, () => {
      this.destroy();
    });
    client.on('data', (d: Buffer) => {
      this.fromClient(d);
    });
    client.on('end', () => {
      this.clientEnded = true;
      if (this.queue.length === 0 && !this.reading) this.endClient();
    });
    client.on('close', () => {
      this.destroy();
    });
    client.resume();
  }

  private fromClient(d: Buffer): void {
    if (this.done) return;
    if (this.stopped) {
      if (this.queue.some((e) => e.tunnel)) this.early.push(d);
      return;
    }
    // What one read yields (a head, its body, its framing) leaves in one write.
    const up = this.upstream?.sock;
    up?.cork();
    const r = this.requests.execute(d);
    if (up)
      process.nextTick(() => {
        up.uncork();
      });
    if (typeof r !== 'number') {
      this.malformed(r);
      return;
    }
    // Fewer bytes taken: an upgrade's head ended there, and what follows is the tunnel's.
    if (r < d.length) this.early.push(d.subarray(r));
    this.advance();
  }

  private onRequest(h: MessageHead): void {
    const { headers, hosts } = headerRecord(h.headers);
    const rec = new RequestRecord(this.report, this.flow, {
      protocol: `HTTP/${h.versionMajor}.${h.versionMinor}`,
      method: h.method,
      url: h.url,
      host: headers.host ?? '',
    });
    const http10 = h.versionMajor === 1 && h.versionMinor === 0;
    const e: Exchange = { rec, http10, headOnly: h.method === 'HEAD', tunnel: false, last: !h.shouldKeepAlive };
    // Two Host headers could be read one way here and another by the server.
    const allowed = hosts <= 1 && this.judge.allows(this.flow, { method: h.method, url: h.url, headers });
    if (hosts > 1) {
      e.last = true;
      e.answer = { text: answer('400 Bad Request', 'more than one Host header\n', true), verdict: 'error', status: 400 };
    } else if (h.upgrade) {
      // Cilium's HTTP policy ends at the upgrade: an allowed WebSocket is spliced through, anything else refused.
      this.stopped = true;
      e.last = true;
      if (allowed && (headers.upgrade ?? '').toLowerCase() === 'websocket') e.tunnel = true;
      else e.answer = { text: answer('403 Forbidden', DENIED_BODY, true), verdict: 'denied', status: 403 };
    } else if (!allowed) {
      // A client waiting for 100-continue may or may not send its body now: the connection cannot go on.
      if (/100-continue/i.test(headers.expect ?? '')) e.last = true;
      e.answer = { text: answer('403 Forbidden', DENIED_BODY, e.last), verdict: 'denied', status: 403 };
    }
    this.chunkedIn = headers['transfer-encoding'] !== undefined;
    if (!e.answer && this.queue.length > 0) e.held = [];
    this.queue.push(e);
    this.reading = e;
    if (e.answer) return;
    // The body is re-framed as it was (chunked, or its length): the framing headers stay.
    const framing = this.chunkedIn && !e.tunnel ? 'Transfer-Encoding: chunked\r\n' : '';
    this.toServer(e, serializeHead(`${h.method} ${h.url} HTTP/${h.versionMajor}.${h.versionMinor}`, h.headers, e.tunnel, framing));
  }

  private onRequestBody(b: Buffer): void {
    const e = this.reading;
    if (!e || e.answer) return;
    this.toServer(e, this.chunkedIn ? chunk(b) : b);
  }

  private onRequestEnd(): void {
    const e = this.reading;
    this.reading = undefined;
    if (!e) return;
    if (this.chunkedIn && !e.answer) this.toServer(e, LAST_CHUNK);
    if (e.last) this.stopped = true;
  }

  private toServer(e: Exchange, data: string | Buffer): void {
    if (e.held) {
      e.held.push(data);
      this.heldBytes += data.length;
      if (this.heldBytes > HELD_LIMIT) this.pauseClient('held');
      return;
    }
    if (!e.via) {
      e.via = this.server();
      e.rec.sent();
    }
    if (!e.via.sock.write(data) && this.pauseClient('upstream'))
      e.via.sock.once('drain', () => {
        this.resumeClient('upstream');
      });
  }

  /** Reading from the client stops while its bytes wait (held here, or in the upstream socket); true if this reason is new. */
  private pauseClient(why: 'held' | 'upstream'): boolean {
    if (this.paused.has(why)) return false;
    this.paused.add(why);
    this.client.pause();
    return true;
  }

  private resumeClient(why: 'held' | 'upstream'): void {
    if (!this.paused.delete(why) || this.paused.size > 0 || this.done) return;
    this.client.resume();
  }

  /** Sends the proxy's answers that are due, then the next request if the server may have it. */
  private advance(): void {
    while (this.queue[0]?.answer && !this.done) {
      const e = this.queue.shift()!;
      this.client.write(e.answer!.text);
      e.rec.finish(e.answer!.verdict, e.answer!.status);
      if (e.last) {
        this.endClient();
        return;
      }
    }
    const next = this.queue[0];
    if (next?.held) {
      const held = next.held;
      delete next.held;
      for (const d of held) this.toServer(next, d);
      this.heldBytes -= held.reduce((n, d) => n + d.length, 0);
      if (this.heldBytes <= HELD_LIMIT) this.resumeClient('held');
    }
    if (this.clientEnded && this.queue.length === 0 && !this.reading) this.endClient();
  }

  private server(): Upstream {
    if (this.upstream) return this.upstream;
    const sock = connectUpstream(this.flow);
    sock.setNoDelay(true);
    const up: Upstream = {
      sock,
      closing: false,
      responses: new Http1Parser('response', {
        head: (h) => this.onResponse(h, up),
        body: (b) => {
          this.onResponseBody(b, up);
        },
        complete: () => {
          this.onResponseEnd(up);
        },
      }),
    };
    this.upstream = up;
    sock.on('data', (d: Buffer) => {
      this.fromServer(d, up);
    });
    sock.on('error', (err: Error) => {
      this.forget(up);
      this.serverFailed(up, 503, `upstream connect error: ${err.message}`);
    });
    sock.on('end', () => {
      this.forget(up);
      const err = up.responses.finish();
      if (err) this.badResponse(err);
      else this.serverFailed(up, 502, 'upstream closed the connection before answering');
    });
    sock.on('close', () => {
      this.forget(up);
      up.responses.close();
    });
    return up;
  }

  /** An upstream connection that ends or will: the next request opens another. */
  private forget(up: Upstream): void {
    if (this.upstream === up) this.upstream = undefined;
  }

  private fromServer(d: Buffer, up: Upstream): void {
    this.answersInChunk = 0;
    this.client.cork();
    process.nextTick(() => {
      this.client.uncork();
    });
    const r = up.responses.execute(d);
    if (typeof r !== 'number') {
      this.badResponse(r);
      return;
    }
    if (this.unsolicited) {
      this.destroy();
      return;
    }
    if (this.spliceAfterChunk) {
      if (r < d.length) this.client.write(d.subarray(r));
      this.splice(up);
    } else if (this.closeAfterChunk) this.endClient();
    else this.advance();
  }

  private onResponse(h: MessageHead, up: Upstream): boolean {
    const e = this.queue[0];
    if (e?.via !== up || e.answer) {
      this.unsolicited = true;
      return false;
    }
    const status = `HTTP/1.1 ${h.statusCode} ${h.statusMessage}`;
    this.informational = h.statusCode < 200 && h.statusCode !== 101;
    if (this.informational) {
      this.toClient(up, serializeHead(status, h.headers, false, ''));
      return false;
    }
    this.answering = true;
    e.rec.finish('forwarded', h.statusCode);
    if (e.tunnel && h.statusCode === 101 && h.upgrade) {
      this.spliceAfterChunk = true;
      this.forget(up);
      this.toClient(up, serializeHead(status, h.headers, true, ''));
      return false;
    }
    if (!h.shouldKeepAlive) {
      up.closing = true;
      this.forget(up);
    }
    e.last ||= e.tunnel;
    const headers = headerRecord(h.headers).headers;
    const bodyless = e.headOnly || h.statusCode === 204 || h.statusCode === 304;
    // A body of no given length (chunked, or until the server closes) is chunked to an HTTP/1.1 client; an HTTP/1.0 one reads it to the close.
    const unsized = !bodyless && (headers['transfer-encoding'] !== undefined || headers['content-length'] === undefined);
    if (unsized && e.http10) e.last = true;
    this.chunkedOut = unsized && !e.http10;
    const extra = (this.chunkedOut ? 'Transfer-Encoding: chunked\r\n' : '') + (e.last ? 'Connection: close\r\n' : e.http10 ? 'Connection: keep-alive\r\n' : '');
    this.toClient(up, serializeHead(status, h.headers, false, extra));
    return e.headOnly;
  }

  private onResponseBody(b: Buffer, up: Upstream): void {
    this.toClient(up, this.chunkedOut ? chunk(b) : b);
  }

  private onResponseEnd(up: Upstream): void {
    if (this.informational) {
      this.informational = false;
      return;
    }
    if (this.chunkedOut) this.toClient(up, LAST_CHUNK);
    const e = this.queue.shift();
    this.answering = false;
    this.chunkedOut = false;
    this.answersInChunk++;
    if (e?.last) this.closeAfterChunk = true;
    if (up.closing) up.sock.destroy();
  }

  private toClient(up: Upstream, data: string | Buffer): void {
    if (this.client.write(data) || this.clientDraining) return;
    this.clientDraining = true;
    up.sock.pause();
    this.client.once('drain', () => {
      this.clientDraining = false;
      up.sock.resume();
    });
  }

  /** The server's bytes do not parse: a clean 502 if none of its answer went out yet, else the connection ends. */
  private badResponse(err: ParseError): void {
    if (this.answering || this.answersInChunk > 0) this.destroy();
    else if (this.queue[0]?.via) this.serverFailed(this.queue[0].via, 502, `upstream sent an invalid response: ${err.reason || err.message}`);
    else this.destroy();
  }

  /** An upstream connection failed or ended: the request it owed an answer gets one from the proxy, and the client connection ends. */
  private serverFailed(up: Upstream, status: 502 | 503, why: string): void {
    if (this.done) return;
    const e = this.queue[0];
    if (e?.via !== up || e.answer) {
      if (this.closeAfterChunk) this.endClient();
      else this.advance();
      return;
    }
    if (this.answering) {
      this.destroy();
      return;
    }
    this.queue.shift();
    this.client.write(answer(`${status} ${status === 502 ? 'Bad Gateway' : 'Service Unavailable'}`, `${why}\n`, true));
    e.rec.finish('error', status);
    this.endClient();
  }

  private malformed(err: ParseError): void {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    this.stopped = true;
    if (this.reading?.via) {
      // Half a request went to the server: nothing after it can be trusted.
      this.destroy();
      return;
    }
    this.queue.push({
      rec: new RequestRecord(this.report, this.flow, { protocol: 'HTTP/1.1', method: '', url: '', host: '' }),
      answer: { text: answer(status, `${err.reason || err.code}\n`, true), verdict: 'error', status: Number(status.slice(0, 3)) },
      http10: false,
      headOnly: false,
      tunnel: false,
      last: true,
    });
    this.advance();
  }

  /** The server took the upgrade: from here on bytes pass both ways unread. */
  private splice(up: Upstream): void {
    this.client.removeAllListeners('data');
    up.sock.removeAllListeners('data');
    for (const d of this.early.splice(0)) up.sock.write(d);
    this.client.pipe(up.sock);
    up.sock.pipe(this.client);
    up.sock.on('close', () => {
      this.destroy();
    });
    this.client.on('close', () => up.sock.destroy());
    this.client.resume();
  }

  private endClient(): void {
    if (this.done) return;
    this.stopped = true;
    this.client.end();
    this.upstream?.sock.destroy();
  }

  private destroy(): void {
    if (this.done) return;
    this.done = true;
    this.client.destroy();
    this.upstream?.sock.destroy();
    for (const e of this.queue) e.via?.sock.destroy();
    this.requests.close();
  }
}

const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = '0\r\n\r\n';

/**
 * HTTP/1.x: every request of a keep-alive or pipelined connection is judged
 * on its own; a WebSocket upgrade is judged as its request and then spliced
 * through.
 */
export class Http1 {
  constructor(
    private readonly judge: Judge,
    private readonly report: Report,
  ) {}

  /** A client connection whose first bytes (put back on it) are not HTTP/2's preface. */
  adopt(sock: Socket, flow: Flow): void {
    new Http1Connection(sock, flow, this.judge, this.report);
  }
}
