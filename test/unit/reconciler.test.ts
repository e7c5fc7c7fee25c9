import assert from 'assert';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import winston from 'winston';
import { programEndpoint } from '../../datapath/bpf/endpoint-program';
import { PINNED_MAPS } from '../../datapath/bpf/loader';
import type { HostLink } from '../../datapath/rtnl';
import { Endpoint } from '../../endpoint/endpoint';
import { MIN_CIDR_IDENTITY, RESERVED } from '../../identity/reserved';
import { DEFAULT_POOL_ID, Ipam } from '../../ipam/ipam';
import { parseAddress, parseCidr } from '../../net/address';
import type { Network } from '../../network/manager';
import type { DockerEndpoint, DockerView } from '../../reconcile/docker-view';
import { Reconciler, UNTAGGED_ORPHAN_MS } from '../../reconcile/reconciler';
import { LevelStore } from '../../store/level-store';
import { memoryMaps } from '../harness/memory-map';

const log = winston.createLogger({ silent: true });
const TAG = 'cilium-agent-test';
const NET = 'a'.repeat(64);

/** The endpoint manager as the reconciler sees it: what it holds, and what was asked of it. */
class FakeEndpoints {
  readonly tag = TAG;
  eps: Endpoint[] = [];
  deleted: string[] = [];
  resolving: string[] = [];
  transient = new Set<string>();
  settingUp = new Set<number>();
  missingPrograms: Endpoint[] = [];
  list = () => [...this.eps];
  resolveSoon = (ep: Endpoint) => void this.resolving.push(ep.dockerEndpointId);
  delete = (id: string) => {
    this.deleted.push(id);
    this.eps = this.eps.filter((e) => e.dockerEndpointId !== id);
    return Promise.resolve();
  };
  isTransient = (name: string) => this.transient.has(name);
  creating = () => this.settingUp.size > 0;
  isSettingUp = (id: number) => this.settingUp.has(id);
  reattachPrograms = () => Promise.resolve(this.missingPrograms);
}

/** The kernel's links; a reaped one is gone from the next listing. */
class FakeLinks {
  links: HostLink[] = [];
  reaped: string[] = [];
  /** Runs while the listing is under way, as an endpoint's setup may end then. */
  duringList: () => void = () => undefined;
  list = async () => {
    const listed = [...this.links];
    await Promise.resolve();
    this.duringList();
    return listed;
  };
  reap = (name: string) => {
    const had = this.links.some((l) => l.name === name);
    this.links = this.links.filter((l) => l.name !== name);
    if (had) this.reaped.push(name);
    return Promise.resolve(had);
  };
}

class FakeNetworks {
  nets: Network[] = [];
  list = () => [...this.nets];
  remove = (id: string) => {
    const n = this.nets.find((x) => x.id === id);
    this.nets = this.nets.filter((x) => x.id !== id);
    return Promise.resolve(n);
  };
}

let n = 0;
function endpoint(over: Partial<Endpoint> = {}): Endpoint {
  n++;
  const hex = n.toString(16).padStart(12, '0');
  return {
    id: n,
    dockerEndpointId: hex.repeat(6).slice(0, 64),
    dockerNetworkId: NET,
    ifName: `lxc${hex}`,
    peerName: `tmp${hex}`,
    ifIndex: 1000 + n,
    mac: '0e:00:00:00:00:01',
    hostMac: '0e:00:00:00:01:01',
    ipv4: `10.77.0.${10 + n}`,
    labels: ['container:id=app'],
    identity: 300,
    state: 'ready',
    containerId: `c${n}`,
    sandboxKey: `/var/run/docker/netns/${hex}`,
    createdAt: new Date(Date.now() - 60_000).toISOString(),
    ...over,
  };
}

/**
 * The reconciler's decisions, behind fakes of the endpoint manager, the
 * links and Docker, over the real IPAM (LevelDB in a temp dir) and the
 * agent's real codecs on in-memory maps. No root.
 */
