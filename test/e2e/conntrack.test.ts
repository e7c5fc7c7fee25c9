import assert from 'assert';
import { spawn } from 'child_process';
import { writeFileSync } from 'fs';
import { join, resolve } from 'path';
import { must, run, waitFor } from '../harness/exec';
import { Env } from './env';

const CLI = join(__dirname, '../../../bin/cilium');
const TOOLS = resolve(__dirname, '../../../test/tools');

interface Ev {
  type: string;
  reasonName: string;
  direction: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  protocol: string;
  endpoint: number;
  seq: number;
  time: string;
}

interface CtRow {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
  dir: string;
  state: string;
  remainingSeconds: number;
}

const rule = (name: string, ports: Array<[string, string]>) => ({
  labels: [{ key: 'name', value: name }],
  endpointSelector: { matchLabels: { id: 'app1' } },
  ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app2' } }], toPorts: [{ ports: ports.map(([port, protocol]) => ({ port, protocol })) }] }],
});

/** Two namespaces behind the host: a router whose link to "far" has a smaller MTU than the far host's own. */
class LowMtuPath {
  readonly router = 'cil-ct-router';
  readonly far = 'cil-ct-far';
  readonly routerAddress = '192.168.251.2';
  readonly farAddress = '192.168.252.2';
  readonly routerAddress6 = 'fd00:cafe:251::2';
  readonly farAddress6 = 'fd00:cafe:252::2';

