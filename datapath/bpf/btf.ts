import { bpf, koffi, Pointer } from './libbpf';
import type { FieldList, Layout, Leaf } from './layout';

/** uapi linux/btf.h: struct btf_type is { name_off, info, size|type }, its struct members follow as { name_off, type, offset }. */
const BTF_KIND_STRUCT = 4;
const BTF_TYPE_WORDS = 3;
const BTF_MEMBER_WORDS = 3;

/** A struct's members as the compiled object's BTF has them, nested structs flattened as "outer.inner"; undefined for a non-struct. */
function btfLeaves(btf: Pointer, typeId: number, prefix = '', base = 0): { name: string; leaves: Leaf[] } | undefined {
  const id = bpf.btfResolveType(btf, typeId); // through typedefs and qualifiers
  const t = id < 0 ? null : bpf.btfTypeById(btf, id);
  if (!t) return undefined;
  const [nameOff, info] = koffi.decode(t, 'uint32_t', BTF_TYPE_WORDS) as number[];
  if (((info! >>> 24) & 0x1f) !== BTF_KIND_STRUCT) return undefined;
  const vlen = info! & 0xffff;
  const kindFlag = info! >>> 31 === 1; // bitfield structs: offsets carry a bit size on top
  const words = koffi.decode(t, BTF_TYPE_WORDS * 4, 'uint32_t', vlen * BTF_MEMBER_WORDS) as number[];
  const leaves: Leaf[] = [];
  for (let i = 0; i < vlen; i++) {
    const [mName, mType, mOffset] = words.slice(i * BTF_MEMBER_WORDS, (i + 1) * BTF_MEMBER_WORDS) as [number, number, number];
    const path = `${prefix}${bpf.btfNameByOffset(btf, mName) ?? ''}`;
    const offset = base + (kindFlag ? mOffset & 0xffffff : mOffset) / 8;
    const nested = btfLeaves(btf, mType, `${path}.`, offset);
    if (nested) leaves.push(...nested.leaves);
    else leaves.push({ path, offset, size: bpf.btfResolveSize(btf, mType) });
  }
  return { name: bpf.btfNameByOffset(btf, nameOff!) ?? '', leaves };
}

const describe = (l: Leaf) => `byte ${l.offset} (${l.size} byte${l.size === 1 ? '' : 's'})`;

/**
 * Where the agent's description of a map key or value differs from the type
 * the object's BTF gives it: the struct's name, a member missing on either
 * side, or one at another offset or of another size. A non-struct type
 * (`__u32`, `__u8[16]`) is compared by size.
 */
export function btfProblems(btf: Pointer, typeId: number, layout: Layout<FieldList>, what: string): string[] {
  const c = btfLeaves(btf, typeId);
  if (layout.scalar || !c) {
    const size = bpf.btfResolveSize(btf, typeId);
    if (layout.scalar && !c && size === layout.size) return [];
    return [`${what} is ${c ? `struct ${c.name}` : `${size} bytes`} in C, the agent's codec has ${layout.cName} (${layout.size} bytes)`];
  }
  if (`struct ${c.name}` !== layout.cName) return [`${what} is struct ${c.name} in C, the agent's codec has ${layout.cName}`];
  const problems: string[] = [];
  const ours = new Map(layout.leaves().map((l) => [l.path, l]));
  for (const l of c.leaves) {
    const o = ours.get(l.path);
    if (!o) problems.push(`${what}: ${layout.cName} has ${l.path} at ${describe(l)}, the agent's codec does not`);
    else if (o.offset !== l.offset || o.size !== l.size)
      problems.push(`${what}: ${layout.cName}.${l.path} is at ${describe(l)} in C, at ${describe(o)} in the agent's codec`);
    ours.delete(l.path);
  }
  for (const o of ours.values()) problems.push(`${what}: the agent's codec has ${layout.cName}.${o.path}, C does not`);
  return problems;
}