describe('reconciler: what it repairs, and what it leaves alone', () => {
  let dir: string;
  let store: LevelStore;
  let ipam: Ipam;
  let endpoints: FakeEndpoints;
  let links: FakeLinks;
  let networks: FakeNetworks;
  let mem: ReturnType<typeof memoryMaps>;
  let bpfRoot: string;
  /** Docker's answer; undefined: Docker cannot be asked. */
  let docker: Map<string, Map<string, DockerEndpoint>> | undefined;
  let clock: number;
  let reconciler: Reconciler;

  const view = async (): Promise<DockerView> => {
    await Promise.resolve();
    if (!docker) throw new Error('connect ENOENT /run/docker.sock');
    const addresses = new Set([...docker.values()].flatMap((eps) => [...eps.values()].flatMap((e) => [e.ipv4, e.ipv6].filter((a): a is string => !!a))));
    return { takenAt: Date.now(), networks: docker, addresses, subnets: new Set() };
  };
  const inDocker = (...eps: Endpoint[]) => {
    docker ??= new Map();
    for (const ep of eps) {
      const net = docker.get(ep.dockerNetworkId) ?? new Map<string, DockerEndpoint>();
      net.set(ep.dockerEndpointId, { containerId: ep.containerId ?? '', name: 'c', ...(ep.ipv4 ? { ipv4: ep.ipv4 } : {}) });
      docker.set(ep.dockerNetworkId, net);
    }
  };
  /** An address the IPAM handed to an endpoint, as RequestAddress leaves it. */
  const allocate = (address: string) => ipam.requestAddress(DEFAULT_POOL_ID[4], address, null);
  const allocated = () => ipam.snapshot().flatMap((p) => p.allocations.filter((a) => a.owner === 'endpoint').map((a) => a.address));

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'reconcile-'));
    store = await LevelStore.open(join(dir, 'state'));
    ipam = await Ipam.load(store, { 4: { range: parseCidr('10.77.0.0/16'), router: parseAddress('10.77.0.1').value }, hostAddresses: [] });
    bpfRoot = join(dir, 'bpf');
    mkdirSync(bpfRoot);
    endpoints = new FakeEndpoints();
    links = new FakeLinks();
    networks = new FakeNetworks();
    mem = memoryMaps();
    docker = new Map([[NET, new Map()]]);
    clock = 1_000_000;
    reconciler = new Reconciler({
      endpoints,
      networks,
      ipam,
      maps: mem.maps,
      links: links.list,
      reaper: links,
      dockerView: view,
      bpfRoot,
      log,
      graceMs: 1_000,
      now: () => clock,
    });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an endpoint whose container Docker no longer has is removed and its address released; one Docker lists is kept', async () => {
    const gone = endpoint();
    const kept = endpoint();
    await allocate(gone.ipv4!);
    await allocate(kept.ipv4!);
    endpoints.eps = [gone, kept];
    inDocker(kept);
    const r = await reconciler.run('test');
    assert.deepStrictEqual(endpoints.deleted, [gone.dockerEndpointId]);
    assert.deepStrictEqual(allocated(), [kept.ipv4]);
    assert.deepStrictEqual([r.endpointsRemoved, r.addressesReleased], [1, 1]);
    assert.match(r.repairs.join('\n'), new RegExp(`endpoint ${gone.id} \\(${gone.ifName}, ${gone.ipv4}\\) has no container in Docker`));
  });

  it('an endpoint younger than the grace is left alone: its container may not be in Docker yet', async () => {
    const young = endpoint({ createdAt: new Date(Date.now() + 5_000).toISOString() });
    await allocate(young.ipv4!);
    endpoints.eps = [young];
    const r = await reconciler.run('test');
    assert.deepStrictEqual([endpoints.deleted, allocated(), r.repairs], [[], [young.ipv4], []]);
  });

  it('Docker unreachable: no endpoint, address or network is removed on its say-so; kernel leftovers still are', async () => {
    const ep = endpoint();
    await allocate(ep.ipv4!);
    endpoints.eps = [ep];
    networks.nets = [{ id: NET, createdAt: new Date(0).toISOString() }];
    links.links = [{ name: 'lxc0000deadbeef', index: 7, alias: TAG }];
    docker = undefined;
    const r = await reconciler.run('test');
    assert.strictEqual(r.dockerReachable, false);
    assert.deepStrictEqual([endpoints.deleted, allocated(), networks.nets.length], [[], [ep.ipv4], 1]);
    assert.deepStrictEqual(links.reaped, ['lxc0000deadbeef']);
  });

  it('a waiting endpoint Docker names is looked up again; a hand-wired one lives as long as its namespace', async () => {
    const waiting = endpoint({ state: 'waiting-for-identity', identity: RESERVED.init });
    const nsFile = join(dir, 'ns1');
    writeFileSync(nsFile, '');
    const { containerId: _c, ...bare } = endpoint({ sandboxKey: nsFile });
    const handWired: Endpoint = bare;
    endpoints.eps = [waiting, handWired];
    inDocker(waiting);
    await reconciler.run('test');
    assert.deepStrictEqual([endpoints.resolving, endpoints.deleted], [[waiting.dockerEndpointId], []]);
    rmSync(nsFile);
    await reconciler.run('test');
    assert.deepStrictEqual(endpoints.deleted, [handWired.dockerEndpointId]);
  });

  it('a network gone from Docker is forgotten; one Docker has, or one just created, is kept', async () => {
    const old = new Date(Date.now() - 60_000).toISOString();
    networks.nets = [
      { id: NET, createdAt: old },
      { id: 'b'.repeat(64), createdAt: old },
      { id: 'c'.repeat(64), createdAt: new Date(Date.now() + 5_000).toISOString() },
    ];
    const r = await reconciler.run('test');
    assert.deepStrictEqual(
      networks.nets.map((x) => x.id[0]),
      ['a', 'c'],
    );
    assert.strictEqual(r.networksRemoved, 1);
  });

  it('an address no endpoint and no container holds is released; one a container of another driver holds is kept', async () => {
    await allocate('10.77.0.200');
    await allocate('10.77.0.201');
    inDocker(endpoint({ ipv4: '10.77.0.201', dockerNetworkId: 'e'.repeat(64) })); // a container Docker lists, not one of our endpoints
    // Allocations are stamped now: a clock past the grace makes them old.
    await new Promise((r) => setTimeout(r, 1_100));
    const r = await reconciler.run('test');
    assert.deepStrictEqual(allocated(), ['10.77.0.201']);
    assert.strictEqual(r.addressesReleased, 1);
  });

  it("a veth tagged as ours that no endpoint owns is deleted; an endpoint's, one being set up or deleted, and another agent's are not", async () => {
    const ep = endpoint();
    endpoints.eps = [ep];
    inDocker(ep);
    endpoints.transient.add('lxc00000000beef');
    links.links = [
      { name: ep.ifName, index: ep.ifIndex, alias: TAG },
      { name: 'lxc00000000beef', index: 20, alias: TAG },
      { name: 'lxc0000000orphan', index: 21, alias: TAG },
      { name: 'lxc00000000cafe', index: 22, alias: 'cilium-agent-other' },
      { name: 'eth0', index: 2, alias: '' },
    ];
    const r = await reconciler.run('test');
    assert.deepStrictEqual(links.reaped, ['lxc0000000orphan']);
    assert.strictEqual(r.linksRemoved, 1);
  });

  it('a veth whose endpoint finished its setup while the links were listed is kept', async () => {
    const ep = endpoint();
    inDocker(ep);
    endpoints.transient.add(ep.ifName); // being set up when the pass starts
    links.links = [{ name: ep.ifName, index: ep.ifIndex, alias: TAG }];
    links.duringList = () => {
      endpoints.transient.delete(ep.ifName);
      endpoints.eps = [ep];
    };
    const r = await reconciler.run('test');
    assert.deepStrictEqual(links.reaped, []);
    assert.strictEqual(r.linksRemoved, 0);
  });

  it('an untagged pair of our naming is deleted only when seen untagged for UNTAGGED_ORPHAN_MS (its setup may be under way)', async () => {
    links.links = [
      { name: 'lxc0123456789ab', index: 30, alias: '' },
      { name: 'tmp0123456789ab', index: 31, alias: '' },
      { name: 'lxc0123456789ac', index: 32, alias: '' }, // its peer is in a container already: not a crash leftover
    ];
    await reconciler.run('first look');
    assert.deepStrictEqual([links.reaped, reconciler.pending], [[], 1]);
    clock += UNTAGGED_ORPHAN_MS - 1;
    await reconciler.run('too soon');
    assert.deepStrictEqual(links.reaped, []);
    clock += 1;
    const r = await reconciler.run('old enough');
    assert.deepStrictEqual([links.reaped, reconciler.pending, r.linksRemoved], [['lxc0123456789ab'], 0, 1]);
  });

  it("map entries of gone endpoints are removed; a live endpoint's, a setup's while under way, CIDR identities' and the host's stay", async () => {
    const live = endpoint();
    const gone = endpoint();
    const settingUp = endpoint();
    endpoints.eps = [live];
    endpoints.settingUp.add(settingUp.id);
    inDocker(live);
    for (const ep of [live, gone, settingUp]) {
      programEndpoint(
        { maps: mem.maps },
        {
          id: ep.id,
          ifIndex: ep.ifIndex,
          mac: ep.mac,
          hostMac: ep.hostMac,
          ipv4: ep.ipv4!,
          identity: ep.identity,
          ingressEnforced: true,
          egressEnforced: false,
          ready: true,
          policyGen: 0,
        },
      );
      mem.maps.policy.allow({ epId: ep.id, identity: 400, port: 80, proto: 6, dir: 'ingress' });
    }
    const cidr = parseCidr('192.0.2.0/24');
    mem.maps.ipcache.set(4, cidr.base, 24, MIN_CIDR_IDENTITY);
    mem.maps.ipcache.set(4, parseAddress('10.1.2.3').value, 32, RESERVED.host);
    // While a setup is under way its entries may precede its record, and its addresses any record.
    const during = await reconciler.run('during a setup');
    assert.strictEqual(during.mapEntriesRemoved, 2, "the gone endpoint's lxc and policy entries");
    const ids = () => ({ lxc: mem.maps.endpoints.entries().map((e) => e.epId), policy: mem.maps.policy.entries().map((e) => e.epId) });
    assert.deepStrictEqual(ids(), { lxc: [live.id, settingUp.id], policy: [live.id, settingUp.id] });
    assert.strictEqual(mem.maps.addresses.entries().length, 3);
    endpoints.settingUp.clear(); // and it failed: nothing recorded
    const after = await reconciler.run('after it');
    assert.strictEqual(after.mapEntriesRemoved, 6, "the failed setup's lxc, policy, ipcache and address entries, the gone endpoint's ipcache and address");
    assert.deepStrictEqual(ids(), { lxc: [live.id], policy: [live.id] });
    assert.deepStrictEqual(
      mem.maps.addresses.entries().map((e) => e.address),
      [live.ipv4],
    );
    const ipcache = mem.maps.ipcache
      .entries()
      .map((e) => e.identity)
      .sort((a, b) => a - b);
    assert.deepStrictEqual(ipcache, [RESERVED.host, live.identity, MIN_CIDR_IDENTITY]);
    assert.match(after.repairs.join('\n'), /6 BPF map entries of gone endpoints removed/);
  });

  it('programs missing from an endpoint are attached again and said so; pins that are not ours are removed', async () => {
    const ep = endpoint();
    endpoints.eps = [ep];
    inDocker(ep);
    endpoints.missingPrograms = [ep];
    for (const f of [PINNED_MAPS[0]!, 'cilium_old_map']) writeFileSync(join(bpfRoot, f), '');
    const r = await reconciler.run('test');
    assert.deepStrictEqual([r.programsReattached, r.pinsRemoved], [1, 1]);
    assert.deepStrictEqual(readdirSync(bpfRoot), [PINNED_MAPS[0]]);
    assert.match(r.repairs.join('\n'), new RegExp(`endpoint ${ep.id}: programs were missing on ${ep.ifName}: attached`));
  });

  it('one pass at a time: a second caller gets the pass under way', async () => {
    const [a, b] = [reconciler.run('one'), reconciler.run('two')];
    assert.strictEqual(await a, await b);
    assert.strictEqual((await a).reason, 'one');
  });
});
