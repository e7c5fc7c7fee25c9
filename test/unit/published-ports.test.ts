import assert from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { createServer } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import winston from 'winston';
import { Endpoint } from '../../endpoint/endpoint';
import { EndpointRegistry } from '../../endpoint/registry';
import { parseAddress } from '../../net/address';
import { HostPortProxy } from '../../service/host-proxy';
import { LoadBalancer } from '../../service/load-balancer';
import { formatPublishedPort, frontendsOf, parsePortMap } from '../../service/port-mapping';
import { PublishedPorts } from '../../service/published-ports';
import { UserServices, validateSpec } from '../../service/user-services';
import { LevelStore } from '../../store/level-store';
import { endpointFixture } from '../harness/endpoint-fixture';
import { memoryMaps } from '../harness/memory-map';

const log = winston.createLogger({ silent: true });
const v4 = (a: string) => parseAddress(a).value;

describe("published ports: libnetwork's port map", () => {
  it('reads -p, /udp, a host address, a range and -P (host port 0) as the engine sends them', () => {
    assert.deepStrictEqual(
      parsePortMap([
        { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 },
        { Proto: 17, Port: 53, HostIP: '127.0.0.1', HostPort: 5353 },
        { Proto: 6, Port: 81, HostIP: '0.0.0.0', HostPort: 9000, HostPortEnd: 9010 },
        { Proto: 6, Port: 82, HostPort: 0, HostPortEnd: 0 },
      ]),
      [
        { proto: 'tcp', containerPort: 80, hostPort: 8080, hostPortEnd: 8080 },
        { proto: 'udp', containerPort: 53, hostIp: '127.0.0.1', hostPort: 5353, hostPortEnd: 5353 },
        { proto: 'tcp', containerPort: 81, hostIp: '0.0.0.0', hostPort: 9000, hostPortEnd: 9010 },
        { proto: 'tcp', containerPort: 82, hostPort: 0, hostPortEnd: 0 },
      ],
    );
    assert.deepStrictEqual(parsePortMap(undefined), []);
  });

  it('refuses what cannot be published, naming it', () => {
    assert.throws(() => parsePortMap([{ Proto: 132, Port: 80, HostPort: 80 }]), /protocol 132 cannot be published by the cilium driver \(tcp and udp can\)/);
    assert.throws(() => parsePortMap([{ Proto: 6, Port: 0, HostPort: 80 }]), /Port must be a port number, got 0/);
    assert.throws(() => parsePortMap([{ Proto: 6, Port: 80, HostPort: 70000 }]), /HostPort must be a port number/);
    assert.throws(() => parsePortMap([{ Proto: 6, Port: 80, HostPort: 90, HostPortEnd: 80 }]), /range 90-80 is reversed/);
    assert.throws(() => parsePortMap([{ Proto: 6, Port: 80, HostIP: 'example', HostPort: 80 }]), /HostIP "example" is not an IPv4 or IPv6 address/);
    assert.throws(() => parsePortMap({}), /must be a list/);
  });

  it('an unspecified host address is every host address of each family the container has', () => {
    const m = parsePortMap([{ Proto: 6, Port: 80, HostPort: 8080 }])[0]!;
    assert.deepStrictEqual(frontendsOf(m, [4, 6]), [{ family: 4 }, { family: 6 }]);
    assert.deepStrictEqual(frontendsOf(m, [4]), [{ family: 4 }]);
    const any6 = parsePortMap([{ Proto: 6, Port: 80, HostIP: '::', HostPort: 8080 }])[0]!;
    assert.deepStrictEqual(frontendsOf(any6, [4, 6]), [{ family: 6 }]);
    const one = parsePortMap([{ Proto: 6, Port: 80, HostIP: '192.0.2.1', HostPort: 8080 }])[0]!;
    assert.deepStrictEqual(frontendsOf(one, [4, 6]), [{ family: 4, hostIp: '192.0.2.1' }]);
    assert.throws(() => frontendsOf(any6, [4]), /the container has no IPv6 address/);
    assert.strictEqual(formatPublishedPort({ proto: 'udp', family: 6, hostPort: 53, containerPort: 5353 }), '[::]:53->5353/udp');
  });
});

