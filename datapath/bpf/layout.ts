/**
 * C struct layouts described once, in C's own terms: member names, types and
 * natural alignment as clang lays them out for BPF. Each description makes
 * its codec (encode/decode) and is compared member by member with the BTF of
 * the compiled object (btf.ts), so the two sides cannot drift silently.
 */

/** Integers in the machine's order (BPF on x86 and arm64: little-endian), `be16` in network order, fixed byte arrays. */
export type Kind = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | { bytes: number } | Layout<FieldList>;
export type FieldList = readonly (readonly [string, Kind])[];

type ValueOf<K> = K extends 'u64' ? bigint : K extends { bytes: number } ? Buffer : K extends Layout<infer F> ? Decoded<F> : number;
export type Decoded<F extends FieldList> = { [E in F[number] as E[0]]: ValueOf<E[1]> };
/** What encode takes: any member left out, of the struct or a nested one, is zero. */
export type Encodable<F extends FieldList> = { [E in F[number] as E[0]]?: E[1] extends Layout<infer N> ? Encodable<N> : ValueOf<E[1]> };

interface Field {
  name: string;
  kind: Kind;
  offset: number;
  size: number;
}

/** A member of the struct or of a nested one, named "outer.inner": what BTF is compared with. */
export interface Leaf {
  path: string;
  offset: number;
  size: number;
}

const SIZES = { u8: 1, u16: 2, u32: 4, u64: 8, be16: 2 } as const;

function sizeAlign(k: Kind): { size: number; align: number } {
  if (typeof k === 'string') return { size: SIZES[k], align: SIZES[k] };
  if (k instanceof Layout) return { size: k.size, align: k.align };
  return { size: k.bytes, align: 1 };
}

export class Layout<F extends FieldList> {
  readonly size: number;
  readonly align: number;
  private readonly byName = new Map<string, Field>();
  private readonly list: Field[] = [];

  /**
   * @param cName the C type (`struct ct_key`, `__u32`) for messages and the BTF comparison
   * @param scalar a single member standing for a non-struct C type (a `__u32` key, a `__u8[16]` key)
   */
  constructor(
    readonly cName: string,
    fields: F,
    readonly scalar = false,
  ) {
    let offset = 0;
    let align = 1;
    for (const [name, kind] of fields) {
      const sa = sizeAlign(kind);
      offset = Math.ceil(offset / sa.align) * sa.align;
      const f = { name, kind, offset, size: sa.size };
      this.list.push(f);
      this.byName.set(name, f);
      offset += sa.size;
      align = Math.max(align, sa.align);
    }
    this.align = align;
    this.size = Math.ceil(offset / align) * align;
  }

  /** Byte offset of a member, for code that reads one field of many entries in place. */
  offset(name: F[number][0]): number {
    return this.byName.get(name)!.offset;
  }

  /** Any member left out is zero (a fresh buffer) or left as it was (into). */
  encode(v: Encodable<F>, into: Buffer = Buffer.alloc(this.size), at = 0): Buffer {
    const values = v as Record<string, unknown>;
    for (const f of this.list) {
      const x = values[f.name];
      if (x !== undefined) write(f, x, into, at + f.offset, this.cName);
    }
    return into;
  }

  decode(b: Buffer, at = 0): Decoded<F> {
    const out: Record<string, unknown> = {};
    for (const f of this.list) out[f.name] = read(f, b, at + f.offset);
    return out as Decoded<F>;
  }

  leaves(prefix = '', base = 0): Leaf[] {
    return this.list.flatMap((f) =>
      f.kind instanceof Layout
        ? f.kind.leaves(`${prefix}${f.name}.`, base + f.offset)
        : [{ path: `${prefix}${f.name}`, offset: base + f.offset, size: f.size }],
    );
  }
}

function write(f: Field, x: unknown, into: Buffer, o: number, owner: string): void {
  const k = f.kind;
  switch (k) {
    case 'u8':
      into.writeUInt8(x as number, o);
      return;
    case 'u16':
      into.writeUInt16LE(x as number, o);
      return;
    case 'u32':
      into.writeUInt32LE((x as number) >>> 0, o);
      return;
    case 'u64':
      into.writeBigUInt64LE(x as bigint, o);
      return;
    case 'be16':
      into.writeUInt16BE(x as number, o);
      return;
  }
  if (k instanceof Layout) {
    k.encode(x as Encodable<FieldList>, into, o);
    return;
  }
  const b = x as Buffer;
  if (b.length !== k.bytes) throw new Error(`${owner}.${f.name} takes ${k.bytes} bytes, not ${b.length}`);
  b.copy(into, o);
}

function read(f: Field, b: Buffer, o: number): unknown {
  const k = f.kind;
  switch (k) {
    case 'u8':
      return b.readUInt8(o);
    case 'u16':
      return b.readUInt16LE(o);
    case 'u32':
      return b.readUInt32LE(o);
    case 'u64':
      return b.readBigUInt64LE(o);
    case 'be16':
      return b.readUInt16BE(o);
  }
  return k instanceof Layout ? k.decode(b, o) : Buffer.from(b.subarray(o, o + k.bytes));
}

export const struct = <const F extends FieldList>(cName: string, fields: F): Layout<F> => new Layout(cName, fields);
/** A non-struct key or value (`__u32`, `__u8[16]`): compared with BTF by size only. */
export const scalar = <const N extends string, const K extends Kind>(cName: string, name: N, kind: K): Layout<readonly [readonly [N, K]]> =>
  new Layout(cName, [[name, kind]] as const, true);
export const bytes = (n: number) => ({ bytes: n });
