import assert from 'assert';
import winston from 'winston';
import { parseConfig } from '../../agent/config';
import { Identity, IdentityAllocator } from '../../identity/allocator';
import { IdentityBackend } from '../../identity/backend';
import { decodeLabels, encodeLabels, rangeKey } from '../../kvstore/keys';

const log = winston.createLogger({ silent: true });

/** A kvstore's identities as another host changes them: follow() hands the allocator each new set. */
class SharedIdentities implements IdentityBackend {
  all: Identity[] = [];
  used: number[] = [];
  private notify: (all: Identity[]) => void = () => undefined;

  load(): Promise<Identity[]> {
    return Promise.resolve(this.all);
  }
  follow(onChange: (all: Identity[]) => void): Promise<void> {
    this.notify = onChange;
    return Promise.resolve();
  }
  allocate(labels: string[], pick: () => number): Promise<number> {
    const id = pick();
    this.all = [...this.all, { id, labels }];
    return Promise.resolve(id);
  }
  use(i: Identity): void {
    this.used.push(i.id);
  }
  release(): Promise<void> {
    return Promise.resolve();
  }
  /** Another host allocated or the kvstore lost some. */
  set(all: Identity[]): void {
    this.all = all;
    this.notify(all);
  }
}

describe('cluster: kvstore layout, identities followed from other hosts, flags', () => {
  it("writes label sets as Cilium does and reads back exactly what it wrote, ';' and '%' included", () => {
    assert.strictEqual(encodeLabels(['container:id=app1', 'container:app=web']), 'container:app=web;container:id=app1;');
    const odd = ['container:a=x;y', 'container:b=100%', 'container:c='];
    assert.deepStrictEqual(decodeLabels(encodeLabels(odd)), odd);
    assert.strictEqual(rangeKey('default', '10.5.0.0/16'), 'cilium/state/noderanges/v1/default/10.5.0.0-16');
  });

  it("learns other hosts' identities, never picks their numbers, and announces the change", async () => {
    const b = new SharedIdentities();
    b.all = [{ id: 256, labels: ['container:id=a'] }];
    const a = await IdentityAllocator.load(b, log, 60_000);
    let changes = 0;
    a.onChanged(() => changes++);
    b.set([...b.all, { id: 300, labels: ['container:id=remote'] }]);
    assert.strictEqual(changes, 1);
    assert.deepStrictEqual(a.get(300)?.labels, ['container:id=remote']);
    const mine = await a.acquire(['container:id=new']);
    assert.ok(mine.id > 300, `a fresh number above every known one, got ${mine.id}`);
    const again = await a.acquire(['container:id=remote']);
    assert.strictEqual(again.id, 300, 'a label set another host allocated is taken as it is');
    assert.deepStrictEqual(b.used, [300], 'and this host records its use');
  });

  it('drops identities that vanish from the kvstore unless used here, which it writes back', async () => {
    const b = new SharedIdentities();
    b.all = [
      { id: 256, labels: ['container:id=kept'] },
      { id: 257, labels: ['container:id=gone'] },
    ];
    const a = await IdentityAllocator.load(b, log, 60_000);
    await a.acquire(['container:id=kept']);
    b.used = [];
    b.set([]);
    assert.strictEqual(a.get(257), undefined);
    assert.deepStrictEqual(a.get(256)?.labels, ['container:id=kept']);
    assert.deepStrictEqual(b.used, [256], 'the used one is written back');
  });

  it('parses --kvstore etcd and its options, and names what is wrong', () => {
    const cfg = parseConfig([
      '--kvstore=etcd',
      '--kvstore-opt=etcd.address=http://10.0.0.1:2379,https://10.0.0.2:2379/',
      '--node-name=n1',
      '--kvstore-lease-ttl=9',
    ]);
    assert.ok(cfg !== 'help' && cfg.cluster);
    assert.deepStrictEqual(cfg.cluster.etcd.endpoints, ['http://10.0.0.1:2379', 'https://10.0.0.2:2379']);
    assert.strictEqual(cfg.cluster.etcd.leaseTtlSeconds, 9);
    assert.strictEqual(cfg.cluster.nodeName, 'n1');
    assert.strictEqual(cfg.cluster.name, 'default');
    assert.deepStrictEqual(cfg.rangesGiven, { 4: false, 6: false });
    assert.strictEqual((parseConfig([]) as Exclude<typeof cfg, 'help'>).cluster, undefined);
    const bad: Array<[string[], RegExp]> = [
      [['--kvstore=consul'], /--kvstore must be etcd/],
      [['--kvstore=etcd'], /needs --kvstore-opt etcd.address/],
      [['--kvstore=etcd', '--kvstore-opt=etcd.addr=http://x:1'], /--kvstore-opt takes etcd.address/],
      [['--kvstore=etcd', '--kvstore-opt=etcd.address=10.0.0.1:2379'], /http:\/\/ or https:\/\/ URLs/],
      [['--kvstore=etcd', '--kvstore-opt=etcd.address=http://x:1', '--kvstore-opt=etcd.cert-file=/c'], /go together/],
      [['--kvstore=etcd', '--kvstore-opt=etcd.address=http://x:1', '--kvstore-lease-ttl=1'], /lease-ttl must be a whole number of seconds >= 2/],
      [['--kvstore=etcd', '--kvstore-opt=etcd.address=http://x:1', '--node-name=a/b'], /--node-name takes letters/],
      [['--kvstore-opt=etcd.address=http://x:1'], /needs --kvstore etcd/],
    ];
    for (const [argv, re] of bad) assert.throws(() => parseConfig(argv), re, argv.join(' '));
  });
});