describe('published ports: the load balancer writes Cilium-style slots', () => {
  const backend = (a: string, port = 80) => ({ family: 4 as const, address: v4(a), port, proto: 6 });
  const frontend = { family: 4 as const, port: 8080, proto: 6 };

  it('slot 0 holds the count, slots 1..n the backend IDs; a backend shared by two services is written once', () => {
    const { maps } = memoryMaps();
    const lb = new LoadBalancer(maps);
    const a = lb.upsert(frontend, [backend('10.0.0.1'), backend('10.0.0.2')]);
    const b = lb.upsert({ ...frontend, port: 9090 }, [backend('10.0.0.1')]);
    assert.deepStrictEqual([a.id, b.id], [1, 2]);
    const entries = maps.lbServices.entries().sort((x, y) => x.frontend.port - y.frontend.port);
    const id1 = lb.backendId(backend('10.0.0.1'))!;
    const id2 = lb.backendId(backend('10.0.0.2'))!;
    assert.deepStrictEqual(
      entries.map((e) => e.backendIds),
      [[id1, id2], [id1]],
    );
    assert.strictEqual(maps.lbBackends.entries().length, 2);
    // fewer backends: the slots beyond the new count are removed
    lb.upsert(frontend, [backend('10.0.0.2')]);
    assert.deepStrictEqual(maps.lbServices.entries().find((e) => e.frontend.port === 8080)!.backendIds, [id2]);
    assert.strictEqual(maps.lbServices.map.keys().length, 2 + 2, 'two slot-0 keys and one slot each');
    lb.remove(a.id);
    assert.deepStrictEqual(
      maps.lbBackends.entries().map((e) => e.id),
      [id1],
      "the backend only the removed service had is freed, the shared one's stays",
    );
    lb.remove(b.id);
    assert.deepStrictEqual([maps.lbServices.map.keys().length, maps.lbBackends.map.keys().length], [0, 0]);
  });

  it('IDs: the lowest free one, for services and backends alike; the same backends again write nothing', () => {
    const { maps } = memoryMaps();
    const lb = new LoadBalancer(maps);
    const ids = [8080, 8081, 8082].map((port) => lb.upsert({ ...frontend, port }, [backend(`10.0.0.${port - 8079}`)]).id);
    assert.deepStrictEqual(ids, [1, 2, 3]);
    lb.remove(2);
    assert.strictEqual(lb.upsert({ ...frontend, port: 9000 }, [backend('10.0.0.9')]).id, 2, 'the freed ID is taken again');
    assert.strictEqual(lb.backendId(backend('10.0.0.9')), 2, "and the freed backend's");
    assert.strictEqual(lb.find({ ...frontend, port: 9000 })?.id, 2);
    let writes = 0;
    const set = maps.lbServices.set.bind(maps.lbServices);
    maps.lbServices.set = (...a) => {
      writes++;
      set(...a);
    };
    lb.upsert({ ...frontend, port: 9000 }, [backend('10.0.0.9')]);
    assert.strictEqual(writes, 0, 'unchanged backends leave the maps alone');
  });

  it("at start the maps hold exactly the agent's services: stale frontends and backends go, kept ones never disappear", () => {
    const { maps } = memoryMaps();
    const old = new LoadBalancer(maps);
    old.upsert(frontend, [backend('10.0.0.1')]);
    old.upsert({ ...frontend, port: 9999 }, [backend('10.0.0.9')]); // its container went while the agent was down
    const lb = new LoadBalancer(maps);
    lb.upsert(frontend, [backend('10.0.0.1')]);
    lb.removeStale();
    assert.deepStrictEqual(
      maps.lbServices.entries().map((e) => e.frontend.port),
      [8080],
    );
    assert.deepStrictEqual(
      maps.lbBackends.entries().map((e) => e.backend.address),
      [v4('10.0.0.1')],
    );
  });
});

