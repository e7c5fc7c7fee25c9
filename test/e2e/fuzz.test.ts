import assert from 'assert';
import { TestAgent, httpUnix } from '../harness/agent';
import { chmodSync, chownSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'fs';
import { join } from 'path';
import { run } from '../harness/exec';
import { createConnection } from 'net';
import { BareEndpoints } from '../harness/bare-endpoints';
import { FuzzRequest, FuzzTargets, Rng, apiRequest, pluginRequest, rawGarbage } from '../harness/fuzz';
import { recordReliability } from '../harness/reliability-report';

const REQUESTS = 12_000;
const SEED = Number(process.env.FUZZ_SEED ?? 20261121);
const STATUSES = new Set([200, 400, 404, 413, 500]);

/** Writes bytes to a unix socket and reads whatever comes back until the server closes (bounded). */
function rawExchange(path: string, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const c = createConnection(path, () => c.end(bytes));
    c.setTimeout(5000, () => c.destroy());
    c.on('data', (d) => (out += d.toString()));
    c.on('close', () => {
      resolve(out);
    });
    c.on('error', () => undefined);
  });
}

describe('reliability: hostile input on every plugin and API route', function () {
  this.timeout(600_000);
  const agent = new TestAgent('cilium-fuzz', [
    '--ipv4-range=10.215.0.0/16',
    '--ipv6-range=f00d::d7:0:0/96',
    '--docker-host=unix:///nonexistent/docker.sock',
    '--reconcile-interval=0',
  ]);

  const NET = 'e'.repeat(64);
  const bare = new BareEndpoints(agent, NET, 'cilium-fuzz-');
  let targets: FuzzTargets;

  const dump = () => agent.stateDump(['/v1/ipam', '/v1/endpoint', '/v1/network', '/v1/identity', '/v1/policy', '/v1/bpf/endpoint']);

  // A real network with two joined endpoints, so requests naming them reach the checks past the IDs.
  before(async () => {
    await agent.start();
    await agent.createNetwork(NET, '10.215.0.1');
    const eps = [...(await bare.create(1, ['app=server'])), ...(await bare.create(1, ['role=client']))];
    targets = { networkId: NET, endpointIds: eps.map((e) => e.endpointId), heldAddresses: eps.map((e) => `${e.address}/32`), freeAddress: '10.215.250.250/32' };
  });
  after(async () => {
    await bare.destroy();
    await agent.plugin('NetworkDriver.DeleteNetwork', { NetworkID: NET });
    await agent.destroy();
  });

  it(`${REQUESTS} random, malformed, oversized and out-of-order requests: no crash, JSON errors, state unchanged`, async () => {
    const before = await dump();
    const pid = agent.pid;
    const r = new Rng(SEED);
    const counts = { plugin: 0, api: 0, oversized: 0, byStatus: {} as Record<number, number> };
    // Past the ID checks on the real network: what CreateEndpoint and Join refused, by reason.
    const deeper = new Map<string, number>();
    const DEEPER = [/did not hand it out/, /already has it/, /SandboxKey/, /does not exist/];
    const send = async (socket: string, q: FuzzRequest, errorField: 'Err' | 'error') => {
      const a = await httpUnix(socket, q.method, q.path, q.body);
      if (q.method === 'POST' && /CreateEndpoint|Join/.test(q.path) && q.body?.includes(NET) && a.status !== 200) {
        const err = (a.body as { Err?: string }).Err ?? '';
        const why = DEEPER.find((re) => re.test(err));
        const key = why && `${q.path.slice(1)} refused: ${why.source}`;
        if (key) deeper.set(key, (deeper.get(key) ?? 0) + 1);
      }
      counts.byStatus[a.status] = (counts.byStatus[a.status] ?? 0) + 1;
      assert.ok(STATUSES.has(a.status), `${q.method} ${q.path} ${q.body?.slice(0, 200)} -> ${a.status}`);
      assert.ok(a.body !== null && typeof a.body === 'object', `${q.method} ${q.path} -> a non-JSON answer: ${String(a.body).slice(0, 200)}`);
      if (a.status !== 200)
        assert.strictEqual(
          typeof (a.body as Record<string, unknown>)[errorField],
          'string',
          `${q.method} ${q.path}: no ${errorField} in ${JSON.stringify(a.body)}`,
        );
    };
    for (let i = 0; i < REQUESTS; i += 8) {
      const batch: Array<Promise<void>> = [];
      for (let j = 0; j < 8; j++) {
        if (r.int(10) < 7) {
          counts.plugin++;
          batch.push(send(agent.pluginSocket, pluginRequest(r, targets), 'Err'));
        } else {
          counts.api++;
          batch.push(send(agent.apiSocket, apiRequest(r, targets), 'error'));
        }
      }
      await Promise.all(batch);
    }
    let raw = 0;
    for (let i = 0; i < 200; i++) {
      const [socket, field] = i % 2 ? [agent.pluginSocket, 'Err'] : [agent.apiSocket, 'error'];
      const answer = await rawExchange(socket, rawGarbage(r));
      raw++;
      if (answer === '') continue; // the server may just close on bytes it cannot frame at all
      const [head, body] = answer.split('\r\n\r\n');
      assert.match(head!, /^HTTP\/1\.1 (400|404|413|500) /, answer.slice(0, 200));
      assert.strictEqual(typeof (JSON.parse(body!) as Record<string, unknown>)[field], 'string', answer.slice(0, 300));
    }
    for (const [socket, path, field] of [
      [agent.pluginSocket, '/IpamDriver.RequestPool', 'Err'],
      [agent.apiSocket, '/v1/policy', 'error'],
    ] as const) {
      counts.oversized++;
      await send(socket, { method: path.startsWith('/v1') ? 'PUT' : 'POST', path, body: `{"x":"${'A'.repeat(5 * 1024 * 1024)}"}` }, field);
    }
    const reached = [
      'NetworkDriver.CreateEndpoint refused: did not hand it out',
      'NetworkDriver.CreateEndpoint refused: already has it',
      'NetworkDriver.Join refused: SandboxKey',
      'NetworkDriver.Join refused: does not exist',
    ];
    for (const k of reached) assert.ok((deeper.get(k) ?? 0) > 0, `no request reached "${k}" on the real network: ${JSON.stringify([...deeper])}`);
    assert.strictEqual(agent.pid, pid, 'the agent never crashed or restarted');
    assert.strictEqual((await httpUnix(agent.apiSocket, 'GET', '/v1/healthz')).status, 200);
    assert.strictEqual(await dump(), before, 'state identical before and after');
    const statuses = Object.entries(counts.byStatus)
      .map(([s, n]) => `${s}: ${n}`)
      .join(', ');
    recordReliability('Hostile input (fuzz)', [
      `${counts.plugin + counts.api + counts.oversized + raw} requests (seed ${SEED}) against a real network with two joined endpoints: ${counts.plugin} to the plugin socket over all 21 routes and unknown ones, ${counts.api} to the API, ${raw} raw non-HTTP byte strings, ${counts.oversized} of 5 MiB`,
      `answers by status: ${statuses}; every one JSON, every error with its message`,
      `past the ID checks on the real network: ${[...deeper].map(([k, n]) => `${k} (${n})`).join(', ')}`,
      'crashes: 0; state dump (IPAM, endpoints, networks, identities, policy, BPF endpoint map, veths) identical before and after',
    ]);
  });
});

