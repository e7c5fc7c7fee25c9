import assert from 'assert';
import { TestAgent } from '../harness/agent';
import { BareEndpoint, BareEndpoints } from '../harness/bare-endpoints';

/**
 * A policy change the datapath cannot apply leaves everything as it was, and
 * the agent answers on; CreateEndpoint takes only addresses this IPAM handed
 * out for that network.
 */
describe('robustness: failed policy updates roll back; endpoint addresses come from our IPAM', function () {
  this.timeout(120_000);
  const agent = new TestAgent('cilium-robust', ['--ipv4-range=10.217.0.0/16', '--enable-ipv6=false', '--docker-host=unix:///nonexistent/docker.sock']);
  const NET = 'f'.repeat(64);
  const OTHER_NET = 'd'.repeat(64);
  const bare = new BareEndpoints(agent, NET, 'cilium-robust-');
  let server: BareEndpoint;
  const rule = [
    {
      labels: [{ key: 'name', value: 'r' }],
      endpointSelector: { matchLabels: { app: 'server' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { role: 'client' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
    },
  ];
  const dump = async () => {
    const eps = await agent.api<Array<{ id: number; dockerEndpointId: string }>>('/v1/endpoint');
    const id = eps.find((e) => e.dockerEndpointId === server.endpointId)!.id;
    return JSON.stringify({
      policy: await agent.api('/v1/policy'),
      map: await agent.api(`/v1/bpf/policy/${id}`),
      // The policy generation may move: taking back entries the failed update added re-checks connections.
      endpoints: (await agent.api<Array<{ policyGen?: number }>>('/v1/bpf/endpoint')).map(({ policyGen: _g, ...e }) => e),
      ipam: await agent.api('/v1/ipam'),
      registry: eps,
    });
  };

  before(async () => {
    await agent.start({ CILIUM_FAILPOINTS: 'policy-datapath=1:throw' });
    for (const id of [NET, OTHER_NET]) await agent.createNetwork(id, '10.217.0.1');
    server = (await bare.create(1, ['app=server']))[0]!;
    await bare.create(1, ['role=client']);
  });
  after(async () => {
    await bare.destroy();
    for (const id of [NET, OTHER_NET]) await agent.plugin('NetworkDriver.DeleteNetwork', { NetworkID: id });
    await agent.destroy();
  });

  it('a policy import whose datapath update fails halfway is rolled back: revision, rules and maps as before; the API says why', async () => {
    const before = await dump();
    const r = await agent.api<{ revision: number }>('/v1/policy');
    const answer = await agent.request('PUT', '/v1/policy', JSON.stringify(rule));
    assert.strictEqual(answer.status, 500);
    assert.match(
      (answer.body as { error: string }).error,
      new RegExp(`policy import not applied, revision ${r.revision} stays in force: the datapath update failed: failpoint policy-datapath`),
    );
    assert.strictEqual(await dump(), before, 'nothing changed');
    const health = await agent.api<{ recentErrors: Array<{ message: string }> }>('/v1/healthz');
    assert.ok(
      health.recentErrors.some((e) => /policy import rolled back/.test(e.message)),
      'the rollback is logged and shown in status',
    );
    const again = await agent.request('PUT', '/v1/policy', JSON.stringify(rule));
    assert.strictEqual(again.status, 200, JSON.stringify(again.body));
    assert.strictEqual((again.body as { revision: number }).revision, r.revision + 1);
  });

  it('CreateEndpoint refuses an address the IPAM did not hand out, or one another endpoint holds, and changes nothing', async () => {
    const before = await dump();
    const create = (address: string) =>
      agent.plugin('NetworkDriver.CreateEndpoint', {
        NetworkID: NET,
        EndpointID: 'a'.repeat(64),
        Interface: { Address: address, AddressIPv6: '', MacAddress: '' },
        Options: {},
      });
    const cases: Array<[string, RegExp]> = [
      ['10.217.200.200/32', /address 10\.217\.200\.200 refused: this agent's IPAM did not hand it out/],
      ['10.99.0.5/32', /address 10\.99\.0\.5 refused: it is outside the network's pool 10\.217\.0\.0\/16/],
      [`${server.address}/32`, new RegExp(`address ${server.address.replace(/\./g, '\\.')} refused: endpoint \\d+ \\([0-9a-f]{12}\\) already has it`)],
      ['10.217.0.1/32', /address 10\.217\.0\.1 refused: this agent's IPAM did not hand it out/],
    ];
    for (const [address, why] of cases) {
      const a = await create(address);
      assert.strictEqual(a.status, 500, `${address}: ${JSON.stringify(a.body)}`);
      assert.match((a.body as { Err: string }).Err, why);
    }
    assert.strictEqual(await dump(), before, 'nothing changed');
  });
});
