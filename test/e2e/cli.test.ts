import assert from 'assert';
import { ChildProcess, spawn } from 'child_process';
import { writeFileSync } from 'fs';
import { join } from 'path';
import { run, waitFor } from '../harness/exec';
import { Env, WGET } from './env';
import { PINNED_MAPS } from '../../datapath/bpf/loader';

const CLI = join(__dirname, '../../../bin/cilium');
const METRICS = '127.0.0.1:19962';

const L4_RULE = [
  {
    labels: [{ key: 'name', value: 'l4-rule' }],
    endpointSelector: { matchLabels: { id: 'app1' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app2' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
  },
];

/** Each command against a running agent and a real dockerd, checking what it prints. */
describe('cilium CLI, monitor, trace and Prometheus metrics', function () {
  this.timeout(300_000);
  const env = new Env([`--prometheus-serve-addr=${METRICS}`]);
  const cli = (...args: string[]) => run(CLI, ['--api-socket', env.agent.apiSocket, ...args], { timeoutMs: 30_000 });
  const ok = async (...args: string[]) => {
    const r = await cli(...args);
    assert.strictEqual(r.code, 0, `cilium ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const metrics = async () => (await run('curl', ['-sf', `http://${METRICS}/metrics`])).stdout;
  /** The value of one sample, e.g. metric(text, 'cilium_endpoint_state', 'endpoint_state="ready"'). */
  const metric = (text: string, name: string, labels = '') => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const fetch = async (from: string, url: string) => (await env.exec(from, `${WGET} ${url} >/dev/null`)).code;
  let policyFile: string;

  before(async () => {
    await env.up();
    policyFile = join(env.agent.dir, 'l4.json');
    writeFileSync(policyFile, JSON.stringify(L4_RULE));
    await env.createNetwork('cnet');
    for (const app of ['app1', 'app2', 'app3']) await env.runDetached(app, 'cnet', ['httpd', '-f', '-p', '80', '-h', '/www'], ['-l', `id=${app}`]);
  });
  after(async () => {
    await env.down();
  });

  it('status and version report the agent, store, Docker, IPAM, endpoints, identities, policy and BPF maps', async () => {
    const s = await ok('status', '--verbose');
    for (const re of [
      /KVStore:\s+Ok/,
      /Docker:\s+Ok/,
      /cilium-host-v4\s+10\.211\.0\.0\/16\s+3\/65533 used/,
      /Endpoints:\s+3 ready/,
      /Identities:\s+9/,
      /Policy:\s+revision 1/,
      new RegExp(`BPF maps:\\s+${PINNED_MAPS.length}/${PINNED_MAPS.length} pinned`),
      /Conntrack:\s+\d+ entries; GC \d+ runs/,
      /Masquerading:\s+Disabled/, // a test agent in the machine's own namespace masquerades through nothing
      /NAT sources:\s+Ok/,
      /Faults:\s+none/,
    ]) {
      assert.match(s, re);
    }
    const j = JSON.parse(await ok('status', '-o', 'json')) as { endpoints: Record<string, number> };
    assert.deepStrictEqual(j.endpoints, { ready: 3 });
    assert.match(await ok('version'), /Client: \d+\.\d+\.\d+\nDaemon: \d+\.\d+\.\d+/);
  });

  it('endpoint list/get and identity list/get show labels, identities and addresses', async () => {
    const list = await ok('endpoint', 'list');
    assert.match(
      list.split('\n')[0]!,
      /^ENDPOINT\s+POLICY \(ingress\)\s+POLICY \(egress\)\s+IDENTITY\s+LABELS \(source:key\[=value\]\)\s+IPv6\s+IPv4\s+STATUS$/,
    );
    const app1 = list.split('\n').find((l) => l.includes('container:id=app1'))!;
    assert.match(app1, /Disabled\s+Disabled\s+\d{3}\s+container:id=app1\s+10\.211\.\d+\.\d+\s+ready/);
    const ep = JSON.parse(await ok('endpoint', 'get', 'app1')) as { containerName: string; identity: number; ipv4: string };
    assert.strictEqual(ep.containerName, 'app1');
    assert.strictEqual(ep.ipv4, await env.address('app1', 'cnet'));
    assert.match(await ok('identity', 'list'), new RegExp(`${ep.identity}\\s+container:id=app1`));
    assert.match(await ok('identity', 'get', String(ep.identity)), /container:id=app1\s+1$/m);
    const ids = JSON.parse(await ok('identity', 'list', '-o', 'json')) as Array<{ id: number; labels: string[] }>;
    assert.deepStrictEqual(ids.find((i) => i.id === 2)!.labels, ['reserved:world']);
  });

  it('policy validate, import, get and trace: revisions and verdicts', async () => {
    assert.match(await ok('policy', 'validate', policyFile), /Valid: 1 rule\(s\)/);
    const bad = join(env.agent.dir, 'bad.json');
    writeFileSync(bad, JSON.stringify([{ endpointSelector: { matchLabels: { id: 'x' } }, ingress: [{ fromEndpoints: [{ matchLabel: {} }] }] }]));
    const v = await cli('policy', 'validate', bad);
    assert.strictEqual(v.code, 1);
    assert.match(v.stderr, /rule 0: ingress\[0\]\.fromEndpoints\[0\]\.matchLabel: unknown field/);
    assert.match(await ok('policy', 'import', policyFile), /^Revision: 2$/m);
    assert.match(await ok('policy', 'get', 'name=l4-rule'), /"l4-rule"[\s\S]*Revision: 2/);
    const denied = await ok('policy', 'trace', '-s', 'app3', '-d', 'id=app1', '--dport', '80/tcp');
    assert.match(denied, /no entry allows identity \d+ to port 80\/TCP: DENIED/);
    assert.match(denied, /Final verdict: DENIED/);
    assert.match(await ok('policy', 'trace', '-s', 'id=app2', '-d', 'app1', '--dport', '80'), /Final verdict: ALLOWED/);
    assert.match(await ok('policy', 'trace', '-s', 'id=app2', '-d', 'app1', '--dport', '81'), /Final verdict: DENIED/);
  });

  it("monitor -t drop shows the drop of app3 -> app1 with both sides' labels and names, and survives an agent restart", async () => {
    let out = '';
    let err = '';
    const mon: ChildProcess = spawn(CLI, ['--api-socket', env.agent.apiSocket, 'monitor', '-t', 'drop', '--related-to', 'app1']);
    mon.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    mon.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    try {
      await waitFor('the monitor to connect', () => err.includes('Listening for events'));
      assert.notStrictEqual(await fetch('app3', 'http://app1/'), 0);
      await waitFor(
        'the drop in the monitor',
        () => /xx drop \(Policy denied\) to endpoint \d+ \(app1\), identity \d+->\d+: 10\.211\.\d+\.\d+:\d+ -> 10\.211\.\d+\.\d+:80 tcp SYN/.test(out),
        10_000,
      );
      assert.match(out, /from container:id=app3 \(app3\) to container:id=app1 \(app1\)/);
      assert.doesNotMatch(out, /Policy verdict/, '-t drop shows drops only');
      await env.agent.stop();
      await env.agent.start();
      await waitFor('the monitor to reconnect', () => err.includes('reconnecting'), 10_000);
      out = '';
      assert.notStrictEqual(await fetch('app3', 'http://app1/'), 0);
      await waitFor('a drop after the restart', () => /xx drop \(Policy denied\)/.test(out), 15_000);
    } finally {
      mon.kill();
    }
    const j = await run(CLI, ['--api-socket', env.agent.apiSocket, 'monitor', '-o', 'json', '-t', 'policy-verdict'], { timeoutMs: 4000 });
    assert.strictEqual(j.stdout, '', 'nothing happened, nothing printed (and JSON mode prints no banner)');
  });

  it('bpf policy get counts the packets that passed; ipcache, ct, endpoint and ip list show the datapath', async () => {
    assert.strictEqual(await fetch('app2', 'http://app1/'), 0);
    assert.strictEqual(await fetch('app2', 'http://app1/'), 0);
    const pol = await ok('bpf', 'policy', 'get', 'app1');
    assert.match(pol.split('\n')[0]!, /^DIRECTION\s+IDENTITY\s+LABELS \(source:key\[=value\]\)\s+PORT\/PROTO\s+BYTES\s+PACKETS$/);
    const row = pol.split('\n').find((l) => l.includes('container:id=app2'))!;
    const [, bytes, packets] = /80\/TCP\s+(\d+)\s+(\d+)/.exec(row)!;
    assert.ok(Number(packets) >= 2 && Number(bytes) > 0, row);
    const app1 = await env.address('app1', 'cnet');
    assert.match(await ok('bpf', 'ipcache', 'list'), new RegExp(`${app1.replace(/\./g, '\\.')}/32\\s+identity=\\d+`));
    assert.match(await ok('bpf', 'ct', 'list'), new RegExp(`TCP\\s+\\S+ \\S+:80\\s+INGRESS|TCP\\s+\\S+\\s+${app1.replace(/\./g, '\\.')}:80\\s+INGRESS`));
    assert.match(await ok('bpf', 'endpoint', 'list'), /ingress-enforced/);
    assert.match(await ok('ip', 'list'), new RegExp(`${app1.replace(/\./g, '\\.')}/32\\s+\\d+\\s+container:id=app1`));
    assert.match(await ok('ipam'), new RegExp(`${app1.replace(/\./g, '\\.')}\\s+cilium-host-v4\\s+endpoint`));
  });

  it('errors people can act on; exit codes scripts can trust; bash completion', async () => {
    const down = await run(CLI, ['--api-socket', '/tmp/no-such-agent.sock', 'endpoint', 'list']);
    assert.strictEqual(down.code, 1);
    assert.match(down.stderr, /cannot reach cilium-agent at \/tmp\/no-such-agent\.sock \(ENOENT\): is it running\?/);
    const usage = await cli('policy', 'frobnicate');
    assert.strictEqual(usage.code, 2);
    const missing = await cli('endpoint', 'get', 'no-such-container');
    assert.strictEqual(missing.code, 1);
    assert.match(missing.stderr, /endpoint no-such-container not found/);
    const comp = await ok('completion', 'bash');
    const words = await run('bash', ['-c', `${comp}\nCOMP_WORDS=(cilium bpf ""); COMP_CWORD=2; _cilium; echo "\${COMPREPLY[*]}"`]);
    assert.strictEqual(words.stdout.trim(), 'policy ipcache ct endpoint nat lb');
  });

  it('metrics move when containers start and packets drop', async () => {
    const before = await metrics();
    assert.ok(metric(before, 'cilium_policy_max_revision') >= 2);
    await env.runDetached('app4', 'cnet', ['sleep', '600'], ['-l', 'id=app4']);
    assert.notStrictEqual(await fetch('app3', 'http://app1/'), 0);
    const after = await metrics();
    assert.strictEqual(metric(after, 'cilium_endpoint_state', 'endpoint_state="ready"'), metric(before, 'cilium_endpoint_state', 'endpoint_state="ready"') + 1);
    assert.strictEqual(metric(after, 'cilium_identity_count'), metric(before, 'cilium_identity_count') + 1);
    const drops = (t: string) => metric(t, 'cilium_drop_count_total', 'reason="Policy denied",direction="INGRESS"');
    assert.ok(drops(after) > drops(before), `drops ${drops(before)} -> ${drops(after)}`);
    assert.ok(metric(after, 'cilium_forward_count_total', 'direction="EGRESS"') > 0);
    assert.ok(metric(after, 'cilium_ipam_addresses', 'pool="cilium-host-v4",state="used"') >= 4);
    for (const name of [
      'cilium_docker_plugin_call_duration_seconds_count{method="NetworkDriver.CreateEndpoint",outcome="success"}',
      'cilium_agent_api_process_time_seconds_count',
      'cilium_endpoint_create_duration_seconds_count',
      'cilium_endpoint_ready_duration_seconds_count',
      'cilium_policy_regeneration_duration_seconds_count',
      'cilium_kvstore_operations_duration_seconds_count{action="batch",outcome="success"}',
    ]) {
      assert.ok(
        after.split('\n').some((l) => l.startsWith(name) && Number(l.split(' ').pop()) > 0),
        `${name} missing or zero`,
      );
    }
  });
});
