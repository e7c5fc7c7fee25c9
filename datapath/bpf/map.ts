import { readFileSync } from 'fs';
import { bpf, check, errnoName } from './libbpf';

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
const ENOENT = -2;

/** What the codecs need of a map: fixed-size binary keys and values, encoded by them. */
export interface MapStore {
  readonly name: string;
  update(key: Buffer, value: Buffer, flags?: number): void;
  lookup(key: Buffer): Buffer | undefined;
  delete(key: Buffer): boolean;
  keys(): Buffer[];
  batches(chunk?: number): Iterable<Array<[Buffer, Buffer]>>;
  deleteMany(keys: Buffer[]): number;
  entries(): Array<[Buffer, Buffer]>;
}

/** One BPF map by fd. */
export class BpfMap implements MapStore {
  constructor(
    readonly name: string,
    readonly fd: number,
    readonly keySize: number,
    readonly valueSize: number,
  ) {}

  update(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    check(bpf.mapUpdate(this.fd, key, value, flags), `update ${this.name}`);
  }

  lookup(key: Buffer): Buffer | undefined {
    const value = Buffer.alloc(this.valueSize);
    const r = bpf.mapLookup(this.fd, key, value);
    if (r === ENOENT) return undefined;
    check(r, `lookup ${this.name}`);
    return value;
  }

  /** @returns false when the key was not there (idempotent removal). */
  delete(key: Buffer): boolean {
    const r = bpf.mapDelete(this.fd, key);
    if (r === ENOENT) return false;
    check(r, `delete from ${this.name}`);
    return true;
  }

  keys(): Buffer[] {
    const out: Buffer[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const r = bpf.mapNextKey(this.fd, prev, next);
      if (r === ENOENT) return out;
      if (r < 0) throw new Error(`iterate ${this.name}: ${errnoName(r)}`);
      out.push(next);
      prev = next;
    }
  }

  /**
   * Every entry, read in chunks of `chunk` with one syscall each (hash maps):
   * what a walk of a large table costs, instead of two calls per entry.
   */
  *batches(chunk = 4096): Generator<Array<[Buffer, Buffer]>> {
    const token = Buffer.alloc(8);
    const next = Buffer.alloc(8);
    const keys = Buffer.alloc(this.keySize * chunk);
    const values = Buffer.alloc(this.valueSize * chunk);
    let first = true;
    for (;;) {
      const count: [number] = [chunk];
      const r = bpf.mapLookupBatch(this.fd, first ? null : token, next, keys, values, count, null);
      if (r < 0 && r !== ENOENT) throw new Error(`read ${this.name}: ${errnoName(r)}`);
      const n = count[0];
      const out: Array<[Buffer, Buffer]> = [];
      for (let i = 0; i < n; i++) {
        out.push([
          Buffer.from(keys.subarray(i * this.keySize, (i + 1) * this.keySize)),
          Buffer.from(values.subarray(i * this.valueSize, (i + 1) * this.valueSize)),
        ]);
      }
      if (n) yield out;
      if (r === ENOENT) return;
      next.copy(token);
      first = false;
    }
  }

  /** Deletes keys in one syscall; keys already gone are skipped. @returns how many were deleted. */
  deleteMany(keys: Buffer[]): number {
    let deleted = 0;
    for (let i = 0; i < keys.length;) {
      const batch = Buffer.concat(keys.slice(i));
      const count: [number] = [keys.length - i];
      const r = bpf.mapDeleteBatch(this.fd, batch, count, null);
      deleted += count[0];
      i += count[0];
      if (r === ENOENT)
        i++; // that key was gone already: go on after it
      else if (r < 0) throw new Error(`delete from ${this.name}: ${errnoName(r)}`);
    }
    return deleted;
  }

  entries(): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) out.push([k, v]);
    }
    return out;
  }
}

/** Per-CPU maps return one value slot (8-byte aligned) per possible CPU. */
export function possibleCpus(): number {
  const text = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
  return text.split(',').reduce((n, part) => {
    const [a, b] = part.split('-').map(Number);
    return n + (b === undefined ? 1 : b - a! + 1);
  }, 0);
}
