import assert from 'assert';
import { ChildProcess, spawn } from 'child_process';
import { mkdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { TestAgent } from '../harness/agent';
import { TestDockerd, buildBusyboxImage } from '../harness/dockerd';
import { must, run, waitFor } from '../harness/exec';
import { HostAndOutside } from '../harness/netns';
import { IMAGE, WGET } from './env';

const CLI = join(__dirname, '../../../bin/cilium');
const TOOLS = join(__dirname, '../../../test/tools');
const HOST = 'cilium-masq-host';
const OUT = 'cilium-masq-out';
const DRIVER = 'cilium-masq-test';
/** The outside server: reachable from the host's namespace only, with no route back to any container range. */
const SERVER = { v4: '198.18.0.2', v6: 'fd02::2' };
const DEVICE = { name: 'mq-host', peer: 'mq-out', v4: '198.18.0.1', v6: 'fd02::1' };

interface Ev {
  type: string;
  reasonName: string;
  srcIdentity: number;
  dstIdentity: number;
  dport: number;
  seq: number;
}

for (const iptables of [true, false]) {
  /**
   * Containers on a cilium network reach a server beyond the host that has
   * no route back to them: their traffic leaves with the host device's
   * address, the replies find their way back, and egress policy is decided
   * on the container's own identity before the translation. A dockerd with
   * iptables on (FORWARD policy DROP) and one with it off, each in a network
   * namespace of the test's own with the agent beside it.
   */
  describe(`masquerade: containers reach the world through the host's address (dockerd iptables ${iptables ? 'on' : 'off'})`, function () {
    this.timeout(600_000);
    const dockerd = new TestDockerd([], { iptables, netns: HOST });
    const agent = new TestAgent(DRIVER, ['--ipv4-range=10.215.0.0/16', '--ipv6-range=f00d::d7:0:0/96', `--docker-host=${dockerd.host}`], HOST);
    const net = new HostAndOutside(HOST, OUT, DEVICE, SERVER);
    const inOut = (cmd: string[]) => net.inOutside(cmd);
    const cli = (...args: string[]) => run(CLI, ['--api-socket', agent.apiSocket, ...args], { timeoutMs: 30_000 });
    const exec = (c: string, script: string, timeoutMs = 30_000) => dockerd.docker(['exec', c, 'sh', '-c', script], timeoutMs);
    const lastSeq = async () => Math.max(0, ...(await agent.api<Ev[]>('/v1/events')).map((e) => e.seq));
    /** cilium policy import of rules written to a file. */
    const importRules = async (name: string, rules: unknown) => {
      const f = join(agent.dir, `${name}.json`);
      writeFileSync(f, JSON.stringify(rules));
      const r = await cli('policy', 'import', f);
      assert.strictEqual(r.code, 0, r.stderr);
    };
    const servers: ChildProcess[] = [];
    let www = '';
    let nettool = '';

    /** What the outside server saw as the client's address (busybox httpd's CGI REMOTE_ADDR), or why it failed. */
    const whoAmI = async (c: string, host: string, port = 8080) => {
      const r = await exec(c, `${WGET} http://${host.includes(':') ? `[${host}]` : host}:${port}/cgi-bin/ip`);
      // httpd listens on [::]: an IPv4 client is [::ffff:a.b.c.d]
      return r.code === 0 ? r.stdout.trim().replace(/^\[(::ffff:)?|\]$/g, '') : `failed: ${r.stderr.trim() || r.code}`;
    };

    before(async () => {
      await net.up();
      // The outside server: HTTP on 8080 and 8081 that reports the client's address, and a UDP echo.
      www = join('/tmp', `cilium-masq-www-${process.pid}`);
      mkdirSync(join(www, 'cgi-bin'), { recursive: true });
      // CRLF line ends, as HTTP/1.1 has them: the L7 proxy refuses a response with bare LFs (the second script)
      writeFileSync(join(www, 'cgi-bin', 'lf'), '#!/bin/busybox sh\necho "Content-Type: text/plain"\necho\necho sloppy\n', { mode: 0o755 });
      writeFileSync(join(www, 'cgi-bin', 'ip'), '#!/bin/busybox sh\nprintf \'Content-Type: text/plain\\r\\n\\r\\n%s\\n\' "$REMOTE_ADDR"\n', { mode: 0o755 });
      for (const port of ['8080', '8081']) {
        servers.push(spawn('ip', ['netns', 'exec', OUT, 'busybox', 'httpd', '-f', '-p', `[::]:${port}`, '-h', www], { stdio: 'ignore' }));
      }
      nettool = join(www, 'nettool');
      await must('clang', ['-O2', '-Wall', '-static', '-o', nettool, join(TOOLS, 'nettool.c')]);
      await dockerd.start();
      await buildBusyboxImage(dockerd, IMAGE);
      await agent.start();
      await dockerd.ok(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--ipv6', 'mnet'], 30_000);
      for (const [name, id] of [
        ['client', 'app1'],
        ['other', 'app2'],
      ]) {
        await dockerd.ok(['run', '-d', '--name', name!, '--net', 'mnet', '-l', `id=${id}`, IMAGE, 'sleep', '3600']);
        await dockerd.ok(['cp', nettool, `${name}:/bin/nettool`]);
      }
      await waitFor('endpoints ready', async () => (await agent.api<Array<{ state: string }>>('/v1/endpoint')).every((e) => e.state === 'ready'), 30_000);
      await waitFor('the outside server', async () => (await inOut(['busybox', 'wget', '-q', '-O-', 'http://127.0.0.1:8080/cgi-bin/ip'])).code === 0);
    });
    after(async () => {
      for (const s of servers) s.kill();
      const ids = (await dockerd.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length) await dockerd.docker(['rm', '-f', ...ids]);
      await dockerd.docker(['network', 'rm', 'mnet']);
      await agent.destroy();
      await dockerd.destroy();
      await net.down();
      await run('rm', ['-rf', www]);
    });

    it('the agent found the device by itself and says so in status', async () => {
      const status = await cli('status');
      assert.strictEqual(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`Masquerading: BPF   \\[${DEVICE.name} ${DEVICE.v4} ${DEVICE.v6}\\]`), status.stdout);
      assert.match(status.stdout, /except to 10\.215\.0\.0\/16 f00d::d7:0:0\/96, ports \d+-65535/);
    });

    it('TCP over IPv4 and IPv6: the server answers, and saw the device address, not the container', async () => {
      assert.strictEqual(await whoAmI('client', SERVER.v4), DEVICE.v4);
      assert.strictEqual(await whoAmI('client', SERVER.v6), DEVICE.v6);
    });

    /** One datagram of `bytes` to the outside echo server and back: what the container got, and whom the server saw. */
    const udpEcho = async (bytes: number) => {
      const echo = spawn('ip', ['netns', 'exec', OUT, nettool, 'udp-echo', '5353'], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise((r) => echo.once('exit', r));
      let seen = '';
      echo.stdout.on('data', (b: Buffer) => (seen += b.toString()));
      await new Promise((r) => setTimeout(r, 300));
      const r = await exec('client', `nettool udp-ask ${SERVER.v4} 5353 ${bytes}`);
      await exited;
      return { answer: r.stdout.trim() || r.stderr, seen: seen.trim() };
    };

    it('UDP: the echo comes back; the server saw the device address and a port of the masquerade range', async () => {
      const { answer, seen } = await udpEcho(4);
      assert.strictEqual(answer, 'reply');
      const [addr, port] = seen.split(':');
      assert.strictEqual(addr, DEVICE.v4);
      const { ports } = (await agent.api<{ masquerading: { ports: { min: number; max: number } } }>('/v1/healthz')).masquerading;
      assert.ok(Number(port) >= ports.min && Number(port) <= ports.max, `source port ${port} outside ${ports.min}-${ports.max}`);
    });

    it('UDP datagrams larger than the MTU: their fragments are translated both ways and reassemble', async () => {
      const { answer, seen } = await udpEcho(4000);
      assert.strictEqual(answer, 'reply', 'the 4,000-byte echo came back whole');
      assert.strictEqual(seen.split(':')[0], DEVICE.v4);
    });

    it('ICMP echo over IPv4 and IPv6 is answered', async () => {
      for (const host of [SERVER.v4, SERVER.v6]) {
        const r = await exec('client', `ping -c 2 -W 2 ${host}`);
        assert.strictEqual(r.code, 0, `ping ${host}: ${r.stdout}${r.stderr}`);
      }
    });

    it('an ICMP error about a masqueraded flow reaches the container: UDP to a closed port is refused, IPv4 and IPv6', async () => {
      for (const host of [SERVER.v4, SERVER.v6]) {
        const r = await exec('client', `nettool udp-refused ${host} 9`);
        assert.strictEqual(r.stdout.trim(), 'refused', `${host}: ${r.stdout}${r.stderr}`);
      }
    });

    it('bpf nat list shows both directions of a translation', async () => {
      await whoAmI('client', SERVER.v4);
      const r = await cli('bpf', 'nat', 'list');
      assert.strictEqual(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`TCP\\s+EGRESS\\s+10\\.215\\.\\S+\\s+${SERVER.v4}:8080\\s+${DEVICE.v4}:\\d+`), r.stdout);
      assert.match(r.stdout, new RegExp(`TCP\\s+INGRESS\\s+${SERVER.v4}:8080\\s+${DEVICE.v4}:\\d+\\s+10\\.215\\.`), r.stdout);
    });

    it('egress policy is decided on the container, before translation: toCIDR admits port 8080, 8081 is dropped with its reason', async () => {
      const rules = [
        {
          labels: [{ key: 'name', value: 'out' }],
          endpointSelector: { matchLabels: { id: 'app1' } },
          egress: [{ toCIDR: [`${SERVER.v4}/32`], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }],
        },
      ];
      await importRules('rules', rules);
      const since = await lastSeq();
      assert.strictEqual(await whoAmI('client', SERVER.v4), DEVICE.v4);
      assert.match(await whoAmI('client', SERVER.v4, 8081), /^failed/);
      const drop = await waitFor('the drop event', async () =>
        (await agent.api<Ev[]>('/v1/events')).find((e) => e.seq > since && e.type === 'drop' && e.dport === 8081),
      );
      assert.strictEqual(drop.reasonName, 'Policy denied');
      assert.ok(drop.srcIdentity >= 256, `the source is the container's identity: ${JSON.stringify(drop)}`);
      // Another container, not selected by the rule, still reaches both.
      assert.strictEqual(await whoAmI('other', SERVER.v4, 8081), DEVICE.v4);
      assert.strictEqual((await cli('policy', 'delete', 'name=out')).code, 0);
    });

    it("egress L7 rules to the world: the proxy passes the allowed request (from the host's address, as masquerading would) and answers another 403", async () => {
      const rules = [
        {
          labels: [{ key: 'name', value: 'out-l7' }],
          endpointSelector: { matchLabels: { id: 'app1' } },
          egress: [
            {
              toCIDR: [`${SERVER.v4}/32`, `${SERVER.v6}/128`],
              toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/cgi-bin/(ip|lf)' }] } }],
            },
          ],
        },
      ];
      await importRules('rules-l7', rules);
      const since = await lastSeq();
      try {
        assert.strictEqual(await whoAmI('client', SERVER.v4), DEVICE.v4);
        assert.strictEqual(await whoAmI('client', SERVER.v6), DEVICE.v6);
        const sloppy = await exec('client', `(printf 'GET /cgi-bin/lf HTTP/1.1\\r\\nHost: out\\r\\n\\r\\n'; sleep 2) | nc -w 4 ${SERVER.v4} 8080`);
        assert.match(sloppy.stdout, /^HTTP\/1\.1 502 [\s\S]*upstream sent an invalid response: .*CR/, sloppy.stdout);
        const denied = await exec('client', `${WGET} http://${SERVER.v4}:8080/cgi-bin/other`);
        assert.match(denied.stderr, /403 Forbidden/, `${denied.code} ${denied.stdout}${denied.stderr}`);
        const l7 = await waitFor('the access records', async () => {
          const evs = await agent.api<Array<Ev & { direction: string; http: { url: string; status: number } }>>(`/v1/events?type=l7&since=${since}`);
          return evs.length >= 4 ? evs : undefined;
        });
        assert.deepStrictEqual(
          l7.map((e) => `${e.direction} ${e.reasonName} ${e.http.url} ${e.http.status}`),
          ['egress Forwarded /cgi-bin/ip 200', 'egress Forwarded /cgi-bin/ip 200', 'egress Error /cgi-bin/lf 502', 'egress Denied /cgi-bin/other 403'],
        );
        assert.ok(
          l7.every((e) => e.dstIdentity >= 1 << 24 && e.srcIdentity >= 256),
          `the server's CIDR identity, the client's own: ${JSON.stringify(l7)}`,
        );
      } finally {
        assert.strictEqual((await cli('policy', 'delete', 'name=out-l7')).code, 0);
      }
    });

    it("ingress L7 rules between two containers, beside this dockerd's own netfilter rules: GET /ok answered, GET /nope 403", async () => {
      const served = await exec('client', 'mkdir -p /www && echo ok > /www/ok && httpd -p 9090 -h /www');
      assert.strictEqual(served.code, 0, served.stderr);
      const rules = [
        {
          labels: [{ key: 'name', value: 'in-l7' }],
          endpointSelector: { matchLabels: { id: 'app1' } },
          ingress: [
            {
              fromEndpoints: [{ matchLabels: { id: 'app2' } }],
              toPorts: [{ ports: [{ port: '9090', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/ok' }] } }],
            },
          ],
        },
      ];
      await importRules('rules-in-l7', rules);
      const client = (await dockerd.ok(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'client'])).trim();
      assert.strictEqual((await exec('other', `${WGET} http://${client}:9090/ok`)).stdout.trim(), 'ok');
      const denied = await exec('other', `${WGET} http://${client}:9090/nope`);
      assert.match(denied.stderr, /403 Forbidden/, `${denied.code} ${denied.stdout}${denied.stderr}`);
      assert.strictEqual((await cli('policy', 'delete', 'name=in-l7')).code, 0);
    });

    it('--enable-masquerade=false: the server, with no route back, is unreachable; on again, reachable', async () => {
      await agent.stop();
      await agent.start({}, ['--enable-masquerade=false']);
      assert.match(await whoAmI('client', SERVER.v4), /^failed/);
      assert.match((await cli('status')).stdout, /Masquerading: Disabled/);
      await agent.stop();
      await agent.start();
      await waitFor('masquerading again', async () => (await whoAmI('client', SERVER.v4)) === DEVICE.v4, 20_000);
    });
  });
}
