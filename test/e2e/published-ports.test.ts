import assert from 'assert';
import { mkdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { TestAgent } from '../harness/agent';
import { TestDockerd, buildBusyboxImage } from '../harness/dockerd';
import { must, run, waitFor } from '../harness/exec';
import { HostAndOutside } from '../harness/netns';
import { IMAGE, WGET } from './env';

const CLI = join(__dirname, '../../../bin/cilium');
const TOOLS = join(__dirname, '../../../test/tools');
const HOST = 'cilium-pp-host';
const OUT = 'cilium-pp-out';
const DRIVER = 'cilium-pp-test';
/** The host's device towards the outside client, and the client: a namespace routed to the host. */
const DEVICE = { name: 'pp-host', peer: 'pp-out', v4: '198.18.1.1', v6: 'fd03::1' };
const CLIENT = { v4: '198.18.1.2', v6: 'fd03::2' };

interface Ev {
  type: string;
  reasonName: string;
  srcIdentity: number;
  dstIdentity: number;
  dport: number;
  seq: number;
}

interface Svc {
  id: number;
  frontend: string;
  protocol: string;
  backends: Array<{ address: string }>;
  published: string;
  container?: string;
}

const url = (host: string, port: number) => `http://${host.includes(':') ? `[${host}]` : host}:${port}/cgi-bin/ip`;

/** dockerd's iptables on and off; the host's clients translated at connect, or (--bpf-lb-sock=false) relayed by the agent. */
for (const { iptables, sockLb } of [
  { iptables: true, sockLb: true },
  { iptables: false, sockLb: false },
]) {
  /**
   * `docker run -p` on a cilium network, as with the bridge driver: a client
   * beyond the host, the host itself and other containers reach the
   * published port; the container sees the client's real address and its
   * ingress policy judges it; a port in use fails docker run; docker rm and
   * a crash leave nothing behind. dockerd and the agent run in a namespace
   * of the test's own, with an "outside" namespace routed to its device.
   */
  const how = `dockerd iptables ${iptables ? 'on' : 'off'}, the host's clients ${sockLb ? 'translated at connect' : "through the agent's relay"}`;
  describe(`published ports (-p): from beyond the host, the host and containers (${how})`, function () {
    this.timeout(600_000);
    const dockerd = new TestDockerd([], { iptables, netns: HOST });
    const agent = new TestAgent(
      DRIVER,
      ['--ipv4-range=10.216.0.0/16', '--ipv6-range=f00d::d8:0:0/96', `--docker-host=${dockerd.host}`, '--reconcile-grace=2', `--bpf-lb-sock=${sockLb}`],
      HOST,
    );
    const net = new HostAndOutside(HOST, OUT, DEVICE, CLIENT);
    const inOut = (cmd: string[]) => net.inOutside(cmd);
    const inHost = (cmd: string[]) => net.inHost(cmd);
    const cli = (...args: string[]) => run(CLI, ['--api-socket', agent.apiSocket, ...args], { timeoutMs: 30_000 });
    const exec = (c: string, script: string) => dockerd.docker(['exec', c, 'sh', '-c', script], 30_000);
    const lastSeq = async () => Math.max(0, ...(await agent.api<Ev[]>('/v1/events')).map((e) => e.seq));
    const services = () => agent.api<Svc[]>('/v1/service');
    let dir = '';
    let nettool = '';
    let clientV4 = '';

    /** What the web container saw as the client's address (httpd's CGI REMOTE_ADDR), or why it failed. */
    const seen = (r: { code: number; stdout: string; stderr: string }) =>
      r.code === 0 ? r.stdout.trim().replace(/^\[(::ffff:)?|\]$/g, '') : `failed: ${r.stderr.trim() || r.code}`;
    const fromOutside = async (host: string, port = 8080) => seen(await inOut(['busybox', 'timeout', '5', 'busybox', 'wget', '-q', '-O-', url(host, port)]));
    const fromHost = async (host: string, port = 8080) => seen(await inHost(['busybox', 'timeout', '5', 'busybox', 'wget', '-q', '-O-', url(host, port)]));

    /** A web container: busybox httpd on 80 telling the client's address, a UDP echo on 5353. */
    const runWeb = async (name: string, publish: string[], label = 'id=web') => {
      const r = await dockerd.docker(['run', '-d', '--name', name, '--net', 'pnet', '-l', label, ...publish, IMAGE, 'sleep', '3600'], 60_000);
      if (r.code !== 0) return r;
      await dockerd.ok(['cp', `${join(dir, 'www')}/.`, `${name}:/www`]);
      await dockerd.ok(['cp', nettool, `${name}:/bin/nettool`]);
      await dockerd.ok(['exec', '-d', name, 'httpd', '-f', '-p', '[::]:80', '-h', '/www']);
      await dockerd.ok(['exec', '-d', name, 'sh', '-c', 'while true; do nettool udp-echo 5353; done']);
      await waitFor(`${name} serving`, async () => (await exec(name, `${WGET} http://127.0.0.1/cgi-bin/ip`)).code === 0);
      return r;
    };

    before(async () => {
      await net.up();
      dir = join('/tmp', `cilium-pp-${process.pid}`);
      mkdirSync(join(dir, 'www', 'cgi-bin'), { recursive: true });
      writeFileSync(join(dir, 'www', 'cgi-bin', 'ip'), '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n', { mode: 0o755 });
      nettool = join(dir, 'nettool');
      await must('clang', ['-O2', '-Wall', '-static', '-o', nettool, join(TOOLS, 'nettool.c')]);
      await dockerd.start();
      await buildBusyboxImage(dockerd, IMAGE);
      await agent.start();
      await dockerd.ok(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--ipv6', 'pnet'], 30_000);
      const r = await runWeb('web', ['-p', '8080:80', '-p', '5353:5353/udp']);
      assert.strictEqual(r.code, 0, r.stderr);
      await dockerd.ok(['run', '-d', '--name', 'client', '--net', 'pnet', '-l', 'id=app1', IMAGE, 'sleep', '3600']);
      clientV4 = await dockerd.ok(['inspect', '-f', '{{(index .NetworkSettings.Networks "pnet").IPAddress}}', 'client']);
      await waitFor('endpoints ready', async () => (await agent.api<Array<{ state: string }>>('/v1/endpoint')).every((e) => e.state === 'ready'), 30_000);
    });
    after(async () => {
      const ids = (await dockerd.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length) await dockerd.docker(['rm', '-f', ...ids]);
      await dockerd.docker(['network', 'rm', 'pnet']);
      await agent.destroy();
      await dockerd.destroy();
      await net.down();
      await run('rm', ['-rf', dir]);
    });

    it('cilium service list shows each published port with its backend, both families', async () => {
      const web = await dockerd.ok(['inspect', '-f', '{{(index .NetworkSettings.Networks "pnet").IPAddress}}', 'web']);
      const list = await services();
      const byFrontend = Object.fromEntries(list.map((s) => [`${s.frontend}/${s.protocol}`, s]));
      assert.deepStrictEqual(Object.keys(byFrontend).sort(), ['0.0.0.0:5353/UDP', '0.0.0.0:8080/TCP', '[::]:5353/UDP', '[::]:8080/TCP'], JSON.stringify(list));
      assert.deepStrictEqual(
        byFrontend['0.0.0.0:8080/TCP']!.backends.map((b) => b.address),
        [`${web}:80`],
      );
      assert.strictEqual(byFrontend['0.0.0.0:8080/TCP']!.published, '0.0.0.0:8080->80/tcp');
      const text = await cli('service', 'list');
      assert.strictEqual(text.code, 0, text.stderr);
      assert.match(
        text.stdout,
        new RegExp(`0\\.0\\.0\\.0:8080/TCP\\s+HostPort\\s+1 => ${web.replace(/\./g, '\\.')}:80/TCP \\(active\\)\\s+0\\.0\\.0\\.0:8080->80/tcp \\(web\\)`),
      );
      const lb = await cli('bpf', 'lb', 'list');
      assert.strictEqual(lb.code, 0, lb.stderr);
      assert.match(lb.stdout, new RegExp(`0\\.0\\.0\\.0:8080/TCP\\s+${web.replace(/\./g, '\\.')}:80 \\(\\d+\\) \\(1\\)`));
    });

    it('a client beyond the host reaches it over IPv4 and IPv6, and the container sees its real address', async () => {
      assert.strictEqual(await fromOutside(DEVICE.v4), CLIENT.v4);
      assert.strictEqual(await fromOutside(DEVICE.v6), CLIENT.v6);
    });

    it(`the host reaches it on 127.0.0.1, ::1 and its own addresses${sockLb ? ', also while the agent is down' : ''}`, async () => {
      const all = async (when: string) => {
        for (const host of ['127.0.0.1', '::1', DEVICE.v4, DEVICE.v6]) {
          const who = await fromHost(host);
          assert.ok(!who.startsWith('failed'), `from the host to ${host}${when}: ${who}`);
        }
      };
      await all('');
      if (!sockLb) return;
      // Translated at connect, in the kernel: the agent's relay is not in the way.
      await agent.stop();
      try {
        await all(' (agent down)');
        const udp = await inHost([nettool, 'udp-whois', '127.0.0.1', '5353']);
        assert.strictEqual(udp.stdout.trim(), '127.0.0.1:5353', 'the reply comes from the address asked');
      } finally {
        await agent.start();
      }
    });

    it("another container reaches it on the host's address (hairpin), and is seen as itself", async () => {
      assert.strictEqual(seen(await exec('client', `${WGET} ${url(DEVICE.v4, 8080)}`)), clientV4);
    });

    it('UDP: a client beyond the host and the host itself get the echo', async () => {
      const out = await inOut([nettool, 'udp-ask', DEVICE.v4, '5353']);
      assert.strictEqual(out.stdout.trim(), 'reply', out.stderr);
      const host = await inHost([nettool, 'udp-ask', '127.0.0.1', '5353']);
      assert.strictEqual(host.stdout.trim(), 'reply', host.stderr);
    });

    it('ingress policy applies: the world is dropped with the reason, a selected container and a fromCIDR get in', async () => {
      const importRules = async (name: string, rules: object[]) => {
        const f = join(dir, name);
        writeFileSync(f, JSON.stringify(rules));
        const imp = await cli('policy', 'import', f);
        assert.strictEqual(imp.code, 0, imp.stderr);
      };
      const onlyApp1 = [
        {
          endpointSelector: { matchLabels: { id: 'web' } },
          ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app1' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
          labels: [{ key: 'pp-test', value: 'only-app1' }],
        },
      ];
      const since = await lastSeq();
      await importRules('only-app1.json', onlyApp1);
      try {
        await waitFor('the world dropped', async () => (await fromOutside(DEVICE.v4)).startsWith('failed'), 20_000);
        const drops = (await agent.api<Ev[]>('/v1/events')).filter((e) => e.seq > since && e.type === 'drop' && e.dport === 80);
        assert.ok(
          drops.some((d) => d.reasonName === 'Policy denied' && d.srcIdentity === 2),
          `a "Policy denied" drop from the world: ${JSON.stringify(drops)}`,
        );
        assert.strictEqual(seen(await exec('client', `${WGET} ${url(DEVICE.v4, 8080)}`)), clientV4);
        const withCidr = [
          {
            ...onlyApp1[0],
            ingress: [...onlyApp1[0]!.ingress, { fromCIDR: ['198.18.1.0/24'], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
            labels: [{ key: 'pp-test', value: 'cidr' }],
          },
        ];
        await importRules('cidr.json', withCidr);
        await waitFor('the outside CIDR admitted', async () => (await fromOutside(DEVICE.v4)) === CLIENT.v4, 20_000);
      } finally {
        await cli('policy', 'delete', '--all');
      }
    });

    it("a host port already published fails docker run with the engine's words, and leaves nothing", async () => {
      const before = (await services()).length;
      const r = await runWeb('web-dup', ['-p', '8080:80']);
      assert.notStrictEqual(r.code, 0);
      assert.match(r.stderr, /Bind for 0\.0\.0\.0:8080 failed: port is already allocated/);
      assert.strictEqual((await services()).length, before);
      assert.strictEqual(await fromOutside(DEVICE.v4), CLIENT.v4, 'the first container still has the port');
      await dockerd.docker(['rm', '-f', 'web-dup']);
    });

    it('-P publishes an exposed port on a free host port; docker rm frees it', async () => {
      const r = await runWeb('web-any', ['--expose', '80', '-P'], 'id=web-any');
      assert.strictEqual(r.code, 0, r.stderr);
      const mine = (await services()).filter((s) => s.container === 'web-any' && s.protocol === 'TCP');
      assert.strictEqual(mine.length, 2, JSON.stringify(mine));
      const port = Number(/:(\d+)$/.exec(mine[0]!.frontend)![1]);
      assert.ok(port > 1024, `host port ${port}`);
      assert.strictEqual(Number(/:(\d+)$/.exec(mine[1]!.frontend)![1]), port, 'the same port in both families');
      assert.strictEqual(await fromOutside(DEVICE.v4, port), CLIENT.v4);
      await dockerd.ok(['rm', '-f', 'web-any']);
      assert.deepStrictEqual(
        (await services()).filter((s) => s.container === 'web-any'),
        [],
      );
      // the port is free again: nothing on the host holds it
      const held = await inHost(['ss', '-Hltn', `sport = :${port}`]);
      assert.strictEqual(held.stdout.trim(), '', held.stdout);
    });

    it('a container removed while the agent is down (kill -9): its port is freed and its service gone after restart', async () => {
      const r = await runWeb('web-crash', ['-p', '9090:80'], 'id=web-crash');
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(await fromOutside(DEVICE.v4, 9090), CLIENT.v4);
      await agent.kill9();
      // the datapath keeps serving while the agent is down
      assert.strictEqual(await fromOutside(DEVICE.v4, 9090), CLIENT.v4);
      // the engine retries each plugin call that cannot reach the agent before giving up on it
      await dockerd.ok(['rm', '-f', 'web-crash'], 180_000);
      await agent.start();
      await waitFor('the service of the removed container gone', async () => !(await services()).some((s) => s.frontend.endsWith(':9090')), 60_000);
      const lb = await cli('bpf', 'lb', 'list');
      assert.doesNotMatch(lb.stdout, /:9090\//);
      assert.strictEqual((await inHost(['ss', '-Hltn', 'sport = :9090'])).stdout.trim(), '');
      assert.strictEqual(await fromOutside(DEVICE.v4), CLIENT.v4, 'the other published port was restored');
      const again = await runWeb('web-crash2', ['-p', '9090:80'], 'id=web-crash');
      assert.strictEqual(again.code, 0, again.stderr);
      assert.strictEqual(await fromOutside(DEVICE.v4, 9090), CLIENT.v4);
      await dockerd.ok(['rm', '-f', 'web-crash2']);
    });
  });
}
