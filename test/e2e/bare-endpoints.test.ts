import assert from 'assert';
import { join } from 'path';
import { listLinks } from '../../datapath/rtnl';
import { TestAgent, httpUnix } from '../harness/agent';
import { BareEndpoint, BareEndpoints } from '../harness/bare-endpoints';
import { must, run } from '../harness/exec';

const CLI = join(__dirname, '../../../bin/cilium');

/**
 * Namespaces wired through the plugin protocol by something other than the
 * engine (as the benchmarks do), labelled through the agent's API; and the
 * datapath answering their ARP so the host keeps no neighbour per endpoint.
 */
describe('endpoints without containers: labels from the API, ARP answered in BPF', function () {
  this.timeout(120_000);
  const agent = new TestAgent('cilium-bare', ['--ipv4-range=10.216.0.0/16', '--ipv6-range=f00d::d8:0:0/96', '--docker-host=unix:///nonexistent/docker.sock']);
  const NET = 'e'.repeat(64);
  const bare = new BareEndpoints(agent, NET, 'cilium-bare-');
  let server: BareEndpoint, client: BareEndpoint, other: BareEndpoint;
  const ping = (from: BareEndpoint, to: BareEndpoint) => run('ip', ['netns', 'exec', from.ns, 'busybox', 'ping', '-c', '1', '-W', '1', to.address]);
  const label = (e: BareEndpoint, ...labels: string[]) =>
    run(CLI, ['--api-socket', agent.apiSocket, 'endpoint', 'labels', e.endpointId.slice(0, 12), ...labels]);

  before(async () => {
    await agent.start();
    await agent.createNetwork(NET, '10.216.0.1');
    server = (await bare.create(1, ['app=server']))[0]!;
    client = (await bare.create(1, ['role=client']))[0]!;
    other = (await bare.create(1, ['role=other']))[0]!;
  });
  after(async () => {
    await bare.destroy();
    await agent.plugin('NetworkDriver.DeleteNetwork', { NetworkID: NET });
    await agent.destroy();
  });

  it('a labelled namespace gets the identity of its labels and is enforced like a container', async () => {
    const eps = await agent.api<Array<{ dockerEndpointId: string; identity: number; labels: string[]; state: string }>>('/v1/endpoint');
    const of = (e: BareEndpoint) => eps.find((x) => x.dockerEndpointId === e.endpointId)!;
    assert.deepStrictEqual(of(server).labels, ['unspec:app=server']);
    assert.strictEqual(of(server).state, 'ready');
    assert.ok(of(server).identity >= 256 && of(server).identity !== of(client).identity);
    assert.strictEqual((await ping(client, server)).code, 0, 'no policy: everything flows');

    const rule = {
      labels: [{ key: 'name', value: 'bare' }],
      endpointSelector: { matchLabels: { app: 'server' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { role: 'client' } }] }],
    };
    assert.strictEqual((await httpUnix(agent.apiSocket, 'PUT', '/v1/policy', JSON.stringify([rule]))).status, 200);
    assert.strictEqual((await ping(client, server)).code, 0, 'role=client is let in');
    assert.notStrictEqual((await ping(other, server)).code, 0, 'role=other is dropped');

    const relabelled = await label(other, 'role=client');
    assert.strictEqual(relabelled.code, 0, relabelled.stderr);
    assert.match(relabelled.stdout, /identity \d+ \(unspec:role=client\)/);
    assert.strictEqual((await ping(other, server)).code, 0, 'relabelled role=client: now let in');
  });

  it('bad labels are refused with the cause and change nothing', async () => {
    const before = JSON.stringify(await agent.api('/v1/endpoint'));
    const noKey = await label(server, '=x');
    assert.strictEqual(noKey.code, 1);
    assert.match(noKey.stderr, /label "=x" has no key/);
    const reserved = await label(server, 'reserved:host');
    assert.match(reserved.stderr, /reserved source is the agent's own/);
    const unknown = await label({ ...server, endpointId: 'f'.repeat(64) }, 'a=b');
    assert.match(unknown.stderr, /not found/);
    const usage = await run(CLI, ['--api-socket', agent.apiSocket, 'endpoint', 'labels', '1']);
    assert.strictEqual(usage.code, 2);
    assert.strictEqual(JSON.stringify(await agent.api('/v1/endpoint')), before);
  });

  it('ARP for the gateway is answered with the host side MAC, and the host learns no neighbour', async () => {
    const eps = await agent.api<Array<{ dockerEndpointId: string; ifName: string; hostMac: string }>>('/v1/endpoint');
    for (const e of [server, client, other]) {
      const ep = eps.find((x) => x.dockerEndpointId === e.endpointId)!;
      const inside = await must('ip', ['-n', e.ns, '-4', 'neigh', 'show', '10.216.0.1']);
      assert.match(inside, new RegExp(`lladdr ${ep.hostMac} `), `${e.ns} resolved its gateway to the host side: ${inside}`);
      assert.strictEqual(await must('ip', ['-4', 'neigh', 'show', 'dev', ep.ifName]), '', `the host has no neighbour entry on ${ep.ifName}`);
    }
  });

  it('after Leave and DeleteEndpoint, nothing is left', async () => {
    await bare.destroy();
    await agent.settled();
    assert.deepStrictEqual(await agent.api('/v1/endpoint'), []);
    const tagged = (await listLinks()).filter((l) => l.alias === agent.tag);
    assert.deepStrictEqual(tagged, []);
  });
});