describe('published ports: publications, host ports and restarts', function () {
  this.timeout(20_000);
  let dir: string;
  let store: LevelStore;

  const endpoint = (dockerEndpointId: string, id: number, ipv4: string) => endpointFixture(id, { dockerEndpointId, ipv4: `${ipv4}/16` });
  /** A host port nothing on this machine holds now (the kernel's pick, let go). */
  const freePort = () =>
    new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as { port: number };
        s.close(() => {
          resolve(port);
        });
      });
    });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cilium-pp-unit-'));
    store = await LevelStore.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a port taken is refused in the engine's words with nothing stored, written or held; a range takes its first free port", async () => {
    const { maps } = memoryMaps();
    const registry = await EndpointRegistry.load(store);
    await registry.save(endpoint('a'.repeat(64), 1, '10.0.0.1'));
    await registry.save(endpoint('b'.repeat(64), 2, '10.0.0.2'));
    const proxy = new HostPortProxy();
    const pp = await PublishedPorts.load(store, new LoadBalancer(maps), proxy, registry, log);
    try {
      const port = await freePort();
      await pp.publish('a'.repeat(64), parsePortMap([{ Proto: 6, Port: 80, HostIP: '127.0.0.1', HostPort: port }]));
      const keysBefore = maps.lbServices.map.keys().length;
      await assert.rejects(
        pp.publish('b'.repeat(64), parsePortMap([{ Proto: 6, Port: 80, HostIP: '127.0.0.1', HostPort: port }])),
        new RegExp(`Bind for 127\\.0\\.0\\.1:${port} failed: port is already allocated`),
      );
      assert.strictEqual(maps.lbServices.map.keys().length, keysBefore);
      assert.deepStrictEqual(await store.list(`published/${'b'.repeat(64)}`), []);
      const [got] = await pp.publish('b'.repeat(64), parsePortMap([{ Proto: 6, Port: 80, HostIP: '127.0.0.1', HostPort: port, HostPortEnd: port + 1 }]));
      assert.strictEqual(got!.hostPort, port + 1, 'the next port of the range');
    } finally {
      proxy.closeAll();
    }
  });

  it("a restarted agent holds the stored ports again and forgets an endpoint's that is gone; removal frees the port", async () => {
    const { maps } = memoryMaps();
    const registry = await EndpointRegistry.load(store);
    const kept = endpoint('c'.repeat(64), 3, '10.0.0.3');
    const gone = endpoint('d'.repeat(64), 4, '10.0.0.4');
    await registry.save(kept);
    await registry.save(gone);
    const [p1, p2] = [await freePort(), await freePort()];
    const first = new HostPortProxy();
    const before = await PublishedPorts.load(store, new LoadBalancer(maps), first, registry, log);
    await before.publish(kept.dockerEndpointId, parsePortMap([{ Proto: 6, Port: 80, HostIP: '127.0.0.1', HostPort: p1 }]));
    await before.publish(gone.dockerEndpointId, parsePortMap([{ Proto: 17, Port: 53, HostIP: '127.0.0.1', HostPort: p2 }]));
    first.closeAll(); // the agent stops

    const afterRegistry = await EndpointRegistry.load(store);
    await afterRegistry.remove(afterRegistry.byDockerEndpoint(gone.dockerEndpointId)!); // removed while it was down
    const second = new HostPortProxy();
    const lb = new LoadBalancer(maps);
    const after = await PublishedPorts.load(store, lb, second, afterRegistry, log);
    lb.removeStale();
    try {
      assert.deepStrictEqual(
        after.list().map((s) => s.port.hostPort),
        [p1],
      );
      assert.deepStrictEqual(
        maps.lbServices.entries().map((e) => e.frontend.port),
        [p1],
      );
      assert.deepStrictEqual(await store.list(`published/${gone.dockerEndpointId}`), []);
      await new Promise((r) => setTimeout(r, 100)); // the port is held again asynchronously
      assert.ok(second.has({ proto: 'tcp', family: 4, hostIp: '127.0.0.1', hostPort: p1 }));
      await afterRegistry.remove(afterRegistry.byDockerEndpoint(kept.dockerEndpointId)!);
      assert.deepStrictEqual(after.list(), []);
      assert.strictEqual(maps.lbServices.map.keys().length, 0);
      assert.ok(!second.has({ proto: 'tcp', family: 4, hostIp: '127.0.0.1', hostPort: p1 }));
      const rebind = createServer();
      await new Promise<void>((resolve, reject) => rebind.once('error', reject).listen(p1, '127.0.0.1', resolve));
      rebind.close();
    } finally {
      second.closeAll();
    }
  });
});

