import assert from 'assert';
import { FAILPOINTS, Failpoint } from '../../failpoint/failpoint';
import { UNTAGGED_ORPHAN_MS } from '../../reconcile/reconciler';
import { listLinks } from '../../datapath/rtnl';
import { waitFor } from '../harness/exec';
import { NO_LEAKS, countLeaks, leakFree } from '../harness/leaks';
import { recordReliability } from '../harness/reliability-report';
import { Env, IMAGE, WGET } from './env';

const RULE = (ports: string[]) => [
  {
    labels: [{ key: 'name', value: 'fp' }],
    endpointSelector: { matchLabels: { id: 'app1' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app2' } }], toPorts: [{ ports: ports.map((port) => ({ port, protocol: 'TCP' })) }] }],
  },
];
const CREATE: Failpoint[] = ['ipam-reserved', 'ipam-persisted', 'endpoint-veth-created', 'endpoint-link-created', 'endpoint-recorded', 'endpoint-joined'];
const REMOVE: Failpoint[] = ['endpoint-left', 'endpoint-unprogrammed', 'endpoint-deleted', 'ipam-releasing', 'ipam-released'];
const AT_START: Failpoint[] = ['reconcile-endpoints', 'reconcile-links'];
const POLICY: Failpoint[] = ['policy-persisted', 'policy-datapath'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The agent killed (-9) at every step of every plugin call and of the
 * reconciliation pass in turn, then at random instants under 100 concurrent
 * starts; each time checked from outside: no duplicate, every running
 * container reachable from another and enforced, no leak (addresses,
 * endpoints, tagged or untagged veths, routes, pinned maps).
 */
describe('reliability: kill -9 at every failpoint, and at random under 100 concurrent starts', function () {
  this.timeout(1_800_000);
  const env = new Env(['--reconcile-grace=1', '--reconcile-interval=0', '--identity-grace=2']);
  let serial = 0;
  const running = async () => (await env.docker(['ps', '--filter', 'label=fp', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean);

  /** As a user after a failure: remove what did not start, let reconciliation repair, then count. */
  const recover = async () => {
    const dead = (await env.docker(['ps', '-aq', '--filter', 'status=created', '--filter', 'status=exited'])).stdout.split('\n').filter(Boolean);
    if (dead.length) await env.docker(['rm', '-f', ...dead], 120_000);
    await sleep(1500);
    await env.agent.request('POST', '/v1/reconcile');
    if ((await countLeaks(env.dockerd, env.agent)).untaggedPairs) {
      await sleep(UNTAGGED_ORPHAN_MS + 500);
      await env.agent.request('POST', '/v1/reconcile');
    }
    return dead.length;
  };

  /** Every running container answers a ping from another one, and its endpoint is enforced under its identity. */
  const checkRunning = async (what: string) => {
    const leaks = await countLeaks(env.dockerd, env.agent);
    assert.deepStrictEqual(leakFree(leaks), NO_LEAKS, `${what}: ${JSON.stringify(leaks)}`);
    // Lookups resume after a restart: give every endpoint a moment to get its identity.
    const notReady = async () =>
      (await env.agent.api<Array<{ containerName?: string; state: string }>>('/v1/endpoint')).filter((e) => e.state !== 'ready').map((e) => e.containerName);
    await waitFor('every endpoint to have its identity', async () => (await notReady()).length === 0 || undefined, 20_000).catch(() => undefined);
    assert.deepStrictEqual(await notReady(), [], `${what}: every endpoint has its identity`);
    const names = await running();
    const addrs = await Promise.all(names.map((n) => env.address(n, 'fnet')));
    const probe = await env.exec('prober', `for a in ${addrs.join(' ')}; do ping -c1 -W2 $a >/dev/null || echo "unreachable $a"; done`);
    if (probe.stdout.trim()) {
      const eps = await env.agent.api<Array<{ ipv4?: string; state: string; ifName: string; ifIndex: number }>>('/v1/endpoint');
      const bpf = await env.agent.api<Array<{ ifindex: number; flags: number; identity: number }>>('/v1/bpf/endpoint');
      const why = probe.stdout
        .trim()
        .split('\n')
        .map((l) => {
          const a = l.split(' ')[1];
          const ep = eps.find((e) => e.ipv4 === a);
          return `${a}: ${ep ? `${ep.ifName} ${ep.state} bpf=${JSON.stringify(bpf.find((b) => b.ifindex === ep.ifIndex) ?? null)}` : 'no endpoint'}`;
        });
      assert.fail(`${what}: unreachable\n${why.join('\n')}`);
    }
    assert.strictEqual((await env.exec('client', `${WGET} http://web/ >/dev/null`)).code, 0, `${what}: app2 -> app1 allowed`);
    assert.notStrictEqual((await env.exec('outsider', `${WGET} http://web/ >/dev/null`)).code, 0, `${what}: app3 -> app1 denied`);
    return names.length;
  };

  const dockerEndpoints = async (net: string) =>
    JSON.parse(await env.ok(['network', 'inspect', '-f', '{{json .Containers}}', net])) as Record<string, { Name: string }>;

  const victim = () => env.docker(['run', '-d', '--name', `v${serial++}`, '--net', 'fnet', '-l', 'fp', '-l', 'id=app2', IMAGE, 'sleep', '3600'], 120_000);

  before(async () => {
    await env.up();
    await env.createNetwork('fnet');
    await env.ok(['run', '-d', '--name', 'web', '--net', 'fnet', '-l', 'id=app1', IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    await env.ok(['run', '-d', '--name', 'client', '--net', 'fnet', '-l', 'id=app2', IMAGE, 'sleep', '3600']);
    await env.ok(['run', '-d', '--name', 'outsider', '--net', 'fnet', '-l', 'id=app3', IMAGE, 'sleep', '3600']);
    await env.ok(['run', '-d', '--name', 'prober', '--net', 'fnet', '-l', 'id=prober', IMAGE, 'sleep', '3600']);
    assert.strictEqual((await env.agent.request('PUT', '/v1/policy', JSON.stringify(RULE(['80'])))).status, 200);
  });
  after(async () => {
    await env.down();
  });

  it('every failpoint in turn: the agent dies there, and after a restart everything is whole', async () => {
    const lines: string[] = [];
    const swept = [...CREATE, ...REMOVE, ...AT_START, ...POLICY];
    assert.deepStrictEqual([...swept].sort(), [...FAILPOINTS].sort(), 'the sweep covers every failpoint');
    for (const fp of swept) {
      if (REMOVE.includes(fp)) assert.strictEqual((await victim()).code, 0);
      await env.agent.stop();
      // A start-up failpoint may fire before start() has seen the agent answer.
      await env.agent.start({ CILIUM_FAILPOINTS: `${fp}=1` }).catch((err: unknown) => {
        if (!AT_START.includes(fp)) throw err;
      });
      let action = 'the start-up reconciliation';
      if (CREATE.includes(fp)) {
        action = 'docker run';
        await victim();
      } else if (REMOVE.includes(fp)) {
        action = 'docker rm -f';
        const names = await running();
        await env.docker(['rm', '-f', names[names.length - 1]!], 120_000);
      } else if (POLICY.includes(fp)) {
        action = 'a policy import';
        await env.agent.request('PUT', '/v1/policy', JSON.stringify(RULE(['80', String(8000 + serial++)]))).catch(() => undefined);
      }
      await Promise.race([env.agent.exited(), sleep(60_000).then(() => Promise.reject(new Error(`${fp}: ${action} did not reach the failpoint`)))]);
      assert.match(env.agent.logTail(50), new RegExp(`failpoint ${fp}: killing the agent`));
      await env.agent.start();
      const removed = await recover();
      const n = await checkRunning(`after a kill at ${fp}`);
      lines.push(
        `${fp} (during ${action}): killed there; after the restart ${removed} failed container(s) removed by the user, ${n} running, all reachable and enforced, 0 leaks`,
      );
    }
    recordReliability('Failpoint sweep (kill -9 at every step)', lines);
  });

  it("a DeleteEndpoint that fails: Docker drops its endpoint all the same, reconciliation reaps the agent's half, the network can be removed", async () => {
    await env.createNetwork('onet');
    await env.ok(['run', '-d', '--name', 'orphan', '--net', 'onet', IMAGE, 'sleep', '3600']);
    const endpoints = async () => (await env.agent.api<unknown[]>('/v1/endpoint')).length;
    const withOrphan = await endpoints();
    await env.agent.stop();
    await env.agent.start({ CILIUM_FAILPOINTS: 'endpoint-unprogrammed=1:throw' });
    await env.ok(['rm', '-f', 'orphan']);
    // dockerd logs "driver error deleting endpoint" and forgets the endpoint: nothing stale on its side.
    assert.deepStrictEqual(await dockerEndpoints('onet'), {});
    assert.strictEqual(await endpoints(), withOrphan, 'the agent still holds the endpoint whose deletion failed');
    await sleep(1500);
    const report = (await env.agent.request('POST', '/v1/reconcile')).body as { endpointsRemoved: number };
    assert.strictEqual(report.endpointsRemoved, 1, JSON.stringify(report));
    assert.strictEqual(await endpoints(), withOrphan - 1);
    await env.ok(['network', 'rm', 'onet']);
    assert.deepStrictEqual(leakFree(await countLeaks(env.dockerd, env.agent)), NO_LEAKS);
  });

  it('100 concurrent starts with kill -9 at a random instant, three rounds: no duplicate, all reachable and enforced, no leak', async () => {
    const lines: string[] = [];
    const logFrom = env.agent.logTail(1_000_000).split('\n').length;
    for (let round = 1; round <= 3; round++) {
      for (const n of await running()) await env.docker(['rm', '-f', n]);
      const names = Array.from({ length: 100 }, (_, i) => `k${round}c${i}`);
      const starts = Promise.all(
        names.map((n, i) => env.docker(['run', '-d', '--name', n, '--net', 'fnet', '-l', 'fp', '-l', `id=load${i % 3}`, IMAGE, 'sleep', '3600'], 300_000)),
      );
      const killAt = 500 + Math.random() * 4000;
      await sleep(killAt);
      await env.agent.kill9();
      await env.agent.start();
      const results = await starts;
      const failed = results.filter((r) => r.code !== 0).length;
      const removed = await recover();
      const count = await checkRunning(`round ${round}`);
      const addrs = await Promise.all((await running()).map((n) => env.address(n, 'fnet')));
      assert.strictEqual(new Set(addrs).size, addrs.length, `round ${round}: distinct addresses`);
      lines.push(
        `round ${round}: 100 docker run at once, agent killed ${(killAt / 1000).toFixed(1)} s in and restarted; ${100 - failed} started, ${failed} failed while it was down (${removed} removed by the user); ${count} running: distinct addresses, all reachable and enforced, 0 leaks`,
      );
    }
    const log = env.agent.logTail(1_000_000).split('\n').slice(logFrom);
    const bodyless = (re: RegExp) => log.filter((l) => / arrived without a body/.test(l) && re.test(l)).length;
    lines.push(
      `dockerd's retries of calls the agent died in, arriving without a body: ${bodyless(/answered so the engine finishes/)} teardown calls answered, ${bodyless(/start it again/)} set-up calls refused`,
    );
    // Everything removed, as a user tearing down: nothing may stay, in Docker or in the kernel.
    for (const n of [...(await running()), 'web', 'client', 'outsider', 'prober']) await env.docker(['rm', '-f', n]);
    await recover();
    await sleep(1500);
    await env.agent.request('POST', '/v1/reconcile');
    assert.deepStrictEqual(await dockerEndpoints('fnet'), {}, 'Docker holds no endpoint on fnet');
    assert.deepStrictEqual(leakFree(await countLeaks(env.dockerd, env.agent)), NO_LEAKS);
    assert.deepStrictEqual((await env.agent.api<unknown[]>('/v1/endpoint')).length, 0);
    // A teardown call dockerd retried late may have queued a veth for the background removal after the leak count.
    await env.agent.settled();
    assert.deepStrictEqual(
      (await listLinks()).map((l) => l.name).filter((n) => /^(lxc|tmp)[0-9a-f]{12}$/.test(n)),
      [],
      'no lxc/tmp device left',
    );
    const rm = await env.docker(['network', 'rm', 'fnet']);
    if (rm.code === 0) lines.push('all removed: no endpoint in Docker or the agent, no veth, no address; docker network rm fnet: removed');
    else {
      // No endpoint is left anywhere, yet dockerd 20.10's endpoint_count can have drifted under
      // concurrent network lookups (moby#42119, reproduced with its bridge driver): its start recounts.
      assert.match(rm.stderr, /has active endpoints/);
      await env.dockerd.stop();
      await env.dockerd.start();
      await env.ok(['network', 'rm', 'fnet']);
      lines.push(
        "all removed: no endpoint in Docker's view or the agent, no veth, no address; docker network rm fnet refused (dockerd's endpoint_count drift, moby#42119), removed after restarting the test's dockerd",
      );
    }
    recordReliability('100 concurrent starts with kill -9 (three rounds)', lines);
  });
});
