import assert from 'assert';
import { Env, IMAGE, V4_RANGE, WGET } from './env';
import { contains, parseAddress, parseCidr } from '../../net/address';
import { must } from '../harness/exec';

const NONE = { links: 0, routes4: 0, routes6: 0, subnetRoutes: 0, endpoints: 0 };

describe('foundation: network + IPAM driver against a real dockerd', function () {
  this.timeout(300_000);
  const env = new Env();

  before(async () => {
    await env.up();
  });
  after(async () => {
    await env.down();
  });

  it('default network: containers reach each other by IP and by name over IPv4 and IPv6, and fetch over HTTP', async () => {
    await env.createNetwork('net1', ['--ipv6']);
    await env.runDetached('web', 'net1', ['httpd', '-f', '-p', '80', '-h', '/www']);
    await env.runDetached('client', 'net1');
    const web4 = await env.address('web', 'net1');
    const web6 = await env.address('web', 'net1', 6);
    assert.ok(contains(parseCidr(V4_RANGE), 4, parseAddress(web4).value), `${web4} not in ${V4_RANGE}`);
    assert.match(web6, /^f00d::d3:0:/);
    const inside = await env.exec('client', 'ip -4 addr show eth0; ip route');
    assert.match(inside.stdout, /inet 10\.211\.\d+\.\d+\/32/, 'container address is a /32');
    assert.match(inside.stdout, /default via 10\.211\.0\.1 dev eth0/);
    const r = await env.exec('client', `ping -c1 -W3 ${web4} && ping -6 -c1 -W3 ${web6} && ping -c1 -W3 web && ping -c1 -W3 10.211.0.1 && ${WGET} http://web/`);
    assert.strictEqual(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /hello from cilium/);
    const once = await env.docker(['run', '--rm', '--net', 'net1', IMAGE, 'wget', '-q', '-T', '3', '-O-', 'http://web/']);
    assert.strictEqual(once.code, 0, once.stderr);
    assert.match(once.stdout, /hello from cilium/);
  });

  it('container-to-container traffic does not depend on the host FORWARD chain (dockerd sets DROP)', async () => {
    const saved = await Promise.all(['iptables', 'ip6tables'].map(async (t) => /-P FORWARD (\w+)/.exec(await must(t, ['-S', 'FORWARD']))![1]!));
    try {
      await must('iptables', ['-P', 'FORWARD', 'DROP']);
      await must('ip6tables', ['-P', 'FORWARD', 'DROP']);
      const r = await env.exec(
        'client',
        `${WGET} http://web/ && ping -c1 -W3 ${await env.address('web', 'net1')} && ping -6 -c1 -W3 ${await env.address('web', 'net1', 6)}`,
      );
      assert.strictEqual(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /ttl=63/, 'delivered as routed: the TTL went down by one');
    } finally {
      await must('iptables', ['-P', 'FORWARD', saved[0]!]);
      await must('ip6tables', ['-P', 'FORWARD', saved[1]!]);
    }
  });

  it('a second network without --subnet is created at once while containers run (no RequestPool loop)', async () => {
    const t0 = Date.now();
    await env.createNetwork('net2');
    assert.ok(Date.now() - t0 < 20_000);
    await env.runDetached('other', 'net2');
    const r = await env.exec('other', `ping -c1 -W3 ${await env.address('web', 'net1')}`);
    assert.strictEqual(r.code, 0, 'networks on the host range route to each other (policy, not topology, isolates)');
  });

  it('--subnet with --gateway and --ip-range: addresses from the range, the gateway answers', async () => {
    await env.createNetwork('sub1', ['--subnet', '192.168.211.0/24', '--gateway', '192.168.211.254', '--ip-range', '192.168.211.128/28']);
    const ipam = await env.ok(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{.IPRange}}{{end}}', 'sub1']);
    assert.strictEqual(ipam, '192.168.211.0/24 192.168.211.254 192.168.211.128/28');
    await env.runDetached('s1', 'sub1');
    await env.runDetached('s2', 'sub1');
    for (const c of ['s1', 's2']) {
      const last = Number((await env.address(c, 'sub1')).split('.')[3]);
      assert.ok(last >= 128 && last <= 143, `${c} got .${last}, outside the --ip-range`);
    }
    const r = await env.exec(
      's1',
      `ip route | grep default; ping -c1 -W3 192.168.211.254 && ping -c1 -W3 ${await env.address('s2', 'sub1')} && ping -c1 -W3 s2`,
    );
    assert.strictEqual(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /default via 192\.168\.211\.254/);
  });

  it('docker run --ip picks that address; a taken one is refused with the reason', async () => {
    await env.runDetached('fixed', 'sub1', undefined, ['--ip', '192.168.211.140']);
    assert.strictEqual(await env.address('fixed', 'sub1'), '192.168.211.140');
    const dup = await env.docker(['run', '--rm', '--net', 'sub1', '--ip', '192.168.211.140', IMAGE, 'true']);
    assert.notStrictEqual(dup.code, 0);
    assert.match(dup.stderr, /192\.168\.211\.140 is already in use/);
    await env.ok(['rm', '-f', 'fixed']);
  });

  it('docker network connect and disconnect add and remove an interface and its address', async () => {
    const before = await env.leftovers();
    await env.ok(['network', 'connect', 'sub1', 'client']);
    const addr = await env.address('client', 'sub1');
    const r = await env.exec('s2', `ping -c1 -W3 ${addr}`);
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual((await env.leftovers()).links, before.links + 1);
    assert.ok((await env.allocations()).some((a) => a.includes(` ${addr} endpoint`)));
    await env.ok(['network', 'disconnect', 'sub1', 'client']);
    assert.doesNotMatch((await env.exec('client', 'ip -o link')).stdout, /eth1/);
    assert.ok(!(await env.allocations()).some((a) => a.includes(` ${addr} `)), `${addr} still allocated after disconnect`);
    assert.deepStrictEqual(await env.leftovers(), before);
    const still = await env.exec('client', `${WGET} http://web/`);
    assert.strictEqual(still.code, 0, 'the first network keeps working');
  });

  it('kill -9 of the agent between two docker runs: the next container gets a fresh address, earlier ones still connect', async () => {
    const first = await env.address('client', 'net1');
    await env.agent.kill9();
    await env.agent.start();
    await env.runDetached('late', 'net1');
    const late = await env.address('late', 'net1');
    const running = await Promise.all(['web', 'client', 'late'].map((c) => env.address(c, 'net1')));
    assert.strictEqual(new Set(running).size, 3, `duplicate address among ${running.join(', ')}`);
    const r = await env.exec('late', `ping -c1 -W3 ${first} && ${WGET} http://web/`);
    assert.strictEqual(r.code, 0, r.stderr);
    const back = await env.exec('client', `ping -c1 -W3 ${late}`);
    assert.strictEqual(back.code, 0, back.stderr);
  });

  it('an exhausted pool fails docker run with a clear error and leaks nothing', async () => {
    await env.createNetwork('tiny', ['--subnet', '192.168.212.0/29']);
    const before = await env.leftovers();
    for (let i = 0; i < 5; i++) await env.runDetached(`t${i}`, 'tiny'); // .2-.6: .0 and .7 reserved, .1 the gateway
    const full = await env.docker(['run', '--rm', '--net', 'tiny', IMAGE, 'true']);
    assert.notStrictEqual(full.code, 0);
    assert.match(full.stderr, /no free address in pool 192\.168\.212\.0\/29 \(6 of 6 in use\)/);
    const after = await env.leftovers();
    assert.strictEqual(after.links, before.links + 5);
    await env.ok(['rm', '-f', 't0', 't1', 't2', 't3', 't4']);
    await env.ok(['network', 'rm', 'tiny']);
  });

  it('an overlapping --subnet is refused with the reason and changes nothing', async () => {
    const before = await env.pools();
    const a = await env.docker(['network', 'create', '-d', 'cilium-test', '--ipam-driver', 'cilium-test', '--subnet', '192.168.211.128/25', 'clash']);
    assert.notStrictEqual(a.code, 0);
    assert.match(a.stderr, /overlaps --subnet 192\.168\.211\.0\/24 of another network/);
    const b = await env.docker(['network', 'create', '-d', 'cilium-test', '--ipam-driver', 'cilium-test', '--subnet', '10.211.9.0/24', 'clash']);
    assert.match(b.stderr, /overlaps this agent's host range/);
    assert.deepStrictEqual(await env.pools(), before);
  });

  it('docker rm -f and docker network rm leave no veth, route or address behind', async () => {
    await env.ok(['rm', '-f', 'web', 'client', 'late', 'other', 's1', 's2']);
    for (const n of ['net1', 'net2', 'sub1']) await env.ok(['network', 'rm', n]);
    assert.deepStrictEqual(await env.leftovers(), NONE);
    assert.deepStrictEqual(await env.allocations(), []);
    assert.deepStrictEqual(await env.agent.api('/v1/network'), []);
  });
});