  async up(): Promise<void> {
    await this.down();
    const r = ['ip', '-n', this.router];
    const f = ['ip', '-n', this.far];
    const steps = [
      ['ip', 'netns', 'add', this.router],
      ['ip', 'netns', 'add', this.far],
      ['ip', 'link', 'add', 'cil-rt0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.router],
      ['ip', 'addr', 'add', '192.168.251.1/24', 'dev', 'cil-rt0'],
      ['ip', 'link', 'set', 'cil-rt0', 'up'],
      [...r, 'link', 'set', 'lo', 'up'],
      [...r, 'addr', 'add', `${this.routerAddress}/24`, 'dev', 'eth0'],
      [...r, 'link', 'set', 'eth0', 'up'],
      [...r, 'link', 'add', 'eth1', 'mtu', '1280', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.far],
      [...r, 'addr', 'add', '192.168.252.1/24', 'dev', 'eth1'],
      [...r, 'link', 'set', 'eth1', 'up'],
      [...r, 'route', 'add', 'default', 'via', '192.168.251.1'],
      ['ip', 'netns', 'exec', this.router, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward'],
      [...f, 'link', 'set', 'lo', 'up'],
      [...f, 'link', 'set', 'eth0', 'mtu', '1500', 'up'],
      [...f, 'addr', 'add', `${this.farAddress}/24`, 'dev', 'eth0'],
      [...f, 'route', 'add', 'default', 'via', '192.168.252.1'],
      ['ip', 'route', 'replace', '192.168.252.0/24', 'via', this.routerAddress],
      // The same path for IPv6 (routers never fragment it: "packet too big" is the only way).
      ['ip', 'addr', 'add', 'fd00:cafe:251::1/64', 'dev', 'cil-rt0', 'nodad'],
      [...r, 'addr', 'add', `${this.routerAddress6}/64`, 'dev', 'eth0', 'nodad'],
      [...r, 'addr', 'add', 'fd00:cafe:252::1/64', 'dev', 'eth1', 'nodad'],
      [...r, '-6', 'route', 'add', 'default', 'via', 'fd00:cafe:251::1'],
      ['ip', 'netns', 'exec', this.router, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/all/forwarding'],
      [...f, 'addr', 'add', `${this.farAddress6}/64`, 'dev', 'eth0', 'nodad'],
      [...f, '-6', 'route', 'add', 'default', 'via', 'fd00:cafe:252::1'],
      ['ip', '-6', 'route', 'replace', 'fd00:cafe:252::/64', 'via', this.routerAddress6],
      // Replies come back in on this link: it forwards (the endpoints' veths do already).
      ['sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/cil-rt0/force_forwarding'],
    ];
    for (const s of steps) await must(s[0]!, s.slice(1));
  }

  async down(): Promise<void> {
    for (const ns of [this.router, this.far]) {
      for (const pid of (await run('ip', ['netns', 'pids', ns])).stdout.split('\n').filter(Boolean)) await run('kill', ['-9', pid]);
      await run('ip', ['netns', 'del', ns]);
    }
    await run('ip', ['route', 'del', '192.168.252.0/24']);
    await run('ip', ['-6', 'route', 'del', 'fd00:cafe:252::/64']);
    await run('ip', ['link', 'del', 'cil-rt0']);
  }
}

describe('conntrack: state, lifetimes, revocation, ICMP errors, fragments', function () {
  this.timeout(600_000);
  const env = new Env(['--conntrack-gc-interval=1']);
  const path = new LowMtuPath();
  const cli = (...args: string[]) => run(CLI, ['--api-socket', env.agent.apiSocket, ...args], { timeoutMs: 30_000 });
  const importRules = async (rules: unknown[]) => {
    const f = join(env.agent.dir, 'rules.json');
    writeFileSync(f, JSON.stringify(rules));
    const r = await cli('policy', 'import', f);
    assert.strictEqual(r.code, 0, r.stderr);
  };
  const lastSeq = async () => Math.max(0, ...(await env.agent.api<Ev[]>('/v1/events')).map((e) => e.seq));
  const eventsSince = async (seq: number) => (await env.agent.api<Ev[]>('/v1/events')).filter((e) => e.seq > seq);
  const size = async (c: string, f: string) => Number((await env.exec(c, `wc -c < ${f} 2>/dev/null || echo 0`)).stdout.trim() || 0);
  const ip = (c: string) => env.address(c, 'ctnet');
  let icmpError = '';
  let nettool = '';
  /** 200 KB from app2 to the far host, through the router's smaller MTU: what the far host counted. */
  const uploadThroughRouter = async (farAddress: string, port: string): Promise<string> => {
    const far = spawn('ip', ['netns', 'exec', path.far, nettool, 'tcp-recv', port], { stdio: ['ignore', 'pipe', 'inherit'] });
    let count = '';
    far.stdout.on('data', (d: Buffer) => (count += d.toString()));
    const farDone = new Promise((r) => far.once('exit', r));
    try {
      await new Promise((r) => setTimeout(r, 300));
      const up = await env.exec('app2', `nettool tcp-send ${farAddress} ${port} 200000`);
      assert.strictEqual(up.code, 0, up.stderr);
      await Promise.race([farDone, new Promise((r) => setTimeout(r, 10_000))]);
    } finally {
      far.kill('SIGKILL');
    }
    return count;
  };
  /** Icmp6InPktTooBigs of a container's kernel. */
  const tooBigs = async (c: string) => Number(/Icmp6InPktTooBigs\s+(\d+)/.exec((await env.exec(c, 'cat /proc/net/snmp6')).stdout)![1]);
  /** InDestUnreachs of a container's kernel: ICMP errors that reached it. */
  const destUnreachs = async (c: string) => {
    const lines = (await env.exec(c, 'grep ^Icmp: /proc/net/snmp')).stdout.trim().split('\n');
    const names = lines[0]!.split(' ');
    return Number(lines[1]!.split(' ')[names.indexOf('InDestUnreachs')]);
  };

  before(async () => {
    await env.up();
    icmpError = join(env.agent.dir, 'icmp-error');
    nettool = join(env.agent.dir, 'nettool');
    await must('clang', ['-O2', '-Wall', '-o', icmpError, join(TOOLS, 'icmp-error.c')]);
    await must('clang', ['-O2', '-Wall', '-static', '-o', nettool, join(TOOLS, 'nettool.c')]);
    await path.up();
    await env.createNetwork('ctnet', ['--ipv6']);
    for (const app of ['app1', 'app2', 'app3']) {
      await env.runDetached(app, 'ctnet', ['sleep', '3600'], ['-l', `id=${app}`]);
      await env.ok(['cp', nettool, `${app}:/bin/nettool`]);
    }
    await waitFor('endpoints ready', async () => (await env.agent.api<Array<{ state: string }>>('/v1/endpoint')).every((e) => e.state === 'ready'));
  });
  after(async () => {
    await path.down();
    await env.down();
  });

  it('a long-running allowed TCP stream stops within 1 s of a deny import, in both directions, and the monitor shows the drops', async () => {
    await importRules([
      rule('stream', [
        ['9000', 'TCP'],
        ['5353', 'UDP'],
        ['5354', 'UDP'],
      ]),
    ]);
    // 100 lines a second from app1, for as long as the connection lives.
    await env.docker(['exec', '-d', 'app1', 'sh', '-c', 'while true; do echo tick; usleep 10000; done | nc -l -p 9000']);
    await new Promise((r) => setTimeout(r, 300));
    // The client talks too (10 lines a second), so both directions are under test.
    await env.docker(['exec', '-d', 'app2', 'sh', '-c', `while true; do echo up; usleep 100000; done | nc ${await ip('app1')} 9000 > /tmp/rx`]);
    await waitFor('the stream to flow', async () => (await size('app2', '/tmp/rx')) > 500, 10_000);
    const ct = await env.agent.api<CtRow[]>('/v1/bpf/ct');
    assert.ok(
      ct.some((e) => e.dport === 9000 && e.state === 'ESTABLISHED' && e.remainingSeconds > 21000),
      `an established entry with the TCP lifetime: ${JSON.stringify(ct)}`,
    );

    const since = await lastSeq();
    await importRules([
      rule('stream', [
        ['80', 'TCP'],
        ['5353', 'UDP'],
        ['5354', 'UDP'],
      ]),
    ]);
    const revokedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    const s1 = await size('app2', '/tmp/rx');
    await new Promise((r) => setTimeout(r, 1000));
    const s2 = await size('app2', '/tmp/rx');
    assert.strictEqual(s2, s1, 'no byte of the stream arrives once 1 s has passed since the import');
    const drops = (await eventsSince(since)).filter((e) => e.type === 'drop' && e.reasonName === 'Policy denied');
    assert.ok(
      drops.some((e) => e.sport === 9000),
      `server -> client dropped: ${JSON.stringify(drops)}`,
    );
    assert.ok(
      drops.some((e) => e.dport === 9000),
      `client -> server dropped: ${JSON.stringify(drops)}`,
    );
    const first = drops
      .filter((e) => e.sport === 9000 || e.dport === 9000)
      .map((e) => Date.parse(e.time))
      .sort()[0]!;
    assert.ok(first - revokedAt < 1000, `first drop ${first - revokedAt} ms after the import returned`);
    const after = await env.agent.api<CtRow[]>('/v1/bpf/ct');
    assert.ok(
      after.some((e) => e.dport === 9000 && e.state === 'DENIED'),
      `the connection is marked denied: ${JSON.stringify(after)}`,
    );
    await env.exec('app1', 'killall nc; true');
    await env.exec('app2', 'killall nc; true');
  });

  it("UDP fragments of a 4 KB datagram pass an L4 UDP rule (later fragments take the first one's ports); not from a denied peer", async () => {
    const to = await ip('app1');
    const receive = (file: string) => env.docker(['exec', '-d', 'app1', 'sh', '-c', `nettool udp-recv 5353 3 > ${file}`]);
    const received = async (file: string) => (await env.exec('app1', `cat ${file}`)).stdout.trim();
    await receive('/tmp/udp-allowed');
    await new Promise((r) => setTimeout(r, 300));
    await env.exec('app2', `nettool udp-send ${to} 5353 4000`);
    await waitFor('app1 to get the datagram', async () => (await received('/tmp/udp-allowed')) !== '' || undefined, 5_000);
    assert.strictEqual(await received('/tmp/udp-allowed'), '4000', 'all three fragments reached app1 and reassembled');
    const since = await lastSeq();
    await receive('/tmp/udp-denied');
    await new Promise((r) => setTimeout(r, 300));
    await env.exec('app3', `nettool udp-send ${to} 5353 4000`);
    await waitFor('the receive to time out', async () => (await received('/tmp/udp-denied')) !== '' || undefined, 6_000);
    assert.strictEqual(await received('/tmp/udp-denied'), '0', 'app3 is not allowed');
    const drops = (await eventsSince(since)).filter((e) => e.type === 'drop' && e.protocol === 'udp');
    assert.ok(
      drops.length >= 3 && drops.every((e) => e.dport === 5353 && e.reasonName === 'Policy denied'),
      `every fragment dropped on its ports: ${JSON.stringify(drops)}`,
    );
  });

  it('a real ICMP "fragmentation needed" from a router reaches the sender (its upload completes); a forged one for no connection is dropped', async () => {
    const before = await destUnreachs('app2');
    // 200 KB with DF set: the router (MTU 1280 onwards) answers the first 1500-byte segments with ICMP 3/4.
    const count = await uploadThroughRouter(path.farAddress, '9001');
    assert.strictEqual(count.trim(), '200000', 'every byte arrived');
    assert.ok((await destUnreachs('app2')) > before, 'the ICMP errors reached the sender, which lowered its path MTU');
    const app2 = await ip('app2');
    const since = await lastSeq();
    const unreachs = await destUnreachs('app2');
    await must('ip', ['netns', 'exec', path.router, icmpError, app2, '3', '4', 'tcp', app2, '34567', path.farAddress, '9999']);
    const drop = await waitFor(
      "the forged error's drop",
      async () => (await eventsSince(since)).find((e) => e.type === 'drop' && e.protocol === 'icmp'),
      5_000,
    );
    assert.strictEqual(drop.reasonName, 'No connection for ICMP error');
    assert.strictEqual(drop.src, path.routerAddress);
    assert.strictEqual(await destUnreachs('app2'), unreachs, 'the forged error never reached the container');
  });

  it('IPv6: a real "packet too big" reaches the sender; a forged one for no connection is dropped', async () => {
    const before = await tooBigs('app2');
    const count = await uploadThroughRouter(path.farAddress6, '9002');
    assert.strictEqual(count.trim(), '200000', 'every byte arrived');
    assert.ok((await tooBigs('app2')) > before, 'the "packet too big" reached the sender');
    const app2 = await env.address('app2', 'ctnet', 6);
    const since = await lastSeq();
    const seen = await tooBigs('app2');
    await must('ip', ['netns', 'exec', path.router, icmpError, app2, '2', '0', 'tcp', app2, '34567', path.farAddress6, '9999']);
    const drop = await waitFor(
      "the forged error's drop",
      async () => (await eventsSince(since)).find((e) => e.type === 'drop' && e.protocol === 'icmpv6'),
      5_000,
    );
    assert.strictEqual(drop.reasonName, 'No connection for ICMP error');
    assert.strictEqual(drop.src, path.routerAddress6);
    assert.strictEqual(await tooBigs('app2'), seen, 'the forged error never reached the container');
  });

  it('echo requests and replies are tracked as such: a reply passes for its own request, a request with its identifier from the other side does not', async () => {
    // app1 admits no ICMP (its only rule is about ports); its own pings to app3 are answered.
    const [a1, a3] = [await ip('app1'), await ip('app3')];
    assert.strictEqual((await env.exec('app1', `ping -c 1 -W 2 ${a3}`)).code, 0, 'app1 pings app3: the reply passes as the reply of its request');
    await env.docker(['exec', '-d', 'app1', 'ping', '-c', '40', '-i', '0.25', a3]);
    const entry = await waitFor("app1's echo in the table", async () =>
      (await env.agent.api<CtRow[]>('/v1/bpf/ct')).find((e) => e.proto === 1 && e.src === a1 && e.dst === a3 && e.dir === 'egress' && e.sport !== 0),
    );
    const since = await lastSeq();
    // A request (not a reply) from app3 carrying app1's identifier must not ride on app1's request.
    const echo = await env.exec('app3', `nettool echo ${a1} ${entry.sport}`);
    assert.strictEqual(echo.stdout.trim(), 'none', "app3's request reached app1 and was answered");
    const drop = await waitFor('the drop', async () => (await eventsSince(since)).find((e) => e.type === 'drop' && e.protocol === 'icmp' && e.src === a3));
    assert.strictEqual(drop.reasonName, 'Policy denied');
    await env.exec('app1', 'killall ping; true');
  });

  it('bpf ct list shows state and remaining lifetime; closed connections expire and the GC removes them; bpf ct flush', async () => {
    await env.exec('app2', 'httpd -p 8080 -h /www');
    await env.exec('app3', `/bin/wget -q -T 3 -O- http://${await ip('app2')}:8080/ > /dev/null`);
    const list = await cli('bpf', 'ct', 'list');
    assert.strictEqual(list.code, 0, list.stderr);
    assert.match(list.stdout, /STATE\s+EXPIRES/);
    const rows = await env.agent.api<CtRow[]>('/v1/bpf/ct');
    const closed = rows.filter((e) => e.dport === 8080);
    assert.ok(
      closed.length >= 2 && closed.every((e) => e.state === 'CLOSING' && e.remainingSeconds <= 10),
      `a finished HTTP exchange is closing, 10 s left: ${JSON.stringify(closed)}`,
    );
    // Past the close lifetime, the GC (every second here) removes them from the kernel's table.
    const pinned = join(env.agent.bpfRoot, 'cilium_ct');
    const inKernel = async () => JSON.parse(await must('bpftool', ['-j', 'map', 'dump', 'pinned', pinned])) as Array<{ key: string[] }>;
    const before = (await inKernel()).length;
    await waitFor('the GC to remove the closed connections', async () => (await inKernel()).length <= before - 2, 20_000, 500);
    const status = await cli('status');
    assert.match(status.stdout, /Conntrack:\s+\d+ entries; GC \d+ runs/);
    const metrics = await env.agent.api<{ conntrack: { runs: number } }>('/v1/healthz');
    assert.ok(metrics.conntrack.runs > 5);
    await env.exec('app3', `/bin/wget -q -T 3 -O- http://${await ip('app2')}:8080/ > /dev/null`);
    const flush = await cli('bpf', 'ct', 'flush');
    assert.match(flush.stdout, /^Flushed [1-9]\d* entries/);
    assert.strictEqual((await inKernel()).length, 0);
  });
});
