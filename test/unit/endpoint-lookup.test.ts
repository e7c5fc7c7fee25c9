import assert from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { findEndpoint } from '../../api/http';
import { EndpointRegistry } from '../../endpoint/registry';
import { LevelStore } from '../../store/level-store';
import { endpointFixture } from '../harness/endpoint-fixture';

describe('API: finding an endpoint by what a user types', () => {
  let dir: string;
  let store: LevelStore;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cilium-lookup-'));
    store = await LevelStore.open(dir);
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an endpoint number, a container name, or a Docker ID prefix, also one of digits only', async () => {
    const registry = await EndpointRegistry.load(store);
    const ep = (id: number, dockerEndpointId: string, containerName: string) => endpointFixture(id, { dockerEndpointId, containerName });
    await registry.save(ep(1, `533187766885${'a'.repeat(52)}`, 'web'));
    await registry.save(ep(2, `12${'b'.repeat(62)}`, 'db'));
    assert.strictEqual(findEndpoint(registry, '2').containerName, 'db', 'a number is the endpoint number first');
    assert.strictEqual(findEndpoint(registry, '533187766885').containerName, 'web', 'digits that are no endpoint number: a Docker ID prefix');
    assert.strictEqual(findEndpoint(registry, 'web').id, 1);
    assert.throws(() => findEndpoint(registry, '7'), /endpoint 7 not found/);
  });
});
