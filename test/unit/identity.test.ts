import assert from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import winston from 'winston';
import { IdentityAllocator } from '../../identity/allocator';
import { LocalIdentities } from '../../identity/local-backend';
import { fromDocker } from '../../labels/labels';
import { LevelStore } from '../../store/level-store';

const log = winston.createLogger({ silent: true });

describe('identity allocator (LevelDB, compare-and-set)', () => {
  let dir: string;
  let store: LevelStore;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ident-'));
    store = await LevelStore.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('maps the same label set to the same number, different sets to different numbers >= 256', async () => {
    const a = await IdentityAllocator.load(new LocalIdentities(store), log, 60_000);
    const x = await a.acquire(fromDocker({ id: 'app1', tier: 'web' }));
    const y = await a.acquire(fromDocker({ tier: 'web', id: 'app1' }));
    const z = await a.acquire(fromDocker({ id: 'app2' }));
    assert.strictEqual(x.id, y.id);
    assert.notStrictEqual(x.id, z.id);
    assert.ok(x.id >= 256 && z.id >= 256);
    assert.deepStrictEqual(x.labels, ['container:id=app1', 'container:tier=web']);
  });

  it('concurrent requests for one new label set agree on one number', async () => {
    const a = await IdentityAllocator.load(new LocalIdentities(store), log, 60_000);
    const got = await Promise.all(Array.from({ length: 20 }, () => a.acquire(['container:id=race'])));
    assert.strictEqual(new Set(got.map((g) => g.id)).size, 1);
  });

  it('two allocators on one store (as two hosts on etcd) never give one set two numbers', async () => {
    const a = await IdentityAllocator.load(new LocalIdentities(store), log, 60_000);
    const b = await IdentityAllocator.load(new LocalIdentities(store), log, 60_000);
    const [x, y] = await Promise.all([a.acquire(['container:id=shared']), b.acquire(['container:id=shared'])]);
    assert.strictEqual(x.id, y.id);
    const [p, q] = await Promise.all([a.acquire(['container:id=one']), b.acquire(['container:id=two'])]);
    assert.notStrictEqual(p.id, q.id, 'two sets racing for the same free number');
  });

  it('keeps numbers across a restart and releases an unused one only after the grace period', async () => {
    let a = await IdentityAllocator.load(new LocalIdentities(store), log, 150);
    const x = await a.acquire(['container:id=gone']);
    a = await IdentityAllocator.load(new LocalIdentities(store), log, 150);
    assert.strictEqual((await a.acquire(['container:id=gone'])).id, x.id);
    a.release(x.id);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(a.get(x.id), 'still there within the grace period');
    const back = await a.acquire(['container:id=gone']);
    assert.strictEqual(back.id, x.id, 'a container restarting within the grace keeps its number');
    a.release(x.id);
    await new Promise((r) => setTimeout(r, 400));
    assert.strictEqual(a.get(x.id), undefined);
    const reloaded = await IdentityAllocator.load(new LocalIdentities(store), log, 150);
    assert.strictEqual(reloaded.get(x.id), undefined, 'released in the store too');
  });

  it('leaves Docker housekeeping labels out of identities', () => {
    assert.deepStrictEqual(fromDocker({ id: 'a', 'com.docker.compose.project': 'x', 'org.opencontainers.image.title': 't' }), ['container:id=a']);
  });
});
