import assert from 'assert';
import { mkdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { must, run, waitFor } from '../harness/exec';
import { Env, WGET } from './env';

const CLI = join(__dirname, '../../../bin/cilium');
const TOOLS = join(__dirname, '../../../test/tools');
const VIP = '10.96.0.10';
const VIP2 = '10.96.0.11';
const VIP3 = '10.96.0.12';
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
 * translated per packet in their egress program to a backend, and the host
 * reaches, its sockets given a backend when they connect: backends given
 * explicitly (Cilium's `cilium service update --backends`), or every ready
 * container whose labels match a selector, followed as containers come and go.
 */
for (const maglev of [false, true]) {
  describe(`services: virtual addresses translated to backends in BPF, by list or by label selector (backends picked ${maglev ? 'by Maglev' : 'at random'})`, function () {
    this.timeout(600_000);
    const env = new Env(maglev ? ['--bpf-lb-algorithm=maglev', '--bpf-lb-maglev-table-size=251'] : []);
    const cli = (...args: string[]) => run(CLI, ['--api-socket', env.agent.apiSocket, ...args], { timeoutMs: 30_000 });
    const services = () => env.agent.api<Svc[]>('/v1/service');
    /** Who answered (the backend's hostname, from its CGI), or why the request failed. */
    const ask = async (from: string, host: string, port = 80) => {
      const r = await env.exec(from, `${WGET} http://${host}:${port}/cgi-bin/who`);
      return r.code === 0 ? r.stdout.trim() : `failed: ${r.stderr.trim() || r.code}`;
    };
    const lastSeq = async () => Math.max(0, ...(await env.agent.api<Ev[]>('/v1/events')).map((e) => e.seq));
    const dir = join('/tmp', `cilium-svc-${process.pid}`);
    const nettool = join('/tmp', `cilium-svc-nettool-${process.pid}`);
    /** A web backend: httpd on 80 telling its hostname, a UDP echo on 5353. */
    const web = async (name: string, labels: string[]) => {
      await env.runDetached(name, 'snet', ['sleep', '3600'], ['--hostname', name, ...labels.flatMap((l) => ['-l', l])]);
      await env.ok(['cp', `${dir}/.`, `${name}:/www`]);
      await env.ok(['cp', nettool, `${name}:/bin/nettool`]);
      await env.ok(['exec', '-d', name, 'httpd', '-f', '-p', '80', '-h', '/www']);
      await env.ok(['exec', '-d', name, 'sh', '-c', 'while true; do nettool udp-echo 5353; done']);
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
      await must('clang', ['-O2', '-Wall', '-static', '-o', nettool, join(TOOLS, 'nettool.c')]);
      await env.up();
      await env.createNetwork('snet');
      await web('web1', ['app=web', 'id=web']);
      await web('web2', ['app=web', 'id=web']);
      await web('web3', ['app=web', 'id=web']);
      await env.runDetached('client', 'snet', ['sleep', '3600'], ['-l', 'id=app1']);
      await env.ok(['cp', nettool, 'client:/bin/nettool']);
      await env.runDetached('other', 'snet', ['sleep', '3600'], ['--hostname', 'other', '-l', 'id=app2']);
      await ready();
    });
    after(async () => {
      await env.down();
      await run('ip', ['route', 'del', 'blackhole', VIP_RANGE]);
      await run('rm', ['-rf', dir, nettool]);
    });

    it('a selector service spreads 100 connections over its 3 matching containers, each more than 15%', async () => {
      const r = await cli('service', 'update', '--id', '10', '--frontend', `${VIP}:80`, '--selector', 'app=web', '--backend-port', '80');
      assert.strictEqual(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`Service 10 ${VIP}:80/TCP: 3 backends`));
      const answers = await env.exec('client', `for i in $(seq 100); do ${WGET} http://${VIP}/cgi-bin/who || echo failed; done`);
      const counts = new Map<string, number>();
      for (const who of answers.stdout.trim().split('\n')) counts.set(who, (counts.get(who) ?? 0) + 1);
      assert.deepStrictEqual([...counts.keys()].sort(), ['web1', 'web2', 'web3'], answers.stdout);
      for (const [who, n] of counts) assert.ok(n > 15, `${who} answered ${n} of 100`);
      const status = await cli('status');
      assert.match(status.stdout, maglev ? /Services: +\d+; backends by Maglev \(table of 251\)/ : /Services: +\d+; backends at random/);
      const list = await cli('service', 'list');
      assert.match(
        list.stdout,
        new RegExp(
          `10\\s+${VIP.replace(/\./g, '\\.')}:80/TCP\\s+ClusterIP\\s+1 => \\S+:80/TCP \\(active\\), 2 => \\S+:80/TCP \\(active\\), 3 => \\S+:80/TCP \\(active\\)\\s+selector app=web port 80`,
        ),
      );
    });

    it('backends follow the selector: a stopped container gets no more connections, a new matching one joins, a removed one leaves', async () => {
      await env.ok(['stop', '-t', '1', 'web3']);
      await waitFor('web3 gone from the backends', async () => (await services()).find((s) => s.id === 10)!.backends.length === 2, 20_000);
      const answers = await env.exec('client', `for i in $(seq 20); do ${WGET} http://${VIP}/cgi-bin/who || echo failed; done`);
      for (const who of answers.stdout.trim().split('\n')) assert.match(who, /^web[12]$/);
      await env.ok(['rm', '-f', 'web3']);
      await web('web4', ['app=web']);
      await waitFor('web4 a backend', async () => (await services()).find((s) => s.id === 10)!.backends.length === 3, 20_000);
      await env.ok(['rm', '-f', 'web4']);
      await waitFor('web4 gone from the backends', async () => (await services()).find((s) => s.id === 10)!.backends.length === 2, 20_000);
      for (let i = 0; i < 10; i++) assert.match(await ask('client', VIP), /^web[12]$/);
    });

    it('a backend reaching its own service is answered by itself too (hairpin, from 169.254.42.1)', async () => {
      const answers = await env.exec('web1', `for i in $(seq 20); do ${WGET} http://${VIP}/cgi-bin/who || echo failed; done`);
      const who = answers.stdout.trim().split('\n');
      assert.deepStrictEqual(
        who.filter((w) => !/^web[12]$/.test(w)),
        [],
        answers.stdout,
      );
      assert.ok(who.includes('web1'), `web1 never picked itself in 20 connections: ${answers.stdout}`);
    });

    it("a connection straight to a backend from the ports a service connection to it just used is the backend's, not the service's", async () => {
      // The tuple is the same as the translated connection's: its replies must not still take the service's address.
      const req = `printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | nc -w 3 -p 40123`;
      const viaService = await env.exec('client', `${req} ${VIP} 80`);
      const who = /\n\r?\n(web\d)\s*$/.exec(viaService.stdout)?.[1];
      assert.ok(who, `through the service: ${viaService.stdout} ${viaService.stderr}`);
      const direct = await env.exec('client', `${req} ${await env.address(who, 'snet')} 80`);
      assert.match(direct.stdout, new RegExp(`\n\r?\n${who}\\s*$`), `straight to ${who}: ${direct.stderr}`);
    });

    it("the host reaches a service: its sockets get a backend at connect, getpeername and recvfrom show the service's address", async () => {
      const host = await run('busybox', ['timeout', '5', 'busybox', 'wget', '-q', '-O-', `http://${VIP}/cgi-bin/who`]);
      assert.match(host.stdout.trim(), /^web[12]$/, host.stderr);
      assert.strictEqual((await run(nettool, ['tcp-peer', VIP, '80'])).stdout.trim(), `${VIP}:80`);
      const r = await cli('service', 'update', '--id', '13', '--frontend', `${VIP}:5353`, '--protocol', 'udp', '--selector', 'app=web', '--port', '5353');
      assert.strictEqual(r.code, 0, r.stderr);
      try {
        assert.strictEqual((await run(nettool, ['udp-whois', VIP, '5353'])).stdout.trim(), `${VIP}:5353`);
        assert.strictEqual((await env.exec('client', `nettool udp-ask ${VIP} 5353`)).stdout.trim(), 'reply');
      } finally {
        await cli('service', 'delete', '13');
      }
      const gone = await run(nettool, ['tcp-peer', '10.96.0.99', '80']);
      assert.doesNotMatch(gone.stdout, /10\.96\.0\.99:80/, 'a VIP that is no service is not translated');
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

    it("toServices: egress to a named service's backends, by its selector or its given backends, follows the service as it changes", async () => {
      const otherIp = await env.address('other', 'snet');
      await env.ok(['cp', `${dir}/.`, 'other:/www']);
      await env.ok(['exec', '-d', 'other', 'httpd', '-f', '-p', '80', '-h', '/www']);
      assert.strictEqual(
        (await cli('service', 'update', '--id', '14', '--name', 'web', '--frontend', `${VIP3}:80`, '--selector', 'app=web', '--backend-port', '80')).code,
        0,
      );
      const f = join(dir, 'to-services.json');
      writeFileSync(
        f,
        JSON.stringify([
          {
            labels: [{ key: 'name', value: 'to-services' }],
            endpointSelector: { matchLabels: { id: 'app1' } },
            egress: [
              { toServices: [{ k8sService: { serviceName: 'web' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] },
              { toServices: [{ k8sService: { serviceName: 'fixed', namespace: 'default' } }] },
            ],
          },
        ]),
      );
      assert.strictEqual((await cli('policy', 'import', f)).code, 0);
      try {
        assert.match(await ask('client', VIP3), /^web[12]$/, 'the named service is reached');
        const since = await lastSeq();
        assert.match(await ask('client', otherIp), /^failed/, 'not a backend of any allowed service');
        const drops = (await env.agent.api<Ev[]>('/v1/events')).filter((e) => e.seq > since && e.type === 'drop' && e.dport === 80);
        assert.ok(
          drops.some((d) => d.reasonName === 'Policy denied'),
          JSON.stringify(drops),
        );
        assert.strictEqual(
          (await cli('service', 'update', '--id', '15', '--name', 'fixed', '--frontend', `${VIP3}:8080`, '--backends', `${otherIp}:80`)).code,
          0,
        );
        await waitFor('egress to the backend of "fixed"', async () => (await ask('client', otherIp)) === 'other', 20_000);
        const list = await cli('service', 'list');
        assert.match(list.stdout, /name fixed/);
        assert.strictEqual((await cli('service', 'delete', '15')).code, 0);
        assert.match(await ask('client', otherIp), /^failed/, 'the service gone, so is the allow');
        const dup = await cli('service', 'update', '--id', '16', '--name', 'web', '--frontend', `${VIP3}:9090`, '--backends', `${otherIp}:80`);
        assert.strictEqual(dup.code, 1);
        assert.match(dup.stderr, /the name web is already service 14's/);
      } finally {
        await cli('policy', 'delete', '--all');
        await cli('service', 'delete', '14');
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
      const down = await run('busybox', ['timeout', '5', 'busybox', 'wget', '-q', '-O-', `http://${VIP}/cgi-bin/who`]);
      assert.match(down.stdout.trim(), /^web[12]$/, `the host reaches the service while the agent is down: ${down.stderr}`);
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
}
