import assert from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import winston from 'winston';
import { EP_FLAGS } from '../../datapath/bpf/constants';
import { Endpoint } from '../../endpoint/endpoint';
import { PolicySync } from '../../endpoint/policy-sync';
import { EndpointRegistry } from '../../endpoint/registry';
import { IdentityAllocator } from '../../identity/allocator';
import { LocalIdentities } from '../../identity/local-backend';
import { CidrIdentities } from '../../identity/cidr';
import { RESERVED } from '../../identity/reserved';
import { PolicyNotApplied, PolicyRepository } from '../../policy/repository';
import { LevelStore } from '../../store/level-store';
import { memoryMaps } from '../harness/memory-map';

const log = winston.createLogger({ silent: true });
const rule = (port: string) => [
  {
    labels: [{ key: 'name', value: 'web' }],
    endpointSelector: { matchLabels: { id: 'app1' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app2' } }], toPorts: [{ ports: [{ port, protocol: 'TCP' }] }] }],
  },
];

/**
 * The regenerator against the agent's real codecs over in-memory maps, the
 * real registry, allocator and repository over a LevelDB in a temp dir:
 * what it writes is what the kernel would hold. No root.
 */
describe('regenerator: rules, identities and endpoints into the maps', () => {
  let dir: string;
  let store: LevelStore;
  let world: Awaited<ReturnType<typeof setUp>>;

  async function setUp() {
    const { maps, raw } = memoryMaps();
    const registry = await EndpointRegistry.load(store);
    const identities = await IdentityAllocator.load(new LocalIdentities(store), log, 60_000);
    const repo = await PolicyRepository.load(store);
    const sync = new PolicySync({ maps }, registry, identities, new CidrIdentities([]), repo, { mode: 'default', l7ProxyPort: 10080 }, log);
    sync.follow(repo, identities, registry);
    let n = 0;
    /** An endpoint as CreateEndpoint leaves it (fail-closed), then made ready with these labels. */
    const endpoint = async (labels: string[], makeReady = true): Promise<Endpoint> => {
      n++;
      const ep: Endpoint = {
        id: registry.reserveId(),
        dockerEndpointId: `${n}`.repeat(64).slice(0, 64),
        dockerNetworkId: 'f'.repeat(64),
        ifName: `lxc00000000000${n}`,
        peerName: `tmp00000000000${n}`,
        ifIndex: 100 + n,
        mac: `0e:00:00:00:00:0${n}`,
        hostMac: `0e:00:00:00:01:0${n}`,
        ipv4: `10.9.0.${n}`,
        labels: [],
        identity: RESERVED.init,
        state: 'waiting-for-identity',
        createdAt: new Date().toISOString(),
      };
      await registry.save(ep);
      if (!makeReady) return ep;
      const { id } = await identities.acquire(labels);
      const ready: Endpoint = { ...ep, labels, identity: id, state: 'ready' };
      await registry.save(ready);
      return ready;
    };
    return { maps, raw, registry, identities, repo, sync, endpoint };
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'regen-'));
    store = await LevelStore.open(dir);
    world = await setUp();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const policyOf = (epId: number) =>
    world.maps.policy
      .entries()
      .filter((e) => e.epId === epId)
      .map(({ identity, port, proto, dir }) => ({ identity, port, proto, dir }));

  it('an endpoint is written fail-closed until it is ready, then under its identity', async () => {
    const waiting = await world.endpoint(['container:id=app1'], false);
    const entry = () => world.maps.endpoints.entries().find((e) => e.epId === waiting.id)!;
    assert.deepStrictEqual([entry().identity, entry().flags & EP_FLAGS.notReady], [RESERVED.init, EP_FLAGS.notReady]);
    const { id } = await world.identities.acquire(['container:id=app1']);
    await world.registry.save({ ...waiting, labels: ['container:id=app1'], identity: id, state: 'ready' });
    assert.deepStrictEqual([entry().identity, entry().flags & EP_FLAGS.notReady], [id, 0]);
  });

  it('an import writes exactly the allow it says and enforces only the selected endpoint', async () => {
    const app1 = await world.endpoint(['container:id=app1']);
    const app2 = await world.endpoint(['container:id=app2']);
    await world.repo.import(rule('80'));
    assert.deepStrictEqual(policyOf(app1.id), [{ identity: app2.identity, port: 80, proto: 6, dir: 'ingress' }]);
    assert.deepStrictEqual(policyOf(app2.id), []);
    const flags = (id: number) => world.maps.endpoints.entries().find((e) => e.epId === id)!.flags;
    assert.strictEqual(flags(app1.id) & EP_FLAGS.ingressEnforce, EP_FLAGS.ingressEnforce);
    assert.strictEqual(flags(app2.id) & EP_FLAGS.ingressEnforce, 0);
  });

  it("a rule that allows less moves the endpoint's policy generation (tracked connections are judged again)", async () => {
    const app1 = await world.endpoint(['container:id=app1']);
    const app2 = await world.endpoint(['container:id=app2']);
    await world.repo.import(rule('80'));
    const gen = () => world.maps.endpoints.entries().find((e) => e.epId === app1.id)!.policyGen;
    const before = gen();
    await world.repo.import(rule('8080'));
    assert.deepStrictEqual(policyOf(app1.id), [{ identity: app2.identity, port: 8080, proto: 6, dir: 'ingress' }]);
    assert.ok(gen() > before, `policy generation ${before} -> ${gen()}`);
  });

  it('an endpoint that becomes ready later is allowed in by the rules already there', async () => {
    const app1 = await world.endpoint(['container:id=app1']);
    await world.repo.import(rule('80'));
    assert.deepStrictEqual(policyOf(app1.id), []);
    const app2 = await world.endpoint(['container:id=app2']);
    assert.deepStrictEqual(policyOf(app1.id), [{ identity: app2.identity, port: 80, proto: 6, dir: 'ingress' }]);
  });

  it('a removed endpoint leaves no entry: its own, its address, its policy, and no allow of it in the others', async () => {
    const app1 = await world.endpoint(['container:id=app1']);
    const app2 = await world.endpoint(['container:id=app2']);
    await world.repo.import(rule('80'));
    await world.registry.remove(app1);
    assert.deepStrictEqual(
      world.maps.endpoints.entries().map((e) => e.epId),
      [app2.id],
    );
    assert.deepStrictEqual(
      world.maps.addresses.entries().map((e) => e.address),
      [app2.ipv4],
    );
    assert.deepStrictEqual(policyOf(app1.id), []);
    // Its ID, reused by the next endpoint, starts with nothing.
    const next = await world.endpoint(['container:id=app3']);
    assert.strictEqual(next.id, app1.id);
    assert.deepStrictEqual(policyOf(next.id), []);
  });

  it('a datapath that refuses the update: the import rolls back, revision and maps as before', async () => {
    const app1 = await world.endpoint(['container:id=app1']);
    const app2 = await world.endpoint(['container:id=app2']);
    await world.repo.import(rule('80'));
    const revision = world.repo.revision;
    world.raw.cilium_policy.failNextUpdate = 'E2BIG';
    await assert.rejects(world.repo.import(rule('8080')), (err: unknown) => {
      assert.ok(err instanceof PolicyNotApplied);
      assert.match(
        err.message,
        new RegExp(`policy import not applied, revision ${revision} stays in force: the datapath update failed: update cilium_policy: E2BIG`),
      );
      return true;
    });
    assert.strictEqual(world.repo.revision, revision);
    assert.deepStrictEqual(policyOf(app1.id), [{ identity: app2.identity, port: 80, proto: 6, dir: 'ingress' }]);
  });
});
