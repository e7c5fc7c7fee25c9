import koffi from 'koffi';

/**
 * The libbpf 1.x calls the agent needs, bound through koffi onto libbpf.so.1:
 * no process is forked per map or attach operation. Integer calls return
 * -errno; pointer calls return null and set errno.
 */
const lib = koffi.load('libbpf.so.1');

const Obj = koffi.opaque('bpf_object');
const Map = koffi.opaque('bpf_map');
const Prog = koffi.opaque('bpf_program');
const Ring = koffi.opaque('ring_buffer');
const Btf = koffi.opaque('btf');
const Link = koffi.opaque('bpf_link');
export const SampleFn = koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)');

export type Pointer = object;
type Buf = Buffer | null;
/** koffi's `inout` pointer to one u32: a one-element array it reads and writes back. */
type U32Ref = [number];

/** A libbpf symbol with its C signature for koffi; each binding below states the TypeScript one callers see. */
type TypeSpec = string | ReturnType<typeof koffi.pointer> | ReturnType<typeof koffi.inout>;
const fn = (name: string, ret: TypeSpec, args: TypeSpec[]): unknown => lib.func(name, ret, args);

const obj = koffi.pointer(Obj);
const map = koffi.pointer(Map);
const btf = koffi.pointer(Btf);
const u32ref = koffi.inout(koffi.pointer('uint32_t'));

