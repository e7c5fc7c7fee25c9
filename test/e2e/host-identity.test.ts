import assert from 'assert';
import { writeFileSync } from 'fs';
import { join } from 'path';
import { TestAgent } from '../harness/agent';
import { TestDockerd, buildBusyboxImage } from '../harness/dockerd';
import { must, run, waitFor } from '../harness/exec';
import { IMAGE, WGET } from './env';

const CLI = join(__dirname, '../../../bin/cilium');
const NS = 'cilium-dockerhost';
const DRIVER = 'cilium-nat-test';

interface Ev {
  type: string;
  reasonName: string;
  srcIdentity: number;
  dstIdentity: number;
  src: string;
  dport: number;
  seq: number;
}

const l4Rule = {
  labels: [{ key: 'name', value: 'l4' }],
  endpointSelector: { matchLabels: { id: 'app1' } },
  ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app2' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
};
const extraRule = (name: string, from: object) => ({
  labels: [{ key: 'name', value: name }],
  endpointSelector: { matchLabels: { id: 'app1' } },
  ingress: [{ ...from, toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
});

/**
 * Only the host's own stack is "host". A dockerd with iptables ON (NAT and
 * FORWARD rules, as on every Docker host) runs in a network namespace of the
 * test's own, with the agent beside it: a container on Docker's default
 * bridge reaches our endpoints masqueraded to a host address, and must not
 * pass as the host.
 */
describe('who is "host": traffic the host forwards or NATs is its real source (dockerd with iptables on)', function () {
  this.timeout(600_000);
  const dockerd = new TestDockerd([], { iptables: true, netns: NS });
  const agent = new TestAgent(DRIVER, ['--ipv4-range=10.214.0.0/16', '--enable-ipv6=false', `--docker-host=${dockerd.host}`], NS);
  const inNs = (cmd: string[], timeoutMs = 30_000) => run('ip', ['netns', 'exec', NS, ...cmd], { timeoutMs });
  const cli = (...args: string[]) => run(CLI, ['--api-socket', agent.apiSocket, ...args], { timeoutMs: 30_000 });
  const importRules = async (rules: unknown[]) => {
    const f = join(agent.dir, 'rules.json');
    writeFileSync(f, JSON.stringify(rules));
    const r = await cli('policy', 'import', f);
    assert.strictEqual(r.code, 0, r.stderr);
  };
  const fetch = async (from: string) => (await dockerd.docker(['exec', from, 'sh', '-c', `${WGET} http://${app1}/ >/dev/null`], 30_000)).code;
  const hostFetch = async () => (await inNs(['busybox', 'timeout', '3', 'busybox', 'wget', '-q', '-O-', `http://${app1}/`])).code;
  const lastSeq = async () => Math.max(0, ...(await agent.api<Ev[]>('/v1/events')).map((e) => e.seq));
  let app1 = '';
  let outsiderIp = '';

  before(async () => {
    await run('ip', ['netns', 'del', NS]);
    await must('ip', ['netns', 'add', NS]);
    await must('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    await dockerd.start();
    await buildBusyboxImage(dockerd, IMAGE);
    await agent.start();
    await dockerd.ok(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, 'cnet'], 30_000);
    await dockerd.ok(['run', '-d', '--name', 'app1', '--net', 'cnet', '-l', 'id=app1', IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    await dockerd.ok(['run', '-d', '--name', 'app2', '--net', 'cnet', '-l', 'id=app2', IMAGE, 'sleep', '3600']);
    // On Docker's own bridge, labelled like app2: a label means nothing outside our networks.
    await dockerd.ok(['run', '-d', '--name', 'outsider', '-l', 'id=app2', IMAGE, 'sleep', '3600']);
    app1 = await dockerd.ok(['inspect', '-f', '{{(index .NetworkSettings.Networks "cnet").IPAddress}}', 'app1']);
    outsiderIp = await dockerd.ok(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'outsider']);
    await waitFor('app1 and app2 ready', async () => (await agent.api<Array<{ state: string }>>('/v1/endpoint')).every((e) => e.state === 'ready'), 30_000);
  });
  after(async () => {
    const ids = (await dockerd.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length) await dockerd.docker(['rm', '-f', ...ids]);
    await dockerd.docker(['network', 'rm', 'cnet']);
    await agent.destroy();
    await dockerd.destroy();
    const pids = (await run('ip', ['netns', 'pids', NS])).stdout.split('\n').filter(Boolean);
    for (const pid of pids) await run('kill', ['-9', pid]);
    await run('ip', ['netns', 'del', NS]);
  });

  it('the engine really masquerades its bridge (iptables on), and with no policy the bridge container gets through', async () => {
    const nat = (await inNs(['iptables', '-t', 'nat', '-S', 'POSTROUTING'])).stdout;
    assert.match(nat, /-s 172\.17\.0\.0\/16 ! -o docker0 -j MASQUERADE/, nat);
    assert.match(outsiderIp, /^172\.17\./);
    assert.strictEqual(await fetch('outsider'), 0);
  });

  it('a rule admitting only app2 denies the bridge container, and the drop names it world, not host', async () => {
    await importRules([l4Rule]);
    const since = await lastSeq();
    assert.strictEqual(await fetch('app2'), 0, 'app2 is admitted');
    assert.notStrictEqual(await fetch('outsider'), 0, 'the bridge container must be denied');
    const drops = await waitFor('the drop event', async () => {
      const d = (await agent.api<Ev[]>('/v1/events')).filter((e) => e.seq > since && e.type === 'drop' && e.dport === 80);
      return d.length ? d : undefined;
    });
    assert.strictEqual(drops[0]!.reasonName, 'Policy denied');
    assert.strictEqual(drops[0]!.srcIdentity, 2, `identity of the masqueraded bridge container: ${JSON.stringify(drops[0])}`);
  });

  it('fromEntities: [world] admits it', async () => {
    await importRules([l4Rule, extraRule('world', { fromEntities: ['world'] })]);
    assert.strictEqual(await fetch('outsider'), 0);
    await cli('policy', 'delete', 'name=world');
    assert.notStrictEqual(await fetch('outsider'), 0);
  });

  it('a fromCIDR of its bridge subnet admits it (its source before the NAT), another subnet does not', async () => {
    await importRules([l4Rule, extraRule('other-cidr', { fromCIDR: ['172.18.0.0/16'] })]);
    assert.notStrictEqual(await fetch('outsider'), 0);
    await importRules([l4Rule, extraRule('bridge-cidr', { fromCIDR: ['172.17.0.0/16'] })]);
    assert.strictEqual(await fetch('outsider'), 0);
    await cli('policy', 'delete', 'name=bridge-cidr');
    await cli('policy', 'delete', 'name=other-cidr');
  });

  it('the host itself passes by default (--allow-localhost=always) and is subject to policy with --allow-localhost=policy', async () => {
    const since = await lastSeq();
    assert.strictEqual(
      await hostFetch(),
      0,
      `the host reaches app1 despite the L4 rule: ${JSON.stringify((await agent.api<Ev[]>('/v1/events')).filter((e) => e.seq > since))}`,
    );
    await agent.stop();
    await agent.start({}, ['--allow-localhost=policy']);
    assert.notStrictEqual(await hostFetch(), 0, 'the host is now subject to the rule');
    await importRules([l4Rule, extraRule('host', { fromEntities: ['host'] })]);
    assert.strictEqual(await hostFetch(), 0, 'fromEntities host admits it');
    assert.notStrictEqual(await fetch('outsider'), 0, 'and the bridge container is still not the host');
  });
});
