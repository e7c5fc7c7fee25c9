import assert from 'assert';
import { join } from 'path';
import { createVeth, linkIndex, setUp } from '../../datapath/rtnl';
import { linkNames } from '../../datapath/endpoint-link';
import { httpUnix } from '../harness/agent';
import { must, run, waitFor } from '../harness/exec';
import { NO_LEAKS, countLeaks, leakFree } from '../harness/leaks';
import { recordReliability } from '../harness/reliability-report';
import { Env, IMAGE, WGET } from './env';

interface Report {
  endpointsRemoved: number;
  addressesReleased: number;
  linksRemoved: number;
  mapEntriesRemoved: number;
  pinsRemoved: number;
  repairs: string[];
}

const L4_RULE = [
  {
    labels: [{ key: 'name', value: 'l4' }],
    endpointSelector: { matchLabels: { id: 'app1' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app2' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
  },
];
const web = (name: string, net: string, label: string, extra: string[] = []) => [
  'run',
  '-d',
  '--name',
  name,
  '--net',
  net,
  '-l',
  `id=${label}`,
  ...extra,
  IMAGE,
  'httpd',
  '-f',
  '-p',
  '80',
  '-h',
  '/www',
];

describe('reliability: start-up reconciliation', function () {
  this.timeout(300_000);
  const env = new Env(['--reconcile-grace=1', '--reconcile-interval=0']);
  before(async () => {
    await env.up();
    await env.createNetwork('rnet');
    await env.ok(web('c1', 'rnet', 'app1'));
  });
  after(async () => {
    await env.down();
  });

  it('releases what no container owns, keeps what runs, and logs every repair', async () => {
    const netId = await env.ok(['network', 'inspect', '-f', '{{.Id}}', 'rnet']);
    const plugin = (m: string, b: object) => env.agent.plugin(m, b);
    // An address Docker asked for and never used (a crash between RequestAddress and CreateEndpoint).
    await plugin('IpamDriver.RequestAddress', { PoolID: 'cilium-host-v4', Address: '' });
    // An endpoint Docker no longer knows (its DeleteEndpoint was lost while the agent was down).
    const ghost = 'e'.repeat(64);
    const b = (await plugin('IpamDriver.RequestAddress', { PoolID: 'cilium-host-v4', Address: '' })).body as { Address: string };
    assert.strictEqual((await plugin('NetworkDriver.CreateEndpoint', { NetworkID: netId, EndpointID: ghost, Interface: { Address: b.Address } })).status, 200);
    // A veth of ours that no endpoint owns (a crash between creating it and recording it).
    const stray = linkNames('f'.repeat(64));
    await createVeth({ name: stray.hostName, mac: stray.hostMac, peerName: stray.peerName, peerMac: stray.peerMac });
    await setUp((await linkIndex(stray.hostName))!, env.agent.tag);
    // A pinned map that is not ours, and a datapath entry for an interface that does not exist.
    await must('bpftool', ['map', 'create', join(env.agent.bpfRoot, 'stale_map'), 'type', 'hash', 'key', '4', 'value', '4', 'entries', '4', 'name', 'stale']);
    await must('bpftool', [
      'map',
      'update',
      'pinned',
      join(env.agent.bpfRoot, 'cilium_lxc'),
      'key',
      'hex',
      '3f',
      '42',
      '0f',
      '00',
      'value',
      'hex',
      ...Array<string>(56).fill('00'),
    ]);
    const before = await countLeaks(env.dockerd, env.agent);
    assert.ok(
      before.unownedAddresses >= 2 && before.endpointsWithoutContainer === 1 && before.orphanLinks === 1 && before.orphanPins === 1,
      JSON.stringify(before),
    );

    await new Promise((r) => setTimeout(r, 1500)); // older than the grace period
    await env.agent.kill9();
    await env.agent.start();
    const report = await waitFor('the start-up reconciliation', () => env.agent.api<Report | null>('/v1/reconcile').then((r) => r ?? undefined), 30_000);
    assert.strictEqual(report.endpointsRemoved, 1, JSON.stringify(report));
    assert.ok(report.addressesReleased >= 2, JSON.stringify(report));
    assert.strictEqual(report.linksRemoved, 1);
    assert.ok(report.mapEntriesRemoved >= 1);
    assert.strictEqual(report.pinsRemoved, 1);
    assert.match(env.agent.logTail(200), /reconcile: endpoint \d+ .* has no container in Docker/);
    assert.deepStrictEqual(leakFree(await countLeaks(env.dockerd, env.agent)), NO_LEAKS);
    const r = await env.docker(['run', '--rm', '--net', 'rnet', IMAGE, 'wget', '-q', '-T', '3', '-O-', 'http://c1/']);
    assert.strictEqual(r.code, 0, 'the running container was kept and still serves');
    recordReliability('Start-up reconciliation', [
      `seeded: 1 endpoint without container, ${before.unownedAddresses} unowned addresses, ${before.orphanLinks} orphan veths, 1 stray pinned map, 1 stale endpoint-map entry`,
      `repaired at start: ${report.endpointsRemoved} endpoint, ${report.addressesReleased} addresses, ${report.linksRemoved} veth, ${report.mapEntriesRemoved} map entries, ${report.pinsRemoved} pin`,
      'leaks after: 0; the running container kept serving',
    ]);
  });

  it('a veth pair its agent died creating (untagged, both ends here) is removed once it stayed so; nothing else is', async () => {
    // The instant between the kernel creating the pair and the agent tagging it.
    const orphan = linkNames('c'.repeat(64));
    await createVeth({ name: orphan.hostName, mac: orphan.hostMac, peerName: orphan.peerName, peerMac: orphan.peerMac });
    // Look-alikes that are not ours to take: another naming, and a pair whose peer is in a namespace.
    await must('ip', ['link', 'add', 'cilxtest0', 'type', 'veth', 'peer', 'name', 'cilxtest1']);
    const moved = linkNames('b'.repeat(64));
    await must('ip', ['netns', 'add', 'cilium-rel-moved']);
    await createVeth({ name: moved.hostName, mac: moved.hostMac, peerName: moved.peerName, peerMac: moved.peerMac });
    await must('ip', ['link', 'set', moved.peerName, 'netns', 'cilium-rel-moved']);
    try {
      const pass = async () => (await httpUnix(env.agent.apiSocket, 'POST', '/v1/reconcile')).body as Report;
      assert.strictEqual((await pass()).linksRemoved, 0, 'just created: it may still be on its way to being tagged');
      await new Promise((r) => setTimeout(r, 5500));
      const report = await pass();
      assert.strictEqual(report.linksRemoved, 1, JSON.stringify(report));
      assert.ok(
        report.repairs.some((x) => x.includes(`veth pair ${orphan.hostName}/${orphan.peerName} was never tagged`)),
        JSON.stringify(report.repairs),
      );
      assert.strictEqual(await linkIndex(orphan.hostName), undefined);
      assert.strictEqual(await linkIndex(orphan.peerName), undefined);
      assert.notStrictEqual(await linkIndex('cilxtest0'), undefined, 'another naming is left alone');
      assert.notStrictEqual(await linkIndex(moved.hostName), undefined, 'a pair whose peer sits in a namespace is left alone');
    } finally {
      await run('ip', ['link', 'del', orphan.hostName]);
      await run('ip', ['link', 'del', 'cilxtest0']);
      await run('ip', ['link', 'del', moved.hostName]);
      await run('ip', ['netns', 'del', 'cilium-rel-moved']);
    }
  });

  it('never reaps what is younger than the grace period (a call still on its way)', async () => {
    const ghost = 'd'.repeat(64);
    const netId = await env.ok(['network', 'inspect', '-f', '{{.Id}}', 'rnet']);
    const a = (await env.agent.plugin('IpamDriver.RequestAddress', { PoolID: 'cilium-host-v4', Address: '' })).body as { Address: string };
    await env.agent.plugin('NetworkDriver.CreateEndpoint', { NetworkID: netId, EndpointID: ghost, Interface: { Address: a.Address } });
    const answer = await httpUnix(env.agent.apiSocket, 'POST', '/v1/reconcile');
    assert.strictEqual(answer.status, 200, JSON.stringify(answer.body));
    const report = answer.body as Report;
    assert.strictEqual(report.endpointsRemoved, 0);
    assert.strictEqual(report.addressesReleased, 0);
    await env.agent.plugin('NetworkDriver.DeleteEndpoint', { NetworkID: netId, EndpointID: ghost });
    await env.agent.plugin('IpamDriver.ReleaseAddress', { PoolID: 'cilium-host-v4', Address: a.Address.split('/')[0] });
  });
});

for (const liveRestore of [true, false]) {
  describe(`reliability: dockerd restart ${liveRestore ? 'with' : 'without'} --live-restore`, function () {
    this.timeout(300_000);
    const env = new Env(['--reconcile-grace=1'], ['--bridge=none', ...(liveRestore ? ['--live-restore'] : [])]);
    const restart = liveRestore ? [] : ['--restart', 'always'];
    before(async () => {
      await env.up();
      await env.createNetwork('dnet');
      await env.ok(web('app1', 'dnet', 'app1', restart));
      await env.ok(web('app2', 'dnet', 'app2', restart));
      await env.ok(web('app3', 'dnet', 'app3', restart));
      await httpUnix(env.agent.apiSocket, 'PUT', '/v1/policy', JSON.stringify(L4_RULE));
    });
    after(async () => {
      await env.down();
    });

    it('running containers stay (or come back) connected and enforced, with nothing leaked', async () => {
      const before = (await env.agent.api<Array<{ dockerEndpointId: string }>>('/v1/endpoint')).map((e) => e.dockerEndpointId).sort();
      await env.dockerd.stop();
      await env.dockerd.start();
      await waitFor(
        'the three containers running',
        async () => (await env.docker(['ps', '-q'])).stdout.trim().split('\n').filter(Boolean).length === 3,
        60_000,
      );
      const fetch = async (from: string) => (await env.exec(from, `${WGET} http://app1/ >/dev/null`)).code;
      await waitFor('app2 reaching app1', async () => (await fetch('app2')) === 0, 30_000);
      assert.notStrictEqual(await fetch('app3'), 0, 'app3 still denied');
      const after = (await env.agent.api<Array<{ dockerEndpointId: string }>>('/v1/endpoint')).map((e) => e.dockerEndpointId).sort();
      if (liveRestore) assert.deepStrictEqual(after, before, 'live-restore: the same endpoints, untouched');
      else assert.strictEqual(after.length, 3, 'restarted containers got new endpoints, old ones were removed');
      await new Promise((r) => setTimeout(r, 1200));
      await httpUnix(env.agent.apiSocket, 'POST', '/v1/reconcile');
      assert.deepStrictEqual(leakFree(await countLeaks(env.dockerd, env.agent)), NO_LEAKS);
      recordReliability(`dockerd restart ${liveRestore ? 'with' : 'without'} --live-restore`, [
        liveRestore
          ? 'containers kept running with the same endpoints'
          : 'containers (restart=always) came back with new endpoints; the old ones were cleaned up',
        'allowed flow passed and denied flow dropped after the restart; leaks: 0',
      ]);
    });
  });
}

describe('reliability: 50 containers at once, three rounds', function () {
  this.timeout(900_000);
  const env = new Env();
  before(async () => {
    await env.up();
    await env.createNetwork('cnet');
    await env.ok(['run', '-d', '--name', 'prober', '--net', 'cnet', '-l', 'id=prober', IMAGE, 'sleep', '3600']);
  });
  after(async () => {
    await env.down();
  });

  it('distinct addresses, all reachable, right identities, nothing left between rounds', async () => {
    const lines: string[] = [];
    for (let round = 1; round <= 3; round++) {
      const names = Array.from({ length: 50 }, (_, i) => `r${round}c${i}`);
      const t0 = Date.now();
      const started = await Promise.all(names.map((n, i) => env.docker(web(n, 'cnet', `app${(i % 3) + 1}`), 180_000)));
      const seconds = (Date.now() - t0) / 1000;
      assert.deepStrictEqual(
        started.filter((r) => r.code !== 0).map((r) => r.stderr),
        [],
      );
      const addrs = await Promise.all(names.map((n) => env.address(n, 'cnet')));
      assert.strictEqual(new Set(addrs).size, 50, 'distinct addresses');
      const probe = await env.exec('prober', `for a in ${addrs.join(' ')}; do ping -c1 -W2 $a >/dev/null || echo "unreachable $a"; done`);
      assert.strictEqual(probe.stdout.trim(), '', probe.stdout);
      const eps = await env.agent.api<Array<{ containerName: string; identity: number; labels: string[] }>>('/v1/endpoint');
      const byLabel = new Map<string, Set<number>>();
      for (const e of eps.filter((x) => x.containerName.startsWith(`r${round}`))) {
        const i = Number(e.containerName.slice(`r${round}c`.length));
        assert.deepStrictEqual(e.labels, [`container:id=app${(i % 3) + 1}`], e.containerName);
        (byLabel.get(e.labels[0]!) ?? byLabel.set(e.labels[0]!, new Set()).get(e.labels[0]!)!).add(e.identity);
      }
      assert.deepStrictEqual(
        [...byLabel.values()].map((s) => s.size),
        [1, 1, 1],
        'one identity per label set',
      );
      await Promise.all(names.map((n) => env.docker(['rm', '-f', n], 180_000)));
      const leaks = await countLeaks(env.dockerd, env.agent);
      assert.deepStrictEqual(leakFree(leaks), NO_LEAKS);
      assert.strictEqual(leaks.containers, 1);
      lines.push(
        `round ${round}: 50 started in ${seconds.toFixed(1)} s, 50 distinct addresses, 50/50 reachable, 3 identities for 3 label sets, 0 leaks after removal`,
      );
    }
    recordReliability('Concurrency: 50 containers at once', lines);
  });
});
