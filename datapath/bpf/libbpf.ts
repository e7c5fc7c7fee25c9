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
export const SampleFn = koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)');

export type Pointer = object;

export const bpf = {
  openFile: lib.func('bpf_object__open_file', koffi.pointer(Obj), ['str', 'void *']),
  load: lib.func('bpf_object__load', 'int', [koffi.pointer(Obj)]),
  close: lib.func('bpf_object__close', 'void', [koffi.pointer(Obj)]),
  findMap: lib.func('bpf_object__find_map_by_name', koffi.pointer(Map), [koffi.pointer(Obj), 'str']),
  nextMap: lib.func('bpf_object__next_map', koffi.pointer(Map), [koffi.pointer(Obj), koffi.pointer(Map)]),
  mapName: lib.func('bpf_map__name', 'str', [koffi.pointer(Map)]),
  findProgram: lib.func('bpf_object__find_program_by_name', koffi.pointer(Prog), [koffi.pointer(Obj), 'str']),
  mapFd: lib.func('bpf_map__fd', 'int', [koffi.pointer(Map)]),
  mapSetPinPath: lib.func('bpf_map__set_pin_path', 'int', [koffi.pointer(Map), 'str']),
  mapType: lib.func('bpf_map__type', 'int', [koffi.pointer(Map)]),
  mapKeySize: lib.func('bpf_map__key_size', 'uint32_t', [koffi.pointer(Map)]),
  mapValueSize: lib.func('bpf_map__value_size', 'uint32_t', [koffi.pointer(Map)]),
  mapMaxEntries: lib.func('bpf_map__max_entries', 'uint32_t', [koffi.pointer(Map)]),
  objGet: lib.func('bpf_obj_get', 'int', ['str']),
  mapCreate: lib.func('bpf_map_create', 'int', ['int', 'str', 'uint32_t', 'uint32_t', 'uint32_t', 'void *']),
  objInfo: lib.func('bpf_obj_get_info_by_fd', 'int', ['int', 'void *', koffi.inout(koffi.pointer('uint32_t'))]),
  mapSetInitialValue: lib.func('bpf_map__set_initial_value', 'int', [koffi.pointer(Map), 'void *', 'size_t']),
  programFd: lib.func('bpf_program__fd', 'int', [koffi.pointer(Prog)]),
  mapUpdate: lib.func('bpf_map_update_elem', 'int', ['int', 'void *', 'void *', 'uint64_t']),
  mapLookup: lib.func('bpf_map_lookup_elem', 'int', ['int', 'void *', 'void *']),
  mapDelete: lib.func('bpf_map_delete_elem', 'int', ['int', 'void *']),
  mapNextKey: lib.func('bpf_map_get_next_key', 'int', ['int', 'void *', 'void *']),
  mapLookupBatch: lib.func('bpf_map_lookup_batch', 'int', ['int', 'void *', 'void *', 'void *', 'void *', koffi.inout(koffi.pointer('uint32_t')), 'void *']),
  mapDeleteBatch: lib.func('bpf_map_delete_batch', 'int', ['int', 'void *', koffi.inout(koffi.pointer('uint32_t')), 'void *']),
  tcHookCreate: lib.func('bpf_tc_hook_create', 'int', ['void *']),
  tcAttach: lib.func('bpf_tc_attach', 'int', ['void *', 'void *']),
  tcQuery: lib.func('bpf_tc_query', 'int', ['void *', 'void *']),
  ringNew: lib.func('ring_buffer__new', koffi.pointer(Ring), ['int', koffi.pointer(SampleFn), 'void *', 'void *']),
  ringConsume: lib.func('ring_buffer__consume', 'int', [koffi.pointer(Ring)]),
  ringFree: lib.func('ring_buffer__free', 'void', [koffi.pointer(Ring)]),
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
