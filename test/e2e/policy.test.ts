import assert from 'assert';
import { writeFileSync } from 'fs';
import { join } from 'path';
import { httpUnix } from '../harness/agent';
import { run } from '../harness/exec';
import { OutsideHost } from '../harness/netns';
import { Env, IMAGE, WGET } from './env';

const CLI = join(__dirname, '../../../bin/cilium');

interface Ev {
  type: string;
  reasonName: string;
  srcIdentity: number;
  dstIdentity: number;
  srcLabels: string[];
  dstLabels: string[];
  dport: number;
  seq: number;
}

const L4_RULE = [
  {
    labels: [{ key: 'name', value: 'l4-rule' }],
    endpointSelector: { matchLabels: { id: 'app1' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app2' } }], toPorts: [{ ports: [{ port: '80', protocol: 'tcp' }] }] }],
  },
];

describe('identities and L3/L4 policy enforced in BPF (real dockerd, kernel, packets)', function () {
  this.timeout(600_000);
  const env = new Env();
  const outside = new OutsideHost();
  let dir: string;
  const cli = (...args: string[]) => run(CLI, ['--api-socket', env.agent.apiSocket, ...args], { timeoutMs: 30_000 });
  const importPolicy = async (name: string, rules: unknown) => {
    const f = join(dir, `${name}.json`);
    writeFileSync(f, JSON.stringify(rules));
    const r = await cli('policy', 'import', f);
    assert.strictEqual(r.code, 0, r.stderr);
    return Number(/Revision: (\d+)/.exec(r.stdout)![1]);
  };
  /** Exit code of an HTTP fetch from a container (0: answered). */
  const fetch = async (from: string, url: string) => (await env.exec(from, `${WGET} ${url} >/dev/null`)).code;
  const ip = (c: string) => env.address(c, 'pnet');
  const lastSeq = async () => Math.max(0, ...(await env.agent.api<Ev[]>('/v1/events')).map((e) => e.seq));

  before(async () => {
    await env.up();
    dir = env.agent.dir;
    await outside.up();
    await env.createNetwork('pnet', ['--ipv6']);
    const web = ['sh', '-c', 'httpd -p 81 -h /www && exec httpd -f -p 80 -h /www'];
    await env.runDetached('app1', 'pnet', web, ['-l', 'id=app1']);
    await env.runDetached('app2', 'pnet', web, ['-l', 'id=app2']);
    await env.runDetached('app3', 'pnet', web, ['-l', 'id=app3', '--cap-add', 'NET_ADMIN']);
  });
  after(async () => {
    await outside.down();
    await env.down();
  });

  it('gives each label set its own identity (>= 256) and leaves housekeeping labels out', async () => {
    const eps = await env.agent.api<Array<{ containerName: string; identity: number; labels: string[]; state: string }>>('/v1/endpoint');
    const byName = Object.fromEntries(eps.map((e) => [e.containerName, e]));
    for (const n of ['app1', 'app2', 'app3']) {
      assert.strictEqual(byName[n]?.state, 'ready', `${n}: ${JSON.stringify(byName[n])}`);
      assert.deepStrictEqual(byName[n].labels, [`container:id=${n}`]);
      assert.ok(byName[n].identity >= 256);
    }
    assert.strictEqual(new Set(eps.map((e) => e.identity)).size, 3);
    await env.runDetached('app1b', 'pnet', undefined, ['-l', 'id=app1', '-l', 'com.docker.compose.project=demo']);
    const again = await env.agent.api<Array<{ containerName: string; identity: number }>>('/v1/endpoint');
    assert.strictEqual(again.find((e) => e.containerName === 'app1b')!.identity, byName.app1!.identity, 'same labels, same identity');
    await env.ok(['rm', '-f', 'app1b']);
  });

  it('no policy: everything flows', async () => {
    for (const [from, to] of [
      ['app2', 'app1'],
      ['app3', 'app1'],
      ['app1', 'app2'],
      ['app2', 'app3'],
    ]) {
      assert.strictEqual(await fetch(from!, `http://${to}/`), 0, `${from} -> ${to}`);
    }
    assert.strictEqual(await fetch('app2', `http://${await ip('app1')}:81/`), 0);
    assert.strictEqual(await fetch('app2', `http://${outside.address}/`), 0, 'container -> outside host');
    assert.strictEqual(await fetch('app2', `http://${outside.exceptAddress}/`), 0, 'container -> outside host, second address');
  });

  it('"app1 accepts TCP 80 only from id=app2": app2 gets in, app3 and port 81 are dropped with a named drop event', async () => {
    const since = await lastSeq();
    const rev = await importPolicy('l4', L4_RULE);
    assert.ok(rev >= 2);
    assert.strictEqual(await fetch('app2', 'http://app1/'), 0, 'app2 -> app1:80 allowed');
    assert.notStrictEqual(await fetch('app3', 'http://app1/'), 0, 'app3 -> app1:80 denied');
    assert.notStrictEqual(await fetch('app2', `http://${await ip('app1')}:81/`), 0, 'app2 -> app1:81 denied');
    assert.strictEqual(await fetch('app1', 'http://app2/'), 0, 'app1 -> app2: egress not selected');
    const verdict = async (from: string, to: string, dport: number) =>
      ((await httpUnix(env.agent.apiSocket, 'POST', '/v1/policy/resolve', JSON.stringify({ from: [from], to: [to], dport }))).body as { verdict: string })
        .verdict;
    assert.strictEqual(await verdict('id=app2', 'id=app1', 80), 'ALLOWED');
    assert.strictEqual(await verdict('id=app3', 'id=app1', 80), 'DENIED');
    assert.strictEqual(await verdict('id=app2', 'id=app1', 81), 'DENIED');
    const drops = (await env.agent.api<Ev[]>(`/v1/events?type=drop&since=${since}`)).filter((e) => e.reasonName === 'Policy denied' && e.dport === 80);
    const d = drops.find((e) => e.srcLabels.includes('container:id=app3'));
    assert.ok(d, `no drop event for app3 -> app1: ${JSON.stringify(drops)}`);
    assert.deepStrictEqual(d.dstLabels, ['container:id=app1']);
    assert.ok(d.srcIdentity >= 256 && d.dstIdentity >= 256);
  });

  it('"app2 may reach only app1 on TCP 80" (egress) stops app2 -> app3', async () => {
    await importPolicy('egress', [
      {
        labels: [{ key: 'name', value: 'app2-egress' }],
        endpointSelector: { matchLabels: { id: 'app2' } },
        egress: [{ toEndpoints: [{ matchLabels: { id: 'app1' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
      },
    ]);
    assert.notStrictEqual(await fetch('app2', 'http://app3/'), 0, 'app2 -> app3 denied');
    assert.strictEqual(await fetch('app2', 'http://app1/'), 0, 'app2 -> app1:80 still allowed');
    assert.strictEqual(await fetch('app1', 'http://app2/'), 0, 'replies to app1 -> app2 pass app2 egress');
  });

  it('toCIDR and fromCIDR rules against a namespace the test created', async () => {
    assert.notStrictEqual(await fetch('app2', `http://${outside.address}/`), 0, 'app2 egress allows only app1 so far');
    assert.notStrictEqual(await outside.fetch(`http://${await ip('app1')}/`), 0, 'outside -> app1 not in the l4 rule');
    await importPolicy('cidr', [
      {
        labels: [{ key: 'name', value: 'app2-cidr' }],
        endpointSelector: { matchLabels: { id: 'app2' } },
        egress: [{ toCIDRSet: [{ cidr: '192.168.250.0/24', except: ['192.168.250.128/25'] }] }],
      },
      {
        labels: [{ key: 'name', value: 'app1-cidr' }],
        endpointSelector: { matchLabels: { id: 'app1' } },
        ingress: [{ fromCIDR: ['192.168.250.0/24'], toPorts: [{ ports: [{ port: '80' }] }] }],
      },
    ]);
    assert.strictEqual(await fetch('app2', `http://${outside.address}/`), 0, 'toCIDRSet allows the outside host');
    assert.strictEqual(await outside.fetch(`http://${await ip('app1')}/`), 0, 'fromCIDR lets the outside host in on 80');
    assert.notStrictEqual(await outside.fetch(`http://${await ip('app1')}:81/`), 0, 'but not on 81');
    assert.strictEqual(await outside.fetch(`http://${await ip('app3')}/`), 0, 'app3 has no ingress rule: open');
    assert.notStrictEqual(await fetch('app2', `http://${outside.exceptAddress}/`), 0, 'the except prefix stays denied');
  });

  it("a container sending with another container's source address gets nothing through", async () => {
    const since = await lastSeq();
    const victim = await ip('app2');
    const r = await env.exec('app3', `ip addr add ${victim}/32 dev eth0 && ping -c2 -W2 -I ${victim} ${await ip('app1')}`);
    assert.notStrictEqual(r.code, 0, `spoofed ping got an answer: ${r.stdout}`);
    await env.exec('app3', `ip addr del ${victim}/32 dev eth0`);
    const drops = await env.agent.api<Ev[]>(`/v1/events?type=drop&since=${since}`);
    assert.ok(
      drops.some((e) => e.reasonName === 'Invalid source ip'),
      JSON.stringify(drops.map((e) => e.reasonName)),
    );
  });

  it('a fresh container is enforced under its identity from its first packet: 20 of 20 and 10 at once', async () => {
    const runOnce = (label: string) =>
      env.docker(['run', '--rm', '--net', 'pnet', '-l', `id=${label}`, IMAGE, 'wget', '-q', '-T', '3', '-O-', 'http://app1/'], 60_000);
    for (let i = 0; i < 20; i++) {
      const r = await runOnce('app2');
      assert.strictEqual(r.code, 0, `run ${i}: ${r.stderr}`);
    }
    const together = await Promise.all(Array.from({ length: 10 }, () => runOnce('app2')));
    assert.deepStrictEqual(
      together.map((r) => r.code),
      Array(10).fill(0),
    );
    for (let batch = 0; batch < 2; batch++) {
      const denied = await Promise.all(Array.from({ length: 10 }, () => runOnce('app3')));
      assert.ok(
        denied.every((r) => r.code !== 0),
        `app3 got through: ${denied.map((r) => r.code).join(',')}`,
      );
    }
  });

  it('with the agent stopped, allowed flows pass and denied ones drop; after a restart nothing changed', async () => {
    const before = await Promise.all([env.agent.api<{ revision: number }>('/v1/policy'), env.agent.api('/v1/identity')]);
    await env.agent.stop();
    assert.strictEqual(await fetch('app2', 'http://app1/'), 0, 'allowed while the agent is down');
    assert.notStrictEqual(await fetch('app3', 'http://app1/'), 0, 'denied while the agent is down');
    await env.agent.start();
    const after = await Promise.all([env.agent.api<{ revision: number }>('/v1/policy'), env.agent.api('/v1/identity')]);
    assert.deepStrictEqual(after, before);
    assert.strictEqual(await fetch('app2', 'http://app1/'), 0);
    assert.notStrictEqual(await fetch('app3', 'http://app1/'), 0);
  });

  it('policy delete --all: everything flows again', async () => {
    const r = await cli('policy', 'delete', '--all');
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /Revision: \d+/);
    assert.strictEqual(await fetch('app3', 'http://app1/'), 0);
    assert.strictEqual(await fetch('app2', 'http://app3/'), 0);
    assert.strictEqual(await fetch('app2', `http://${await ip('app1')}:81/`), 0);
  });

  it('an invalid policy names the rule and field at fault and imports nothing', async () => {
    const rev = (await env.agent.api<{ revision: number }>('/v1/policy')).revision;
    const f = join(dir, 'bad.json');
    writeFileSync(
      f,
      JSON.stringify([L4_RULE[0], { labels: [{ key: 'name', value: 'bad' }], endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '99999' }] }] }] }]),
    );
    const r = await cli('policy', 'import', f);
    assert.notStrictEqual(r.code, 0);
    assert.match(r.stderr, /rule 1 \(name=bad\): ingress\[0\]\.toPorts\[0\]\.ports\[0\]\.port: "99999" is not a port number/);
    assert.strictEqual((await env.agent.api<{ revision: number }>('/v1/policy')).revision, rev);
  });
});
