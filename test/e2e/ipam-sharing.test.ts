import assert from 'assert';
import { DRIVER, Env } from './env';

/**
 * `--ipam-driver cilium` with another network driver: Docker's bridge uses
 * our pool, and reconciliation (which releases what no container holds)
 * must see those containers too.
 */
describe('a pool used by another network driver through our IPAM', function () {
  this.timeout(180_000);
  const env = new Env(['--reconcile-grace=0', '--reconcile-interval=0']);

  before(() => env.up());
  after(async () => {
    await env.docker(['rm', '-f', 'b1']);
    await env.docker(['network', 'rm', 'bnet']);
    await env.down();
  });

  it('is never released while Docker still uses it, and goes when Docker removes the network', async () => {
    await env.ok(['network', 'create', '-d', 'bridge', '--ipam-driver', DRIVER, '--subnet', '192.168.77.0/24', 'bnet']);
    await env.ok(['run', '-d', '--name', 'b1', '--net', 'bnet', 'bbox:latest', 'sleep', '3600']);
    const address = await env.ok(['inspect', '-f', '{{.NetworkSettings.Networks.bnet.IPAddress}}', 'b1']);
    const pool = async () => (await env.pools()).find((p) => p.cidr === '192.168.77.0/24');
    assert.ok(
      (await pool())?.allocations.some((a) => a.address === address),
      "our IPAM handed out the bridge container's address",
    );
    const report = await env.agent.request('POST', '/v1/reconcile');
    assert.strictEqual(report.status, 200, JSON.stringify(report.body));
    const after = await pool();
    assert.ok(after, `the pool survived reconciliation: ${JSON.stringify(report.body)}`);
    assert.ok(
      after.allocations.some((a) => a.address === address),
      'and the address is still held',
    );
    await env.ok(['rm', '-f', 'b1']);
    await env.ok(['network', 'rm', 'bnet']);
    assert.strictEqual(await pool(), undefined, 'Docker released it');
  });
});
