import assert from 'assert';
import { IncomingMessage, ServerResponse, createServer as httpServer } from 'http';
import { AddressInfo, Server, Socket, createServer, connect } from 'net';
import { Http1 } from '../../proxy/http1';
import { Flow, Judge } from '../../proxy/judge';
import type { AccessRecord } from '../../proxy/snapshot';

/** Listens on loopback; resolves to the port. */
const listen = (s: Server) =>
  new Promise<number>((r) =>
    s.listen(0, '127.0.0.1', () => {
      r((s.address() as AddressInfo).port);
    }),
  );

/** Writes the bytes to a connection through the proxy and reads until it closes (or waitMs passes). */
async function exchange(port: number, bytes: string, waitMs = 1500): Promise<string> {
  const c = connect(port, '127.0.0.1');
  let got = '';
  c.on('data', (d: Buffer) => (got += d.toString('latin1')));
  c.write(bytes);
  await new Promise<void>((r) => {
    const t = setTimeout(() => {
      c.destroy();
      r();
    }, waitMs);
    c.on('close', () => {
      clearTimeout(t);
      r();
    });
  });
  return got;
}
const statuses = (raw: string) => [...raw.matchAll(/^HTTP\/1\.[01] (\d{3})/gm)].map((m) => Number(m[1]));

describe('the L7 proxy on HTTP/1.x (a real origin on loopback, the proxy judging as an egress rule)', () => {
  const records: AccessRecord[] = [];
  let origin: Server;
  let sloppy: Server;
  let front: Server;
  let frontPort = 0;
  const seen: string[] = [];
  // The client's egress rule, to the host (identity 1) on any port.
  const source = {
    id: 7,
    identity: 257,
    addresses: ['127.0.0.1'],
    ingressEnforced: false,
    egressEnforced: true,
    allows: [
      {
        identity: 1,
        port: 0,
        proto: 0,
        dir: 'egress' as const,
        http: [{ method: 'GET', path: '/public.*' }, { method: 'POST', path: '/upload' }, { method: 'HEAD' }],
      },
    ],
  };
  const flowTo = (dstPort: number): Flow => ({
    src: '127.0.0.1',
    srcPort: 1,
    srcIdentity: 257,
    dst: '127.0.0.1',
    dstPort,
    dstIdentity: 1,
    source,
    direction: 'egress',
    endpoint: 7,
  });
  let target = 0;

  before(async () => {
    origin = httpServer((req: IncomingMessage, res: ServerResponse) => {
      let n = 0;
      req.on('data', (d: Buffer) => (n += d.length));
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} ${n}`);
        res.setHeader('content-length', String(`${req.method} ${req.url} ${n}\n`.length));
        res.end(req.method === 'HEAD' ? undefined : `${req.method} ${req.url} ${n}\n`);
      });
    });
    const originPort = await listen(origin);
    // A server that ends its lines with bare LFs.
    sloppy = createServer((s: Socket) => {
      s.once('data', () => s.end('HTTP/1.1 200 OK\nContent-Length: 2\n\nok'));
    });
    const sloppyPort = await listen(sloppy);
    const h1 = new Http1(new Judge(), (r) => records.push(r));
    target = originPort;
    front = createServer({ allowHalfOpen: true }, (s: Socket) => {
      s.on('error', () => s.destroy());
      h1.adopt(s, flowTo(target));
    });
    frontPort = await listen(front);
    (front as Server & { sloppyPort: number }).sloppyPort = sloppyPort;
  });
  after(() => {
    for (const s of [origin, sloppy, front]) s.close();
  });
  beforeEach(() => {
    records.length = 0;
    seen.length = 0;
  });

  it('pipelined requests: each judged on its own, the 403 in its place between the answers', async () => {
    const raw = await exchange(
      frontPort,
      'GET /public/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /private HTTP/1.1\r\nHost: a\r\n\r\nGET /public/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    assert.deepStrictEqual(statuses(raw), [200, 403, 200], raw);
    assert.match(raw, /GET \/public\/1 0\n[\s\S]*Access denied\n[\s\S]*GET \/public\/2 0\n$/);
    assert.deepStrictEqual(seen, ['GET /public/1 0', 'GET /public/2 0'], 'the denied request never reached the server');
    assert.deepStrictEqual(
      records.map((r) => `${r.verdict} ${r.url} ${r.status}`),
      ['forwarded /public/1 200', 'denied /private 403', 'forwarded /public/2 200'],
    );
  });

  it('a chunked body goes on whole; a HEAD answer has no body and the connection goes on', async () => {
    const raw = await exchange(
      frontPort,
      'POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n' +
        'HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /public HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    assert.deepStrictEqual(statuses(raw), [200, 200, 200], raw);
    assert.deepStrictEqual(seen, ['POST /upload 8', 'HEAD /x 0', 'GET /public 0']);
  });

  it('a server that closes after each answer, one with a body up to the close: the client keeps its one connection, the body comes chunked', async () => {
    let n = 0;
    const closer = createServer((s: Socket) => {
      s.once('data', () => {
        // the first answer has a length, the second runs to the close
        s.end(n++ === 0 ? 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\nfirst\n' : 'HTTP/1.0 200 OK\r\n\r\nsecond\n');
      });
    });
    target = await listen(closer);
    try {
      const raw = await exchange(frontPort, 'GET /public/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /public/2 HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.deepStrictEqual(statuses(raw), [200, 200], raw);
      assert.doesNotMatch(raw, /connection: close/i, 'the client connection stays open');
      assert.match(raw, /\r\n\r\nfirst\n[\s\S]*Transfer-Encoding: chunked\r\n\r\n7\r\nsecond\n\r\n0\r\n\r\n$/, raw);
    } finally {
      closer.close();
      target = (origin.address() as AddressInfo).port;
    }
  });

  it('a client that ends its side after its request still gets the answer', async () => {
    const c = connect(frontPort, '127.0.0.1');
    let got = '';
    c.on('data', (d: Buffer) => (got += String(d)));
    c.end('GET /public/half HTTP/1.1\r\nHost: a\r\n\r\n');
    await new Promise((r) => c.on('close', r));
    assert.deepStrictEqual(statuses(got), [200], got);
  });

  it('two Host headers, or bytes that are not HTTP, get 400 and the connection ends', async () => {
    assert.deepStrictEqual(statuses(await exchange(frontPort, 'GET /public HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')), [400]);
    assert.deepStrictEqual(statuses(await exchange(frontPort, 'GET /public HTTP/1.1\r\nHost a\r\n\r\n')), [400]);
    assert.deepStrictEqual(seen, []);
  });

  it('a server answering with bare LF line ends: 502 naming why', async () => {
    target = (front as Server & { sloppyPort: number }).sloppyPort;
    try {
      const raw = await exchange(frontPort, 'GET /public HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.match(raw, /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*upstream sent an invalid response: .*CR/, raw);
      assert.deepStrictEqual(
        records.map((r) => `${r.verdict} ${r.status}`),
        ['error 502'],
      );
    } finally {
      target = (origin.address() as AddressInfo).port;
    }
  });

  it('no server listening: 503 naming the connect error', async () => {
    const closed = createServer();
    target = await listen(closed);
    await new Promise((r) => closed.close(r));
    try {
      assert.match(
        await exchange(frontPort, 'GET /public HTTP/1.1\r\nHost: a\r\n\r\n'),
        /^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*upstream connect error: .*ECONNREFUSED/,
      );
    } finally {
      target = (origin.address() as AddressInfo).port;
    }
  });
});
