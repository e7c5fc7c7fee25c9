import assert from 'assert';
import { join } from 'path';
import { Lab } from '../../lab/lab';
import { httpUnix } from '../harness/agent';
import { waitFor } from '../harness/exec';

/**
 * Three hosts on this machine (scripts/lab.sh's lab: a network and mount
 * namespace each, its own dockerd and agent, one etcd on the underlay),
 * native routing between them. What a user checks: containers on different
 * hosts reach each other by address, one label set is one identity
 * everywhere, policy by labels holds across hosts, the cluster rides out an
 * etcd outage, a dead host leaves, a new host gets a range nobody has.
 */
describe('multi-host: etcd kvstore and native routing (3-host lab)', function () {
  this.timeout(600_000);
  const TTL = 5;
  const lab = new Lab({ name: 'tlab', prefix: '172.30', agentArgs: [`--kvstore-lease-ttl=${TTL}`] });
  const sh = (host: string, ...cmd: string[]) => lab.exec(host, cmd);
  const ok = (host: string, ...cmd: string[]) => {
    const r = sh(host, ...cmd);
    if (r.status !== 0) throw new Error(`${host}: ${cmd.join(' ')}: ${r.stderr || r.stdout}`);
    return r.stdout.trim();
  };
  const api = async <T>(host: string, path: string): Promise<T> => {
    const h = lab.state()!.hosts.find((x) => x.name === host)!;
    const a = await httpUnix(join(h.dir, 'cilium.sock'), 'GET', path);
    if (a.status !== 200) throw new Error(`${host} GET ${path}: ${a.status} ${JSON.stringify(a.body)}`);
    return a.body as T;
  };
  const ip = (host: string, container: string) => ok(host, 'docker', 'inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', container);
  const run = (host: string, name: string, label: string, ...cmd: string[]) =>
    ok(host, 'docker', 'run', '-d', '--name', name, '--net', 'net1', '-l', `id=${label}`, 'bbox:latest', ...cmd);
  const fetch = (host: string, container: string, url: string) => sh(host, 'docker', 'exec', container, '/bin/wget', '-q', '-T', '3', '-O-', url);
  const identityOf = async (host: string, container: string) =>
    (await api<Array<{ containerName?: string; identity: number }>>(host, '/v1/endpoint')).find((e) => e.containerName === container)?.identity;
  let app1 = '';

  before(async () => {
    await lab.down(); // a run that died half-way
    await lab.up(3);
    for (const h of ['host1', 'host2', 'host3']) ok(h, 'docker', 'network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', 'net1');
    run('host1', 'app1', 'app1', 'httpd', '-f', '-p', '80', '-h', '/www');
    run('host2', 'app2', 'app2', 'sleep', '3600');
    run('host3', 'app3', 'app3', 'sleep', '3600');
    app1 = ip('host1', 'app1');
  });

  after(async () => {
    await lab.down();
  });

  it('gives every host its own range and lists every node on each', async () => {
    const ranges = new Set<string>();
    for (const h of ['host1', 'host2', 'host3']) {
      const nodes = await api<Array<{ name: string; ipv4AllocCIDR: string; self: boolean }>>(h, '/v1/cluster/nodes');
      assert.deepStrictEqual(nodes.map((n) => n.name).sort(), ['host1', 'host2', 'host3'], `${h} lists every node`);
      ranges.add(nodes.find((n) => n.self)!.ipv4AllocCIDR);
    }
    assert.strictEqual(ranges.size, 3, `three distinct ranges: ${[...ranges].join(', ')}`);
    assert.match(ok('host1', 'cilium', 'node', 'list'), /default\/host2\s+172\.30\.0\.12\s+10\.12\.0\.0\/16/);
    assert.match(
      ok('host2', 'cilium', 'status'),
      /KVStore:\s+Ok\s+etcd http:\/\/172\.30\.0\.1:2379[\s\S]*Cluster:\s+default, node host2, 3 nodes[\s\S]*Routing:\s+Network: Native\s+2 routes/,
    );
  });

  it('connects containers on different hosts by address, both ways, unmasqueraded', async () => {
    assert.strictEqual(fetch('host2', 'app2', `http://${app1}/`).stdout, 'hello from cilium\n');
    run('host3', 'srv3', 'srv3', 'httpd', '-f', '-p', '80', '-h', '/www');
    assert.strictEqual(fetch('host1', 'app1', `http://${ip('host3', 'srv3')}/`).stdout, 'hello from cilium\n');
    // The server sees the client's own address: routed as sent, not masqueraded by the client's host.
    ok('host1', 'docker', 'exec', '-d', 'app1', 'sh', '-c', 'sleep 10 | nc -l -p 9100'); // a listener whose input stays open
    await new Promise((r) => setTimeout(r, 300));
    ok('host2', 'docker', 'exec', '-d', 'app2', 'sh', '-c', `sleep 5 | nc ${app1} 9100`);
    const peer = await waitFor(
      'the connection on app1',
      () => {
        const table = ok('host1', 'docker', 'exec', 'app1', 'netstat', '-tn');
        return /ESTABLISHED/.test(table) ? table : undefined;
      },
      5_000,
    );
    const dots = (a: string) => a.replace(/\./g, '\\.');
    assert.match(peer, new RegExp(`(::ffff:)?${dots(app1)}:9100\\s+(::ffff:)?${dots(ip('host2', 'app2'))}:\\d+\\s+ESTABLISHED`));
  });

  it('gives one label set the same identity on every host', async () => {
    for (const h of ['host1', 'host2', 'host3']) run(h, `web-${h}`, 'web', 'sleep', '3600');
    const ids = await Promise.all(
      ['host1', 'host2', 'host3'].map((h) =>
        waitFor(`web on ${h} ready`, async () => identityOf(h, `web-${h}`).then((i) => (i && i >= 256 ? i : undefined)), 20_000),
      ),
    );
    assert.strictEqual(new Set(ids).size, 1, `identities of id=web: ${ids.join(', ')}`);
    const lists = await Promise.all(['host1', 'host2', 'host3'].map((h) => api<Array<{ id: number; labels: string[] }>>(h, '/v1/identity')));
    const ofWeb = lists.map((l) => l.find((i) => i.labels.includes('container:id=web'))?.id);
    assert.deepStrictEqual(ofWeb, [ids[0], ids[0], ids[0]], 'every host knows it under that number');
    const kv = ok('host1', 'cilium', 'kvstore', 'get', '--recursive', 'cilium/state/identities/v1/value/container:id=web;');
    for (const h of ['host1', 'host2', 'host3']) assert.match(kv, new RegExp(`value/container:id=web;/${h} => ${ids[0]}`));
  });

  it('admits app2 on host2 to app1 on host1 by labels and drops app3 on host3 as Policy denied', async () => {
    const policy = JSON.stringify([
      {
        endpointSelector: { matchLabels: { id: 'app1' } },
        ingress: [
          {
            fromEndpoints: [{ matchLabels: { id: 'app2' } }],
            toPorts: [
              {
                ports: [
                  { port: '80', protocol: 'TCP' },
                  { port: '9000', protocol: 'TCP' },
                ],
              },
            ],
          },
        ],
      },
    ]);
    ok('host1', 'sh', '-c', `echo '${policy}' | cilium policy import -`);
    const since = Math.max(0, ...(await api<Array<{ seq: number }>>('host1', '/v1/events')).map((e) => e.seq));
    assert.strictEqual(fetch('host2', 'app2', `http://${app1}/`).stdout, 'hello from cilium\n');
    assert.notStrictEqual(fetch('host3', 'app3', `http://${app1}/`).status, 0, 'app3 is not admitted');
    const id3 = await identityOf('host3', 'app3');
    const drops = await waitFor('the drop of app3 on host1', async () => {
      const d = (await api<Array<{ reasonName?: string; srcIdentity?: number; dport?: number }>>('host1', `/v1/events?type=drop&since=${since}`)).filter(
        (e) => e.reasonName === 'Policy denied' && e.dport === 80,
      );
      return d.length ? d : undefined;
    });
    assert.ok(
      drops.some((d) => d.srcIdentity === id3),
      `dropped as app3's identity ${id3}: ${JSON.stringify(drops[0])}`,
    );
  });

  it('keeps established flows and known identities through 30 s without etcd; a new label set waits, then resolves', async () => {
    ok('host1', 'docker', 'exec', '-d', 'app1', 'sh', '-c', 'sleep 120 | nc -l -p 9000 > /tmp/got'); // busybox nc -l ends at its input's end
    await new Promise((r) => setTimeout(r, 500));
    // 80 lines at 0.5 s over one TCP connection opened before etcd stops and still open after it returns.
    ok('host2', 'docker', 'exec', '-d', 'app2', 'sh', '-c', `i=0; while [ $i -lt 80 ]; do i=$((i+1)); echo line$i; sleep 0.5; done | nc ${app1} 9000`);
    await new Promise((r) => setTimeout(r, 2000));
    lab.stopEtcd();
    try {
      await new Promise((r) => setTimeout(r, 3000));
      run('host2', 'app1-again', 'app1', 'sleep', '3600'); // a known label set
      run('host2', 'newset', 'brand-new', 'sleep', '3600'); // one nobody has
      const known = await waitFor(
        'the known label set ready without etcd',
        async () => identityOf('host2', 'app1-again').then((i) => (i && i >= 256 ? i : undefined)),
        20_000,
      );
      assert.strictEqual(known, await identityOf('host1', 'app1'), 'the same identity as app1 on host1');
      const newIp = ip('host2', 'newset');
      const waiting = (await api<Array<{ ipv4?: string; state: string; identity: number }>>('host2', '/v1/endpoint')).find((e) => e.ipv4 === newIp);
      assert.deepStrictEqual([waiting?.state, waiting?.identity], ['waiting-for-identity', 5], 'a new label set waits fail-closed (init)');
      await waitFor('cilium status to tell etcd is unreachable', () => /KVStore:\s+Failure/.test(sh('host2', 'cilium', 'status').stdout), 15_000);
      await new Promise((r) => setTimeout(r, 27_000));
    } finally {
      lab.startEtcd();
    }
    const id = await waitFor('the new label set to resolve', async () => identityOf('host2', 'newset').then((i) => (i && i >= 256 ? i : undefined)), 60_000);
    await waitFor('the new identity on host1 too', async () => (await api<Array<{ id: number }>>('host1', '/v1/identity')).some((i) => i.id === id), 30_000);
    await waitFor(
      'all 80 lines delivered over the connection',
      () => sh('host1', 'docker', 'exec', 'app1', 'cat', '/tmp/got').stdout.includes('line80\n'),
      30_000,
    );
    const got = ok('host1', 'docker', 'exec', 'app1', 'cat', '/tmp/got').split('\n');
    assert.strictEqual(got.length, 80, 'every line, once');
    // After the outage (the leases expired meanwhile and were granted again) new connections across hosts work.
    await waitFor('app2 reaches app1 again', () => fetch('host2', 'app2', `http://${app1}/`).stdout === 'hello from cilium\n', 30_000);
  });

  it("removes a killed agent's node, addresses and route from the others after the lease TTL", async () => {
    const app3 = ip('host3', 'app3');
    lab.killAgent('host3');
    await waitFor(
      'host3 gone from host1',
      async () => !(await api<Array<{ name: string }>>('host1', '/v1/cluster/nodes')).some((n) => n.name === 'host3'),
      (TTL + 10) * 1000,
    );
    await waitFor('app3 out of host1 ipcache', () => !ok('host1', 'cilium', 'bpf', 'ipcache', 'list').includes(`${app3}/32`), 10_000);
    await waitFor('the route to host3 removed', () => !ok('host1', 'ip', 'route').includes('via 172.30.0.13'), 10_000);
    assert.doesNotMatch(ok('host1', 'cilium', 'kvstore', 'get', '--recursive', 'cilium/state/ip/v1/default/'), /"HostIP":"172\.30\.0\.13"/);
  });

  it('gives a host that joins a range no other host has, even when its default is taken', async () => {
    // 172.30.1.11 ends like host1's 172.30.0.11: its default 10.11.0.0/16 is host1's.
    await lab.addHost('172.30.1.11');
    const nodes = await api<Array<{ name: string; ipv4AllocCIDR: string }>>('host1', '/v1/cluster/nodes');
    const mine = nodes.find((n) => n.name === 'host4')?.ipv4AllocCIDR;
    assert.ok(mine, 'host4 joined');
    const others = ok('host4', 'cilium', 'kvstore', 'get', '--recursive', 'cilium/state/noderanges/v1/default/')
      .split('\n')
      .filter((l) => !l.endsWith('=> host4'))
      .map((l) => l.split(' => ')[0]!.split('/').pop()!.replace('-', '/'));
    assert.ok(!others.includes(mine), `${mine} is nobody else's (${others.join(', ')})`);
    assert.notStrictEqual(mine, '10.11.0.0/16');
    ok('host4', 'docker', 'network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', 'net1');
    run('host4', 'app4', 'app4', 'sleep', '3600');
    assert.ok(ip('host4', 'app4').startsWith(mine.split('.').slice(0, 2).join('.') + '.'), 'its container has an address of its range');
  });
});
