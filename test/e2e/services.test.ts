import assert from 'assert';
import { mkdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { must, run, waitFor } from '../harness/exec';
import { Env, WGET } from './env';

const CLI = join(__dirname, '../../../bin/cilium');
const VIP = '10.96.0.10';
const VIP2 = '10.96.0.11';
const VIP_RANGE = '10.96.0.0/24';

interface Ev {
  type: string;
  reasonName: string;
  srcIdentity: number;
  dport: number;
  seq: number;
}

interface Svc {
  id: number;
  type: string;
  frontend: string;
  backends: Array<{ address: string }>;
}

/**
 * User-defined services: a virtual address and port that containers reach,
 * translated per packet in their egress program to a backend: given
 * explicitly (Cilium's `cilium service update --backends`), or every ready
 * container whose labels match a selector, followed as containers come and go.
 */
describe('services: virtual addresses translated to backends in BPF, by list or by label selector', function () {
  this.timeout(600_000);
  const env = new Env();
  const cli = (...args: string[]) => run(CLI, ['--api-socket', env.agent.apiSocket, ...args], { timeoutMs: 30_000 });
  const services = () => env.agent.api<Svc[]>('/v1/service');
  /** Who answered (the backend's hostname, from its CGI), or why the request failed. */
  const ask = async (from: string, host: string, port = 80) => {
    const r = await env.exec(from, `${WGET} http://${host}:${port}/cgi-bin/who`);
    return r.code === 0 ? r.stdout.trim() : `failed: ${r.stderr.trim() || r.code}`;
  };
  const lastSeq = async () => Math.max(0, ...(await env.agent.api<Ev[]>('/v1/events')).map((e) => e.seq));
  const dir = join('/tmp', `cilium-svc-${process.pid}`);
  const web = async (name: string, labels: string[]) => {
    await env.runDetached(name, 'snet', ['sleep', '3600'], ['--hostname', name, ...labels.flatMap((l) => ['-l', l])]);
    await env.ok(['cp', `${dir}/.`, `${name}:/www`]);
    await env.ok(['exec', '-d', name, 'httpd', '-f', '-p', '80', '-h', '/www']);
    await waitFor(`${name} serving`, async () => (await env.exec(name, `${WGET} http://127.0.0.1/cgi-bin/who`)).code === 0);
  };
  const ready = () =>
    waitFor('endpoints ready', async () => (await env.agent.api<Array<{ state: string }>>('/v1/endpoint')).every((e) => e.state === 'ready'), 30_000);

  before(async () => {
    // A virtual address no service answers must not leave the machine (the network rule): held here while the test runs.
    await run('ip', ['route', 'del', 'blackhole', VIP_RANGE]);
    await must('ip', ['route', 'add', 'blackhole', VIP_RANGE]);
    mkdirSync(join(dir, 'cgi-bin'), { recursive: true });
    writeFileSync(join(dir, 'cgi-bin', 'who'), '#!/bin/sh\necho "Content-Type: text/plain"\necho\nhostname\n', { mode: 0o755 });
    await env.up();
    await env.createNetwork('snet');
    await web('web1', ['app=web', 'id=web']);
    await web('web2', ['app=web', 'id=web']);
    await env.runDetached('client', 'snet', ['sleep', '3600'], ['-l', 'id=app1']);
    await env.runDetached('other', 'snet', ['sleep', '3600'], ['-l', 'id=app2']);
    await ready();
  });
  after(async () => {
    await env.down();
    await run('ip', ['route', 'del', 'blackhole', VIP_RANGE]);
    await run('rm', ['-rf', dir]);
  });

  it('a selector service spreads new connections over every matching container', async () => {
    const r = await cli('service', 'update', '--id', '10', '--frontend', `${VIP}:80`, '--selector', 'app=web', '--port', '80');
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Service 10 ${VIP}:80/TCP: 2 backends`));
    const seen = new Set<string>();
    for (let i = 0; i < 30 && seen.size < 2; i++) seen.add(await ask('client', VIP));
    assert.deepStrictEqual([...seen].sort(), ['web1', 'web2']);
    const list = await cli('service', 'list');
    assert.match(
      list.stdout,
      new RegExp(
        `10\\s+${VIP.replace(/\./g, '\\.')}:80/TCP\\s+ClusterIP\\s+1 => \\S+:80/TCP \\(active\\), 2 => \\S+:80/TCP \\(active\\)\\s+selector app=web port 80`,
      ),
    );
  });

  it('backends follow the selector: a new matching container joins, a removed one leaves', async () => {
    await web('web3', ['app=web']);
    await waitFor('web3 a backend', async () => (await services()).find((s) => s.id === 10)!.backends.length === 3, 20_000);
    await env.ok(['rm', '-f', 'web3']);
    await waitFor('web3 gone from the backends', async () => (await services()).find((s) => s.id === 10)!.backends.length === 2, 20_000);
    for (let i = 0; i < 10; i++) assert.match(await ask('client', VIP), /^web[12]$/);
  });

  it('explicit backends, as Cilium takes them; a redefinition replaces them', async () => {
    const web1 = await env.address('web1', 'snet');
    const web2 = await env.address('web2', 'snet');
    assert.strictEqual((await cli('service', 'update', '--id', '11', '--frontend', `${VIP2}:8080`, '--backends', `${web1}:80`)).code, 0);
    for (let i = 0; i < 5; i++) assert.strictEqual(await ask('client', VIP2, 8080), 'web1');
    assert.strictEqual((await cli('service', 'update', '--id', '11', '--frontend', `${VIP2}:8080`, '--backends', `${web2}:80`)).code, 0);
    await waitFor('the new backend answers', async () => (await ask('client', VIP2, 8080)) === 'web2', 20_000);
  });

  it("policy is the backend's: a client its rule does not allow is dropped with the reason, an allowed one gets through", async () => {
    const f = join(dir, 'rules.json');
    writeFileSync(
      f,
      JSON.stringify([
        {
          labels: [{ key: 'name', value: 'svc-test' }],
          endpointSelector: { matchLabels: { app: 'web' } },
          ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app1' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
        },
      ]),
    );
    const since = await lastSeq();
    assert.strictEqual((await cli('policy', 'import', f)).code, 0);
    try {
      assert.match(await ask('client', VIP), /^web[12]$/);
      assert.match(await ask('other', VIP), /^failed/);
      const drops = (await env.agent.api<Ev[]>('/v1/events')).filter((e) => e.seq > since && e.type === 'drop' && e.dport === 80);
      assert.ok(
        drops.some((d) => d.reasonName === 'Policy denied'),
        JSON.stringify(drops),
      );
    } finally {
      await cli('policy', 'delete', '--all');
    }
  });

  it('bad input is refused with the cause and changes nothing; services survive an agent restart; delete ends one', async () => {
    const before = await services();
    const bad = await cli('service', 'update', '--id', '12', '--frontend', 'nowhere:80', '--backends', '10.0.0.1:80');
    assert.strictEqual(bad.code, 1);
    assert.match(bad.stderr, /frontend "nowhere:80" must be ADDRESS:PORT/);
    const clash = await cli('service', 'update', '--id', '12', '--frontend', `${VIP}:80`, '--backends', '10.0.0.1:80');
    assert.strictEqual(clash.code, 1);
    assert.match(clash.stderr, /frontend 10\.96\.0\.10:80\/TCP is already service 10's/);
    assert.deepStrictEqual(await services(), before);
    await env.agent.stop();
    await env.agent.start();
    await waitFor('services restored', async () => (await services()).length === before.length, 20_000);
    assert.match(await ask('client', VIP), /^web[12]$/);
    assert.strictEqual((await cli('service', 'delete', '10')).code, 0);
    assert.match(await ask('client', VIP), /^failed/);
    const again = await cli('service', 'delete', '10');
    assert.strictEqual(again.code, 1);
    assert.match(again.stderr, /service 10 not found/);
    const lb = await cli('bpf', 'lb', 'list');
    assert.doesNotMatch(lb.stdout, new RegExp(VIP.replace(/\./g, '\\.')));
  });
});
