import assert from 'assert';
import { join } from 'path';
import { run } from '../harness/exec';
import { httpUnix } from '../harness/agent';
import { DRIVER, Env } from './env';

const ROOT = join(__dirname, '../../..');

/** The compose demos and the Vagrant lab's provisioning, run as users run them. */
describe('compose-examples and the Vagrant lab', function () {
  this.timeout(600_000);
  const env = new Env();

  before(async () => {
    await env.up();
  });
  after(async () => {
    await env.down();
  });

  const demo = (name: string) =>
    run('bash', [join(ROOT, 'compose-examples', name, 'run.sh')], { timeoutMs: 300_000, env: { DOCKER_HOST: env.dockerd.host, CILIUM_DRIVER: DRIVER, CILIUM_SOCK: env.agent.apiSocket } });

  for (const name of ['getting-started', 'three-tier']) {
    it(`${name}: docker-compose up, policy, and every documented outcome`, async () => {
      const r = await demo(name);
      assert.strictEqual(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /all checks passed/);
      assert.doesNotMatch(r.stdout, /^FAIL/m);
      assert.deepStrictEqual(await env.agent.api('/v1/endpoint'), [], 'the demo cleaned up after itself');
    });
  }

  it('the Vagrantfile validates for the 1-node and the 2-node lab', async () => {
    for (const nodes of ['1', '2']) {
      const r = await run('vagrant', ['validate', '--ignore-provider'], { cwd: join(ROOT, 'vagrant'), env: { NODES: nodes } });
      assert.strictEqual(r.code, 0, r.stdout + r.stderr);
    }
    const bad = await run('vagrant', ['validate', '--ignore-provider'], { cwd: join(ROOT, 'vagrant'), env: { NODES: '3' } });
    assert.match(bad.stdout + bad.stderr, /NODES must be 1 or 2, got 3/);
  });

  it('the provisioning script brings the plugin up here as on a fresh VM, and again (idempotent)', async () => {
    for (let round = 1; round <= 2; round++) {
      const r = await run('bash', [join(ROOT, 'vagrant', 'provision.sh')], { timeoutMs: 400_000 });
      assert.strictEqual(r.code, 0, `round ${round}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
      assert.match(r.stdout, /all checks passed/, `round ${round}: the demo ran`);
      const activate = await httpUnix('/run/docker/plugins/cilium.sock', 'POST', '/Plugin.Activate', '');
      assert.deepStrictEqual(activate.body, { Implements: ['NetworkDriver', 'IpamDriver'] });
    }
    const net = await run('docker', ['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', 'provisioned-check']);
    assert.strictEqual(net.code, 0, net.stderr);
    await run('docker', ['network', 'rm', 'provisioned-check']);
  });
});