describe('security: socket permissions', function () {
  this.timeout(60_000);

  it('both sockets are root-only by default, and group-shared (0660) with --socket-group: the group reaches them, others do not', async () => {
    const group = readFileSync('/etc/group', 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .find((g) => g[0] === 'daemon')!;
    const gid = Number(group[2]);
    // A user in the group, and one not in it (nobody, whose own group is nogroup), asking over each socket.
    const reaches = async (socket: string, asGid: number) =>
      (
        await run('setpriv', [
          '--reuid=65534',
          `--regid=${asGid}`,
          '--clear-groups',
          'curl',
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--unix-socket',
          socket,
          '-X',
          'POST',
          'http://x/Plugin.Activate',
        ])
      ).stdout !== '000'; // 000: no HTTP answer at all
    // The plugin socket's directory is the engine's /run/docker/plugins (0700 under a 0700 /run/docker): put back what the test changes.
    const dirs = ['/run/docker', '/run/docker/plugins'].map((d) => ({ d, st: statSync(d, { throwIfNoEntry: false }) }));
    try {
      for (const [args, mode, sockGid] of [
        [[], 0o600, 0],
        [[`--socket-group=${group[0]}`], 0o660, gid],
      ] as const) {
        const agent = new TestAgent('cilium-perm', [
          '--ipv4-range=10.216.0.0/16',
          '--docker-host=unix:///nonexistent/docker.sock',
          '--reconcile-interval=0',
          ...args,
        ]);
        // A state dir someone else made first, world-readable, with a world-readable file in it.
        mkdirSync(agent.stateDir);
        chmodSync(agent.stateDir, 0o755);
        writeFileSync(join(agent.stateDir, 'left-by-someone'), 'x');
        chmodSync(join(agent.stateDir, 'left-by-someone'), 0o644);
        await agent.start();
        try {
          for (const socket of [agent.pluginSocket, agent.apiSocket]) {
            const st = statSync(socket);
            assert.strictEqual(st.mode & 0o777, mode, `${socket} mode ${(st.mode & 0o777).toString(8)}`);
            assert.strictEqual(st.uid, 0);
            assert.strictEqual(st.gid, sockGid);
            assert.strictEqual(
              await reaches(socket, gid),
              sockGid === gid,
              `${socket}: a member of ${group[0]} ${sockGid === gid ? 'reaches' : 'must not reach'} it`,
            );
            assert.strictEqual(await reaches(socket, 65534), false, `${socket}: others must not reach it`);
          }
          assert.strictEqual(statSync(agent.stateDir).mode & 0o777, 0o700);
          for (const f of readdirSync(agent.stateDir, { recursive: true, withFileTypes: true })) {
            if (f.isFile()) assert.strictEqual(statSync(join(f.parentPath, f.name)).mode & 0o777, 0o600, `${f.name} is root-only`);
          }
        } finally {
          await agent.destroy();
        }
      }
    } finally {
      for (const { d, st } of dirs) {
        if (!st) continue;
        chownSync(d, st.uid, st.gid);
        chmodSync(d, st.mode & 0o7777);
      }
    }
    const bad = new TestAgent('cilium-perm', ['--socket-group=no-such-group-here']);
    await assert.rejects(bad.start(), /--socket-group: no group "no-such-group-here" in \/etc\/group/);
    await bad.destroy();
  });
});