describe('user services: definitions and label-selected backends', function () {
  this.timeout(20_000);
  let dir: string;
  let store: LevelStore;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cilium-svc-unit-'));
    store = await LevelStore.open(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a bad definition with the cause', () => {
    assert.throws(() => validateSpec(0, { frontend: '10.96.0.1:80', backends: [] }), /service ID must be 1-65535/);
    assert.throws(() => validateSpec(1, { frontend: '10.96.0.1', backends: [] }), /frontend "10.96.0.1" must be ADDRESS:PORT/);
    assert.throws(() => validateSpec(1, { frontend: '10.96.0.1:80' }), /backends or a selector/);
    assert.throws(() => validateSpec(1, { frontend: '10.96.0.1:80', backends: ['[f00d::1]:80'] }), /backend \[f00d::1\]:80 is IPv6, the frontend IPv4/);
    assert.throws(() => validateSpec(1, { frontend: '10.96.0.1:80', selector: { app: 'web' } }), /a selector needs targetPort/);
    assert.throws(() => validateSpec(1, { frontend: '10.96.0.1:80', backends: [], protocol: 'sctp' }), /protocol "sctp": tcp or udp/);
    assert.deepStrictEqual(validateSpec(7, { frontend: '[f00d::0:1]:53', protocol: 'UDP', backends: ['[f00d::2]:5353'] }), {
      id: 7,
      frontend: { address: 'f00d::1', port: 53 },
      protocol: 'udp',
      backends: [{ address: 'f00d::2', port: 5353 }],
    });
  });

  it('a selector service has every ready matching endpoint as backend, follows them, and refuses a taken frontend or ID', async () => {
    const { maps } = memoryMaps();
    const registry = await EndpointRegistry.load(store);
    const ep = (n: number, labels: string[], state: Endpoint['state'] = 'ready') => endpointFixture(n, { ipv4: `10.0.0.${n}/16`, labels, state });
    await registry.save(ep(1, ['container:app=web']));
    await registry.save(ep(2, ['container:app=db']));
    await registry.save(ep(3, ['container:app=web'], 'waiting-for-identity'));
    const lb = new LoadBalancer(maps);
    const us = await UserServices.load(store, lb, registry);
    const s = await us.update(validateSpec(10, { frontend: '10.96.0.10:80', selector: { app: 'web' }, targetPort: 8080 }));
    const addrs = () =>
      lb
        .list()
        .find((x) => x.id === 10)!
        .backends.map((b) => `${b.address}:${b.port}`);
    assert.strictEqual(s.id, 10);
    assert.deepStrictEqual(addrs(), [`${v4('10.0.0.1')}:8080`]);
    await registry.save({ ...ep(3, ['container:app=web']), state: 'ready' });
    assert.deepStrictEqual(addrs().sort(), [`${v4('10.0.0.1')}:8080`, `${v4('10.0.0.3')}:8080`].sort());
    await registry.remove(registry.byId(1)!);
    assert.deepStrictEqual(addrs(), [`${v4('10.0.0.3')}:8080`]);
    await assert.rejects(
      us.update(validateSpec(11, { frontend: '10.96.0.10:80', backends: ['10.0.0.2:80'] })),
      /frontend 10.96.0.10:80\/TCP is already service 10's/,
    );
    lb.upsert({ family: 4, port: 8080, proto: 6 }, []); // a published port's, ID 1
    await assert.rejects(us.update(validateSpec(1, { frontend: '10.96.0.12:80', backends: ['10.0.0.2:80'] })), /service ID 1 is a published port's/);
    assert.deepStrictEqual((await store.list('service/')).length, 1);
    assert.ok(await us.delete(10));
    assert.ok(!(await us.delete(10)));
    assert.deepStrictEqual(
      maps.lbServices.entries().map((e) => e.frontend.port),
      [8080],
    );
  });
});
