import assert from 'assert';
import { join } from 'path';
import { run } from '../harness/exec';
import { inSandbox } from '../harness/sandbox';
import { DRIVER, Env } from './env';

const ROOT = join(__dirname, '../../..');

/** The compose demos and the Vagrant lab's provisioning, run as users run them. */
describe('compose-examples and the Vagrant lab', function () {
  this.timeout(600_000);
  // load-balancing's web tier calls out through masquerade, on the device its external server sits behind.
  const env = new Env(['--devices=lb-ext']);

  before(async () => {
    await env.up();
  });
  after(async () => {
    await env.down();
  });

  const demo = (name: string) =>
    run('bash', [join(ROOT, 'compose-examples', name, 'run.sh')], {
      timeoutMs: 300_000,
      env: { DOCKER_HOST: env.dockerd.host, CILIUM_DRIVER: DRIVER, CILIUM_SOCK: env.agent.apiSocket },
    });

  for (const name of ['getting-started', 'three-tier', 'load-balancing', 'grpc']) {
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

  it('the provisioning script brings the plugin up as on a fresh VM, and again (idempotent), in a sandbox of its own', async () => {
    // Its own mount, network and PID namespaces: the machine's agent, dockerd and units stay as they are.
    const script = `
      for round in 1 2; do
        echo "== round $round"
        bash ${join(ROOT, 'vagrant', 'provision.sh')} || { echo "PROVISION FAILED in round $round"; tail -30 /var/log/cilium-agent.log /var/log/dockerd.log; exit 1; }
        echo "ACTIVATE $(curl -s --unix-socket /run/docker/plugins/cilium.sock -X POST http://plugin/Plugin.Activate)"
      done
      docker network create -d cilium --ipam-driver cilium provisioned-check >/dev/null && echo NETWORK OK
      docker network rm provisioned-check >/dev/null
      echo "NAT $(iptables -t nat -S POSTROUTING | grep -c MASQUERADE)"
      kill $(cat /run/cilium-agent.pid) $(cat /var/run/docker.pid) 2>/dev/null
      sleep 2
    `;
    const r = await inSandbox(script, 900_000, [ROOT]);
    const out = `${r.stdout.slice(-4000)}\n${r.stderr.slice(-3000)}`;
    assert.doesNotMatch(r.stdout, /PROVISION FAILED/, out);
    assert.strictEqual(r.stdout.match(/all checks passed/g)?.length, 2, `the demo ran in both rounds:\n${out}`);
    assert.strictEqual(r.stdout.match(/ACTIVATE \{"Implements":\["NetworkDriver","IpamDriver"\]\}/g)?.length, 2, out);
    assert.match(r.stdout, /NETWORK OK/, out);
    assert.match(r.stdout, /NAT [1-9]/, `the sandbox's dockerd ran with iptables on, as a real host's:\n${out}`);
  });
});