export const bpf = {
  openFile: fn('bpf_object__open_file', obj, ['str', 'void *']) as (...a: [string, null]) => Pointer | null,
  load: fn('bpf_object__load', 'int', [obj]) as (...a: [Pointer]) => number,
  close: fn('bpf_object__close', 'void', [obj]) as (...a: [Pointer]) => void,
  findMap: fn('bpf_object__find_map_by_name', map, [obj, 'str']) as (...a: [Pointer, string]) => Pointer | null,
  nextMap: fn('bpf_object__next_map', map, [obj, map]) as (...a: [Pointer, Pointer | null]) => Pointer | null,
  mapName: fn('bpf_map__name', 'str', [map]) as (...a: [Pointer]) => string,
  findProgram: fn('bpf_object__find_program_by_name', koffi.pointer(Prog), [obj, 'str']) as (...a: [Pointer, string]) => Pointer | null,
  mapFd: fn('bpf_map__fd', 'int', [map]) as (...a: [Pointer]) => number,
  mapSetPinPath: fn('bpf_map__set_pin_path', 'int', [map, 'str']) as (...a: [Pointer, string]) => number,
  mapType: fn('bpf_map__type', 'int', [map]) as (...a: [Pointer]) => number,
  mapKeySize: fn('bpf_map__key_size', 'uint32_t', [map]) as (...a: [Pointer]) => number,
  mapValueSize: fn('bpf_map__value_size', 'uint32_t', [map]) as (...a: [Pointer]) => number,
  mapMaxEntries: fn('bpf_map__max_entries', 'uint32_t', [map]) as (...a: [Pointer]) => number,
  objGet: fn('bpf_obj_get', 'int', ['str']) as (...a: [string]) => number,
  mapCreate: fn('bpf_map_create', 'int', ['int', 'str', 'uint32_t', 'uint32_t', 'uint32_t', 'void *']) as (
    ...a: [number, string, number, number, number, null]
  ) => number,
  objInfo: fn('bpf_obj_get_info_by_fd', 'int', ['int', 'void *', u32ref]) as (...a: [number, Buffer, U32Ref]) => number,
  mapSetInitialValue: fn('bpf_map__set_initial_value', 'int', [map, 'void *', 'size_t']) as (...a: [Pointer, Buffer, number]) => number,
  attachCgroup: fn('bpf_program__attach_cgroup', koffi.pointer(Link), [koffi.pointer(Prog), 'int']) as (...a: [Pointer, number]) => Pointer | null,
  linkPin: fn('bpf_link__pin', 'int', [koffi.pointer(Link), 'str']) as (...a: [Pointer, string]) => number,
  /** Closes the link's fd: a pinned link stays attached. */
  linkDestroy: fn('bpf_link__destroy', 'int', [koffi.pointer(Link)]) as (...a: [Pointer]) => number,
  linkUpdate: fn('bpf_link_update', 'int', ['int', 'int', 'void *']) as (...a: [number, number, null]) => number,
  programFd: fn('bpf_program__fd', 'int', [koffi.pointer(Prog)]) as (...a: [Pointer]) => number,
  mapUpdate: fn('bpf_map_update_elem', 'int', ['int', 'void *', 'void *', 'uint64_t']) as (...a: [number, Buffer, Buffer, number]) => number,
  mapLookup: fn('bpf_map_lookup_elem', 'int', ['int', 'void *', 'void *']) as (...a: [number, Buffer, Buffer]) => number,
  mapDelete: fn('bpf_map_delete_elem', 'int', ['int', 'void *']) as (...a: [number, Buffer]) => number,
  mapNextKey: fn('bpf_map_get_next_key', 'int', ['int', 'void *', 'void *']) as (...a: [number, Buf, Buffer]) => number,
  mapLookupBatch: fn('bpf_map_lookup_batch', 'int', ['int', 'void *', 'void *', 'void *', 'void *', u32ref, 'void *']) as (
    ...a: [number, Buf, Buffer, Buffer, Buffer, U32Ref, null]
  ) => number,
  mapDeleteBatch: fn('bpf_map_delete_batch', 'int', ['int', 'void *', u32ref, 'void *']) as (...a: [number, Buffer, U32Ref, null]) => number,
  tcHookCreate: fn('bpf_tc_hook_create', 'int', ['void *']) as (...a: [Buffer]) => number,
  tcAttach: fn('bpf_tc_attach', 'int', ['void *', 'void *']) as (...a: [Buffer, Buffer]) => number,
  tcQuery: fn('bpf_tc_query', 'int', ['void *', 'void *']) as (...a: [Buffer, Buffer]) => number,
  ringNew: fn('ring_buffer__new', koffi.pointer(Ring), ['int', koffi.pointer(SampleFn), 'void *', 'void *']) as (
    ...a: [number, bigint, null, null]
  ) => Pointer | null,
  ringConsume: fn('ring_buffer__consume', 'int', [koffi.pointer(Ring)]) as (...a: [Pointer]) => number,
  ringFree: fn('ring_buffer__free', 'void', [koffi.pointer(Ring)]) as (...a: [Pointer]) => void,
  objectBtf: fn('bpf_object__btf', btf, [obj]) as (...a: [Pointer]) => Pointer | null,
  mapBtfKeyTypeId: fn('bpf_map__btf_key_type_id', 'uint32_t', [map]) as (...a: [Pointer]) => number,
  mapBtfValueTypeId: fn('bpf_map__btf_value_type_id', 'uint32_t', [map]) as (...a: [Pointer]) => number,
  /** const struct btf_type *: read through koffi.decode */
  btfTypeById: fn('btf__type_by_id', 'void *', [btf, 'uint32_t']) as (...a: [Pointer, number]) => Pointer | null,
  btfNameByOffset: fn('btf__name_by_offset', 'str', [btf, 'uint32_t']) as (...a: [Pointer, number]) => string | null,
  btfResolveSize: fn('btf__resolve_size', 'int64_t', [btf, 'uint32_t']) as (...a: [Pointer, number]) => number,
  btfResolveType: fn('btf__resolve_type', 'int', [btf, 'uint32_t']) as (...a: [Pointer, number]) => number,
};

export const errnoName = (code: number): string => {
  const name = Object.entries(koffi.os.errno).find(([, v]) => v === Math.abs(code))?.[0];
  return name ?? `errno ${Math.abs(code)}`;
};

/** Throws "<what>: <ERRNO>" for a negative libbpf return. */
export function check(ret: number, what: string): number {
  if (ret < 0) throw new Error(`${what}: ${errnoName(ret)}`);
  return ret;
}

/** For pointer-returning calls: null means failure, with the reason in errno. */
export function checkPtr<T>(ptr: T | null, what: string): T {
  if (ptr === null) throw new Error(`${what}: ${errnoName(koffi.errno())}`);
  return ptr;
}

export { koffi };
