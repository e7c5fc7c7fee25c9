import assert from 'assert';
import { TestAgent } from '../harness/agent';

/** What a confused or hostile client sends straight to the plugin socket. */
describe('plugin protocol: bad input gets a clear error and changes nothing', function () {
  this.timeout(60_000);
  const agent = new TestAgent('cilium-proto', ['--ipv4-range=10.213.0.0/16', '--ipv6-range=f00d::d5:0:0/96']);
  const NET = 'a'.repeat(64);

  const state = () => agent.stateDump(['/v1/ipam', '/v1/endpoint', '/v1/network']);
  const errOf = (body: unknown) => (body as { Err?: string }).Err ?? '';

  before(async () => {
    await agent.start();
  });
  after(async () => {
    await agent.destroy();
  });

  it('answers the handshake the engine sends with no Content-Type and an empty body', async () => {
    assert.deepStrictEqual((await agent.plugin('Plugin.Activate', '')).body, { Implements: ['NetworkDriver', 'IpamDriver'] });
    assert.deepStrictEqual((await agent.plugin('NetworkDriver.GetCapabilities', '')).body, { Scope: 'local', ConnectivityScope: 'local' });
    assert.deepStrictEqual((await agent.plugin('IpamDriver.GetCapabilities', '')).body, { RequiresMACAddress: false, RequiresRequestReplay: false });
  });

  it('a full lifecycle over the raw protocol leaves nothing behind', async () => {
    const before = await state();
    const pool = (await agent.plugin('IpamDriver.RequestPool', { AddressSpace: 'CiliumLocal', Pool: '', SubPool: '', V6: false })).body as { PoolID: string };
    const addr = (await agent.plugin('IpamDriver.RequestAddress', { PoolID: pool.PoolID, Address: '', Options: null })).body as { Address: string };
    assert.match(addr.Address, /^10\.213\.\d+\.\d+\/32$/);
    assert.strictEqual(
      (
        await agent.plugin('NetworkDriver.CreateNetwork', {
          NetworkID: NET,
          Options: {},
          IPv4Data: [{ AddressSpace: 'CiliumLocal', Pool: '0.0.0.0/0', Gateway: '10.213.0.1/32' }],
          IPv6Data: [],
        })
      ).status,
      200,
    );
    const ep = await agent.plugin('NetworkDriver.CreateEndpoint', {
      NetworkID: NET,
      EndpointID: 'b'.repeat(64),
      Interface: { Address: addr.Address, AddressIPv6: '', MacAddress: '' },
      Options: {},
    });
    assert.strictEqual(ep.status, 200, JSON.stringify(ep.body));
    assert.match((ep.body as { Interface: { MacAddress: string } }).Interface.MacAddress, /^0e(:[0-9a-f]{2}){5}$/);
    const join = await agent.plugin('NetworkDriver.Join', {
      NetworkID: NET,
      EndpointID: 'b'.repeat(64),
      SandboxKey: '/var/run/docker/netns/0123456789ab',
      Options: {},
    });
    assert.deepStrictEqual((join.body as { StaticRoutes: unknown }).StaticRoutes, [{ Destination: '10.213.0.1/32', RouteType: 1 }]);
    assert.strictEqual((join.body as { Gateway: string }).Gateway, '10.213.0.1');
    for (const [m, b] of [
      ['NetworkDriver.Leave', { NetworkID: NET, EndpointID: 'b'.repeat(64) }],
      ['NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: 'b'.repeat(64) }],
      ['IpamDriver.ReleaseAddress', { PoolID: pool.PoolID, Address: addr.Address.split('/')[0] }],
      ['NetworkDriver.DeleteNetwork', { NetworkID: NET }],
      ['IpamDriver.ReleasePool', { PoolID: pool.PoolID }],
    ] as const) {
      assert.strictEqual((await agent.plugin(m, b)).status, 200, m);
    }
    assert.strictEqual(await state(), before);
  });

  const bad: Array<[string, string | object, number, RegExp]> = [
    ['NetworkDriver.CreateEndpoint', '{"NetworkID": ', 400, /malformed JSON/],
    ['IpamDriver.RequestAddress', '[1,2,3]', 500, /must be a JSON object/],
    [
      'NetworkDriver.CreateEndpoint',
      { NetworkID: 'f'.repeat(64), EndpointID: 'c'.repeat(64), Interface: { Address: '10.213.0.9/32' } },
      500,
      /network f+ is not known to this cilium agent/,
    ],
    ['NetworkDriver.CreateEndpoint', { NetworkID: '../../etc', EndpointID: 'c'.repeat(64) }, 500, /NetworkID must be a Docker ID/],
    ['NetworkDriver.Join', { NetworkID: 'f'.repeat(64), EndpointID: 'd'.repeat(64), SandboxKey: '/x' }, 500, /not known/],
    ['IpamDriver.RequestAddress', { PoolID: 'no-such-pool', Address: '' }, 500, /pool "no-such-pool" does not exist/],
    ['IpamDriver.RequestPool', { AddressSpace: 'CiliumLocal', Pool: '10.0.0.300/24' }, 500, /is not an IPv4 or IPv6 address/],
    ['IpamDriver.RequestPool', { AddressSpace: 'CiliumLocal', Pool: '', SubPool: '10.9.0.0/24' }, 500, /needs a pool/],
    ['IpamDriver.RequestPool', { AddressSpace: 'CiliumLocal', Pool: '10.213.4.0/24' }, 500, /overlaps this agent's host range/],
    ['IpamDriver.RequestPool', { AddressSpace: 'CiliumLocal', Pool: '', V6: 'yes' }, 500, /V6 must be true or false/],
    ['IpamDriver.ReleaseAddress', { PoolID: 'cilium-host-v4', Address: 'not-an-ip' }, 500, /not an IPv4 or IPv6 address/],
    ['NetworkDriver.NoSuchCall', {}, 404, /unknown plugin call/],
  ];
  for (const [method, body, status, err] of bad) {
    it(`${method} ${typeof body === 'string' ? body : JSON.stringify(body).slice(0, 70)} -> ${status} ${err}`, async () => {
      const before = await state();
      const a = await agent.plugin(method, body);
      assert.strictEqual(a.status, status, JSON.stringify(a.body));
      assert.match(errOf(a.body), err);
      assert.strictEqual(await state(), before);
    });
  }

  it("the engine's retry of a call the agent died in (no body at all): teardown answered, set-up refused, nothing changed", async () => {
    const before = await state();
    for (const [m, answer] of [
      ['NetworkDriver.DeleteEndpoint', {}],
      ['NetworkDriver.Leave', {}],
      ['NetworkDriver.EndpointOperInfo', { Value: {} }],
      ['NetworkDriver.RevokeExternalConnectivity', {}],
      ['NetworkDriver.DeleteNetwork', {}],
      ['IpamDriver.ReleaseAddress', {}],
      ['IpamDriver.ReleasePool', {}],
    ] as const) {
      const r = await agent.plugin(m, '');
      assert.deepStrictEqual([r.status, r.body], [200, answer], m);
    }
    for (const m of [
      'NetworkDriver.CreateNetwork',
      'NetworkDriver.CreateEndpoint',
      'NetworkDriver.Join',
      'IpamDriver.RequestPool',
      'IpamDriver.RequestAddress',
    ]) {
      const r = await agent.plugin(m, '');
      assert.strictEqual(r.status, 500, m);
      assert.match(errOf(r.body), new RegExp(`^${m.replace('.', '\\.')} arrived without a body: .*start it again`), m);
    }
    // A body that is there but empty of fields is still a malformed call.
    assert.match(errOf((await agent.plugin('NetworkDriver.DeleteEndpoint', {})).body), /NetworkID must be a Docker ID/);
    assert.strictEqual(await state(), before);
  });

  it('a second release of an address, of an endpoint or of a network is a no-op, not an error', async () => {
    const before = await state();
    for (const [m, b] of [
      ['IpamDriver.ReleaseAddress', { PoolID: 'cilium-host-v4', Address: '10.213.0.77' }],
      ['IpamDriver.ReleaseAddress', { PoolID: 'cilium-host-v4', Address: '10.213.0.77' }],
      ['NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: 'e'.repeat(64) }],
      ['NetworkDriver.Leave', { NetworkID: NET, EndpointID: 'e'.repeat(64) }],
      ['NetworkDriver.DeleteNetwork', { NetworkID: NET }],
      ['IpamDriver.ReleasePool', { PoolID: 'subnet-192.168.1.0/24' }],
    ] as const) {
      assert.strictEqual((await agent.plugin(m, b)).status, 200, m);
    }
    assert.strictEqual(await state(), before);
  });

  it('an oversized body is refused before it is read whole', async () => {
    const a = await agent.plugin('IpamDriver.RequestPool', JSON.stringify({ Pool: 'x'.repeat(1024 * 1024) }));
    assert.strictEqual(a.status, 413);
    assert.match(errOf(a.body), /too large/);
  });
});
