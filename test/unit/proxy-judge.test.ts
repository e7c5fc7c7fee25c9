import assert from 'assert';
import type { Socket } from 'net';
import { Judge } from '../../proxy/judge';
import type { ProxyEndpoint } from '../../proxy/snapshot';
import type { Allow } from '../../policy/resolve';

const GET = (url: string) => ({ method: 'GET', url, headers: {} });
const ep = (id: number, identity: number, address: string, allows: Allow[]): ProxyEndpoint => ({
  id,
  identity,
  addresses: [address],
  ingressEnforced: allows.some((a) => a.dir === 'ingress'),
  egressEnforced: allows.some((a) => a.dir === 'egress'),
  allows,
});
const conn = (src: string, dst: string, port = 80) => ({ remoteAddress: src, remotePort: 40000, localAddress: dst, localPort: port }) as Socket;

describe('the L7 proxy judge', () => {
  // app1 (10.0.0.1) serves; app2 (10.0.0.2) may only GET /public from app1 and GET /ip from 198.18.0.0/24; app3 (10.0.0.3) is unrestricted.
  const judge = new Judge();
  judge.update({
    cidrs: [
      { cidr: '198.18.0.0/16', identity: 1 << 24 },
      { cidr: '198.18.0.0/24', identity: (1 << 24) + 1 },
    ],
    endpoints: [
      ep(1, 256, '10.0.0.1', [
        { identity: 257, port: 80, proto: 6, dir: 'ingress', http: [{ path: '/public' }, { path: '/private', headers: ['X-Token: 42'] }] },
        { identity: 258, port: 80, proto: 6, dir: 'ingress', http: [{ path: '/private' }] },
      ]),
      ep(2, 257, '10.0.0.2', [
        { identity: 256, port: 80, proto: 6, dir: 'egress', http: [{ method: 'GET', path: '/public' }] },
        { identity: (1 << 24) + 1, port: 80, proto: 6, dir: 'egress', http: [{ path: '/ip' }] },
      ]),
      ep(3, 258, '10.0.0.3', []),
    ],
  });

  it('egress rules of the source alone: a destination beyond the host by its most specific CIDR identity', () => {
    const f = judge.flowOf(conn('10.0.0.2', '198.18.0.9'))!;
    assert.deepStrictEqual([f.srcIdentity, f.dstIdentity, f.direction, f.endpoint, f.destination], [257, (1 << 24) + 1, 'egress', 2, undefined]);
    assert.strictEqual(judge.allows(f, GET('/ip')), true);
    assert.strictEqual(judge.allows(f, GET('/other')), false);
  });

  it('an address in no CIDR identity is the world, which no entry of the source allows', () => {
    const f = judge.flowOf(conn('10.0.0.2', '203.0.113.1'))!;
    assert.strictEqual(f.dstIdentity, 2);
    assert.strictEqual(judge.allows(f, GET('/ip')), false);
  });

  it('ingress rules of the destination alone, for a source without egress policy', () => {
    const f = judge.flowOf(conn('10.0.0.3', '10.0.0.1'))!;
    assert.deepStrictEqual([f.direction, f.endpoint], ['ingress', 1]);
    assert.strictEqual(judge.allows(f, GET('/private')), true);
    assert.strictEqual(judge.allows(f, GET('/public')), false);
  });

  it('both ends with L7 rules: a request must pass the egress and the ingress rules', () => {
    const f = judge.flowOf(conn('10.0.0.2', '10.0.0.1'))!;
    assert.strictEqual(f.direction, 'ingress');
    assert.strictEqual(judge.allows(f, GET('/public')), true);
    // ingress would take it with the token; egress allows /public only
    assert.strictEqual(judge.allows(f, { method: 'GET', url: '/private', headers: { 'x-token': '42' } }), false);
    assert.strictEqual(judge.allows(f, { method: 'POST', url: '/public', headers: {} }), false);
  });

  it('a connection between two addresses that are no local endpoints is none of its business', () => {
    assert.strictEqual(judge.flowOf(conn('192.0.2.1', '198.18.0.9')), undefined);
  });
});
