import assert from 'assert';
import { parseConfig } from '../../agent/config';
import { LoadBalancer } from '../../service/load-balancer';
import { maglevTable } from '../../service/maglev';
import { memoryMaps } from '../harness/memory-map';

const names = (n: number) => Array.from({ length: n }, (_, i) => `4/${0x0a000001 + i}/80/6`);
const counts = (table: number[], n: number) => table.reduce((c, i) => (c[i]!++, c), new Array<number>(n).fill(0));

describe('Maglev: lookup tables', () => {
  it('fills every entry, each backend within one of m/n', () => {
    for (const [n, m] of [
      [1, 251],
      [3, 251],
      [7, 16381],
      [100, 16381],
    ] as const) {
      const t = maglevTable(names(n), m);
      assert.strictEqual(t.length, m);
      const c = counts(t, n);
      assert.ok(Math.max(...c) - Math.min(...c) <= 1, `n=${n} m=${m}: ${Math.min(...c)}..${Math.max(...c)}`);
    }
    assert.deepStrictEqual(maglevTable([], 251), []);
  });

  it('depends on the backends, not their order, so every agent builds the same table', () => {
    const a = names(5);
    const b = [...a].reverse();
    const ta = maglevTable(a, 1021).map((i) => a[i]);
    const tb = maglevTable(b, 1021).map((i) => b[i]);
    assert.deepStrictEqual(ta, tb);
  });

  it("a backend removed moves few of the others' entries (Maglev's minimal disruption)", () => {
    const all = names(10);
    const before = maglevTable(all, 16381).map((i) => all[i]);
    const fewer = all.filter((_, i) => i !== 3);
    const after = maglevTable(fewer, 16381).map((i) => fewer[i]);
    const movedOthers = before.filter((name, e) => name !== all[3] && after[e] !== name).length;
    // the removed backend's tenth has to move; of the other nine tenths only a few per cent do
    assert.ok(movedOthers / 16381 < 0.05, `${movedOthers} of the remaining backends' entries moved`);
  });
});

describe('Maglev: the load balancer writes each service its table', () => {
  const frontend = { family: 4 as const, port: 80, proto: 6 };
  const backend = (last: number) => ({ family: 4 as const, address: BigInt(0x0a000000 + last), port: 80, proto: 6 });

  it('in chunks of 256 backend IDs; a table follows its backends and goes with its service', () => {
    const { maps } = memoryMaps();
    const lb = new LoadBalancer(maps, 1021);
    const s = lb.upsert(frontend, [backend(1), backend(2), backend(3)]);
    const chunks = maps.lbMaglev.entries().sort((a, b) => a.chunk - b.chunk);
    assert.deepStrictEqual(
      chunks.map((c) => c.chunk),
      [0, 1, 2, 3],
    );
    const table = chunks.flatMap((c) => c.backendIds).slice(0, 1021);
    const ids = [1, 2, 3].map((i) => lb.backendId(backend(i))!);
    for (const id of ids) assert.ok(Math.abs(table.filter((x) => x === id).length - 1021 / 3) <= 1);
    lb.upsert(frontend, [backend(1), backend(2)]);
    const after = maps.lbMaglev.entries().flatMap((c) => c.backendIds);
    assert.ok(!after.includes(ids[2]!), 'the removed backend is in no entry');
    lb.upsert(frontend, []);
    assert.strictEqual(maps.lbMaglev.entries().length, 0, 'no backends, no table');
    lb.upsert(frontend, [backend(1)]);
    lb.remove(s.id);
    assert.strictEqual(maps.lbMaglev.entries().length, 0);
  });

  it('at start, tables of services gone, or all of them with Maglev off, are removed', () => {
    const { maps } = memoryMaps();
    const old = new LoadBalancer(maps, 251);
    old.upsert(frontend, [backend(1)]);
    old.upsert({ ...frontend, port: 81 }, [backend(2)]);
    const lb = new LoadBalancer(maps, 251);
    lb.upsert(frontend, [backend(1)]);
    lb.removeStale();
    assert.deepStrictEqual([...new Set(maps.lbMaglev.entries().map((e) => e.frontend.port))], [80]);
    const off = new LoadBalancer(maps);
    off.upsert(frontend, [backend(1)]);
    off.removeStale();
    assert.strictEqual(maps.lbMaglev.entries().length, 0);
  });

  it('flags: random by default; maglev with a table size Cilium allows, anything else refused', () => {
    const d = parseConfig([]);
    assert.ok(d !== 'help' && d.maglevTableSize === 0);
    const m = parseConfig(['--bpf-lb-algorithm=maglev']);
    assert.ok(m !== 'help' && m.maglevTableSize === 16381);
    const small = parseConfig(['--bpf-lb-algorithm=maglev', '--bpf-lb-maglev-table-size=251']);
    assert.ok(small !== 'help' && small.maglevTableSize === 251);
    assert.throws(() => parseConfig(['--bpf-lb-algorithm=roundrobin']), /--bpf-lb-algorithm must be random or maglev, got "roundrobin"/);
    assert.throws(() => parseConfig(['--bpf-lb-maglev-table-size=1000']), /must be one of 251, 509, .* got "1000"/);
  });
});
