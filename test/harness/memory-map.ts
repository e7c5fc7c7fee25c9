import type { MapStore } from '../../datapath/bpf/map';
import type { Maps } from '../../datapath/bpf/loader';
import {
  CtMap,
  EndpointAddressMap,
  EndpointMap,
  IpcacheMap,
  LbBackendMap,
  LbMaglevMap,
  LbServiceMap,
  MAP_LAYOUTS,
  MapName,
  MetricsMap,
  NatDeviceMap,
  NatExcludeMap,
  PolicyMap,
  NatMap,
  sizesOf,
} from '../../datapath/bpf/maps';

/**
 * A BPF hash map in memory, with the kernel's rules that the codecs rely on:
 * fixed key and value sizes, BPF_NOEXIST refusing an existing key (EEXIST).
 * `failNextUpdate` makes one update fail, as a full or missing map would.
 */
export class MemoryMap implements MapStore {
  private readonly data = new Map<string, Buffer>();
  failNextUpdate?: string;

  constructor(
    readonly name: string,
    private readonly keySize: number,
    private readonly valueSize: number,
  ) {}

  update(key: Buffer, value: Buffer, flags = 0): void {
    if (key.length !== this.keySize || value.length !== this.valueSize) {
      throw new Error(`update ${this.name}: ${key.length}-byte key / ${value.length}-byte value, the map has ${this.keySize} / ${this.valueSize}`);
    }
    if (this.failNextUpdate) {
      const why = this.failNextUpdate;
      delete this.failNextUpdate;
      throw new Error(`update ${this.name}: ${why}`);
    }
    const k = key.toString('hex');
    if (flags === 1 && this.data.has(k)) throw new Error(`update ${this.name}: EEXIST`);
    this.data.set(k, Buffer.from(value));
  }

  lookup(key: Buffer): Buffer | undefined {
    const v = this.data.get(key.toString('hex'));
    return v && Buffer.from(v);
  }

  delete(key: Buffer): boolean {
    return this.data.delete(key.toString('hex'));
  }

  keys(): Buffer[] {
    return [...this.data.keys()].map((k) => Buffer.from(k, 'hex'));
  }

  *batches(): Generator<Array<[Buffer, Buffer]>> {
    if (this.data.size) yield this.entries();
  }

  deleteMany(keys: Buffer[]): number {
    return keys.filter((k) => this.delete(k)).length;
  }

  entries(): Array<[Buffer, Buffer]> {
    return [...this.data].map(([k, v]) => [Buffer.from(k, 'hex'), Buffer.from(v)]);
  }
}

/** Every pinned map, in memory, behind the agent's own codecs. */
export function memoryMaps(): { maps: Maps; raw: Record<MapName, MemoryMap> } {
  const raw = Object.fromEntries(Object.entries(MAP_LAYOUTS).map(([name, l]) => [name, new MemoryMap(name, sizesOf(l).key, sizesOf(l).value)])) as Record<
    MapName,
    MemoryMap
  >;
  const maps: Maps = {
    endpoints: new EndpointMap(raw.cilium_lxc),
    ipcache: new IpcacheMap(raw.cilium_ipcache),
    policy: new PolicyMap(raw.cilium_policy),
    ct: new CtMap(raw.cilium_ct),
    addresses: new EndpointAddressMap(raw.cilium_ep_addr),
    metrics: new MetricsMap(raw.cilium_metrics),
    snat: new NatMap(raw.cilium_snat),
    natDevices: new NatDeviceMap(raw.cilium_nat_dev),
    natExclude: new NatExcludeMap(raw.cilium_nat_exclude),
    lbServices: new LbServiceMap(raw.cilium_lb_svc),
    lbBackends: new LbBackendMap(raw.cilium_lb_backend),
    lbMaglev: new LbMaglevMap(raw.cilium_lb_maglev),
    lbCt: new NatMap(raw.cilium_lb_ct),
    eventsFd: -1,
  };
  return { maps, raw };
}
