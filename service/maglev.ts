import { createHash } from 'crypto';

/** The table sizes Cilium allows (--bpf-lb-maglev-table-size): primes, so every skip reaches every entry. */
export const MAGLEV_TABLE_SIZES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071] as const;

/**
 * Maglev's lookup table (Eisenbud et al., NSDI 2016): each backend walks a
 * permutation of its own over the m entries (an offset and a skip from a
 * hash of its name), and the backends take turns claiming the next free
 * entry of theirs. Each gets m/n entries, give or take one, and a backend's
 * coming or going moves few entries of the others'. Names are taken in
 * sorted order, so every agent given the same backends builds the same
 * table. Returns each entry's index into names; [] without backends.
 */
export function maglevTable(names: string[], m: number): number[] {
  if (names.length === 0) return [];
  const order = names.map((name, index) => ({ name, index })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const walks = order.map(({ name, index }) => {
    const h = createHash('sha256').update(name).digest();
    return { index, offset: h.readUInt32LE(0) % m, skip: (h.readUInt32LE(4) % (m - 1)) + 1, next: 0 };
  });
  const table = new Array<number>(m).fill(-1);
  for (let filled = 0; ;) {
    for (const w of walks) {
      let entry = (w.offset + w.next * w.skip) % m;
      while (table[entry] !== -1) entry = (w.offset + ++w.next * w.skip) % m;
      table[entry] = w.index;
      w.next++;
      if (++filled === m) return table;
    }
  }
}
